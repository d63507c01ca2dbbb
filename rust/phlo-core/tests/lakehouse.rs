//! End-to-end engine tests: create, append, scan with pruning, time travel, bad input.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{
    Array, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, TimeUnit};
use futures::TryStreamExt;
use phlo_core::Lakehouse;
use phlo_core::catalog::MAIN;
use phlo_core::tables::{Filter, FilterOp, Literal, ScanOptions};

const DAY_US: i64 = 86_400_000_000;

fn events_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("category", DataType::Utf8, true),
        Field::new("value", DataType::Float64, true),
    ]))
}

/// `n` events spread over `days` days starting 2024-01-01.
fn events(start_id: i64, n: i64, days: i64) -> RecordBatch {
    let base = 19_723 * DAY_US; // 2024-01-01
    RecordBatch::try_new(
        events_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(start_id..start_id + n)),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    (0..n).map(|i| base + (i % days) * DAY_US + i),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| ["a", "b", "c"][i as usize % 3]),
            )),
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(|i| i as f64 * 0.5),
            )),
        ],
    )
    .unwrap()
}

fn ok(batch: RecordBatch) -> Vec<Result<RecordBatch, ArrowError>> {
    vec![Ok(batch)]
}

async fn read(
    lh: &Lakehouse,
    name: &str,
    options: ScanOptions,
) -> (Vec<RecordBatch>, usize, usize) {
    let plan = lh.scan(name, &options).await.unwrap();
    let (scanned, total) = (plan.files_scanned, plan.files_total);
    let batches = plan.into_stream().unwrap().try_collect().await.unwrap();
    (batches, scanned, total)
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_and_scan_round_trip_with_partition_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let lh = Lakehouse::open(dir.path()).unwrap();
    lh.catalog().create_namespace("raw").unwrap();
    lh.create_table(
        "raw.events",
        &events_schema(),
        &[("ts".into(), "day".into())],
        HashMap::new(),
        MAIN,
    )
    .await
    .unwrap();

    let first = lh
        .append("raw.events", ok(events(0, 300, 3)), "main", HashMap::new())
        .await
        .unwrap();
    assert_eq!(first.rows, 300);
    assert_eq!(first.files_added, 3, "one file per day partition");
    let second = lh
        .append(
            "raw.events",
            ok(events(300, 100, 1)),
            "main",
            HashMap::new(),
        )
        .await
        .unwrap();

    let (all, scanned, total) = read(&lh, "raw.events", ScanOptions::default()).await;
    assert_eq!(rows(&all), 400);
    assert_eq!((scanned, total), (4, 4));

    // Only the 2024-01-02 partition can hold these rows.
    let day2 = ScanOptions {
        filters: vec![Filter {
            column: "ts".into(),
            op: FilterOp::Between,
            values: vec![
                Literal::String("2024-01-02T00:00:00+00:00".into()),
                Literal::String("2024-01-02T23:59:59+00:00".into()),
            ],
        }],
        ..Default::default()
    };
    let (batches, scanned, total) = read(&lh, "raw.events", day2).await;
    assert_eq!(rows(&batches), 100);
    assert!(
        scanned < total,
        "pruning must skip files: {scanned} of {total}"
    );

    // Min/max pruning on a non-partition column, with exact row filtering.
    let by_id = ScanOptions {
        columns: Some(vec!["id".into()]),
        filters: vec![Filter {
            column: "id".into(),
            op: FilterOp::GtEq,
            values: vec![Literal::Int(300)],
        }],
        ..Default::default()
    };
    let (batches, scanned, _) = read(&lh, "raw.events", by_id).await;
    assert_eq!(rows(&batches), 100);
    assert_eq!(scanned, 1);
    assert_eq!(batches[0].num_columns(), 1);

    // Time travel to the first snapshot.
    let old = ScanOptions {
        snapshot_id: Some(first.snapshot_id),
        ..Default::default()
    };
    assert_eq!(rows(&read(&lh, "raw.events", old).await.0), 300);
    let table = lh.load_table("raw.events", "main").await.unwrap();
    let head = table.metadata.current_snapshot().unwrap();
    assert_eq!(head.snapshot_id(), second.snapshot_id);
    assert_eq!(head.summary().additional_properties["total-records"], "400");
    assert_eq!(
        head.summary().additional_properties["total-data-files"],
        "4"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_typed_and_leaves_the_table_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let lh = Lakehouse::open(dir.path()).unwrap();
    lh.catalog().create_namespace("raw").unwrap();
    lh.create_table("raw.events", &events_schema(), &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    lh.append("raw.events", ok(events(0, 10, 1)), "main", HashMap::new())
        .await
        .unwrap();

    // Missing required column.
    let no_id = events(0, 5, 1).project(&[1, 2, 3]).unwrap();
    let err = lh
        .append("raw.events", ok(no_id), "main", HashMap::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "schema");
    assert_eq!(err.location().column.as_deref(), Some("id"));
    assert_eq!(err.location().table.as_deref(), Some("raw.events"));

    // A value that cannot be cast.
    let bad = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)])),
        vec![Arc::new(StringArray::from(vec!["1", "not a number"]))],
    )
    .unwrap();
    let err = lh
        .append("raw.events", ok(bad), "main", HashMap::new())
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.location().column.as_deref()),
        ("schema", Some("id"))
    );

    // A good batch followed by a bad one: nothing of the good one may land.
    let stream = vec![
        Ok(events(100, 5, 1)),
        Err(ArrowError::ComputeError("source failed".into())),
    ];
    assert!(
        lh.append("raw.events", stream, "main", HashMap::new())
            .await
            .is_err()
    );

    // Empty input and unknown table.
    let empty = events(0, 0, 1);
    assert_eq!(
        lh.append("raw.events", ok(empty), "main", HashMap::new())
            .await
            .unwrap_err()
            .code(),
        "empty_input"
    );
    let err = lh
        .append("raw.nope", ok(events(0, 1, 1)), "main", HashMap::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "no_such_table");

    let (batches, _, _) = read(&lh, "raw.events", ScanOptions::default()).await;
    assert_eq!(rows(&batches), 10);
    let ids = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(ids.values().iter().copied().max(), Some(9));
    assert_eq!(ids.null_count(), 0);
    let data_dir = dir.path().join("warehouse/raw.db/events/data");
    assert_eq!(
        std::fs::read_dir(data_dir).unwrap().count(),
        1,
        "failed writes leave no files"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let lh = Arc::new(Lakehouse::open(dir.path()).unwrap());
    lh.catalog().create_namespace("raw").unwrap();
    lh.create_table("raw.events", &events_schema(), &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    // Each writer has its own catalog connection, as separate processes would.
    let tasks = (0..4).map(|w| {
        let root = dir.path().to_path_buf();
        tokio::spawn(async move {
            let lh = Lakehouse::open(&root).unwrap();
            for i in 0..3 {
                lh.append(
                    "raw.events",
                    ok(events((w * 3 + i) * 10, 10, 1)),
                    "main",
                    HashMap::new(),
                )
                .await
                .unwrap();
            }
        })
    });
    for task in tasks.collect::<Vec<_>>() {
        task.await.unwrap();
    }
    let (batches, _, total) = read(&lh, "raw.events", ScanOptions::default()).await;
    assert_eq!(rows(&batches), 120, "no lost appends");
    assert_eq!(total, 12);
}
