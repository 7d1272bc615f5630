//! The one thing admission needs from the resolver, as a trait so admission can be tested alone.

use std::sync::Arc;

use futures::future::BoxFuture;
use tagpin_resolver::{ImageReference, Keychain, Resolution, Resolver, ResolverStats};

/// Why one image could not be resolved, flattened for annotations and messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveFailure {
    /// Short class of the error ("unauthorized", "not_found", "timeout", ...).
    pub kind: &'static str,
    /// The full message, naming the image, the registry and the cause.
    pub message: String,
}

/// `message`, found for the image spelled `found_for`, told about another spelling of it,
/// `written`: resolution messages start with `<image as written>: `.
pub fn respell(message: &str, found_for: &str, written: &str) -> String {
    match message
        .strip_prefix(found_for)
        .and_then(|rest| rest.strip_prefix(": "))
    {
        Some(rest) => format!("{written}: {rest}"),
        None => message.to_owned(),
    }
}

/// Resolves a tag to the digest the registry serves for it.
pub trait ImageResolver: Send + Sync + 'static {
    /// Resolves `image` with the credentials of `keychain`.
    fn resolve<'a>(
        &'a self,
        image: &'a ImageReference,
        keychain: &'a Keychain,
    ) -> BoxFuture<'a, Result<Resolution, ResolveFailure>>;

    /// Counters for `/metrics`, when the resolver keeps them.
    fn stats(&self) -> Option<ResolverStats>;
}

impl ImageResolver for Resolver {
    fn resolve<'a>(
        &'a self,
        image: &'a ImageReference,
        keychain: &'a Keychain,
    ) -> BoxFuture<'a, Result<Resolution, ResolveFailure>> {
        Box::pin(async move {
            Resolver::resolve(self, image, keychain)
                .await
                .map_err(|e| ResolveFailure {
                    kind: e.kind(),
                    message: e.to_string(),
                })
        })
    }

    fn stats(&self) -> Option<ResolverStats> {
        Some(Resolver::stats(self))
    }
}

impl<T: ImageResolver> ImageResolver for Arc<T> {
    fn resolve<'a>(
        &'a self,
        image: &'a ImageReference,
        keychain: &'a Keychain,
    ) -> BoxFuture<'a, Result<Resolution, ResolveFailure>> {
        self.as_ref().resolve(image, keychain)
    }

    fn stats(&self) -> Option<ResolverStats> {
        self.as_ref().stats()
    }
}

#[cfg(test)]
mod tests {
    use super::respell;

    #[test]
    fn a_failure_is_told_in_each_spelling() {
        let message = "nginx:1: registry docker.io is unreachable: connection refused";
        assert_eq!(
            respell(message, "nginx:1", "docker.io/library/nginx:1"),
            "docker.io/library/nginx:1: registry docker.io is unreachable: connection refused"
        );
        assert_eq!(respell(message, "nginx:1", "nginx:1"), message);
        assert_eq!(respell("other text", "nginx:1", "x"), "other text");
    }
}
