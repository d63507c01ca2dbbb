//! Iceberg tables: loading and creating metadata, writing data files, committing snapshots
//! with phlo's own commit path, and scanning with pruning.

pub mod commit;
pub mod filter;
pub mod manifests;
pub mod scan;
pub mod table;
pub mod write;

pub use commit::{CommitOutcome, SnapshotChange};
pub use filter::{Filter, FilterOp, Literal};
pub use scan::{ScanOptions, ScanPlan};
pub use table::LoadedTable;

/// The whole content of a file (a manifest list, or one data file a merge or diff reads).
pub(crate) async fn read_bytes(
    io: &iceberg::io::FileIO,
    path: &str,
) -> crate::error::Result<bytes::Bytes> {
    use crate::error::Context;
    io.new_input(path)
        .context(|| format!("opening {path}"))?
        .read()
        .await
        .context(|| format!("reading {path}"))
}
