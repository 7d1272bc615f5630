//! Registry round trips of one cold admission, counted rather than timed: a registry in
//! memory holds every answer for one virtual delay on a runtime with paused time, and records
//! when each request arrived and was answered. The count is the longest chain of requests that
//! each waited for an answer before it, so a change that asks the registry one thing after
//! another again fails here whatever the machine's speed.
//!
//! Each admission runs after a warm-up admission of another image in the same repositories,
//! so the connection, the registry's challenge and the repository's token are known, as in a
//! serving tagpin; the cold-token cases name repositories no admission asked for before.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tagpin::admission::Admitter;
use tagpin::config::Config;
use tagpin::credentials::ClusterState;
use tagpin_e2e::cosign_layouts::{TestKey, push_image, push_index, sign_v2, sign_v3};
use tagpin_e2e::recording_registry::{Auth, Exchange, RecordingRegistry, sequential_rounds, waves};
use tagpin_resolver::{DockerConfig, Keychain, Resolver};

/// How long the registry holds each answer (virtual time).
const DELAY: Duration = Duration::from_millis(100);

const SLSA: &str = "https://slsa.dev/provenance/v1";
const SBOM: &str = "https://spdx.dev/Document";
const VULNS: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";

/// Credentials by namespace, so a namespace can bring a credential no admission used yet.
struct Namespaces {
    configs: HashMap<String, Arc<DockerConfig>>,
}

impl ClusterState for Namespaces {
    fn namespace_label(&self, _namespace: &str, _key: &str) -> Option<String> {
        None
    }

    fn keychain(&self, namespace: &str, _secrets: &[String], _sa: &str) -> Keychain {
        let mut keychain = Keychain::anonymous();
        if let Some(config) = self.configs.get(namespace) {
            keychain.push(config.clone());
        }
        keychain
    }
}

/// A registry and an admitter that pins to it, verifying repositories under `v2/` with
/// cosign v2's layout and under `v3/` with cosign v3 bundles; `plain/` is not verified.
struct Rig {
    registry: RecordingRegistry,
    admitter: Admitter,
    key: TestKey,
}

impl Rig {
    async fn start(auth: Auth, referrers_api: bool) -> Self {
        Self::start_limited(auth, referrers_api, 64).await
    }

    /// A rig whose registry takes at most `limit` requests at once from tagpin.
    async fn start_limited(auth: Auth, referrers_api: bool, limit: usize) -> Self {
        let registry = RecordingRegistry::start(auth, referrers_api, DELAY).await;
        let key = TestKey::new();
        let addr = &registry.addr;
        let signer = format!(
            "{{anyOf: [{{key: {{pem: {}}}, tlog: waived}}]}}",
            serde_json::to_string(&key.pem()).unwrap()
        );
        let attested = |name: &str, glob: &str, types: &[&str]| {
            let attestations: Vec<String> = types
                .iter()
                .map(|t| format!("{{predicateType: \"{t}\", signedBy: {signer}}}"))
                .collect();
            format!(
                "    - name: {name}\n      images: [\"{addr}/{glob}\"]\n      signatures: {signer}\n      attestations: [{}]\n",
                attestations.join(", ")
            )
        };
        let rules = [
            attested("signed", "*/signed-*", &[]),
            attested("attested-1", "*/att1-*", &[SLSA]),
            attested("attested-3", "*/att3-*", &[SLSA, SBOM, VULNS]),
            attested("platforms", "*/platforms-*", &[]),
            "      acceptPlatformSignatures: true\n".to_owned(),
        ]
        .concat();
        let yaml = format!(
            "defaultMode: enforce\ndeadlineSeconds: 25\nresolver:\n  registries:\n    \"{addr}\": {{plainHttp: true, maxConcurrentRequests: {limit}}}\n  timeouts: {{deadlineSeconds: 20, connectSeconds: 10, readSeconds: 10}}\nverification:\n  noMatch: allow\n  rules:\n{rules}"
        );
        let config =
            Arc::new(Config::parse(&yaml, std::path::Path::new("round_trips.yaml")).unwrap());
        let resolver = Arc::new(Resolver::new(config.resolver.clone()).unwrap());
        let credential = |user: &str| {
            use base64::Engine as _;
            let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:secret"));
            let auths = serde_json::json!({"auths": {addr: {"auth": auth}}});
            Arc::new(DockerConfig::parse(auths.to_string().as_bytes()).unwrap())
        };
        let cluster = Arc::new(Namespaces {
            configs: HashMap::from([
                ("apps".to_owned(), credential("apps")),
                ("other".to_owned(), credential("other")),
            ]),
        });
        let admitter = tagpin::commands::admitter(config, resolver, cluster).unwrap();
        Self {
            registry,
            admitter,
            key,
        }
    }

    /// Pushes an image tagged `tag` in each of `repositories`, signed in `layout` with
    /// `attestations`; returns their references.
    fn push(
        &self,
        repositories: &[String],
        tag: &str,
        layout: Layout,
        attestations: &[&str],
    ) -> Vec<String> {
        repositories
            .iter()
            .map(|repository| {
                if let Layout::PlatformsV2(n) = layout {
                    self.push_platforms(repository, tag, n);
                    return format!("{}/{repository}:{tag}", self.registry.addr);
                }
                let digest = push_image(&self.registry, repository, tag);
                match layout {
                    Layout::Unsigned | Layout::PlatformsV2(_) => {}
                    Layout::V2 => {
                        sign_v2(&self.registry, repository, &digest, &self.key, attestations)
                    }
                    Layout::V3 => {
                        sign_v3(&self.registry, repository, &digest, &self.key, attestations)
                    }
                }
                format!("{}/{repository}:{tag}", self.registry.addr)
            })
            .collect()
    }

    /// An unsigned index tagged `tag` of `n` platform images, each signed in cosign v2's layout.
    fn push_platforms(&self, repository: &str, tag: &str, n: usize) {
        let platforms: Vec<String> = (0..n)
            .map(|i| {
                let digest = push_image(&self.registry, repository, &format!("{tag}-{i}"));
                sign_v2(&self.registry, repository, &digest, &self.key, &[]);
                digest
            })
            .collect();
        push_index(&self.registry, repository, tag, &platforms);
    }

    /// Admits a Pod of `images` in `namespace`, checks every image was pinned with verdict
    /// `verdict`, and returns the registry requests it made.
    async fn admit(&self, namespace: &str, images: &[String], verdict: &str) -> Vec<Exchange> {
        self.registry.take();
        let refs: Vec<&str> = images.iter().map(String::as_str).collect();
        let mut review = common::review("Pod", "", "CREATE", common::pod(&refs));
        review["request"]["namespace"] = namespace.into();
        review["request"]["object"]["metadata"]["namespace"] = namespace.into();
        let (answer, decision) = self
            .admitter
            .review(&serde_json::to_vec(&review).unwrap())
            .await
            .unwrap();
        let response = answer.response.unwrap();
        assert!(response.allowed, "{images:?} denied: {:?}", response.result);
        assert_eq!(decision.outcome.as_str(), "patched", "{images:?}");
        assert_eq!(decision.verdicts, vec![verdict; images.len()], "{images:?}");
        self.registry.take()
    }
}

#[derive(Debug, Clone, Copy)]
enum Layout {
    Unsigned,
    V2,
    V3,
    /// An unsigned index of this many platform images signed in cosign v2's layout.
    PlatformsV2(usize),
}

/// Repositories `<dir>/<name>-<i>`.
fn repositories(dir: &str, name: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{dir}/{name}-{i}")).collect()
}

/// Asserts the requests took exactly `rounds` sequential round trips and asked for no
/// artifact twice.
fn assert_rounds(case: &str, exchanges: &[Exchange], rounds: usize) {
    let waves = waves(exchanges);
    let shown: Vec<String> = waves
        .iter()
        .enumerate()
        .map(|(i, w)| format!("  round {}: {}", i + 1, w.join(", ")))
        .collect();
    assert_eq!(
        sequential_rounds(exchanges),
        rounds,
        "{case}: {} requests in {} sequential rounds, expected {rounds}:\n{}",
        exchanges.len(),
        waves.len(),
        shown.join("\n")
    );
    let mut seen = std::collections::HashSet::new();
    for e in exchanges.iter().filter(|e| e.status != 401) {
        assert!(
            seen.insert((e.method.clone(), e.path.clone())),
            "{case}: asked twice for {}:\n{}",
            e.describe(),
            shown.join("\n")
        );
    }
}

/// Warms the connection, the challenge and each repository's token with one admission of
/// another tag, as earlier admissions of a serving tagpin would have.
async fn warm(
    rig: &Rig,
    repositories: &[String],
    layout: Layout,
    attestations: &[&str],
    verdict: &str,
) -> Vec<Exchange> {
    let warm = rig.push(repositories, "warm", layout, attestations);
    rig.admit("apps", &warm, verdict).await
}

#[tokio::test(start_paused = true)]
async fn unverified_images_take_one_round() {
    let rig = Rig::start(Auth::Bearer, false).await;
    let repos = repositories("plain", "app", 4);
    warm(&rig, &repos, Layout::Unsigned, &[], "no-rule-allowed").await;
    let images = rig.push(&repos, "cold", Layout::Unsigned, &[]);
    let exchanges = rig.admit("apps", &images, "no-rule-allowed").await;
    assert_rounds("4 unverified images", &exchanges, 1);
    assert_eq!(exchanges.len(), 4, "one HEAD per image");
}

#[tokio::test(start_paused = true)]
async fn a_cold_token_adds_one_round() {
    let rig = Rig::start(Auth::Bearer, false).await;
    warm(
        &rig,
        &repositories("plain", "warm", 1),
        Layout::Unsigned,
        &[],
        "no-rule-allowed",
    )
    .await;
    // New repositories: new token scopes for the known credential.
    let images = rig.push(
        &repositories("plain", "fresh", 4),
        "cold",
        Layout::Unsigned,
        &[],
    );
    let exchanges = rig.admit("apps", &images, "no-rule-allowed").await;
    assert_rounds("4 images, new repositories", &exchanges, 2);
    // A credential no admission used yet, on a registry whose challenge is known.
    let images = rig.push(
        &repositories("plain", "other", 4),
        "cold",
        Layout::Unsigned,
        &[],
    );
    let exchanges = rig.admit("other", &images, "no-rule-allowed").await;
    assert_rounds("4 images, new credential", &exchanges, 2);
}

#[tokio::test(start_paused = true)]
async fn requests_per_registry_are_bounded() {
    let rig = Rig::start_limited(Auth::Bearer, false, 2).await;
    let repos = repositories("plain", "app", 4);
    warm(&rig, &repos, Layout::Unsigned, &[], "no-rule-allowed").await;
    let images = rig.push(&repos, "cold", Layout::Unsigned, &[]);
    let exchanges = rig.admit("apps", &images, "no-rule-allowed").await;
    assert_rounds("4 images, 2 requests at once", &exchanges, 2);
}

/// One verified admission: its images' layout and how many sequential rounds it may take.
struct Case {
    name: &'static str,
    layout: Layout,
    /// Names the rule: `signed`, `att1`, `att3` or `platforms`.
    rule: &'static str,
    attestations: &'static [&'static str],
    referrers_api: bool,
    images: usize,
    rounds: usize,
}

/// The tag HEAD, then at most three rounds: the cosign v2 tags and the referrers list,
/// every manifest listed, every blob.
#[tokio::test(start_paused = true)]
async fn verified_images_rounds() {
    let cases = [
        Case {
            name: "cosign v2 signature and attestation",
            layout: Layout::V2,
            rule: "att1",
            attestations: &[SLSA],
            referrers_api: false,
            images: 1,
            rounds: 3,
        },
        Case {
            name: "cosign v3 bundles, 1 attestation, tag schema",
            layout: Layout::V3,
            rule: "att1",
            attestations: &[SLSA],
            referrers_api: false,
            images: 1,
            rounds: 4,
        },
        Case {
            name: "cosign v3 bundles, 3 attestations, tag schema",
            layout: Layout::V3,
            rule: "att3",
            attestations: &[SLSA, SBOM, VULNS],
            referrers_api: false,
            images: 1,
            rounds: 4,
        },
        Case {
            name: "cosign v3 bundles, 3 attestations, referrers API",
            layout: Layout::V3,
            rule: "att3",
            attestations: &[SLSA, SBOM, VULNS],
            referrers_api: true,
            images: 1,
            rounds: 4,
        },
        Case {
            name: "10 images, cosign v2 signatures",
            layout: Layout::V2,
            rule: "signed",
            attestations: &[],
            referrers_api: false,
            images: 10,
            rounds: 3,
        },
        Case {
            name: "10 images, cosign v3 bundles, 3 attestations each",
            layout: Layout::V3,
            rule: "att3",
            attestations: &[SLSA, SBOM, VULNS],
            referrers_api: true,
            images: 10,
            rounds: 4,
        },
    ];
    for case in cases {
        verified_case(case).await;
    }
}

/// An index whose platforms alone are signed (`acceptPlatformSignatures`) stays within the
/// budget: the index is read beside its own discovery, which finds nothing, so the
/// platforms' signatures are asked for in the next round.
#[tokio::test(start_paused = true)]
async fn platform_signatures_stay_within_the_budget() {
    verified_case(Case {
        name: "index of 3 platforms, each signed in cosign v2's layout",
        layout: Layout::PlatformsV2(3),
        rule: "platforms",
        attestations: &[],
        referrers_api: false,
        images: 1,
        rounds: 4,
    })
    .await;
}

/// Admits `case` twice on a fresh registry: first another tag, which also asks `/v2/` for
/// the challenge and one token per repository (two rounds more) and learns whether the
/// registry serves the referrers API; then the cold images.
async fn verified_case(case: Case) {
    let rig = Rig::start(Auth::Bearer, case.referrers_api).await;
    let repos = repositories("signed", case.rule, case.images);
    let first = warm(&rig, &repos, case.layout, case.attestations, "verified").await;
    assert_rounds(&format!("first: {}", case.name), &first, case.rounds + 2);
    let images = rig.push(&repos, "cold", case.layout, case.attestations);
    let exchanges = rig.admit("apps", &images, "verified").await;
    assert_rounds(case.name, &exchanges, case.rounds);
}
