//! `tagpin ref`: print the normalized form of a reference.

use std::process::ExitCode;

use tagpin_resolver::ImageReference;

/// Prints `image` normalized; exit code 2 with one stderr line when it is invalid.
pub fn run(image: &str) -> ExitCode {
    match ImageReference::parse(image) {
        Ok(reference) => {
            println!("{}", reference.normalized());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tagpin ref: {e}");
            ExitCode::from(2)
        }
    }
}
