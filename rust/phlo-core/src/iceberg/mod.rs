//! Iceberg tables: loading and creating metadata, writing data files, committing snapshots
//! with phlo's own commit path, and scanning with pruning.

pub mod commit;
pub mod filter;
pub mod scan;
pub mod table;
pub mod write;

pub use commit::{CommitOutcome, SnapshotChange};
pub use filter::{Filter, FilterOp, Literal};
pub use scan::{ScanOptions, ScanPlan};
pub use table::LoadedTable;
