//! Files laid out as the kubelet mounts a Secret or ConfigMap, for tests of file reloads.

use std::path::{Path, PathBuf};

/// A directory as the kubelet's atomic writer keeps a mounted volume: `NAME -> ..data/NAME`,
/// `..data -> ..<timestamp>`, swapped by renaming a new `..data` symlink over the old one.
pub struct Mount {
    dir: PathBuf,
    generation: u32,
}

impl Mount {
    /// Creates the layout in `dir` holding `files`.
    pub fn new(dir: &Path, files: &[(&str, &[u8])]) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let mut mount = Self {
            dir: dir.to_owned(),
            generation: 0,
        };
        mount.swap(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(Path::new("..data").join(name), dir.join(name)).unwrap();
        }
        mount
    }

    /// Writes `files` into a new timestamped directory and points `..data` at it atomically.
    pub fn swap(&mut self, files: &[(&str, &[u8])]) {
        self.generation += 1;
        let old = std::fs::read_link(self.dir.join("..data")).ok();
        let name = format!("..2026_11_30_15_00_00.{:09}", self.generation);
        std::fs::create_dir(self.dir.join(&name)).unwrap();
        for (file, bytes) in files {
            std::fs::write(self.dir.join(&name).join(file), bytes).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&name, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }

    /// The path a consumer reads `name` at (the symlink through `..data`).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}
