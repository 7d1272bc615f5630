//! `tagpin review`: answer one AdmissionReview offline, exactly as the server would.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tagpin_resolver::Resolver;

use crate::config::Config;
use crate::credentials::Offline;

/// Reads the review from `input` (`-` = stdin) and writes the response to stdout.
pub async fn run(config: Option<&Path>, input: &Path) -> anyhow::Result<()> {
    let config = Arc::new(Config::load(config)?);
    let body = if input == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read the AdmissionReview from stdin")?;
        buf
    } else {
        std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?
    };
    let cluster = Arc::new(Offline::new(super::docker_config(&config)?));
    let resolver =
        Arc::new(Resolver::new(config.resolver.clone()).context("cannot set up the resolver")?);
    let admitter = super::admitter(config, resolver, cluster)?;
    let (review, _) = admitter
        .review(&body)
        .await
        .with_context(|| format!("cannot answer {}", input.display()))?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&crate::admission::encode_review(review)?)?;
    writeln!(stdout)?;
    Ok(())
}
