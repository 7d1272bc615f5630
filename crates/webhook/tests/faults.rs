//! Registry faults end to end through `tagpin review`: a misbehaving registry the test
//! controls, one scenario per fault. Each answer must arrive before the admission deadline,
//! deny in enforce mode naming the cause, admit with a warning in warn mode, and never pin a
//! digest the registry did not confirm.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{Server, pod, review};
use tagpin_e2e::fake_registry::{
    DIGEST_A, FakeRegistry, MANIFEST, MANIFEST_TYPE, Reply, http, is_head,
};

/// tagpin's admission deadline in these tests; the resolver gives up a little earlier.
const DEADLINE_SECONDS: u64 = 5;

/// What the fake registry answers to a manifest request line.
type Script = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

/// Starts a fake plain-HTTP registry answering manifest requests with `script`.
async fn fake_registry(script: Script) -> String {
    FakeRegistry::start(Arc::new(move |_, line| script(line)))
        .await
        .addr
}

/// One fault: where the registry is, whether it speaks plain HTTP, and what the denial must say.
struct Fault {
    name: &'static str,
    registry: String,
    plain_http: bool,
    cause: &'static [&'static str],
}

async fn scripted(name: &'static str, cause: &'static [&'static str], script: Script) -> Fault {
    Fault {
        name,
        registry: fake_registry(script).await,
        plain_http: true,
        cause,
    }
}

/// Runs `tagpin review` for a Pod of `registry/team/app:1.0` in `namespace` (`apps` enforces,
/// `relaxed` warns) and returns the response and how long the answer took.
async fn review_through_tagpin(fault: &Fault, namespace: &str) -> (serde_json::Value, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tagpin.yaml");
    std::fs::write(
        &config,
        format!(
            "deadlineSeconds: {DEADLINE_SECONDS}\nnamespaces:\n  relaxed: warn\nresolver:\n  registries:\n    \"{}\": {{plainHttp: {}}}\n  timeouts: {{deadlineSeconds: 3, connectSeconds: 2, readSeconds: 10}}\n",
            fault.registry, fault.plain_http
        ),
    )
    .unwrap();
    let mut body = review(
        "Pod",
        "",
        "CREATE",
        pod(&[&format!("{}/team/app:1.0", fault.registry)]),
    );
    body["request"]["namespace"] = namespace.into();
    let input = dir.path().join("review.json");
    std::fs::write(&input, serde_json::to_vec(&body).unwrap()).unwrap();
    let mut cmd = tokio::process::Command::from(common::tagpin());
    cmd.arg("review").arg("--config").arg(&config).arg(&input);
    let started = Instant::now();
    let out = cmd.output().await.unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}: {}",
        fault.name,
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (answer["response"].clone(), took)
}

/// The patch as text (empty without one).
fn patch_text(response: &serde_json::Value) -> String {
    response["patch"]
        .as_str()
        .map(|p| {
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(p).unwrap()).unwrap()
        })
        .unwrap_or_default()
}

async fn check(fault: Fault) {
    let bound = Duration::from_secs(DEADLINE_SECONDS + 3);
    let (enforce, warn) = tokio::join!(
        review_through_tagpin(&fault, "apps"),
        review_through_tagpin(&fault, "relaxed")
    );
    let name = fault.name;

    let (response, took) = enforce;
    assert!(took < bound, "{name}: enforce answered after {took:?}");
    assert_eq!(response["allowed"], false, "{name}: {response}");
    assert_eq!(response["status"]["code"], 403, "{name}: {response}");
    assert!(response.get("patch").is_none(), "{name}: {response}");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains(&fault.registry), "{name}: {message}");
    assert!(
        fault.cause.iter().any(|c| message.contains(c)),
        "{name}: {message} names none of {:?}",
        fault.cause
    );

    let (response, took) = warn;
    assert!(took < bound, "{name}: warn answered after {took:?}");
    assert_eq!(response["allowed"], true, "{name}: {response}");
    let warning = response["warnings"][0].as_str().unwrap();
    assert!(
        fault.cause.iter().any(|c| warning.contains(c)),
        "{name}: {warning}"
    );
    let patch = patch_text(&response);
    assert!(
        !patch.contains("@sha256:"),
        "{name} pinned a digest: {patch}"
    );
    let ops: Vec<serde_json::Value> = serde_json::from_str(&patch).unwrap_or_default();
    assert!(
        ops.iter()
            .all(|op| !op["path"].as_str().unwrap().ends_with("/image")),
        "{name} changed an image: {patch}"
    );
    let records: Vec<serde_json::Value> = ops
        .iter()
        .filter_map(|op| op["value"]["tagpin.dev/images"].as_str())
        .flat_map(|images| serde_json::from_str::<Vec<serde_json::Value>>(images).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{name}: {patch}");
    assert!(records[0].get("digest").is_none(), "{name}: {patch}");
    assert!(records[0]["error"].is_string(), "{name}: {patch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_faults_are_answered_before_the_deadline_and_never_pinned() {
    let mut faults = vec![
        scripted(
            "accepted but never answered",
            &["did not answer within"],
            Arc::new(|_| Reply::Silence),
        )
        .await,
    ];
    for (name, status, cause) in [
        (
            "500 forever",
            "500 Internal Server Error",
            &["answered 500"][..],
        ),
        ("502 forever", "502 Bad Gateway", &["answered 502"][..]),
        (
            "503 forever",
            "503 Service Unavailable",
            &["answered 503"][..],
        ),
    ] {
        faults.push(
            scripted(
                name,
                cause,
                Arc::new(move |line| http(status, &[], b"", is_head(line))),
            )
            .await,
        );
    }
    faults.push(
        scripted(
            "429 with Retry-After beyond the deadline",
            &["retry after 60.0s"],
            Arc::new(|line| {
                http(
                    "429 Too Many Requests",
                    &[("Retry-After", "60".into())],
                    b"",
                    is_head(line),
                )
            }),
        )
        .await,
    );
    faults.push(
        scripted(
            "401 on every attempt",
            &["unauthorized"],
            Arc::new(|line| {
                http(
                    "401 Unauthorized",
                    &[("WWW-Authenticate", r#"Basic realm="fake""#.into())],
                    b"",
                    is_head(line),
                )
            }),
        )
        .await,
    );
    faults.push(
        scripted(
            "malformed digest header",
            &["Docker-Content-Digest"],
            Arc::new(|_| {
                http(
                    "200 OK",
                    &[("Docker-Content-Digest", "sha256:abc".into())],
                    b"",
                    true,
                )
            }),
        )
        .await,
    );
    faults.push(
        scripted(
            "HEAD digest differs from the body's",
            &["does not match"],
            Arc::new(|line| {
                if is_head(line) {
                    http(
                        "200 OK",
                        &[("Content-Type", MANIFEST_TYPE.into())],
                        b"",
                        true,
                    )
                } else {
                    http(
                        "200 OK",
                        &[("Docker-Content-Digest", DIGEST_A.into())],
                        MANIFEST.as_bytes(),
                        false,
                    )
                }
            }),
        )
        .await,
    );
    faults.push(
        scripted(
            "oversized manifest",
            &["larger than"],
            Arc::new(|line| {
                http(
                    "200 OK",
                    &[("Content-Type", MANIFEST_TYPE.into())],
                    &vec![b' '; 5 * 1024 * 1024],
                    is_head(line),
                )
            }),
        )
        .await,
    );
    faults.push(
        scripted(
            "redirect loop",
            &["redirect"],
            Arc::new(|line| {
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                http(
                    "307 Temporary Redirect",
                    &[("Location", path)],
                    b"",
                    is_head(line),
                )
            }),
        )
        .await,
    );
    faults.push(
        scripted(
            "connection dropped mid-body",
            &["sent an invalid answer", "unreachable"],
            Arc::new(|line| {
                if is_head(line) {
                    http("200 OK", &[], b"", true)
                } else {
                    let mut bytes = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: {MANIFEST_TYPE}\r\nContent-Length: 5000\r\n\r\n"
                    )
                    .into_bytes();
                    bytes.extend_from_slice(&MANIFEST.as_bytes()[..40]);
                    Reply::Raw(bytes)
                }
            }),
        )
        .await,
    );
    let refused_addr = FakeRegistry::refusing().addr;
    faults.push(Fault {
        name: "refused connection",
        registry: refused_addr,
        plain_http: true,
        cause: &["unreachable"],
    });
    // A TLS endpoint whose certificate comes from a CA tagpin was never told about.
    let stranger = Server::start("");
    faults.push(Fault {
        name: "certificate from an unknown CA",
        registry: stranger.addr.to_string(),
        plain_http: false,
        cause: &["is not trusted"],
    });

    // Two faults at a time: each runs two `tagpin review` processes on a shared machine.
    let mut faults = faults.into_iter();
    loop {
        let batch: Vec<_> = faults.by_ref().take(2).map(check).collect();
        if batch.is_empty() {
            break;
        }
        futures::future::join_all(batch).await;
    }
}
