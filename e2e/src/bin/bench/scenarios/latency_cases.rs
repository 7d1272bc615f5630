//! The cold admissions of the latency runs: images pushed to the real registry, signed and
//! attested by real cosign v2 and v3 under the proxy's address, and the policy that
//! verifies them.

use std::time::Instant;

use anyhow::Context as _;
use bytes::Bytes;

use crate::Settings;
use crate::images::{Images, Signer};
use crate::reviews;

/// Predicate types of the attestations (custom URIs: cosign takes them as they are).
const PREDICATES: [&str; 3] = [
    "https://tagpin.dev/bench/provenance",
    "https://tagpin.dev/bench/sbom",
    "https://tagpin.dev/bench/scan",
];

/// How the images of a case are signed.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// Not signed; no rule matches them.
    Unverified,
    /// cosign v2: `.sig` and `.att` tags.
    CosignV2,
    /// cosign v3: Sigstore bundles as referrers (the `sha256-<hex>` tag schema on
    /// distribution 2.8, which has no referrers API).
    CosignV3,
}

/// One kind of cold admission.
pub(super) struct Case {
    /// What the table calls it.
    pub name: String,
    /// Images per admission.
    pub images: usize,
    /// Its repository, to count its registry requests.
    pub repository: String,
    /// Sequential round trips it may take, the tag `HEAD` included.
    pub budget: usize,
    /// One review per sample, each of images never admitted before.
    pub reviews: Vec<Bytes>,
    layout: Layout,
    attestations: usize,
}

/// Every case, a review that warms a fresh tagpin up, and the policy.
pub(super) struct Cases {
    pub cases: Vec<Case>,
    /// Opens the connection to the registry and learns what it serves.
    pub warm: Bytes,
    pub policy: String,
    /// Holds the key pair for as long as the images are used.
    _dir: tempfile::TempDir,
}

/// The cases: (name, layout, attestations, images per admission).
const CASES: [(&str, Layout, usize, usize); 7] = [
    ("unverified", Layout::Unverified, 0, 1),
    ("unverified, 10 images", Layout::Unverified, 0, 10),
    ("cosign v2, 1 attestation", Layout::CosignV2, 1, 1),
    ("cosign v2, 3 attestations", Layout::CosignV2, 3, 1),
    ("cosign v3, 1 attestation", Layout::CosignV3, 1, 1),
    ("cosign v3, 3 attestations", Layout::CosignV3, 3, 1),
    ("cosign v2, 10 images", Layout::CosignV2, 0, 10),
];

/// Pushes and signs the images of every case under `host` (the proxy's address).
pub(super) async fn prepare(
    settings: &Settings,
    images: &Images,
    prefix: &str,
    host: &str,
) -> anyhow::Result<Cases> {
    let v2 = settings
        .cosign
        .clone()
        .context("TAGPIN_COSIGN_V2 is not set (hack/tools.sh installs cosign)")?;
    let v3 = settings
        .cosign_v3
        .clone()
        .context("TAGPIN_COSIGN_V3 is not set (hack/tools.sh installs cosign)")?;
    let dir = tempfile::tempdir()?;
    let signer = Signer::generate(dir.path(), &v2, &images.registry)?;
    signer.login_alias(host)?;
    let signer_v3 = signer.v3(&v3);
    let started = Instant::now();
    let mut cases = Vec::new();
    let mut warm = Vec::new();
    for (i, (name, layout, attestations, n)) in CASES.into_iter().enumerate() {
        let repository = format!("{prefix}latency-{i}");
        // The first image of each case warms up; the rest are cold, `n` per review.
        let tags: Vec<String> = (0..1 + settings.latency_samples * n)
            .map(|t| format!("t{t}"))
            .collect();
        let digests = images.push_tags(&repository, &tags).await?;
        let refs: Vec<String> = digests
            .iter()
            .map(|d| format!("{host}/{repository}@{d}"))
            .collect();
        eprintln!("bench: signing {} images of {name:?}", refs.len());
        let cosign = match layout {
            Layout::Unverified => None,
            Layout::CosignV2 => Some(&signer),
            Layout::CosignV3 => Some(&signer_v3),
        };
        if let Some(cosign) = cosign {
            cosign.sign(&refs)?;
            for predicate in &PREDICATES[..attestations] {
                cosign.attest(&refs, predicate)?;
            }
        }
        let by_tag: Vec<String> = tags
            .iter()
            .map(|t| format!("{host}/{repository}:{t}"))
            .collect();
        warm.push(by_tag[0].clone());
        let reviews = by_tag[1..]
            .chunks(n)
            .enumerate()
            .map(|(s, images)| {
                reviews::create(s as u64, &reviews::pod(&format!("cold-{s}"), images))
            })
            .collect();
        cases.push(Case {
            name: name.to_owned(),
            images: n,
            repository,
            budget: match layout {
                Layout::Unverified => 1,
                Layout::CosignV2 | Layout::CosignV3 => 4,
            },
            reviews,
            layout,
            attestations,
        });
    }
    eprintln!(
        "bench: latency images signed in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let policy = policy(&cases, host, &signer);
    Ok(Cases {
        cases,
        warm: reviews::create(0, &reviews::pod("warm", &warm)),
        policy,
        _dir: dir,
    })
}

/// One rule per verified case: the bench's key, and its attestations by the same key.
fn policy(cases: &[Case], host: &str, signer: &Signer) -> String {
    let key = signer.public_key().display().to_string();
    let by_key = format!("{{anyOf: [{{key: {{file: {key}}}, tlog: waived}}]}}");
    let mut rules = String::new();
    for (i, case) in cases.iter().enumerate() {
        if matches!(case.layout, Layout::Unverified) {
            continue;
        }
        let attestations: Vec<String> = PREDICATES[..case.attestations]
            .iter()
            .map(|p| format!("{{predicateType: \"{p}\", signedBy: {by_key}}}"))
            .collect();
        rules.push_str(&format!(
            "    - name: latency-{i}\n      images: [\"{host}/{}\"]\n      signatures: {by_key}\n      attestations: [{}]\n",
            case.repository,
            attestations.join(", ")
        ));
    }
    format!("verification:\n  noMatch: allow\n  rules:\n{rules}")
}
