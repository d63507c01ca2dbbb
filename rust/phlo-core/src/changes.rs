//! The rows appended to a table between two of its snapshots (incremental reads): only the data
//! files that the appends in the range added are read. A snapshot in the range that removed
//! rows (a delete, an upsert, an overwrite) makes "what was appended" ambiguous, so it is an
//! error naming that snapshot rather than a silently wrong answer. Compactions (`replace`) move
//! rows without changing them and are passed over.

use iceberg::io::FileIO;
use iceberg::spec::{Operation, SnapshotRef};

use crate::catalog::MAIN;
use crate::error::{Error, Location, Result};
use crate::tables::commit::files_added_by;
use crate::tables::{LoadedTable, ScanPlan};

/// Summary counts that are non-zero when a snapshot removed rows.
const REMOVAL_COUNTS: [&str; 5] = [
    "deleted-data-files",
    "deleted-records",
    "added-delete-files",
    "added-position-deletes",
    "added-equality-deletes",
];

/// A scan of the rows appended after snapshot `from` (exclusive; `None`: since the table was
/// created) up to `to` (inclusive; `None`: the head of the ref `table` was loaded from), read
/// in the table's current schema by field id.
pub async fn changes(
    io: &FileIO,
    table: &LoadedTable,
    from: Option<i64>,
    to: Option<i64>,
    batch_size: Option<usize>,
) -> Result<ScanPlan> {
    let name = table.ident.to_string();
    let invalid = |message: String, hint: &str| Error::InvalidInput {
        message,
        at: Location {
            table: Some(name.clone()),
            column: None,
        },
        hint: hint.into(),
    };
    let find = |id: i64| {
        table.metadata.snapshot_by_id(id).cloned().ok_or_else(|| {
            invalid(
                format!(
                    "snapshot {id} is not in the history of {name} on {}",
                    table.ref_name
                ),
                "pick a snapshot id from table.history(); expired snapshots cannot be read",
            )
        })
    };
    if let Some(from) = from {
        find(from)?;
    }
    let head = match to {
        Some(id) => Some(find(id)?),
        None => table.snapshot_for_ref(MAIN).cloned(),
    };
    // Newest first, back to (not including) `from`.
    let mut range = Vec::new();
    let mut reached_from = from.is_none();
    let mut current = head.clone();
    while let Some(snapshot) = current {
        if Some(snapshot.snapshot_id()) == from {
            reached_from = true;
            break;
        }
        current = snapshot
            .parent_snapshot_id()
            .and_then(|id| table.metadata.snapshot_by_id(id).cloned());
        range.push(snapshot);
    }
    if !reached_from {
        let to = head.map_or("(none: the table is empty)".into(), |s| {
            s.snapshot_id().to_string()
        });
        return Err(invalid(
            format!(
                "snapshot {} is not an ancestor of snapshot {to}",
                from.unwrap_or_default()
            ),
            "pass an earlier snapshot of the same branch as from_snapshot",
        ));
    }
    let mut files = Vec::new();
    for snapshot in range.iter().rev() {
        if !appended(snapshot).map_err(|message| invalid(message, "read the rows with table.scan(snapshot_id=...) instead, or start after that snapshot"))? {
            continue;
        }
        files.extend(files_added_by(io, table, snapshot).await?);
    }
    ScanPlan::of_files(
        io,
        table,
        files,
        table.metadata.current_schema(),
        head.as_ref(),
        batch_size,
    )
}

/// Whether the rows `snapshot` added count as appended (`false`: it added none that are new);
/// an error when it removed rows.
fn appended(snapshot: &SnapshotRef) -> std::result::Result<bool, String> {
    let summary = snapshot.summary();
    match &summary.operation {
        Operation::Append => Ok(true),
        Operation::Replace => Ok(false),
        op => {
            // Removed nothing only when the summary says so for every kind of removal.
            let removed_nothing = REMOVAL_COUNTS.iter().all(|key| {
                summary
                    .additional_properties
                    .get(*key)
                    .is_some_and(|v| v == "0")
            });
            match removed_nothing {
                true => Ok(true),
                false => Err(format!(
                    "snapshot {} ({}) removed or replaced rows, so the changes up to it are not \
                     only appends",
                    snapshot.snapshot_id(),
                    op.as_str()
                )),
            }
        }
    }
}
