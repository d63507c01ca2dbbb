//! The fence between orphan-file removal and writes in progress. Removal deletes unreferenced
//! files older than a cutoff; a write that started before that cutoff may have files it has not
//! committed yet among them. So removal first raises the catalog's fence to its cutoff and reads
//! the pointers in the same transaction, and a commit refuses to swap when the fence is above
//! the time its write started: either the commit is in the pointers removal reads (and its files
//! are kept), or it sees the fence and fails without landing. Both run in one serialized catalog
//! transaction (SQLite's write lock; PostgreSQL's SERIALIZABLE, where the fence and the
//! pointers are each read by one side and written by the other, so one of them retries).

use super::db::{Sql, args};
use super::refs::Pointer;
use super::{CATALOG_NAME, Catalog};
use crate::error::{Context, Error, Result};

impl Catalog {
    /// Raises the fence to `cutoff_ms` (it never goes down) and returns every pointer, as
    /// [`Catalog::all_pointers`], read after the fence is up.
    pub fn fence_orphan_removal(&self, cutoff_ms: i64) -> Result<Vec<Pointer>> {
        self.write(|db| {
            if fence(db)?.is_none() {
                db.execute(
                    "INSERT INTO phlo_orphan_fence (catalog_name, cutoff_ms) VALUES (?1, ?2)",
                    args![CATALOG_NAME, cutoff_ms],
                )
            } else {
                db.execute(
                    "UPDATE phlo_orphan_fence SET cutoff_ms = ?2 WHERE catalog_name = ?1
                     AND cutoff_ms < ?2",
                    args![CATALOG_NAME, cutoff_ms],
                )
            }
            .context(|| "recording the orphan-file removal in the catalog".into())?;
            super::refs::read_all_pointers(db)
        })
    }
}

/// The highest cutoff any orphan-file removal used, if one ever ran.
fn fence(db: &mut dyn Sql) -> Result<Option<i64>> {
    db.query_first(
        "SELECT cutoff_ms FROM phlo_orphan_fence WHERE catalog_name = ?1",
        args![CATALOG_NAME],
    )
    .context(|| "reading the orphan-file removal fence".into())?
    .map(|row| row.int(0))
    .transpose()
}

/// Refuses the commit to `table` (one or more names) whose files were written from
/// `written_since_ms` on, when an orphan-file removal since then may have deleted them (its
/// cutoff is that late or later).
pub(super) fn check(db: &mut dyn Sql, table: &str, written_since_ms: i64) -> Result<()> {
    match fence(db)? {
        Some(cutoff) if cutoff >= written_since_ms => Err(Error::CommitConflict {
            table: table.to_string(),
            message: format!(
                "remove_orphan_files ran while this write was in progress, with an older_than \
                 cutoff ({cutoff} ms) after the write started ({written_since_ms} ms): it may \
                 have deleted the files the write had not committed yet, so nothing was \
                 committed"
            ),
            hint: "Run the write again, and pass remove_orphan_files an older_than longer than \
                   any write takes (the default is 3 days)"
                .into(),
        }),
        _ => Ok(()),
    }
}
