//! A YAML (or JSON) stream read into one JSON value per document, with the source span of
//! every scalar, so image fields can be rewritten in place without touching anything else.

use std::collections::HashMap;
use std::ops::Range;

use granit_parser::{Event, Parser, ScalarStyle, Span, StructureStyle};
use serde_json::{Map, Value};

/// How a scalar is written in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `image: nginx:1.25`
    Plain,
    /// `image: 'nginx:1.25'`
    SingleQuoted,
    /// `image: "nginx:1.25"` (and every JSON string)
    DoubleQuoted,
    /// `image: |` or `image: >` followed by indented lines.
    Block,
}

/// Where one scalar sits in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Byte range of the scalar token, quotes included, anchor and tag excluded.
    pub span: Range<usize>,
    /// Its quoting style.
    pub style: Style,
    /// True when the scalar carries an anchor (`&name`), so aliases elsewhere repeat it.
    pub anchored: bool,
}

/// Where one mapping sits in the source, to insert entries into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSite {
    /// Written `{...}` rather than as indented lines.
    pub flow: bool,
    /// Byte offset just after the opening `{` (flow mappings).
    pub open: usize,
    /// Column of its keys (block mappings), when it has any.
    pub key_col: Option<usize>,
    /// Byte offset of the end of its last entry's content, when it has any.
    pub last_end: Option<usize>,
}

/// One document of the stream.
#[derive(Debug, Clone)]
pub struct Document {
    /// Position of the document in its stream, from 0.
    pub index: usize,
    /// The document's data, as Kubernetes reads it.
    pub value: Value,
    /// Source site of every scalar, by JSON pointer.
    sites: HashMap<String, Site>,
    /// Pointers whose values were copied from an anchor (aliases and merge keys).
    copied: Vec<String>,
    /// Source site of every mapping, by JSON pointer.
    maps: HashMap<String, MapSite>,
}

/// Why a scalar cannot be rewritten in place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiteError {
    /// The value is repeated from an anchor elsewhere in the document.
    #[error("the value comes from a YAML alias or merge key; write the image where it is used")]
    Copied,
    /// No scalar was found at the pointer.
    #[error("no scalar in the source at this field")]
    Missing,
}

/// Why a stream is not readable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// Not valid YAML.
    #[error("not valid YAML: {0}")]
    Syntax(String),
    /// Valid YAML that Kubernetes manifests never contain.
    #[error("line {line}: {what}")]
    Unsupported {
        /// 1-based line of the offending node.
        line: usize,
        /// What is wrong.
        what: String,
    },
}

impl Document {
    /// The source site of the mapping at `pointer`.
    pub fn map_site(&self, pointer: &str) -> Option<&MapSite> {
        self.maps.get(pointer)
    }

    /// The source site of the scalar at `pointer`.
    pub fn site(&self, pointer: &str) -> Result<&Site, SiteError> {
        if let Some(site) = self.sites.get(pointer) {
            return Ok(site);
        }
        let inside = |prefix: &String| {
            pointer == prefix
                || pointer
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        if self.copied.iter().any(inside) {
            Err(SiteError::Copied)
        } else {
            Err(SiteError::Missing)
        }
    }
}

/// Escapes one JSON pointer token.
pub fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Reads every document of `text`.
pub fn parse_stream(text: &str) -> Result<Vec<Document>, SourceError> {
    let mut builder = Builder::default();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| SourceError::Syntax(e.to_string()))?;
        // Block scalars' spans run on to the next token; their content ends at the last
        // character that is not white space.
        let reach = span
            .end
            .byte_offset()
            .and_then(|end| text.get(..end))
            .map(|before| before.trim_end().len());
        builder.event(event, span, reach)?;
    }
    Ok(builder.documents)
}

/// A collection being read.
enum Frame {
    Sequence {
        pointer: String,
        anchor: usize,
        items: Vec<Value>,
        flow: bool,
        last_end: Option<usize>,
    },
    Mapping {
        pointer: String,
        anchor: usize,
        entries: Map<String, Value>,
        key: Option<String>,
        merges: Vec<Value>,
        line: usize,
        site: MapSite,
    },
}

impl Frame {
    fn last_end(&mut self) -> &mut Option<usize> {
        match self {
            Frame::Sequence { last_end, .. } => last_end,
            Frame::Mapping { site, .. } => &mut site.last_end,
        }
    }
}

#[derive(Default)]
struct Builder {
    documents: Vec<Document>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Value>,
    sites: HashMap<String, Site>,
    copied: Vec<String>,
    maps: HashMap<String, MapSite>,
    root: Option<Value>,
}

impl Builder {
    fn event(
        &mut self,
        event: Event<'_>,
        span: Span,
        reach: Option<usize>,
    ) -> Result<(), SourceError> {
        let line = span.start.line();
        if let (Event::Scalar(..) | Event::Alias(_), Some(end)) = (&event, reach) {
            self.extend(end);
        }
        match event {
            Event::DocumentStart(..) => {
                self.anchors.clear();
                self.root = None;
            }
            Event::DocumentEnd => self.end_document(),
            Event::Scalar(text, style, anchor, tag) => {
                if self.is_key_position() {
                    return self.key(text.into_owned(), span.start.col());
                }
                let pointer = self.child_pointer();
                let value = typed(&text, style, tag.is_some());
                if let Some(range) = span.byte_range() {
                    let style = match style {
                        ScalarStyle::Plain => Style::Plain,
                        ScalarStyle::SingleQuoted => Style::SingleQuoted,
                        ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
                        _ => Style::Block,
                    };
                    let anchored = anchor != 0;
                    let site = Site {
                        span: range,
                        style,
                        anchored,
                    };
                    self.sites.insert(pointer, site);
                }
                self.finish(value, anchor, line)?;
            }
            Event::Alias(id) => {
                if self.is_key_position() {
                    return Err(unsupported(line, "an alias as a mapping key"));
                }
                let value = self.anchors.get(&id).cloned().unwrap_or(Value::Null);
                let pointer = self.child_pointer();
                self.copied.push(pointer);
                self.finish(value, 0, line)?;
            }
            Event::SequenceStart(style, anchor, _) => {
                let pointer = self.open(line)?;
                self.stack.push(Frame::Sequence {
                    pointer,
                    anchor,
                    items: Vec::new(),
                    flow: style == StructureStyle::Flow,
                    last_end: None,
                });
            }
            Event::MappingStart(style, anchor, _) => {
                let pointer = self.open(line)?;
                let site = MapSite {
                    flow: style == StructureStyle::Flow,
                    open: span.end.byte_offset().unwrap_or_default(),
                    key_col: None,
                    last_end: None,
                };
                self.stack.push(Frame::Mapping {
                    pointer,
                    anchor,
                    entries: Map::new(),
                    key: None,
                    merges: Vec::new(),
                    line,
                    site,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(span.end.byte_offset())?,
            _ => {}
        }
        Ok(())
    }

    fn end_document(&mut self) {
        let index = self.documents.len();
        self.documents.push(Document {
            index,
            value: self.root.take().unwrap_or(Value::Null),
            sites: std::mem::take(&mut self.sites),
            copied: std::mem::take(&mut self.copied),
            maps: std::mem::take(&mut self.maps),
        });
        self.stack.clear();
    }

    /// True when the next node is a mapping key.
    fn is_key_position(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Mapping { key: None, .. }))
    }

    fn key(&mut self, text: String, col: usize) -> Result<(), SourceError> {
        if let Some(Frame::Mapping { key, site, .. }) = self.stack.last_mut() {
            *key = Some(text);
            site.key_col.get_or_insert(col);
        }
        Ok(())
    }

    /// Notes that the innermost collection's content reaches `end`.
    fn extend(&mut self, end: usize) {
        if let Some(frame) = self.stack.last_mut() {
            let last = frame.last_end();
            *last = Some(last.map_or(end, |l| l.max(end)));
        }
    }

    /// The pointer of the collection about to open; keys must be scalars.
    fn open(&mut self, line: usize) -> Result<String, SourceError> {
        if self.is_key_position() {
            return Err(unsupported(line, "a collection as a mapping key"));
        }
        Ok(self.child_pointer())
    }

    /// The pointer of the next child of the innermost collection.
    fn child_pointer(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Sequence { pointer, items, .. }) => format!("{pointer}/{}", items.len()),
            Some(Frame::Mapping { pointer, key, .. }) => {
                format!(
                    "{pointer}/{}",
                    pointer_token(key.as_deref().unwrap_or_default())
                )
            }
        }
    }

    /// Closes the innermost collection; `end` is the byte offset after its end token.
    fn close(&mut self, end: Option<usize>) -> Result<(), SourceError> {
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        let (value, anchor, line, reach) = match frame {
            Frame::Sequence {
                anchor,
                items,
                flow,
                last_end,
                ..
            } => {
                let reach = if flow { end } else { last_end };
                (Value::Array(items), anchor, 0, reach)
            }
            Frame::Mapping {
                pointer,
                anchor,
                mut entries,
                merges,
                line,
                site,
                ..
            } => {
                self.merge(&pointer, &mut entries, merges);
                let reach = if site.flow { end } else { site.last_end };
                self.maps.insert(pointer, site);
                (Value::Object(entries), anchor, line, reach)
            }
        };
        if let Some(reach) = reach {
            self.extend(reach);
        }
        self.finish(value, anchor, line)
    }

    /// Applies `<<` merge keys: entries of the merged mappings that the mapping lacks.
    fn merge(&mut self, pointer: &str, entries: &mut Map<String, Value>, merges: Vec<Value>) {
        let merged = merges.into_iter().flat_map(|m| match m {
            Value::Array(list) => list,
            other => vec![other],
        });
        for source in merged {
            let Value::Object(source) = source else {
                continue;
            };
            for (key, value) in source {
                if !entries.contains_key(&key) {
                    self.copied
                        .push(format!("{pointer}/{}", pointer_token(&key)));
                    entries.insert(key, value);
                }
            }
        }
    }

    /// Places a finished node into its parent (or as the document root).
    fn finish(&mut self, value: Value, anchor: usize, line: usize) -> Result<(), SourceError> {
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Sequence { items, .. }) => items.push(value),
            Some(Frame::Mapping {
                entries,
                key,
                merges,
                line: map_line,
                ..
            }) => {
                let Some(k) = key.take() else {
                    return Ok(());
                };
                if k == "<<" {
                    merges.push(value);
                } else if entries.insert(k.clone(), value).is_some() {
                    let at = if line == 0 { *map_line } else { line };
                    return Err(unsupported(at, &format!("duplicate mapping key {k:?}")));
                }
            }
        }
        Ok(())
    }
}

fn unsupported(line: usize, what: &str) -> SourceError {
    SourceError::Unsupported {
        line,
        what: format!("{what} is not supported in Kubernetes manifests"),
    }
}

/// The JSON value of a scalar: plain scalars follow the YAML core schema, quoted and tagged
/// ones are strings.
fn typed(text: &str, style: ScalarStyle, tagged: bool) -> Value {
    if style != ScalarStyle::Plain || tagged {
        return Value::String(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let numeric = text
        .strip_prefix(['-', '+'])
        .unwrap_or(text)
        .starts_with(|c: char| c.is_ascii_digit() || c == '.');
    if numeric {
        if let Ok(i) = text.parse::<i64>() {
            return Value::from(i);
        }
        if let Some(n) = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        {
            return Value::Number(n);
        }
    }
    Value::String(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site_text<'a>(text: &'a str, doc: &Document, pointer: &str) -> &'a str {
        &text[doc.site(pointer).unwrap().span.clone()]
    }

    #[test]
    fn reads_documents_with_scalar_spans() {
        let text = "# c\napiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: a\n    image: 'nginx:1.25' # x\n  - {name: b, image: \"redis\"}\n---\nkind: List\nitems: []\n...\n";
        let docs = parse_stream(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].value["spec"]["containers"][1]["image"], "redis");
        assert_eq!(
            site_text(text, &docs[0], "/spec/containers/0/image"),
            "'nginx:1.25'"
        );
        assert_eq!(
            site_text(text, &docs[0], "/spec/containers/1/image"),
            "\"redis\""
        );
        assert_eq!(site_text(text, &docs[0], "/kind"), "Pod");
        assert_eq!(docs[1].value["kind"], "List");
    }

    #[test]
    fn aliases_and_merges_are_copies() {
        let text = "a: &x {image: nginx}\nb: *x\nc:\n  <<: *x\n  name: c\n";
        let docs = parse_stream(text).unwrap();
        assert_eq!(docs[0].value["b"]["image"], "nginx");
        assert_eq!(docs[0].value["c"]["image"], "nginx");
        assert!(docs[0].site("/a/image").is_ok());
        assert_eq!(docs[0].site("/b/image"), Err(SiteError::Copied));
        assert_eq!(docs[0].site("/c/image"), Err(SiteError::Copied));
        assert_eq!(docs[0].site("/c/nameless"), Err(SiteError::Missing));
    }

    #[test]
    fn types_plain_scalars_only() {
        let docs = parse_stream("a: 1\nb: '1'\nc: true\nd: ~\ne: 1.5\nf: !!str 2\n").unwrap();
        let v = &docs[0].value;
        assert_eq!(v["a"], 1);
        assert_eq!(v["b"], "1");
        assert_eq!(v["c"], true);
        assert_eq!(v["d"], Value::Null);
        assert_eq!(v["e"], 1.5);
        assert_eq!(v["f"], "2");
    }

    #[test]
    fn rejects_duplicate_keys_and_bad_yaml() {
        let err = parse_stream("a: 1\na: 2\n").unwrap_err().to_string();
        assert!(err.contains("duplicate mapping key \"a\""), "{err}");
        assert!(matches!(
            parse_stream("a: [1\n"),
            Err(SourceError::Syntax(_))
        ));
    }

    #[test]
    fn records_where_mappings_end() {
        let text = "metadata:\n  name: a # c\n  labels:\n    x: y\nspec: {a: [1, 2] }\n";
        let docs = parse_stream(text).unwrap();
        let meta = docs[0].map_site("/metadata").unwrap();
        assert!(!meta.flow);
        assert_eq!(meta.key_col, Some(2));
        assert_eq!(
            &text[..meta.last_end.unwrap()],
            "metadata:\n  name: a # c\n  labels:\n    x: y"
        );
        let spec = docs[0].map_site("/spec").unwrap();
        assert!(spec.flow);
        assert_eq!(&text[spec.open..spec.last_end.unwrap()], "a: [1, 2]");
    }

    #[test]
    fn reads_json_and_crlf() {
        let text = "{\r\n  \"kind\": \"Pod\",\r\n  \"spec\": {\"containers\": [{\"image\": \"a:1\"}]}\r\n}\r\n";
        let docs = parse_stream(text).unwrap();
        assert_eq!(
            site_text(text, &docs[0], "/spec/containers/0/image"),
            "\"a:1\""
        );
    }
}
