//! Checks answered from the data files' manifest entries (row counts, null and NaN counts,
//! lower and upper bounds) instead of their rows. Only exact answers, and only those a scan
//! would give with no sample to keep: a count, a null check with no missing cell, a range
//! check every value of which lies within the bounds, a freshness check whose newest value is
//! recent enough. Anything else — a file whose rows the filter may only partly keep, a delete
//! file, a missing statistic, bounds of a string (writers may truncate them) or of a decimal —
//! leaves the check to the scan.

use std::collections::HashMap;

use arrow_schema::{DataType, Field, TimeUnit};
use iceberg::spec::{DataFile, Datum, PrimitiveLiteral};
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;
use serde_json::Value;

use super::plan::CheckSpec;

/// The metadata of the files a scan would read, when it describes exactly the checked rows:
/// the filter keeps every row of every file (identity partition values or bounds prove it)
/// and no delete file applies.
pub struct Files<'a> {
    files: Vec<&'a DataFile>,
}

/// What metadata settled for one check: the outcome a scan would report.
#[derive(Debug, Clone, Default)]
pub struct Settled {
    /// Missing cells per column (zeros), for a null check.
    pub per_column: Vec<u64>,
    /// The newest value (µs since the epoch), for a freshness check.
    pub newest_us: Option<i64>,
}

impl<'a> Files<'a> {
    /// `files`: each data file, how many delete files apply to it, and whether the filter
    /// keeps all its rows. `None` when the metadata does not describe the checked rows exactly.
    pub fn exact(files: impl IntoIterator<Item = (&'a DataFile, usize, bool)>) -> Option<Self> {
        files
            .into_iter()
            .map(|(file, deletes, whole)| (deletes == 0 && whole).then_some(file))
            .collect::<Option<Vec<_>>>()
            .map(|files| Self { files })
    }

    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.record_count()).sum()
    }

    /// The outcome of `spec` over columns `fields` (all in the table), when metadata proves it.
    pub fn settle(&self, spec: &CheckSpec, fields: &[&Field]) -> Option<Settled> {
        match spec {
            CheckSpec::Count => Some(Settled::default()),
            CheckSpec::NotNull { .. } => {
                fields
                    .iter()
                    .all(|f| self.missing(f) == Some(0))
                    .then(|| Settled {
                        per_column: vec![0; fields.len()],
                        newest_us: None,
                    })
            }
            CheckSpec::Range { min, max, .. } => self
                .within(fields[0], min.as_ref(), max.as_ref())
                .then(Settled::default),
            CheckSpec::Freshness { cutoff_us, .. } => match self.newest(fields[0])? {
                // A stale column fails with a sample of old rows: that needs the rows.
                Some(newest) if newest < *cutoff_us => None,
                newest_us => Some(Settled {
                    per_column: vec![],
                    newest_us,
                }),
            },
            CheckSpec::Unique { .. }
            | CheckSpec::Pattern { .. }
            | CheckSpec::AcceptedValues { .. } => None,
        }
    }

    /// Missing cells of `field` (nulls, and NaN in a float column, as pandas counts them),
    /// when every file records them.
    fn missing(&self, field: &Field) -> Option<u64> {
        self.files.iter().map(|f| missing_cells(f, field)).sum()
    }

    /// Whether every present value of the numeric `field` lies within `[min, max]` by every
    /// file's bounds (a file with no present value has none to check).
    fn within(&self, field: &Field, min: Option<&Value>, max: Option<&Value>) -> bool {
        let numeric = field.data_type().is_integer() || field.data_type().is_floating();
        let (Some(id), true) = (field_id(field), numeric) else {
            return false;
        };
        let (min, max) = (min.map(Number::of_json), max.map(Number::of_json));
        self.files.iter().all(|f| {
            if missing_cells(f, field) == Some(f.record_count()) {
                return true;
            }
            let bound = |bounds: &HashMap<i32, Datum>| {
                bounds
                    .get(&id)
                    .and_then(|d| Number::of_literal(d.literal()))
            };
            let (Some(lower), Some(upper)) = (bound(f.lower_bounds()), bound(f.upper_bounds()))
            else {
                return false;
            };
            let above_min = match &min {
                None => true,
                Some(min) => min.and_then(|m| lower.cmp(&m)).is_some_and(|o| o.is_ge()),
            };
            let below_max = match &max {
                None => true,
                Some(max) => max.and_then(|m| upper.cmp(&m)).is_some_and(|o| o.is_le()),
            };
            above_min && below_max
        })
    }

    /// The newest value of the timestamp or date `field` (µs since the epoch; `Some(None)`
    /// when no row has one), when every file with a value has an upper bound.
    fn newest(&self, field: &Field) -> Option<Option<i64>> {
        let id = field_id(field)?;
        let to_micros: fn(i64) -> i64 = match field.data_type() {
            DataType::Timestamp(TimeUnit::Microsecond, _) => |v| v,
            DataType::Timestamp(TimeUnit::Nanosecond, _) => |v| v.div_euclid(1_000),
            DataType::Date32 => |d| d * 86_400_000_000,
            _ => return None,
        };
        let mut newest = None;
        for file in &self.files {
            if missing_cells(file, field)? == file.record_count() {
                continue;
            }
            let upper = match file.upper_bounds().get(&id)?.literal() {
                PrimitiveLiteral::Long(v) => to_micros(*v),
                PrimitiveLiteral::Int(d) => to_micros(i64::from(*d)),
                _ => return None,
            };
            newest = Some(newest.map_or(upper, |n: i64| n.max(upper)));
        }
        Some(newest)
    }
}

/// The smallest lower and greatest upper bound of the integer, date or timestamp `field` over
/// `files` (each file, whatever part of it is read): every present value lies within. `None`
/// when a file with a present value lacks a bound, or there is no present value.
pub fn integer_range<'a>(
    files: impl IntoIterator<Item = &'a DataFile>,
    field: &Field,
) -> Option<(i64, i64)> {
    let id = field_id(field)?;
    let as_i64 = |d: &Datum| match d.literal() {
        PrimitiveLiteral::Int(v) => Some(i64::from(*v)),
        PrimitiveLiteral::Long(v) => Some(*v),
        _ => None,
    };
    let mut range: Option<(i64, i64)> = None;
    for file in files {
        if file.null_value_counts().get(&id) == Some(&file.record_count()) {
            continue;
        }
        let low = as_i64(file.lower_bounds().get(&id)?)?;
        let high = as_i64(file.upper_bounds().get(&id)?)?;
        range = Some(range.map_or((low, high), |(l, h)| (l.min(low), h.max(high))));
    }
    range
}

/// Missing cells of `field` in `file`, when the file records them.
fn missing_cells(file: &DataFile, field: &Field) -> Option<u64> {
    let id = field_id(field)?;
    let nulls = file.null_value_counts().get(&id)?;
    let nans = match field.data_type().is_floating() {
        true => *file.nan_value_counts().get(&id)?,
        false => 0,
    };
    Some(nulls + nans)
}

/// The Iceberg field id of a scanned column.
fn field_id(field: &Field) -> Option<i32> {
    field
        .metadata()
        .get(PARQUET_FIELD_ID_META_KEY)?
        .parse()
        .ok()
}

/// A bound or a limit, compared exactly: integers as integers, and an integer with a float
/// only where the float represents it exactly.
#[derive(Debug, Clone, Copy)]
enum Number {
    Int(i128),
    Float(f64),
}

impl Number {
    fn of_json(value: &Value) -> Option<Self> {
        match value {
            Value::Number(n) => n
                .as_i64()
                .map(|i| Self::Int(i.into()))
                .or_else(|| n.as_u64().map(|u| Self::Int(u.into())))
                .or_else(|| n.as_f64().map(Self::Float)),
            _ => None,
        }
    }

    fn of_literal(literal: &PrimitiveLiteral) -> Option<Self> {
        match literal {
            PrimitiveLiteral::Int(v) => Some(Self::Int((*v).into())),
            PrimitiveLiteral::Long(v) => Some(Self::Int((*v).into())),
            PrimitiveLiteral::Float(v) => Some(Self::Float(v.0.into())),
            PrimitiveLiteral::Double(v) => Some(Self::Float(v.0)),
            _ => None,
        }
    }

    fn cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        const EXACT: i128 = 1 << 53;
        match (*self, *other) {
            (Self::Int(a), Self::Int(b)) => Some(a.cmp(&b)),
            (Self::Float(a), Self::Float(b)) => a.partial_cmp(&b),
            (Self::Int(a), Self::Float(b)) if a.abs() <= EXACT => (a as f64).partial_cmp(&b),
            (Self::Float(a), Self::Int(b)) if b.abs() <= EXACT => a.partial_cmp(&(b as f64)),
            _ => None,
        }
    }
}
