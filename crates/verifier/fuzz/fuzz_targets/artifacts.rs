//! Fuzzes everything the verifier parses from a registry: Sigstore bundles,
//! DSSE envelopes, in-toto statements, simple-signing payloads, manifests and
//! certificates, RFC 3161 timestamps, embedded SCTs. None may panic, whatever the registry
//! serves.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tagpin_verifier::bundle;
use tagpin_verifier::certificate::signing_certificate;
use tagpin_verifier::cosign_v2::Manifest;
use tagpin_verifier::dsse::Envelope;
use tagpin_verifier::intoto::Statement;
use tagpin_verifier::sct;
use tagpin_verifier::simple_signing::SimpleSigning;
use tagpin_verifier::timestamp;
use tagpin_verifier::trust_root::TrustRoot;

static ROOT: std::sync::LazyLock<TrustRoot> = std::sync::LazyLock::new(|| {
    TrustRoot::from_trusted_root_json(include_bytes!(
        "../../tests/fixtures/conformance/trusted_root.staging.json"
    ))
    .unwrap_or_default()
});

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = bundle::parse("fuzz", data) {
        let _ = parsed.clone().with_digest(&data[..data.len().min(32)]);
        let _ = parsed.with_message(data);
    }
    let _ = timestamp::verify(data, b"signature", &ROOT);
    let _ = sct::verify(data, &[data], &ROOT);
    if let Ok(envelope) = Envelope::parse(data) {
        let _ = Statement::parse(&envelope.payload);
        let _ = envelope.pae();
    }
    let _ = Statement::parse(data);
    let _ = SimpleSigning::parse(data);
    let _ = Manifest::parse(data);
    let _ = signing_certificate(data);
});
