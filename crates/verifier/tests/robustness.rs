//! Whatever a registry serves, the parsers answer with an error, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use proptest::prelude::*;
use tagpin_verifier::Envelope;
use tagpin_verifier::Manifest;
use tagpin_verifier::SimpleSigning;
use tagpin_verifier::Statement;
use tagpin_verifier::parse_bundle;
use tagpin_verifier::signing_certificate;

fn parse_everything(bytes: &[u8]) {
    let _ = parse_bundle("fuzz", bytes);
    let _ = Envelope::parse(bytes);
    let _ = Statement::parse(bytes);
    let _ = SimpleSigning::parse(bytes);
    let _ = Manifest::parse(bytes);
    let _ = signing_certificate(bytes);
}

/// Real artifacts with one byte changed exercise the deeper parsing paths.
fn seeds() -> Vec<Vec<u8>> {
    [
        "manifest.json.sigstore.json",
        "att-slsa-v1.json",
        "payload.json",
        "conformance/dsse-with-hashedrekord-happy-path/bundle.sigstore.json",
        "conformance/intoto-canonical-log-entry/bundle.sigstore.json",
    ]
    .iter()
    .map(|f| support::fixture(f))
    .collect()
}

proptest! {
    #[test]
    fn arbitrary_bytes_do_not_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        parse_everything(&bytes);
    }

    #[test]
    fn mutated_artifacts_do_not_panic(seed in 0usize..5, pos in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = seeds()[seed].clone();
        let i = pos % bytes.len();
        bytes[i] = byte;
        parse_everything(&bytes);
        if let Ok(parsed) = parse_bundle("fuzz", &bytes) {
            let _ = parsed.with_message(b"message");
        }
    }
}

#[test]
fn certificate_fixtures_parse() {
    let g = support::generated();
    let pem = g["trusted"]["certificate"].as_str().unwrap();
    let der = pem::parse(pem).unwrap().into_contents();
    let cert = signing_certificate(&der).unwrap();
    assert_eq!(
        cert.issuer.as_deref(),
        Some("https://token.actions.githubusercontent.com")
    );
    assert!(cert.code_signing);
    assert_eq!(
        cert.subjects,
        vec!["https://github.com/tagpin/app/.github/workflows/release.yml@refs/heads/main"]
    );
}
