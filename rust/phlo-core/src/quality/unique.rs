//! A streaming uniqueness index: every key (one or more columns) seen so far and how often,
//! so duplicates are found across batches while only the keys stay in memory. Nulls are equal
//! keys, -0.0 equals 0.0 and NaN equals NaN and null (pandas' `duplicated`). A single integer,
//! date or timestamp key is kept as an `i64` — as two bits of a bitmap when the data files'
//! bounds put every key in a range not much wider than the rows (dense ids), else in a hash
//! table —, a single string key as its bytes, any other key row-encoded (arrow-row), in one
//! arena.
//!
//! Integer keys often come sorted (ids assigned at ingestion): a batch whose keys strictly
//! increase holds no duplicate of its own, and when its key range is disjoint from every key
//! seen before it holds none at all. Such a batch is recorded as one interval of keys each
//! seen once ([`Runs`]) and never touches the bitmap or hash table; any other batch is indexed
//! key by key, a key inside a recorded interval counted in the hash table.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, StringArrayType};
use arrow_cast::cast;
use arrow_row::{RowConverter, SortField};
use arrow_schema::DataType;
use hashbrown::{DefaultHashBuilder, HashTable};

use crate::validate::floats::canonical;

/// The keys seen so far.
pub struct UniqueIndex {
    layout: Layout,
    hasher: DefaultHashBuilder,
    /// Rows whose (directly read) key is null: they are duplicates of each other.
    nulls: u64,
}

enum Layout {
    Ints {
        /// Keys within the range the files' bounds give, when that range is narrow enough.
        dense: Option<Dense>,
        /// Any other key, and how often it occurred (a key inside `runs` counts its
        /// occurrence there too).
        table: HashTable<(i64, u64)>,
        /// Keys of sorted batches disjoint from everything seen before, each seen once.
        runs: Runs,
        /// The range of the keys indexed key by key (`dense` and `table`), when any were.
        indexed: Option<(i64, i64)>,
    },
    Bytes {
        /// `(hash, start in arena, length, occurrences)`.
        table: HashTable<(u64, usize, usize, u64)>,
        arena: Vec<u8>,
        /// Set for any key other than a single string column.
        converter: Option<RowConverter>,
    },
}

/// Whether a key column is read as an `i64`.
fn integer_like(data_type: &DataType) -> bool {
    use DataType::*;
    matches!(
        data_type,
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | Date32 | Date64 | Timestamp(..)
    )
}

fn string_like(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

impl UniqueIndex {
    /// An index for keys of these column types.
    pub fn new(types: &[DataType]) -> Result<Self, String> {
        let layout = match types {
            [t] if integer_like(t) => Layout::Ints {
                dense: None,
                table: HashTable::new(),
                runs: Runs::default(),
                indexed: None,
            },
            [t] if string_like(t) => Layout::Bytes {
                table: HashTable::new(),
                arena: Vec::new(),
                converter: None,
            },
            _ => Layout::Bytes {
                table: HashTable::new(),
                arena: Vec::new(),
                converter: Some(
                    RowConverter::new(types.iter().map(|t| SortField::new(t.clone())).collect())
                        .map_err(|e| format!("keys of these types cannot be compared: {e}"))?,
                ),
            },
        };
        Ok(Self {
            layout,
            hasher: DefaultHashBuilder::default(),
            nulls: 0,
        })
    }

    /// Whether a single key column can be bounded by [`Self::bound`].
    pub fn boundable(&self) -> bool {
        matches!(self.layout, Layout::Ints { .. })
    }

    /// Every (or nearly every) key will lie in `[low, high]` (the data files' bounds), and
    /// about `rows` keys will come: a bitmap of the range replaces the hash table when it is
    /// at most `DENSE_BITS_PER_ROW` bits per row. Call before adding keys.
    pub fn bound(&mut self, low: i64, high: i64, rows: u64) {
        let width = i128::from(high) - i128::from(low) + 1;
        let affordable = i128::from(rows.max(1 << 16)) * DENSE_BITS_PER_ROW;
        if let Layout::Ints { dense, .. } = &mut self.layout
            && (1..=affordable).contains(&width)
        {
            *dense = Some(Dense::new(low, width as usize));
        }
    }

    /// Adds the keys of one batch; returns (up to `wanted` of) its rows whose key was seen
    /// before (second and later occurrences).
    pub fn add(&mut self, columns: &[ArrayRef], wanted: usize) -> Result<Vec<usize>, String> {
        // Dictionary-encoded strings are compared by their values.
        let columns = &columns
            .iter()
            .map(super::kernels::plain)
            .collect::<Result<Vec<_>, _>>()?;
        let hasher = &self.hasher;
        let mut found = Duplicates {
            wanted,
            rows: Vec::new(),
        };
        match &mut self.layout {
            Layout::Ints {
                dense,
                table,
                runs,
                indexed,
            } => {
                let ints = cast(&columns[0], &DataType::Int64).map_err(|e| e.to_string())?;
                let ints = ints.as_primitive::<Int64Type>();
                let keys = ints.values();
                let surveyed = match ints.null_count() {
                    0 => survey(keys),
                    _ => arrow_arith::aggregate::min(ints)
                        .zip(arrow_arith::aggregate::max(ints))
                        .map(|(low, high)| (low, high, false)),
                };
                if let Some((low, high, true)) = surveyed
                    && !indexed.is_some_and(|(l, h)| low <= h && l <= high)
                    && runs.insert(keys)
                {
                    // Sorted and new: no duplicate, nothing to index.
                    return Ok(found.rows);
                }
                // Per-key interval look-ups only when the batch reaches into some interval.
                let mut runs_met = None;
                if let Some((low, high, _)) = surveyed {
                    let (l, h) = indexed.unwrap_or((low, high));
                    *indexed = Some((l.min(low), h.max(high)));
                    runs_met = runs.overlaps(low, high).then_some(&*runs);
                    // Every key in the bitmap's range (the usual case): one tight loop.
                    if let Some(dense) = dense.as_mut()
                        && ints.null_count() == 0
                        && runs_met.is_none()
                        && dense.offset(low).is_some()
                        && dense.offset(high).is_some()
                    {
                        dense.add_all(keys, &mut found);
                        return Ok(found.rows);
                    }
                }
                if dense.is_none() {
                    table.reserve(ints.len(), |(k, _)| hasher.hash_one(k));
                }
                let mut add = |found: &mut Duplicates, row: usize, key: i64| {
                    let again = if runs_met.is_some_and(|r| r.contains(key)) {
                        // Seen once in a run: the table counts this occurrence and that one.
                        count_from(table, hasher, key, 1);
                        true
                    } else {
                        match dense.as_mut().and_then(|d| d.add(key)) {
                            Some(again) => again,
                            None => count_from(table, hasher, key, 0),
                        }
                    };
                    if again {
                        found.push(row);
                    }
                };
                // Without nulls (the usual key column) the values are walked directly.
                match ints.nulls() {
                    None => {
                        for (row, &key) in keys.iter().enumerate() {
                            add(&mut found, row, key);
                        }
                    }
                    Some(nulls) => {
                        for (row, &key) in keys.iter().enumerate() {
                            if nulls.is_valid(row) {
                                add(&mut found, row, key);
                            } else {
                                self.nulls += 1;
                                found.null(row, self.nulls);
                            }
                        }
                    }
                }
            }
            Layout::Bytes {
                table,
                arena,
                converter: Some(converter),
            } => {
                // Floats as pandas compares them: one zero, NaN equal to null.
                let keys: Vec<ArrayRef> = columns.iter().map(|c| canonical(c, true)).collect();
                let rows = converter
                    .convert_columns(&keys)
                    .map_err(|e| e.to_string())?;
                for row in 0..rows.num_rows() {
                    if insert(table, arena, hasher, rows.row(row).as_ref()) {
                        found.push(row);
                    }
                }
            }
            Layout::Bytes {
                table,
                arena,
                converter: None,
            } => {
                let column = &columns[0];
                let mut each = |row: usize, key: Option<&str>| match key {
                    Some(key) => {
                        if insert(table, arena, hasher, key.as_bytes()) {
                            found.push(row);
                        }
                    }
                    None => {
                        self.nulls += 1;
                        found.null(row, self.nulls);
                    }
                };
                match column.data_type() {
                    DataType::Utf8 => strings(column.as_string::<i32>(), &mut each),
                    DataType::LargeUtf8 => strings(column.as_string::<i64>(), &mut each),
                    _ => strings(column.as_string_view(), &mut each),
                }
            }
        }
        Ok(found.rows)
    }

    /// Rows whose key occurs more than once: every occurrence counts.
    pub fn duplicated_rows(&self) -> u64 {
        let repeated = |n: u64| if n > 1 { n } else { 0 };
        let keys: u64 = match &self.layout {
            Layout::Ints { dense, table, .. } => {
                let in_range = dense.as_ref().map_or(0, |d| d.keys + d.later);
                in_range + table.iter().map(|&(_, n)| repeated(n)).sum::<u64>()
            }
            Layout::Bytes { table, .. } => table.iter().map(|&(_, _, _, n)| repeated(n)).sum(),
        };
        keys + repeated(self.nulls)
    }
}

/// Bits of bitmap per expected row a dense key range may cost (two bitmaps of the range):
/// about what a hash table entry costs, without its random memory access.
const DENSE_BITS_PER_ROW: i128 = 64;

/// Keys of `[low, low + width)` as bits: seen once, seen again.
struct Dense {
    low: i64,
    seen: Vec<u64>,
    again: Vec<u64>,
    /// Keys seen more than once.
    keys: u64,
    /// Occurrences after the first of those keys.
    later: u64,
}

impl Dense {
    fn new(low: i64, width: usize) -> Self {
        let words = width.div_ceil(64);
        Self {
            low,
            seen: vec![0; words],
            again: vec![0; words],
            keys: 0,
            later: 0,
        }
    }

    /// The position of `key` in the range, `None` when it is out of the range.
    fn offset(&self, key: i64) -> Option<usize> {
        let offset = usize::try_from(key.checked_sub(self.low)?).ok()?;
        (offset < self.seen.len() * 64).then_some(offset)
    }

    /// Records `keys`, all in the range, pushing the rows seen before to `found`. Few
    /// instructions per key and no call: the bitmap's cache misses of many keys overlap.
    fn add_all(&mut self, keys: &[i64], found: &mut Duplicates) {
        for (row, &key) in keys.iter().enumerate() {
            let offset = key.wrapping_sub(self.low) as usize;
            let (word, bit) = (offset / 64, 1u64 << (offset % 64));
            let seen = self.seen[word];
            self.seen[word] = seen | bit;
            if seen & bit != 0 {
                self.again_at(word, bit);
                found.push(row);
            }
        }
    }

    /// Records `key`: whether it had been seen before, `None` when it is out of the range.
    fn add(&mut self, key: i64) -> Option<bool> {
        let offset = self.offset(key)?;
        let (word, bit) = (offset / 64, 1u64 << (offset % 64));
        let seen = &mut self.seen[word];
        if *seen & bit == 0 {
            *seen |= bit;
            return Some(false);
        }
        self.again_at(word, bit);
        Some(true)
    }

    /// Counts another occurrence of a key seen before.
    fn again_at(&mut self, word: usize, bit: u64) {
        self.later += 1;
        if self.again[word] & bit == 0 {
            self.again[word] |= bit;
            self.keys += 1;
        }
    }
}

/// Duplicate rows of one batch, up to the number wanted.
struct Duplicates {
    wanted: usize,
    rows: Vec<usize>,
}

impl Duplicates {
    fn push(&mut self, row: usize) {
        if self.rows.len() < self.wanted {
            self.rows.push(row);
        }
    }

    /// A null key is a duplicate from the second null on.
    fn null(&mut self, row: usize, nulls_so_far: u64) {
        if nulls_so_far > 1 {
            self.push(row);
        }
    }
}

/// Counts an integer `key`, of which `elsewhere` occurrences were counted outside the table;
/// whether it had been seen before.
fn count_from(
    table: &mut HashTable<(i64, u64)>,
    hasher: &DefaultHashBuilder,
    key: i64,
    elsewhere: u64,
) -> bool {
    let hash = hasher.hash_one(key);
    match table.find_mut(hash, |(k, _)| *k == key) {
        Some((_, seen)) => {
            *seen += 1;
            true
        }
        None => {
            table.insert_unique(hash, (key, elsewhere + 1), |(k, _)| hasher.hash_one(k));
            elsewhere > 0
        }
    }
}

/// The smallest and largest of `keys` (none null), and whether each is greater than the one
/// before: one pass without early exit, so it vectorizes.
fn survey(keys: &[i64]) -> Option<(i64, i64, bool)> {
    let first = *keys.first()?;
    let (mut low, mut high, mut ascending) = (first, first, true);
    let mut previous = first;
    for &key in &keys[1..] {
        low = low.min(key);
        high = high.max(key);
        ascending &= previous < key;
        previous = key;
    }
    Some((low, high, ascending))
}

/// Keys of sorted batches in disjoint intervals, each key seen exactly once (as far as the
/// intervals tell: a key seen again is counted in the hash table). An interval of consecutive
/// keys is its two ends, and merges with an adjacent one, so the ids of a sorted table stay a
/// handful of intervals; one with gaps keeps its keys (8 bytes each, searched by bisection).
#[derive(Default)]
struct Runs {
    /// Start → its interval.
    starts: BTreeMap<i64, Run>,
}

struct Run {
    /// Last key (inclusive).
    end: i64,
    /// The keys, when not every integer from start to end is one.
    keys: Option<Vec<i64>>,
}

impl Runs {
    /// Whether `key` was seen in some interval.
    fn contains(&self, key: i64) -> bool {
        self.starts
            .range(..=key)
            .next_back()
            .is_some_and(|(_, run)| {
                run.end >= key
                    && run
                        .keys
                        .as_ref()
                        .is_none_or(|k| k.binary_search(&key).is_ok())
            })
    }

    /// Whether some interval meets `[low, high]`.
    fn overlaps(&self, low: i64, high: i64) -> bool {
        // The interval starting last at or before `high` is the only one that can.
        self.starts
            .range(..=high)
            .next_back()
            .is_some_and(|(_, run)| run.end >= low)
    }

    /// Records `keys` (strictly increasing) when their range is disjoint from every interval;
    /// whether it was.
    fn insert(&mut self, keys: &[i64]) -> bool {
        let (Some(&low), Some(&high)) = (keys.first(), keys.last()) else {
            return true;
        };
        if self.overlaps(low, high) {
            return false;
        }
        let consecutive = i128::from(high) - i128::from(low) + 1 == keys.len() as i128;
        if !consecutive {
            let keys = Some(keys.to_vec());
            self.starts.insert(low, Run { end: high, keys });
            return true;
        }
        let (mut start, mut end) = (low, high);
        if let Some((&before, run)) = self.starts.range(..low).next_back()
            && run.keys.is_none()
            && run.end.checked_add(1) == Some(low)
        {
            self.starts.remove(&before);
            start = before;
        }
        if let Some(after) = high.checked_add(1)
            && self
                .starts
                .get(&after)
                .is_some_and(|run| run.keys.is_none())
            && let Some(run) = self.starts.remove(&after)
        {
            end = run.end;
        }
        self.starts.insert(start, Run { end, keys: None });
        true
    }
}

/// Records `key`; whether it had been seen before.
fn insert(
    table: &mut HashTable<(u64, usize, usize, u64)>,
    arena: &mut Vec<u8>,
    hasher: &DefaultHashBuilder,
    key: &[u8],
) -> bool {
    let hash = hasher.hash_one(key);
    let found = table.find_mut(hash, |&(h, start, len, _)| {
        h == hash && &arena[start..start + len] == key
    });
    match found {
        Some((_, _, _, seen)) => {
            *seen += 1;
            true
        }
        None => {
            table.insert_unique(hash, (hash, arena.len(), key.len(), 1), |e| e.0);
            arena.extend_from_slice(key);
            false
        }
    }
}

fn strings<'a, S: StringArrayType<'a>>(array: S, each: &mut impl FnMut(usize, Option<&str>)) {
    for row in 0..array.len() {
        each(row, array.is_valid(row).then(|| array.value(row)));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::Int64Array;

    use super::*;

    /// Duplicated rows and sampled rows per batch, with and without a dense range.
    fn index(bounds: Option<(i64, i64)>, batches: &[Vec<Option<i64>>]) -> (u64, Vec<Vec<usize>>) {
        let mut index = UniqueIndex::new(&[DataType::Int64]).unwrap();
        if let Some((low, high)) = bounds {
            index.bound(low, high, 8);
        }
        let samples = batches
            .iter()
            .map(|keys| {
                let column: ArrayRef = Arc::new(Int64Array::from(keys.clone()));
                index.add(&[column], 100).unwrap()
            })
            .collect();
        (index.duplicated_rows(), samples)
    }

    #[test]
    fn a_dense_range_counts_as_the_hash_table_even_with_keys_outside_it() {
        let batches = vec![
            vec![Some(3), Some(1), Some(3), None, Some(100), Some(-5)],
            vec![
                Some(3),
                Some(9),
                None,
                Some(100),
                Some(0),
                Some(9),
                Some(i64::MIN),
            ],
            vec![Some(i64::MIN), Some(7)],
        ];
        let hashed = index(None, &batches);
        // 3 ×3, 9 ×2, 100 ×2, i64::MIN ×2, null ×2.
        assert_eq!(hashed.0, 11);
        for bounds in [(0, 9), (-5, 100), (4, 4)] {
            assert_eq!(index(Some(bounds), &batches), hashed, "{bounds:?}");
        }
    }

    /// Duplicated rows and per-batch duplicate rows by a plain model: a count per key.
    fn model(batches: &[Vec<Option<i64>>]) -> (u64, Vec<Vec<usize>>) {
        let mut seen = std::collections::HashMap::<Option<i64>, u64>::new();
        let samples = batches
            .iter()
            .map(|keys| {
                let mut again = Vec::new();
                for (row, key) in keys.iter().enumerate() {
                    let n = seen.entry(*key).or_default();
                    *n += 1;
                    if *n > 1 {
                        again.push(row);
                    }
                }
                again
            })
            .collect();
        let duplicated = seen.values().filter(|&&n| n > 1).sum();
        (duplicated, samples)
    }

    fn sorted(range: std::ops::Range<i64>, step: usize) -> Vec<Option<i64>> {
        range.step_by(step).map(Some).collect()
    }

    #[test]
    fn sorted_batches_count_as_the_model_whatever_else_comes() {
        let cases: Vec<Vec<Vec<Option<i64>>>> = vec![
            // Sorted, adjacent and disjoint: no index at all.
            vec![sorted(0..10, 1), sorted(10..20, 1), sorted(30..40, 2)],
            // Out of order but disjoint, then a sorted batch repeating keys of two intervals.
            vec![
                sorted(20..30, 1),
                sorted(0..10, 1),
                vec![Some(9), Some(20), Some(25)],
            ],
            // A shuffled batch repeating a sorted one's keys, then the same keys again.
            vec![
                sorted(0..8, 1),
                vec![Some(5), Some(3), Some(100), Some(5)],
                vec![Some(5), Some(3), Some(7)],
            ],
            // Sorted batches with gaps whose ranges interleave: no duplicate, then two.
            vec![sorted(0..20, 2), sorted(1..20, 2), vec![Some(4), Some(5)]],
            // A sorted batch within the range of keys indexed before (no duplicate there).
            vec![vec![Some(50), Some(1)], sorted(2..50, 1), sorted(60..70, 3)],
            // Nulls in sorted data, sorted batches overlapping, a repeated key inside one.
            vec![
                vec![Some(1), None, Some(3)],
                sorted(0..5, 1),
                vec![None, None],
                vec![Some(7), Some(7), Some(8)],
                sorted(i64::MAX - 3..i64::MAX, 1),
                vec![Some(i64::MAX - 1), Some(i64::MIN)],
            ],
        ];
        for batches in &cases {
            let expected = model(batches);
            assert_eq!(index(None, batches), expected, "{batches:?}");
            assert_eq!(index(Some((0, 60)), batches), expected, "{batches:?}");
        }
    }

    #[test]
    fn intervals_merge_when_adjacent_and_refuse_overlaps() {
        let mut runs = Runs::default();
        let consecutive = |low: i64, high: i64| (low..=high).collect::<Vec<_>>();
        assert!(runs.insert(&consecutive(10, 19)));
        assert!(runs.insert(&consecutive(30, 39)));
        assert!(runs.insert(&consecutive(20, 29)));
        assert_eq!(runs.starts.len(), 1);
        assert!(!runs.insert(&consecutive(39, 45)));
        assert!(!runs.insert(&[0, 10]));
        assert!(runs.insert(&[i64::MIN, 0, 9]));
        // Gapped intervals keep their keys and merge with nothing.
        assert!(runs.insert(&[40, 42, 50]));
        assert!(runs.insert(&consecutive(51, 60)));
        assert!(runs.insert(&consecutive(i64::MAX - 1, i64::MAX)));
        assert!(runs.insert(&consecutive(i64::MAX - 3, i64::MAX - 2)));
        assert_eq!(runs.starts.len(), 5);
        let held = [
            i64::MIN,
            0,
            9,
            10,
            39,
            40,
            42,
            50,
            51,
            60,
            i64::MAX - 3,
            i64::MAX,
        ];
        assert!(held.iter().all(|&k| runs.contains(k)));
        assert!(![-6, 1, 8, 41, 43, 49, 61].iter().any(|&k| runs.contains(k)));
    }
}
