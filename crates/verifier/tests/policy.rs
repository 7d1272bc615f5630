//! Policies are validated at load time with messages naming the problem.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;

fn err(yaml: &str) -> String {
    match try_policy(yaml) {
        Ok(_) => panic!("policy accepted:\n{yaml}"),
        Err(e) => e,
    }
}

const BASE: &str = r#"
noMatch: deny
trustRoots:
  test:
    trustedRoot: "$FIXTURES/trusted_root.json"
rules:
  - name: r
    images: ["**"]
    signatures:
      anyOf:
        - AUTHORITY
"#;

fn with(authority: &str) -> String {
    BASE.replace("AUTHORITY", authority)
}

#[test]
fn valid_policies_compile() {
    policy(&with(
        "key: {file: \"$FIXTURES/cosign.pub\"}\n          tlog: waived",
    ));
    policy(&with(
        "key: {file: \"$FIXTURES/cosign.pub\"}\n          trustRoot: test",
    ));
    policy(&with(
        "keyless: {roots: test, issuer: https://i, subjectRegExp: \"https://github\\\\.com/.*\"}",
    ));
}

#[test]
fn no_match_is_required() {
    assert!(err("rules: []").contains("noMatch"));
}

#[test]
fn invalid_regex_is_rejected() {
    let e = err(&with(
        "keyless: {roots: test, issuer: https://i, subjectRegExp: \"(\"}",
    ));
    assert!(e.contains("subjectRegExp") && e.contains("invalid"), "{e}");
}

#[test]
fn issuer_and_subject_are_both_required() {
    let e = err(&with("keyless: {roots: test, subject: s}"));
    assert!(e.contains("issuer"), "{e}");
}

#[test]
fn bad_pem_key_is_rejected() {
    let e = err(&with("key: {pem: \"not a key\"}\n          tlog: waived"));
    assert!(e.contains("not a PEM public key"), "{e}");
    let e = err(&with(
        "key: {file: \"$FIXTURES/ca-root.pem\"}\n          tlog: waived",
    ));
    assert!(
        e.contains("expected \\\"PUBLIC KEY\\\"") || e.contains("PUBLIC KEY"),
        "{e}"
    );
    let e = err(&with(
        "key: {file: \"/nonexistent/key.pub\"}\n          tlog: waived",
    ));
    assert!(e.contains("cannot read public key file"), "{e}");
}

#[test]
fn invalid_cel_is_rejected() {
    let yaml = r#"
noMatch: deny
rules:
  - name: r
    images: ["**"]
    attestations:
      - predicateType: https://slsa.dev/provenance/v1
        conditions: ["predicate.builder.id =="]
        signedBy:
          anyOf:
            - key: {file: "$FIXTURES/cosign.pub"}
              tlog: waived
"#;
    let e = err(yaml);
    assert!(e.contains("invalid CEL condition"), "{e}");
    let e = err(&yaml.replace("predicate.builder.id ==", "image == 'x'"));
    assert!(e.contains("only `predicate`"), "{e}");
}

#[test]
fn tlog_required_without_log_keys_is_rejected() {
    let e = err(&with("key: {file: \"$FIXTURES/cosign.pub\"}"));
    assert!(e.contains("tlog: waived"), "{e}");
}

#[test]
fn threshold_and_combinations_are_checked() {
    let yaml = r#"
noMatch: deny
rules:
  - name: r
    images: ["**"]
    signatures:
      threshold:
        count: 3
        of:
          - key: {file: "$FIXTURES/cosign.pub"}
            tlog: waived
"#;
    assert!(err(yaml).contains("threshold count 3"));
    let both = yaml.replace("      threshold:", "      anyOf: []\n      threshold:");
    assert!(err(&both).contains("exactly one of anyOf, allOf or threshold"));
}

#[test]
fn unknown_trust_root_and_fields_are_rejected() {
    let e = err(&with("keyless: {roots: nope, issuer: i, subject: s}"));
    assert!(e.contains("\"nope\" is not defined"), "{e}");
    let e = err(&with(
        "key: {file: \"$FIXTURES/cosign.pub\"}\n          tlg: waived",
    ));
    assert!(e.contains("unknown field"), "{e}");
}

/// The examples of the policy documentation, with fixture files for paths.
#[test]
fn documented_examples_compile() {
    let keyed = r#"
noMatch: deny
equivalentRepositories:
  - [registry.example.com/team/app, mirror.example.com/team/app]
rules:
  - name: team-images
    images: ["registry.example.com/team/**"]
    signatures:
      anyOf:
        - key: {file: "$FIXTURES/cosign.pub"}
          tlog: waived
          annotations: {env: prod}
"#;
    let keyless = r#"
noMatch: warn
trustRoots:
  public-good:
    trustedRoot: "$FIXTURES/conformance/trusted_root.public_good.json"
  corp:
    caFile: "$FIXTURES/ca-root.pem"
rules:
  - name: github-releases
    images: ["ghcr.io/org/*"]
    signatures:
      anyOf:
        - keyless:
            roots: public-good
            issuer: https://token.actions.githubusercontent.com
            subjectRegExp: 'https://github\.com/org/[^/]+/\.github/workflows/release\.yml@refs/tags/v.*'
        - keyless:
            roots: corp
            issuerRegExp: 'https://idp\.corp\.example/.*'
            subject: builder@corp.example
          tlog: waived
"#;
    let attestation = r#"
noMatch: deny
trustRoots:
  public-good: {trustedRoot: "$FIXTURES/conformance/trusted_root.public_good.json"}
rules:
  - name: provenance
    images: ["registry.example.com/**"]
    signatures:
      anyOf:
        - key: {file: "$FIXTURES/cosign.pub"}
          trustRoot: public-good
    attestations:
      - predicateType: https://slsa.dev/provenance/v1
        conditions:
          - predicate.runDetails.builder.id == "https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main"
        signedBy:
          anyOf:
            - keyless:
                roots: public-good
                issuer: https://token.actions.githubusercontent.com
                subject: https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main
"#;
    for yaml in [keyed, keyless, attestation] {
        policy(yaml);
    }
}

const TWO_AUTHORITIES: &str = r#"
noMatch: deny
trustRoots:
  test:
    trustedRoot: "$FIXTURES/trusted_root.json"
rules:
  - name: r
    images: ["**"]
    signatures:
      threshold:
        count: 2
        of:
          - FIRST
          - SECOND
"#;

fn two(first: &str, second: &str) -> String {
    TWO_AUTHORITIES
        .replace("FIRST", first)
        .replace("SECOND", second)
}

/// A signer listed twice would let one signature count twice: refused, with
/// the line of the repeated entry when the text repeats it.
#[test]
fn a_signer_listed_twice_is_refused_with_its_line() {
    let key = "key: {file: \"$FIXTURES/cosign.pub\"}\n            tlog: waived";
    let e = err(&two(key, key));
    assert!(e.contains("authority #2 repeats authority #1"), "{e}");
    assert!(e.contains("line 15"), "{e}");
    let identity = "keyless: {roots: test, issuer: https://i, subject: s}";
    let e = err(
        &two(identity, identity).replace("threshold:\n        count: 2\n        of:", "allOf:")
    );
    assert!(e.contains("repeats authority #1"), "{e}");
    // The same key written inline and as a file is the same signer.
    let pem = serde_json::to_string(&fixture_text("cosign.pub")).unwrap();
    let inline = format!("key: {{pem: {pem}}}\n            tlog: waived");
    let e = err(&two(key, &inline));
    assert!(
        e.contains("authorities #1 and #2 are the same signer"),
        "{e}"
    );
    // The same key with other annotations asks for another signature: allowed.
    let annotated = format!("{key}\n            annotations: {{env: prod}}");
    policy(&two(key, &annotated));
    // So are an exact subject and a regex that may match it: each needs a
    // signature of its own at verification time.
    let regex = "keyless: {roots: test, issuer: https://i, subjectRegExp: \".*\"}";
    policy(&two(identity, regex));
}

/// A rule may require attestations only; its signers are the attestations'.
#[test]
fn a_rule_with_only_attestations_is_valid() {
    policy(
        r#"
noMatch: deny
rules:
  - name: r
    images: ["**"]
    attestations:
      - predicateType: https://slsa.dev/provenance/v1
        signedBy:
          anyOf:
            - key: {file: "$FIXTURES/cosign.pub"}
              tlog: waived
"#,
    );
    let e = err(
        "noMatch: deny\nrules:\n  - name: r\n    images: [\"**\"]\n    attestations:\n      - predicateType: t\n",
    );
    assert!(e.contains("signedBy"), "{e}");
}
