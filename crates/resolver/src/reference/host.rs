//! Registry host validation: domain names, IPv4, bracketed IPv6, optional port.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

/// Checks a registry host as written (`host[:port]`) and returns the byte
/// range of the host without port and brackets, or why it is invalid.
pub(super) fn validate(host: &str) -> Result<Range<usize>, &'static str> {
    if host.is_empty() {
        return Err("the registry host is empty");
    }
    let (name_range, port) = if let Some(rest) = host.strip_prefix('[') {
        let close = rest
            .find(']')
            .ok_or("an IPv6 address opened with '[' must be closed with ']'")?;
        let addr = &rest[..close];
        // The reference grammar only admits hex digits and colons between the
        // brackets (no zone IDs, no embedded IPv4); the address must also be
        // one a client can actually dial.
        if addr.is_empty()
            || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
            || addr.parse::<Ipv6Addr>().is_err()
        {
            return Err("the text between '[' and ']' is not an IPv6 address");
        }
        let after = &rest[close + 1..];
        let port = if after.is_empty() {
            None
        } else {
            Some(
                after
                    .strip_prefix(':')
                    .ok_or("only ':<port>' may follow a bracketed IPv6 address")?,
            )
        };
        (1..close + 1, port)
    } else {
        let (name, port) = match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        };
        if port.is_some_and(|p| p.contains(':')) {
            return Err("more than one ':' (write an IPv6 address in brackets, e.g. [::1]:5000)");
        }
        validate_domain_name(name)?;
        (0..name.len(), port)
    };
    if let Some(port) = port {
        validate_port(port)?;
    }
    Ok(name_range)
}

/// The registry host as tagpin compares it: ASCII lowercase, without the default
/// HTTPS port `:443`, and Docker Hub's aliases as `docker.io`.
///
/// Host names and IPv6 hex digits are case-insensitive, and a registry reached on
/// 443 is the same registry written without a port, so each spelling of one
/// registry must match the same policy rule, configuration and credentials.
pub fn normalize(host: &str) -> String {
    let mut host = host.trim().to_ascii_lowercase();
    // Without its port a single-label name ("myhost") would read as a Docker Hub
    // namespace, not a host, so it keeps ":443".
    if let Some(bare) = host.strip_suffix(":443")
        && (bare.ends_with(']') || !bare.contains(':'))
        && (bare.contains(['.', ':']) || bare == "localhost")
    {
        host.truncate(bare.len());
    }
    if super::DEFAULT_REGISTRY_ALIASES.contains(&host.as_str()) {
        return super::DEFAULT_REGISTRY.to_owned();
    }
    host
}

/// Checks dot-separated components of ASCII letters and digits with inner dashes.
fn validate_domain_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("the host name before the port is empty");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("the host name has an empty component (leading, trailing or double '.')");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("host name components may only contain letters, digits and '-'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("host name components must not start or end with '-'");
        }
    }
    Ok(())
}

/// Checks a decimal port in 1..=65535.
fn validate_port(port: &str) -> Result<(), &'static str> {
    if port.is_empty() {
        return Err("the port after ':' is empty");
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the port must be a decimal number");
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(()),
        _ => Err("the port must be between 1 and 65535"),
    }
}

/// True for `localhost`, any address in 127.0.0.0/8, `::1` and IPv4-mapped loopback.
pub(super) fn is_loopback(host_without_port: &str) -> bool {
    if host_without_port.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Ok(v4) = host_without_port.parse::<Ipv4Addr>() {
        return v4.is_loopback();
    }
    if let Ok(v6) = host_without_port.parse::<Ipv6Addr>() {
        return v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback());
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_of(s: &str) -> &str {
        match validate(s) {
            Ok(range) => &s[range],
            Err(e) => panic!("{s:?} rejected: {e}"),
        }
    }

    #[test]
    fn accepts_the_host_forms_the_grammar_allows() {
        assert_eq!(host_of("docker.io"), "docker.io");
        assert_eq!(host_of("Registry.Example.COM:443"), "Registry.Example.COM");
        assert_eq!(host_of("my-registry.local"), "my-registry.local");
        assert_eq!(host_of("host:30005"), "host");
        assert_eq!(host_of("localhost"), "localhost");
        assert_eq!(host_of("localhost:5000"), "localhost");
        assert_eq!(host_of("127.0.0.1:5443"), "127.0.0.1");
        assert_eq!(host_of("[::1]:5000"), "::1");
        assert_eq!(host_of("[fe80::1]"), "fe80::1");
        assert_eq!(host_of("[2001:DB8::1]:65535"), "2001:DB8::1");
    }

    #[test]
    fn normalizes_case_default_port_and_docker_hub_aliases() {
        for (written, normalized) in [
            ("REGISTRY.EXAMPLE.COM", "registry.example.com"),
            ("Registry.Example.com:443", "registry.example.com"),
            ("registry.example.com:4443", "registry.example.com:4443"),
            ("registry.example.com:8443", "registry.example.com:8443"),
            ("index.docker.io", "docker.io"),
            ("registry-1.docker.io", "docker.io"),
            ("Registry-1.Docker.IO:443", "docker.io"),
            ("docker.io", "docker.io"),
            ("index.docker.io:5000", "index.docker.io:5000"),
            ("[2001:DB8::1]:443", "[2001:db8::1]"),
            ("[::1]:5000", "[::1]:5000"),
            ("127.0.0.1:5443", "127.0.0.1:5443"),
            ("localhost:443", "localhost"),
            ("myhost:443", "myhost:443"),
        ] {
            assert_eq!(normalize(written), normalized, "{written}");
            assert_eq!(normalize(normalized), normalized, "{normalized}");
        }
    }

    #[test]
    fn rejects_malformed_hosts() {
        for bad in [
            "",
            ":5000",
            "host:",
            "host:0",
            "host:65536",
            "host:12a",
            "host:+1",
            "::1",
            "a:1:2",
            "[::1",
            "[]",
            "[::g]",
            "[1:2:3:4:5:6:7:8:9]",
            "[::ffff:127.0.0.1]",
            "[fe80::1%eth0]",
            "[::1]x",
            "[::1]:",
            "-host.io",
            "host-.io",
            "a..b",
            ".io",
            "io.",
            "h_st.io",
            "hüst.io",
        ] {
            assert!(validate(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn loopback_covers_localhost_127_slash_8_and_ipv6() {
        for yes in [
            "localhost",
            "LocalHost",
            "127.0.0.1",
            "127.255.3.4",
            "::1",
            "::ffff:127.0.0.9",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in [
            "docker.io",
            "128.0.0.1",
            "10.0.0.1",
            "::2",
            "fe80::1",
            "localhost.example",
        ] {
            assert!(!is_loopback(no), "{no}");
        }
    }
}
