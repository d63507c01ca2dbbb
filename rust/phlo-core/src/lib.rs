//! phlo-core: the lakehouse engine behind phlo, in pure Rust (no Python here).
//!
//! - [`catalog`]: the embedded SQLite catalog shared with PyIceberg.
//! - [`schema`]: Arrow ⇄ Iceberg schemas, partition specs, casting batches to a table schema.
//! - [`tables`]: Iceberg tables: metadata, reading and writing data files, phlo's own commit
//!   path, scans (named so as not to shadow the `iceberg` crate).
//! - [`storage`]: the warehouse's files: local folder or S3, through iceberg's `FileIO`.
//! - [`lakehouse`]: the façade the Python bindings call.

pub mod branch_merge;
pub mod catalog;
pub mod changes;
pub mod compact;
pub mod dedupe;
pub mod delete;
pub mod diff;
pub mod error;
mod failpoint;
pub mod keys;
pub mod lakehouse;
pub mod maintenance;
pub mod merge;
pub mod quality;
pub mod rest;
pub mod schema;
pub mod stage;
pub mod storage;
pub mod tables;
pub mod validate;

pub use error::{Error, Result};
pub use lakehouse::{AppendResult, Lakehouse};
