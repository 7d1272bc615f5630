//! Structured logs on stderr, as text or JSON.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Libraries that log, as errors, failures tagpin reports itself with the image and the
/// registry named (an untrusted registry certificate): silenced unless the filter names them,
/// so a CLI error is one line and the server logs each failure once.
const QUIET_TARGETS: [&str; 1] = ["rustls_platform_verifier"];

/// `filter` with every [`QUIET_TARGETS`] entry it does not name turned off.
fn with_quiet_targets(filter: &str) -> String {
    let mut directives = filter.to_owned();
    for target in QUIET_TARGETS {
        if !filter.contains(target) {
            if !directives.is_empty() {
                directives.push(',');
            }
            directives.push_str(target);
            directives.push_str("=off");
        }
    }
    directives
}

/// Installs the global subscriber; `filter` uses env-filter syntax.
pub fn init(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(with_quiet_targets(filter))
        .map_err(|e| anyhow::anyhow!("invalid --log-level {filter:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .flatten_event(true)
            .try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

#[cfg(test)]
mod tests {
    use super::with_quiet_targets;

    #[test]
    fn quiet_targets_are_off_unless_named() {
        assert_eq!(
            with_quiet_targets("warn"),
            "warn,rustls_platform_verifier=off"
        );
        assert_eq!(with_quiet_targets(""), "rustls_platform_verifier=off");
        assert_eq!(
            with_quiet_targets("info,rustls_platform_verifier=debug"),
            "info,rustls_platform_verifier=debug"
        );
    }
}
