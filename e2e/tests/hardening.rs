//! Secrets never leak: canary passwords planted in pull secrets (read from the real API
//! server) and in `resolver.dockerConfig` appear nowhere in what tagpin writes — its debug
//! log, its AdmissionReview answers (messages, warnings, annotations, audit annotations,
//! patches) and its metrics — neither as written nor base64-encoded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tagpin_e2e::cluster::{TestNamespace, client};
use tagpin_e2e::registry::unique_suffix;
use tagpin_e2e::tagpin::{KubeAccess, Tagpin, TagpinConfig};
use tagpin_e2e::{PushedImage, TestRegistry};

fn pod_review(namespace: &str, image: &str, pull_secrets: &[&str]) -> Value {
    let secrets: Vec<Value> = pull_secrets.iter().map(|s| json!({"name": s})).collect();
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("uid-{}", unique_suffix()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "p",
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "e2e"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "namespace": namespace},
                "spec": {
                    "containers": [{"name": "c", "image": image}],
                    "imagePullSecrets": secrets,
                },
            },
            "dryRun": false,
        }
    })
}

fn basic(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

fn dockerconfigjson(auths: Value) -> Secret {
    serde_json::from_value(json!({
        "metadata": {"name": "placeholder"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": json!({"auths": auths}).to_string()},
    }))
    .unwrap()
}

/// Every form in which `secret` could be written: as is, and base64 (standard and URL-safe)
/// at each of the three byte alignments, without the edge characters that depend on
/// neighbouring bytes.
fn encodings(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    for engine in [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
    ] {
        for pad in ["", "a", "ab"] {
            let encoded = engine.encode(format!("{pad}{secret}"));
            let start = if pad.is_empty() { 0 } else { 4 };
            forms.push(encoded[start..encoded.len() - 4].to_owned());
        }
    }
    forms
}

/// `text` with every base64 JSON patch in it decoded and appended.
fn with_decoded_patch(answer: &str) -> String {
    let value: Value = serde_json::from_str(answer).unwrap();
    let mut text = answer.to_owned();
    if let Some(patch) = value["response"]["patch"].as_str() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .unwrap();
        text.push('\n');
        text.push_str(&String::from_utf8(bytes).unwrap());
    }
    text
}

#[tokio::test]
async fn planted_credentials_appear_nowhere_tagpin_writes() {
    let registry = TestRegistry::tls();
    let (user, real_password) = registry.credentials.clone().unwrap();
    let suffix = unique_suffix();
    let canary = format!("Canary-{suffix}-Pw9xQ");
    let config_canary = format!("ConfigCanary-{suffix}-Zt4k");
    let repo = format!("e2e/secret-{suffix}");
    let image: PushedImage = registry.push_image(&repo, "1.0", "secret").await.unwrap();

    let client = client().await;
    let enforce = TestNamespace::create(&client, "e2e", &[]).await;
    let warn = TestNamespace::create(&client, "e2e", &[]).await;
    for ns in [&enforce.name, &warn.name] {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let plant = |name: &str, auths: Value| {
            let mut s = dockerconfigjson(auths);
            s.metadata.name = Some(name.to_owned());
            s
        };
        for secret in [
            // The registry's user with the canary as password: authentication fails.
            plant(
                "wrongcred",
                json!({&registry.host: {"auth": basic(&user, &canary)}}),
            ),
            // The right password for the registry, the canary for another host.
            plant(
                "goodcred",
                json!({
                    &registry.host: {"auth": basic(&user, &real_password)},
                    "canary.example": {"username": user, "password": canary},
                }),
            ),
            // Unusable: `auth` is not base64 of user:password.
            plant(
                "brokencred",
                json!({&registry.host: {"auth": canary, "password": canary}}),
            ),
        ] {
            secrets
                .create(&PostParams::default(), &secret)
                .await
                .unwrap();
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let docker_config = dir.path().join("docker-config.json");
    std::fs::write(
        &docker_config,
        json!({"auths": {&registry.host: {"auth": basic(&user, &config_canary)}}}).to_string(),
    )
    .unwrap();
    let tagpin = Tagpin::start(TagpinConfig {
        extra: format!("namespaces:\n  {}: warn\n", warn.name),
        docker_config: Some(docker_config.clone()),
        cache_ttl_seconds: Some(0.0),
        kube: KubeAccess::Admin,
        log_level: Some("debug".to_owned()),
        ..TagpinConfig::default()
    })
    .await;

    let pinned = format!("{}@{}", image.reference, image.digest);
    let mut written = Vec::new();
    for (ns, enforcing) in [(&enforce.name, true), (&warn.name, false)] {
        for (secrets, admitted) in [
            (&["wrongcred"][..], false),
            (&["goodcred"][..], true),
            (&["brokencred"][..], false),
            (&["garbledcred"][..], false),
            // No pull secret: the configured docker config, with its own canary.
            (&[][..], false),
        ] {
            let answer = tagpin
                .review_text(&pod_review(ns, &image.reference, secrets))
                .await;
            let text = with_decoded_patch(&answer);
            let value: Value = serde_json::from_str(&answer).unwrap();
            let response = &value["response"];
            if admitted {
                assert_eq!(response["allowed"], true, "{secrets:?}: {answer}");
                assert!(text.contains(&pinned), "{secrets:?}: {text}");
            } else if enforcing {
                assert_eq!(response["allowed"], false, "{secrets:?}: {answer}");
                let message = response["status"]["message"].as_str().unwrap();
                assert!(message.contains("unauthorized"), "{secrets:?}: {message}");
            } else {
                assert_eq!(response["allowed"], true, "{secrets:?}: {answer}");
                assert!(response["warnings"][0].is_string(), "{secrets:?}: {answer}");
                assert!(!text.contains(&pinned), "{secrets:?}: {text}");
            }
            written.push(text);
        }
    }
    let metrics = tagpin
        .client()
        .build()
        .unwrap()
        .get(tagpin.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tagpin_admission_requests_total"),
        "{metrics}"
    );
    written.push(metrics);
    let log = tagpin.log();
    // The debug log is really at debug level and saw the failed authentications.
    assert!(log.contains(r#""level":"DEBUG""#), "{log}");
    assert!(log.contains("unauthorized"), "{log}");
    assert!(log.contains("ignoring unusable pull secret"), "{log}");
    written.push(log);

    for secret in [&canary, &config_canary, &real_password] {
        for form in encodings(secret) {
            for (i, text) in written.iter().enumerate() {
                assert!(
                    !text.contains(&form),
                    "a planted credential ({form}) leaked into output {i}: {text}"
                );
            }
        }
    }
}
