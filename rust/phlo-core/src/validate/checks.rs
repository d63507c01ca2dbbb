//! Pandera's built-in checks as Arrow kernels. A check returns the positions of the rows that
//! fail it, or `Unsupported` when it cannot be evaluated here (an operand that does not fit the
//! column type, a regex Rust cannot compile): the caller then leaves it to Pandera.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float16Type, Float32Type, Float64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, Scalar, StringArray, StringArrayType,
};
use arrow_buffer::BooleanBuffer;
use arrow_cast::{CastOptions, cast_with_options};
use arrow_row::{RowConverter, SortField};
use arrow_schema::DataType;
use serde_json::Value;

use super::floats;
use super::plan::{CheckOp, CheckRule};

/// Why a check was left to Pandera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

type CheckResult<T> = std::result::Result<T, Unsupported>;

/// `isin` lists longer than this are looked up in a hash set instead of OR-ing comparisons.
const SMALL_LIST: usize = 16;

/// Null rows.
pub fn nulls(array: &ArrayRef) -> BooleanBuffer {
    match array.logical_nulls() {
        Some(n) => !n.inner(),
        None => BooleanBuffer::new_unset(array.len()),
    }
}

/// Rows that are missing for Pandera: null, or NaN in a float column.
pub fn missing(array: &ArrayRef) -> BooleanBuffer {
    let nulls = nulls(array);
    let nan = match array.data_type() {
        DataType::Float64 => Some(nan_mask(
            array.as_primitive::<Float64Type>().values(),
            |v| v.is_nan(),
        )),
        DataType::Float32 => Some(nan_mask(
            array.as_primitive::<Float32Type>().values(),
            |v| v.is_nan(),
        )),
        DataType::Float16 => Some(nan_mask(
            array.as_primitive::<Float16Type>().values(),
            |v| v.is_nan(),
        )),
        _ => None,
    };
    match nan {
        Some(nan) => &nulls | &nan,
        None => nulls,
    }
}

fn nan_mask<T: Copy>(values: &[T], is_nan: impl Fn(T) -> bool) -> BooleanBuffer {
    BooleanBuffer::collect_bool(values.len(), |i| is_nan(values[i]))
}

/// Positions of the rows of `array` that fail `rule`; `missing` marks the rows `ignore_na`
/// skips.
pub fn failing_rows(
    array: &ArrayRef,
    missing: &BooleanBuffer,
    rule: &CheckRule,
) -> CheckResult<Vec<usize>> {
    let passes = passes(array, rule)?;
    // Word-wise: a present value fails when it does not pass; a missing one when NA counts.
    let failing = match rule.ignore_na {
        true => &!&passes & &!missing,
        false => &(&!&passes & &!missing) | missing,
    };
    Ok(failing.set_indices().collect())
}

/// Whether each row passes (meaningful for rows that are not missing).
fn passes(array: &ArrayRef, rule: &CheckRule) -> CheckResult<BooleanBuffer> {
    // Dictionary columns (pandas categoricals): check each distinct value once, then look up.
    if let Some(dictionary) = array.as_any_dictionary_opt() {
        let values = passes(dictionary.values(), rule)?;
        let keys = dictionary.normalized_keys();
        // Null keys point anywhere in the values (or nowhere when there are none); those rows
        // are missing and their result unused.
        return Ok(BooleanBuffer::collect_bool(array.len(), |i| {
            keys[i] < values.len() && values.value(keys[i])
        }));
    }
    let array = &floats::canonical(array, false);
    use arrow_ord::cmp;
    let compare = |value: &Value, kernel: Kernel| -> CheckResult<BooleanBuffer> {
        let (lhs, rhs) = comparable(array, value)?;
        let result = kernel(&lhs, &Scalar::new(rhs)).map_err(|e| Unsupported(e.to_string()))?;
        Ok(result.values().clone())
    };
    let value = |i: usize| {
        rule.values
            .get(i)
            .ok_or_else(|| Unsupported(format!("{} needs {} operands", rule.name, i + 1)))
    };
    Ok(match rule.op {
        CheckOp::Eq => compare(value(0)?, cmp::eq)?,
        CheckOp::Ne => compare(value(0)?, cmp::neq)?,
        CheckOp::Gt => compare(value(0)?, cmp::gt)?,
        CheckOp::Ge => compare(value(0)?, cmp::gt_eq)?,
        CheckOp::Lt => compare(value(0)?, cmp::lt)?,
        CheckOp::Le => compare(value(0)?, cmp::lt_eq)?,
        CheckOp::InRange => {
            let low: Kernel = if rule.include_min {
                cmp::gt_eq
            } else {
                cmp::gt
            };
            let high: Kernel = if rule.include_max {
                cmp::lt_eq
            } else {
                cmp::lt
            };
            &compare(value(0)?, low)? & &compare(value(1)?, high)?
        }
        CheckOp::Isin => is_in(array, &rule.values)?,
        CheckOp::Notin => !&is_in(array, &rule.values)?,
        CheckOp::StrLength => {
            let bound = |i: usize| match rule.values.get(i) {
                Some(Value::Number(n)) => n.as_u64().map(|n| n as usize),
                _ => None,
            };
            let (min, max) = (bound(0), bound(1));
            strings(array, |s, ascii| {
                let len = if ascii { s.len() } else { s.chars().count() };
                min.is_none_or(|m| len >= m) && max.is_none_or(|m| len <= m)
            })?
        }
        CheckOp::StrMatches | CheckOp::StrContains => {
            let pattern = text(value(0)?)?;
            // Pandera's str_matches is Python's re.match: anchored at the start only.
            let pattern = match rule.op {
                CheckOp::StrMatches => format!("^(?:{pattern})"),
                _ => pattern.to_string(),
            };
            let regex = regex::Regex::new(&pattern)
                .map_err(|e| Unsupported(format!("regex {pattern:?}: {e}")))?;
            strings(array, |s, _| regex.is_match(s))?
        }
        CheckOp::StrStartswith => {
            let prefix = text(value(0)?)?;
            strings(array, |s, _| s.starts_with(prefix))?
        }
        CheckOp::StrEndswith => {
            let suffix = text(value(0)?)?;
            strings(array, |s, _| s.ends_with(suffix))?
        }
    })
}

type Kernel = fn(
    &dyn arrow_array::Datum,
    &dyn arrow_array::Datum,
) -> std::result::Result<BooleanArray, arrow_schema::ArrowError>;

fn text(value: &Value) -> CheckResult<&str> {
    value
        .as_str()
        .ok_or_else(|| Unsupported(format!("expected a string operand, got {value}")))
}

/// The column and a one-row operand of a type the comparison kernels accept together. An
/// integer column compared with a fractional number is compared as floats (as Python does).
fn comparable(array: &ArrayRef, value: &Value) -> CheckResult<(ArrayRef, ArrayRef)> {
    if !compatible(value, array.data_type()) {
        return Err(Unsupported(format!(
            "{value} compared with a {} column",
            array.data_type()
        )));
    }
    let raw = json_scalar(value)?;
    let fractional = value.as_f64().is_some_and(|f| f.fract() != 0.0);
    if fractional && array.data_type().is_integer() {
        let lhs = cast(array, &DataType::Float64)?;
        return Ok((lhs, raw));
    }
    let target = array.data_type();
    let rhs = cast(&raw, target)?;
    if rhs.is_null(0) {
        return Err(Unsupported(format!("{value} is not a {target}")));
    }
    Ok((array.clone(), floats::canonical(&rhs, false)))
}

/// Whether Pandera compares an operand of this kind with a column of type `target` value by
/// value: numbers with numbers, text with text, and with dates, times and decimals (whose
/// operands travel as text). Across kinds (a number against text, text against an integer
/// column) Pandera fails or compares differently; the check is left to it.
fn compatible(value: &Value, target: &DataType) -> bool {
    use DataType::*;
    match value {
        Value::Number(_) => target.is_numeric(),
        Value::String(_) => matches!(
            target,
            Utf8 | LargeUtf8
                | Utf8View
                | Date32
                | Date64
                | Timestamp(..)
                | Time32(_)
                | Time64(_)
                | Decimal128(..)
                | Decimal256(..)
        ),
        Value::Bool(_) => target == &Boolean,
        _ => false,
    }
}

fn cast(array: &ArrayRef, to: &DataType) -> CheckResult<ArrayRef> {
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    cast_with_options(array, to, &options).map_err(|e| Unsupported(e.to_string()))
}

fn json_scalar(value: &Value) -> CheckResult<ArrayRef> {
    Ok(match value {
        Value::Number(n) if n.is_i64() => Arc::new(Int64Array::from(vec![n.as_i64()])),
        Value::Number(n) => Arc::new(Float64Array::from(vec![n.as_f64()])),
        Value::String(s) => Arc::new(StringArray::from(vec![s.as_str()])),
        Value::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
        other => return Err(Unsupported(format!("unsupported operand {other}"))),
    })
}

/// Membership in `values`: OR-ed equality for short lists, a hash set of row-encoded values
/// for long ones.
fn is_in(array: &ArrayRef, values: &[Value]) -> CheckResult<BooleanBuffer> {
    let texts: Option<Vec<&str>> = values.iter().map(Value::as_str).collect();
    if let Some(allowed) = texts.filter(|t| t.len() <= SMALL_LIST)
        && matches!(
            array.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        )
    {
        // One pass over the strings instead of one comparison kernel per allowed value; values
        // are bucketed by length, so a row is compared with at most the values of its length.
        let mut by_len: Vec<Vec<&str>> = vec![Vec::new(); 65];
        for value in allowed {
            by_len[value.len().min(64)].push(value);
        }
        return strings(array, |s, _| by_len[s.len().min(64)].contains(&s));
    }
    if values.len() <= SMALL_LIST {
        let mut result = BooleanBuffer::new_unset(array.len());
        for value in values {
            let (lhs, rhs) = comparable(array, value)?;
            let eq = arrow_ord::cmp::eq(&lhs, &Scalar::new(rhs))
                .map_err(|e| Unsupported(e.to_string()))?;
            result = &result | eq.values();
        }
        return Ok(result);
    }
    let converter = RowConverter::new(vec![SortField::new(array.data_type().clone())])
        .map_err(|e| Unsupported(e.to_string()))?;
    let mut allowed = HashSet::new();
    for value in values {
        let (_, rhs) = comparable(array, value)?;
        let rows = converter
            .convert_columns(&[rhs])
            .map_err(|e| Unsupported(e.to_string()))?;
        allowed.insert(rows.row(0).as_ref().to_vec());
    }
    let rows = converter
        .convert_columns(std::slice::from_ref(array))
        .map_err(|e| Unsupported(e.to_string()))?;
    Ok(BooleanBuffer::collect_bool(array.len(), |i| {
        allowed.contains(rows.row(i).as_ref())
    }))
}

/// `test(value, all_ascii)` for every value of a string column (unused for null rows).
fn strings(array: &ArrayRef, test: impl Fn(&str, bool) -> bool) -> CheckResult<BooleanBuffer> {
    fn each<'a, S: StringArrayType<'a>>(
        array: S,
        len: usize,
        test: impl Fn(&str, bool) -> bool,
    ) -> BooleanBuffer {
        let ascii = array.is_ascii();
        // Null slots hold some value too; callers ignore the result for missing rows.
        BooleanBuffer::collect_bool(len, |i| test(array.value(i), ascii))
    }
    let len = array.len();
    Ok(match array.data_type() {
        DataType::Utf8 => each(array.as_string::<i32>(), len, test),
        DataType::LargeUtf8 => each(array.as_string::<i64>(), len, test),
        DataType::Utf8View => each(array.as_string_view(), len, test),
        other => return Err(Unsupported(format!("a string check on a {other} column"))),
    })
}
