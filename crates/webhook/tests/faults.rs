//! Registry faults end to end through `tagpin review`: a misbehaving registry the test
//! controls, one scenario per fault. Each answer must arrive before the admission deadline,
//! deny in enforce mode naming the cause, admit with a warning in warn mode, and never pin a
//! digest the registry did not confirm.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{Server, pod, review};
use tagpin_e2e::fake_registry::{FakeRegistry, Script, faults};

/// tagpin's admission deadline in these tests; the resolver gives up a little earlier.
const DEADLINE_SECONDS: u64 = 5;

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
        registry: FakeRegistry::start(script).await.addr,
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
            faults::silence(),
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
        faults.push(scripted(name, cause, faults::status_forever(status)).await);
    }
    faults.push(
        scripted(
            "429 with Retry-After beyond the deadline",
            &["retry after 60.0s"],
            faults::rate_limited("60"),
        )
        .await,
    );
    faults.push(
        scripted(
            "401 on every attempt",
            &["unauthorized"],
            faults::unauthorized(),
        )
        .await,
    );
    faults.push(
        scripted(
            "malformed digest header",
            &["Docker-Content-Digest"],
            faults::malformed_digest("sha256:abc"),
        )
        .await,
    );
    faults.push(
        scripted(
            "HEAD digest differs from the body's",
            &["does not match"],
            faults::contradicting_digest(),
        )
        .await,
    );
    faults.push(
        scripted(
            "oversized manifest",
            &["larger than"],
            faults::oversized_manifest(),
        )
        .await,
    );
    faults.push(scripted("redirect loop", &["redirect"], faults::redirect_loop()).await);
    faults.push(
        scripted(
            "connection dropped mid-body",
            &["sent an invalid answer", "unreachable"],
            faults::dropped_mid_body(),
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
