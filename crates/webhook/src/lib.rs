//! `tagpin`: the admission webhook that pins every image tag to its digest, as a library the
//! `tagpin` binary, its tests and its fuzz targets share.

pub mod admission;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod credentials;
pub mod inventory;
pub mod logging;
pub mod metrics;
pub mod pin;
pub mod resolving;
pub mod server;
pub mod verification;
pub mod watch;
