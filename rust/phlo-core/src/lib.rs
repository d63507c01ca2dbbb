//! phlo-core: the lakehouse engine behind phlo, in pure Rust (no Python here).
//!
//! - [`catalog`]: the embedded SQLite catalog shared with PyIceberg.
//! - [`schema`]: Arrow ⇄ Iceberg schemas, partition specs, casting batches to a table schema.
//! - [`iceberg`]: table metadata, data file writing, phlo's own commit path, scans.
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
pub mod iceberg;
pub mod keys;
pub mod lakehouse;
pub mod maintenance;
pub mod merge;
pub mod schema;
pub mod stage;
pub mod validate;

pub use error::{Error, Result};
pub use lakehouse::{AppendResult, Lakehouse};
