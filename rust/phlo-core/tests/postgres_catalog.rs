//! The versioned catalog on a real PostgreSQL: the catalog's contract (compare-and-swap,
//! branches, tags, merges, the log), the engine on top of it (appends, branch merges, a
//! transaction of two tables, conflicts), many writers at once, and connection failures.
#![cfg(feature = "postgres")]

use std::collections::HashMap;
use std::sync::Arc;

use crate::support::files_under;
use crate::support::postgres::{PASSWORD, Server};
use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use futures::TryStreamExt;
use phlo_core::Lakehouse;
use phlo_core::catalog::{Catalog, CommitMeta, MAIN, MergeStep, RefKind, TableIdent};
use phlo_core::tables::{Filter, FilterOp, Literal, ScanOptions};

fn t(name: &str) -> TableIdent {
    TableIdent {
        namespace: "raw".into(),
        name: name.into(),
    }
}

fn meta() -> CommitMeta {
    CommitMeta::default()
}

#[test]
fn refs_merges_tags_and_the_log() {
    let server = Server::start();
    let catalog = Catalog::connect(&server.url()).unwrap();
    catalog.create_namespace("raw").unwrap();
    assert_eq!(
        catalog.create_namespace("raw").unwrap_err().code(),
        "namespace_already_exists"
    );
    catalog
        .create_table_on(MAIN, &t("a"), "a0", &meta())
        .unwrap();
    catalog
        .create_table_on(MAIN, &t("b"), "b0", &meta())
        .unwrap();
    let again = catalog.create_table_on(MAIN, &t("a"), "a9", &meta());
    assert_eq!(again.unwrap_err().code(), "table_already_exists");
    assert_eq!(catalog.list_tables("raw").unwrap(), vec![t("a"), t("b")]);
    // A second connection sees the same catalog (and the layout is not created twice).
    let other = Catalog::connect(&server.url()).unwrap();
    assert_eq!(other.metadata_location(&t("a")).unwrap(), "a0");

    catalog.create_ref("dev", RefKind::Branch, MAIN).unwrap();
    let dev_a = |from: &str, to: &str| {
        catalog
            .swap_metadata_location_on("dev", &t("a"), from, to, "commit a", &meta())
            .unwrap()
    };
    assert!(dev_a("a0", "a1"));
    assert!(
        !dev_a("a0", "a2"),
        "a stale compare-and-swap changes nothing"
    );
    assert_eq!(
        catalog.metadata_location(&t("a")).unwrap(),
        "a0",
        "main isolated"
    );

    // Fast-forward merge of dev into main.
    let steps: Vec<MergeStep> = catalog
        .changed_tables("dev", MAIN)
        .unwrap()
        .into_iter()
        .map(MergeStep::FastForward)
        .collect();
    let merged = catalog.apply_merge("dev", MAIN, &steps, &meta()).unwrap();
    assert_eq!(merged.unwrap().fast_forwarded, vec!["raw.a".to_string()]);
    assert_eq!(catalog.metadata_location(&t("a")).unwrap(), "a1");

    // A merge planned before the target moved applies nothing, on no table.
    assert!(dev_a("a1", "a3"));
    assert!(
        catalog
            .swap_metadata_location_on("dev", &t("b"), "b0", "b1", "commit b", &meta())
            .unwrap()
    );
    let steps: Vec<MergeStep> = catalog
        .changed_tables("dev", MAIN)
        .unwrap()
        .into_iter()
        .map(MergeStep::FastForward)
        .collect();
    assert_eq!(steps.len(), 2);
    assert!(
        other
            .swap_metadata_location_on(MAIN, &t("b"), "b0", "b-main", "other", &meta())
            .unwrap()
    );
    assert_eq!(
        catalog.apply_merge("dev", MAIN, &steps, &meta()).unwrap(),
        None
    );
    assert_eq!(catalog.metadata_location(&t("a")).unwrap(), "a1");

    // Tags are immutable; diffs compare pointers.
    catalog.create_ref("v1", RefKind::Tag, MAIN).unwrap();
    let on_tag = catalog.swap_metadata_location_on("v1", &t("a"), "a1", "x", "m", &meta());
    assert_eq!(on_tag.unwrap_err().code(), "invalid_input");
    let dup = catalog.create_ref("v1", RefKind::Tag, MAIN).unwrap_err();
    assert!(dup.to_string().contains("already exists"), "{dup}");
    assert_eq!(catalog.list_refs(RefKind::Tag).unwrap()[0].name, "v1");
    let diff = catalog.diff_refs(MAIN, "dev").unwrap();
    assert_eq!(diff.changed, vec!["raw.a".to_string(), "raw.b".to_string()]);

    // The log: newest first, per ref, with the tables each commit moved.
    let log = catalog.log(Some("dev"), 10).unwrap();
    let messages: Vec<&str> = log.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "commit b",
            "commit a",
            "commit a",
            "create branch dev from main"
        ]
    );
    let main_log = catalog.log(Some(MAIN), 10).unwrap();
    assert_eq!(main_log[0].message, "other");
    let merge = &main_log[1];
    assert!(
        merge
            .message
            .starts_with("merge dev into main: 1 fast-forwarded"),
        "{merge:?}"
    );
    assert_eq!(merge.tables, vec!["raw.a".to_string()]);
    let point = catalog.commit_point(&merge.commit_id, &t("a")).unwrap();
    assert_eq!(point.metadata_location.as_deref(), Some("a1"));
    assert!(catalog.logged_metadata_location("a3").unwrap());
    assert!(!catalog.logged_metadata_location("a2").unwrap());

    // Internal branches are unlisted; deleting a branch removes its pointers.
    let tx = catalog.create_internal_branch("tx/", MAIN).unwrap();
    assert_eq!(catalog.ref_kind(&tx).unwrap(), Some(RefKind::Branch));
    assert!(
        catalog
            .list_refs(RefKind::Branch)
            .unwrap()
            .iter()
            .all(|r| r.name == "dev")
    );
    catalog.delete_branch("dev").unwrap();
    assert_eq!(catalog.ref_kind("dev").unwrap(), None);
    assert_eq!(catalog.drop_table_on(MAIN, &t("b")).unwrap(), "b-main");
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("who", DataType::Utf8, true),
    ]))
}

fn rows(ids: std::ops::Range<i64>, who: &str) -> Vec<Result<RecordBatch, ArrowError>> {
    let n = ids.end - ids.start;
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(ids)),
            Arc::new(StringArray::from_iter_values((0..n).map(|_| who))),
        ],
    )
    .unwrap();
    vec![Ok(batch)]
}

async fn ids(lh: &Lakehouse, name: &str, ref_name: &str) -> Vec<i64> {
    let options = ScanOptions {
        ref_name: Some(ref_name.into()),
        ..Default::default()
    };
    let batches: Vec<RecordBatch> = lh
        .scan(name, &options)
        .await
        .unwrap()
        .into_stream()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            col.values().to_vec()
        })
        .collect();
    ids.sort();
    ids
}

async fn connect(server: &Server, warehouse: &std::path::Path) -> Lakehouse {
    let warehouse = format!("file://{}", warehouse.display());
    Lakehouse::connect(&server.url(), &warehouse, &HashMap::new())
        .await
        .unwrap()
}

async fn create(lh: &Lakehouse, name: &str) {
    lh.create_table(name, &schema(), &[], HashMap::new(), MAIN)
        .await
        .unwrap();
}

/// On a current-thread runtime: the blocking client must not start its runtime inside it.
#[tokio::test(flavor = "current_thread")]
async fn the_engine_commits_branches_merges_and_transactions() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let lh = connect(&server, dir.path()).await;
    lh.catalog().create_namespace("raw").unwrap();
    create(&lh, "raw.a").await;
    create(&lh, "raw.b").await;
    lh.append("raw.a", rows(0..10, "main"), MAIN, HashMap::new())
        .await
        .unwrap();

    // A branch sees main's rows; its writes stay there until merged.
    lh.catalog()
        .create_ref("dev", RefKind::Branch, MAIN)
        .unwrap();
    lh.append("raw.a", rows(10..15, "dev"), "dev", HashMap::new())
        .await
        .unwrap();
    assert_eq!(ids(&lh, "raw.a", MAIN).await, (0..10).collect::<Vec<_>>());
    // main moves too: the merge rebases dev's append onto it.
    lh.append("raw.a", rows(100..102, "main"), MAIN, HashMap::new())
        .await
        .unwrap();
    let merged = lh.merge_branch("dev", MAIN, &meta()).await.unwrap();
    assert_eq!(merged.rebased, vec!["raw.a".to_string()]);
    let expected: Vec<i64> = (0..15).chain(100..102).collect();
    assert_eq!(ids(&lh, "raw.a", MAIN).await, expected);

    // A transaction of two tables: both land in one commit of main, or neither.
    let tx = lh.catalog().create_internal_branch("tx/", MAIN).unwrap();
    lh.append("raw.a", rows(20..22, "tx"), &tx, HashMap::new())
        .await
        .unwrap();
    lh.append("raw.b", rows(0..3, "tx"), &tx, HashMap::new())
        .await
        .unwrap();
    assert!(ids(&lh, "raw.b", MAIN).await.is_empty());
    lh.merge_branch(&tx, MAIN, &meta()).await.unwrap();
    lh.catalog().delete_branch(&tx).unwrap();
    assert_eq!(ids(&lh, "raw.b", MAIN).await, vec![0, 1, 2]);
    let last = lh.catalog().log(Some(MAIN), 1).unwrap().remove(0);
    assert_eq!(last.tables, vec!["raw.a".to_string(), "raw.b".to_string()]);

    // Changed on both sides, and not only by appends: a conflict, and main is unchanged.
    lh.catalog()
        .create_ref("fix", RefKind::Branch, MAIN)
        .unwrap();
    let one = Filter {
        column: "id".into(),
        op: FilterOp::Eq,
        values: vec![Literal::Int(0)],
    };
    lh.delete("raw.a", &[one], "fix", HashMap::new())
        .await
        .unwrap();
    lh.append("raw.a", rows(200..201, "main"), MAIN, HashMap::new())
        .await
        .unwrap();
    let before = ids(&lh, "raw.a", MAIN).await;
    let err = lh.merge_branch("fix", MAIN, &meta()).await.unwrap_err();
    assert_eq!(err.code(), "commit_conflict", "{err}");
    assert!(err.to_string().contains("raw.a"), "{err}");
    assert_eq!(ids(&lh, "raw.a", MAIN).await, before);
}

/// A transaction whose block fails is discarded: its branch goes, with every file its writes
/// left (a table it created included), and main is unchanged.
#[tokio::test(flavor = "current_thread")]
async fn a_discarded_transaction_leaves_no_file_behind() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let lh = connect(&server, dir.path()).await;
    lh.catalog().create_namespace("raw").unwrap();
    create(&lh, "raw.a").await;
    lh.append("raw.a", rows(0..10, "main"), MAIN, HashMap::new())
        .await
        .unwrap();
    let before = files_under(dir.path());
    let tx = lh.catalog().create_internal_branch("tx/", MAIN).unwrap();
    lh.append("raw.a", rows(10..12, "tx"), &tx, HashMap::new())
        .await
        .unwrap();
    lh.create_table("raw.c", &schema(), &[], HashMap::new(), &tx)
        .await
        .unwrap();
    lh.append("raw.c", rows(0..3, "tx"), &tx, HashMap::new())
        .await
        .unwrap();
    assert_ne!(files_under(dir.path()), before);
    lh.discard_transaction(&tx).await.unwrap();
    assert_eq!(files_under(dir.path()), before);
    assert_eq!(ids(&lh, "raw.a", MAIN).await, (0..10).collect::<Vec<_>>());
    let err = lh.load_table("raw.c", MAIN).await.unwrap_err();
    assert_eq!(err.code(), "no_such_table", "{err}");
    assert!(lh.catalog().ref_kind(&tx).unwrap().is_none());
}

/// Writers with connections of their own commit to one table and to their own tables at once:
/// every commit lands, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_no_commit() {
    const WRITERS: i64 = 4;
    const APPENDS: i64 = 5;
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let setup = connect(&server, dir.path()).await;
    setup.catalog().create_namespace("raw").unwrap();
    create(&setup, "raw.shared").await;
    for w in 0..WRITERS {
        create(&setup, &format!("raw.own{w}")).await;
    }
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let lh = connect(&server, dir.path()).await;
        tasks.push(tokio::spawn(async move {
            for i in 0..APPENDS {
                let start = (w * APPENDS + i) * 10;
                let who = format!("w{w}");
                lh.append(
                    "raw.shared",
                    rows(start..start + 10, &who),
                    MAIN,
                    HashMap::new(),
                )
                .await
                .unwrap();
                lh.append(
                    &format!("raw.own{w}"),
                    rows(start..start + 1, &who),
                    MAIN,
                    HashMap::new(),
                )
                .await
                .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let expected: Vec<i64> = (0..WRITERS * APPENDS * 10).collect();
    assert_eq!(ids(&setup, "raw.shared", MAIN).await, expected);
    for w in 0..WRITERS {
        assert_eq!(
            ids(&setup, &format!("raw.own{w}"), MAIN).await.len(),
            APPENDS as usize
        );
    }
    let log = setup.catalog().log(Some(MAIN), 1000).unwrap();
    let on_shared = log.iter().filter(|e| e.tables == ["raw.shared"]).count();
    // One log entry per append, plus the table's creation.
    assert_eq!(on_shared as i64, WRITERS * APPENDS + 1);
}

#[test]
fn connection_failures_are_typed_errors_without_the_password() {
    let server = Server::start();
    let wrong = Catalog::connect(&server.url_with("not-the-password"))
        .err()
        .unwrap();
    let unreachable = Catalog::connect(&format!(
        "postgresql://phlo:{PASSWORD}@127.0.0.1:1/postgres"
    ))
    .err()
    .unwrap();
    let bad = Catalog::connect(&format!(
        "postgresql://phlo:{PASSWORD}@127.0.0.1:notaport/x"
    ))
    .err()
    .unwrap();
    let scheme = Catalog::connect(&format!("mysql://phlo:{PASSWORD}@127.0.0.1/x"))
        .err()
        .unwrap();
    for (err, code, says) in [
        (&wrong, "catalog", "password authentication failed"),
        (&unreachable, "catalog", "check that the server is running"),
        (&bad, "invalid_input", "not a PostgreSQL URL"),
        (
            &scheme,
            "config",
            "postgresql://user:password@host:port/database",
        ),
    ] {
        let text = err.to_string();
        assert_eq!(err.code(), code, "{text}");
        assert!(text.contains(says), "{text}");
        assert!(!text.contains(PASSWORD), "password shown: {text}");
        assert!(
            !format!("{err:?}").contains(PASSWORD),
            "password in debug: {err:?}"
        );
    }
}

/// What one racer got: its table creation, pointer swap and branch creation (error codes).
type Outcome = (Result<(), String>, Result<bool, String>, Result<(), String>);

/// Racing check-then-act transactions from separate connections: one wins, the others see its
/// result (a retried transaction), never a raw serialization failure.
#[test]
fn racing_transactions_have_one_winner_and_typed_losers() {
    const RACERS: usize = 6;
    let server = Server::start();
    let setup = Catalog::connect(&server.url()).unwrap();
    setup.create_namespace("raw").unwrap();
    setup.create_table_on(MAIN, &t("a"), "a0", &meta()).unwrap();
    let racers: Vec<Catalog> = (0..RACERS)
        .map(|_| Catalog::connect(&server.url()).unwrap())
        .collect();
    let barrier = std::sync::Barrier::new(RACERS);
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = racers
            .iter()
            .enumerate()
            .map(|(i, catalog)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let code = |e: phlo_core::error::Error| e.code().to_string();
                    barrier.wait();
                    let created = catalog
                        .create_table_on(MAIN, &t("new"), &format!("n{i}"), &meta())
                        .map_err(code);
                    let to = format!("a{}", i + 1);
                    let swapped = catalog
                        .swap_metadata_location_on(MAIN, &t("a"), "a0", &to, "race", &meta())
                        .map_err(code);
                    let branched = catalog
                        .create_ref("same", RefKind::Branch, MAIN)
                        .map_err(code);
                    (created, swapped, branched)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created: Vec<_> = outcomes.iter().map(|o| o.0.clone()).collect();
    assert_eq!(
        created.iter().filter(|r| r.is_ok()).count(),
        1,
        "{created:?}"
    );
    assert!(
        created
            .iter()
            .all(|r| r.as_ref().is_ok() || r.as_ref().unwrap_err() == "table_already_exists"),
        "{created:?}"
    );
    let swapped: Vec<_> = outcomes.iter().map(|o| o.1.clone()).collect();
    assert_eq!(
        swapped.iter().filter(|r| r == &&Ok(true)).count(),
        1,
        "{swapped:?}"
    );
    assert!(swapped.iter().all(|r| r.is_ok()), "{swapped:?}");
    let branched: Vec<_> = outcomes.iter().map(|o| o.2.clone()).collect();
    assert_eq!(
        branched.iter().filter(|r| r.is_ok()).count(),
        1,
        "{branched:?}"
    );
    assert!(
        branched
            .iter()
            .all(|r| r.as_ref().is_ok() || r.as_ref().unwrap_err() == "invalid_input"),
        "{branched:?}"
    );
    // Exactly the winners' changes are logged.
    let main_log = setup.log(Some(MAIN), 100).unwrap();
    let count = |message: &str| main_log.iter().filter(|e| e.message == message).count();
    assert_eq!((count("race"), count("create table raw.new")), (1, 1));
    assert_eq!(setup.log(Some("same"), 100).unwrap().len(), 1);
}
