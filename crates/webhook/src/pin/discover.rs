//! The manifest files named on the command line: files as given, directories searched
//! recursively for `*.yaml`, `*.yml` and `*.json`.

use std::path::{Path, PathBuf};

/// Why the inputs cannot be listed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// A path could not be read.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
}

/// True for the file names a directory search picks up.
pub fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Every manifest file of `paths`, in order: each file as given, each directory's
/// manifests sorted by path. Hidden entries inside directories (`.git`) are skipped.
pub fn manifest_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, DiscoverError> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|cause| DiscoverError::Read {
            path: path.clone(),
            cause,
        })?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found)?;
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), DiscoverError> {
    let read_error = |cause| DiscoverError::Read {
        path: dir.to_owned(),
        cause,
    };
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type().map_err(read_error)?;
        if kind.is_dir() {
            walk(&path, found)?;
        } else if is_manifest(&path) {
            found.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_manifests_recursively_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/c")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        for name in [
            "a.yaml",
            "b/c/d.yml",
            "b/e.json",
            "b/notes.txt",
            ".git/x.yaml",
        ] {
            std::fs::write(root.join(name), "").unwrap();
        }
        let files = manifest_files(&[root.to_owned()]).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.strip_prefix(root).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.yaml", "b/c/d.yml", "b/e.json"]);
        let err = manifest_files(&[root.join("missing")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing"), "{err}");
    }
}
