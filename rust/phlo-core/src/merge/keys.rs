//! The keys of a merge batch: membership of (composite) keys, and range pruning of data files
//! by the first key column's statistics. Keys are arrow-row encodings, indexed without one
//! allocation per key.

use std::hash::BuildHasher;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, Date32Array, Decimal128Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::DataType;
use hashbrown::{DefaultHashBuilder, HashTable};
use iceberg::spec::{DataFile, Datum, PrimitiveLiteral};

use crate::error::{Context, Error, Location, Result};

pub struct BatchKeys {
    pub names: Vec<String>,
    converter: RowConverter,
    rows: Rows,
    /// Index of the first row of each distinct key, by the key's hash.
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    distinct: usize,
    first: RowConverter,
    first_type: DataType,
    first_rows: Rows,
    /// Row indices ordered by the first key column.
    first_sorted: Vec<u32>,
}

impl BatchKeys {
    pub fn new(batch: &RecordBatch, names: &[String]) -> Result<Self> {
        let arrays = key_arrays(batch, names)?;
        let fields = arrays
            .iter()
            .map(|a| SortField::new(a.data_type().clone()))
            .collect();
        let converter = RowConverter::new(fields).context(|| "encoding keys".into())?;
        let rows = converter
            .convert_columns(&arrays)
            .context(|| "encoding keys".into())?;
        let hasher = DefaultHashBuilder::default();
        let mut index = HashTable::with_capacity(rows.num_rows());
        for (i, row) in rows.iter().enumerate() {
            let hash = hasher.hash_one(row.as_ref());
            if index.find(hash, |&j| rows.row(j as usize) == row).is_none() {
                index.insert_unique(hash, i as u32, |&j| {
                    hasher.hash_one(rows.row(j as usize).as_ref())
                });
            }
        }
        let first_type = arrays[0].data_type().clone();
        let first = RowConverter::new(vec![SortField::new(first_type.clone())])
            .context(|| "encoding keys".into())?;
        let first_rows = first
            .convert_columns(&arrays[..1])
            .context(|| "encoding keys".into())?;
        let mut first_sorted: Vec<u32> = (0..rows.num_rows() as u32).collect();
        first_sorted
            .sort_unstable_by(|&a, &b| first_rows.row(a as usize).cmp(&first_rows.row(b as usize)));
        Ok(Self {
            names: names.to_vec(),
            distinct: index.len(),
            converter,
            rows,
            index,
            hasher,
            first,
            first_type,
            first_rows,
            first_sorted,
        })
    }

    pub fn num_rows(&self) -> usize {
        self.rows.num_rows()
    }

    pub fn distinct(&self) -> usize {
        self.distinct
    }

    /// Encodes the key columns of a table batch the same way as the batch's keys.
    pub fn encode(&self, batch: &RecordBatch) -> Result<Rows> {
        let arrays = key_arrays(batch, &self.names)?;
        self.converter
            .convert_columns(&arrays)
            .context(|| "encoding keys".into())
    }

    /// The batch row holding `key` (an encoding from [`Self::encode`]), if any.
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        let hash = self.hasher.hash_one(key);
        self.index
            .find(hash, |&j| self.rows.row(j as usize).as_ref() == key)
            .map(|&j| j as usize)
    }

    /// Whether `file` may hold one of the keys: false only when the first key column's
    /// min/max statistics prove no batch key falls in the file's range.
    pub fn may_be_in(&self, file: &DataFile, field_id: Option<i32>) -> bool {
        let Some(id) = field_id else { return true };
        let (Some(lower), Some(upper)) =
            (file.lower_bounds().get(&id), file.upper_bounds().get(&id))
        else {
            return true;
        };
        let (Some(lower), Some(upper)) = (self.encode_bound(lower), self.encode_bound(upper))
        else {
            return true;
        };
        let key = |i: &u32| self.first_rows.row(*i as usize);
        let start = self
            .first_sorted
            .partition_point(|i| key(i).as_ref() < lower.as_slice());
        self.first_sorted
            .get(start)
            .is_some_and(|i| key(i).as_ref() <= upper.as_slice())
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

pub fn key_arrays(batch: &RecordBatch, keys: &[String]) -> Result<Vec<ArrayRef>> {
    keys.iter()
        .map(|key| {
            batch.column_by_name(key).cloned().ok_or_else(|| {
                Error::schema(
                    "unique key column is not in the table",
                    Location {
                        table: None,
                        column: Some(key.clone()),
                    },
                    "set unique_key to columns of the table",
                )
            })
        })
        .collect()
}
