//! A write that fails for good after it began writing data or delete files leaves none of
//! them behind (nothing references them; on a REST catalog nothing would ever remove them),
//! and the table keeps its rows: refused at commit (here a table property the commit cannot
//! read), or failing in the middle of writing (here a data file it reads turns out corrupt).
//! For append, merge and delete in both write modes, and compaction. The injected failures of
//! the commit itself, and `CommitStateUnknown` keeping the files, are in
//! tests/test_write_cleanup.py (failpoints are process-wide, these tests run in parallel).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use phlo_core::Lakehouse;
use phlo_core::catalog::MAIN;
use phlo_core::compact::CompactOptions;
use phlo_core::error::{Error, Result};
use phlo_core::merge::WriteMode;
use phlo_core::tables::commit::live_data_files;
use phlo_core::tables::{Filter, FilterOp, Literal};

use crate::model::{Model, contents, model_of, new_table, rows, schema, upsert};
use crate::support::files_under;

#[derive(Debug, Clone, Copy)]
enum Write {
    Append,
    Merge(WriteMode),
    Delete(WriteMode),
    Compact,
}

const WRITES: [Write; 6] = [
    Write::Append,
    Write::Merge(WriteMode::CopyOnWrite),
    Write::Merge(WriteMode::MergeOnRead),
    Write::Delete(WriteMode::CopyOnWrite),
    Write::Delete(WriteMode::MergeOnRead),
    Write::Compact,
];

/// Each write touches every data file of the table [`three_files`] makes: the merge and the
/// delete match some rows of each (a file is rewritten, or gets a position-delete file).
async fn run(lh: &Lakehouse, write: Write) -> Result<()> {
    match write {
        Write::Append => {
            let added = rows(&[(100, "new"), (101, "new")]);
            lh.append("raw.t", added, MAIN, HashMap::new()).await?;
        }
        Write::Merge(mode) => {
            let batch = rows(&[(1, "m"), (11, "m"), (21, "m"), (100, "m")]);
            lh.merge("raw.t", batch, &upsert(Some(mode))).await?;
        }
        Write::Delete(mode) => {
            let thirds = Filter {
                column: "name".into(),
                op: FilterOp::Eq,
                values: vec![Literal::String("third".into())],
            };
            lh.delete_with_mode("raw.t", &[thirds], MAIN, HashMap::new(), Some(mode))
                .await?;
        }
        Write::Compact => {
            let options = CompactOptions {
                target_file_size: Some(1 << 30),
                filters: vec![],
                properties: HashMap::new(),
            };
            lh.compact("raw.t", MAIN, &options).await?;
        }
    }
    Ok(())
}

/// `raw.t` with ids 0..30 in three data files (one per append), every third row named
/// "third"; and the data file the last append wrote.
async fn three_files() -> (tempfile::TempDir, Lakehouse, Model, PathBuf) {
    let (dir, lh) = new_table(&schema()).await;
    let mut all = Vec::new();
    let mut newest = Vec::new();
    for file in 0..3 {
        let before = table_files(dir.path());
        let part: Vec<(i64, &str)> = (file * 10..file * 10 + 10)
            .map(|id| (id, if id % 3 == 0 { "third" } else { "other" }))
            .collect();
        lh.append("raw.t", rows(&part), MAIN, HashMap::new())
            .await
            .unwrap();
        all.extend(part);
        newest = table_files(dir.path());
        newest.retain(|f| !before.contains(f) && f.extension().is_some_and(|e| e == "parquet"));
    }
    assert_eq!(newest.len(), 1, "{newest:?}");
    (dir, lh, model_of(&all), newest.remove(0))
}

fn table_files(dir: &Path) -> Vec<PathBuf> {
    files_under(&dir.join("warehouse/raw.db/t"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_its_commit_refuses_removes_every_file_it_wrote() {
    for write in WRITES {
        let (dir, lh, model, _) = three_files().await;
        // Read only when the commit writes its manifests: the data files are written by then.
        let bad = [(
            "commit.manifest.min-count-to-merge".to_string(),
            Some("many".to_string()),
        )];
        lh.set_properties("raw.t", MAIN, &bad).await.unwrap();
        let before = table_files(dir.path());
        let err = run(&lh, write).await.unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput { message, .. } if message.contains("min-count")),
            "{write:?}: {err}"
        );
        assert_eq!(table_files(dir.path()), before, "{write:?} left files");
        assert_eq!(contents(&lh, "raw.t", MAIN).await, model, "{write:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_failing_while_it_writes_removes_the_files_it_began() {
    // The append fails on its input's second batch, the others on the last data file they
    // read (corrupt): by then each has begun files for what it read before. Merges and
    // deletes read the live files in manifest order, compaction in commit order (the oldest
    // file first: the newest is read last).
    let mut left = Vec::new();
    for write in WRITES {
        let (dir, lh, model, newest) = three_files().await;
        let last = match write {
            Write::Compact => newest,
            _ => {
                let table = lh.load_table("raw.t", MAIN).await.unwrap();
                let live = live_data_files(lh.file_io(), &table, MAIN).await.unwrap();
                let path = live.last().unwrap().file_path().to_string();
                PathBuf::from(path.strip_prefix("file://").unwrap_or(&path))
            }
        };
        let before = table_files(dir.path());
        let err = match write {
            Write::Append => {
                let mut input = rows(&[(100, "new")]);
                input.push(Err(arrow_schema::ArrowError::ComputeError(
                    "the source failed".into(),
                )));
                lh.append("raw.t", input, MAIN, HashMap::new())
                    .await
                    .unwrap_err()
            }
            _ => {
                let size = std::fs::metadata(&last).unwrap().len() as usize;
                std::fs::write(&last, vec![7u8; size]).unwrap();
                run(&lh, write).await.unwrap_err()
            }
        };
        assert!(!err.commit_may_have_landed(), "{write:?}: {err}");
        let after = table_files(dir.path());
        let new: Vec<&PathBuf> = after.iter().filter(|f| !before.contains(f)).collect();
        if !new.is_empty() || after.len() != before.len() {
            left.push(format!("{write:?}: {new:?}"));
        }
        if let Write::Append = write {
            assert_eq!(contents(&lh, "raw.t", MAIN).await, model);
        }
    }
    assert!(left.is_empty(), "files left behind:\n{}", left.join("\n"));
}

/// A merge-on-read merge whose future is dropped mid-way (a Ctrl-C in Python, a timeout, a
/// failing sibling in a transaction) leaves none of its files: the batch's rows were being
/// written on a task of their own, which is aborted, and what it wrote is removed in the
/// background (the test waits, bounded). The merge is polled by hand, so it cannot commit:
/// it is dropped as soon as a file of it exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_on_read_merge_dropped_mid_way_leaves_none_of_its_files() {
    let (dir, lh, model, _) = three_files().await;
    let before = table_files(dir.path());
    // Updates a row of every data file, and inserts enough rows to keep the task writing.
    let owned: Vec<(i64, String)> = (0..200_000).map(|id| (id, format!("new {id}"))).collect();
    let refs: Vec<(i64, &str)> = owned.iter().map(|(id, v)| (*id, v.as_str())).collect();
    let options = upsert(Some(WriteMode::MergeOnRead));
    let mut merging = Box::pin(lh.merge("raw.t", rows(&refs), &options));
    let mut began = false;
    for _ in 0..3000 {
        let polled = futures::poll!(merging.as_mut());
        assert!(
            polled.is_pending(),
            "the merge finished before a file of it existed"
        );
        if table_files(dir.path()).len() > before.len() {
            began = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(began, "the merge wrote no file");
    drop(merging);
    for _ in 0..3000 {
        if table_files(dir.path()) == before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(table_files(dir.path()), before, "files left behind");
    assert_eq!(contents(&lh, "raw.t", MAIN).await, model);
}
