//! The keys of a merge batch: membership of (composite) keys, and range pruning of data files
//! by the first key column's statistics. Keys are indexed by row number, without one
//! allocation per key; pruning places every batch key once among the files' sorted bounds, so
//! it costs a pass over the batch (times the log of the file count), never a sort of the batch.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, Date32Array, Decimal128Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::DataType;
use hashbrown::HashTable;
use iceberg::spec::{DataFile, Datum, PrimitiveLiteral};

use crate::dedupe::DistinctKeys;
use crate::error::{Context, Result};
use crate::keys::{KeyColumns, KeyEncoder, hash_rows, key_arrays};

pub struct BatchKeys {
    encoder: KeyEncoder,
    keys: KeyColumns,
    /// The row of `keys` holding each batch row's key (`None`: the same row). Keys dedupe
    /// hashed are the rows of its input; the batch, the rows it kept.
    key_rows: Option<Vec<u32>>,
    /// The first batch row of each distinct key, by the key's hash.
    index: HashTable<Entry>,
    filter: HashFilter,
    first: RowConverter,
    first_type: DataType,
    first_rows: Rows,
}

/// A distinct key of the batch: its first row, and high bits of its hash. Most rows a merge
/// probes are not in the batch; comparing the tag first rules them out without reading the
/// batch's key (a cache miss per probe otherwise, on the table's ~7-bit hash match).
#[derive(Clone, Copy)]
struct Entry {
    row: u32,
    tag: u32,
}

fn tag(hash: u64) -> u32 {
    (hash >> 32) as u32
}

/// A Bloom filter of the batch's key hashes, blocked by 64-bit word (each key sets 3 bits of
/// one word), at 8 bits per key: about 4% false positives, and small enough (half a megabyte
/// for 500,000 keys) to stay in a core's cache, unlike the hash table. Most table rows a merge
/// reads are not in the batch; the filter rules them out in one cached load.
struct HashFilter {
    words: Vec<u64>,
}

impl HashFilter {
    fn new(keys: usize) -> Self {
        Self {
            words: vec![0; keys.div_ceil(8).next_power_of_two()],
        }
    }

    /// The word of `hash` (its low bits) and the bits it sets there (three higher 6-bit fields;
    /// the table's own probe uses the lowest and the 7 highest bits).
    fn locate(&self, hash: u64) -> (usize, u64) {
        let word = hash as usize & (self.words.len() - 1);
        let bits =
            (1 << ((hash >> 32) & 63)) | (1 << ((hash >> 38) & 63)) | (1 << ((hash >> 44) & 63));
        (word, bits)
    }

    fn insert(&mut self, hash: u64) {
        let (word, bits) = self.locate(hash);
        self.words[word] |= bits;
    }

    fn may_hold(&self, hash: u64) -> bool {
        let (word, bits) = self.locate(hash);
        self.words[word] & bits == bits
    }
}

/// The row of `keys` holding batch row `row`'s key (see [`BatchKeys::key_rows`]).
fn key_row(key_rows: Option<&[u32]>, row: u32) -> usize {
    key_rows.map_or(row, |rows| rows[row as usize]) as usize
}

/// The entry of `index` (over `keys`) with the key of row `i` of `probe`, whose hash is `hash`.
fn find(
    index: &HashTable<Entry>,
    (keys, key_rows): (&KeyColumns, Option<&[u32]>),
    hash: u64,
    probe: &KeyColumns,
    i: usize,
) -> Option<usize> {
    let tag = tag(hash);
    index
        .find(hash, |e| {
            e.tag == tag && keys.same(key_row(key_rows, e.row), probe, i)
        })
        .map(|e| e.row as usize)
}

impl BatchKeys {
    pub fn new(batch: &RecordBatch, names: &[String]) -> Result<Self> {
        let encoder = KeyEncoder::new(batch, names)?;
        let keys = encoder.keys(batch)?;
        let hashes = hash_rows(&keys);
        let mut index = HashTable::with_capacity(keys.len());
        let mut filter = HashFilter::new(keys.len());
        for (i, &hash) in hashes.iter().enumerate() {
            if find(&index, (&keys, None), hash, &keys, i).is_none() {
                let entry = Entry {
                    row: i as u32,
                    tag: tag(hash),
                };
                index.insert_unique(hash, entry, |e| hashes[e.row as usize]);
                filter.insert(hash);
            }
        }
        Self::with_index(batch, names, (encoder, keys, None), (index, filter))
    }

    /// The keys of `batch`, which dedupe left `distinct` and hashed: indexed without hashing
    /// or looking up any key again.
    pub fn from_distinct(
        batch: &RecordBatch,
        names: &[String],
        distinct: DistinctKeys,
    ) -> Result<Self> {
        let DistinctKeys {
            encoder,
            keys,
            hashes,
            rows,
        } = distinct;
        let batch_rows = rows.as_ref().map_or(keys.len(), Vec::len);
        let hash_of = |row: u32| hashes[key_row(rows.as_deref(), row)];
        let mut index = HashTable::with_capacity(batch_rows);
        let mut filter = HashFilter::new(batch_rows);
        for row in 0..batch_rows as u32 {
            let hash = hash_of(row);
            let entry = Entry {
                row,
                tag: tag(hash),
            };
            index.insert_unique(hash, entry, |e| hash_of(e.row));
            filter.insert(hash);
        }
        Self::with_index(batch, names, (encoder, keys, rows), (index, filter))
    }

    fn with_index(
        batch: &RecordBatch,
        names: &[String],
        (encoder, keys, key_rows): (KeyEncoder, KeyColumns, Option<Vec<u32>>),
        (index, filter): (HashTable<Entry>, HashFilter),
    ) -> Result<Self> {
        let first_column = key_arrays(batch, &names[..1])?;
        let first_type = first_column[0].data_type().clone();
        let first = RowConverter::new(vec![SortField::new(first_type.clone())])
            .context(|| "encoding keys".into())?;
        let first_rows = first
            .convert_columns(&first_column)
            .context(|| "encoding keys".into())?;
        Ok(Self {
            encoder,
            keys,
            key_rows,
            index,
            filter,
            first,
            first_type,
            first_rows,
        })
    }

    /// The batch's rows.
    pub fn num_rows(&self) -> usize {
        self.key_rows.as_ref().map_or(self.keys.len(), Vec::len)
    }

    pub fn distinct(&self) -> usize {
        self.index.len()
    }

    /// The keys of a table batch, comparable with the batch's.
    pub fn probe(&self, batch: &RecordBatch) -> Result<KeyColumns> {
        self.encoder.keys(batch)
    }

    /// The rows of `probe` whose key is in the batch, ascending, each with the batch row
    /// holding it (never a row without a key: batch keys are never null).
    pub fn matches(&self, probe: &KeyColumns) -> Vec<(u32, u32)> {
        (0..probe.len())
            .filter(|&i| !probe.is_null(i))
            .filter_map(|i| {
                let hash = probe.hash(i);
                if !self.filter.may_hold(hash) {
                    return None;
                }
                let keys = (&self.keys, self.key_rows.as_deref());
                let row = find(&self.index, keys, hash, probe, i)?;
                Some((i as u32, row as u32))
            })
            .collect()
    }

    /// Per file of `files`, whether it may hold one of the keys: false only when the first key
    /// column's min/max statistics (`field_id`) prove no batch key falls in the file's range.
    ///
    /// The files' bounds are sorted (a few per file), and each batch key is placed among them
    /// by binary search, marking the gap or bound it lands on; a file may hold a key when any
    /// mark falls between its lower and upper bound.
    pub fn may_be_in<'a>(
        &self,
        files: impl IntoIterator<Item = &'a DataFile>,
        field_id: Option<i32>,
    ) -> Vec<bool> {
        let ranges: Vec<Option<(Vec<u8>, Vec<u8>)>> = files
            .into_iter()
            .map(|file| self.key_range(file, field_id?))
            .collect();
        let mut bounds: Vec<&[u8]> = ranges
            .iter()
            .flatten()
            .flat_map(|(lower, upper)| [lower.as_slice(), upper.as_slice()])
            .collect();
        bounds.sort_unstable();
        bounds.dedup();
        // Slot 2i: the keys between bound i-1 and bound i; slot 2i+1: bound i itself.
        let slot = |key: &[u8]| {
            let i = bounds.partition_point(|b| *b < key);
            2 * i + usize::from(bounds.get(i) == Some(&key))
        };
        let mut hit = vec![false; 2 * bounds.len() + 1];
        if !bounds.is_empty() {
            for row in self.first_rows.iter() {
                hit[slot(row.as_ref())] = true;
            }
        }
        // hits_before[s]: how many slots before slot s were hit.
        let hits_before: Vec<u32> = std::iter::once(0)
            .chain(hit.iter().scan(0u32, |n, &h| {
                *n += u32::from(h);
                Some(*n)
            }))
            .collect();
        ranges
            .iter()
            .map(|range| match range {
                None => true,
                Some((lower, upper)) => {
                    let (first, last) = (slot(lower), slot(upper));
                    first > last || hits_before[last + 1] > hits_before[first]
                }
            })
            .collect()
    }

    /// The first key column's bounds of `file`, row-encoded (`None`: no usable statistics).
    fn key_range(&self, file: &DataFile, id: i32) -> Option<(Vec<u8>, Vec<u8>)> {
        let lower = self.encode_bound(file.lower_bounds().get(&id)?)?;
        let upper = self.encode_bound(file.upper_bounds().get(&id)?)?;
        Some((lower, upper))
    }

    /// A statistics bound as the row encoding of the key column's type (`None` if the type is
    /// not one phlo prunes on: then the file is always read).
    fn encode_bound(&self, bound: &Datum) -> Option<Vec<u8>> {
        let array: ArrayRef = match (bound.literal(), &self.first_type) {
            (PrimitiveLiteral::Long(v), DataType::Int64) => Arc::new(Int64Array::from(vec![*v])),
            (PrimitiveLiteral::Int(v), DataType::Int32) => Arc::new(Int32Array::from(vec![*v])),
            (PrimitiveLiteral::Int(v), DataType::Date32) => Arc::new(Date32Array::from(vec![*v])),
            (PrimitiveLiteral::String(v), DataType::Utf8) => {
                Arc::new(StringArray::from(vec![v.as_str()]))
            }
            (PrimitiveLiteral::Binary(v), DataType::Binary) => {
                Arc::new(BinaryArray::from(vec![v.as_slice()]))
            }
            (PrimitiveLiteral::Long(v), DataType::Timestamp(_, tz)) => {
                Arc::new(TimestampMicrosecondArray::from(vec![*v]).with_timezone_opt(tz.clone()))
            }
            (PrimitiveLiteral::Int128(v), DataType::Decimal128(p, s)) => Arc::new(
                Decimal128Array::from(vec![*v])
                    .with_precision_and_scale(*p, *s)
                    .ok()?,
            ),
            _ => return None,
        };
        let rows = self.first.convert_columns(&[array]).ok()?;
        Some(rows.row(0).as_ref().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use iceberg::spec::Datum;

    use super::*;
    use crate::tables::eval::test_files::stats_file;

    /// xorshift: seeded, so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self, below: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % below
        }
    }

    fn keyed(column: ArrayRef) -> (RecordBatch, Vec<String>) {
        let batch = RecordBatch::try_from_iter([("id", column)]).unwrap();
        (batch, vec!["id".to_string()])
    }

    fn file(bounds: Option<(i64, i64)>) -> DataFile {
        let bounds = bounds.map(|(l, u)| (Datum::long(l), Datum::long(u)));
        stats_file(1, bounds, None, None)
    }

    #[test]
    fn files_are_kept_exactly_when_a_key_falls_in_their_range() {
        let mut rng = Rng(3);
        for round in 0..50 {
            let keys: Vec<i64> = (0..rng.next(40)).map(|_| rng.next(200) as i64).collect();
            let (batch, names) = keyed(Arc::new(Int64Array::from(keys.clone())));
            let batch_keys = BatchKeys::new(&batch, &names).unwrap();
            // Overlapping, nested, single-value, inverted and unknown ranges, some on a key.
            let ranges: Vec<Option<(i64, i64)>> = (0..rng.next(12))
                .map(|_| match rng.next(10) {
                    0 => None,
                    _ => Some((rng.next(220) as i64 - 10, rng.next(220) as i64 - 10)),
                })
                .chain(keys.first().map(|&k| Some((k, k))))
                .collect();
            let files: Vec<DataFile> = ranges.iter().map(|r| file(*r)).collect();
            let expected: Vec<bool> = ranges
                .iter()
                .map(|r| match r {
                    None => true,
                    Some((l, u)) if l > u => true,
                    Some((l, u)) => keys.iter().any(|k| (l..=u).contains(&k)),
                })
                .collect();
            assert_eq!(
                batch_keys.may_be_in(&files, Some(1)),
                expected,
                "round {round}: keys {keys:?}, ranges {ranges:?}"
            );
            // Without the key column's statistics nothing is pruned.
            assert!(batch_keys.may_be_in(&files, Some(2)).iter().all(|&k| k));
            assert!(batch_keys.may_be_in(&files, None).iter().all(|&k| k));
        }
    }

    #[test]
    fn matches_find_every_batch_key_and_nothing_else() {
        let mut rng = Rng(11);
        // Enough keys that the filter and the hash tags are busy.
        let batch: Vec<i64> = (0..20_000).map(|_| rng.next(1 << 40) as i64).collect();
        let table: Vec<i64> = (0..50_000)
            .map(|i| match i % 3 {
                0 => batch[rng.next(batch.len() as u64) as usize],
                _ => rng.next(1 << 40) as i64,
            })
            .collect();
        let first: HashMap<i64, u32> = batch
            .iter()
            .enumerate()
            .rev()
            .map(|(i, &k)| (k, i as u32))
            .collect();
        let expected: Vec<(u32, u32)> = table
            .iter()
            .enumerate()
            .filter_map(|(row, k)| first.get(k).map(|&i| (row as u32, i)))
            .collect();
        let as_text = |keys: &[i64]| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(
                keys.iter().map(|k| format!("key-{k}")),
            ))
        };
        for (batch, table) in [
            (
                Arc::new(Int64Array::from(batch.clone())) as ArrayRef,
                Arc::new(Int64Array::from(table.clone())) as ArrayRef,
            ),
            (as_text(&batch), as_text(&table)),
        ] {
            let (batch, names) = keyed(batch);
            let keys = BatchKeys::new(&batch, &names).unwrap();
            assert_eq!(keys.distinct(), first.len());
            let (table, _) = keyed(table);
            assert_eq!(keys.matches(&keys.probe(&table).unwrap()), expected);
        }
    }

    #[test]
    fn keys_dedupe_hashed_match_as_the_deduplicated_batch_rows() {
        use crate::dedupe::{DedupeMethod, dedupe_keyed};
        let mut rng = Rng(5);
        // Many repeats, so the kept rows are far from the input rows.
        let input: Vec<i64> = (0..30_000).map(|_| rng.next(5_000) as i64).collect();
        let table: Vec<i64> = (0..20_000).map(|_| rng.next(10_000) as i64).collect();
        for method in [DedupeMethod::First, DedupeMethod::Last] {
            let (input, names) = keyed(Arc::new(Int64Array::from(input.clone())));
            let deduped = dedupe_keyed(&input, &names, method, None).unwrap();
            let distinct = deduped.keys.unwrap();
            assert!(distinct.rows.is_some());
            let shared = BatchKeys::from_distinct(&deduped.batch, &names, distinct).unwrap();
            let fresh = BatchKeys::new(&deduped.batch, &names).unwrap();
            assert_eq!(shared.num_rows(), deduped.batch.num_rows());
            assert_eq!(shared.distinct(), fresh.distinct());
            let (table, _) = keyed(Arc::new(Int64Array::from(table.clone())));
            let probe = fresh.probe(&table).unwrap();
            // Each match names the deduplicated batch's row holding the key.
            let matches = shared.matches(&probe);
            assert!(!matches.is_empty());
            assert_eq!(matches, fresh.matches(&probe), "{method:?}");
        }
    }
}
