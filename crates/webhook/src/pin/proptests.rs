//! Property: over generated manifests of every style, pinning changes nothing but the image
//! scalars, pins every one of them, and is idempotent.

use std::sync::Arc;

use proptest::prelude::*;

use super::lookup::Mode;
use super::tests::{FakeRegistry, admit, run, run_annotated};

/// One container as written.
#[derive(Debug, Clone)]
struct Container {
    name: String,
    image: String,
    quote: u8,
    comment: bool,
    flow: bool,
}

/// One styled document.
#[derive(Debug, Clone)]
struct Doc {
    kind: u8,
    indent: usize,
    indent_sequences: bool,
    containers: Vec<Container>,
    init: Vec<Container>,
    leading_comment: bool,
    end_marker: bool,
}

fn image() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "",
            "docker.io/",
            "ghcr.io/team/",
            "127.0.0.1:5443/",
            "registry.example.com:8443/a/b/",
        ]),
        "[a-z][a-z0-9]{0,6}",
        prop::option::of("[a-zA-Z0-9_][a-zA-Z0-9._-]{0,8}"),
    )
        .prop_map(|(registry, repo, tag)| match tag {
            Some(t) => format!("{registry}{repo}:{t}"),
            None => format!("{registry}{repo}"),
        })
}

fn container() -> impl Strategy<Value = Container> {
    ("[a-z]{1,6}", image(), 0u8..3, any::<bool>(), any::<bool>()).prop_map(
        |(name, image, quote, comment, flow)| Container {
            name,
            image,
            quote,
            comment,
            flow,
        },
    )
}

fn doc() -> impl Strategy<Value = Doc> {
    (
        0u8..3,
        prop::sample::select(vec![2usize, 3, 4]),
        any::<bool>(),
        prop::collection::vec(container(), 1..4),
        prop::collection::vec(container(), 0..2),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(kind, indent, indent_sequences, containers, init, leading_comment, end_marker)| Doc {
                kind,
                indent,
                indent_sequences,
                containers,
                init,
                leading_comment,
                end_marker,
            },
        )
}

fn quoted(c: &Container) -> String {
    match c.quote {
        0 => c.image.clone(),
        1 => format!("'{}'", c.image),
        _ => format!("\"{}\"", c.image),
    }
}

/// Renders the document's lines at `depth` levels of the document's indentation.
fn render(doc: &Doc) -> Vec<String> {
    let pad = |depth: usize| " ".repeat(depth * doc.indent);
    let mut lines = Vec::new();
    if doc.leading_comment {
        lines.push("# generated".to_owned());
    }
    let (api, kind, path): (&str, &str, &[&str]) = match doc.kind {
        0 => ("v1", "Pod", &["spec"]),
        1 => ("apps/v1", "Deployment", &["spec", "template", "spec"]),
        _ => (
            "batch/v1",
            "CronJob",
            &["spec", "jobTemplate", "spec", "template", "spec"],
        ),
    };
    lines.push(format!("apiVersion: {api}"));
    lines.push(format!("kind: {kind}"));
    lines.push("metadata: {name: generated}  # name".to_owned());
    for (depth, key) in path.iter().enumerate() {
        lines.push(format!("{}{key}:", pad(depth)));
    }
    let depth = path.len();
    for (list, containers) in [
        ("containers", &doc.containers),
        ("initContainers", &doc.init),
    ] {
        if containers.is_empty() {
            continue;
        }
        lines.push(format!("{}{list}:", pad(depth)));
        let item = if doc.indent_sequences {
            depth + 1
        } else {
            depth
        };
        for c in containers {
            let comment = if c.comment { " # the image" } else { "" };
            if c.flow {
                lines.push(format!(
                    "{}- {{name: {}, image: {}}}{comment}",
                    pad(item),
                    c.name,
                    quoted(c)
                ));
            } else {
                lines.push(format!("{}- name: {}", pad(item), c.name));
                lines.push(format!("{}  image: {}{comment}", pad(item), quoted(c)));
            }
        }
    }
    if doc.end_marker {
        lines.push("...".to_owned());
    }
    lines
}

fn stream(docs: &[Doc], crlf: bool) -> String {
    let newline = if crlf { "\r\n" } else { "\n" };
    let mut text = String::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 || d.end_marker {
            text.push_str("---");
            text.push_str(newline);
        }
        for line in render(d) {
            text.push_str(&line);
            text.push_str(newline);
        }
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn only_image_scalars_change(docs in prop::collection::vec(doc(), 1..4), crlf in any::<bool>()) {
        let text = stream(&docs, crlf);
        let out = run(&[&text], Arc::new(FakeRegistry::default()), Mode::Pin);
        prop_assert!(out.problems.is_empty(), "{:?}\n{text}", out.problems);
        let expected: usize = docs.iter().map(|d| d.containers.len() + d.init.len()).sum();
        prop_assert_eq!(out.images.len(), expected);
        let pinned = &out.outputs[0];
        let mut stripped = pinned.clone();
        for image in &out.images {
            stripped = stripped.replace(&format!("@{}", image.digest.as_deref().unwrap_or("none")), "");
        }
        prop_assert_eq!(&stripped, &text);
        let check = run(&[pinned], Arc::new(FakeRegistry::default()), Mode::Check);
        prop_assert!(check.problems.is_empty(), "{:?}", check.problems);
        let again = run(&[pinned], Arc::new(FakeRegistry::default()), Mode::Pin);
        prop_assert_eq!(&again.outputs[0], pinned);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn annotated_output_is_admitted_unchanged_and_stable(docs in prop::collection::vec(doc(), 1..3), crlf in any::<bool>()) {
        let text = stream(&docs, crlf);
        let out = run_annotated(&text, true);
        prop_assert!(out.problems.is_empty(), "{:?}\n{text}", out.problems);
        let pinned = &out.outputs[0];
        let parsed = super::source::parse_stream(pinned).map_err(|e| TestCaseError::fail(format!("{e}\n{pinned}")))?;
        let objects: Vec<_> = parsed.iter().filter(|d| d.value.is_object()).collect();
        prop_assert_eq!(objects.len(), docs.len());
        for (d, parsed) in docs.iter().zip(objects) {
            let (group, kind) = match d.kind {
                0 => ("", "Pod"),
                1 => ("apps", "Deployment"),
                _ => ("batch", "CronJob"),
            };
            prop_assert!(parsed.value["metadata"]["annotations"]["tagpin.dev/images"].is_string(), "{pinned}");
            let answer = admit(group, kind, parsed.value.clone(), true);
            prop_assert!(answer["response"].get("patch").is_none(), "{answer}\n{pinned}");
        }
        let again = run_annotated(pinned, true);
        prop_assert_eq!(&again.outputs[0], pinned);
    }
}
