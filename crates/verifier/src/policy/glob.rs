//! Image globs over `registry/repository`, with a specificity for rule choice.

/// A compiled image glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageGlob {
    pattern: String,
}

impl ImageGlob {
    /// Accepts a glob; `*` matches within one path segment, `**` across segments.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let p = pattern.trim();
        if p.is_empty() {
            return Err("image glob is empty".into());
        }
        if p.contains('@') || p.contains("***") {
            return Err(format!(
                "image glob {p:?} must match registry/repository only (no digest, at most `**`)"
            ));
        }
        Ok(Self {
            pattern: p.to_owned(),
        })
    }

    /// Number of literal characters: a longer literal part is a more specific glob.
    pub fn specificity(&self) -> usize {
        self.pattern.chars().filter(|c| *c != '*').count()
    }

    /// True when `name` (`registry/repository`) matches the glob.
    pub fn matches(&self, name: &str) -> bool {
        matches(self.pattern.as_bytes(), name.as_bytes())
    }
}

fn matches(p: &[u8], s: &[u8]) -> bool {
    match p {
        [] => s.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| matches(rest, &s[i..])),
        [b'*', rest @ ..] => {
            for i in 0..=s.len() {
                if matches(rest, &s[i..]) {
                    return true;
                }
                if s.get(i) == Some(&b'/') {
                    return false;
                }
            }
            false
        }
        [c, rest @ ..] => s.first() == Some(c) && matches(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str) -> ImageGlob {
        ImageGlob::new(p).unwrap()
    }

    #[test]
    fn single_star_stays_in_segment() {
        assert!(g("reg.io/team/*").matches("reg.io/team/app"));
        assert!(!g("reg.io/team/*").matches("reg.io/team/sub/app"));
        assert!(g("reg.io/team/**").matches("reg.io/team/sub/app"));
        assert!(g("**").matches("docker.io/library/nginx"));
        assert!(!g("reg.io/team/app").matches("reg.io/team/app2"));
        assert!(g("*.example.com/**").matches("r1.example.com/a/b"));
    }

    #[test]
    fn literal_globs_are_more_specific() {
        assert!(g("reg.io/team/app").specificity() > g("reg.io/team/*").specificity());
        assert!(g("reg.io/team/*").specificity() > g("**").specificity());
    }

    #[test]
    fn rejects_digests_and_empty() {
        assert!(ImageGlob::new("").is_err());
        assert!(ImageGlob::new("reg.io/a@sha256:00").is_err());
    }
}
