//! Support for tagpin's end-to-end tests: the local registries and control plane that
//! `hack/test.sh` starts, and a small client that pushes test images.

// Test support: a failed setup step is a failed test, so panicking with context is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod cluster;
pub mod cosign;
pub mod cosign_layouts;
pub mod delay_proxy;
pub mod env;
pub mod fake_registry;
pub mod install;
pub mod layer;
pub mod logs;
pub mod manifests;
pub mod mount;
pub mod recording_registry;
pub mod registry;
pub mod tagpin;
pub mod webhook;

pub use env::TestEnv;
pub use registry::{Platform, PushedImage, TestRegistry};
