//! Failure cases in Pandera's layout: `schema_context, column, check, check_number,
//! failure_case, index`, with exact counts per check and at most `cap` cases kept per check.

use std::sync::Arc;

use arrow_array::builder::{Int64Builder, StringBuilder};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, Field, Schema};

use crate::error::{Context as _, Result};

/// Where a failure belongs, as Pandera names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Column,
    DataFrameSchema,
}

impl Context {
    pub fn as_str(self) -> &'static str {
        match self {
            Context::Column => "Column",
            Context::DataFrameSchema => "DataFrameSchema",
        }
    }
}

/// The failures of one check: its identity, the exact count, and the kept cases.
#[derive(Debug, Clone)]
pub struct CheckFailures {
    pub context: Context,
    pub column: String,
    pub check: String,
    pub check_number: Option<i64>,
    pub count: usize,
    /// `(failure_case, row index)`; at most the plan's cap.
    pub cases: Vec<(Option<String>, Option<i64>)>,
}

impl CheckFailures {
    pub fn new(context: Context, column: &str, check: &str, check_number: Option<i64>) -> Self {
        Self {
            context,
            column: column.to_string(),
            check: check.to_string(),
            check_number,
            count: 0,
            cases: Vec::new(),
        }
    }

    /// A failure without a row (a missing column, a wrong type).
    pub fn single(
        context: Context,
        column: &str,
        check: &str,
        failure_case: impl Into<String>,
    ) -> Self {
        let mut failures = Self::new(context, column, check, None);
        failures.count = 1;
        failures.cases.push((Some(failure_case.into()), None));
        failures
    }

    /// Records the rows of `array` at `rows` (batch positions) as failing; `offset` turns
    /// them into input row indices.
    pub fn add_rows(
        &mut self,
        array: &ArrayRef,
        rows: &[usize],
        offset: usize,
        cap: Option<usize>,
    ) {
        let formatter = ArrayFormatter::try_new(array.as_ref(), &OPTIONS).ok();
        self.add_cases(rows, offset, cap, |row| {
            match (&formatter, array.is_valid(row)) {
                (Some(f), true) => Some(f.value(row).to_string()),
                _ => None,
            }
        });
    }

    /// Records `rows` as failing, each with the failure case `value(row)`.
    pub fn add_cases(
        &mut self,
        rows: &[usize],
        offset: usize,
        cap: Option<usize>,
        value: impl Fn(usize) -> Option<String>,
    ) {
        self.count += rows.len();
        let room = cap.map_or(rows.len(), |c| c.saturating_sub(self.cases.len()));
        for &row in rows.iter().take(room) {
            self.cases.push((value(row), Some((offset + row) as i64)));
        }
    }
}

const OPTIONS: FormatOptions<'static> = FormatOptions::new();

/// The rows of a batch as JSON objects in column order, the way Pandera's polars backend
/// reports a duplicated row: numbers and booleans as JSON values, null and NaN as null,
/// anything else as Arrow's text.
pub struct JsonRows<'a> {
    columns: Vec<(String, &'a ArrayRef, Option<ArrayFormatter<'a>>)>,
}

impl<'a> JsonRows<'a> {
    pub fn new(batch: &'a RecordBatch) -> Self {
        let columns = batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(field, array)| {
                let name = serde_json::Value::from(field.name().as_str()).to_string();
                (
                    name,
                    array,
                    ArrayFormatter::try_new(array.as_ref(), &OPTIONS).ok(),
                )
            })
            .collect();
        Self { columns }
    }

    pub fn row(&self, row: usize) -> String {
        let fields: Vec<String> = self
            .columns
            .iter()
            .map(|(name, array, formatter)| format!("{name}:{}", json_value(array, formatter, row)))
            .collect();
        format!("{{{}}}", fields.join(","))
    }
}

fn json_value(array: &ArrayRef, formatter: &Option<ArrayFormatter<'_>>, row: usize) -> String {
    let Some(text) = formatter
        .as_ref()
        .filter(|_| array.is_valid(row))
        .map(|f| f.value(row).to_string())
    else {
        return "null".into();
    };
    let kind = array.data_type();
    if kind.is_floating() {
        let finite = text.parse::<f64>().is_ok_and(f64::is_finite);
        return if finite { text } else { "null".into() };
    }
    if kind.is_integer() || *kind == DataType::Boolean {
        return text;
    }
    serde_json::Value::from(text).to_string()
}

/// All failure cases as one Arrow batch in Pandera's column layout.
pub fn failure_cases(failures: &[CheckFailures]) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("schema_context", DataType::Utf8, false),
        Field::new("column", DataType::Utf8, false),
        Field::new("check", DataType::Utf8, false),
        Field::new("check_number", DataType::Int64, true),
        Field::new("failure_case", DataType::Utf8, true),
        Field::new("index", DataType::Int64, true),
    ]));
    let mut context = StringBuilder::new();
    let mut column = StringBuilder::new();
    let mut check = StringBuilder::new();
    let mut number = Int64Builder::new();
    let mut case = StringBuilder::new();
    let mut index = Int64Builder::new();
    for f in failures {
        for (value, row) in &f.cases {
            context.append_value(f.context.as_str());
            column.append_value(&f.column);
            check.append_value(&f.check);
            number.append_option(f.check_number);
            case.append_option(value.as_deref());
            index.append_option(*row);
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(context.finish()),
        Arc::new(column.finish()),
        Arc::new(check.finish()),
        Arc::new(number.finish()),
        Arc::new(case.finish()),
        Arc::new(index.finish()),
    ];
    RecordBatch::try_new(schema, columns).context(|| "collecting failure cases".into())
}
