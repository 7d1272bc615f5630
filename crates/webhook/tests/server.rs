//! `tagpin serve` over real TLS: routes, HTTP/2, body limits, certificate rotation, drain.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{DIGEST, Server, ca_of, client_for, make_certs, make_certs_with, pod, review};
use reqwest::StatusCode;

#[tokio::test]
async fn serves_health_readiness_and_metrics_over_http1_and_http2() {
    let server = Server::start("");
    let h2 = server.client().build().unwrap();
    let r = h2.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let h1 = server.client().http1_only().build().unwrap();
    let r = h1.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.version(), reqwest::Version::HTTP_11);

    let body = review("Pod", "", "CREATE", pod(&[&format!("nginx:1.25@{DIGEST}")]));
    let r = h2
        .post(server.url("/mutate"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let answer: serde_json::Value = r.json().await.unwrap();
    assert_eq!(answer["response"]["uid"], "e2e-uid");
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"].get("patch").is_none());

    let metrics = h1
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"tagpin_admission_requests_total{kind="Pod",outcome="unchanged"} 1"#),
        "{metrics}"
    );
    for name in [
        "tagpin_admission_duration_seconds_bucket",
        "tagpin_admission_in_flight",
        "tagpin_resolver_cache_hits_total",
        "tagpin_resolver_cache_misses_total",
        "tagpin_registry_requests_total",
        r#"tagpin_image_verdicts_total{verdict="not-verified"} 1"#,
    ] {
        assert!(metrics.contains(name), "{name} missing from {metrics}");
    }
    // An admission that changed nothing is counted above but logged only at debug.
    let log = server.log();
    assert!(log.contains("serving admission reviews"), "{log}");
    assert!(!log.contains(r#""uid":"e2e-uid""#), "{log}");
    // Ready only after the one-time work of a first request was done ahead of it.
    let warmed = log.find("warmed up: crypto, TLS, registry clients");
    let ready = log.find("ready to admit");
    assert!(
        warmed.is_some() && ready.is_some() && warmed < ready,
        "{log}"
    );
}

#[tokio::test]
async fn denies_an_invalid_reference_with_the_reason() {
    let server = Server::start("");
    let client = server.client().build().unwrap();
    let body = review("Pod", "", "CREATE", pod(&["Nginx:1.25"]));
    let r = client
        .post(server.url("/mutate"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let answer: serde_json::Value = r.json().await.unwrap();
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(answer["response"]["status"]["code"], 403);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("Nginx:1.25") && message.contains("lowercase"),
        "{message}"
    );
}

#[tokio::test]
async fn rejects_malformed_and_oversized_bodies_and_keeps_serving() {
    let server = Server::start("  maxBodyBytes: 65536\n");
    for client in [
        server.client().build().unwrap(),
        server.client().http1_only().build().unwrap(),
    ] {
        let r = client
            .post(server.url("/mutate"))
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("not a valid admission.k8s.io/v1 AdmissionReview")
        );

        let r = client
            .post(server.url("/mutate"))
            .body(vec![b' '; 200_000])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(r.text().await.unwrap().contains("65536"));

        let r = client.get(server.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = client.get(server.url("/nope")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = client.get(server.url("/mutate")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}

#[tokio::test]
async fn rotated_certificate_is_served_without_failing_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    make_certs(&first);
    make_certs(&second);
    let tls = dir.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    for f in ["ca.crt", "tls.crt", "tls.key"] {
        std::fs::copy(first.join(f), tls.join(f)).unwrap();
    }
    let server = Server::start_in(dir, "");
    let trusting_both = client_for(server.addr, [ca_of(&first), ca_of(&second)])
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let trusting_second = client_for(server.addr, [ca_of(&second)])
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    assert!(
        trusting_second
            .get(server.url("/healthz"))
            .send()
            .await
            .is_err()
    );

    // Key first, then certificate: for a moment the files do not match, and the server
    // must keep serving the previous pair.
    for f in ["tls.key", "tls.crt"] {
        let tmp = tls.join(format!(".{f}.new"));
        std::fs::copy(second.join(f), &tmp).unwrap();
        std::fs::rename(&tmp, tls.join(f)).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut requests = 0;
    loop {
        let r = trusting_both.get(server.url("/healthz")).send().await;
        assert_eq!(
            r.unwrap().status(),
            StatusCode::OK,
            "request {requests} failed during rotation"
        );
        requests += 1;
        if trusting_second
            .get(server.url("/healthz"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rotated certificate not served after {requests} requests"
        );
    }
    assert!(server.log().contains("reloaded the serving certificate"));
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests() {
    // A registry that accepts connections and never answers keeps the request in flight
    // until tagpin's own deadline.
    let blackhole = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blackhole.local_addr().unwrap().port();
    let mut server = Server::start("deadlineSeconds: 2\n");
    let client = server.client().build().unwrap();
    let body = review(
        "Pod",
        "",
        "CREATE",
        pod(&[&format!("127.0.0.1:{port}/stuck:1")]),
    );
    let url = server.url("/mutate");
    let pending = tokio::spawn(async move { client.post(url).json(&body).send().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.terminate();
    let r = pending.await.unwrap().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let answer: serde_json::Value = r.json().await.unwrap();
    assert_eq!(answer["response"]["allowed"], false);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("stuck:1"), "{message}");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("tagpin serve did not exit");
    assert!(status.success(), "{status:?}");
    drop(blackhole);
}

#[tokio::test]
async fn client_ca_requires_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    make_certs_with(&tls, &["--client", "kube-apiserver"]);
    let extra = format!("  clientCaFile: {}\n", tls.join("ca.crt").display());
    let server = Server::start_in(dir, &extra);
    let anonymous = server.client().build().unwrap();
    assert!(anonymous.get(server.url("/healthz")).send().await.is_err());
    let mut pem = std::fs::read(tls.join("client.crt")).unwrap();
    pem.extend(std::fs::read(tls.join("client.key")).unwrap());
    let identified = server
        .client()
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let r = identified.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn config_changes_apply_without_a_restart() {
    let server = Server::start("");
    let client = server.client().build().unwrap();
    let body = review("Pod", "", "CREATE", pod(&["Bad:Ref"]));
    let allowed = |client: reqwest::Client, body: serde_json::Value, url: String| async move {
        let r = client.post(url).json(&body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let answer: serde_json::Value = r.json().await.unwrap();
        answer["response"]["allowed"].as_bool().unwrap()
    };
    assert!(!allowed(client.clone(), body.clone(), server.url("/mutate")).await);

    let config = server.dir.path().join("tagpin.yaml");
    let original = std::fs::read_to_string(&config).unwrap();
    // A broken file keeps the running config.
    std::fs::write(&config, format!("{original}defaultMode: sometimes\n")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.log().contains("keeping the running config") {
        assert!(
            Instant::now() < deadline,
            "broken config not reported: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!allowed(client.clone(), body.clone(), server.url("/mutate")).await);

    std::fs::write(&config, format!("{original}defaultMode: warn\n")).unwrap();
    while !allowed(client.clone(), body.clone(), server.url("/mutate")).await {
        assert!(
            Instant::now() < deadline,
            "warn mode not applied: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.log().contains("reloaded the config"));
}

/// Answers enforce and warn requests beyond `server.maxConcurrentReviews` at once as
/// overloaded, while the ones holding a slot run to their deadline.
#[tokio::test]
async fn excess_reviews_are_answered_at_once_as_overloaded() {
    // A registry that accepts connections and never answers holds every slot to its deadline.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let registry = silent.local_addr().unwrap();
    let server = Server::start(&format!(
        "  maxConcurrentReviews: 2\ndeadlineSeconds: 4\nnamespaces:\n  relaxed: warn\nresolver:\n  registries:\n    \"{registry}\": {{plainHttp: true}}\n  timeouts: {{deadlineSeconds: 25, connectSeconds: 25, readSeconds: 25}}\n"
    ));
    let client = server.client().build().unwrap();
    let slow_review = |uid: &str, namespace: &str| {
        let mut body = review(
            "Pod",
            "",
            "CREATE",
            pod(&[&format!("{registry}/team/app:1")]),
        );
        body["request"]["uid"] = uid.into();
        body["request"]["namespace"] = namespace.into();
        let request = client.post(server.url("/mutate")).json(&body);
        async move {
            let started = Instant::now();
            let answer: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
            (answer, started.elapsed())
        }
    };
    let first = tokio::spawn(slow_review("first-0", "apps"));
    let second = tokio::spawn(slow_review("first-1", "apps"));
    let metrics = |client: reqwest::Client, url: String| async move {
        client.get(url).send().await.unwrap().text().await.unwrap()
    };
    let until = Instant::now() + Duration::from_secs(20);
    while !metrics(client.clone(), server.url("/metrics"))
        .await
        .contains("tagpin_admission_in_flight 2")
    {
        assert!(
            Instant::now() < until,
            "the first reviews never took their slots"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let excess: Vec<_> = (0..6)
        .map(|i| {
            let namespace = if i % 2 == 0 { "apps" } else { "relaxed" };
            tokio::spawn(slow_review(&format!("excess-{i}"), namespace))
        })
        .collect();
    for (i, task) in excess.into_iter().enumerate() {
        let (answer, elapsed) = task.await.unwrap();
        let response = &answer["response"];
        assert_eq!(response["uid"], format!("excess-{i}"));
        assert!(
            elapsed < Duration::from_secs(2),
            "excess-{i} waited {elapsed:?}, not answered at once"
        );
        assert!(response.get("patch").is_none(), "{answer}");
        if i % 2 == 0 {
            assert_eq!(response["allowed"], false, "{answer}");
            let message = response["status"]["message"].as_str().unwrap();
            assert!(message.contains("overloaded"), "{message}");
        } else {
            assert_eq!(response["allowed"], true, "{answer}");
            let warning = response["warnings"][0].as_str().unwrap();
            assert!(warning.contains("overloaded"), "{warning}");
            assert!(warning.contains("warn mode"), "{warning}");
        }
    }

    for task in [first, second] {
        let (answer, elapsed) = task.await.unwrap();
        let response = &answer["response"];
        assert_eq!(response["allowed"], false, "{answer}");
        let message = response["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("not resolved within tagpin's 4s admission deadline"),
            "{message}"
        );
        assert!(!message.contains("overloaded"), "{message}");
        assert!(
            elapsed >= Duration::from_secs(3) && elapsed < Duration::from_secs(10),
            "answered after {elapsed:?}"
        );
    }
    let metrics = metrics(client.clone(), server.url("/metrics")).await;
    assert!(
        metrics.contains(r#"tagpin_admission_requests_total{kind="Pod",outcome="overloaded"} 6"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"tagpin_admission_requests_total{kind="Pod",outcome="denied"} 2"#),
        "{metrics}"
    );
    drop(silent);
}

/// A hand-written ClientHello offering only `version` (no supported_versions extension).
fn client_hello(version: [u8; 2]) -> Vec<u8> {
    let mut body = version.to_vec();
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0, 4, 0x00, 0x2f, 0xc0, 0x13]); // two CBC suites of that era
    body.extend_from_slice(&[1, 0]); // null compression
    let mut handshake = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
    handshake.extend_from_slice(&body);
    let mut record = vec![
        0x16,
        3,
        1,
        (handshake.len() >> 8) as u8,
        handshake.len() as u8,
    ];
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test]
async fn only_tls_1_2_and_1_3_are_spoken() {
    use std::io::{Read, Write};
    let server = Server::start("");
    for version in [[3, 1], [3, 2]] {
        let mut tcp = std::net::TcpStream::connect(server.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tcp.write_all(&client_hello(version)).unwrap();
        let mut answer = [0u8; 7];
        tcp.read_exact(&mut answer).unwrap();
        // A fatal alert, not a ServerHello.
        assert_eq!(
            answer[0], 0x15,
            "TLS {version:?} was not refused: {answer:?}"
        );
        assert_eq!(answer[5], 2, "{answer:?}");
    }
    for version in [
        reqwest::tls::Version::TLS_1_2,
        reqwest::tls::Version::TLS_1_3,
    ] {
        let client = server
            .client()
            .min_tls_version(version)
            .max_tls_version(version)
            .build()
            .unwrap();
        let r = client.get(server.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{version:?}");
    }
}
