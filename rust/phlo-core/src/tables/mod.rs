//! Iceberg tables: loading and creating metadata, writing data files, committing snapshots
//! with phlo's own commit path, scanning with pruning, and reading data files by field id
//! (applying other engines' delete files).

mod chunk_strings;
pub(crate) mod column_defaults;
pub mod commit;
pub mod delete_writer;
pub mod deletes;
mod delta_skips;
mod dictionary_pages;
pub mod discard;
pub mod eval;
mod file_ranges;
pub mod filter;
pub mod manifest_filter;
mod manifest_read;
pub mod manifests;
pub mod metadata_cache;
pub mod metadata_log;
mod nested;
pub mod plan_reads;
pub mod promoted_partitions;
pub mod properties;
pub mod read;
mod row_selection;
pub mod scan;
pub mod table;
mod unsupported_types;
pub mod write;

pub use chunk_strings::PlainValues;
pub use commit::{CommitOutcome, SnapshotChange};
pub use filter::{Filter, FilterOp, Literal};
pub(crate) use manifest_read::read_manifest;
pub use read::{
    PageJudge, ProjectedFile, ProjectedReader, ProjectedStream, Projection, read_data_file,
};
pub use scan::{ScanOptions, ScanPlan};
pub use table::LoadedTable;

/// The whole content of a small file (a manifest list).
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
