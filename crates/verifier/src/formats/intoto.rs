//! in-toto statements (v0.1 and v1) carried in DSSE payloads.

use std::collections::BTreeMap;

use serde::Deserialize;
use tagpin_resolver::Digest;

const STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";
const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";

/// A parsed in-toto statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// Digests of the statement's subjects, as `algorithm -> hex` maps.
    pub subjects: Vec<BTreeMap<String, String>>,
    /// The predicate type.
    pub predicate_type: String,
    /// The predicate (JSON null when absent).
    pub predicate: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatementJson {
    #[serde(rename = "_type")]
    type_: String,
    #[serde(default)]
    subject: Vec<SubjectJson>,
    predicate_type: String,
    #[serde(default)]
    predicate: serde_json::Value,
}

#[derive(Deserialize)]
struct SubjectJson {
    #[serde(default)]
    digest: BTreeMap<String, String>,
}

impl Statement {
    /// Parses a statement, accepting the v0.1 and v1 statement types.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let json: StatementJson = serde_json::from_slice(bytes)
            .map_err(|e| format!("payload is not an in-toto statement: {e}"))?;
        if json.type_ != STATEMENT_V01 && json.type_ != STATEMENT_V1 {
            return Err(format!(
                "in-toto statement type {:?} is not supported",
                json.type_
            ));
        }
        Ok(Self {
            subjects: json.subject.into_iter().map(|s| s.digest).collect(),
            predicate_type: json.predicate_type,
            predicate: json.predicate,
        })
    }

    /// True when one of the subjects has exactly `digest`.
    pub fn has_subject(&self, digest: &Digest) -> bool {
        let alg = digest.algorithm().name();
        self.subjects.iter().any(|s| {
            s.get(alg)
                .is_some_and(|h| h.eq_ignore_ascii_case(digest.hex()))
        })
    }
}
