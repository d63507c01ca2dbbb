//! Uniqueness across all batches of the input: every row whose key (one column, or several
//! together) occurs more than once fails, as with Pandera's `keep=False`. Rows with a null in
//! the key are skipped, as Pandera skips them.
//!
//! Built for millions of rows on a few cores: key hashes are computed in parallel, rows are
//! radix-partitioned by hash so each partition's hash table fits in cache, and partitions are
//! checked in parallel. Keys are compared only when their full 64-bit hashes are equal.

use std::sync::atomic::{AtomicUsize, Ordering};

use arrow_array::{Array, RecordBatch};
use hashbrown::HashTable;

use crate::error::Result;
use crate::keys::{KeyColumns, KeyEncoder};

/// Below this many rows one partition (and one thread) is fastest.
const SMALL_INPUT: usize = 1 << 16;
/// Hash bits that pick a partition: not the low bits (hashbrown's bucket index) nor the top 7
/// (its control bytes), so each partition's table still spreads its keys.
const PARTITION_SHIFT: u32 = 40;

/// For each batch, the positions of its rows whose key is not unique in the whole input.
pub fn duplicated_rows(batches: &[RecordBatch], columns: &[String]) -> Result<Vec<Vec<usize>>> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let encoder = KeyEncoder::new(first, columns)?;
    let keys: Vec<KeyColumns> = batches
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
    let hashes = hash_all(&rows, total, workers);
    let skip = null_rows(batches, columns, total);

    let partitions = if total < SMALL_INPUT { 1 } else { 256 };
    let part_of = |h: u64| ((h >> PARTITION_SHIFT) as usize) & (partitions - 1);
    let mut starts = vec![0usize; partitions + 1];
    for (r, &h) in hashes.iter().enumerate() {
        if !skip.as_ref().is_some_and(|s| s[r]) {
            starts[part_of(h) + 1] += 1;
        }
    }
    for p in 0..partitions {
        starts[p + 1] += starts[p];
    }
    // Row ids grouped by partition, in input order within each (so the first occurrence of a
    // key is met first).
    let mut order = vec![0u32; starts[partitions]];
    let mut next = starts.clone();
    for (r, &h) in hashes.iter().enumerate() {
        if !skip.as_ref().is_some_and(|s| s[r]) {
            let p = part_of(h);
            order[next[p]] = r as u32;
            next[p] += 1;
        }
    }

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
                        let part = &order[starts[p]..starts[p + 1]];
                        duplicates_in(part, &hashes, &rows, &mut found);
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

/// The key hash of every row, computed on `workers` threads.
fn hash_all(rows: &Rows<'_>, total: usize, workers: usize) -> Vec<u64> {
    let mut hashes = vec![0u64; total];
    let chunk = total.div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        for (c, slice) in hashes.chunks_mut(chunk).enumerate() {
            scope.spawn(move || {
                let (mut b, mut row) = rows.locate(c * chunk);
                for h in slice.iter_mut() {
                    while row >= rows.keys[b].len() {
                        (b, row) = (b + 1, 0);
                    }
                    *h = rows.keys[b].hash(row);
                    row += 1;
                }
            });
        }
    });
    hashes
}

/// Rows with a null in any key column (`None` when there are none).
fn null_rows(batches: &[RecordBatch], columns: &[String], total: usize) -> Option<Vec<bool>> {
    let has_nulls = batches.iter().any(|b| {
        columns.iter().any(|c| {
            b.column_by_name(c)
                .is_some_and(|a| a.logical_null_count() > 0)
        })
    });
    if !has_nulls {
        return None;
    }
    let mut skip = Vec::with_capacity(total);
    for batch in batches {
        let nulls: Vec<_> = columns
            .iter()
            .filter_map(|c| batch.column_by_name(c)?.logical_nulls())
            .collect();
        skip.extend((0..batch.num_rows()).map(|i| nulls.iter().any(|n| n.is_null(i))));
    }
    Some(skip)
}

/// Adds to `found` the rows of one partition whose key occurs more than once in it.
fn duplicates_in(part: &[u32], hashes: &[u64], rows: &Rows<'_>, found: &mut Vec<usize>) {
    // Entries are first occurrences; `repeated[e]` says whether the key came again.
    let mut table: HashTable<u32> = HashTable::with_capacity(part.len());
    let mut firsts: Vec<u32> = Vec::with_capacity(part.len());
    let mut repeated: Vec<bool> = Vec::with_capacity(part.len());
    for &r in part {
        let h = hashes[r as usize];
        let entry = table.find(h, |&e| {
            let first = firsts[e as usize] as usize;
            hashes[first] == h && rows.same(first, r as usize)
        });
        match entry {
            Some(&e) => {
                repeated[e as usize] = true;
                found.push(r as usize);
            }
            None => {
                let e = firsts.len() as u32;
                firsts.push(r);
                repeated.push(false);
                table.insert_unique(h, e, |&e| hashes[firsts[e as usize] as usize]);
            }
        }
    }
    found.extend(
        firsts
            .iter()
            .zip(&repeated)
            .filter(|(_, rep)| **rep)
            .map(|(&r, _)| r as usize),
    );
}
