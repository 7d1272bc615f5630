//! tagpin's YAML configuration, by concern: the schema of the file ([`schema`]), the kinds
//! it pins ([`kinds`]), loading and validation ([`load`]), how a namespace's mode is decided
//! ([`modes`]), and the files it names, which a running server watches ([`files`]).

pub mod files;
pub mod kinds;
mod line;
pub mod load;
pub mod modes;
pub mod schema;

pub use files::ConfigInputs;
pub use kinds::PinnedKind;
pub use load::ConfigError;
pub use modes::{MODE_LABEL, Mode, ModeDecision};
pub use schema::{Config, ServerConfig};
