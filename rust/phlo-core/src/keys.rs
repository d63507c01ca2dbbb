//! Row keys (one or more columns) hashed and compared by row index. A single string (any
//! layout) or integer key is read straight from its Arrow array; other keys are arrow-row encoded. Used by dedupe
//! and by the merge engine's key index.

use std::hash::BuildHasher;
use std::sync::LazyLock;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, Int32Array, Int64Array, LargeStringArray, RecordBatch, StringArray,
    StringViewArray,
};
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::DataType;
use hashbrown::DefaultHashBuilder;

use crate::error::{Context, Error, Location, Result};

static HASHER: LazyLock<DefaultHashBuilder> = LazyLock::new(DefaultHashBuilder::default);

/// The key of every row of one batch.
pub enum KeyColumns {
    Utf8(StringArray),
    LargeUtf8(LargeStringArray),
    Utf8View(StringViewArray),
    Int64(Int64Array),
    Int32(Int32Array),
    Rows(Rows),
}

/// Builds [`KeyColumns`] for batches with the same key types, so keys of different batches
/// compare (the row encoding needs one converter for all of them).
pub struct KeyEncoder {
    names: Vec<String>,
    converter: Option<RowConverter>,
}

impl KeyEncoder {
    /// `sample` fixes the key types (e.g. the merge batch, or the table schema's empty batch).
    pub fn new(sample: &RecordBatch, names: &[String]) -> Result<Self> {
        let arrays = key_arrays(sample, names)?;
        let direct = matches!(
            (arrays.as_slice(), arrays.first().map(|a| a.data_type())),
            (
                [_],
                Some(
                    DataType::Utf8
                        | DataType::LargeUtf8
                        | DataType::Utf8View
                        | DataType::Int64
                        | DataType::Int32
                )
            )
        );
        let converter = if direct {
            None
        } else {
            let fields = arrays
                .iter()
                .map(|a| SortField::new(a.data_type().clone()))
                .collect();
            Some(RowConverter::new(fields).context(|| "encoding keys".into())?)
        };
        Ok(Self {
            names: names.to_vec(),
            converter,
        })
    }

    /// Always row-encodes, which tells nulls apart from values (direct keys do not).
    pub fn row_encoded(sample: &RecordBatch, names: &[String]) -> Result<Self> {
        let fields = key_arrays(sample, names)?
            .iter()
            .map(|a| SortField::new(a.data_type().clone()))
            .collect();
        Ok(Self {
            names: names.to_vec(),
            converter: Some(RowConverter::new(fields).context(|| "encoding keys".into())?),
        })
    }

    pub fn keys(&self, batch: &RecordBatch) -> Result<KeyColumns> {
        let arrays = key_arrays(batch, &self.names)?;
        if let Some(converter) = &self.converter {
            let rows = converter
                .convert_columns(&arrays)
                .context(|| "encoding keys".into())?;
            return Ok(KeyColumns::Rows(rows));
        }
        let column = &arrays[0];
        Ok(match column.data_type() {
            DataType::Utf8 => KeyColumns::Utf8(column.as_string::<i32>().clone()),
            DataType::LargeUtf8 => KeyColumns::LargeUtf8(column.as_string::<i64>().clone()),
            DataType::Utf8View => KeyColumns::Utf8View(column.as_string_view().clone()),
            DataType::Int64 => KeyColumns::Int64(column.as_primitive::<Int64Type>().clone()),
            DataType::Int32 => KeyColumns::Int32(column.as_primitive::<Int32Type>().clone()),
            other => {
                return Err(Error::schema(
                    format!("key type changed to {other}"),
                    Location {
                        table: None,
                        column: Some(self.names[0].clone()),
                    },
                    "keys of one merge must have one type",
                ));
            }
        })
    }
}

impl KeyColumns {
    pub fn len(&self) -> usize {
        match self {
            KeyColumns::Utf8(a) => a.len(),
            KeyColumns::LargeUtf8(a) => a.len(),
            KeyColumns::Utf8View(a) => a.len(),
            KeyColumns::Int64(a) => a.len(),
            KeyColumns::Int32(a) => a.len(),
            KeyColumns::Rows(r) => r.num_rows(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether row `i` has no key: a null in a directly read column (whose value would read as
    /// "" or 0). Row-encoded keys keep nulls apart from values by themselves.
    pub fn is_null(&self, i: usize) -> bool {
        match self {
            KeyColumns::Utf8(a) => a.is_null(i),
            KeyColumns::LargeUtf8(a) => a.is_null(i),
            KeyColumns::Utf8View(a) => a.is_null(i),
            KeyColumns::Int64(a) => a.is_null(i),
            KeyColumns::Int32(a) => a.is_null(i),
            KeyColumns::Rows(_) => false,
        }
    }

    pub fn hash(&self, i: usize) -> u64 {
        match self {
            KeyColumns::Utf8(a) => HASHER.hash_one(a.value(i).as_bytes()),
            KeyColumns::LargeUtf8(a) => HASHER.hash_one(a.value(i).as_bytes()),
            KeyColumns::Utf8View(a) => HASHER.hash_one(a.value(i).as_bytes()),
            KeyColumns::Int64(a) => HASHER.hash_one(a.value(i)),
            KeyColumns::Int32(a) => HASHER.hash_one(a.value(i)),
            KeyColumns::Rows(r) => HASHER.hash_one(r.row(i).as_ref()),
        }
    }

    /// Whether row `i` of `self` and row `j` of `other` (same encoder) have the same key.
    pub fn same(&self, i: usize, other: &KeyColumns, j: usize) -> bool {
        match (self, other) {
            (KeyColumns::Utf8(a), KeyColumns::Utf8(b)) => a.value(i) == b.value(j),
            (KeyColumns::LargeUtf8(a), KeyColumns::LargeUtf8(b)) => a.value(i) == b.value(j),
            (KeyColumns::Utf8View(a), KeyColumns::Utf8View(b)) => a.value(i) == b.value(j),
            (KeyColumns::Int64(a), KeyColumns::Int64(b)) => a.value(i) == b.value(j),
            (KeyColumns::Int32(a), KeyColumns::Int32(b)) => a.value(i) == b.value(j),
            (KeyColumns::Rows(a), KeyColumns::Rows(b)) => a.row(i) == b.row(j),
            _ => false,
        }
    }
}

/// The key hash of every row of `keys`; a large batch is hashed on as many threads as there
/// are cores. Computed once per batch: dedupe and the merge's key index share the hashes.
pub fn hash_rows(keys: &KeyColumns) -> Vec<u64> {
    let n = keys.len();
    let parts = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .min(n / 50_000 + 1);
    let chunk = n.div_ceil(parts).max(1);
    std::thread::scope(|scope| {
        (0..n)
            .step_by(chunk)
            .map(|start| {
                scope.spawn(move || {
                    (start..(start + chunk).min(n))
                        .map(|i| keys.hash(i))
                        .collect::<Vec<_>>()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .flat_map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

pub fn key_arrays(batch: &RecordBatch, keys: &[String]) -> Result<Vec<ArrayRef>> {
    keys.iter()
        .map(|key| {
            batch.column_by_name(key).cloned().ok_or_else(|| {
                Error::schema(
                    "key column is missing",
                    Location {
                        table: None,
                        column: Some(key.clone()),
                    },
                    "set unique_key (and order_by) to columns of the table",
                )
            })
        })
        .collect()
}

/// Errors unless every key column exists and holds no nulls: a row without a key cannot be
/// matched, and a null would otherwise read as "" or 0. The error names the column, how many
/// nulls it has and the first rows with one.
pub fn check_no_null_keys(batch: &RecordBatch, keys: &[String]) -> Result<()> {
    for (key, column) in keys.iter().zip(key_arrays(batch, keys)?) {
        if column.null_count() == 0 {
            continue;
        }
        let rows: Vec<String> = (0..column.len())
            .filter(|i| column.is_null(*i))
            .take(10)
            .map(|i| i.to_string())
            .collect();
        return Err(Error::Merge {
            message: format!(
                "unique key has {} null value(s), at rows {}{}",
                column.null_count(),
                rows.join(", "),
                if column.null_count() > 10 {
                    ", …"
                } else {
                    ""
                }
            ),
            at: Location {
                table: None,
                column: Some(key.clone()),
            },
            hint: "drop or fill rows without a key before merging".into(),
        });
    }
    Ok(())
}
