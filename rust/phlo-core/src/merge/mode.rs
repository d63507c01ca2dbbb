//! How a merge or delete removes the rows it replaces: by rewriting their data files
//! (copy-on-write) or by writing position-delete files beside them (merge-on-read). The Iceberg
//! table properties `write.merge.mode` / `write.delete.mode` choose, a call's `write_mode`
//! overrides them; phlo adds `auto`, which decides per data file.
//!
//! `auto` rewrites a file when, after the write, at least [`AUTO_REWRITE_FRACTION`] of its
//! stored rows would be deleted — the rows earlier delete files removed plus those this write
//! replaces — and writes positions below that. Counting the earlier deletes is what bounds
//! reads: every file `auto` leaves with deletes has under a fifth of its stored rows deleted, so
//! a scan decodes fewer than 1/(1 − 0.2) = 1.25 stored rows per live row, and a table kept by
//! `auto` writes stays within about 1.25× of its compacted scan however many merges it takes
//! (judging each write alone, small merges would pile up deletes on the same files without
//! bound). At a fifth, a rewrite writes at most four kept rows per deleted row (its cost stays
//! a small multiple of the rows it clears), and a merge that touches a few rows of many files
//! (the common upsert) stays merge-on-read until a file's deletes reach the bound; then that
//! file is compacted on the way.

use crate::error::{Error, Result};
use crate::tables::LoadedTable;

/// The table property choosing how `merge` writes (Iceberg's name).
pub const MERGE_MODE: &str = "write.merge.mode";
/// The table property choosing how `delete` writes (Iceberg's name).
pub const DELETE_MODE: &str = "write.delete.mode";
/// `auto`: the fraction of a file's stored rows deleted (by earlier delete files and this
/// write together) from which it is rewritten rather than given position deletes (see the
/// module docs for why).
pub const AUTO_REWRITE_FRACTION: f64 = 0.2;

const ALLOWED: &str = "\"copy-on-write\", \"merge-on-read\" or \"auto\"";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Rewrite every data file holding a replaced row (readable by every engine, no deletes).
    #[default]
    CopyOnWrite,
    /// Leave data files alone; mark replaced rows in position-delete files.
    MergeOnRead,
    /// Per data file, by the fraction of its stored rows that would be deleted.
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

    /// Whether a file of `stored` rows (its record count), `live` of which no delete file
    /// removed, is rewritten when `replaced` of its live rows go (else it gets position
    /// deletes). A file losing every row is dropped whatever the mode.
    pub fn rewrites(self, replaced: u64, live: u64, stored: u64) -> bool {
        match self {
            Self::CopyOnWrite => true,
            Self::MergeOnRead => false,
            Self::Auto => {
                let deleted = stored.saturating_sub(live) + replaced;
                deleted as f64 >= AUTO_REWRITE_FRACTION * stored as f64
            }
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
        assert!(!WriteMode::Auto.rewrites(19, 100, 100));
        assert!(WriteMode::Auto.rewrites(20, 100, 100));
        // Rows earlier deletes removed count too: 15 gone, 5 more reach a fifth of 100.
        assert!(!WriteMode::Auto.rewrites(4, 85, 100));
        assert!(WriteMode::Auto.rewrites(5, 85, 100));
        assert!(WriteMode::CopyOnWrite.rewrites(1, 100, 100));
        assert!(!WriteMode::MergeOnRead.rewrites(100, 100, 100));
    }
}
