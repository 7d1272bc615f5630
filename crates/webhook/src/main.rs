//! `tagpin`: the admission webhook that pins every image tag to its digest, and its CLI.

use std::process::ExitCode;

use clap::Parser;

use tagpin::cli::{Cli, Command};
use tagpin::{commands, logging};

// Admission is many small short-lived allocations on every worker thread.
// jemalloc's per-thread caches serve them with about half the CPU of the
// system allocator, and its decay keeps the peak of a burst lower than
// mimalloc's did (see the README's Performance section).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // One crypto provider for every TLS user in the process (server, kube client, registries).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tagpin: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Ref { image } = &cli.command {
        return Ok(commands::reference::run(image));
    }
    if let Command::Certs {
        out,
        dns_names,
        ips,
        client,
        days,
        kustomize,
        manifests,
        image,
    } = &cli.command
    {
        let kustomize = kustomize.then_some(commands::certs::KustomizeOptions {
            manifests,
            image: image.as_deref(),
        });
        commands::certs::run(out, dns_names, ips, client.as_deref(), *days, kustomize)?;
        return Ok(ExitCode::SUCCESS);
    }
    let default_level = match cli.command {
        Command::Serve { .. } | Command::Watch(_) => "info",
        _ => "warn",
    };
    logging::init(
        cli.log_format,
        cli.log_level.as_deref().unwrap_or(default_level),
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(cli.command))
}

/// The commands that need the async runtime.
async fn run_async(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Resolve {
            config,
            output,
            images,
        } => commands::resolve::run(config.as_deref(), output, &images).await,
        Command::Verify {
            config,
            output,
            images,
        } => commands::verify::run(config.as_deref(), output, &images).await,
        Command::Pin {
            config,
            write,
            check,
            diff,
            update,
            annotate,
            krm,
            output,
            concurrency,
            paths,
        } => {
            let request = commands::pin::Request {
                config,
                paths,
                write,
                check,
                diff,
                update,
                annotate,
                krm,
                output,
                concurrency,
            };
            commands::pin::run(&request).await
        }
        Command::Serve { config } => {
            commands::serve::run(config.as_deref()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Review { config, input } => {
            commands::review::run(config.as_deref(), &input).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Inventory(args) => commands::inventory::run(&args).await,
        Command::Watch(args) => {
            commands::watch::run(&args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ref { .. } | Command::Certs { .. } => Ok(ExitCode::SUCCESS),
    }
}
