//! Reads stream a data file row group by row group: compaction, a delete that rewrites part of a
//! file, and a scan hold about one row group and one batch at a time, not the file. Memory is
//! observed structurally, by a counting allocator: the peak of bytes allocated during each
//! operation, above what was allocated before it, must stay well below the size of the file
//! read (a file of many row groups; whole-file reads need more than the file itself).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow_array::{Array, BinaryArray, Int64Array, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use futures::StreamExt;
use phlo_core::Lakehouse;
use phlo_core::catalog::MAIN;
use phlo_core::compact::CompactOptions;
use phlo_core::tables::commit::live_data_files;
use phlo_core::tables::{Filter, FilterOp, Literal, ScanOptions};

/// Bytes allocated now, and the most allocated at once since the last [`reset_peak`].
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                let grown = new_size - layout.size();
                let now = CURRENT.fetch_add(grown, Ordering::Relaxed) + grown;
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `work` and returns what it returned and the most bytes it held at once beyond what was
/// allocated when it started.
async fn peak_of<T>(work: impl std::future::Future<Output = T>) -> (T, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = work.await;
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

const TABLE: &str = "raw.big";
/// Sixteen row groups of the writer's 128 Ki rows (an append may split them into a few files).
const ROWS: i64 = 1 << 21;

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("payload", DataType::Binary, false),
    ]))
}

/// Rows `ids` with a payload that does not compress, so a file is about as large as its rows
/// decoded.
fn rows(ids: std::ops::Range<i64>) -> Vec<Result<RecordBatch, ArrowError>> {
    let mix = |i: i64| {
        let mut x = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    };
    let chunk = 64 * 1024;
    (ids.start..ids.end)
        .step_by(chunk)
        .map(|start| {
            let end = (start + chunk as i64).min(ids.end);
            RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(Int64Array::from_iter_values(start..end)),
                    Arc::new(BinaryArray::from_iter_values((start..end).map(|i| {
                        [0, 1, 2, 3]
                            .map(|lane| mix(i + (lane << 40)))
                            .map(u64::to_le_bytes)
                            .concat()
                    }))),
                ],
            )
        })
        .collect()
}

fn compact_all() -> CompactOptions {
    CompactOptions {
        target_file_size: Some(1 << 30),
        filters: vec![],
        properties: HashMap::new(),
    }
}

/// A table whose [`ROWS`] rows are in one large file (appends spread rows over a file per
/// core; compaction joins them); returns the file's size in bytes.
async fn setup() -> (tempfile::TempDir, Lakehouse, u64) {
    let dir = tempfile::tempdir().unwrap();
    let lh = Lakehouse::open(dir.path()).unwrap();
    lh.catalog().create_namespace("raw").unwrap();
    lh.create_table(TABLE, &schema(), &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    lh.append(TABLE, rows(0..ROWS), MAIN, HashMap::new())
        .await
        .unwrap();
    lh.compact(TABLE, MAIN, &compact_all()).await.unwrap();
    let table = lh.load_table(TABLE, MAIN).await.unwrap();
    let files = live_data_files(lh.file_io(), &table, MAIN).await.unwrap();
    assert_eq!(files.len(), 1);
    (dir, lh, files[0].file_size_in_bytes())
}

async fn ids(lh: &Lakehouse) -> Vec<i64> {
    let plan = lh.scan(TABLE, &ScanOptions::default()).await.unwrap();
    let mut stream = plan.into_stream().unwrap();
    let mut ids = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.unwrap();
        let column = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        ids.extend(column.values().iter().copied());
    }
    ids.sort_unstable();
    ids
}

/// The bound: well below the largest file read (eight row groups or more), well above one row
/// group, a batch and the writer's buffer.
fn bound(file_bytes: u64) -> usize {
    (file_bytes / 2) as usize
}

// One test: the allocator's counters are shared by every thread of the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_delete_and_scan_hold_a_row_group_not_the_file() {
    let (_dir, lh, file_bytes) = setup().await;
    assert!(
        file_bytes > 64 << 20,
        "the large file is {file_bytes} bytes"
    );

    // A scan that drops each batch as it comes.
    let (rows, scan_peak) = peak_of(async {
        let plan = lh.scan(TABLE, &ScanOptions::default()).await.unwrap();
        let mut stream = plan.into_stream().unwrap();
        let mut rows = 0;
        while let Some(batch) = stream.next().await {
            rows += batch.unwrap().num_rows() as i64;
        }
        rows
    })
    .await;
    assert_eq!(rows, ROWS);

    // Compaction rewrites the large file with a small one (both below 3/4 of the target).
    lh.append(TABLE, self::rows(ROWS..ROWS + 10), MAIN, HashMap::new())
        .await
        .unwrap();
    let (compacted, compact_peak) = peak_of(lh.compact(TABLE, MAIN, &compact_all())).await;
    let compacted = compacted.unwrap();
    assert_eq!(compacted.files_rewritten, 2);
    assert_eq!(compacted.files_added, 1);
    assert_eq!(compacted.rows, (ROWS + 10) as u64);

    // A delete of a few rows rewrites the (now compacted) file without them.
    let filter = Filter {
        column: "id".into(),
        op: FilterOp::Lt,
        values: vec![Literal::Int(1000)],
    };
    let (deleted, delete_peak) = peak_of(lh.delete(TABLE, &[filter], MAIN, HashMap::new())).await;
    let deleted = deleted.unwrap();
    assert_eq!(deleted.rows_deleted, 1000);
    assert_eq!(ids(&lh).await, (1000..ROWS + 10).collect::<Vec<_>>());

    eprintln!(
        "file {file_bytes} B; peak above baseline: scan {scan_peak} B, compaction \
         {compact_peak} B, delete {delete_peak} B"
    );
    for (what, peak) in [
        ("scan", scan_peak),
        ("compaction", compact_peak),
        ("delete", delete_peak),
    ] {
        assert!(
            peak < bound(file_bytes),
            "{what} held {peak} bytes at once reading a file of {file_bytes} bytes"
        );
    }
}
