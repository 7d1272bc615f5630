//! `tagpin resolve`: tags to pinned references, in input order.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;
use tagpin_resolver::{ImageReference, Resolver};

use crate::cli::OutputFormat;
use crate::config::Config;

/// One line of `--output json`.
#[derive(Debug, Serialize)]
struct Resolved {
    input: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pinned: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Resolves every image concurrently and prints them in input order.
pub async fn run(
    config: Option<&Path>,
    output: OutputFormat,
    images: &[String],
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let keychain = super::cli_keychain(&config)?;
    let resolver = Resolver::new(config.resolver.clone()).context("cannot set up the resolver")?;
    let progress = std::io::stderr().is_terminal();
    if progress {
        eprint!("resolving {} image(s)…", images.len());
    }
    let lookups = images.iter().map(|input| {
        let resolver = &resolver;
        let keychain = &keychain;
        async move {
            let reference = match ImageReference::parse(input) {
                Ok(r) => r,
                Err(e) => return failed(input, e.to_string()),
            };
            if let Some(digest) = reference.digest() {
                return Resolved {
                    input: input.clone(),
                    reference: Some(reference.normalized()),
                    digest: Some(digest.to_string()),
                    pinned: Some(input.clone()),
                    error: None,
                };
            }
            match resolver.resolve(&reference, keychain).await {
                Ok(r) => Resolved {
                    input: input.clone(),
                    reference: Some(reference.normalized()),
                    digest: Some(r.digest.to_string()),
                    pinned: Some(reference.pinned(&r.digest)),
                    error: None,
                },
                Err(e) => failed(input, e.to_string()),
            }
        }
    });
    let results = futures::future::join_all(lookups).await;
    if progress {
        eprint!("\r\x1b[2K");
    }
    let mut stdout = std::io::stdout().lock();
    let mut failures = 0;
    for r in &results {
        if let Some(e) = &r.error {
            failures += 1;
            eprintln!("tagpin resolve: {e}");
        }
    }
    match output {
        OutputFormat::Text => {
            for r in results.iter().filter(|r| r.error.is_none()) {
                writeln!(stdout, "{}", r.pinned.as_deref().unwrap_or_default())?;
            }
        }
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut stdout, &results)?;
            writeln!(stdout)?;
        }
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn failed(input: &str, error: String) -> Resolved {
    Resolved {
        input: input.to_owned(),
        reference: None,
        digest: None,
        pinned: None,
        error: Some(error),
    }
}
