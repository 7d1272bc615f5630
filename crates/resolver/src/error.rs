//! Resolution errors, each naming the image, the registry and the cause.
//!
//! [`ResolveError`]'s message names each once. Where a caller already names the
//! image and the registry (a verification error), it embeds [`ResolveError::cause`],
//! which names neither.

/// Why a tag could not be resolved to a digest.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResolveError {
    /// The registry rejected the credentials, or asked for some and none were configured.
    #[error("{image}: registry {registry} answered unauthorized ({detail})")]
    Unauthorized {
        /// The image as written.
        image: String,
        /// The registry host.
        registry: String,
        /// Which credential was tried, never its value.
        detail: String,
    },
    /// The registry has no manifest for the tag.
    #[error("{image}: not found in registry {registry}")]
    NotFound {
        /// The image as written.
        image: String,
        /// The registry host.
        registry: String,
    },
    /// The registry could not be connected to.
    #[error("{image}: registry {registry} is unreachable: {cause}")]
    Unreachable {
        /// The image as written.
        image: String,
        /// The registry host.
        registry: String,
        /// The connection error.
        cause: String,
    },
    /// The lookup did not finish within its deadline.
    #[error("{image}: registry {registry} did not answer within the {seconds:.1}s deadline")]
    TimedOut {
        /// The image as written.
        image: String,
        /// The registry host.
        registry: String,
        /// The deadline that passed.
        seconds: f64,
    },
    /// The registry's TLS certificate is not trusted.
    #[error(
        "{image}: TLS certificate of registry {registry} is not trusted ({cause}); configure its CA under resolver.registries.\"{registry}\".ca"
    )]
    TlsUntrusted {
        /// The image as written.
        image: String,
        /// The registry host.
        registry: String,
        /// The TLS error.
        cause: String,
    },
    /// The registry answered with an error status.
    #[error("{image}: registry {registry} answered {status}: {cause}")]
    Registry {
        /// The image as written.
        image: String,
        /// The registry host.
        registry: String,
        /// The HTTP status.
        status: u16,
        /// The registry's error message, or what happened.
        cause: String,
    },
    /// The registry's answer is malformed or inconsistent.
    #[error("{image}: registry {registry} sent an invalid answer: {cause}")]
    InvalidResponse {
        /// The image as written.
        image: String,
        /// The registry host.
        registry: String,
        /// What is wrong with it.
        cause: String,
    },
    /// The origin did not confirm a mirror's answer (`confirmMirrors`).
    #[error(
        "{image}: mirror {mirror} answered {digest}, which registry {registry} does not confirm: {answer}"
    )]
    Unconfirmed {
        /// The image as written.
        image: String,
        /// The mirror that answered.
        mirror: String,
        /// The origin registry.
        registry: String,
        /// The mirror's digest.
        digest: String,
        /// What the origin answered instead (its digest, or its error).
        answer: String,
    },
    /// The resolver's own settings are unusable.
    #[error("invalid registry configuration: {0}")]
    Config(String),
}

impl ResolveError {
    /// The registry's answer about `image` is malformed or inconsistent.
    pub(crate) fn invalid_response(image: &str, registry: &str, cause: String) -> Self {
        Self::InvalidResponse {
            image: image.to_owned(),
            registry: registry.to_owned(),
            cause,
        }
    }

    /// The image this error is about, as the request wrote it.
    pub fn image(&self) -> Option<&str> {
        match self {
            Self::Unauthorized { image, .. }
            | Self::NotFound { image, .. }
            | Self::Unreachable { image, .. }
            | Self::TimedOut { image, .. }
            | Self::TlsUntrusted { image, .. }
            | Self::Registry { image, .. }
            | Self::InvalidResponse { image, .. }
            | Self::Unconfirmed { image, .. } => Some(image),
            Self::Config(_) => None,
        }
    }

    /// The registry endpoint that failed (a mirror or the origin).
    pub fn registry(&self) -> Option<&str> {
        match self {
            Self::Unauthorized { registry, .. }
            | Self::NotFound { registry, .. }
            | Self::Unreachable { registry, .. }
            | Self::TimedOut { registry, .. }
            | Self::TlsUntrusted { registry, .. }
            | Self::Registry { registry, .. }
            | Self::InvalidResponse { registry, .. }
            | Self::Unconfirmed { registry, .. } => Some(registry),
            Self::Config(_) => None,
        }
    }

    /// What went wrong, naming neither the image nor the registry, for messages that
    /// name them already (`registry R: <cause>`).
    pub fn cause(&self) -> String {
        match self {
            Self::Unauthorized { detail, .. } => format!("answered unauthorized ({detail})"),
            Self::NotFound { .. } => "not found".to_owned(),
            Self::Unreachable { cause, .. } => format!("unreachable: {cause}"),
            Self::TimedOut { seconds, .. } => {
                format!("did not answer within the {seconds:.1}s deadline")
            }
            Self::TlsUntrusted {
                registry, cause, ..
            } => format!(
                "TLS certificate is not trusted ({cause}); configure its CA under resolver.registries.\"{registry}\".ca"
            ),
            Self::Registry { status, cause, .. } => format!("answered {status}: {cause}"),
            Self::InvalidResponse { cause, .. } => format!("sent an invalid answer: {cause}"),
            Self::Unconfirmed {
                mirror,
                digest,
                answer,
                ..
            } => format!("does not confirm mirror {mirror}'s answer {digest}: {answer}"),
            Self::Config(cause) => format!("invalid registry configuration: {cause}"),
        }
    }

    /// The same error about `written`: a failure shared by lookups of one image is told to
    /// each request in its own spelling of the image.
    pub fn for_image(mut self, written: &str) -> Self {
        match &mut self {
            Self::Unauthorized { image, .. }
            | Self::NotFound { image, .. }
            | Self::Unreachable { image, .. }
            | Self::TimedOut { image, .. }
            | Self::TlsUntrusted { image, .. }
            | Self::Registry { image, .. }
            | Self::InvalidResponse { image, .. }
            | Self::Unconfirmed { image, .. } => written.clone_into(image),
            Self::Config(_) => {}
        }
        self
    }

    /// A short, stable name of the error class, for metrics and annotations.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unauthorized { .. } => "unauthorized",
            Self::NotFound { .. } => "not_found",
            Self::Unreachable { .. } => "unreachable",
            Self::TimedOut { .. } => "timeout",
            Self::TlsUntrusted { .. } => "tls",
            Self::Registry { .. } => "registry",
            Self::InvalidResponse { .. } => "invalid_response",
            Self::Unconfirmed { .. } => "unconfirmed",
            Self::Config(_) => "config",
        }
    }

    /// True when another endpoint (the next mirror, or the origin) may still succeed.
    pub(crate) fn try_next_endpoint(&self) -> bool {
        !matches!(self, Self::TimedOut { .. } | Self::Config(_))
    }
}

/// An error and its causes on one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
