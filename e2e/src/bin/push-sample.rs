//! Pushes a small sample image to the local TLS registry, for `hack/demo.sh` and the benches.
//! With `--runnable`, busybox that sleeps until stopped, so the node runs it. Inside the
//! cluster's network namespace the image is named by the registry's node address
//! (`TAGPIN_NODE_REGISTRY`), which Pods pull.
//!
//! Usage: `push-sample [--runnable] REPOSITORY TAG [SEED]`; prints
//! `registry/repository:tag@sha256:...`.

use anyhow::Context as _;
use tagpin_e2e::TestRegistry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut args = std::env::args().skip(1).peekable();
    let usage = "usage: push-sample [--runnable] REPOSITORY TAG [SEED]";
    let runnable = args.next_if(|a| a == "--runnable").is_some();
    let repository = args.next().context(usage)?;
    let tag = args.next().context(usage)?;
    let seed = args.next().unwrap_or_else(|| format!("{repository}:{tag}"));
    let registry = match tagpin_e2e::TestEnv::load().get("TAGPIN_NODE_REGISTRY") {
        Some(_) => TestRegistry::node(),
        None => TestRegistry::tls(),
    };
    let pushed = if runnable {
        registry.push_runnable_image(&repository, &tag, &seed).await
    } else {
        registry.push_image(&repository, &tag, &seed).await
    }
    .with_context(|| format!("pushing {repository}:{tag}"))?;
    println!("{}@{}", pushed.reference, pushed.digest);
    Ok(())
}
