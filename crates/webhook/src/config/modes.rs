//! How tagpin decides a namespace's mode. Every decision is made here, inside tagpin: the
//! webhook configuration leaves out namespaces only by `kubernetes.io/metadata.name`, which
//! the API server sets, never by a label a tenant may set.
//!
//! Order: tagpin's own and excluded namespaces are `off`; a namespace named under
//! `namespaces:` has the config's mode, and its `tagpin.dev/mode` label counts only when
//! `namespaceLabelOverrides` lists it; any other namespace takes its label when
//! `namespaceLabels` is true; else `defaultMode`. A label that is not a mode never turns
//! enforcement off.

use serde::Deserialize;

use super::schema::Config;

/// The namespace label that sets a namespace's mode.
pub const MODE_LABEL: &str = "tagpin.dev/mode";

/// What tagpin does with the images of one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Pin every image; deny what cannot be pinned.
    Enforce,
    /// Pin what can be pinned; admit the rest unpinned with a warning.
    Warn,
    /// Leave the namespace alone.
    Off,
}

impl Mode {
    /// Parses a mode as written in a namespace label.
    pub fn from_label(value: &str) -> Option<Self> {
        match value {
            "enforce" => Some(Self::Enforce),
            "warn" => Some(Self::Warn),
            "off" => Some(Self::Off),
            _ => None,
        }
    }

    /// The mode's name as written in config and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Warn => "warn",
            Self::Off => "off",
        }
    }
}

/// A namespace's mode and where it came from, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeDecision {
    /// The mode.
    pub mode: Mode,
    /// Which setting decided it.
    pub source: &'static str,
}

impl ModeDecision {
    fn new(mode: Mode, source: &'static str) -> Self {
        Self { mode, source }
    }
}

impl Config {
    /// The mode of `namespace`, given the value of its `tagpin.dev/mode` label if known.
    pub fn mode_for(&self, namespace: &str, label: Option<&str>) -> ModeDecision {
        if namespace == self.own_namespace
            || self.excluded_namespaces.iter().any(|n| n == namespace)
        {
            return ModeDecision::new(Mode::Off, "excluded namespace");
        }
        if let Some(mode) = self.namespaces.get(namespace) {
            return self.named_mode(namespace, *mode, label);
        }
        match label {
            Some(value) if self.namespace_labels => match Mode::from_label(value) {
                Some(mode) => ModeDecision::new(mode, "namespace label"),
                // A typo in the label must not switch enforcement off.
                None => ModeDecision::new(self.default_mode, "default (invalid namespace label)"),
            },
            _ => ModeDecision::new(self.default_mode, "default"),
        }
    }

    /// A namespace named under `namespaces:`: the config's mode, unless the config lets
    /// this namespace's label override it.
    fn named_mode(&self, namespace: &str, mode: Mode, label: Option<&str>) -> ModeDecision {
        let Some(value) = label else {
            return ModeDecision::new(mode, "config");
        };
        if !self.label_overrides(namespace) {
            return ModeDecision::new(mode, "config (namespace label not honoured)");
        }
        match Mode::from_label(value) {
            Some(labelled) => {
                ModeDecision::new(labelled, "namespace label (namespaceLabelOverrides)")
            }
            None => ModeDecision::new(mode, "config (invalid namespace label)"),
        }
    }

    /// Whether the label of `namespace`, named under `namespaces:`, wins over the config.
    fn label_overrides(&self, namespace: &str) -> bool {
        self.namespace_label_overrides
            .iter()
            .any(|n| n == namespace)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Config {
        Config::parse(text, Path::new("tagpin.yaml")).unwrap()
    }

    #[test]
    fn system_namespaces_are_off_whatever_their_label() {
        let c = Config::default();
        assert_eq!(c.mode_for("kube-system", None).mode, Mode::Off);
        assert_eq!(c.mode_for("tagpin-system", Some("enforce")).mode, Mode::Off);
        assert_eq!(c.mode_for("apps", None).mode, Mode::Enforce);
    }

    #[test]
    fn invalid_label_falls_back_to_default_not_off() {
        let c = Config::default();
        let d = c.mode_for("apps", Some("disabled"));
        assert_eq!(d.mode, Mode::Enforce);
        let no_labels = Config {
            namespace_labels: false,
            ..Config::default()
        };
        assert_eq!(no_labels.mode_for("apps", Some("off")).mode, Mode::Enforce);
    }

    #[test]
    fn a_tenant_label_cannot_switch_off_a_namespace_the_config_enforces() {
        let c = parse("namespaces:\n  prod: enforce\n  dev: warn\n");
        let d = c.mode_for("prod", Some("off"));
        assert_eq!(d.mode, Mode::Enforce, "{d:?}");
        assert_eq!(d.source, "config (namespace label not honoured)");
        assert_eq!(c.mode_for("dev", Some("off")).mode, Mode::Warn);
        assert_eq!(c.mode_for("prod", None).source, "config");
        // Unnamed namespaces still follow their label while namespaceLabels is true.
        assert_eq!(c.mode_for("other", Some("off")).mode, Mode::Off);
    }

    #[test]
    fn label_overrides_let_a_named_namespace_follow_its_label() {
        let c = parse(
            "namespaceLabels: false\nnamespaces:\n  prod: enforce\n  team: enforce\nnamespaceLabelOverrides: [team]\n",
        );
        assert_eq!(c.mode_for("team", Some("off")).mode, Mode::Off);
        assert_eq!(c.mode_for("team", Some("warn")).mode, Mode::Warn);
        assert_eq!(c.mode_for("team", None).mode, Mode::Enforce);
        assert_eq!(c.mode_for("team", Some("of")).mode, Mode::Enforce);
        assert_eq!(c.mode_for("prod", Some("off")).mode, Mode::Enforce);
        assert_eq!(c.mode_for("other", Some("off")).mode, Mode::Enforce);
    }

    #[test]
    fn an_override_for_an_unnamed_namespace_is_an_error_with_its_line() {
        let err = Config::parse(
            "namespaces:\n  prod: enforce\nnamespaceLabelOverrides: [prod, stage]\n",
            Path::new("tagpin.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"stage\""), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }
}
