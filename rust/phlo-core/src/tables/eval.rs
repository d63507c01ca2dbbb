//! A bound row filter evaluated two ways: on a data file's statistics and identity partition
//! values (can no row, some rows or every row match? — conservative: only a proof gives
//! `Never` or `Always`), and exactly on Arrow batches (which rows match).
//!
//! Semantics are SQL's: a comparison with null is not a match (so `x != 1` keeps null rows out
//! of a delete), and NaN compares false except with `!=` / `not in`, and -0.0 equals 0.0 (as
//! IEEE floats do).

use std::cmp::Ordering;
use std::mem::discriminant;
use std::sync::Arc;

use arrow_arith::boolean::{and_kleene, is_not_null, is_null, not, or_kleene};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int32Array, Int64Array, RecordBatch, Scalar, StringArray, TimestampMicrosecondArray,
};
use arrow_ord::cmp;
use arrow_select::filter::prep_null_mask_filter;
use iceberg::expr::{BoundPredicate, BoundReference, PredicateOperator};
use iceberg::spec::{
    DataFile, Datum, PartitionSpec, PrimitiveLiteral, PrimitiveType, Transform, Type,
};

use crate::error::{Context, Error, Result};
use crate::validate::floats::canonical;

/// What a file's statistics prove about the rows matching a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileMatch {
    /// No row can match: the file is left alone.
    Never,
    /// Unknown without reading the file.
    Maybe,
    /// Every row matches.
    Always,
}

impl FileMatch {
    fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::Never, _) | (_, Self::Never) => Self::Never,
            (Self::Always, Self::Always) => Self::Always,
            _ => Self::Maybe,
        }
    }

    fn or(self, other: Self) -> Self {
        match (self, other) {
            (Self::Always, _) | (_, Self::Always) => Self::Always,
            (Self::Never, Self::Never) => Self::Never,
            _ => Self::Maybe,
        }
    }

    fn proven(always: bool, never: bool) -> Self {
        match (always, never) {
            (true, _) => Self::Always,
            (_, true) => Self::Never,
            _ => Self::Maybe,
        }
    }
}

/// Field ids of the columns a predicate reads.
pub fn referenced_field_ids(predicate: &BoundPredicate) -> Vec<i32> {
    let mut ids = Vec::new();
    let mut visit = |r: &BoundReference| {
        if !ids.contains(&r.field().id) {
            ids.push(r.field().id);
        }
    };
    fn walk(p: &BoundPredicate, visit: &mut impl FnMut(&BoundReference)) {
        match p {
            BoundPredicate::And(e) | BoundPredicate::Or(e) => {
                e.inputs().iter().for_each(|p| walk(p, visit))
            }
            BoundPredicate::Not(e) => walk(e.inputs()[0], visit),
            BoundPredicate::Unary(e) => visit(e.term()),
            BoundPredicate::Binary(e) => visit(e.term()),
            BoundPredicate::Set(e) => visit(e.term()),
            BoundPredicate::AlwaysTrue | BoundPredicate::AlwaysFalse => {}
        }
    }
    walk(predicate, &mut visit);
    ids
}

/// What `file`'s statistics prove about the rows matching `predicate`. `spec`, when known, is
/// the file's partition spec (identity partition values are exact for every row).
pub fn file_match(
    predicate: &BoundPredicate,
    file: &DataFile,
    spec: Option<&PartitionSpec>,
) -> FileMatch {
    match predicate {
        BoundPredicate::AlwaysTrue => FileMatch::Always,
        BoundPredicate::AlwaysFalse => FileMatch::Never,
        BoundPredicate::And(e) => {
            let [a, b] = e.inputs();
            file_match(a, file, spec).and(file_match(b, file, spec))
        }
        BoundPredicate::Or(e) => {
            let [a, b] = e.inputs();
            file_match(a, file, spec).or(file_match(b, file, spec))
        }
        // Rows where the inner predicate is null match neither it nor its negation, so only
        // "every row matches" flips with certainty.
        BoundPredicate::Not(e) => match file_match(e.inputs()[0], file, spec) {
            FileMatch::Always => FileMatch::Never,
            _ => FileMatch::Maybe,
        },
        BoundPredicate::Unary(e) => {
            let stats = ColumnStats::of(file, e.term(), spec);
            match e.op() {
                PredicateOperator::IsNull => {
                    FileMatch::proven(stats.all_null(), stats.nulls == Some(0))
                }
                PredicateOperator::NotNull => {
                    FileMatch::proven(stats.nulls == Some(0), stats.all_null())
                }
                _ => FileMatch::Maybe,
            }
        }
        BoundPredicate::Binary(e) => {
            let stats = ColumnStats::of(file, e.term(), spec);
            stats.compare(e.op(), std::slice::from_ref(e.literal()))
        }
        BoundPredicate::Set(e) => {
            let stats = ColumnStats::of(file, e.term(), spec);
            let values: Vec<Datum> = e.literals().iter().cloned().collect();
            stats.compare(e.op(), &values)
        }
    }
}

/// One column of one data file as its metadata describes it.
struct ColumnStats<'a> {
    rows: u64,
    nulls: Option<u64>,
    lower: Option<&'a PrimitiveLiteral>,
    upper: Option<&'a PrimitiveLiteral>,
    /// Bounds are usable: not a float column that may hold NaN (bounds leave NaN out).
    comparable: bool,
}

impl<'a> ColumnStats<'a> {
    fn of(file: &'a DataFile, column: &BoundReference, spec: Option<&PartitionSpec>) -> Self {
        let id = column.field().id;
        if let Some(value) = spec.and_then(|spec| identity_partition_value(file, id, spec)) {
            // Every row of the file holds this value (None: every row is null).
            return Self {
                rows: file.record_count(),
                nulls: Some(if value.is_some() {
                    0
                } else {
                    file.record_count()
                }),
                lower: value,
                upper: value,
                comparable: value.is_none_or(|v| !v.is_nan()),
            };
        }
        let float = matches!(
            column.field().field_type.as_ref(),
            Type::Primitive(PrimitiveType::Float | PrimitiveType::Double)
        );
        Self {
            rows: file.record_count(),
            nulls: file.null_value_counts().get(&id).copied(),
            lower: file.lower_bounds().get(&id).map(Datum::literal),
            upper: file.upper_bounds().get(&id).map(Datum::literal),
            comparable: !float || file.nan_value_counts().get(&id) == Some(&0),
        }
    }

    fn all_null(&self) -> bool {
        self.nulls == Some(self.rows)
    }

    /// `column op values` (one value, or the set of `in` / `not in`).
    fn compare(&self, op: PredicateOperator, values: &[Datum]) -> FileMatch {
        use Ordering::{Equal, Greater, Less};
        use PredicateOperator as Op;
        if self.all_null() {
            return FileMatch::Never;
        }
        let (Some(lower), Some(upper), true) = (self.lower, self.upper, self.comparable) else {
            return FileMatch::Maybe;
        };
        // Per value: (lower vs value, upper vs value); unknown when the types differ (e.g.
        // stats written before an int column was promoted to long).
        let Some(cmps) = values
            .iter()
            .map(|v| Some((order(lower, v.literal())?, order(upper, v.literal())?)))
            .collect::<Option<Vec<(Ordering, Ordering)>>>()
        else {
            return FileMatch::Maybe;
        };
        let no_nulls = self.nulls == Some(0);
        let single = lower == upper;
        let outside = |(lo, hi): &(Ordering, Ordering)| *lo == Greater || *hi == Less;
        let (always, never) = match (op, cmps.as_slice()) {
            (Op::LessThan, [(lo, hi)]) => (*hi == Less, *lo != Less),
            (Op::LessThanOrEq, [(lo, hi)]) => (*hi != Greater, *lo == Greater),
            (Op::GreaterThan, [(lo, hi)]) => (*lo == Greater, *hi != Greater),
            (Op::GreaterThanOrEq, [(lo, hi)]) => (*lo != Less, *hi == Less),
            (Op::Eq, [c]) => (single && c.0 == Equal, outside(c)),
            (Op::NotEq, [c]) => (outside(c), single && c.0 == Equal),
            (Op::In, _) => (
                single && cmps.iter().any(|c| c.0 == Equal),
                cmps.iter().all(outside),
            ),
            (Op::NotIn, _) => (
                cmps.iter().all(outside),
                single && cmps.iter().any(|c| c.0 == Equal),
            ),
            _ => return FileMatch::Maybe,
        };
        FileMatch::proven(always && no_nulls, never)
    }
}

fn order(a: &PrimitiveLiteral, b: &PrimitiveLiteral) -> Option<Ordering> {
    (discriminant(a) == discriminant(b))
        .then(|| a.partial_cmp(b))
        .flatten()
}

/// The value of column `field_id` shared by every row of `file`, when the file's partition
/// spec has an identity field on it: `Some(None)` when that value is null.
fn identity_partition_value<'a>(
    file: &'a DataFile,
    field_id: i32,
    spec: &PartitionSpec,
) -> Option<Option<&'a PrimitiveLiteral>> {
    if spec.fields().len() != file.partition().fields().len() {
        return None;
    }
    let index = spec
        .fields()
        .iter()
        .position(|f| f.source_id == field_id && f.transform == Transform::Identity)?;
    match file.partition().fields().get(index)? {
        None => Some(None),
        Some(iceberg::spec::Literal::Primitive(value)) => Some(Some(value)),
        Some(_) => None,
    }
}

/// Which rows of `batch` match `predicate` (columns found by name; null counts as no match).
pub fn row_matches(predicate: &BoundPredicate, batch: &RecordBatch) -> Result<BooleanArray> {
    let mask = eval(predicate, batch)?;
    Ok(match mask.null_count() {
        0 => mask,
        _ => prep_null_mask_filter(&mask),
    })
}

/// Three-valued (Kleene) evaluation: null where SQL's result is unknown.
fn eval(predicate: &BoundPredicate, batch: &RecordBatch) -> Result<BooleanArray> {
    let rows = batch.num_rows();
    let kernel = |r: std::result::Result<BooleanArray, arrow_schema::ArrowError>| {
        r.context(|| "evaluating a filter".into())
    };
    match predicate {
        BoundPredicate::AlwaysTrue => Ok(BooleanArray::from(vec![true; rows])),
        BoundPredicate::AlwaysFalse => Ok(BooleanArray::from(vec![false; rows])),
        BoundPredicate::And(e) => {
            let [a, b] = e.inputs();
            kernel(and_kleene(&eval(a, batch)?, &eval(b, batch)?))
        }
        BoundPredicate::Or(e) => {
            let [a, b] = e.inputs();
            kernel(or_kleene(&eval(a, batch)?, &eval(b, batch)?))
        }
        BoundPredicate::Not(e) => kernel(not(&eval(e.inputs()[0], batch)?)),
        BoundPredicate::Unary(e) => {
            let column = column(batch, e.term())?;
            match e.op() {
                PredicateOperator::IsNull => kernel(is_null(column.as_ref())),
                PredicateOperator::NotNull => kernel(is_not_null(column.as_ref())),
                op => Err(unsupported(op, e.term())),
            }
        }
        BoundPredicate::Binary(e) => {
            let column = column(batch, e.term())?;
            compare(&column, e.op(), e.literal(), e.term())
        }
        BoundPredicate::Set(e) => {
            let column = column(batch, e.term())?;
            let (op, join): (_, fn(&BooleanArray, &BooleanArray) -> _) = match e.op() {
                PredicateOperator::In => (PredicateOperator::Eq, or_kleene),
                PredicateOperator::NotIn => (PredicateOperator::NotEq, and_kleene),
                op => return Err(unsupported(op, e.term())),
            };
            let mut acc: Option<BooleanArray> = None;
            for value in e.literals() {
                let one = compare(&column, op, value, e.term())?;
                acc = Some(match acc {
                    Some(acc) => kernel(join(&acc, &one))?,
                    None => one,
                });
            }
            Ok(acc
                .unwrap_or_else(|| BooleanArray::from(vec![op == PredicateOperator::NotEq; rows])))
        }
    }
}

fn column(batch: &RecordBatch, reference: &BoundReference) -> Result<ArrayRef> {
    let name = &reference.field().name;
    batch.column_by_name(name).cloned().ok_or_else(|| {
        Error::invalid(
            format!("column {name} was not read"),
            "this is a bug; please report it",
        )
    })
}

fn compare(
    column: &ArrayRef,
    op: PredicateOperator,
    value: &Datum,
    reference: &BoundReference,
) -> Result<BooleanArray> {
    use PredicateOperator as Op;
    let value = literal_array(value, reference)?;
    let value = arrow_cast::cast(&value, column.data_type()).context(|| {
        format!(
            "comparing column {} with a filter value",
            reference.field().name
        )
    })?;
    // Arrow orders -0.0 below 0.0; IEEE (and statistics, whose zero bounds may stand for
    // either sign) has them equal.
    let (column, value) = (&canonical(column, false), canonical(&value, false));
    let value = Scalar::new(value);
    let result = match op {
        Op::LessThan => cmp::lt(column, &value),
        Op::LessThanOrEq => cmp::lt_eq(column, &value),
        Op::GreaterThan => cmp::gt(column, &value),
        Op::GreaterThanOrEq => cmp::gt_eq(column, &value),
        Op::Eq => cmp::eq(column, &value),
        Op::NotEq => cmp::neq(column, &value),
        op => return Err(unsupported(op, reference)),
    }
    .context(|| format!("comparing column {}", reference.field().name))?;
    // Arrow orders NaN above every number and equal to itself; SQL and IEEE say a NaN row
    // compares false, except that it is != everything.
    match nan_mask(column) {
        Some(nan) => {
            let combined = if op == Op::NotEq {
                arrow_arith::boolean::or(&result, &nan)
            } else {
                arrow_arith::boolean::and_not(&result, &nan)
            };
            combined.context(|| "evaluating a filter".into())
        }
        None => Ok(result),
    }
}

/// Which values are NaN, for float columns that hold any.
fn nan_mask(column: &ArrayRef) -> Option<BooleanArray> {
    fn nans<T: arrow_array::ArrowPrimitiveType>(
        array: &arrow_array::PrimitiveArray<T>,
        is_nan: impl Fn(T::Native) -> bool,
    ) -> Option<BooleanArray> {
        let mask = BooleanArray::from_unary(array, is_nan);
        (mask.true_count() > 0).then_some(mask)
    }
    if let Some(a) = column.as_any().downcast_ref::<Float64Array>() {
        return nans(a, f64::is_nan);
    }
    column
        .as_any()
        .downcast_ref::<Float32Array>()
        .and_then(|a| nans(a, f32::is_nan))
}

/// A one-element Arrow array holding a filter value (then cast to the column's Arrow type).
fn literal_array(value: &Datum, reference: &BoundReference) -> Result<ArrayRef> {
    primitive_array(value.data_type(), value.literal()).unwrap_or_else(|| {
        Err(Error::InvalidInput {
            message: format!(
                "filter values of type {} are not supported here",
                value.data_type()
            ),
            at: crate::error::Location {
                table: None,
                column: Some(reference.field().name.clone()),
            },
            hint: "filter on a boolean, number, decimal, string, date or timestamp column".into(),
        })
    })
}

/// A one-element Arrow array holding `value` of type `ty` (in the Arrow type phlo reads the
/// type as); `None` for the types other than boolean, number, decimal, string, date and
/// (microsecond) timestamp.
pub(crate) fn primitive_array(
    ty: &PrimitiveType,
    value: &PrimitiveLiteral,
) -> Option<Result<ArrayRef>> {
    use PrimitiveLiteral as L;
    use PrimitiveType as T;
    Some(Ok(match (ty, value) {
        (T::Boolean, L::Boolean(v)) => Arc::new(BooleanArray::from(vec![*v])),
        (T::Int, L::Int(v)) => Arc::new(Int32Array::from(vec![*v])),
        (T::Date, L::Int(v)) => Arc::new(Date32Array::from(vec![*v])),
        (T::Long, L::Long(v)) => Arc::new(Int64Array::from(vec![*v])),
        (T::Timestamp, L::Long(v)) => Arc::new(TimestampMicrosecondArray::from(vec![*v])),
        (T::Timestamptz, L::Long(v)) => {
            Arc::new(TimestampMicrosecondArray::from(vec![*v]).with_timezone("+00:00"))
        }
        (T::Float, L::Float(v)) => Arc::new(Float32Array::from(vec![v.0])),
        (T::Double, L::Double(v)) => Arc::new(Float64Array::from(vec![v.0])),
        (T::String, L::String(v)) => Arc::new(StringArray::from(vec![v.as_str()])),
        (T::Decimal { precision, scale }, L::Int128(v)) => {
            let decimal = Decimal128Array::from(vec![*v])
                .with_precision_and_scale(*precision as u8, *scale as i8)
                .context(|| "building a decimal value".into());
            return Some(decimal.map(|d| Arc::new(d) as ArrayRef));
        }
        _ => return None,
    }))
}

fn unsupported(op: PredicateOperator, reference: &BoundReference) -> Error {
    Error::InvalidInput {
        message: format!("operator {op} is not supported here"),
        at: crate::error::Location {
            table: None,
            column: Some(reference.field().name.clone()),
        },
        hint: "use =, !=, <, <=, >, >=, in, not in, between, is null, is not null".into(),
    }
}

/// Data files described by their statistics alone, for the tests of what statistics prove.
#[cfg(test)]
pub(crate) mod test_files {
    use std::collections::HashMap;

    use iceberg::spec::{
        DataContentType, DataFile, DataFileBuilder, DataFileFormat, Datum, Struct,
    };

    /// A file of 10 rows whose field `id` has `bounds` (lower, upper), `nulls` null values and
    /// `nans` NaN values; `None`: the statistic is not recorded.
    pub(crate) fn stats_file(
        id: i32,
        bounds: Option<(Datum, Datum)>,
        nulls: Option<u64>,
        nans: Option<u64>,
    ) -> DataFile {
        let (lower, upper) = bounds.map_or_else(Default::default, |(l, u)| {
            (HashMap::from([(id, l)]), HashMap::from([(id, u)]))
        });
        let counted = |count: Option<u64>| count.map(|n| HashMap::from([(id, n)]));
        DataFileBuilder::default()
            .content(DataContentType::Data)
            .file_path("f.parquet".into())
            .file_format(DataFileFormat::Parquet)
            .partition(Struct::empty())
            .record_count(10)
            .file_size_in_bytes(100)
            .null_value_counts(counted(nulls).unwrap_or_default())
            .nan_value_counts(counted(nans).unwrap_or_default())
            .lower_bounds(lower)
            .upper_bounds(upper)
            .build()
            .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::test_files::stats_file;

    use iceberg::expr::{Bind, Reference};
    use iceberg::spec::{NestedField, Schema};

    use super::*;

    fn schema() -> Arc<Schema> {
        Arc::new(
            Schema::builder()
                .with_fields(vec![
                    NestedField::optional(1, "x", Type::Primitive(PrimitiveType::Double)).into(),
                    NestedField::optional(2, "n", Type::Primitive(PrimitiveType::Long)).into(),
                ])
                .build()
                .unwrap(),
        )
    }

    fn bind(predicate: iceberg::expr::Predicate) -> BoundPredicate {
        predicate.bind(schema(), true).unwrap()
    }

    fn matches(predicate: iceberg::expr::Predicate, batch: &RecordBatch) -> Vec<bool> {
        let mask = row_matches(&bind(predicate), batch).unwrap();
        (0..mask.len()).map(|i| mask.value(i)).collect()
    }

    #[test]
    fn rows_follow_sql_for_nulls_and_ieee_for_nan() {
        let batch = RecordBatch::try_new(
            crate::schema::arrow_schema_of(&schema()).unwrap(),
            vec![
                Arc::new(Float64Array::from(vec![
                    Some(1.0),
                    Some(f64::NAN),
                    None,
                    Some(5.0),
                ])),
                Arc::new(Int64Array::from(vec![Some(1), Some(2), None, Some(4)])),
            ],
        )
        .unwrap();
        let x = || Reference::new("x");
        assert_eq!(
            matches(x().greater_than(Datum::double(2.0)), &batch),
            [false, false, false, true]
        );
        assert_eq!(
            matches(x().not_equal_to(Datum::double(1.0)), &batch),
            [false, true, false, true]
        );
        assert_eq!(
            matches(
                x().is_not_in([Datum::double(1.0), Datum::double(9.0)]),
                &batch
            ),
            [false, true, false, true]
        );
        assert_eq!(
            matches(
                x().is_null()
                    .or(Reference::new("n").equal_to(Datum::long(4))),
                &batch
            ),
            [false, false, true, true]
        );
    }

    #[test]
    fn negative_zero_equals_zero_in_rows_as_in_statistics() {
        let batch = RecordBatch::try_new(
            crate::schema::arrow_schema_of(&schema()).unwrap(),
            vec![
                Arc::new(Float64Array::from(vec![-0.0, 0.0, 1.0])),
                Arc::new(Int64Array::from(vec![1, 2, 3])),
            ],
        )
        .unwrap();
        let x = || Reference::new("x");
        for zero in [0.0, -0.0] {
            let equal = x().equal_to(Datum::double(zero));
            assert_eq!(matches(equal, &batch), [true, true, false]);
            let below = x().less_than(Datum::double(zero));
            assert_eq!(matches(below, &batch), [false, false, false]);
            // A file of -0.0 alone: its statistics prove the same.
            let zeros = file(Datum::double(-0.0), Datum::double(-0.0), 0, Some(0));
            let equal = bind(x().equal_to(Datum::double(zero)));
            assert_eq!(file_match(&equal, &zeros, None), FileMatch::Always);
        }
    }

    /// Statistics never contradict the rows: for every operator, files of zeros of either
    /// sign, NaN and nulls, with zero bounds of either sign (writers differ), a file proven
    /// `Never` has no matching row and one proven `Always` no other.
    #[test]
    fn statistics_agree_with_rows_for_signed_zeros_nan_and_nulls() {
        use std::collections::HashMap;

        use iceberg::expr::Predicate;
        use iceberg::spec::{DataContentType, DataFileBuilder, DataFileFormat, Struct};
        let nan = f64::NAN;
        let files: [&[Option<f64>]; 8] = [
            &[Some(-0.0)],
            &[Some(0.0)],
            &[Some(-0.0), Some(0.0)],
            &[Some(-0.0), Some(1.0)],
            &[Some(-1.0), Some(0.0)],
            &[Some(0.0), None],
            &[Some(nan), Some(0.0)],
            &[None, None],
        ];
        let values = [-1.0, -0.0, 0.0, 0.5, 1.0];
        let x = || Reference::new("x");
        let predicates = |v: f64| -> Vec<Predicate> {
            let d = Datum::double;
            vec![
                x().less_than(d(v)),
                x().less_than_or_equal_to(d(v)),
                x().greater_than(d(v)),
                x().greater_than_or_equal_to(d(v)),
                x().equal_to(d(v)),
                x().not_equal_to(d(v)),
                x().is_in([d(v)]),
                x().is_in([d(v), d(1.0)]),
                x().is_not_in([d(v)]),
                x().is_not_in([d(v), d(1.0)]),
            ]
        };
        for rows in files {
            let batch = RecordBatch::try_new(
                crate::schema::arrow_schema_of(&schema()).unwrap(),
                vec![
                    Arc::new(Float64Array::from(rows.to_vec())),
                    Arc::new(Int64Array::from(vec![0; rows.len()])),
                ],
            )
            .unwrap();
            let numbers: Vec<f64> = rows
                .iter()
                .flatten()
                .copied()
                .filter(|v| !v.is_nan())
                .collect();
            let nulls = rows.iter().filter(|v| v.is_none()).count() as u64;
            let nans = rows.iter().flatten().filter(|v| v.is_nan()).count() as u64;
            let (lower, upper) = (
                numbers.iter().copied().reduce(f64::min),
                numbers.iter().copied().reduce(f64::max),
            );
            // A zero bound may be written with either sign (the pattern matches -0.0 too).
            let signed = |b: Option<f64>| match b {
                Some(0.0) => vec![Some(-0.0), Some(0.0)],
                b => vec![b],
            };
            for (lower, upper) in signed(lower)
                .into_iter()
                .flat_map(|l| signed(upper).into_iter().map(move |u| (l, u)))
            {
                let file = DataFileBuilder::default()
                    .content(DataContentType::Data)
                    .file_path("f.parquet".into())
                    .file_format(DataFileFormat::Parquet)
                    .partition(Struct::empty())
                    .record_count(rows.len() as u64)
                    .file_size_in_bytes(100)
                    .null_value_counts(HashMap::from([(1, nulls)]))
                    .nan_value_counts(HashMap::from([(1, nans)]))
                    .lower_bounds(lower.map(|l| (1, Datum::double(l))).into_iter().collect())
                    .upper_bounds(upper.map(|u| (1, Datum::double(u))).into_iter().collect())
                    .build()
                    .unwrap();
                for predicate in values.into_iter().flat_map(predicates) {
                    let at = format!("{predicate} on {rows:?} with bounds {lower:?}..{upper:?}");
                    let matched = matches(predicate.clone(), &batch);
                    match file_match(&bind(predicate), &file, None) {
                        FileMatch::Never => assert!(!matched.contains(&true), "{at}: Never"),
                        FileMatch::Always => assert!(!matched.contains(&false), "{at}: Always"),
                        FileMatch::Maybe => {}
                    }
                }
            }
        }
    }

    fn file(lower: Datum, upper: Datum, nulls: u64, nans: Option<u64>) -> DataFile {
        let id = match lower.data_type() {
            PrimitiveType::Double => 1,
            _ => 2,
        };
        stats_file(id, Some((lower, upper)), Some(nulls), nans)
    }

    #[test]
    fn statistics_prove_only_what_they_can() {
        let n = || Reference::new("n");
        let judge = |p: iceberg::expr::Predicate, f: &DataFile| file_match(&bind(p), f, None);
        let ints = file(Datum::long(10), Datum::long(20), 0, None);
        assert_eq!(
            judge(n().less_than(Datum::long(21)), &ints),
            FileMatch::Always
        );
        assert_eq!(
            judge(n().less_than(Datum::long(10)), &ints),
            FileMatch::Never
        );
        assert_eq!(
            judge(n().less_than(Datum::long(15)), &ints),
            FileMatch::Maybe
        );
        assert_eq!(
            judge(n().is_in([Datum::long(1), Datum::long(30)]), &ints),
            FileMatch::Never
        );
        // A null row never matches a comparison: "every row" is not proven.
        let with_nulls = file(Datum::long(10), Datum::long(20), 1, None);
        assert_eq!(
            judge(n().less_than(Datum::long(21)), &with_nulls),
            FileMatch::Maybe
        );
        // Statistics of another type (written before a promotion) decide nothing.
        let old = file(Datum::int(10), Datum::int(20), 0, None);
        assert_eq!(judge(n().less_than(Datum::long(5)), &old), FileMatch::Maybe);
        // Float bounds leave NaN out: usable only when the file is known to hold none.
        let x = || Reference::new("x");
        let unknown_nans = file(Datum::double(1.0), Datum::double(2.0), 0, None);
        assert_eq!(
            judge(x().greater_than(Datum::double(5.0)), &unknown_nans),
            FileMatch::Maybe
        );
        let no_nans = file(Datum::double(1.0), Datum::double(2.0), 0, Some(0));
        assert_eq!(
            judge(x().greater_than(Datum::double(5.0)), &no_nans),
            FileMatch::Never
        );
    }
}
