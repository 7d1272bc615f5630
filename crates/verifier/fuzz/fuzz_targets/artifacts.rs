//! Fuzzes everything the verifier parses from a registry: Sigstore bundles,
//! DSSE envelopes, in-toto statements, simple-signing payloads, manifests and
//! certificates, RFC 3161 timestamps, embedded SCTs. None may panic, whatever the registry
//! serves.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tagpin_verifier::Envelope;
use tagpin_verifier::Manifest;
use tagpin_verifier::SimpleSigning;
use tagpin_verifier::Statement;
use tagpin_verifier::TrustRoot;
use tagpin_verifier::parse_bundle;
use tagpin_verifier::signing_certificate;
use tagpin_verifier::verify_scts;
use tagpin_verifier::verify_timestamp;

static ROOT: std::sync::LazyLock<TrustRoot> = std::sync::LazyLock::new(|| {
    TrustRoot::from_trusted_root_json(include_bytes!(
        "../../tests/fixtures/conformance/trusted_root.staging.json"
    ))
    .unwrap_or_default()
});

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = parse_bundle("fuzz", data) {
        let _ = parsed.clone().with_digest(&data[..data.len().min(32)]);
        let _ = parsed.with_message(data);
    }
    let _ = verify_timestamp(data, b"signature", &ROOT);
    let _ = verify_scts(data, &[data], &ROOT);
    if let Ok(envelope) = Envelope::parse(data) {
        let _ = Statement::parse(&envelope.payload);
        let _ = envelope.pae();
    }
    let _ = Statement::parse(data);
    let _ = SimpleSigning::parse(data);
    let _ = Manifest::parse(data);
    let _ = signing_certificate(data);
});
