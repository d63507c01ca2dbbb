//! Uniqueness across all batches of the input: rows whose key (one column, or several
//! together) occurs more than once fail, as with pandas' and polars' `duplicated`: nulls are
//! equal keys, -0.0 equals 0.0, NaN equals NaN (and, for pandas, a null: both are missing).
//! Which occurrences are reported follows Pandera's `report_duplicates` ([`Keep`]).
//!
//! Built for millions of rows on a few cores: key hashes are computed in parallel, rows are
//! radix-partitioned by hash so each partition's hash table fits in cache, and partitions are
//! checked in parallel. Keys are compared only when their full 64-bit hashes are equal.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow_array::{Array, RecordBatch};
use arrow_schema::{Field, Schema};
use hashbrown::HashTable;

use super::floats;
use super::plan::Keep;
use crate::error::{Context, Result};
use crate::keys::{KeyColumns, KeyEncoder};

/// Below this many rows one partition (and one thread) is fastest.
pub(crate) const SMALL_INPUT: usize = 1 << 16;
/// Hash bits that pick a partition: not the low bits (hashbrown's bucket index) nor the top 7
/// (its control bytes), so each partition's table still spreads its keys.
const PARTITION_SHIFT: u32 = 40;

/// For each batch, the positions (ascending) of its rows whose key is not unique in the whole
/// input, except the occurrences `keep` spares.
pub fn duplicated_rows(
    batches: &[RecordBatch],
    columns: &[String],
    nan_is_null: bool,
    keep: Keep,
) -> Result<Vec<Vec<usize>>> {
    let keys: Vec<RecordBatch> = batches
        .iter()
        .map(|b| key_batch(b, columns, nan_is_null))
        .collect::<Result<_>>()?;
    let Some(first) = keys.first() else {
        return Ok(Vec::new());
    };
    let has_nulls = keys
        .iter()
        .any(|b| b.columns().iter().any(|a| a.logical_null_count() > 0));
    // Direct keys read a null as "" or 0; the row encoding keeps nulls apart from values.
    let encoder = match has_nulls {
        true => KeyEncoder::row_encoded(first, columns)?,
        false => KeyEncoder::new(first, columns)?,
    };
    let keys: Vec<KeyColumns> = keys
        .iter()
        .map(|b| encoder.keys(b))
        .collect::<Result<_>>()?;
    let mut offsets = Vec::with_capacity(batches.len() + 1);
    offsets.push(0usize);
    for batch in batches {
        offsets.push(offsets.last().copied().unwrap_or(0) + batch.num_rows());
    }
    let rows = Rows {
        keys: &keys,
        offsets: &offsets,
    };
    let total = offsets[batches.len()];
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let partitions = if total < SMALL_INPUT { 1 } else { 256 };
    let chunks = partition_chunks(&rows, total, workers, partitions);

    let claimed = AtomicUsize::new(0);
    let mut duplicated: Vec<usize> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.min(partitions))
            .map(|_| {
                scope.spawn(|| {
                    let mut found = Vec::new();
                    loop {
                        let p = claimed.fetch_add(1, Ordering::Relaxed);
                        if p >= partitions {
                            break;
                        }
                        // Chunk order is input order, so first occurrences are met first.
                        let len = chunks.iter().map(|c| c.partition(p).len()).sum();
                        let part = chunks.iter().flat_map(|c| c.partition(p).iter().copied());
                        duplicates_in(part, len, &rows, keep, &mut found);
                    }
                    found
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    duplicated.sort_unstable();
    let mut per_batch: Vec<Vec<usize>> = vec![Vec::new(); batches.len()];
    for global in duplicated {
        let (b, row) = rows.locate(global);
        per_batch[b].push(row);
    }
    Ok(per_batch)
}

/// The key columns of `batch`, floats made canonical (all nullable: NaN may become null).
fn key_batch(batch: &RecordBatch, columns: &[String], nan_is_null: bool) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays = Vec::with_capacity(columns.len());
    for name in columns {
        if let Some(array) = batch.column_by_name(name) {
            fields.push(Field::new(name, array.data_type().clone(), true));
            arrays.push(floats::canonical(array, nan_is_null));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .context(|| "reading the unique columns".into())
}

/// The keys of all batches, addressed by global row index.
struct Rows<'a> {
    keys: &'a [KeyColumns],
    /// `offsets[b]` is the global index of batch `b`'s first row.
    offsets: &'a [usize],
}

impl Rows<'_> {
    fn locate(&self, global: usize) -> (usize, usize) {
        let b = self.offsets.partition_point(|&o| o <= global) - 1;
        (b, global - self.offsets[b])
    }

    fn same(&self, a: usize, b: usize) -> bool {
        let (ba, ra) = self.locate(a);
        let (bb, rb) = self.locate(b);
        self.keys[ba].same(ra, &self.keys[bb], rb)
    }
}

/// One contiguous range of input rows, as `(hash, row)` pairs grouped by partition.
struct Chunk {
    pairs: Vec<(u64, u32)>,
    starts: Vec<usize>,
}

impl Chunk {
    fn partition(&self, p: usize) -> &[(u64, u32)] {
        &self.pairs[self.starts[p]..self.starts[p + 1]]
    }
}

/// Splits the rows into `workers` contiguous chunks and, on one thread per chunk, hashes each
/// row's key and groups the chunk's rows by partition (in input order within each). Hashing
/// twice (count, then place) is cheaper than keeping a hash per row in memory.
fn partition_chunks(
    rows: &Rows<'_>,
    total: usize,
    workers: usize,
    partitions: usize,
) -> Vec<Chunk> {
    let part_of = |h: u64| ((h >> PARTITION_SHIFT) as usize) & (partitions - 1);
    let size = total.div_ceil(workers).max(1);
    let chunk = |from: usize| {
        let to = (from + size).min(total);
        let each = |visit: &mut dyn FnMut(u64, usize)| {
            let (mut b, mut row) = rows.locate(from);
            for global in from..to {
                while row >= rows.keys[b].len() {
                    (b, row) = (b + 1, 0);
                }
                visit(rows.keys[b].hash(row), global);
                row += 1;
            }
        };
        let mut starts = vec![0usize; partitions + 1];
        each(&mut |h, _| starts[part_of(h) + 1] += 1);
        for p in 0..partitions {
            starts[p + 1] += starts[p];
        }
        let mut pairs = vec![(0u64, 0u32); starts[partitions]];
        let mut next = starts.clone();
        each(&mut |h, global| {
            let p = part_of(h);
            pairs[next[p]] = (h, global as u32);
            next[p] += 1;
        });
        Chunk { pairs, starts }
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..total.div_ceil(size))
            .map(|c| scope.spawn(move || chunk(c * size)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    })
}

/// Adds to `found` the rows of one partition whose key occurs more than once in it, except
/// the occurrence `keep` spares.
fn duplicates_in(
    part: impl Iterator<Item = (u64, u32)>,
    len: usize,
    rows: &Rows<'_>,
    keep: Keep,
    found: &mut Vec<usize>,
) {
    // One entry per distinct key: its hash (compared before any key), its first and latest
    // rows, and whether the key came again. Keeping the hash in the entry avoids a cache miss
    // per probe.
    let mut table: HashTable<(u64, u32, u32, bool)> = HashTable::with_capacity(len);
    for (h, r) in part {
        let entry = table.find_mut(h, |&(eh, first, _, _)| {
            eh == h && rows.same(first as usize, r as usize)
        });
        match entry {
            Some((_, _, latest, repeated)) => {
                *repeated = true;
                // Sparing the last occurrence: the previous one is now known not to be last.
                let report = match keep {
                    Keep::ExcludeLast => std::mem::replace(latest, r),
                    Keep::All | Keep::ExcludeFirst => r,
                };
                found.push(report as usize);
            }
            None => {
                table.insert_unique(h, (h, r, r, false), |&(eh, _, _, _)| eh);
            }
        }
    }
    if keep == Keep::All {
        found.extend(
            table
                .iter()
                .filter(|(_, _, _, repeated)| *repeated)
                .map(|&(_, first, _, _)| first as usize),
        );
    }
}
