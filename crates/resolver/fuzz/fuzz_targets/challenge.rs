//! Fuzzes `WWW-Authenticate` parsing: registry answers are untrusted input.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tagpin_resolver::parse_challenge(text);
    }
});
