//! Behaviour of the reference parser on the forms the kubelet sees.

use super::*;

const HEX64: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn sha256() -> Digest {
    let s = format!("sha256:{HEX64}");
    s.parse().unwrap_or_else(|e| panic!("{s} rejected: {e}"))
}

fn parse(s: &str) -> ImageReference {
    ImageReference::parse(s).unwrap_or_else(|e| panic!("{s:?} rejected: {e}"))
}

fn err(s: &str) -> ReferenceError {
    match ImageReference::parse(s) {
        Ok(r) => panic!("{s:?} accepted as {r}"),
        Err(e) => e,
    }
}

#[test]
fn normalizes_docker_hub_names() {
    let cases = [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.25", "docker.io/library/nginx:1.25"),
        (
            "index.docker.io/library/nginx:1",
            "docker.io/library/nginx:1",
        ),
        ("index.docker.io/nginx", "docker.io/library/nginx:latest"),
        ("docker.io/nginx", "docker.io/library/nginx:latest"),
        ("docker.io/library/nginx", "docker.io/library/nginx:latest"),
        ("myuser/app:v1", "docker.io/myuser/app:v1"),
        ("a/b/c", "docker.io/a/b/c:latest"),
        ("docker.io/foo.bar/app", "docker.io/foo.bar/app:latest"),
    ];
    for (input, normalized) in cases {
        let r = parse(input);
        assert_eq!(r.normalized(), normalized, "{input}");
        assert_eq!(r.to_string(), normalized, "{input}");
        assert_eq!(r.as_written(), input);
        assert_eq!(r.registry(), "docker.io");
    }
    let r = parse("nginx");
    assert_eq!(r.repository(), "library/nginx");
    assert_eq!(r.tag(), None);
    assert_eq!(r.tag_or_latest(), "latest");
    assert_eq!(r.digest(), None);
    assert_eq!(r.name(), "docker.io/library/nginx");
}

#[test]
fn one_registry_has_one_name_however_its_host_is_written() {
    let cases = [
        (
            "REGISTRY.EXAMPLE.COM/team/app:1.0",
            "registry.example.com/team/app:1.0",
        ),
        (
            "registry.example.com:443/team/app:1.0",
            "registry.example.com/team/app:1.0",
        ),
        (
            "Registry.Example.Com:443/team/app",
            "registry.example.com/team/app:latest",
        ),
        (
            "registry.example.com:8443/team/app",
            "registry.example.com:8443/team/app:latest",
        ),
        (
            "index.docker.io/library/nginx",
            "docker.io/library/nginx:latest",
        ),
        (
            "registry-1.docker.io/library/nginx:1.25",
            "docker.io/library/nginx:1.25",
        ),
        (
            "registry-1.docker.io/nginx",
            "docker.io/library/nginx:latest",
        ),
        ("DOCKER.IO/library/nginx", "docker.io/library/nginx:latest"),
        ("[2001:DB8::1]:443/app", "[2001:db8::1]/app:latest"),
    ];
    for (input, normalized) in cases {
        let r = parse(input);
        assert_eq!(r.normalized(), normalized, "{input}");
        assert_eq!(r.as_written(), input, "the written form is kept");
        assert_eq!(r.pinned(&sha256()), format!("{input}@sha256:{HEX64}"));
        assert_eq!(parse(&r.normalized()), r, "{input}");
    }
    assert_eq!(
        parse("REGISTRY.EXAMPLE.COM:443/team/app:1.0"),
        parse("registry.example.com/team/app:1.0")
    );
    assert_eq!(parse("registry-1.docker.io/library/nginx"), parse("nginx"));
}

#[test]
fn digest_only_reference_gets_no_implicit_tag() {
    let r = parse(&format!("redis@sha256:{HEX64}"));
    assert_eq!(
        r.normalized(),
        format!("docker.io/library/redis@sha256:{HEX64}")
    );
    assert_eq!(r.tag(), None);
    assert_eq!(r.tag_or_latest(), "latest");
    assert_eq!(r.digest(), Some(&sha256()));
}

#[test]
fn keeps_tag_and_digest_together() {
    let input = format!("gcr.io/proj/img:tag@sha256:{HEX64}");
    let r = parse(&input);
    assert_eq!(r.registry(), "gcr.io");
    assert_eq!(r.repository(), "proj/img");
    assert_eq!(r.tag(), Some("tag"));
    assert_eq!(r.digest(), Some(&sha256()));
    assert_eq!(r.normalized(), input);

    let hex128 = HEX64.repeat(2);
    let r = parse(&format!("nginx:1.25@sha512:{hex128}"));
    assert_eq!(
        r.digest().map(Digest::algorithm),
        Some(crate::DigestAlgorithm::Sha512)
    );
}

#[test]
fn recognizes_registry_hosts() {
    let cases = [
        (
            "host:30005/kibana:5.6.8",
            "host:30005",
            "host",
            "kibana",
            Some("5.6.8"),
        ),
        (
            "localhost:5000/a/b:c",
            "localhost:5000",
            "localhost",
            "a/b",
            Some("c"),
        ),
        ("localhost/foo", "localhost", "localhost", "foo", None),
        ("[::1]:5000/x:y", "[::1]:5000", "::1", "x", Some("y")),
        ("[fe80::1]/x", "[fe80::1]", "fe80::1", "x", None),
        (
            "127.0.0.1:5443/team/app:1.0",
            "127.0.0.1:5443",
            "127.0.0.1",
            "team/app",
            Some("1.0"),
        ),
        (
            "Registry.Example.com/team/app",
            "registry.example.com",
            "registry.example.com",
            "team/app",
            None,
        ),
        ("quay.io/nginx", "quay.io", "quay.io", "nginx", None),
    ];
    for (input, registry, host, repository, tag) in cases {
        let r = parse(input);
        assert_eq!(r.registry(), registry, "{input}");
        assert_eq!(r.host_without_port(), host, "{input}");
        assert_eq!(r.repository(), repository, "{input}");
        assert_eq!(r.tag(), tag, "{input}");
    }
    // Without a '/', "localhost:5000" is a Docker Hub repository with a tag.
    let r = parse("localhost:5000");
    assert_eq!(r.normalized(), "docker.io/library/localhost:5000");
}

#[test]
fn loopback_registries() {
    for yes in [
        "localhost/a",
        "localhost:5000/a",
        "127.0.0.1:5443/a",
        "127.1.2.3/a",
        "[::1]:5000/a",
        "[::1]/a",
    ] {
        assert!(parse(yes).is_loopback(), "{yes}");
    }
    for no in [
        "nginx",
        "gcr.io/a",
        "10.0.0.1:5000/a",
        "[fe80::1]/a",
        "localhost",
    ] {
        assert!(!parse(no).is_loopback(), "{no}");
    }
}

#[test]
fn rejects_what_the_grammar_rejects() {
    let long_repo = format!("a/{}", "b".repeat(254));
    assert_eq!(long_repo.len(), 256);
    let bad: Vec<String> = vec![
        format!("nginx:{}", "t".repeat(129)),
        "Nginx".into(),
        "myuser/App".into(),
        long_repo,
        format!("nginx@sha256:{}", &HEX64[..63]),
        format!("nginx@sha384:{}", HEX64.repeat(2)),
        format!("nginx@sha256:{}", HEX64.to_uppercase()),
        "a:b:c".into(),
        "nginx:".into(),
        "nginx@".into(),
        ":tag".into(),
        "@sha256:".into(),
        "/nginx".into(),
        "nginx//x".into(),
        "nginx/".into(),
        "-nginx".into(),
        "a___b".into(),
        "a..b".into(),
        HEX64.into(),
        " nginx".into(),
        "nginx ".into(),
        "ng inx".into(),
        "nginx\n".into(),
        "".into(),
        "https://gcr.io/a".into(),
        "docker://nginx".into(),
        "nginx:.tag".into(),
        "nginx:-tag".into(),
        "nginx:ta+g".into(),
        "localhost:/a".into(),
        "host:0/a".into(),
        "host:99999/a".into(),
        "::1/a".into(),
        "[::1/a".into(),
        "ex_ample.com/a".into(),
        "-example.com/a".into(),
        "localhost/".into(),
        "ngïnx".into(),
        "nginx@sha256:abc@def".into(),
    ];
    for input in &bad {
        err(input);
    }
}

#[test]
fn accepts_edge_forms() {
    let repo255 = format!("a/{}", "b".repeat(253));
    parse(&repo255);
    // "library/" counts towards the limit once it is added.
    parse(&"n".repeat(247));
    err(&"n".repeat(248));
    parse(&format!("nginx:{}", "t".repeat(128)));
    parse("a__b");
    parse("a-----b");
    parse("a.b_c");
    parse("nginx:_Tag.1-x");
    // 63 hex characters are a name, not an image ID.
    parse(&HEX64[..63]);
}

#[test]
fn error_messages_name_the_input_and_the_problem() {
    let cases: Vec<(String, &str)> = vec![
        (
            "Nginx".into(),
            r#"invalid image reference "Nginx": repository name must be lowercase"#,
        ),
        (HEX64.into(), "cannot specify 64-byte hexadecimal strings"),
        ("".into(), "the reference is empty"),
        (" nginx".into(), "whitespace"),
        ("https://gcr.io/a".into(), r#"remove the "https://" prefix"#),
        (
            format!("nginx:{}", "t".repeat(129)),
            "tag is 129 characters long, the limit is 128",
        ),
        ("nginx:".into(), "tag after ':' is empty"),
        ("nginx@".into(), "digest after '@' is empty"),
        ("nginx:a+b".into(), r#"invalid tag "a+b""#),
        (
            format!("nginx@sha256:{}", &HEX64[..63]),
            "exactly 64 lowercase hex characters",
        ),
        ("nginx@sha384:00".into(), "unsupported algorithm"),
        (
            format!("a/{}", "b".repeat(254)),
            "repository name is 256 characters long, the limit is 255",
        ),
        (
            "a___b".into(),
            r#"invalid repository path component "a___b""#,
        ),
        ("nginx//x".into(), "empty component"),
        ("host:0/a".into(), r#"invalid registry host "host:0""#),
        ("::1/a".into(), "IPv6"),
        (":tag".into(), "repository name is empty"),
    ];
    for (input, needle) in cases {
        let msg = err(&input).to_string();
        assert!(msg.contains(needle), "{input:?}: {msg:?} lacks {needle:?}");
        if !input.is_empty() {
            assert!(
                msg.contains(&format!("{input:?}")),
                "{msg:?} does not name {input:?}"
            );
        }
    }
    assert!(matches!(
        err("Nginx"),
        ReferenceError::UppercaseRepository { .. }
    ));
    assert!(matches!(err(HEX64), ReferenceError::ImageId { .. }));
    assert!(matches!(
        err("nginx@sha256:00"),
        ReferenceError::InvalidDigest {
            source: crate::DigestError::BadEncoding { .. },
            ..
        }
    ));
}

#[test]
fn pins_what_the_user_wrote() {
    let d = sha256();
    assert_eq!(
        parse("nginx:1.25").pinned(&d),
        format!("nginx:1.25@sha256:{HEX64}")
    );
    assert_eq!(parse("nginx").pinned(&d), format!("nginx@sha256:{HEX64}"));
    let already = format!("nginx:1.25@sha256:{}", "f".repeat(64));
    assert_eq!(parse(&already).pinned(&d), already);
}

#[test]
fn with_digest_keeps_the_name_and_tag() {
    let d = sha256();
    let r = parse("localhost:5000/a/b:c").with_digest(d.clone());
    assert_eq!(
        r.as_written(),
        format!("localhost:5000/a/b:c@sha256:{HEX64}")
    );
    assert_eq!(r.registry(), "localhost:5000");
    assert_eq!(r.repository(), "a/b");
    assert_eq!(r.tag(), Some("c"));
    assert_eq!(r.digest(), Some(&d));
    assert_eq!(parse(r.as_written()), r);

    let replaced = parse(&format!("nginx@sha256:{}", "f".repeat(64))).with_digest(d.clone());
    assert_eq!(replaced.as_written(), format!("nginx@sha256:{HEX64}"));
}

#[test]
fn equality_follows_normalization() {
    use std::collections::HashSet;
    let same = [
        "nginx",
        "nginx:latest",
        "docker.io/nginx",
        "index.docker.io/library/nginx:latest",
    ];
    let set: HashSet<ImageReference> = same.iter().map(|s| parse(s)).collect();
    assert_eq!(set.len(), 1);
    assert_ne!(parse("nginx"), parse("nginx:1"));
    assert_ne!(
        parse(&format!("nginx@sha256:{HEX64}")),
        parse(&format!("nginx:latest@sha256:{HEX64}"))
    );
    for s in same {
        let r = parse(s);
        assert_eq!(parse(&r.normalized()), r);
    }
}

#[test]
fn from_str_and_serde_use_the_written_form() {
    let r: Result<ImageReference, _> = "nginx:1.25".parse();
    assert_eq!(r.as_ref().map(ImageReference::as_written), Ok("nginx:1.25"));
    let json = serde_json::to_string(&parse("nginx:1.25")).ok();
    assert_eq!(json.as_deref(), Some(r#""nginx:1.25""#));
    let back = serde_json::from_str::<ImageReference>(r#""nginx:1.25""#);
    assert_eq!(
        back.ok().as_ref().map(ImageReference::as_written),
        Some("nginx:1.25")
    );
    match serde_json::from_str::<ImageReference>(r#""Nginx""#) {
        Ok(r) => panic!("deserialized an invalid reference: {r}"),
        Err(e) => assert!(e.to_string().contains("must be lowercase"), "{e}"),
    }
}
