//! Deduplication of a batch by its unique key: keep the first or the last row of each key (last
//! by arrival, or by an `order_by` column), or drop rows whose whole content repeats (`hash`).
//! Keys are compared as arrow-row encodings, so any key type and composite keys work alike.

use arrow_array::{Array, RecordBatch, UInt32Array};
use arrow_row::{RowConverter, Rows, SortField};
use arrow_select::take::take_record_batch;
use hashbrown::HashMap;
use hashbrown::hash_map::Entry;

use crate::error::{Context, Error, Location, Result};

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
#[derive(Debug, Clone)]
pub struct Deduped {
    pub batch: RecordBatch,
    pub duplicates_dropped: u64,
}

/// Deduplicates `batch` on `keys`. Null keys are an error naming the rows that have them.
pub fn dedupe(
    batch: &RecordBatch,
    keys: &[String],
    method: DedupeMethod,
    order_by: Option<&str>,
) -> Result<Deduped> {
    let key_rows = encode(batch, keys)?;
    check_no_null_keys(batch, keys)?;
    let keep: Vec<u32> = match method {
        DedupeMethod::First => keep_first(&key_rows),
        DedupeMethod::Last => match order_by {
            None => keep_last(&key_rows, None),
            Some(column) => keep_last(&key_rows, Some(&encode(batch, &[column.to_string()])?)),
        },
        DedupeMethod::Hash => {
            let all: Vec<String> = batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            keep_first(&encode(batch, &all)?)
        }
    };
    let dropped = (batch.num_rows() - keep.len()) as u64;
    if dropped == 0 {
        return Ok(Deduped {
            batch: batch.clone(),
            duplicates_dropped: 0,
        });
    }
    let batch = take_record_batch(batch, &UInt32Array::from(keep))
        .context(|| "selecting deduplicated rows".into())?;
    Ok(Deduped {
        batch,
        duplicates_dropped: dropped,
    })
}

/// Row-encodes `columns` of `batch` (order-preserving bytes, equal values → equal bytes).
fn encode(batch: &RecordBatch, columns: &[String]) -> Result<Rows> {
    let arrays = columns
        .iter()
        .map(|name| {
            batch.column_by_name(name).cloned().ok_or_else(|| {
                Error::schema(
                    "key column is missing from the data",
                    Location {
                        table: None,
                        column: Some(name.clone()),
                    },
                    "add the column, or fix unique_key / order_by",
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
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

fn check_no_null_keys(batch: &RecordBatch, keys: &[String]) -> Result<()> {
    for key in keys {
        let Some(column) = batch.column_by_name(key) else {
            continue;
        };
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

fn keep_first(rows: &Rows) -> Vec<u32> {
    let mut seen = HashMap::with_capacity(rows.num_rows());
    let mut keep = Vec::with_capacity(rows.num_rows());
    for (i, row) in rows.iter().enumerate() {
        if seen.insert(row, ()).is_none() {
            keep.push(i as u32);
        }
    }
    keep
}

/// Last occurrence of each key, or the one with the greatest `order` (ties: the later row);
/// kept rows stay in arrival order.
fn keep_last(rows: &Rows, order: Option<&Rows>) -> Vec<u32> {
    let mut winner: HashMap<_, u32> = HashMap::with_capacity(rows.num_rows());
    for (i, row) in rows.iter().enumerate() {
        match winner.entry(row) {
            Entry::Vacant(slot) => {
                slot.insert(i as u32);
            }
            Entry::Occupied(mut slot) => {
                let newer = match order {
                    None => true,
                    Some(order) => order.row(i) >= order.row(*slot.get() as usize),
                };
                if newer {
                    slot.insert(i as u32);
                }
            }
        }
    }
    let mut keep: Vec<u32> = winner.into_values().collect();
    keep.sort_unstable();
    keep
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
