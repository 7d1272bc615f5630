//! CEL conditions over an attestation's predicate.

use std::fmt;

/// A CEL expression, parsed at policy load, evaluated with `predicate` bound.
pub struct Condition {
    source: String,
    program: cel::Program,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

impl Condition {
    /// Parses `source`; the only variable it may use is `predicate`.
    pub fn compile(source: &str) -> Result<Self, String> {
        let program = cel::Program::compile(source)
            .map_err(|e| format!("invalid CEL condition {source:?}: {e}"))?;
        let references = program.references();
        let unknown: Vec<&str> = references
            .variables()
            .into_iter()
            .filter(|v| *v != "predicate")
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "CEL condition {source:?} refers to {unknown:?}; only `predicate` is defined"
            ));
        }
        Ok(Self {
            source: source.to_owned(),
            program,
        })
    }

    /// Evaluates the condition; anything but `true` is an explanation of why not.
    pub fn holds(&self, predicate: &serde_json::Value) -> Result<(), String> {
        let mut context = cel::Context::default();
        context
            .add_variable("predicate", predicate.clone())
            .map_err(|e| format!("predicate cannot be given to CEL: {e}"))?;
        match self.program.execute(&context) {
            Ok(cel::Value::Bool(true)) => Ok(()),
            Ok(cel::Value::Bool(false)) => Err(format!("CEL condition {:?} is false", self.source)),
            Ok(other) => Err(format!(
                "CEL condition {:?} gave {other:?}, not a boolean",
                self.source
            )),
            Err(e) => Err(format!(
                "CEL condition {:?} failed to evaluate: {e}",
                self.source
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluates_over_predicate() {
        let c = Condition::compile(r#"predicate.builder.id == "https://b""#).unwrap();
        assert!(
            c.holds(&serde_json::json!({"builder": {"id": "https://b"}}))
                .is_ok()
        );
        let err = c
            .holds(&serde_json::json!({"builder": {"id": "https://x"}}))
            .unwrap_err();
        assert!(err.contains("is false"), "{err}");
        assert!(c.holds(&serde_json::json!({})).is_err());
    }

    #[test]
    fn rejects_bad_syntax_and_unknown_variables() {
        assert!(Condition::compile("predicate.a ==").is_err());
        let err = Condition::compile("image == 'x'").unwrap_err();
        assert!(err.contains("only `predicate`"), "{err}");
    }
}
