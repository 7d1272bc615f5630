//! The files a configuration names, and a snapshot of their contents, so a running server
//! can tell when any input of its config changed. Contents are compared, not modification
//! times: Kubernetes updates mounted ConfigMaps and Secrets by swapping a `..data` symlink,
//! which leaves the paths (and the times of the symlinks) as they were.

use std::path::{Path, PathBuf};

use tagpin_verifier::Policy;

use super::schema::Config;

/// Every file `config` names whose contents decide admission: verification keys, private
/// CAs and trusted roots, registry CA bundles and the docker config. The serving
/// certificate files are left out: the TLS layer reloads them on its own.
pub fn named_files(config: &Config) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    files.extend(config.resolver.docker_config.clone());
    files.extend(
        config
            .resolver
            .registries
            .values()
            .filter_map(|r| r.ca.clone()),
    );
    if let Some(policy) = &config.verification {
        files.extend(policy_files(policy).into_iter().map(PathBuf::from));
    }
    files.sort();
    files.dedup();
    files
}

/// Walks the policy as written (its YAML field names are the stable interface), so every
/// authority is found wherever the policy nests it.
fn policy_files(policy: &Policy) -> Vec<String> {
    let mut files = Vec::new();
    if let Ok(value) = serde_json::to_value(policy) {
        collect_files(&value, &mut files);
    }
    files
}

/// Field names whose string value is a file the policy reads.
const FILE_FIELDS: [&str; 2] = ["trustedRoot", "caFile"];

fn collect_files(value: &serde_json::Value, files: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (name, field) in map {
                if let Some(path) = field
                    .as_str()
                    .filter(|_| FILE_FIELDS.contains(&name.as_str()))
                {
                    files.push(path.to_owned());
                }
                if name == "key"
                    && let Some(path) = field.get("file").and_then(|f| f.as_str())
                {
                    files.push(path.to_owned());
                }
                collect_files(field, files);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_files(i, files)),
        _ => {}
    }
}

/// What one file held when read: its bytes, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FileState {
    Bytes(Vec<u8>),
    Unreadable(std::io::ErrorKind),
}

/// The config file's text and the contents of every file it names, read at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigInputs {
    text: Option<String>,
    files: Vec<(PathBuf, FileState)>,
}

impl ConfigInputs {
    /// Reads `path` and every file its text names; when the text is not a readable config,
    /// the files `fallback` names (the running config's), so their changes still count.
    pub fn read(path: &Path, fallback: &Config) -> Self {
        let text = std::fs::read_to_string(path).ok();
        let named = text
            .as_deref()
            .and_then(|t| serde_norway::from_str::<Config>(t).ok())
            .map_or_else(|| named_files(fallback), |c| named_files(&c));
        let files = named
            .into_iter()
            .map(|file| {
                let state = match std::fs::read(&file) {
                    Ok(bytes) => FileState::Bytes(bytes),
                    Err(e) => FileState::Unreadable(e.kind()),
                };
                (file, state)
            })
            .collect();
        Self { text, files }
    }

    /// The config file's text, when it could be read.
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// The files that differ between `self` and `other` (added, removed or changed), for logs.
    pub fn changed_files(&self, other: &Self) -> Vec<PathBuf> {
        let mut changed: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|entry| !other.files.contains(entry))
            .chain(
                other
                    .files
                    .iter()
                    .filter(|entry| !self.files.contains(entry)),
            )
            .map(|(path, _)| path.clone())
            .collect();
        changed.sort();
        changed.dedup();
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
resolver:
  dockerConfig: /etc/tagpin/docker/config.json
  registries:
    registry.corp.example: {ca: /etc/tagpin/ca/corp.pem}
verification:
  noMatch: deny
  trustRoots:
    public-good: {trustedRoot: /etc/tagpin/trusted_root.json}
    corp: {caFile: /etc/tagpin/corp-ca.pem}
  rules:
    - name: team
      images: ["registry.corp.example/**"]
      signatures:
        threshold:
          count: 1
          of: [{key: {file: /etc/tagpin/keys/a.pub}}, {key: {pem: inline}}]
      attestations:
        - predicateType: https://slsa.dev/provenance/v1
          signedBy:
            allOf: [{key: {file: /etc/tagpin/keys/b.pub}}]
"#;

    #[test]
    fn every_file_the_config_names_is_listed() {
        let config: Config = serde_norway::from_str(CONFIG).unwrap();
        let files: Vec<String> = named_files(&config)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            files,
            [
                "/etc/tagpin/ca/corp.pem",
                "/etc/tagpin/corp-ca.pem",
                "/etc/tagpin/docker/config.json",
                "/etc/tagpin/keys/a.pub",
                "/etc/tagpin/keys/b.pub",
                "/etc/tagpin/trusted_root.json",
            ]
        );
    }

    #[test]
    fn a_changed_named_file_changes_the_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pub");
        std::fs::write(&key, "one").unwrap();
        let config_path = dir.path().join("tagpin.yaml");
        let text = format!(
            "verification:\n  noMatch: deny\n  rules:\n    - name: r\n      images: [\"**\"]\n      signatures: {{anyOf: [{{key: {{file: {}}}}}]}}\n",
            key.display()
        );
        std::fs::write(&config_path, &text).unwrap();
        let fallback = Config::default();
        let before = ConfigInputs::read(&config_path, &fallback);
        assert_eq!(before, ConfigInputs::read(&config_path, &fallback));
        std::fs::write(&key, "two").unwrap();
        let after = ConfigInputs::read(&config_path, &fallback);
        assert_ne!(before, after);
        assert_eq!(after.changed_files(&before), vec![key.clone()]);
        std::fs::remove_file(&key).unwrap();
        assert_ne!(after, ConfigInputs::read(&config_path, &fallback));
    }

    #[test]
    fn an_unparsable_config_still_watches_the_running_configs_files() {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("tagpin.yaml");
        std::fs::write(&config_path, "defaultMode: [").unwrap();
        let running: Config = serde_norway::from_str(CONFIG).unwrap();
        let inputs = ConfigInputs::read(&config_path, &running);
        assert_eq!(inputs.files.len(), 6);
        assert_eq!(inputs.text(), Some("defaultMode: ["));
    }
}
