//! Fuzzes the image reference parser: it must never panic, and whatever it
//! accepts must normalize to a string that parses back to an equal reference.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tagpin_resolver::ImageReference;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(reference) = ImageReference::parse(input) else {
        return;
    };
    assert_eq!(reference.as_written(), input);
    let normalized = reference.normalized();
    let again = match ImageReference::parse(&normalized) {
        Ok(again) => again,
        Err(e) => panic!("{input:?} normalized to {normalized:?}, which is rejected: {e}"),
    };
    assert_eq!(again, reference, "{input:?} -> {normalized:?}");
    assert_eq!(
        again.normalized(),
        normalized,
        "normalization of {input:?} is not idempotent"
    );
    assert_eq!(again.registry(), reference.registry());
    assert_eq!(again.repository(), reference.repository());
    assert_eq!(again.digest(), reference.digest());
    assert_eq!(again.tag_or_latest(), reference.tag_or_latest());
    // Accessors that slice the registry must hold on every accepted host.
    let _ = reference.host_without_port();
    let _ = reference.is_loopback();
    let pin = tagpin_resolver::Digest::sha256(data);
    let pinned = reference.pinned(&pin);
    if let Err(e) = ImageReference::parse(&pinned) {
        panic!("{input:?} pinned to {pinned:?}, which is rejected: {e}");
    }
    let with = reference.with_digest(pin);
    assert_eq!(ImageReference::parse(with.as_written()).ok(), Some(with));
});
