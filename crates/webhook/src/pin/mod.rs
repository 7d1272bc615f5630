//! `tagpin pin`: the webhook's pinning applied to manifest files, so that what is stored in
//! Git is already what the cluster stores. Only image scalars change; every other byte of the
//! input is kept.

pub mod annotate;
pub mod custom;
pub mod diff;
pub mod discover;
pub mod krm;
pub mod lookup;
pub mod plan;
pub mod report;
pub mod source;
pub mod splice;
pub mod write;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use tagpin_verifier::{Outcome as VerdictOutcome, Verdict};

use crate::admission::record::{self, NOT_VERIFIED, VERIFY_ERROR};
use crate::config::Config;
use lookup::{Lookups, Mode, Resolved, verdict_key};
use plan::Found;
use report::ImageReport;
use source::Document;
use splice::Edit;

/// One input stream: a file or stdin.
#[derive(Debug, Clone)]
pub struct Input {
    /// Its name in messages (`-` for stdin).
    pub name: String,
    /// Its contents.
    pub text: String,
}

/// The result of one run over every input.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The pinned text of each input, in input order.
    pub outputs: Vec<String>,
    /// Every image field found, in input and document order.
    pub images: Vec<ImageReport>,
    /// Every reason to refuse the run; when not empty nothing may be written.
    pub problems: Vec<String>,
    /// Warnings that do not refuse the run (e.g. `noMatch: warn`).
    pub notices: Vec<String>,
}

impl Outcome {
    /// True when some input changes.
    pub fn changed(&self, inputs: &[Input]) -> bool {
        inputs.iter().zip(&self.outputs).any(|(i, o)| i.text != *o)
    }
}

/// One image field with the document it is in.
struct Field<'a> {
    input: usize,
    doc: &'a Document,
    found: Found,
}

/// What one run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Which images are looked up.
    pub mode: Mode,
    /// Also write the webhook's `tagpin.dev/images` record into each object.
    pub annotate: bool,
}

/// Finds, resolves, verifies and rewrites every image field of `inputs`.
pub async fn pin(
    inputs: &[Input],
    config: &Config,
    lookups: &Lookups,
    settings: Settings,
) -> Outcome {
    let mode = settings.mode;
    let mut outcome = Outcome::default();
    let parsed: Vec<Vec<Document>> = inputs
        .iter()
        .map(|input| {
            source::parse_stream(&input.text).unwrap_or_else(|e| {
                outcome.problems.push(format!("{}: {e}", input.name));
                Vec::new()
            })
        })
        .collect();
    let fields: Vec<Field<'_>> = parsed
        .iter()
        .enumerate()
        .flat_map(|(input, docs)| {
            docs.iter().flat_map(move |doc| {
                plan::find_images(config, doc)
                    .into_iter()
                    .map(move |found| Field { input, doc, found })
            })
        })
        .collect();
    let resolved = lookups
        .resolve_all(fields.iter().map(|f| f.found.written.as_str()), mode)
        .await;
    let verdicts = lookups
        .verify_all(resolved.values().filter_map(Resolved::pinned))
        .await;
    let mut edits: Vec<Vec<Edit>> = vec![Vec::new(); inputs.len()];
    let mut judged = Vec::with_capacity(fields.len());
    for field in &fields {
        let Some(result) = resolved.get(&field.found.written) else {
            continue;
        };
        let verdict = result
            .pinned()
            .and_then(|(r, d)| verdicts.get(&verdict_key(r, d)));
        let (report, edit) = judge(
            &inputs[field.input].name,
            field,
            result,
            verdict,
            &mut outcome,
        );
        edits[field.input].extend(edit);
        outcome.images.push(report);
        judged.push((field, result, verdict));
    }
    if settings.annotate {
        annotate_objects(inputs, &judged, &mut edits, &mut outcome);
    }
    outcome.outputs = inputs
        .iter()
        .zip(&edits)
        .map(|(input, edits)| splice::apply(&input.text, edits))
        .collect();
    outcome
}

/// One judged field: the field, its resolution and its verdict.
type Judged<'a> = (
    &'a Field<'a>,
    &'a Resolved,
    Option<&'a Result<Verdict, String>>,
);

/// Adds to `edits` the `tagpin.dev/images` annotation of every object with image fields.
fn annotate_objects(
    inputs: &[Input],
    judged: &[Judged<'_>],
    edits: &mut [Vec<Edit>],
    outcome: &mut Outcome,
) {
    let same_object = |a: &Judged<'_>, b: &Judged<'_>| {
        a.0.input == b.0.input
            && a.0.doc.index == b.0.doc.index
            && a.0.found.object == b.0.found.object
    };
    for group in judged.chunk_by(same_object) {
        let (first, ..) = group[0];
        let input = &inputs[first.input];
        let fields: Vec<annotate::FieldOutcome<'_>> = group
            .iter()
            .map(|(f, resolved, verdict)| annotate::FieldOutcome {
                path: &f.found.path,
                written: &f.found.written,
                resolved,
                verdict: *verdict,
            })
            .collect();
        let existing = annotate::existing(first.doc, &first.found.object);
        let value = record::to_json(&annotate::records(&fields, &existing));
        let json = input.name.ends_with(".json") || input.text.trim_start().starts_with('{');
        match annotate::edit(&input.text, first.doc, &first.found.object, &value, json) {
            Ok(edit) => edits[first.input].extend(edit),
            Err(e) => outcome.problems.push(format!(
                "{}: document {}: {}: {e}",
                input.name,
                first.doc.index,
                if first.found.object.is_empty() {
                    "/"
                } else {
                    &first.found.object
                }
            )),
        }
    }
}

/// The report and the edit of one field, recording its problems in `outcome`.
fn judge(
    file: &str,
    field: &Field<'_>,
    result: &Resolved,
    verdict: Option<&Result<Verdict, String>>,
    outcome: &mut Outcome,
) -> (ImageReport, Option<Edit>) {
    let found = &field.found;
    let mut report = ImageReport {
        file: file.to_owned(),
        document: found.document,
        field: found.pointer.clone(),
        kind: found.kind.clone(),
        original: found.written.clone(),
        pinned: None,
        digest: None,
        previous_digest: None,
        verdict: NOT_VERIFIED.to_owned(),
        rule: None,
        signers: Vec::new(),
        error: None,
    };
    let mut problems = Vec::new();
    match result {
        Resolved::Invalid(e) => problems.push(e.clone()),
        Resolved::Unpinned(_) => {
            problems.push(format!("{} is not pinned to a digest", found.written))
        }
        Resolved::Failed(_, e) => problems.push(e.clone()),
        Resolved::Pinned {
            digest,
            text,
            previous,
            ..
        } => {
            report.pinned = Some(text.clone());
            report.digest = Some(digest.to_string());
            report.previous_digest = previous.as_ref().map(ToString::to_string);
        }
    }
    match verdict {
        None => {}
        Some(Ok(v)) => {
            report.verdict = v.outcome.as_str().to_owned();
            report.rule = Some(v.rule.clone()).filter(|r| !r.is_empty());
            report.signers = v.signers.clone();
            let reason = || {
                v.reason
                    .clone()
                    .unwrap_or_else(|| format!("{} failed verification", found.written))
            };
            if !v.outcome.admits() {
                problems.push(reason());
            } else if v.outcome == VerdictOutcome::NoRuleMatchedWarn {
                outcome
                    .notices
                    .push(format!("{}: {}", report.location(), reason()));
            }
        }
        Some(Err(e)) => {
            report.verdict = VERIFY_ERROR.to_owned();
            problems.push(e.clone());
        }
    }
    let mut edit = None;
    if problems.is_empty() && report.changed() {
        let text = report.pinned.clone().unwrap_or_default();
        match field.doc.site(&found.pointer) {
            Ok(site) => match splice::edit(site, &text) {
                Ok(e) => edit = Some(e),
                Err(e) => problems.push(e.to_string()),
            },
            Err(e) => problems.push(e.to_string()),
        }
    }
    if !problems.is_empty() {
        let joined = problems.join("; ");
        outcome
            .problems
            .push(format!("{}: {joined}", report.location()));
        report.error = Some(joined);
    }
    (report, edit)
}

/// Counts of the inputs' images by what happened to them, for the summary line.
pub fn summary(images: &[ImageReport]) -> HashMap<&'static str, usize> {
    let mut counts = HashMap::new();
    for image in images {
        let key = if image.error.is_some() {
            "refused"
        } else if image.changed() {
            "pinned"
        } else {
            "unchanged"
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}
