//! Validation of Arrow batches against a plan compiled from a Pandera schema (docs/validation.md;
//! docs/architecture.md lists the modules): column presence and strictness, dtypes with coercion, nullability, uniqueness
//! (per column and across columns) and Pandera's built-in checks, evaluated with Arrow kernels,
//! one column per core. Bad data is never an error here: it is reported as failure cases in
//! Pandera's layout, and the caller decides (Python raises `ValidationError`).

mod checks;
pub(crate) mod failures;
mod floats;
mod plan;
mod unique;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_cast::{CastOptions, cast_with_options};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

pub use checks::Unsupported;
pub use failures::{CheckFailures, Context, failure_cases};
pub use plan::{Backend, CheckOp, CheckRule, ColumnRule, Keep, Plan, Strict};

use crate::error::{Context as _, Result};

/// The outcome of a validation: the batches as validated (coerced, filtered) and every failure.
#[derive(Debug)]
pub struct Validated {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub failures: Vec<CheckFailures>,
    /// Checks that could not run here, `(column, check_number, why)`: the caller runs them
    /// with Pandera.
    pub unsupported: Vec<(String, i64, String)>,
}

impl Validated {
    pub fn is_valid(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Validates `batches` (all of `schema`) against `plan`; `declared` holds the declared Arrow
/// type of every column that has one.
pub fn validate(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    plan: &Plan,
    declared: &Schema,
) -> Result<Validated> {
    let mut failures = Vec::new();
    let ruled = |name: &str| plan.columns.iter().any(|c| c.name == name);
    for rule in plan.columns.iter().filter(|r| r.required) {
        if schema.field_with_name(&rule.name).is_err() {
            failures.push(CheckFailures::single(
                Context::DataFrameSchema,
                &plan.schema_name,
                "column_in_dataframe",
                &rule.name,
            ));
        }
    }
    let mut kept = Vec::new();
    for (index, field) in schema.fields().iter().enumerate() {
        if ruled(field.name()) {
            kept.push(index);
            continue;
        }
        match plan.strict {
            Strict::Off => kept.push(index),
            Strict::Filter => {}
            Strict::Error => {
                kept.push(index);
                failures.push(CheckFailures::single(
                    Context::DataFrameSchema,
                    &plan.schema_name,
                    "column_in_schema",
                    field.name(),
                ));
            }
        }
    }

    // One task per ruled column, then one per multi-column unique set, spread over the cores.
    let tasks: Vec<Task> = kept
        .iter()
        .filter_map(|&i| {
            let rule = plan
                .columns
                .iter()
                .find(|r| &r.name == schema.field(i).name())?;
            Some(Task::Column(i, rule))
        })
        .chain(plan.unique.iter().map(Task::Unique))
        .collect();
    let outputs = run_parallel(&tasks, |task| match task {
        Task::Column(i, rule) => column_task(schema, batches, *i, rule, declared, plan),
        Task::Unique(set) => unique_task(schema, batches, set, plan),
    });

    let mut columns: Vec<Vec<ArrayRef>> = kept
        .iter()
        .map(|&i| batches.iter().map(|b| b.column(i).clone()).collect())
        .collect();
    let mut fields: Vec<Field> = kept
        .iter()
        .map(|&i| schema.field(i).as_ref().clone())
        .collect();
    let mut unsupported = Vec::new();
    for (task, output) in tasks.iter().zip(outputs) {
        let output = output?;
        failures.extend(output.failures);
        unsupported.extend(output.unsupported);
        if let (Task::Column(i, _), Some(coerced)) = (task, output.coerced) {
            let at = kept.iter().position(|k| k == i).unwrap_or_default();
            if let Some(first) = coerced.first() {
                fields[at] = fields[at].clone().with_data_type(first.data_type().clone());
            }
            columns[at] = coerced;
        }
    }
    let out_schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let out_batches = (0..batches.len())
        .map(|b| {
            let arrays = columns.iter().map(|c| c[b].clone()).collect();
            RecordBatch::try_new(out_schema.clone(), arrays)
                .context(|| "assembling the validated batch".into())
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Validated {
        schema: out_schema,
        batches: out_batches,
        failures,
        unsupported,
    })
}

enum Task<'a> {
    Column(usize, &'a ColumnRule),
    Unique(&'a Vec<String>),
}

#[derive(Default)]
struct TaskOutput {
    failures: Vec<CheckFailures>,
    unsupported: Vec<(String, i64, String)>,
    /// The column's batches after coercion, when they were cast.
    coerced: Option<Vec<ArrayRef>>,
}

/// Runs `work` on every task, on all cores; results come back in task order.
fn run_parallel<T: Sync, R: Send>(tasks: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(tasks.len().max(1));
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(task) = tasks.get(i) else { break };
                        done.push((i, work(task)));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Whether a column of type `actual` satisfies the declared type `declared` without a cast:
/// the same type, or the same kind where Arrow has several layouts (string, binary) or units
/// (timestamps with the same time-zone-ness).
fn same_kind(actual: &DataType, declared: &DataType) -> bool {
    use DataType::*;
    match (actual, declared) {
        (a, d) if a == d => true,
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) => true,
        (Binary | LargeBinary | BinaryView, Binary | LargeBinary | BinaryView) => true,
        (Timestamp(_, a), Timestamp(_, d)) => a.is_some() == d.is_some(),
        // Categoricals: the values decide; the key width depends on the number of categories.
        (Dictionary(_, a), Dictionary(_, d)) => same_kind(a, d),
        (Dictionary(_, value), d) => same_kind(value, d),
        (List(a) | LargeList(a) | ListView(a), List(d) | LargeList(d) | ListView(d)) => {
            same_kind(a.data_type(), d.data_type())
        }
        (Struct(a), Struct(d)) => {
            a.len() == d.len()
                && a.iter()
                    .zip(d.iter())
                    .all(|(a, d)| a.name() == d.name() && same_kind(a.data_type(), d.data_type()))
        }
        _ => false,
    }
}

fn column_task(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    index: usize,
    rule: &ColumnRule,
    declared: &Schema,
    plan: &Plan,
) -> Result<TaskOutput> {
    let mut out = TaskOutput::default();
    let cap = plan.max_failure_cases;
    let name = &rule.name;
    let actual = schema.field(index).data_type();
    let dtype_name = rule.dtype_name.clone().unwrap_or_default();
    let inputs: Vec<ArrayRef> = batches.iter().map(|b| b.column(index).clone()).collect();
    let mut arrays = inputs.clone();
    let mut run_checks = true;
    // Like Pandera: checks of a column that failed coercion fail as a whole (index None).
    let mut coercion_failed = false;
    if let Ok(target) = declared.field_with_name(name).map(|f| f.data_type())
        && !same_kind(actual, target)
    {
        if rule.coerce {
            let mut coerce = CheckFailures::new(
                Context::Column,
                name,
                &format!("coerce_dtype('{dtype_name}')"),
                None,
            );
            let mut dtype = CheckFailures::new(
                Context::Column,
                name,
                &format!("dtype('{dtype_name}')"),
                None,
            );
            let options = CastOptions {
                safe: true,
                ..Default::default()
            };
            let mut offset = 0;
            let mut coerced = Vec::with_capacity(arrays.len());
            for array in &arrays {
                match cast_with_options(array, target, &options) {
                    Ok(cast) => {
                        // Values that did not convert became null.
                        let failed: Vec<usize> = (0..array.len())
                            .filter(|&i| array.is_valid(i) && cast.is_null(i))
                            .collect();
                        coerce.add_rows(array, &failed, offset, cap);
                        dtype.add_rows(array, &failed, offset, cap);
                        coerced.push(cast);
                    }
                    Err(e) => {
                        out.failures.push(CheckFailures::single(
                            Context::Column,
                            name,
                            &format!("coerce_dtype('{dtype_name}')"),
                            format!("{actual}: {e}"),
                        ));
                        run_checks = false;
                        coerced.push(array.clone());
                    }
                }
                offset += array.len();
            }
            coercion_failed = coerce.count > 0;
            out.failures
                .extend([coerce, dtype].into_iter().filter(|f| f.count > 0));
            arrays = coerced;
            out.coerced = Some(arrays.clone());
        } else {
            // Pandera still runs the checks on the data as it is; a check that cannot compare
            // across the types is left to Pandera.
            out.failures.push(CheckFailures::single(
                Context::Column,
                name,
                &format!("dtype('{dtype_name}')"),
                actual.to_string(),
            ));
        }
    }

    let mut not_nullable = CheckFailures::new(Context::Column, name, "not_nullable", None);
    let mut check_failures: Vec<CheckFailures> = rule
        .checks
        .iter()
        .map(|c| CheckFailures::new(Context::Column, name, &c.name, Some(c.number)))
        .collect();
    let mut unsupported = vec![None; rule.checks.len()];
    if coercion_failed {
        run_checks = false;
        for check in &rule.checks {
            let mut failed = CheckFailures::single(
                Context::Column,
                name,
                &check.name,
                "not evaluated: the column failed coercion",
            );
            failed.check_number = Some(check.number);
            out.failures.push(failed);
        }
    }
    let mut offset = 0;
    for (array, input) in arrays.iter().zip(&inputs) {
        // What checks skip: pandas skips NaN with nulls; polars compares NaN (above every
        // number, as Arrow's kernels do).
        let missing = match plan.backend {
            Backend::Pandas => checks::missing(array),
            Backend::Polars => checks::nulls(array),
        };
        if !rule.nullable {
            // Values that failed coercion are reported as such, not as nulls.
            let rows: Vec<usize> = checks::missing(input).set_indices().collect();
            not_nullable.add_rows(input, &rows, offset, cap);
        }
        if run_checks {
            for (c, check) in rule.checks.iter().enumerate() {
                if unsupported[c].is_some() {
                    continue;
                }
                match checks::failing_rows(array, &missing, check) {
                    Ok(rows) => check_failures[c].add_rows(array, &rows, offset, cap),
                    Err(Unsupported(why)) => unsupported[c] = Some(why),
                }
            }
        }
        offset += array.len();
    }
    for (c, why) in unsupported.into_iter().enumerate() {
        if let Some(why) = why {
            out.unsupported
                .push((name.clone(), rule.checks[c].number, why));
            check_failures[c].count = 0;
            check_failures[c].cases.clear();
        }
    }
    out.failures.push(not_nullable);
    out.failures.extend(check_failures);
    if rule.unique {
        let column = Arc::new(Schema::new(vec![Field::new(
            name,
            arrays
                .first()
                .map_or(actual.clone(), |a| a.data_type().clone()),
            true,
        )]));
        let single: Vec<RecordBatch> = arrays
            .iter()
            .map(|a| RecordBatch::try_new(column.clone(), vec![a.clone()]))
            .collect::<std::result::Result<_, _>>()
            .context(|| format!("checking {name} for duplicates"))?;
        let mut failures = CheckFailures::new(Context::Column, name, "field_uniqueness", None);
        let duplicated = duplicates(
            &single,
            std::slice::from_ref(name),
            plan,
            rule.report_duplicates,
        )?;
        let mut offset = 0;
        for (array, rows) in arrays.iter().zip(duplicated) {
            failures.add_rows(array, &reported(plan, array, rows), offset, cap);
            offset += array.len();
        }
        out.failures.push(failures);
    }
    out.failures.retain(|f| f.count > 0);
    Ok(out)
}

/// Duplicated rows as the plan's backend sees them (pandas: NaN and null are one missing value).
fn duplicates(
    batches: &[RecordBatch],
    columns: &[String],
    plan: &Plan,
    keep: Keep,
) -> Result<Vec<Vec<usize>>> {
    match plan.backend {
        Backend::Pandas => unique::duplicated_rows(batches, columns, true, keep),
        // Pandera's polars backend reports every occurrence whatever `report_duplicates` says.
        Backend::Polars => unique::duplicated_rows(batches, columns, false, Keep::All),
    }
}

/// The duplicated `rows` of `array` that are failure cases: pandas leaves missing values out
/// (Pandera drops null failure cases), polars reports them.
fn reported(plan: &Plan, array: &ArrayRef, rows: Vec<usize>) -> Vec<usize> {
    match plan.backend {
        Backend::Polars => rows,
        Backend::Pandas => {
            let missing = checks::missing(array);
            rows.into_iter().filter(|&r| !missing.value(r)).collect()
        }
    }
}

fn unique_task(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    set: &[String],
    plan: &Plan,
) -> Result<TaskOutput> {
    let mut out = TaskOutput::default();
    // Like Pandera: the columns of the set that are present (a missing one is reported on
    // its own).
    let set: Vec<String> = set
        .iter()
        .filter(|c| schema.field_with_name(c).is_ok())
        .cloned()
        .collect();
    if set.is_empty() {
        return Ok(out);
    }
    let duplicated = duplicates(batches, &set, plan, plan.report_duplicates)?;
    let cap = plan.max_failure_cases;
    if plan.backend == Backend::Polars {
        // One case per duplicated row, under the schema's name: the whole row, as JSON.
        let mut failures = CheckFailures::new(
            Context::DataFrameSchema,
            &plan.schema_name,
            "multiple_fields_uniqueness",
            None,
        );
        let mut offset = 0;
        for (batch, rows) in batches.iter().zip(&duplicated) {
            let json = failures::JsonRows::new(batch);
            failures.add_cases(rows, offset, cap, |row| Some(json.row(row)));
            offset += batch.num_rows();
        }
        if failures.count > 0 {
            out.failures.push(failures);
        }
        return Ok(out);
    }
    for column in &set {
        let mut failures = CheckFailures::new(
            Context::DataFrameSchema,
            column,
            "multiple_fields_uniqueness",
            None,
        );
        let mut offset = 0;
        for (batch, rows) in batches.iter().zip(&duplicated) {
            if let Some(array) = batch.column_by_name(column) {
                failures.add_rows(array, &reported(plan, array, rows.clone()), offset, cap);
            }
            offset += batch.num_rows();
        }
        if failures.count > 0 {
            out.failures.push(failures);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use arrow_array::{Float64Array, Int64Array, StringArray};

    use super::*;

    fn input() -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("value", DataType::Float64, true),
            Field::new("n", DataType::Utf8, true),
            Field::new("extra", DataType::Int64, true),
        ]));
        let batch = |ids: Vec<Option<&str>>, values: Vec<Option<f64>>, ns: Vec<&str>| {
            let len = ids.len() as i64;
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(ids)),
                    Arc::new(Float64Array::from(values)),
                    Arc::new(StringArray::from(ns)),
                    Arc::new(Int64Array::from_iter_values(0..len)),
                ],
            )
            .unwrap()
        };
        let batches = vec![
            batch(
                vec![Some("a"), Some("b")],
                vec![Some(1.0), Some(200.0)],
                vec!["1", "2"],
            ),
            // "b" repeats across batches; a null value, a NaN, a non-number.
            batch(
                vec![Some("b"), None, Some("ü")],
                vec![None, Some(f64::NAN), Some(-1.0)],
                vec!["3", "x", "5"],
            ),
        ];
        (schema, batches)
    }

    fn plan(json: &str) -> Plan {
        Plan::from_json(json).unwrap()
    }

    fn cases(v: &Validated) -> Vec<(String, String, Option<i64>)> {
        let mut out: Vec<_> = v
            .failures
            .iter()
            .flat_map(|f| {
                f.cases
                    .iter()
                    .map(|(_, i)| (f.column.clone(), f.check.clone(), *i))
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn reports_every_failure_like_pandera() {
        let (schema, batches) = input();
        let plan = plan(
            r#"{"schema_name": "S", "strict": "error", "unique": [],
            "columns": [
              {"name": "id", "nullable": false, "unique": true, "checks": [
                {"number": 0, "name": "str_length(1, 1)", "op": "str_length", "values": [1, 1]}]},
              {"name": "value", "nullable": false, "checks": [
                {"number": 0, "name": "greater_than_or_equal_to(0)", "op": "ge", "values": [0]},
                {"number": 1, "name": "less_than_or_equal_to(100)", "op": "le", "values": [100]}]},
              {"name": "n", "dtype_name": "int64", "coerce": true, "checks": [
                {"number": 0, "name": "isin([1, 2, 3, 5])", "op": "isin", "values": [1, 2, 3, 5]}]},
              {"name": "missing", "required": true}
            ]}"#,
        );
        let declared = Schema::new(vec![Field::new("n", DataType::Int64, true)]);
        let v = validate(&schema, &batches, &plan, &declared).unwrap();
        let s = |c: &str, k: &str, i: Option<i64>| (c.to_string(), k.to_string(), i);
        assert_eq!(
            cases(&v),
            vec![
                s("S", "column_in_dataframe", None),
                s("S", "column_in_schema", None),
                s("id", "field_uniqueness", Some(1)),
                s("id", "field_uniqueness", Some(2)),
                s("id", "not_nullable", Some(3)),
                s("n", "coerce_dtype('int64')", Some(3)),
                s("n", "dtype('int64')", Some(3)),
                // As in Pandera, the checks of a column that failed coercion fail as a whole.
                s("n", "isin([1, 2, 3, 5])", None),
                s("value", "greater_than_or_equal_to(0)", Some(4)),
                s("value", "less_than_or_equal_to(100)", Some(1)),
                s("value", "not_nullable", Some(2)),
                s("value", "not_nullable", Some(3)),
            ]
        );
        // "ü" is one character: str_length counts characters, not bytes.
        assert!(v.unsupported.is_empty());
        assert_eq!(v.batches[0].schema().field(2).data_type(), &DataType::Int64);
        let table = failure_cases(&v.failures).unwrap();
        assert_eq!(table.num_rows(), 12);
    }

    #[test]
    fn valid_data_passes_and_filter_drops_extra_columns() {
        let (schema, batches) = input();
        let plan = plan(
            r#"{"schema_name": "S", "strict": "filter", "unique": [["id", "n"]],
            "columns": [{"name": "id"}, {"name": "n", "checks": [
              {"number": 0, "name": "str_matches('[0-9x]')", "op": "str_matches", "values": ["[0-9x]"]},
              {"number": 1, "name": "<lookbehind>", "op": "str_contains", "values": ["(?<=a)b"]}]}]}"#,
        );
        let v = validate(&schema, &batches, &plan, &Schema::empty()).unwrap();
        assert!(v.is_valid(), "{:?}", v.failures);
        assert_eq!(v.schema.fields().len(), 2);
        // Rust's regex has no look-behind: that check is left to Pandera.
        assert_eq!(v.unsupported.len(), 1);
        assert_eq!(v.unsupported[0].1, 1);
    }

    #[test]
    fn uniqueness_across_columns_counts_nulls_as_equal_keys() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![
                    Some("x"),
                    Some("x"),
                    None,
                    None,
                    Some("x"),
                ])),
                Arc::new(Int64Array::from(vec![
                    Some(1),
                    Some(2),
                    Some(3),
                    Some(3),
                    Some(1),
                ])),
            ],
        )
        .unwrap();
        let plan_for = |backend: &str| {
            plan(&format!(
                r#"{{"schema_name": "S", "unique": [["a", "b"]], "backend": "{backend}",
                "columns": [{{"name": "a", "unique": true}}]}}"#
            ))
        };
        let rows = |backend: &str| -> Vec<(String, Option<i64>)> {
            let v = validate(
                &schema,
                std::slice::from_ref(&batch),
                &plan_for(backend),
                &Schema::empty(),
            );
            cases(&v.unwrap())
                .into_iter()
                .filter(|(_, check, _)| check == "multiple_fields_uniqueness")
                .map(|(c, _, i)| (c, i))
                .collect()
        };
        let r = |c: &str, i: i64| (c.to_string(), Some(i));
        // pandas: nulls are equal keys but not failure cases; one case per column.
        assert_eq!(
            rows("pandas"),
            vec![
                r("a", 0),
                r("a", 4),
                r("b", 0),
                r("b", 2),
                r("b", 3),
                r("b", 4)
            ]
        );
        // polars: nulls are equal keys; one case per row, under the schema's name.
        assert_eq!(
            rows("polars"),
            vec![r("S", 0), r("S", 2), r("S", 3), r("S", 4)]
        );
        let polars = validate(&schema, &[batch], &plan_for("polars"), &Schema::empty()).unwrap();
        let single: Vec<_> = cases(&polars)
            .into_iter()
            .filter(|(_, check, _)| check == "field_uniqueness")
            .map(|(_, _, i)| i)
            .collect();
        assert_eq!(single, vec![Some(0), Some(1), Some(2), Some(3), Some(4)]);
        assert!(Plan::from_json("{}").is_err());
    }

    #[test]
    fn report_duplicates_spares_the_first_or_last_occurrence() {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
        let keys = |ks: Vec<i64>| {
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(ks))]).unwrap()
        };
        // "1" repeats within and across batches, "2" once across them.
        let batches = [keys(vec![1, 2, 1]), keys(vec![3, 1, 2])];
        let rows = |keep: &str| -> Vec<Option<i64>> {
            let plan = plan(&format!(
                r#"{{"schema_name": "S", "columns": [
                  {{"name": "k", "unique": true, "report_duplicates": "{keep}"}}]}}"#
            ));
            let v = validate(&schema, &batches, &plan, &Schema::empty()).unwrap();
            cases(&v).into_iter().map(|(_, _, i)| i).collect()
        };
        let at = |rows: &[i64]| rows.iter().map(|&r| Some(r)).collect::<Vec<_>>();
        assert_eq!(rows("all"), at(&[0, 1, 2, 4, 5]));
        assert_eq!(rows("exclude_first"), at(&[2, 4, 5]));
        assert_eq!(rows("exclude_last"), at(&[0, 1, 2]));
    }
}
