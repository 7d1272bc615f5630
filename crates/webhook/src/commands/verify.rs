//! `tagpin verify`: the policy's verdict for each image, as admission would reach it.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;
use tagpin_resolver::{ImageReference, Resolver};

use crate::cli::OutputFormat;
use crate::config::Config;
use crate::verification::{ImageVerifier, RegistryVerifier};

/// One image's verdict in `--output json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Checked {
    input: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pinned: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict: Option<tagpin_verifier::Verdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Checked {
    fn admitted(&self) -> bool {
        self.error.is_none() && self.verdict.as_ref().is_some_and(|v| v.outcome.admits())
    }
}

/// Resolves and verifies every image; exit code 1 when any is not admitted.
pub async fn run(
    config: Option<&Path>,
    output: OutputFormat,
    images: &[String],
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let policy = config
        .verification_policy()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .context("the config has no `verification:` policy to verify against")?;
    let keychain = super::cli_keychain(&config)?;
    let resolver =
        Arc::new(Resolver::new(config.resolver.clone()).context("cannot set up the resolver")?);
    let verifier = RegistryVerifier::new(resolver.clone(), policy);
    let checks = images.iter().map(|input| {
        let (resolver, verifier, keychain) = (&resolver, &verifier, &keychain);
        async move {
            let failed = |error: String| Checked {
                input: input.clone(),
                pinned: None,
                verdict: None,
                error: Some(error),
            };
            let reference = match ImageReference::parse(input) {
                Ok(r) => r,
                Err(e) => return failed(e.to_string()),
            };
            let digest = match reference.digest() {
                Some(d) => d.clone(),
                None => match resolver.resolve(&reference, keychain).await {
                    Ok(r) => r.digest,
                    Err(e) => return failed(e.to_string()),
                },
            };
            let pinned = if reference.digest().is_some() {
                input.clone()
            } else {
                reference.pinned(&digest)
            };
            match verifier.verify(&reference, &digest, keychain).await {
                Ok(verdict) => Checked {
                    input: input.clone(),
                    pinned: Some(pinned),
                    verdict: Some(verdict),
                    error: None,
                },
                Err(e) => Checked {
                    pinned: Some(pinned),
                    ..failed(e)
                },
            }
        }
    });
    let results = futures::future::join_all(checks).await;
    match output {
        OutputFormat::Text => print_text(&results),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&results)?),
    }
    Ok(if results.iter().all(Checked::admitted) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One line per image on stdout (`<pinned> <verdict> [signers=…] [attestations=…]`), and the
/// reason, when there is one, on stderr.
fn print_text(results: &[Checked]) {
    for r in results {
        let pinned = r.pinned.as_deref().unwrap_or(&r.input);
        match (&r.verdict, &r.error) {
            (Some(v), _) => {
                let mut line = format!("{pinned} {}", v.outcome.as_str());
                if !v.signers.is_empty() {
                    line.push_str(&format!(" signers={}", v.signers.join(",")));
                }
                if !v.attestations.is_empty() {
                    line.push_str(&format!(" attestations={}", v.attestations.join(",")));
                }
                println!("{line}");
                if let Some(reason) = &v.reason {
                    eprintln!("tagpin verify: {reason}");
                }
            }
            (None, Some(e)) => {
                println!("{pinned} error");
                eprintln!("tagpin verify: {e}");
            }
            (None, None) => {}
        }
    }
}
