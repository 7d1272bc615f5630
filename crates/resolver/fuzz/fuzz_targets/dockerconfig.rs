//! Fuzzes docker config parsing (pull secrets arrive from any tenant): it must never
//! panic, and its errors must never echo the input, which may hold secrets.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tagpin_resolver::DockerConfig;

fuzz_target!(|data: &[u8]| {
    for parsed in [
        DockerConfig::parse(data),
        DockerConfig::parse_legacy_dockercfg(data, "fuzz input"),
    ] {
        match parsed {
            Ok(config) => {
                for host in ["docker.io", "localhost:5000", "[::1]:5000", "a.b.example", ""] {
                    let _ = config.credential_for(host);
                }
                let _ = format!("{config:?}");
            }
            Err(e) => {
                let message = e.to_string();
                if data.len() >= 12 {
                    if let Ok(text) = std::str::from_utf8(data) {
                        assert!(!message.contains(text), "error echoes its input: {message}");
                    }
                }
            }
        }
    }
});
