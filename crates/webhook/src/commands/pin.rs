//! `tagpin pin`: pin and verify the images of manifest files before they reach the cluster.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tagpin_resolver::Resolver;

use crate::cli::OutputFormat;
use crate::config::Config;
use crate::pin::lookup::{Lookups, Mode};
use crate::pin::{self, Input, Outcome, diff, discover, krm, write};
use crate::resolving::ImageResolver;
use crate::verification::{ImageVerifier, RegistryVerifier};

/// What `tagpin pin` was asked to do.
#[derive(Debug, Clone)]
pub struct Request {
    /// The config file.
    pub config: Option<PathBuf>,
    /// Files and directories; empty or `-` for stdin.
    pub paths: Vec<PathBuf>,
    /// Rewrite the files in place.
    pub write: bool,
    /// Change nothing; fail when an image is not pinned.
    pub check: bool,
    /// Print a unified diff instead of the manifests.
    pub diff: bool,
    /// Re-resolve tags that already carry a digest.
    pub update: bool,
    /// Write the webhook's `tagpin.dev/images` record into each object.
    pub annotate: bool,
    /// Read and write a KRM `ResourceList` on stdin and stdout.
    pub krm: bool,
    /// Manifests (text) or a report of each image (json).
    pub output: OutputFormat,
    /// Registry lookups in flight at once.
    pub concurrency: usize,
}

/// Runs `tagpin pin`; exit code 1 when any image is refused (or, with `--check`, unpinned).
pub async fn run(request: &Request) -> anyhow::Result<ExitCode> {
    if request.krm {
        return run_krm(request).await;
    }
    let stdin = request.paths.is_empty() || request.paths.iter().any(|p| p == Path::new("-"));
    if request.write && stdin {
        anyhow::bail!(
            "--write needs files to rewrite; manifests read from stdin can only be printed"
        );
    }
    let config = load_config(request.config.as_deref())?;
    let (inputs, files) = read_inputs(&request.paths)?;
    let lookups = lookups(&config, request.concurrency)?;
    let mode = match (request.check, request.update) {
        (true, _) => Mode::Check,
        (false, true) => Mode::Update,
        (false, false) => Mode::Pin,
    };
    let settings = pin::Settings {
        mode,
        annotate: request.annotate,
    };
    let outcome = pin::pin(&inputs, &config, &lookups, settings).await;
    for notice in &outcome.notices {
        eprintln!("tagpin pin: warning: {notice}");
    }
    let mut stdout = std::io::stdout().lock();
    if request.output == OutputFormat::Json {
        serde_json::to_writer_pretty(&mut stdout, &outcome.images)?;
        writeln!(stdout)?;
    }
    if !outcome.problems.is_empty() {
        for problem in &outcome.problems {
            eprintln!("tagpin pin: {problem}");
        }
        let what = if request.check {
            "not pinned or not verified"
        } else {
            "could not be pinned or verified; no file was changed"
        };
        eprintln!(
            "tagpin pin: {} image field(s) {what}",
            outcome.problems.len()
        );
        return Ok(ExitCode::from(1));
    }
    for moved in outcome.images.iter().filter_map(|i| i.moved()) {
        eprintln!("tagpin pin: {moved}");
    }
    if request.check {
        return Ok(ExitCode::SUCCESS);
    }
    if request.diff {
        for (input, output) in inputs.iter().zip(&outcome.outputs) {
            stdout.write_all(diff::unified(&input.name, &input.text, output).as_bytes())?;
        }
    }
    if request.write {
        write_changed(&inputs, &files, &outcome)?;
    } else if !request.diff && request.output == OutputFormat::Text {
        print_outputs(&mut stdout, &inputs, &outcome)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `--krm`: the ResourceList on stdin, pinned, with results, on stdout; exit code 1 and
/// the list unchanged (but for its results) when any image is refused.
async fn run_krm(request: &Request) -> anyhow::Result<ExitCode> {
    let config = load_config(request.config.as_deref())?;
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read the ResourceList from stdin")?;
    let list = krm::parse(&text)?;
    let lookups = lookups(&config, request.concurrency)?;
    let settings = pin::Settings {
        mode: if request.update {
            Mode::Update
        } else {
            Mode::Pin
        },
        annotate: request.annotate,
    };
    let inputs = [Input {
        name: "-".to_owned(),
        text,
    }];
    let outcome = pin::pin(&inputs, &config, &lookups, settings).await;
    let refused = !outcome.problems.is_empty();
    let base = if refused {
        &inputs[0].text
    } else {
        &outcome.outputs[0]
    };
    let out = krm::with_results(base, &krm::results(&list.value, &outcome))?;
    std::io::stdout().lock().write_all(out.as_bytes())?;
    for problem in &outcome.problems {
        eprintln!("tagpin pin: {problem}");
    }
    Ok(if refused {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The config file, with its `pin:` section checked.
fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let config = Config::load(path)?;
    config.pin.check().map_err(|e| {
        let file = path.map(|p| p.display().to_string()).unwrap_or_default();
        anyhow::anyhow!("{file}: {e}")
    })?;
    Ok(config)
}

/// The registry access of the run: the same resolver, credentials and policy as
/// `tagpin resolve` and `tagpin verify`.
fn lookups(config: &Config, concurrency: usize) -> anyhow::Result<Lookups> {
    let keychain = super::cli_keychain(config)?;
    let resolver =
        Arc::new(Resolver::new(config.resolver.clone()).context("cannot set up the resolver")?);
    let verifier = config
        .verification_policy()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .map(|policy| {
            Arc::new(RegistryVerifier::new(resolver.clone(), policy)) as Arc<dyn ImageVerifier>
        });
    Ok(Lookups {
        resolver: resolver as Arc<dyn ImageResolver>,
        verifier,
        keychain,
        concurrency,
    })
}

/// Every input with the file it came from (`None` for stdin).
fn read_inputs(paths: &[PathBuf]) -> anyhow::Result<(Vec<Input>, Vec<Option<PathBuf>>)> {
    let stdin = Path::new("-");
    let named: Vec<PathBuf> = paths.iter().filter(|p| *p != stdin).cloned().collect();
    let mut inputs = Vec::new();
    let mut files = Vec::new();
    if paths.is_empty() || paths.iter().any(|p| p == stdin) {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read manifests from stdin")?;
        inputs.push(Input {
            name: "-".to_owned(),
            text,
        });
        files.push(None);
    }
    for path in discover::manifest_files(&named)? {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        inputs.push(Input {
            name: path.display().to_string(),
            text,
        });
        files.push(Some(path));
    }
    Ok((inputs, files))
}

fn write_changed(
    inputs: &[Input],
    files: &[Option<PathBuf>],
    outcome: &Outcome,
) -> anyhow::Result<()> {
    let changed: Vec<(PathBuf, String)> = inputs
        .iter()
        .zip(files)
        .zip(&outcome.outputs)
        .filter(|((input, _), output)| input.text != **output)
        .filter_map(|((_, file), output)| Some((file.clone()?, output.clone())))
        .collect();
    write::replace_all(&changed)?;
    let pinned = outcome.images.iter().filter(|i| i.changed()).count();
    eprintln!(
        "tagpin pin: pinned {pinned} image field(s) in {} file(s)",
        changed.len()
    );
    Ok(())
}

/// Prints every input's pinned text; YAML streams of several files are joined with `---`.
fn print_outputs(out: &mut impl Write, inputs: &[Input], outcome: &Outcome) -> anyhow::Result<()> {
    for (i, output) in outcome.outputs.iter().enumerate() {
        if i > 0 {
            let json = inputs[i].name.ends_with(".json");
            if !outcome.outputs[i - 1].ends_with('\n') {
                writeln!(out)?;
            }
            if !json {
                writeln!(out, "---")?;
            }
        }
        out.write_all(output.as_bytes())?;
    }
    Ok(())
}
