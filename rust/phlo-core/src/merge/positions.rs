//! Where the rows a merge-on-read write replaces sit in their data files. Only the columns that
//! decide (a merge's key columns, a delete's filter columns, plus any column an equality delete
//! compares) are decoded; rows earlier delete files removed are neither matched nor counted
//! live, so a row deleted twice is marked once.

use std::sync::Arc;

use arrow_array::RecordBatch;
use iceberg::io::FileIO;

use crate::error::Result;
use crate::tables::deletes::{FileToRead, Loader};
use crate::tables::{ProjectedFile, Projection};

/// The matching live rows of one data file.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    /// Their positions in the file, ascending.
    pub positions: Vec<i64>,
    /// Per position, the tag the matcher gave it (a merge: the batch row holding its key).
    pub tags: Vec<u32>,
    /// Rows of the file no delete file removed.
    pub live_rows: u64,
}

/// Picks the matching rows of a decoded batch: (row index, tag) pairs, ascending by row.
pub(crate) type Matcher = Arc<dyn Fn(&RecordBatch) -> Result<Vec<(u32, u32)>> + Send + Sync>;

/// Finds the rows of `file` that `matcher` picks, reading the `columns` it needs (which
/// `table_columns`, every column of the table, narrows to, with the file's equality-delete
/// columns added) on as many threads as there are cores.
pub(crate) async fn find(
    io: &FileIO,
    file: &FileToRead,
    (table_columns, columns): (&Projection, &[i32]),
    loader: &Loader,
    matcher: Matcher,
) -> Result<Positions> {
    let mut ids = columns.to_vec();
    for id in file.equality_ids() {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    // The deletes first: they name a column the table lacks (dropped since) as an error.
    let deletes = loader.for_file(io, table_columns, file).await?;
    let projection = table_columns.of_field_ids(&ids)?;
    // The reader skips deleted rows and reports where the rows it yields are in the file.
    let opened = ProjectedFile::open(io, &file.data.file, &projection)
        .await?
        .with_deletes(deletes)
        .with_positions(true);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parts = opened
        .read_parallel(workers, move |mut reader| {
            let mut found = Positions::default();
            while let Some(next) = reader.next_positioned() {
                let (batch, positions) = next?;
                found.live_rows += batch.num_rows() as u64;
                for (row, tag) in matcher(&batch)? {
                    found.positions.push(positions[row as usize]);
                    found.tags.push(tag);
                }
            }
            Ok(found)
        })
        .await?;
    // Workers read consecutive runs of row groups, returned in order: positions stay sorted.
    let mut all = Positions::default();
    for part in parts {
        all.positions.extend(part.positions);
        all.tags.extend(part.tags);
        all.live_rows += part.live_rows;
    }
    Ok(all)
}
