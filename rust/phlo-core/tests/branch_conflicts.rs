//! Publishing a branch when both sides rewrote one data file: a copy-on-write rewrite copies
//! the rows it did not change, so the conflict names the file and each side's snapshot, not a
//! key both copies only carried over; a key is named when both sides changed its row. Written
//! merge-on-read, upserts of different rows rebase.

use std::collections::HashMap;

use phlo_core::Lakehouse;
use phlo_core::catalog::{CommitMeta, MAIN, RefKind};
use phlo_core::merge::{MergeOptions, WriteMode};

use crate::model::{Model, contents, model_of, new_table, rows, schema, upsert};

/// `raw.t` holding ids 0–29 in three files (three appends), and branch `dev` forked from it.
async fn seeded() -> (tempfile::TempDir, Lakehouse, Model) {
    let (dir, lh) = new_table(&schema()).await;
    let mut seed = Vec::new();
    for start in [0, 10, 20] {
        let batch: Vec<(i64, &str)> = (start..start + 10).map(|id| (id, "seed")).collect();
        lh.append("raw.t", rows(&batch), MAIN, HashMap::new())
            .await
            .unwrap();
        seed.extend(batch);
    }
    lh.catalog()
        .create_ref("dev", RefKind::Branch, MAIN)
        .unwrap();
    (dir, lh, model_of(&seed))
}

/// Upserts by id on `ref_name`; the snapshot committed.
async fn upsert_on(lh: &Lakehouse, ref_name: &str, batch: &[(i64, &str)], mode: WriteMode) -> i64 {
    let options = MergeOptions {
        ref_name: ref_name.into(),
        ..upsert(Some(mode))
    };
    let merged = lh.merge("raw.t", rows(batch), &options).await.unwrap();
    merged.snapshot_id
}

fn assert_mentions(message: &str, parts: &[String]) {
    for part in parts {
        assert!(message.contains(part.as_str()), "{part} not in: {message}");
    }
}

/// dev upserts 5 and 99, main appends 300 then upserts 0 and 500: both rewrote the file of ids
/// 0–9, and every other id of it is in both copies without either side having written it.
async fn both_upsert(lh: &Lakehouse, mode: WriteMode) -> (i64, i64) {
    let ours = upsert_on(lh, "dev", &[(5, "dev"), (99, "dev")], mode).await;
    lh.append("raw.t", rows(&[(300, "main")]), MAIN, HashMap::new())
        .await
        .unwrap();
    let theirs = upsert_on(lh, MAIN, &[(0, "main"), (500, "main")], mode).await;
    (ours, theirs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_rewriting_a_file_conflict_naming_it_and_both_snapshots() {
    let (_dir, lh, _) = seeded().await;
    let (ours, theirs) = both_upsert(&lh, WriteMode::CopyOnWrite).await;
    let before = contents(&lh, "raw.t", MAIN).await;
    let err = lh
        .merge_branch("dev", MAIN, &CommitMeta::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "commit_conflict", "{err}");
    let message = err.to_string();
    let expected = [
        "raw.t".to_string(),
        "both sides rewrote data file".into(),
        ".parquet".into(),
        format!("the branch in snapshot {ours} (overwrite, merge by id)"),
        format!("main in snapshot {theirs} (overwrite, merge by id)"),
        "re-run the branch's writes on a branch forked from main".into(),
        "merge-on-read".into(),
    ];
    assert_mentions(&message, &expected);
    // Ids 1–4 and 6–9 were only copied by both rewrites: no key is blamed.
    assert!(!message.contains("unique key"), "{message}");
    assert!(
        message.ends_with("leave the file in place and rebase"),
        "{message}"
    );
    assert_eq!(message.matches("To publish").count(), 1, "{message}");
    assert_eq!(contents(&lh, "raw.t", MAIN).await, before, "nothing merged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_upserts_written_merge_on_read_rebase() {
    let (_dir, lh, mut expected) = seeded().await;
    both_upsert(&lh, WriteMode::MergeOnRead).await;
    let merged = lh
        .merge_branch("dev", MAIN, &CommitMeta::default())
        .await
        .unwrap();
    assert_eq!(merged.rebased, vec!["raw.t".to_string()]);
    for (id, by) in [
        (5, "dev"),
        (99, "dev"),
        (300, "main"),
        (0, "main"),
        (500, "main"),
    ] {
        expected.insert(id, by.to_string());
    }
    assert_eq!(contents(&lh, "raw.t", MAIN).await, expected);
}

/// Both sides upsert id 7 (and each a key of its own): the conflict names the file, both
/// snapshots and that key, the one both changed, not one both copies only carried over;
/// merge-on-read is not offered (the same row was upserted on both sides).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_upserting_one_key_of_a_file_conflict_naming_that_key() {
    let (_dir, lh, _) = seeded().await;
    let cow = WriteMode::CopyOnWrite;
    let ours = upsert_on(&lh, "dev", &[(5, "dev"), (7, "dev")], cow).await;
    let theirs = upsert_on(&lh, MAIN, &[(0, "main"), (7, "main")], cow).await;
    let before = contents(&lh, "raw.t", MAIN).await;
    let err = lh
        .merge_branch("dev", MAIN, &CommitMeta::default())
        .await
        .unwrap_err();
    let message = err.to_string();
    let expected = [
        "both sides rewrote data file".to_string(),
        format!("the branch in snapshot {ours} (overwrite, merge by id)"),
        format!("main in snapshot {theirs} (overwrite, merge by id)"),
        r#"both changed the row of unique key (id) {"id":7} in it"#.into(),
    ];
    assert_mentions(&message, &expected);
    assert!(!message.contains("merge-on-read"), "{message}");
    assert!(
        message.ends_with("re-run the branch's writes on a branch forked from main now"),
        "{message}"
    );
    assert_eq!(contents(&lh, "raw.t", MAIN).await, before, "nothing merged");
}
