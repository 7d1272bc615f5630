//! Rewriting scalars in place: new text for one scalar in its own quoting style, spliced into
//! the original bytes so that nothing else of the file changes.

use std::ops::Range;

use super::source::{Site, Style};

/// One scalar to replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// Byte range of the scalar token in the source.
    pub span: Range<usize>,
    /// The token that replaces it, quotes included.
    pub token: String,
}

/// Why a scalar cannot be rewritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpliceError {
    /// `|` and `>` scalars carry line breaks and indentation of their own.
    #[error("the image is a block scalar (| or >); write it as a plain or quoted scalar")]
    Block,
    /// Other nodes repeat an anchored scalar; changing it would change them too.
    #[error(
        "the image carries a YAML anchor that other fields may repeat; write it without an anchor"
    )]
    Anchored,
    /// The new text cannot be written as a plain scalar.
    #[error("{0:?} cannot be written as a plain YAML scalar")]
    NotPlain(String),
}

/// The edit that makes the scalar at `site` hold `value`, in the scalar's own style.
pub fn edit(site: &Site, value: &str) -> Result<Edit, SpliceError> {
    if site.anchored {
        return Err(SpliceError::Anchored);
    }
    let token = match site.style {
        Style::Block => return Err(SpliceError::Block),
        Style::Plain => {
            if !plain_safe(value) {
                return Err(SpliceError::NotPlain(value.to_owned()));
            }
            value.to_owned()
        }
        Style::SingleQuoted => format!("'{}'", value.replace('\'', "''")),
        // JSON string escapes are valid YAML double-quoted escapes, so one form serves both.
        Style::DoubleQuoted => {
            serde_json::to_string(value).map_err(|_| SpliceError::NotPlain(value.to_owned()))?
        }
    };
    Ok(Edit {
        span: site.span.clone(),
        token,
    })
}

/// True when `value` reads back as the same string when written as a plain scalar, in
/// block and flow context alike. Image references always are; anything else is refused.
fn plain_safe(value: &str) -> bool {
    !value.is_empty()
        && value.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@' | '+')
        })
        && !value.starts_with(['-', ':', '@'])
        && !value.ends_with(':')
}

/// `source` with every edit applied; edits must not overlap.
pub fn apply(source: &str, edits: &[Edit]) -> String {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| e.span.start);
    let mut out = String::with_capacity(source.len() + edits.len() * 72);
    let mut at = 0;
    for e in sorted {
        if e.span.start < at || e.span.end > source.len() {
            continue;
        }
        out.push_str(&source[at..e.span.start]);
        out.push_str(&e.token);
        at = e.span.end;
    }
    out.push_str(&source[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(style: Style, span: Range<usize>) -> Site {
        Site {
            span,
            style,
            anchored: false,
        }
    }

    #[test]
    fn keeps_the_quoting_style() {
        let v = "a:1@sha256:00";
        assert_eq!(edit(&site(Style::Plain, 0..1), v).unwrap().token, v);
        assert_eq!(
            edit(&site(Style::SingleQuoted, 0..1), "it's")
                .unwrap()
                .token,
            "'it''s'"
        );
        assert_eq!(
            edit(&site(Style::DoubleQuoted, 0..1), "a\"b")
                .unwrap()
                .token,
            "\"a\\\"b\""
        );
    }

    #[test]
    fn refuses_block_anchored_and_unsafe_plain() {
        assert_eq!(
            edit(&site(Style::Block, 0..1), "a"),
            Err(SpliceError::Block)
        );
        let mut anchored = site(Style::Plain, 0..1);
        anchored.anchored = true;
        assert_eq!(edit(&anchored, "a"), Err(SpliceError::Anchored));
        assert!(edit(&site(Style::Plain, 0..1), "a #b").is_err());
        assert!(edit(&site(Style::Plain, 0..1), "-a").is_err());
    }

    #[test]
    fn applies_edits_in_source_order() {
        let edits = [
            Edit {
                span: 6..7,
                token: "BB".into(),
            },
            Edit {
                span: 0..1,
                token: "A".into(),
            },
        ];
        assert_eq!(apply("a: 1, b, c", &edits), "A: 1, BB, c");
    }
}
