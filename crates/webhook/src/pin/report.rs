//! What `tagpin pin` says about each image: the `--output json` records and the lines on
//! stderr.

use serde::Serialize;

/// One image field of one input, as `--output json` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageReport {
    /// The file (`-` for stdin).
    pub file: String,
    /// Index of the document in the file, from 0.
    pub document: usize,
    /// JSON pointer to the field from the document's root.
    pub field: String,
    /// Kind of the object holding the field.
    pub kind: String,
    /// The image as written in the input.
    pub original: String,
    /// The image as written in the output, when it is pinned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned: Option<String>,
    /// The digest the field is pinned to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The digest the field carried before, when `--update` moved it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_digest: Option<String>,
    /// The verification verdict (`not-verified` without a policy).
    pub verdict: String,
    /// The policy rule applied, when one matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Who signed the digest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signers: Vec<String>,
    /// Why the field is refused (or, with `--check`, not pinned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ImageReport {
    /// Where the field is, for messages: `file: document N: /pointer`.
    pub fn location(&self) -> String {
        format!("{}: document {}: {}", self.file, self.document, self.field)
    }

    /// True when the output changes the field.
    pub fn changed(&self) -> bool {
        self.pinned.as_deref().is_some_and(|p| p != self.original)
    }

    /// The line saying a digest moved, when `--update` moved one.
    pub fn moved(&self) -> Option<String> {
        let previous = self.previous_digest.as_deref()?;
        let digest = self.digest.as_deref()?;
        (previous != digest).then(|| {
            format!(
                "{}: {} moved {previous} -> {digest}",
                self.location(),
                self.original
                    .rsplit_once('@')
                    .map_or(&*self.original, |(t, _)| t)
            )
        })
    }
}
