//! Resolution errors, each naming the image, the registry and the cause.

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
        "{image}: TLS certificate of registry {registry} is not trusted ({cause}); configure its CA under registries.\"{registry}\".ca"
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
            Self::Config(_) => "config",
        }
    }

    /// True when another endpoint (the next mirror, or the origin) may still succeed.
    pub(crate) fn try_next_endpoint(&self) -> bool {
        !matches!(self, Self::TimedOut { .. } | Self::Config(_))
    }
}
