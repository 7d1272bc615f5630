//! Fuzzes policy loading: any YAML is accepted or rejected with an error, and
//! a compiled policy answers rule lookups for any image name.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tagpin_verifier::Policy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = serde_norway::from_str::<Policy>(text) else {
        return;
    };
    if let Ok(compiled) = policy.compile() {
        let _ = compiled.rule_for("docker.io/library/nginx");
        let _ = compiled.rule_for(text);
    }
});
