//! Replacing files atomically: every new file is written beside its target first, and only
//! when all are written are they renamed into place, keeping each file's permissions.

use std::io::Write;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// Why files could not be replaced.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {cause}")]
pub struct WriteError {
    /// The file.
    pub path: PathBuf,
    /// The cause.
    pub cause: std::io::Error,
}

/// Replaces each `(path, contents)`; when any temporary file cannot be written, none of the
/// targets is touched.
pub fn replace_all(files: &[(PathBuf, String)]) -> Result<(), WriteError> {
    let mut staged = Vec::with_capacity(files.len());
    for (path, contents) in files {
        // A symlinked manifest keeps its link: the file it points to is replaced.
        let target = std::fs::canonicalize(path).map_err(|cause| WriteError {
            path: path.clone(),
            cause,
        })?;
        let tmp = stage(&target, contents)?;
        staged.push((target, tmp));
    }
    for (target, tmp) in staged {
        tmp.persist(&target).map_err(|e| WriteError {
            path: target.clone(),
            cause: e.error,
        })?;
    }
    Ok(())
}

fn stage(path: &Path, contents: &str) -> Result<NamedTempFile, WriteError> {
    let fail = |cause| WriteError {
        path: path.to_owned(),
        cause,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let permissions = std::fs::metadata(path).map_err(fail)?.permissions();
    let mut tmp = tempfile::Builder::new()
        .prefix(".tagpin-")
        .tempfile_in(dir)
        .map_err(fail)?;
    tmp.write_all(contents.as_bytes()).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    std::fs::set_permissions(tmp.path(), permissions).map_err(fail)?;
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_contents_and_keeps_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, "old").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        }
        replace_all(&[(file.clone(), "new".to_owned())]).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o640);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_stays_a_link_to_the_rewritten_file() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.yaml");
        let link = dir.path().join("link.yaml");
        std::fs::write(&real, "old").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        replace_all(&[(link.clone(), "new".to_owned())]).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
    }

    #[test]
    fn touches_nothing_when_one_target_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, "old").unwrap();
        let missing = dir.path().join("gone/b.yaml");
        let err = replace_all(&[(file.clone(), "new".into()), (missing, "new".into())]);
        assert!(err.is_err());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "old");
    }
}
