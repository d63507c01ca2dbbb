//! The keys of a merge batch: membership of (composite) keys, and range pruning of data files
//! by the first key column's statistics. Keys are indexed by row number, without one
//! allocation per key.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, Date32Array, Decimal128Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::DataType;
use hashbrown::HashTable;
use iceberg::spec::{DataFile, Datum, PrimitiveLiteral};

use crate::error::{Context, Result};
use crate::keys::{KeyColumns, KeyEncoder, key_arrays};

pub struct BatchKeys {
    encoder: KeyEncoder,
    keys: KeyColumns,
    /// Index of the first row of each distinct key, by the key's hash.
    index: HashTable<u32>,
    first: RowConverter,
    first_type: DataType,
    first_rows: Rows,
    /// Row indices ordered by the first key column.
    first_sorted: Vec<u32>,
}

impl BatchKeys {
    pub fn new(batch: &RecordBatch, names: &[String]) -> Result<Self> {
        let encoder = KeyEncoder::new(batch, names)?;
        let keys = encoder.keys(batch)?;
        let mut index = HashTable::with_capacity(keys.len());
        for i in 0..keys.len() {
            let hash = keys.hash(i);
            if index
                .find(hash, |&j| keys.same(j as usize, &keys, i))
                .is_none()
            {
                index.insert_unique(hash, i as u32, |&j| keys.hash(j as usize));
            }
        }
        let first_column = key_arrays(batch, &names[..1])?;
        let first_type = first_column[0].data_type().clone();
        let first = RowConverter::new(vec![SortField::new(first_type.clone())])
            .context(|| "encoding keys".into())?;
        let first_rows = first
            .convert_columns(&first_column)
            .context(|| "encoding keys".into())?;
        let mut first_sorted: Vec<u32> = (0..keys.len() as u32).collect();
        first_sorted
            .sort_unstable_by(|&a, &b| first_rows.row(a as usize).cmp(&first_rows.row(b as usize)));
        Ok(Self {
            encoder,
            keys,
            index,
            first,
            first_type,
            first_rows,
            first_sorted,
        })
    }

    pub fn num_rows(&self) -> usize {
        self.keys.len()
    }

    pub fn distinct(&self) -> usize {
        self.index.len()
    }

    /// The keys of a table batch, comparable with the batch's.
    pub fn probe(&self, batch: &RecordBatch) -> Result<KeyColumns> {
        self.encoder.keys(batch)
    }

    /// The batch row with the same key as row `i` of `probe`, if any (never for a table row
    /// without a key: batch keys are never null).
    pub fn find(&self, probe: &KeyColumns, i: usize) -> Option<usize> {
        if probe.is_null(i) {
            return None;
        }
        self.index
            .find(probe.hash(i), |&j| self.keys.same(j as usize, probe, i))
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
