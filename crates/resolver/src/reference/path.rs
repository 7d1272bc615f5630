//! Repository path validation: `/`-separated components of
//! `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.

/// Longest repository name (path without registry host) a registry accepts.
pub(super) const MAX_REPOSITORY_LEN: usize = 255;

/// Why one path component is invalid, with the offending component.
pub(super) struct ComponentError<'a> {
    /// The component as written.
    pub component: &'a str,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Checks every `/`-separated component of `path`.
///
/// Uppercase letters are reported separately by the caller, so here they are
/// simply characters outside the alphabet.
pub(super) fn validate(path: &str) -> Result<(), ComponentError<'_>> {
    for component in path.split('/') {
        validate_component(component).map_err(|reason| ComponentError { component, reason })?;
    }
    Ok(())
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Checks one component against `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn validate_component(component: &str) -> Result<(), &'static str> {
    let bytes = component.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return Err("empty component (leading, trailing or double '/')");
    };
    if let Some(&bad) = bytes
        .iter()
        .find(|&&b| !(is_alnum(b) || matches!(b, b'.' | b'_' | b'-')))
    {
        return Err(if bad.is_ascii() {
            "only lowercase letters, digits and the separators '.', '_', '__' and '-' are allowed"
        } else {
            "only ASCII lowercase letters, digits and the separators '.', '_', '__' and '-' are allowed"
        });
    }
    if !is_alnum(first) {
        return Err("must start with a lowercase letter or digit");
    }
    if !is_alnum(last) {
        return Err("must end with a lowercase letter or digit");
    }
    // Every maximal run of separator bytes must be one accepted separator.
    for run in component.split(|c: char| c.is_ascii_alphanumeric()) {
        let ok = run.is_empty()
            || run == "."
            || run == "_"
            || run == "__"
            || run.bytes().all(|b| b == b'-');
        if !ok {
            return Err(
                "separators between letters and digits must be '.', '_', '__' or a run of '-'",
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_separator_forms() {
        for ok in [
            "a",
            "nginx",
            "0",
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "a.b_c__d-e",
            "library/nginx",
            "a/b/c",
        ] {
            assert!(validate(ok).is_ok(), "{ok} rejected");
        }
    }

    #[test]
    fn rejects_bad_separators_and_characters() {
        for bad in [
            "", "/a", "a/", "a//b", "a___b", "a..b", "a._b", "a-.b", "-a", "a-", ".a", "a.", "_a",
            "a_", "A", "a b", "a:b", "ä",
        ] {
            assert!(validate(bad).is_err(), "{bad:?} accepted");
        }
    }
}
