//! Tag validation: `[\w][\w.-]{0,127}` with ASCII word characters.

/// Longest tag a registry accepts.
pub(super) const MAX_TAG_LEN: usize = 128;

/// Why a tag is invalid.
pub(super) enum TagError {
    /// The tag has a character outside `[A-Za-z0-9_.-]` or starts with `.` or `-`.
    Invalid,
    /// The tag is longer than [`MAX_TAG_LEN`].
    TooLong,
}

/// Checks a non-empty tag.
pub(super) fn validate(tag: &str) -> Result<(), TagError> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut bytes = tag.bytes();
    let first_ok = bytes.next().is_some_and(word);
    if !first_ok || !bytes.all(|b| word(b) || b == b'.' || b == b'-') {
        return Err(TagError::Invalid);
    }
    if tag.len() > MAX_TAG_LEN {
        return Err(TagError::TooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_word_dot_dash_tags_up_to_128() {
        for ok in [
            "latest",
            "1.25",
            "v1.2.3-rc.1",
            "_x",
            "A-b_C.d",
            &"a".repeat(128),
        ] {
            assert!(validate(ok).is_ok(), "{ok} rejected");
        }
    }

    #[test]
    fn rejects_bad_tags() {
        assert!(matches!(validate(&"a".repeat(129)), Err(TagError::TooLong)));
        for bad in ["", ".x", "-x", "a+b", "a/b", "é", "a b"] {
            assert!(
                matches!(validate(bad), Err(TagError::Invalid)),
                "{bad:?} accepted"
            );
        }
    }
}
