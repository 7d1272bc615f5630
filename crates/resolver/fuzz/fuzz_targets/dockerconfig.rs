//! Fuzzes docker config parsing (pull secrets arrive from any tenant).
//!
//! Raw bytes must never make either parser panic. The secret oracle is exact: the fuzzer
//! builds docker configs whose every secret field (`password`, `identitytoken`, the
//! password inside `auth`, and `auth` itself) carries a canary, and neither an error
//! message nor the Debug form of what was parsed may contain the canary or any secret value
//! as written. Registry keys and usernames may be quoted in messages, so the canary is kept
//! out of them. An input that merely looks like an error message proves nothing any more.

#![no_main]

use base64::Engine as _;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use tagpin_resolver::DockerConfig;

/// Planted in every secret value; appears nowhere else in a generated config.
const CANARY: &str = "tagpin-canary-secret-7Qx9";

/// Hosts looked up in every config that parses.
const HOSTS: [&str; 5] = [
    "docker.io",
    "localhost:5000",
    "[::1]:5000",
    "a.b.example",
    "",
];

/// A generated config: its bytes and the secret values written in them.
struct Planted {
    bytes: Vec<u8>,
    secrets: Vec<String>,
}

/// Text from the fuzzer that holds no canary (so only secrets carry it).
fn free_text(u: &mut Unstructured) -> Result<String> {
    let mut text: String = u.arbitrary()?;
    while text.contains(CANARY) {
        text = text.replace(CANARY, "");
    }
    Ok(text)
}

/// A secret value with the canary inside, recorded in `secrets`.
fn secret(u: &mut Unstructured, secrets: &mut Vec<String>) -> Result<String> {
    let value = format!("{}{CANARY}{}", free_text(u)?, free_text(u)?);
    secrets.push(value.clone());
    Ok(value)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An `auth` value: well-formed, or broken in each way the parser must reject quietly.
fn auth(u: &mut Unstructured, secrets: &mut Vec<String>) -> Result<Value> {
    let value = match u.int_in_range(0..=5u8)? {
        0 => {
            let password = secret(u, secrets)?;
            b64(format!("{}:{password}", free_text(u)?).as_bytes())
        }
        // No colon: not user:password (a colon would make the text before it a username).
        1 => {
            let value = secret(u, secrets)?.replace(':', "");
            secrets.push(value.clone());
            b64(value.as_bytes())
        }
        // Not base64 at all.
        2 => secret(u, secrets)?,
        // Base64 of bytes that are not UTF-8.
        3 => {
            let mut bytes = secret(u, secrets)?.into_bytes();
            bytes.extend([0xff, 0xfe, b':']);
            b64(&bytes)
        }
        4 => return Ok(Value::from(u.arbitrary::<i64>()?)),
        _ => return Ok(Value::Null),
    };
    secrets.push(value.clone());
    Ok(Value::String(value))
}

/// A secret field's value: usually a string, sometimes the wrong JSON type.
fn secret_field(u: &mut Unstructured, secrets: &mut Vec<String>) -> Result<Value> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 => Value::Array(vec![Value::String(secret(u, secrets)?)]),
        1 => Value::Bool(u.arbitrary()?),
        _ => Value::String(secret(u, secrets)?),
    })
}

/// One registry's entry, with a fuzzer-chosen subset of the fields.
fn entry(u: &mut Unstructured, secrets: &mut Vec<String>) -> Result<Value> {
    let mut fields = Map::new();
    if u.arbitrary()? {
        fields.insert("auth".into(), auth(u, secrets)?);
    }
    if u.arbitrary()? {
        fields.insert("username".into(), Value::String(free_text(u)?));
    }
    if u.arbitrary()? {
        fields.insert("password".into(), secret_field(u, secrets)?);
    }
    if u.arbitrary()? {
        fields.insert("identitytoken".into(), secret_field(u, secrets)?);
    }
    if u.arbitrary()? {
        fields.insert(free_text(u)?, Value::String(free_text(u)?));
    }
    Ok(Value::Object(fields))
}

/// A docker config (or legacy dockercfg) with canaries in its secrets, perhaps truncated.
fn planted(u: &mut Unstructured, legacy: bool) -> Result<Planted> {
    let mut secrets = Vec::new();
    let mut auths = Map::new();
    for _ in 0..u.int_in_range(0..=4u8)? {
        auths.insert(free_text(u)?, entry(u, &mut secrets)?);
    }
    let config = if legacy {
        Value::Object(auths)
    } else {
        Value::Object(Map::from_iter([("auths".to_owned(), Value::Object(auths))]))
    };
    let mut bytes = serde_json::to_vec(&config).unwrap_or_default();
    // Truncation makes syntax errors; it removes content, so it cannot forge a canary.
    if u.arbitrary()? {
        let keep = u.int_in_range(0..=bytes.len())?;
        bytes.truncate(keep);
    }
    Ok(Planted { bytes, secrets })
}

fn assert_no_secret(what: &str, text: &str, secrets: &[String]) {
    assert!(!text.contains(CANARY), "{what} carries a secret: {text}");
    for s in secrets.iter().filter(|s| s.len() >= 8) {
        assert!(
            !text.contains(s.as_str()),
            "{what} carries secret {s:?}: {text}"
        );
    }
}

fn check(
    parsed: std::result::Result<DockerConfig, tagpin_resolver::CredentialError>,
    secrets: &[String],
) {
    match parsed {
        Ok(config) => {
            for host in HOSTS {
                let credential = format!("{:?}", config.credential_for(host));
                assert_no_secret("a credential's Debug form", &credential, secrets);
            }
            assert_no_secret("the config's Debug form", &format!("{config:?}"), secrets);
        }
        Err(e) => assert_no_secret("an error", &e.to_string(), secrets),
    }
}

fuzz_target!(|data: &[u8]| {
    // Any bytes: no panic (a raw input proves nothing about secrets, so no oracle here).
    for parsed in [
        DockerConfig::parse(data),
        DockerConfig::parse_legacy_dockercfg(data, "fuzz input"),
    ] {
        if let Ok(config) = parsed {
            for host in HOSTS {
                let _ = config.credential_for(host);
            }
        }
    }
    let mut u = Unstructured::new(data);
    for legacy in [false, true] {
        let Ok(config) = planted(&mut u, legacy) else {
            return;
        };
        let parsed = if legacy {
            DockerConfig::parse_legacy_dockercfg(&config.bytes, "secret ns/pull")
        } else {
            DockerConfig::parse(&config.bytes)
        };
        check(parsed, &config.secrets);
    }
});
