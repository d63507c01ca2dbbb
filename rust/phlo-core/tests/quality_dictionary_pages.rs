//! Pattern and accepted-values checks settled from the files' dictionary pages (and the pages
//! of chunks stored plain), against the same checks over a scan of the rows and a model of the
//! table: a column is left out of the scan only where every value every chunk in scope holds
//! passes; a plain-encoded chunk (a dictionary outgrowing the writer's limit) is judged from its
//! pages; a failing value (in any page), deleted rows, nulls, a partition filter and a missing
//! column all give the scan's answer.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use futures::StreamExt;
use parquet::basic::Encoding;
use parquet::file::reader::{FileReader, SerializedFileReader};
use phlo_core::Lakehouse;
use phlo_core::catalog::MAIN;
use phlo_core::quality::{Evaluator, Outcome, QualityPlan};
use phlo_core::tables::write::DICTIONARY_SIZE_PROPERTY;
use phlo_core::tables::{Filter, FilterOp, Literal, ScanOptions, ScanPlan};
use serde_json::json;

const ACCEPTED: [&str; 3] = ["click", "view", "buy"];

/// A row of the model: id, day (the partition), category, code.
#[derive(Debug, Clone)]
struct Row {
    id: i64,
    day: &'static str,
    category: Option<String>,
    code: Option<String>,
}

/// Day `d1`: accepted categories (nulls every 7th row) and 60,000 distinct short codes: a
/// dictionary of ~600 KB, stored dictionary-encoded under a 1 MiB limit (the table property).
/// Day `d2`: long distinct codes, whose dictionary outgrows the limit (the chunk continues
/// plain-encoded), all matching. Day `d3`: a category `nope` every 50th row. Day `d4`: long
/// distinct codes (plain-encoded after the dictionary's first page) of which only the last
/// fails. Days `d5` and `d6`: long distinct codes that are not ASCII (plain-encoded pages
/// judged in place value by value, not as one ASCII page), nulls every 9th row in `d5`, all
/// matching; in `d6` an empty string mid-chunk and a code starting `é` in the last page fail.
fn rows() -> Vec<Row> {
    let mut rows = Vec::new();
    for i in 0..60_000 {
        rows.push(Row {
            id: i,
            day: "d1",
            category: (i % 7 != 0).then(|| ACCEPTED[(i % 3) as usize].to_string()),
            code: (i % 11 != 0).then(|| format!("C{i}")),
        });
    }
    for i in 60_000..100_000 {
        rows.push(Row {
            id: i,
            day: "d2",
            category: Some(ACCEPTED[(i % 3) as usize].to_string()),
            code: Some(format!("C{i:040}")),
        });
    }
    for i in 100_000..110_000 {
        rows.push(Row {
            id: i,
            day: "d3",
            category: Some(match i % 50 {
                0 => "nope".to_string(),
                _ => ACCEPTED[(i % 3) as usize].to_string(),
            }),
            code: Some(format!("C{}", i % 100)),
        });
    }
    for i in 110_000..150_000 {
        rows.push(Row {
            id: i,
            day: "d4",
            category: Some(ACCEPTED[(i % 3) as usize].to_string()),
            code: Some(match i {
                149_999 => format!("X{i:040}"),
                _ => format!("C{i:040}"),
            }),
        });
    }
    for i in 150_000..180_000 {
        rows.push(Row {
            id: i,
            day: "d5",
            category: Some(ACCEPTED[(i % 3) as usize].to_string()),
            code: (i % 9 != 0).then(|| format!("C{i:040}é✓")),
        });
    }
    for i in 180_000..210_000 {
        rows.push(Row {
            id: i,
            day: "d6",
            category: Some(ACCEPTED[(i % 3) as usize].to_string()),
            code: Some(match i {
                195_000 => String::new(),
                209_999 => format!("é{i:040}"),
                _ => format!("C{i:040}ü"),
            }),
        });
    }
    rows
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("day", DataType::Utf8, true),
        Field::new("category", DataType::Utf8, true),
        Field::new("code", DataType::Utf8, true),
    ]))
}

fn batch(rows: &[Row]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.id))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.day))),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.category.clone()),
            )),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.code.clone()))),
        ],
    )
    .unwrap()
}

/// The table partitioned by day (one file per day), with `properties` and 1 MiB dictionary
/// pages (Parquet's default; phlo's is smaller).
async fn setup(
    rows: &[Row],
    mut properties: HashMap<String, String>,
) -> (tempfile::TempDir, Lakehouse) {
    properties.insert(DICTIONARY_SIZE_PROPERTY.into(), (1024 * 1024).to_string());
    setup_with(rows, properties).await
}

/// The table partitioned by day (one file per day), with exactly `properties`.
async fn setup_with(
    rows: &[Row],
    properties: HashMap<String, String>,
) -> (tempfile::TempDir, Lakehouse) {
    let dir = tempfile::tempdir().unwrap();
    let lh = Lakehouse::open(dir.path()).unwrap();
    lh.catalog().create_namespace("raw").unwrap();
    let by_day = [("day".to_string(), "identity".to_string())];
    lh.create_table("raw.q", &schema(), &by_day, properties, MAIN)
        .await
        .unwrap();
    let input: Vec<Result<RecordBatch, ArrowError>> = vec![Ok(batch(rows))];
    lh.append("raw.q", input, MAIN, HashMap::new())
        .await
        .unwrap();
    (dir, lh)
}

fn checks() -> serde_json::Value {
    json!([
        {"kind": "accepted_values", "column": "category", "values": ACCEPTED},
        {"kind": "pattern", "column": "code", "pattern": "C\\d+"},
        {"kind": "pattern", "column": "absent", "pattern": "x"},
        {"kind": "count"},
    ])
}

fn quality(checks: &serde_json::Value) -> QualityPlan {
    let plan = json!({"checks": checks, "id_columns": ["id"], "sample_limit": 20});
    QualityPlan::from_json(&plan.to_string()).unwrap()
}

/// The checks as the runner evaluates them: settled from metadata and dictionary pages, then
/// one scan of the columns left (plus the id for samples), if any. Returns the outcomes and
/// the columns scanned.
async fn settled(plan: ScanPlan, checks: &serde_json::Value) -> (Vec<Outcome>, Vec<String>) {
    let mut evaluator = Evaluator::new(&quality(checks), &plan.schema());
    let left = evaluator.settle_scan(&plan).await.unwrap();
    let mut scanned = Vec::new();
    if !left.is_empty() {
        let mut columns = vec!["id".to_string()];
        columns.extend(left.into_iter().filter(|c| c != "id"));
        let narrowed = plan.select(&columns).unwrap();
        scanned = narrowed
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut stream = narrowed.into_stream().unwrap();
        while let Some(batch) = stream.next().await {
            evaluator.update(&batch.unwrap()).unwrap();
        }
    }
    (evaluator.finish().unwrap(), scanned)
}

/// The checks as the engine's own pass evaluates them ([`Evaluator::check_scan`]): the other
/// checks' columns read while the pages are judged, a failing column read afterwards for its
/// checks only. Returns the outcomes and the columns read.
async fn checked(plan: ScanPlan, checks: &serde_json::Value) -> (Vec<Outcome>, Vec<String>) {
    let mut evaluator = Evaluator::new(&quality(checks), &plan.schema());
    let read = evaluator.check_scan(&plan).await.unwrap();
    (evaluator.finish().unwrap(), read)
}

/// The checks over a scan of every row (nothing settled).
async fn scanned(plan: ScanPlan, checks: &serde_json::Value) -> Vec<Outcome> {
    let mut evaluator = Evaluator::new(&quality(checks), &plan.schema());
    let mut stream = plan.into_stream().unwrap();
    while let Some(batch) = stream.next().await {
        evaluator.update(&batch.unwrap()).unwrap();
    }
    evaluator.finish().unwrap()
}

async fn plan(lh: &Lakehouse, days: &[&str]) -> ScanPlan {
    let options = ScanOptions {
        columns: Some(vec!["id".into(), "category".into(), "code".into()]),
        filters: vec![Filter {
            column: "day".into(),
            op: FilterOp::In,
            values: days
                .iter()
                .map(|d| Literal::String(d.to_string()))
                .collect(),
        }],
        ..Default::default()
    };
    lh.scan("raw.q", &options).await.unwrap()
}

/// Failing rows of the accepted-values and pattern checks over `rows`, by the model.
fn model_failures(rows: &[&Row]) -> [Vec<i64>; 2] {
    let category = rows
        .iter()
        .filter(|r| {
            r.category
                .as_deref()
                .is_some_and(|c| !ACCEPTED.contains(&c))
        })
        .map(|r| r.id)
        .collect();
    let code = rows
        .iter()
        .filter(|r| {
            r.code.as_deref().is_some_and(|c| {
                !(c.starts_with('C') && c[1..].starts_with(|d: char| d.is_ascii_digit()))
            })
        })
        .map(|r| r.id)
        .collect();
    [category, code]
}

fn sample_ids(outcome: &Outcome) -> Vec<i64> {
    outcome.sample.as_ref().map_or(vec![], |s| {
        s.column_by_name("id")
            .unwrap()
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    })
}

/// Settled and scanned outcomes agree with each other and with the model over `days`; the
/// missing column is reported either way.
fn agree(settled: &[Outcome], scanned: &[Outcome], rows: &[&Row]) {
    let failing = model_failures(rows);
    for (i, ids) in failing.iter().enumerate() {
        let want = (ids.len() as u64, rows.len() as u64);
        assert_eq!((settled[i].failed, settled[i].total), want, "check {i}");
        assert_eq!((scanned[i].failed, scanned[i].total), want, "check {i}");
        let sample = sample_ids(&settled[i]);
        assert_eq!(sample.len(), ids.len().min(20), "check {i}");
        assert!(sample.iter().all(|id| ids.contains(id)), "check {i}");
    }
    for outcomes in [settled, scanned] {
        assert_eq!(outcomes[2].missing_columns, vec!["absent".to_string()]);
        assert!(!outcomes[2].from_dictionaries);
        assert_eq!(outcomes[3].total, rows.len() as u64);
    }
}

/// Whether every chunk of `column` in the table's data files of `day` is dictionary-encoded.
fn dictionary_encoded(dir: &std::path::Path, day: &str, column: &str) -> bool {
    let files: Vec<_> = crate::support::files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .filter(|p| p.to_string_lossy().contains(&format!("day={day}")))
        .collect();
    assert!(!files.is_empty(), "no data file of {day}");
    files.iter().all(|path| {
        let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
        let metadata = reader.metadata();
        let leaf = (0..metadata.file_metadata().schema_descr().num_columns())
            .find(|&i| metadata.file_metadata().schema_descr().column(i).name() == column)
            .unwrap();
        metadata.row_groups().iter().all(|g| {
            g.column(leaf)
                .page_encoding_stats_mask()
                .is_some_and(|m| m.is_only(Encoding::RLE_DICTIONARY))
        })
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn passing_dictionaries_settle_their_checks_and_the_rest_is_scanned() {
    let model = rows();
    let (dir, lh) = setup(&model, HashMap::new()).await;
    // The data are what the cases below assume: d1's 60,000 distinct codes fit the table's
    // 1 MiB dictionary limit; d2's long codes do not.
    assert!(dictionary_encoded(dir.path(), "d1", "code"));
    assert!(!dictionary_encoded(dir.path(), "d2", "code"));
    assert!(dictionary_encoded(dir.path(), "d3", "category"));
    assert!(!dictionary_encoded(dir.path(), "d4", "code"));
    assert!(!dictionary_encoded(dir.path(), "d5", "code"));
    assert!(!dictionary_encoded(dir.path(), "d6", "code"));

    let cases: [(&[&str], &[&str]); 9] = [
        // Every dictionary passes: neither column is read (the count comes from metadata).
        (&["d1"], &[]),
        // d2's codes are plain-encoded, every one passing: judged from the pages, not read.
        (&["d1", "d2"], &[]),
        // d3 has a failing category: the categories are scanned (exact count and sample).
        (&["d1", "d3"], &["id", "category"]),
        (&["d1", "d2", "d3"], &["id", "category"]),
        // d4's last plain-encoded code fails: the codes are scanned.
        (&["d4"], &["id", "code"]),
        (&["d2", "d3", "d4"], &["id", "category", "code"]),
        // Codes that are not ASCII, all matching (nulls between): judged in place, not read.
        (&["d5"], &[]),
        // An empty code and one starting `é` fail: the codes are scanned.
        (&["d6"], &["id", "code"]),
        (&["d1", "d5", "d6"], &["id", "code"]),
    ];
    for (days, read) in cases {
        let (ours, columns) = settled(plan(&lh, days).await, &checks()).await;
        let theirs = scanned(plan(&lh, days).await, &checks()).await;
        let rows: Vec<&Row> = model.iter().filter(|r| days.contains(&r.day)).collect();
        agree(&ours, &theirs, &rows);
        assert_eq!(columns, read, "{days:?}");
        let (engine, engine_read) = checked(plan(&lh, days).await, &checks()).await;
        agree(&engine, &theirs, &rows);
        assert_eq!(engine_read, read, "{days:?}");
        for (a, b) in engine.iter().zip(&ours) {
            assert_eq!(a.from_dictionaries, b.from_dictionaries, "{days:?}");
        }
        assert_eq!(
            ours[0].from_dictionaries,
            !read.contains(&"category"),
            "{days:?}"
        );
        assert_eq!(
            ours[1].from_dictionaries,
            !read.contains(&"code"),
            "{days:?}"
        );
        assert!(!ours[0].from_metadata && !ours[1].from_metadata);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_rows_are_counted_by_a_scan_and_deleted_values_still_count_as_present() {
    let model = rows();
    let merge_on_read =
        HashMap::from([("write.delete.mode".to_string(), "merge-on-read".to_string())]);
    let (_dir, lh) = setup(&model, merge_on_read).await;
    // Every failing category of d3 and the first rows of d1 are deleted (position delete
    // files: the rest of each file stays).
    let deleted =
        |r: &Row| r.category.as_deref() == Some("nope") || (r.day == "d1" && r.id < 6_000);
    let deletes = [
        vec![Filter {
            column: "category".into(),
            op: FilterOp::Eq,
            values: vec![Literal::String("nope".into())],
        }],
        vec![Filter {
            column: "id".into(),
            op: FilterOp::Lt,
            values: vec![Literal::Int(6_000)],
        }],
    ];
    let mut rows_deleted = 0;
    for filters in deletes {
        let result = lh
            .delete("raw.q", &filters, MAIN, HashMap::new())
            .await
            .unwrap();
        rows_deleted += result.rows_deleted;
    }
    assert_eq!(
        rows_deleted,
        model.iter().filter(|r| deleted(r)).count() as u64
    );
    assert!(
        plan(&lh, &["d1"])
            .await
            .data_files()
            .all(|(_, deletes, _)| deletes > 0)
    );

    for days in [&["d1"][..], &["d1", "d3"][..]] {
        let (ours, columns) = settled(plan(&lh, days).await, &checks()).await;
        let theirs = scanned(plan(&lh, days).await, &checks()).await;
        let rows: Vec<&Row> = model
            .iter()
            .filter(|r| days.contains(&r.day) && !deleted(r))
            .collect();
        agree(&ours, &theirs, &rows);
        assert!(ours[1].from_dictionaries, "{days:?}");
        // The engine's own pass reads the same columns: the first one for the count while the
        // pages are judged, then the failing categories.
        let (engine, engine_read) = checked(plan(&lh, days).await, &checks()).await;
        agree(&engine, &theirs, &rows);
        assert_eq!(engine_read, columns, "{days:?}");
        // The rows left are counted by a scan of the first column (the settled ones are not
        // read). d3's dictionary still holds the deleted `nope`: its categories are scanned
        // and pass.
        match days.len() {
            1 => {
                assert!(ours[0].from_dictionaries);
                assert_eq!(columns, ["id"]);
            }
            _ => {
                assert!(!ours[0].from_dictionaries);
                assert_eq!(columns, ["id", "category"]);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_check_that_also_reads_the_column_keeps_it_scanned() {
    let model = rows();
    let (_dir, lh) = setup(&model, HashMap::new()).await;
    let checks = json!([
        {"kind": "accepted_values", "column": "category", "values": ACCEPTED},
        {"kind": "not_null", "columns": ["category"]},
        // Accepted values of another type cannot judge strings: the scan reports why.
        {"kind": "accepted_values", "column": "code", "values": [1, 2]},
    ]);
    let (ours, columns) = settled(plan(&lh, &["d1"]).await, &checks).await;
    let theirs = scanned(plan(&lh, &["d1"]).await, &checks).await;
    assert_eq!(columns, ["id", "category", "code"]);
    let nulls = model
        .iter()
        .filter(|r| r.day == "d1" && r.category.is_none())
        .count();
    assert_eq!(
        (ours[1].failed, theirs[1].failed),
        (nulls as u64, nulls as u64)
    );
    assert!(ours.iter().all(|o| !o.from_dictionaries));
    assert_eq!(ours[2].error, theirs[2].error);
    assert_eq!(
        (ours[2].failed, ours[2].total),
        (theirs[2].failed, theirs[2].total)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dictionary_size_property_sets_the_writers_limit_and_a_bad_value_is_refused() {
    let d1: Vec<Row> = rows().into_iter().filter(|r| r.day == "d1").collect();
    let (dir, lh) = setup_with(&d1, HashMap::new()).await;
    // phlo's default limit (256 KiB): d1's ~600 KB of distinct codes fall back to plain.
    assert!(!dictionary_encoded(dir.path(), "d1", "code"));
    assert!(dictionary_encoded(dir.path(), "d1", "category"));

    let bad = [(
        DICTIONARY_SIZE_PROPERTY.to_string(),
        Some("1MB".to_string()),
    )];
    let err = lh.set_properties("raw.q", MAIN, &bad).await.unwrap_err();
    assert!(
        matches!(err, phlo_core::Error::InvalidInput { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(DICTIONARY_SIZE_PROPERTY), "{err}");
}
