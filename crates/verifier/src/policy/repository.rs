//! Comparing the docker-reference a signature names with the image verified,
//! honouring mirrors and renames configured as equivalent repositories.

/// Reduces a reference to `registry/repository`, normalising Docker Hub.
pub fn normalize(reference: &str) -> String {
    let no_digest = reference.split('@').next().unwrap_or_default();
    let no_tag = match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    };
    let (host, path) = match no_tag.split_once('/') {
        Some((h, p)) if h.contains('.') || h.contains(':') || h == "localhost" => (h, p.to_owned()),
        _ => ("docker.io", no_tag.to_owned()),
    };
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        h => h,
    };
    let path = if host == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    format!("{}/{}", host.to_ascii_lowercase(), path)
}

/// True when `signed` (from a payload) names `verified` (`registry/repository`)
/// or a repository configured as equivalent to it.
pub fn same_repository(signed: &str, verified: &str, equivalents: &[Vec<String>]) -> bool {
    if signed.trim().is_empty() {
        return false;
    }
    let signed = normalize(signed);
    let verified = normalize(verified);
    if signed == verified {
        return true;
    }
    equivalents.iter().any(|group| {
        let group: Vec<String> = group.iter().map(|r| normalize(r)).collect();
        group.contains(&signed) && group.contains(&verified)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_docker_hub_tags_and_digests() {
        assert_eq!(normalize("nginx"), "docker.io/library/nginx");
        assert_eq!(
            normalize("index.docker.io/library/nginx:1.2"),
            "docker.io/library/nginx"
        );
        assert_eq!(
            normalize("localhost:5000/a/b@sha256:00"),
            "localhost:5000/a/b"
        );
        assert_eq!(normalize("127.0.0.1:5000/a:tag"), "127.0.0.1:5000/a");
    }

    #[test]
    fn honours_equivalent_repositories() {
        let eq = vec![vec![
            "reg.io/team/app".to_owned(),
            "mirror.local:5000/app".to_owned(),
        ]];
        assert!(same_repository(
            "reg.io/team/app",
            "mirror.local:5000/app",
            &eq
        ));
        assert!(!same_repository(
            "reg.io/team/other",
            "mirror.local:5000/app",
            &eq
        ));
        assert!(!same_repository("", "mirror.local:5000/app", &eq));
        assert!(same_repository(
            "reg.io/team/app:v1",
            "reg.io/team/app",
            &[]
        ));
    }
}
