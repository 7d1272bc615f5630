//! `tagpin certs --kustomize`: a kustomization beside the certificates that installs tagpin's
//! base with the self-signed webhook, so the self-signed install edits no file of tagpin's.

use std::io::BufReader;
use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use tagpin_resolver::ImageReference;

/// The image name tagpin's manifests use; `images:` replaces it with the user's.
const MANIFESTS_IMAGE: &str = "ghcr.io/tagpin/tagpin";

/// What `--kustomize` writes besides the certificates.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// tagpin's manifests directory, or a URL kustomize fetches.
    pub manifests: &'a str,
    /// tagpin's own image, `NAME[:TAG]@sha256:...`, set with `images:`.
    pub image: Option<&'a str>,
}

/// The kustomization for the certificates in `out`; `not_after` is the expiry it shows.
pub(super) fn render(options: Options<'_>, out: &Path, not_after: &str) -> anyhow::Result<String> {
    let root = manifests_root(options.manifests, out)?;
    let base = join(&root, "base");
    let component = join(&root, "components/self-signed");
    let images = match options.image {
        Some(image) => images(image)?,
        None => String::new(),
    };
    Ok(format!(
        "# Written by `tagpin certs --kustomize`: tagpin with the self-signed CA and serving
# certificate in this directory. Install or update with
#   kubectl apply -k {out}
# The certificates expire on {not_after}: run the same tagpin certs command before then and
# apply again; the webhook then trusts the new CA and the one it replaces (ca-bundle.crt),
# so the Pods still serving the old certificate keep answering during the rollout.
# Pin tagpin's image in a kustomization that includes this directory (README, Install).
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - {base}
components:
  - {component}
secretGenerator:
  - name: tagpin-tls
    namespace: tagpin-system
    type: kubernetes.io/tls
    files:
      - tls.crt
      - tls.key
      - ca.crt=ca-bundle.crt
{images}",
        out = out.display(),
    ))
}

/// The `images:` entry running tagpin from `image`, which must carry a digest.
fn images(image: &str) -> anyhow::Result<String> {
    let reference = ImageReference::parse(image).with_context(|| format!("--image {image}"))?;
    let digest = reference.digest().with_context(|| {
        format!("--image {image} has no digest: tagpin runs from NAME@sha256:..., never from a tag alone")
    })?;
    Ok(format!(
        "images:\n  - name: {MANIFESTS_IMAGE}\n    newName: {}\n    digest: {digest}\n",
        reference.name()
    ))
}

/// The webhook's CA bundle: the new CA, then the CA in `previous` (the `ca.crt` this run
/// replaces) when it holds certificates and differs.
pub(super) fn ca_bundle(new_ca: &str, previous: Option<&str>) -> String {
    let mut bundle = new_ca.trim_end().to_owned();
    bundle.push('\n');
    if let Some(old) = previous.filter(|old| old.trim() != new_ca.trim() && holds_certificates(old))
    {
        bundle.push_str(old.trim_end());
        bundle.push('\n');
    }
    bundle
}

fn holds_certificates(pem: &str) -> bool {
    let certs: Result<Vec<_>, _> =
        rustls_pemfile::certs(&mut BufReader::new(pem.as_bytes())).collect();
    certs.is_ok_and(|c| !c.is_empty())
}

/// What the kustomization names tagpin's manifests by: a URL as given, or a directory as a
/// path relative to `out` (kustomize refuses absolute ones).
fn manifests_root(manifests: &str, out: &Path) -> anyhow::Result<String> {
    if is_remote(manifests) {
        return Ok(manifests.to_owned());
    }
    let dir = std::fs::canonicalize(manifests).with_context(|| {
        format!("--manifests {manifests}: no such directory (pass the path of tagpin's manifests/ directory, or a kustomize URL of it)")
    })?;
    for needed in ["base", "components/self-signed"] {
        if !dir.join(needed).join("kustomization.yaml").is_file() {
            anyhow::bail!(
                "--manifests {manifests}: {} has no {needed}/kustomization.yaml; pass tagpin's manifests/ directory",
                dir.display()
            );
        }
    }
    let out =
        std::fs::canonicalize(out).with_context(|| format!("cannot resolve {}", out.display()))?;
    let path = relative(&out, &dir);
    path.to_str().map(str::to_owned).with_context(|| {
        format!(
            "the path from {} to {} is not UTF-8",
            out.display(),
            dir.display()
        )
    })
}

/// Whether `manifests` is something kustomize fetches rather than a local directory.
fn is_remote(manifests: &str) -> bool {
    manifests.contains("://")
        || manifests.starts_with("git@")
        || manifests.starts_with("github.com/")
}

/// `root` followed by `/sub`, keeping a URL's query (`?ref=v1`) at the end.
fn join(root: &str, sub: &str) -> String {
    let (path, query) = match root.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (root, None),
    };
    let joined = format!("{}/{sub}", path.trim_end_matches('/'));
    match query {
        Some(query) => format!("{joined}?{query}"),
        None => joined,
    }
}

/// The path from directory `from` to `to`, both absolute and canonical.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component<'_>> = from.components().collect();
    let to: Vec<Component<'_>> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for part in &to[common..] {
        path.push(part);
    }
    if path.as_os_str().is_empty() {
        path.push(".");
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_to_the_common_ancestor() {
        let rel = |a: &str, b: &str| relative(Path::new(a), Path::new(b));
        assert_eq!(
            rel("/repo/my-install", "/repo/manifests"),
            Path::new("../manifests")
        );
        assert_eq!(rel("/repo", "/repo/manifests"), Path::new("manifests"));
        assert_eq!(
            rel("/tmp/a/b", "/repo/manifests"),
            Path::new("../../../repo/manifests")
        );
        assert_eq!(rel("/repo", "/repo"), Path::new("."));
    }

    #[test]
    fn a_remote_root_keeps_its_query_last() {
        let root = "https://github.com/tagpin/tagpin//manifests?ref=v0.1.0";
        assert!(is_remote(root));
        assert_eq!(
            join(root, "base"),
            "https://github.com/tagpin/tagpin//manifests/base?ref=v0.1.0"
        );
        assert_eq!(join("../manifests/", "base"), "../manifests/base");
        assert!(!is_remote("../manifests"));
    }

    #[test]
    fn the_bundle_keeps_the_replaced_ca_only_when_it_is_a_different_certificate() {
        let new = "-----BEGIN CERTIFICATE-----\nTkVX\n-----END CERTIFICATE-----\n";
        let old = "-----BEGIN CERTIFICATE-----\nT0xE\n-----END CERTIFICATE-----\n";
        assert_eq!(ca_bundle(new, None), new);
        assert_eq!(ca_bundle(new, Some(new)), new);
        assert_eq!(ca_bundle(new, Some("not a certificate")), new);
        assert_eq!(ca_bundle(new, Some(old)), format!("{new}{old}"));
    }

    #[test]
    fn the_image_must_carry_a_digest() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let entry = images(&format!("127.0.0.1:5443/tagpin/tagpin:0.1.0@{digest}"))
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(
            entry,
            format!(
                "images:\n  - name: ghcr.io/tagpin/tagpin\n    newName: 127.0.0.1:5443/tagpin/tagpin\n    digest: {digest}\n"
            )
        );
        let err = images("registry.example.com/tagpin:0.1.0")
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(err.contains("has no digest"), "{err}");
        assert!(images("Not A Reference@sha256:00").is_err());
    }

    #[test]
    fn a_directory_without_tagpins_manifests_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let manifests = dir.path().display().to_string();
        let options = Options {
            manifests: &manifests,
            image: None,
        };
        let err = render(options, dir.path(), "2030-01-01")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("base/kustomization.yaml"), "{err}");
    }
}
