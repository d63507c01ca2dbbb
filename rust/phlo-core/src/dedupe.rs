//! Deduplication of a batch by its unique key: keep the first or the last row of each key (last
//! by arrival, or by an `order_by` column), or drop rows whose whole content repeats (`hash`).
//! Keys are compared as arrow-row encodings, so any key type and composite keys work alike;
//! rows are split by key hash over the cores and each part is deduplicated on its own thread.

use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_row::{RowConverter, Rows, SortField};
use arrow_select::filter::filter_record_batch;
use hashbrown::HashTable;

use crate::error::{Context, Error, Result};
use crate::keys::{KeyColumns, KeyEncoder, check_no_null_keys, hash_rows, key_arrays};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupeMethod {
    /// Keep the first row of each key (arrival order).
    First,
    /// Keep the last row of each key: by arrival, or the greatest `order_by` value.
    Last,
    /// Drop rows whose full content is identical to an earlier row.
    Hash,
}

impl DedupeMethod {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "first" => Ok(Self::First),
            "last" => Ok(Self::Last),
            "hash" => Ok(Self::Hash),
            other => Err(Error::invalid(
                format!("unknown deduplication_method {other:?}"),
                "use \"first\", \"last\" or \"hash\"",
            )),
        }
    }
}

/// The deduplicated batch and how many rows were dropped.
#[derive(Debug)]
pub struct Deduped {
    pub batch: RecordBatch,
    pub duplicates_dropped: u64,
    /// Its keys as deduplication hashed them, from [`dedupe_keyed`] (`None` for `hash`, which
    /// compares whole rows): a merge indexes them without hashing the batch again.
    pub keys: Option<DistinctKeys>,
}

/// The keys of a deduplicated batch, each once: the input's keys and hashes, and the input
/// row each row of the batch is.
pub struct DistinctKeys {
    pub encoder: KeyEncoder,
    pub keys: KeyColumns,
    pub hashes: Vec<u64>,
    /// The input row of each batch row, ascending (`None`: no row was dropped).
    pub rows: Option<Vec<u32>>,
}

impl std::fmt::Debug for DistinctKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistinctKeys")
            .field("input_rows", &self.keys.len())
            .field(
                "rows",
                &self.rows.as_ref().map_or(self.keys.len(), Vec::len),
            )
            .finish()
    }
}

/// Deduplicates `batch` on `keys`. Null keys are an error naming the rows that have them.
pub fn dedupe(
    batch: &RecordBatch,
    keys: &[String],
    method: DedupeMethod,
    order_by: Option<&str>,
) -> Result<Deduped> {
    dedupe_keeping(batch, keys, (method, order_by), false)
}

/// [`dedupe`], keeping the keys it hashed in [`Deduped::keys`] (for a merge's key index).
pub fn dedupe_keyed(
    batch: &RecordBatch,
    keys: &[String],
    method: DedupeMethod,
    order_by: Option<&str>,
) -> Result<Deduped> {
    dedupe_keeping(batch, keys, (method, order_by), true)
}

fn dedupe_keeping(
    batch: &RecordBatch,
    keys: &[String],
    (method, order_by): (DedupeMethod, Option<&str>),
    keep_keys: bool,
) -> Result<Deduped> {
    check_no_null_keys(batch, keys)?;
    let (keep, hashed) = match method {
        DedupeMethod::First | DedupeMethod::Last => {
            let encoder = KeyEncoder::new(batch, keys)?;
            let columns = encoder.keys(batch)?;
            let hashes = hash_rows(&columns);
            let keep = match (method, order_by) {
                (DedupeMethod::First, _) => keep_first(&columns, &hashes),
                (_, None) => keep_last(&columns, &hashes, None),
                (_, Some(column)) => {
                    let order = encode(batch, &[column.to_string()])?;
                    keep_last(&columns, &hashes, Some(&order))
                }
            };
            (keep, Some((encoder, columns, hashes)))
        }
        DedupeMethod::Hash => {
            let all: Vec<String> = batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            let rows = KeyColumns::Rows(encode(batch, &all)?);
            (keep_first(&rows, &hash_rows(&rows)), None)
        }
    };
    let dropped = (batch.num_rows() - keep.len()) as u64;
    // Unless kept, the hashes go before the deduplicated batch is built (as much memory).
    let hashed = hashed.filter(|_| keep_keys);
    let keyed = hashed.is_some();
    let distinct = |rows| {
        hashed.map(|(encoder, keys, hashes)| DistinctKeys {
            encoder,
            keys,
            hashes,
            rows,
        })
    };
    if dropped == 0 {
        return Ok(Deduped {
            batch: batch.clone(),
            duplicates_dropped: 0,
            keys: distinct(None),
        });
    }
    let mut mask = vec![false; batch.num_rows()];
    for i in keep {
        mask[i as usize] = true;
    }
    // The filter keeps the input's order: row k of the batch is the k-th kept input row.
    let rows = keyed.then(|| {
        let kept = mask.iter().enumerate().filter(|(_, kept)| **kept);
        kept.map(|(i, _)| i as u32).collect()
    });
    let batch = filter_record_batch(batch, &BooleanArray::from(mask))
        .context(|| "selecting deduplicated rows".into())?;
    Ok(Deduped {
        batch,
        duplicates_dropped: dropped,
        keys: distinct(rows),
    })
}

/// Row-encodes `columns` of `batch` (order-preserving bytes, equal values → equal bytes).
fn encode(batch: &RecordBatch, columns: &[String]) -> Result<Rows> {
    let arrays = key_arrays(batch, columns)?;
    let fields = arrays
        .iter()
        .map(|a| SortField::new(a.data_type().clone()))
        .collect();
    let converter =
        RowConverter::new(fields).context(|| format!("encoding columns {columns:?}"))?;
    converter
        .convert_columns(&arrays)
        .context(|| format!("encoding columns {columns:?}"))
}

fn keep_first(keys: &KeyColumns, hashes: &[u64]) -> Vec<u32> {
    keep_per_key(hashes, |part, expected| {
        let mut table = HashTable::with_capacity(expected);
        part.filter(|&(i, hash)| first_of_key(&mut table, keys, i, hash))
            .map(|(i, _)| i)
            .collect()
    })
}

/// Last occurrence of each key, or the one with the greatest `order` (ties: the later row).
fn keep_last(keys: &KeyColumns, hashes: &[u64], order: Option<&Rows>) -> Vec<u32> {
    match order {
        // The last row of a key is the first one met walking backwards.
        None => keep_per_key(hashes, |part, expected| {
            let mut table = HashTable::with_capacity(expected);
            let part: Vec<(u32, u64)> = part.collect();
            part.into_iter()
                .rev()
                .filter(|&(i, hash)| first_of_key(&mut table, keys, i, hash))
                .map(|(i, _)| i)
                .collect()
        }),
        Some(order) => keep_per_key(hashes, |part, expected| {
            let mut winners: HashTable<u32> = HashTable::with_capacity(expected);
            for (i, hash) in part {
                match winners.find_mut(hash, |&j| keys.same(i as usize, keys, j as usize)) {
                    Some(winner) => {
                        if order.row(i as usize) >= order.row(*winner as usize) {
                            *winner = i;
                        }
                    }
                    None => {
                        winners.insert_unique(hash, i, |&j| keys.hash(j as usize));
                    }
                }
            }
            winners.into_iter().collect()
        }),
    }
}

/// Inserts row `i` into `table` if its key is new there; returns whether it was.
fn first_of_key(table: &mut HashTable<u32>, keys: &KeyColumns, i: u32, hash: u64) -> bool {
    if table
        .find(hash, |&j| keys.same(i as usize, keys, j as usize))
        .is_some()
    {
        return false;
    }
    table.insert_unique(hash, i, |&j| keys.hash(j as usize));
    true
}

/// Runs `keep` on each hash partition of the rows (whose key hashes are `hashes`) in parallel
/// (rows of one key always share a partition) and returns the kept row indices, unordered.
fn keep_per_key<F>(hashes: &[u64], keep: F) -> Vec<u32>
where
    F: Fn(&mut dyn Iterator<Item = (u32, u64)>, usize) -> Vec<u32> + Sync,
{
    let n = hashes.len();
    let parts = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .min(n / 50_000 + 1);
    std::thread::scope(|scope| {
        let keep = &keep;
        (0..parts as u64)
            .map(|part| {
                scope.spawn(move || {
                    // A middle bit picks the part: hashbrown uses the low bits for buckets and
                    // the top ones for tags.
                    let mut mine = hashes
                        .iter()
                        .enumerate()
                        .filter(|(_, h)| (*h >> 32) % parts as u64 == part)
                        .map(|(i, h)| (i as u32, *h));
                    // Sized for every row of the part being distinct: no rehashing.
                    keep(&mut mine, n / parts + 1)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .flat_map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn batch(ids: Vec<Option<&str>>, versions: Vec<i64>, payload: Vec<&str>) -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Utf8, true),
                Field::new("version", DataType::Int64, false),
                Field::new("payload", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(StringArray::from(ids)),
                Arc::new(Int64Array::from(versions)),
                Arc::new(StringArray::from(payload)),
            ],
        )
        .unwrap()
    }

    fn column(batch: &RecordBatch, i: usize) -> Vec<String> {
        let values = arrow_cast::display::ArrayFormatter::try_new(
            batch.column(i).as_ref(),
            &Default::default(),
        )
        .unwrap();
        (0..batch.num_rows())
            .map(|r| values.value(r).to_string())
            .collect()
    }

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn first_last_and_order_by() {
        let input = batch(
            vec![Some("a"), Some("b"), Some("a"), Some("c"), Some("a")],
            vec![3, 1, 5, 1, 4],
            vec!["a1", "b1", "a2", "c1", "a3"],
        );
        let first = dedupe(&input, &keys(&["id"]), DedupeMethod::First, None).unwrap();
        assert_eq!(column(&first.batch, 2), ["a1", "b1", "c1"]);
        assert_eq!(first.duplicates_dropped, 2);
        // Only a merge keeps the hashed keys.
        assert!(first.keys.is_none());
        let keyed = dedupe_keyed(&input, &keys(&["id"]), DedupeMethod::First, None).unwrap();
        assert_eq!(keyed.keys.unwrap().rows, Some(vec![0, 1, 3]));
        let last = dedupe(&input, &keys(&["id"]), DedupeMethod::Last, None).unwrap();
        assert_eq!(column(&last.batch, 2), ["b1", "c1", "a3"]);
        let by_version =
            dedupe(&input, &keys(&["id"]), DedupeMethod::Last, Some("version")).unwrap();
        assert_eq!(column(&by_version.batch, 2), ["b1", "a2", "c1"]);
    }

    #[test]
    fn hash_drops_only_identical_rows_and_composite_keys_work() {
        let input = batch(
            vec![Some("a"), Some("a"), Some("a")],
            vec![1, 1, 2],
            vec!["x", "x", "x"],
        );
        let hashed = dedupe(&input, &keys(&["id"]), DedupeMethod::Hash, None).unwrap();
        assert_eq!(hashed.duplicates_dropped, 1);
        assert_eq!(column(&hashed.batch, 1), ["1", "2"]);
        let composite =
            dedupe(&input, &keys(&["id", "version"]), DedupeMethod::Last, None).unwrap();
        assert_eq!(composite.batch.num_rows(), 2);
    }

    #[test]
    fn null_keys_and_missing_columns_are_errors() {
        let input = batch(
            vec![Some("a"), None, None],
            vec![1, 2, 3],
            vec!["x", "y", "z"],
        );
        let err = dedupe(&input, &keys(&["id"]), DedupeMethod::Last, None).unwrap_err();
        assert_eq!(err.code(), "merge");
        assert!(err.to_string().contains("rows 1, 2"), "{err}");
        let err = dedupe(&input, &keys(&["nope"]), DedupeMethod::Last, None).unwrap_err();
        assert_eq!(err.location().column.as_deref(), Some("nope"));
        assert!(DedupeMethod::parse("newest").is_err());
    }
}
