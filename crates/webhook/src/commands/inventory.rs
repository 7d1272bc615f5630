//! `tagpin inventory`: every container of every Pod with its digest and tagpin's record,
//! optionally re-resolved (`--drift`) and re-verified (`--verify`).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use kube::Client;
use kube::config::KubeConfigOptions;
use tagpin_resolver::{Digest, DockerConfig, Resolver};

use crate::cli::{FailOn, InventoryArgs};
use crate::cluster::Cluster;
use crate::config::{Config, PinnedKind};
use crate::inventory::collect::{self, Scope};
use crate::inventory::output::{self, Columns, Progress};
use crate::inventory::{Flag, Row, Summary, clusters, digests, drift, policy, rows};
use crate::verification::RegistryVerifier;

/// What the re-checks need, shared by every cluster read.
struct Checks {
    drift: Option<Arc<Resolver>>,
    verify: Option<RegistryVerifier>,
    docker: Option<Arc<DockerConfig>>,
    /// The kinds the config pins: records are read only where tagpin writes them.
    pinned: Vec<PinnedKind>,
}

/// Reads the cluster(s), prints the inventory and returns the exit code `--fail-on` asks for.
pub async fn run(args: &InventoryArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    let wanted = args
        .digest
        .as_deref()
        .map(|d| {
            Digest::from_str(d)
                .map(|d| d.to_string())
                .with_context(|| format!("invalid --digest {d:?}"))
        })
        .transpose()?;
    let checks = checks(&config, args)?;
    let progress = Progress::new(std::io::stderr().is_terminal());
    let contexts: Vec<Option<&str>> = if args.contexts.is_empty() {
        vec![None]
    } else {
        args.contexts.iter().map(|c| Some(c.as_str())).collect()
    };
    let mut all = Vec::new();
    for context in &contexts {
        let mut found = read_cluster(*context, args, &checks, &progress).await?;
        if contexts.len() > 1 {
            found
                .iter_mut()
                .for_each(|r| r.cluster = context.map(str::to_owned));
        }
        all.extend(found);
    }
    if contexts.len() > 1 {
        clusters::compare(&mut all);
    }
    // Stable: containers keep their order inside each Pod.
    all.sort_by(|a, b| {
        (
            &a.cluster,
            &a.namespace,
            &a.owner_kind,
            &a.owner_name,
            &a.pod,
        )
            .cmp(&(
                &b.cluster,
                &b.namespace,
                &b.owner_kind,
                &b.owner_name,
                &b.pod,
            ))
    });
    let columns = Columns {
        drift: checks.drift.is_some(),
        verify: checks.verify.is_some(),
        cluster: contexts.len() > 1,
    };
    let shown = print(args, wanted.as_deref(), columns, &all)?;
    Ok(exit_code(&args.fail_on, &shown))
}

fn checks(config: &Config, args: &InventoryArgs) -> anyhow::Result<Checks> {
    let drift = args.drift || args.fail_on.contains(&FailOn::Drift);
    let resolver = (drift || args.verify)
        .then(|| Resolver::new(config.resolver.clone()).map(Arc::new))
        .transpose()
        .context("cannot set up the resolver")?;
    let verify = match (&resolver, args.verify) {
        (Some(resolver), true) => {
            let policy = config
                .verification_policy()
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .context("--verify needs a config with a `verification:` policy")?;
            Some(RegistryVerifier::new(resolver.clone(), policy))
        }
        _ => None,
    };
    Ok(Checks {
        drift: resolver.filter(|_| drift),
        verify,
        docker: super::docker_config(config)?,
        pinned: config.kinds.clone(),
    })
}

/// The rows of one cluster, re-checked as asked.
async fn read_cluster(
    context: Option<&str>,
    args: &InventoryArgs,
    checks: &Checks,
    progress: &Progress,
) -> anyhow::Result<Vec<Row>> {
    let client = client(context).await?;
    let scope = if args.all_namespaces {
        Scope::All
    } else {
        Scope::Namespace(
            args.namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_owned()),
        )
    };
    progress.note("listing pods…");
    let pods = collect::pods(&client, &scope).await?;
    progress.note(&format!("{} pods; listing their owners…", pods.len()));
    let owners = collect::owners(&client, &scope, &pods, checks.pinned.clone()).await;
    progress.note("");
    let mut found: Vec<Row> = pods
        .iter()
        .flat_map(|p| rows::pod_rows(p, &owners))
        .collect();
    drop(pods);
    if checks.drift.is_none() && checks.verify.is_none() {
        return Ok(found);
    }
    let (secrets, accounts) = match collect::credentials(&client, &scope).await {
        Ok(listed) => listed,
        Err(e) => {
            tracing::warn!(error = %e, "re-checks use only the configured docker config");
            (Vec::new(), Vec::new())
        }
    };
    let keys = Cluster::from_objects(secrets, accounts, checks.docker.clone());
    if let Some(resolver) = &checks.drift {
        drift::check(&mut found, resolver.as_ref(), &keys, progress).await;
    }
    if let Some(verifier) = &checks.verify {
        policy::check(&mut found, verifier, &keys, progress).await;
    }
    Ok(found)
}

/// A client of the kubeconfig's current context (or in-cluster config), or of `context`.
async fn client(context: Option<&str>) -> anyhow::Result<Client> {
    let Some(context) = context else {
        return Client::try_default()
            .await
            .context("cannot reach the Kubernetes API (no kubeconfig or in-cluster config)");
    };
    let options = KubeConfigOptions {
        context: Some(context.to_owned()),
        ..KubeConfigOptions::default()
    };
    let config = kube::Config::from_kubeconfig(&options)
        .await
        .with_context(|| format!("cannot use kubeconfig context {context:?}"))?;
    Client::try_from(config).with_context(|| format!("cannot use kubeconfig context {context:?}"))
}

/// Prints the view asked for; returns the rows it covered (for the exit code).
fn print<'a>(
    args: &InventoryArgs,
    wanted: Option<&str>,
    columns: Columns,
    all: &'a [Row],
) -> anyhow::Result<Vec<&'a Row>> {
    let mut stdout = std::io::stdout().lock();
    if let Some(digest) = wanted {
        let shown = digests::involving(all, digest);
        let owned: Vec<Row> = shown.iter().map(|r| (*r).clone()).collect();
        let summary = Summary::of(&owned);
        let group = digests::group(digest, &shown);
        output::digest(&mut stdout, args.output, columns, &group, &shown, &summary)?;
        return Ok(shown);
    }
    let summary = Summary::of(all);
    let shown: Vec<&Row> = all.iter().collect();
    if args.by_digest {
        let groups = digests::by_digest(all);
        output::digests(&mut stdout, args.output, &groups, &summary)?;
    } else {
        output::containers(&mut stdout, args.output, columns, &shown, &summary)?;
    }
    Ok(shown)
}

/// 1 when any row has a problem `fail_on` names (a re-check that reached no answer counts:
/// an audit must not pass on what it could not check), else 0.
fn exit_code(fail_on: &[FailOn], rows: &[&Row]) -> ExitCode {
    let mut failed = false;
    for what in fail_on {
        let count = rows.iter().filter(|r| fails(*what, r)).count();
        if count > 0 {
            eprintln!(
                "tagpin inventory: --fail-on {}: {count} container(s)",
                match what {
                    FailOn::Drift => "drift",
                    FailOn::Unpinned => "unpinned",
                    FailOn::Policy => "policy",
                }
            );
            failed = true;
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn fails(what: FailOn, row: &Row) -> bool {
    match what {
        FailOn::Drift => {
            row.has(Flag::Drifted)
                || row.has(Flag::RecordDiffers)
                || row.has(Flag::DriftError)
                || row.has(Flag::DiffersAcrossClusters)
        }
        FailOn::Unpinned => row.has(Flag::Unpinned),
        FailOn::Policy => row.fails_policy() || row.has(Flag::VerifyError),
    }
}
