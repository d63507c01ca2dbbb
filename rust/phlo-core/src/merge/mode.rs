//! How a merge or delete removes the rows it replaces: by rewriting their data files
//! (copy-on-write) or by writing position-delete files beside them (merge-on-read). The Iceberg
//! table properties `write.merge.mode` / `write.delete.mode` choose, a call's `write_mode`
//! overrides them; phlo adds `auto`, which decides per data file.
//!
//! `auto` rewrites a file when the rows replaced are at least [`AUTO_REWRITE_FRACTION`] of its
//! live rows, and writes positions below that. At a fifth, a rewrite writes at most four kept
//! rows per replaced row (its cost stays a small multiple of the batch's own write), while
//! leaving the file would make every later scan of it decode at least 1.25 rows per live row; a
//! merge that touches a few rows of many files (the common upsert) stays merge-on-read, one that
//! replaces most of a file compacts it on the way.

use crate::error::{Error, Result};
use crate::tables::LoadedTable;

/// The table property choosing how `merge` writes (Iceberg's name).
pub const MERGE_MODE: &str = "write.merge.mode";
/// The table property choosing how `delete` writes (Iceberg's name).
pub const DELETE_MODE: &str = "write.delete.mode";
/// `auto`: the fraction of a file's live rows from which it is rewritten rather than given
/// position deletes (see the module docs for why).
pub const AUTO_REWRITE_FRACTION: f64 = 0.2;

const ALLOWED: &str = "\"copy-on-write\", \"merge-on-read\" or \"auto\"";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Rewrite every data file holding a replaced row (readable by every engine, no deletes).
    #[default]
    CopyOnWrite,
    /// Leave data files alone; mark replaced rows in position-delete files.
    MergeOnRead,
    /// Per data file, by the fraction of its live rows replaced.
    Auto,
}

impl WriteMode {
    /// Parses a mode named by `source` (an argument or a table property, for the error).
    pub fn parse(value: &str, source: &str) -> Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "copy-on-write" => Ok(Self::CopyOnWrite),
            "merge-on-read" => Ok(Self::MergeOnRead),
            "auto" => Ok(Self::Auto),
            _ => Err(Error::invalid(
                format!("{source} is {value:?}, not a write mode"),
                format!("use {ALLOWED} (table.set_properties changes a table's default)"),
            )),
        }
    }

    /// The mode a write uses: `requested` (a call's `write_mode`) if given, else the table's
    /// `property`, else copy-on-write.
    pub fn resolve(table: &LoadedTable, property: &str, requested: Option<Self>) -> Result<Self> {
        if let Some(mode) = requested {
            return Ok(mode);
        }
        match table.metadata.properties().get(property) {
            None => Ok(Self::default()),
            Some(value) => Self::parse(value, &format!("table property {property}"))
                .map_err(|e| e.in_table(&table.ident.to_string())),
        }
    }

    /// Whether a file with `live` rows, `replaced` of which go, is rewritten (else it gets
    /// position deletes). A file losing every row is dropped whatever the mode.
    pub fn rewrites(self, replaced: u64, live: u64) -> bool {
        match self {
            Self::CopyOnWrite => true,
            Self::MergeOnRead => false,
            Self::Auto => replaced as f64 >= AUTO_REWRITE_FRACTION * live as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_auto_splits_at_the_threshold() {
        assert_eq!(
            WriteMode::parse(" Merge-On-Read", "write_mode").unwrap(),
            WriteMode::MergeOnRead
        );
        let error = WriteMode::parse("mor", "write_mode")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("write_mode") && error.contains("merge-on-read"),
            "{error}"
        );
        assert!(!WriteMode::Auto.rewrites(19, 100));
        assert!(WriteMode::Auto.rewrites(20, 100));
        assert!(WriteMode::CopyOnWrite.rewrites(1, 100));
        assert!(!WriteMode::MergeOnRead.rewrites(100, 100));
    }
}
