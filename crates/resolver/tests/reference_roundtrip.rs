//! Property tests: every reference the grammar allows parses into the parts it
//! was built from, and normalization is idempotent.

use std::net::Ipv6Addr;

use proptest::prelude::*;
use tagpin_resolver::{Digest, ImageReference};

/// A generated registry host: what is written, what `registry()` must return
/// (lowercase, without `:443`), what `host_without_port()` must return, and whether
/// it is loopback.
#[derive(Debug, Clone)]
struct Host {
    written: Option<String>,
    registry: String,
    bare: String,
    loopback: bool,
}

fn host(written: String, bare: String, loopback: bool) -> Host {
    Host {
        registry: written.to_ascii_lowercase(),
        written: Some(written),
        bare: bare.to_ascii_lowercase(),
        loopback,
    }
}

fn with_port(h: Host, port: Option<u16>) -> Host {
    let written = h.written.clone().unwrap_or_else(|| h.registry.clone());
    match port {
        // The default HTTPS port names the same registry as no port, except after a
        // single-label name, which needs a port to be read as a host at all.
        Some(443) if h.registry.contains(['.', ':']) || h.registry == "localhost" => Host {
            written: Some(format!("{written}:443")),
            ..h
        },
        Some(p) => host(format!("{written}:{p}"), h.bare, h.loopback),
        None => h,
    }
}

fn port() -> impl Strategy<Value = Option<u16>> {
    prop_oneof![Just(Some(443)), prop::option::of(1..=u16::MAX)]
}

fn domain_label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?"
}

fn host_strategy() -> impl Strategy<Value = Host> {
    prop_oneof![
        Just(Host {
            written: None,
            registry: "docker.io".into(),
            bare: "docker.io".into(),
            loopback: false,
        }),
        Just(host("docker.io".into(), "docker.io".into(), false)),
        prop::sample::select(vec![
            "index.docker.io",
            "registry-1.docker.io",
            "Index.Docker.IO:443",
            "DOCKER.IO"
        ])
        .prop_map(|written| Host {
            written: Some(written.into()),
            registry: "docker.io".into(),
            bare: "docker.io".into(),
            loopback: false,
        }),
        port().prop_map(|p| with_port(host("localhost".into(), "localhost".into(), true), p)),
        // Domain names need a '.' to be recognized as a host without a port.
        (prop::collection::vec(domain_label(), 2..4), port()).prop_map(|(labels, p)| {
            let name = labels.join(".");
            with_port(host(name.clone(), name, false), p)
        }),
        // A single label is a host only together with a port.
        (domain_label(), 1..=u16::MAX).prop_map(|(name, p)| {
            let loopback = name.eq_ignore_ascii_case("localhost");
            with_port(host(name.clone(), name, loopback), Some(p))
        }),
        (any::<[u8; 4]>(), port()).prop_map(|(o, p)| {
            let ip = format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3]);
            with_port(host(ip.clone(), ip, o[0] == 127), p)
        }),
        (any::<[u16; 8]>(), any::<bool>(), port())
            .prop_map(|(segments, upper, p)| {
                let addr = Ipv6Addr::from(segments);
                let mut text = addr.to_string();
                if upper {
                    text = text.to_uppercase();
                }
                (addr, text, p)
            })
            // The grammar has no dotted (IPv4-embedded) IPv6 form.
            .prop_filter("dotted IPv6", |(_, text, _)| !text.contains('.'))
            .prop_map(|(addr, text, p)| {
                let loopback =
                    addr.is_loopback() || addr.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback());
                with_port(host(format!("[{text}]"), text, loopback), p)
            }),
        Just(host("[::1]".into(), "::1".into(), true)),
        Just(host("127.0.0.1:5443".into(), "127.0.0.1".into(), true)),
    ]
}

fn path_strategy() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,3}", 1..5)
}

fn tag_strategy() -> impl Strategy<Value = Option<String>> {
    prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
}

fn digest_strategy() -> impl Strategy<Value = Option<Digest>> {
    prop::option::of(prop_oneof![
        prop::collection::vec(any::<u8>(), 32),
        prop::collection::vec(any::<u8>(), 64),
    ])
    .prop_map(|bytes| {
        bytes.map(|b| {
            let alg = if b.len() == 32 { "sha256" } else { "sha512" };
            format!("{alg}:{}", hex::encode(b))
                .parse()
                .unwrap_or_else(|e| panic!("generated digest rejected: {e}"))
        })
    })
}

fn parse(s: &str) -> ImageReference {
    ImageReference::parse(s).unwrap_or_else(|e| panic!("{s:?} rejected: {e}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn valid_references_parse_into_their_parts(
        host in host_strategy(),
        path in path_strategy(),
        tag in tag_strategy(),
        digest in digest_strategy(),
    ) {
        // Without an explicit host, a first component that looks like a host
        // would be read as one; such inputs are a different reference.
        prop_assume!(host.written.is_some()
            || path.len() == 1
            || !(path[0].contains('.') || path[0] == "localhost"));

        let mut input = String::new();
        if let Some(h) = &host.written {
            input.push_str(h);
            input.push('/');
        }
        let path = path.join("/");
        input.push_str(&path);
        if let Some(t) = &tag {
            input.push(':');
            input.push_str(t);
        }
        if let Some(d) = &digest {
            input.push('@');
            input.push_str(&d.to_string());
        }
        let repository = if host.registry == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };

        let r = parse(&input);
        prop_assert_eq!(r.as_written(), input.as_str());
        prop_assert_eq!(r.registry(), host.registry.as_str());
        prop_assert_eq!(r.host_without_port(), host.bare.as_str());
        prop_assert_eq!(r.is_loopback(), host.loopback);
        prop_assert_eq!(r.repository(), repository.as_str());
        prop_assert_eq!(r.tag(), tag.as_deref());
        prop_assert_eq!(r.digest(), digest.as_ref());
        prop_assert_eq!(r.tag_or_latest(), tag.as_deref().unwrap_or("latest"));

        let normalized = r.normalized();
        prop_assert_eq!(r.to_string(), normalized.clone());
        let again = parse(&normalized);
        prop_assert_eq!(&again, &r);
        prop_assert_eq!(again.normalized(), normalized.clone());
        prop_assert_eq!(again.registry(), r.registry());
        prop_assert_eq!(again.repository(), r.repository());
        prop_assert_eq!(again.digest(), r.digest());
        prop_assert_eq!(again.tag_or_latest(), r.tag_or_latest());

        let pin = Digest::sha256(input.as_bytes());
        let pinned = parse(&r.pinned(&pin));
        prop_assert_eq!(pinned.digest(), Some(digest.as_ref().unwrap_or(&pin)));
        prop_assert_eq!(pinned.tag(), r.tag());
        let with = r.with_digest(pin.clone());
        prop_assert_eq!(parse(with.as_written()), with.clone());
        prop_assert_eq!(with.digest(), Some(&pin));
        prop_assert_eq!(with.repository(), r.repository());
    }

    #[test]
    fn arbitrary_text_never_panics_and_normalizes_stably(
        input in "[a-zA-Z0-9./:@_\\-\\[\\] ]{0,48}|\\PC{0,48}",
    ) {
        if let Ok(r) = ImageReference::parse(&input) {
            prop_assert_eq!(r.as_written(), input.as_str());
            let again = parse(&r.normalized());
            prop_assert_eq!(&again, &r);
            prop_assert_eq!(again.normalized(), r.normalized());
        }
    }
}
