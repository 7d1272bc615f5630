//! The pin engine with a registry that answers from memory: refusals, idempotence, updates,
//! verification, and the formatting corpus under `tests/fixtures/pin/`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use futures::future::BoxFuture;
use tagpin_resolver::{Digest, ImageReference, Keychain, Resolution, ResolverStats};
use tagpin_verifier::{Outcome as VerdictOutcome, Verdict};

use super::lookup::{Lookups, Mode};
use super::{Input, Outcome, Settings, pin};
use crate::config::Config;
use crate::resolving::{ImageResolver, ResolveFailure};
use crate::verification::ImageVerifier;

/// Resolves every tag to the sha256 of its normalized name (or of a moved name), except the
/// tags in `missing`, and counts lookups.
#[derive(Default)]
pub(super) struct FakeRegistry {
    pub missing: Vec<String>,
    pub moved: Vec<String>,
    pub lookups: Mutex<Vec<String>>,
}

/// The digest the fake registry serves for `image`.
pub(super) fn digest_of(image: &str) -> Digest {
    let normalized = ImageReference::parse(image)
        .map(|r| r.normalized())
        .unwrap_or_default();
    Digest::sha256(normalized.as_bytes())
}

impl ImageResolver for FakeRegistry {
    fn resolve<'a>(
        &'a self,
        image: &'a ImageReference,
        _keychain: &'a Keychain,
    ) -> BoxFuture<'a, Result<Resolution, ResolveFailure>> {
        Box::pin(async move {
            let normalized = image.normalized();
            self.lookups
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(normalized.clone());
            if self.missing.iter().any(|m| *m == image.as_written()) {
                return Err(ResolveFailure {
                    kind: "not_found",
                    message: format!("{}: manifest unknown", image.as_written()),
                });
            }
            let mut digest = digest_of(image.as_written());
            if self.moved.iter().any(|m| *m == image.as_written()) {
                digest = Digest::sha256(format!("moved {normalized}").as_bytes());
            }
            Ok(Resolution {
                image: image.clone(),
                pinned: image.pinned(&digest),
                digest,
                media_type: String::new(),
                resolved_at: SystemTime::now(),
                cached: false,
                source: image.registry().to_owned(),
                confirmed_by: None,
            })
        })
    }

    fn stats(&self) -> Option<ResolverStats> {
        None
    }
}

/// Denies every repository whose name contains `unsigned`.
struct FakeVerifier;

impl ImageVerifier for FakeVerifier {
    fn verify<'a>(
        &'a self,
        image: &'a ImageReference,
        digest: &'a Digest,
        _keychain: &'a Keychain,
    ) -> BoxFuture<'a, Result<Verdict, String>> {
        Box::pin(async move {
            let denied = image.name().contains("unsigned");
            Ok(Verdict {
                outcome: if denied {
                    VerdictOutcome::Failed
                } else {
                    VerdictOutcome::Verified
                },
                rule: "team".to_owned(),
                signers: vec!["sha256:key".to_owned()],
                attestations: Vec::new(),
                reason: denied.then(|| format!("{}@{digest}: no valid signature", image.name())),
            })
        })
    }
}

pub(super) fn lookups(registry: Arc<FakeRegistry>, verify: bool) -> Lookups {
    Lookups {
        resolver: registry,
        verifier: verify.then(|| Arc::new(FakeVerifier) as Arc<dyn ImageVerifier>),
        keychain: Keychain::anonymous(),
        concurrency: 4,
    }
}

pub(super) fn run(texts: &[&str], registry: Arc<FakeRegistry>, mode: Mode) -> Outcome {
    run_with(texts, registry, mode, false)
}

fn run_with(texts: &[&str], registry: Arc<FakeRegistry>, mode: Mode, verify: bool) -> Outcome {
    let inputs: Vec<Input> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| Input {
            name: format!("f{i}.yaml"),
            text: (*t).to_owned(),
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let settings = Settings {
        mode,
        annotate: false,
    };
    runtime.block_on(pin(
        &inputs,
        &Config::default(),
        &lookups(registry, verify),
        settings,
    ))
}

const POD: &str = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: a\n    image: nginx:1.25 # web\n  - name: b\n    image: 'nginx:1.25'\n  - name: c\n    image: docker.io/library/nginx:1.25\n";

#[test]
fn pins_each_distinct_image_once_keeping_style() {
    let registry = Arc::new(FakeRegistry::default());
    let out = run(&[POD], registry.clone(), Mode::Pin);
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let d = digest_of("nginx:1.25");
    assert_eq!(
        out.outputs[0],
        POD.replace("image: nginx:1.25", &format!("image: nginx:1.25@{d}"))
            .replace("'nginx:1.25'", &format!("'nginx:1.25@{d}'"))
            .replace("nginx/nginx:1.25", &format!("nginx/nginx:1.25@{d}"))
            .replace("library/nginx:1.25\n", &format!("library/nginx:1.25@{d}\n"))
    );
    assert_eq!(
        *registry.lookups.lock().unwrap(),
        ["docker.io/library/nginx:1.25"]
    );
    assert_eq!(out.images.len(), 3);
    assert_eq!(out.images[1].field, "/spec/containers/1/image");
    assert_eq!(out.images[1].verdict, "not-verified");
}

#[test]
fn second_run_changes_nothing_and_looks_nothing_up() {
    let first = run(&[POD], Arc::new(FakeRegistry::default()), Mode::Pin);
    let registry = Arc::new(FakeRegistry::default());
    let second = run(&[&first.outputs[0]], registry.clone(), Mode::Pin);
    assert_eq!(second.outputs[0], first.outputs[0]);
    assert!(second.problems.is_empty());
    assert!(registry.lookups.lock().unwrap().is_empty());
    let check = run(
        &[&first.outputs[0]],
        Arc::new(FakeRegistry::default()),
        Mode::Check,
    );
    assert!(check.problems.is_empty(), "{:?}", check.problems);
}

#[test]
fn refuses_every_failure_and_changes_nothing() {
    let registry = Arc::new(FakeRegistry {
        missing: vec!["gone:1".to_owned()],
        ..FakeRegistry::default()
    });
    let text = "kind: Pod\napiVersion: v1\nspec:\n  containers:\n  - image: gone:1\n  - image: Bad:Ref\n  - image: fine:1\n";
    let other = "kind: Pod\napiVersion: v1\nspec: {containers: [{image: fine:2}]}\n";
    let out = run(&[text, other], registry, Mode::Pin);
    assert_eq!(out.problems.len(), 2, "{:?}", out.problems);
    assert!(
        out.problems[0]
            .starts_with("f0.yaml: document 0: /spec/containers/0/image: gone:1: manifest unknown"),
        "{:?}",
        out.problems
    );
    assert!(
        out.problems[1].contains("/spec/containers/1/image"),
        "{:?}",
        out.problems
    );
    assert_eq!(
        out.images[0].error.as_deref(),
        Some("gone:1: manifest unknown")
    );
}

#[test]
fn check_lists_unpinned_images_without_lookups() {
    let registry = Arc::new(FakeRegistry::default());
    let out = run(&[POD], registry.clone(), Mode::Check);
    assert_eq!(out.problems.len(), 3);
    assert!(
        out.problems[0].ends_with("/spec/containers/0/image: nginx:1.25 is not pinned to a digest"),
        "{:?}",
        out.problems
    );
    assert_eq!(out.outputs[0], POD);
    assert!(registry.lookups.lock().unwrap().is_empty());
}

#[test]
fn update_moves_digests_and_reports_them() {
    let old = Digest::sha256(b"old");
    let text = format!(
        "kind: Pod\napiVersion: v1\nspec:\n  containers:\n  - image: \"app:1@{old}\"\n  - image: app@{old}\n"
    );
    let registry = Arc::new(FakeRegistry {
        moved: vec!["app:1".to_owned()],
        ..FakeRegistry::default()
    });
    let out = run(&[&text], registry, Mode::Update);
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let new = Digest::sha256(b"moved docker.io/library/app:1");
    assert!(
        out.outputs[0].contains(&format!("image: \"app:1@{new}\"\n")),
        "{}",
        out.outputs[0]
    );
    // A digest without a tag has nothing to follow.
    assert!(out.outputs[0].contains(&format!("image: app@{old}\n")));
    let moved = out.images[0].moved().unwrap();
    assert!(
        moved.contains(&format!("app:1 moved {old} -> {new}")),
        "{moved}"
    );
    assert!(out.images[1].moved().is_none());
    let plain = run(&[&text], Arc::new(FakeRegistry::default()), Mode::Pin);
    assert_eq!(plain.outputs[0], text, "without --update digests stay");
}

#[test]
fn verification_failures_refuse_and_verdicts_are_reported() {
    let text = "kind: Pod\napiVersion: v1\nspec:\n  containers:\n  - image: signed:1\n  - image: unsigned:1\n";
    let out = run_with(&[text], Arc::new(FakeRegistry::default()), Mode::Pin, true);
    assert_eq!(out.problems.len(), 1, "{:?}", out.problems);
    assert!(
        out.problems[0].contains("no valid signature"),
        "{:?}",
        out.problems
    );
    assert_eq!(out.images[0].verdict, "verified");
    assert_eq!(out.images[0].rule.as_deref(), Some("team"));
    assert_eq!(out.images[0].signers, ["sha256:key"]);
    assert_eq!(out.images[1].verdict, "failed");
}

#[test]
fn refuses_image_fields_it_cannot_rewrite_in_place() {
    let block =
        "kind: Pod\napiVersion: v1\nspec:\n  containers:\n  - image: >-\n      nginx:1.25\n";
    let anchored = "kind: Pod\napiVersion: v1\nspec:\n  containers:\n  - image: &img nginx:1.25\n  - image: *img\n";
    let merged = "kind: Pod\napiVersion: v1\nbase: &base {image: nginx:1.25}\nspec:\n  containers:\n  - <<: *base\n    name: a\n";
    let out = run(
        &[block, anchored, merged],
        Arc::new(FakeRegistry::default()),
        Mode::Pin,
    );
    let problems = out.problems.join("\n");
    assert!(
        problems
            .contains("f0.yaml: document 0: /spec/containers/0/image: the image is a block scalar"),
        "{problems}"
    );
    assert!(
        problems.contains(
            "f1.yaml: document 0: /spec/containers/0/image: the image carries a YAML anchor"
        ),
        "{problems}"
    );
    assert!(
        problems.contains(
            "f1.yaml: document 0: /spec/containers/1/image: the value comes from a YAML alias"
        ),
        "{problems}"
    );
    assert!(
        problems.contains(
            "f2.yaml: document 0: /spec/containers/0/image: the value comes from a YAML alias"
        ),
        "{problems}"
    );
    assert_eq!(out.outputs, [block, anchored, merged]);
}

#[test]
fn unreadable_input_is_a_problem_naming_the_file() {
    let out = run(&["a: [1\n"], Arc::new(FakeRegistry::default()), Mode::Pin);
    assert_eq!(out.problems.len(), 1);
    assert!(
        out.problems[0].starts_with("f0.yaml: not valid YAML"),
        "{:?}",
        out.problems
    );
}

/// The corpus: only image scalars change (removing the digests from the output gives the
/// input back byte for byte), the output is the reviewed golden file, and a second run
/// changes nothing. `TAGPIN_BLESS=1` rewrites the golden files.
#[test]
fn corpus_changes_only_image_scalars() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pin");
    let mut seen = 0;
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| super::discover::is_manifest(p))
        .filter(|p| !p.to_string_lossy().contains(".pinned."))
        .collect();
    names.sort();
    for path in names {
        let text = std::fs::read_to_string(&path).unwrap();
        let out = run(&[&text], Arc::new(FakeRegistry::default()), Mode::Pin);
        assert!(
            out.problems.is_empty(),
            "{}: {:?}",
            path.display(),
            out.problems
        );
        let pinned = &out.outputs[0];
        let mut stripped = pinned.clone();
        for image in out.images.iter().filter(|i| i.changed()) {
            let digest = format!("@{}", image.digest.as_deref().unwrap());
            stripped = stripped.replace(&digest, "");
        }
        assert_eq!(
            stripped,
            text,
            "{}: bytes other than image digests changed",
            path.display()
        );
        assert!(
            out.images.iter().any(|i| i.changed()),
            "{}: nothing pinned",
            path.display()
        );
        let again = run(&[pinned], Arc::new(FakeRegistry::default()), Mode::Pin);
        assert_eq!(
            &again.outputs[0],
            pinned,
            "{}: second run changed it",
            path.display()
        );
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let ext = path.extension().unwrap().to_string_lossy().into_owned();
        let golden = dir.join(format!("{stem}.pinned.{ext}"));
        if std::env::var_os("TAGPIN_BLESS").is_some() {
            std::fs::write(&golden, pinned).unwrap();
        }
        let expected = std::fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("{}: {e} (run with TAGPIN_BLESS=1)", golden.display()));
        assert_eq!(pinned, &expected, "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 10, "corpus has {seen} files");
}

pub(super) fn run_annotated(text: &str, verify: bool) -> Outcome {
    let inputs = [Input {
        name: "app.yaml".to_owned(),
        text: text.to_owned(),
    }];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let settings = Settings {
        mode: Mode::Pin,
        annotate: true,
    };
    let lookups = lookups(Arc::new(FakeRegistry::default()), verify);
    runtime.block_on(pin(&inputs, &Config::default(), &lookups, settings))
}

/// The webhook's answer to creating `object` (a `kind` of `group`) with the same registry.
pub(super) fn admit(
    group: &str,
    kind: &str,
    object: serde_json::Value,
    verify: bool,
) -> serde_json::Value {
    let mut admitter = crate::admission::Admitter::new(
        Arc::new(Config::default()),
        Arc::new(FakeRegistry::default()),
        Arc::new(crate::credentials::Offline::default()),
    );
    if verify {
        admitter = admitter.with_verifier(Arc::new(FakeVerifier));
    }
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u",
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": "things"},
            "name": "web",
            "namespace": "apps",
            "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": object,
            "dryRun": false
        }
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let body = serde_json::to_vec(&review).unwrap();
    let (answer, _) = runtime.block_on(admitter.review(&body)).unwrap();
    serde_json::to_value(answer).unwrap()
}

const APP: &str = "\
# web tier
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}   # selector
spec:
  template:
    spec:
      containers:
      - name: web
        image: ghcr.io/team/web:1.4
      - name: proxy
        image: 'envoy:1.30'
      volumes:
      - name: data
        image: {reference: \"ghcr.io/team/data:3\"}
---
apiVersion: v1
kind: List
items:
- apiVersion: batch/v1
  kind: Job
  metadata:
    name: once
  spec: {template: {spec: {containers: [{name: once, image: busybox:1.36}]}}}
";

#[test]
fn what_pin_writes_the_webhook_admits_unchanged() {
    for (annotate, verify) in [(false, false), (true, false), (true, true)] {
        let out = if annotate {
            run_annotated(APP, verify)
        } else {
            run_with(&[APP], Arc::new(FakeRegistry::default()), Mode::Pin, verify)
        };
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        let docs = super::source::parse_stream(&out.outputs[0]).unwrap();
        let objects = [
            ("apps", "Deployment", docs[0].value.clone()),
            ("batch", "Job", docs[1].value["items"][0].clone()),
        ];
        for (group, kind, object) in objects {
            let answer = admit(group, kind, object.clone(), verify);
            let response = &answer["response"];
            assert_eq!(response["allowed"], true, "{answer}");
            assert!(
                response.get("patch").is_none(),
                "annotate={annotate} verify={verify}: the webhook changed {kind}: {answer}\n{}",
                out.outputs[0]
            );
            let recorded = &object["metadata"]["annotations"]["tagpin.dev/images"];
            assert_eq!(recorded.is_string(), annotate, "{object}");
        }
    }
}

#[test]
fn annotate_writes_the_record_once() {
    let out = run_annotated(APP, true);
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let pinned = &out.outputs[0];
    let docs = super::source::parse_stream(pinned).unwrap();
    let records = crate::admission::record::from_json(
        docs[0].value["metadata"]["annotations"]["tagpin.dev/images"]
            .as_str()
            .unwrap(),
    );
    let paths: Vec<&str> = records.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/spec/template/spec/containers/0/image",
            "/spec/template/spec/containers/1/image",
            "/spec/template/spec/volumes/0/image/reference"
        ]
    );
    assert_eq!(records[0].original, "ghcr.io/team/web:1.4");
    assert_eq!(records[0].verdict, "verified");
    assert!(records[0].resolved_at.is_some());
    // The Job inside the List carries its own record, with paths from the Job.
    let job = &docs[1].value["items"][0];
    let job_records = crate::admission::record::from_json(
        job["metadata"]["annotations"]["tagpin.dev/images"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        job_records[0].path,
        "/spec/template/spec/containers/0/image"
    );
    // Nothing else moved: the inserted lines and the digests are the whole difference.
    assert!(pinned.starts_with("# web tier\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {app: web}   # selector\n  annotations:\n    tagpin.dev/images: '[{"), "{pinned}");
    let again = run_annotated(pinned, true);
    assert_eq!(
        &again.outputs[0], pinned,
        "a second --annotate run changes nothing"
    );
}

#[test]
fn a_resource_list_is_pinned_with_results() {
    let list = "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a, namespace: ns}\n  spec:\n    containers:\n    - {name: a, image: nginx:1.25}\n    - {name: b, image: gone:1}\nfunctionConfig: {kind: Pin}\n";
    let registry = Arc::new(FakeRegistry {
        missing: vec!["gone:1".to_owned()],
        ..FakeRegistry::default()
    });
    let out = run(&[list], registry, Mode::Pin);
    let doc = super::krm::parse(list).unwrap();
    let results = super::krm::results(&doc.value, &out);
    assert_eq!(results.len(), 2, "{results:?}");
    assert_eq!(results[0].severity, "info");
    assert!(
        results[0]
            .message
            .starts_with("pinned nginx:1.25 to nginx:1.25@sha256:"),
        "{results:?}"
    );
    let reference = results[0].resource_ref.as_ref().unwrap();
    assert_eq!(
        (
            reference.kind.as_str(),
            reference.name.as_str(),
            reference.namespace.as_str()
        ),
        ("Pod", "a", "ns")
    );
    assert_eq!(results[1].severity, "error");
    assert_eq!(
        results[1].field.as_ref().unwrap().path,
        "spec.containers[1].image"
    );
    assert!(
        results[1].message.contains("manifest unknown"),
        "{results:?}"
    );
}

/// A registry that takes `delay` per lookup and records the most lookups in flight at once.
struct SlowRegistry {
    inner: FakeRegistry,
    delay: std::time::Duration,
    in_flight: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

impl ImageResolver for SlowRegistry {
    fn resolve<'a>(
        &'a self,
        image: &'a ImageReference,
        keychain: &'a Keychain,
    ) -> BoxFuture<'a, Result<Resolution, ResolveFailure>> {
        use std::sync::atomic::Ordering;
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.inner.resolve(image, keychain).await
        })
    }

    fn stats(&self) -> Option<ResolverStats> {
        None
    }
}

#[test]
fn lookups_run_concurrently_up_to_the_bound_once_per_tag() {
    use std::sync::atomic::Ordering;
    let tags = 64;
    let text: String = (0..tags * 3)
        .map(|i| {
            format!(
                "---\napiVersion: v1\nkind: Pod\nspec: {{containers: [{{name: a, image: app:{}}}]}}\n",
                i % tags
            )
        })
        .collect();
    let registry = Arc::new(SlowRegistry {
        inner: FakeRegistry::default(),
        delay: std::time::Duration::from_millis(25),
        in_flight: Default::default(),
        most: Default::default(),
    });
    let lookups = Lookups {
        resolver: registry.clone(),
        verifier: None,
        keychain: Keychain::anonymous(),
        concurrency: 8,
    };
    let inputs = [Input {
        name: "many.yaml".to_owned(),
        text,
    }];
    let settings = Settings {
        mode: Mode::Pin,
        annotate: false,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let out = runtime.block_on(pin(&inputs, &Config::default(), &lookups, settings));
    let took = started.elapsed();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(out.images.len(), tags * 3);
    assert_eq!(
        registry.inner.lookups.lock().unwrap().len(),
        tags,
        "one lookup per tag"
    );
    assert_eq!(
        registry.most.load(Ordering::SeqCst),
        8,
        "bounded at --concurrency"
    );
    // One at a time would take 64 x 25 ms = 1.6 s; 8 at a time about 0.2 s.
    assert!(
        took < std::time::Duration::from_millis(800),
        "took {took:?}"
    );
}

#[test]
fn shipped_custom_resource_specs_pin_their_images() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let config_path = root.join("examples/tagpin-pin-custom-resources.yaml");
    let config = Config::parse(
        &std::fs::read_to_string(&config_path).unwrap(),
        &config_path,
    )
    .unwrap();
    config.pin.check().unwrap();
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pin/custom-resources/resources.yaml");
    let text = std::fs::read_to_string(fixture).unwrap();
    let inputs = [Input {
        name: "resources.yaml".to_owned(),
        text: text.clone(),
    }];
    let settings = Settings {
        mode: Mode::Pin,
        annotate: false,
    };
    let lookups = lookups(Arc::new(FakeRegistry::default()), false);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let out = runtime.block_on(pin(&inputs, &config, &lookups, settings));
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let found: Vec<String> = out
        .images
        .iter()
        .map(|i| format!("{} {} {}", i.document, i.kind, i.field))
        .collect();
    assert_eq!(
        found,
        [
            "0 Rollout /spec/template/spec/containers/0/image",
            "1 Service /spec/template/spec/containers/0/image",
            "3 Task /spec/steps/0/image",
            "3 Task /spec/sidecars/0/image",
            "3 Task /spec/stepTemplate/image",
            "4 Workflow /spec/templates/0/container/image",
            "4 Workflow /spec/templates/1/script/image",
        ]
    );
    let pinned = &out.outputs[0];
    assert!(pinned.contains(&format!(
        "image: ghcr.io/team/web:2.1@{}  # canary",
        digest_of("ghcr.io/team/web:2.1")
    )));
    assert!(
        pinned.contains("image: untouched:1\n"),
        "a core Service is not a Knative one"
    );
    let mut stripped = pinned.clone();
    for image in &out.images {
        stripped = stripped.replace(&format!("@{}", image.digest.as_deref().unwrap()), "");
    }
    assert_eq!(stripped, text);
}

#[test]
fn multibyte_text_and_a_byte_order_mark_keep_their_offsets() {
    let text = "\u{feff}# Café ✓ — 日本語\napiVersion: v1\nkind: Pod\nmetadata: {name: é, annotations: {note: \"ünïcödé ✓\"}}\nspec:\n  containers:\n  - name: ü # ✓✓\n    image: nginx:1.25 # 🚀\n  - {name: b, image: 'redis:7'}\n";
    let out = run(&[text], Arc::new(FakeRegistry::default()), Mode::Pin);
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let expected = text
        .replace(
            "nginx:1.25 #",
            &format!("nginx:1.25@{} #", digest_of("nginx:1.25")),
        )
        .replace("'redis:7'", &format!("'redis:7@{}'", digest_of("redis:7")));
    assert_eq!(out.outputs[0], expected);
}
