//! `--diff`: the change of each file as a unified diff.

use similar::TextDiff;

/// The unified diff from `old` to `new` of the file `name`, empty when they are equal.
pub fn unified(name: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_only_the_changed_line() {
        let old = "a: 1\nimage: nginx\nb: 2\n";
        let new = "a: 1\nimage: nginx@sha256:00\nb: 2\n";
        let diff = unified("x.yaml", old, new);
        assert!(diff.starts_with("--- a/x.yaml\n+++ b/x.yaml\n"), "{diff}");
        assert!(
            diff.contains("-image: nginx\n+image: nginx@sha256:00\n"),
            "{diff}"
        );
        assert!(unified("x.yaml", old, old).is_empty());
    }
}
