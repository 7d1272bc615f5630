//! Verification policy: the YAML form and its validated, compiled form.

mod compile;
mod config;
mod distinct;

pub use compile::{
    AttestationRequirement, Authority, AuthoritySet, Combination, CompiledPolicy, Matcher,
    PolicyError, Rule, Signer,
};
pub use config::{
    AttestationConfig, AuthorityConfig, AuthoritySetConfig, KeyConfig, KeylessConfig, NoMatch,
    Policy, RuleConfig, ThresholdConfig, TlogMode, TrustRootConfig,
};
