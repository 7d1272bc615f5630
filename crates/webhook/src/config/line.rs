//! Finds the line of a config field named in a validation error, so the error can point at it.

/// The 1-based line of the block-style YAML key at dotted `path` (e.g.
/// `resolver.timeouts.connectSeconds`) in `text`. When a key is written in a flow mapping
/// (`timeouts: {connectSeconds: 2}`), the line of that mapping; `None` when not found.
pub fn line_of(text: &str, path: &[String]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0;
    let mut parent_indent: Option<usize> = None;
    let mut found = None;
    for key in path {
        let mut child_indent = None;
        let mut hit = None;
        for (i, line) in lines.iter().enumerate().skip(start) {
            let content = line.trim_start();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let indent = line.len() - content.len();
            if parent_indent.is_some_and(|p| indent <= p) {
                break;
            }
            let level = *child_indent.get_or_insert(indent);
            if indent != level {
                continue;
            }
            if key_of(content) == Some(key.as_str()) {
                hit = Some((i, indent));
                break;
            }
        }
        match hit {
            Some((i, indent)) => {
                found = Some(i + 1);
                start = i + 1;
                parent_indent = Some(indent);
            }
            // A flow mapping on the parent's line holds the rest of the path.
            None => return found,
        }
    }
    found
}

/// The key of a `key: value` line, without quotes.
fn key_of(content: &str) -> Option<&str> {
    let content = content.strip_prefix("- ").unwrap_or(content);
    let (key, _) = content.split_once(':')?;
    let key = key.trim();
    Some(
        key.strip_prefix('"')
            .and_then(|k| k.strip_suffix('"'))
            .or_else(|| key.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')))
            .unwrap_or(key),
    )
}

/// The dotted field path a validation message starts with: `resolver: timeouts.x must …` →
/// `[resolver, timeouts, x]`; quoted segments (`registries."host:5000":`) stay whole.
pub fn field_path(message: &str) -> Vec<String> {
    let mut path = Vec::new();
    let mut rest = message;
    loop {
        let token = next_token(rest);
        let Some(field) = token.strip_suffix(':') else {
            // Validation messages read "<field> must …"; other text is not a field.
            if rest[token.len()..].starts_with(" must ") {
                path.extend(split_dotted(token));
            }
            return path;
        };
        path.extend(split_dotted(field));
        rest = rest[token.len()..].trim_start();
    }
}

/// The first space-separated token, keeping quoted text (which may hold spaces) together.
fn next_token(text: &str) -> &str {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => return &text[..i],
            _ => {}
        }
    }
    text
}

fn split_dotted(field: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in field.chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts.retain(|p| !p.is_empty());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn finds_nested_block_keys_and_flow_parents() {
        let text = "# tagpin\ndeadlineSeconds: 5\nresolver:\n  cache: {ttlSeconds: 3}\n  timeouts:\n    deadlineSeconds: 2\n    connectSeconds: -1\nserver:\n  address: 1\n";
        assert_eq!(line_of(text, &path(&["deadlineSeconds"])), Some(2));
        assert_eq!(
            line_of(text, &path(&["resolver", "timeouts", "connectSeconds"])),
            Some(7)
        );
        assert_eq!(
            line_of(text, &path(&["resolver", "timeouts", "deadlineSeconds"])),
            Some(6)
        );
        assert_eq!(
            line_of(text, &path(&["resolver", "cache", "ttlSeconds"])),
            Some(4)
        );
        assert_eq!(line_of(text, &path(&["server", "address"])), Some(9));
        assert_eq!(line_of(text, &path(&["verification"])), None);
    }

    #[test]
    fn reads_the_field_path_of_a_message() {
        assert_eq!(
            field_path("resolver: timeouts.connectSeconds must be positive"),
            path(&["resolver", "timeouts", "connectSeconds"])
        );
        assert_eq!(
            field_path("resolver: registries.\"a.example:5000\": not a host"),
            path(&["resolver", "registries", "a.example:5000"])
        );
        assert_eq!(
            field_path("server.maxBodyBytes must be at least 1024"),
            path(&["server", "maxBodyBytes"])
        );
    }
}
