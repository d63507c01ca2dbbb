//! Scans read a data file row group by row group on every worker (the worker that opens a
//! file leaves its other row groups to the others): a table of one phlo-written file of
//! several row groups reads back exactly its model — whole, filtered, in small batches, after
//! merge-on-read deletes — no row lost or read twice. (Files other engines wrote, with their
//! position and equality delete files, are covered in `delete_files.rs`.)

use std::collections::HashMap;

use futures::TryStreamExt;
use parquet::file::reader::{FileReader, SerializedFileReader};
use phlo_core::Lakehouse;
use phlo_core::catalog::MAIN;
use phlo_core::merge::WriteMode;
use phlo_core::tables::{Filter, FilterOp, Literal, ScanOptions};

use crate::model::{Model, new_table, rows, scan_model, schema};

/// More rows than two of phlo's row groups (128Ki rows each) hold.
const ROWS: i64 = 300_000;

fn between(low: i64, high: i64) -> Filter {
    Filter {
        column: "id".into(),
        op: FilterOp::Between,
        values: vec![Literal::Int(low), Literal::Int(high)],
    }
}

/// Row groups of each data file the scan with `options` plans to read.
async fn row_groups(lh: &Lakehouse, options: &ScanOptions) -> Vec<usize> {
    let plan = lh.scan("raw.t", options).await.unwrap();
    plan.data_file_paths()
        .map(|path| {
            let file = std::fs::File::open(path.trim_start_matches("file://")).unwrap();
            SerializedFileReader::new(file)
                .unwrap()
                .metadata()
                .num_row_groups()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_file_of_several_row_groups_reads_back_its_model() {
    let dir = tempfile::tempdir().unwrap();
    let lh = Lakehouse::open(dir.path()).unwrap();
    lh.catalog().create_namespace("raw").unwrap();
    // One partition (ids truncated to 0): one writer, so one file (unpartitioned rows are
    // spread over parallel writers).
    let partition = [("id".to_string(), "truncate[1000000]".to_string())];
    lh.create_table("raw.t", &schema(), &partition, HashMap::new(), MAIN)
        .await
        .unwrap();
    let names: Vec<(i64, String)> = (0..ROWS).map(|i| (i, format!("n{}", i % 977))).collect();
    let data: Vec<(i64, &str)> = names.iter().map(|(i, n)| (*i, n.as_str())).collect();
    lh.append("raw.t", rows(&data), MAIN, HashMap::new())
        .await
        .unwrap();
    let mut model: Model = names.into_iter().collect();
    // Fewer files than workers: the case row groups are split for.
    assert_eq!(row_groups(&lh, &ScanOptions::default()).await, [3]);

    assert_eq!(
        scan_model(&lh, "raw.t", &ScanOptions::default()).await,
        model
    );
    // Small batches, and a filter whose rows span the row-group boundaries.
    let filtered = ScanOptions {
        filters: vec![between(100_000, 270_000)],
        batch_size: Some(10_000),
        ..Default::default()
    };
    let expected: Model = model
        .range(100_000..=270_000)
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    assert_eq!(scan_model(&lh, "raw.t", &filtered).await, expected);

    // Merge-on-read deletes of rows in every row group, one run crossing a boundary.
    for (low, high) in [
        (5, 9),
        (131_000, 131_100),
        (262_100, 262_200),
        (299_990, 299_999),
    ] {
        lh.delete_with_mode(
            "raw.t",
            &[between(low, high)],
            MAIN,
            HashMap::new(),
            Some(WriteMode::MergeOnRead),
        )
        .await
        .unwrap();
        model.retain(|k, _| !(low..=high).contains(k));
    }
    let plan = lh.scan("raw.t", &ScanOptions::default()).await.unwrap();
    assert!(plan.data_files().all(|(_, deletes, _)| deletes > 0));
    assert_eq!(
        scan_model(&lh, "raw.t", &ScanOptions::default()).await,
        model
    );
    let expected: Model = model
        .range(100_000..=270_000)
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    assert_eq!(scan_model(&lh, "raw.t", &filtered).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_data_file_ends_the_scan_with_an_error() {
    let (_dir, lh) = new_table(&schema()).await;
    for start in [0, 10] {
        let data: Vec<(i64, &str)> = (start..start + 10).map(|i| (i, "x")).collect();
        lh.append("raw.t", rows(&data), MAIN, HashMap::new())
            .await
            .unwrap();
    }
    let plan = lh.scan("raw.t", &ScanOptions::default()).await.unwrap();
    let gone = plan.data_file_paths().next().unwrap().to_string();
    std::fs::remove_file(gone.trim_start_matches("file://")).unwrap();
    // The other workers do not wait for the file's row groups forever: the stream ends, with
    // the error naming the file.
    let read: Result<Vec<_>, _> = plan.into_stream().unwrap().try_collect().await;
    let error = read.unwrap_err().to_string();
    let name = gone.rsplit('/').next().unwrap();
    assert!(error.contains(name), "{error}");
}
