//! Verified warm and cold: a keyed cosign signature required on every image.

use std::time::Instant;

use anyhow::Context as _;

use super::{Bench, Load, POD_IMAGES, Server, each, fixed, pods, refs, tags};
use crate::Settings;
use crate::images::{Images, Signer};
use crate::load::{Expect, Protocol};
use crate::reviews;

/// The loads the verified runs use, the same as the plain ones.
pub(super) struct Loads {
    pub closed: Load,
    pub rate: Load,
    pub serial: Load,
}

/// Signed images and the key that checks them.
struct Signed {
    host: String,
    repo: String,
    warm_tags: Vec<String>,
    cold_tags: Vec<String>,
    signer: Signer,
    /// Holds the key pair for as long as the images are used.
    _dir: tempfile::TempDir,
}

/// Pushes and signs the images, then measures verified warm and cold.
pub(super) async fn run(
    bench: &mut Bench,
    settings: &Settings,
    images: &Images,
    prefix: &str,
    loads: Loads,
) -> anyhow::Result<()> {
    let cosign = settings
        .cosign
        .clone()
        .context("TAGPIN_COSIGN_V2 is not set (hack/tools.sh installs cosign)")?;
    let signed = push_and_sign(settings, images, prefix, &cosign).await?;
    let server = Server::start(&policy(&signed)).await?;
    measure_warm(bench, &server, &signed, &loads).await?;
    measure_cold(bench, &server, &signed, loads.serial).await
}

async fn push_and_sign(
    settings: &Settings,
    images: &Images,
    prefix: &str,
    cosign: &std::path::Path,
) -> anyhow::Result<Signed> {
    let host = images.registry.host.clone();
    let repo = format!("{prefix}signed");
    let warm_tags = tags("warm", POD_IMAGES);
    let cold_tags = tags("cold", settings.verified_cold_requests * POD_IMAGES);
    let all: Vec<String> = warm_tags.iter().chain(&cold_tags).cloned().collect();
    eprintln!(
        "bench: pushing and signing {} images with cosign",
        all.len()
    );
    let started = Instant::now();
    let digests = images.push_tags(&repo, &all).await?;
    let dir = tempfile::tempdir()?;
    let signer = Signer::generate(dir.path(), cosign, &images.registry)?;
    let by_digest: Vec<String> = digests
        .iter()
        .map(|d| format!("{host}/{repo}@{d}"))
        .collect();
    signer.sign(&by_digest)?;
    eprintln!("bench: signed in {:.1}s", started.elapsed().as_secs_f64());
    Ok(Signed {
        host,
        repo,
        warm_tags,
        cold_tags,
        signer,
        _dir: dir,
    })
}

/// A policy that denies every image of the signed repository without the bench's key.
fn policy(signed: &Signed) -> String {
    let Signed { host, repo, .. } = signed;
    format!(
        "verification:\n  noMatch: deny\n  rules:\n    - name: bench-signed\n      images: [\"{host}/{repo}\"]\n      signatures:\n        anyOf:\n          - name: bench-key\n            key: {{file: {}}}\n            tlog: waived\n",
        signed.signer.public_key().display()
    )
}

async fn measure_warm(
    bench: &mut Bench,
    server: &Server,
    signed: &Signed,
    loads: &Loads,
) -> anyhow::Result<()> {
    let warm = fixed(reviews::create(
        0,
        &reviews::pod(
            "web-0",
            &refs(&signed.host, &signed.repo, &signed.warm_tags),
        ),
    ));
    for p in [Protocol::Http1, Protocol::Http2] {
        bench
            .measure(
                server,
                "verified warm",
                p,
                Expect::Patch,
                loads.closed,
                &warm,
                &warm,
            )
            .await?;
    }
    bench
        .measure(
            server,
            "verified warm",
            Protocol::Http2,
            Expect::Patch,
            loads.rate,
            &warm,
            &warm,
        )
        .await?;
    Ok(())
}

async fn measure_cold(
    bench: &mut Bench,
    server: &Server,
    signed: &Signed,
    serial: Load,
) -> anyhow::Result<()> {
    let baseline = fixed(reviews::delete(
        0,
        &reviews::pod(
            "web-0",
            &refs(&signed.host, &signed.repo, &signed.warm_tags),
        ),
    ));
    let cold = each(pods(&refs(&signed.host, &signed.repo, &signed.cold_tags)));
    bench
        .measure(
            server,
            "verified cold",
            Protocol::Http2,
            Expect::Patch,
            serial,
            &baseline,
            &cold,
        )
        .await?;
    Ok(())
}
