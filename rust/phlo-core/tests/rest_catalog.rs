//! phlo's engine on an Iceberg REST catalog: `phlo catalog serve`'s service on a real socket
//! (a SQLite lakehouse behind it), reached as `http://127.0.0.1:PORT`. Every write goes through
//! phlo's own commit path as REST updates; results are checked against a model (a map by key)
//! and against the server's own catalog.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::model::{self, Model, model_of, rows, scan_model, schema};
use crate::rest::{Server, serve};
use crate::seaweedfs;
use crate::support::files_under;
use arrow_schema::{DataType, Field, Schema};
use phlo_core::Lakehouse;
use phlo_core::catalog::{CommitMeta, MAIN, RefKind, RefMerge};
use phlo_core::compact::CompactOptions;
use phlo_core::merge::WriteMode;
use phlo_core::rest::{Request, RestService};
use phlo_core::tables::commit::{SnapshotChange, commit_append};
use phlo_core::tables::{Filter, FilterOp, Literal, ScanOptions};

struct Fixture {
    dir: tempfile::TempDir,
    server_lh: Arc<Lakehouse>,
    server: Server,
}

/// A served lakehouse with namespace `raw`; `token` protects the server.
fn fixture(token: Option<&str>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let server_lh = Arc::new(Lakehouse::open(dir.path()).unwrap());
    server_lh.catalog().create_namespace("raw").unwrap();
    let server = serve(RestService::new(server_lh.clone(), token.map(String::from)));
    Fixture {
        dir,
        server_lh,
        server,
    }
}

impl Fixture {
    fn warehouse(&self) -> String {
        format!(
            "file://{}/warehouse",
            self.dir.path().canonicalize().unwrap().display()
        )
    }

    async fn client(&self, properties: &[(&str, &str)]) -> phlo_core::Result<Lakehouse> {
        let properties: HashMap<String, String> = properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Lakehouse::connect(&self.server.uri, &self.warehouse(), &properties).await
    }

    /// The error connecting with `properties` fails with.
    async fn refused(&self, properties: &[(&str, &str)]) -> phlo_core::Error {
        match self.client(properties).await {
            Ok(_) => panic!("connected with {properties:?}"),
            Err(e) => e,
        }
    }
}

async fn contents(lh: &Lakehouse, ref_name: &str) -> Model {
    model::contents(lh, "raw.t", ref_name).await
}

async fn scan(lh: &Lakehouse, name: &str) -> Model {
    scan_model(lh, name, &ScanOptions::default()).await
}

fn upsert(model: &mut Model, batch: &[(i64, &str)]) {
    for (id, name) in batch {
        model.insert(*id, name.to_string());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_engine_path_commits_through_the_rest_catalog() {
    let fx = fixture(None);
    let lh = fx.client(&[]).await.unwrap();
    assert_eq!(
        lh.catalog().list_namespaces().unwrap(),
        vec!["raw".to_string()]
    );
    lh.create_table("raw.t", &schema(), &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    let err = lh
        .create_table("raw.t", &schema(), &[], HashMap::new(), MAIN)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "table_already_exists", "{err}");
    let mut model = Model::new();

    let first: Vec<(i64, &str)> = (0..10).map(|i| (i, "a")).collect();
    lh.append("raw.t", rows(&first), MAIN, HashMap::new())
        .await
        .unwrap();
    upsert(&mut model, &first);

    let upserts = [
        (5..15, "cow", WriteMode::CopyOnWrite),
        (12..20, "mor", WriteMode::MergeOnRead),
    ];
    for (ids, value, mode) in upserts {
        let batch: Vec<(i64, &str)> = ids.map(|i| (i, value)).collect();
        let options = model::upsert(Some(mode));
        lh.merge("raw.t", rows(&batch), &options).await.unwrap();
        upsert(&mut model, &batch);
    }

    let below_three = Filter {
        column: "id".into(),
        op: FilterOp::Lt,
        values: vec![Literal::Int(3)],
    };
    let deleted = lh
        .delete("raw.t", &[below_three], MAIN, HashMap::new())
        .await
        .unwrap();
    model.retain(|id, _| *id >= 3);
    assert_eq!(deleted.rows_deleted, 3);
    assert_eq!(contents(&lh, MAIN).await, model);

    let compacted = lh
        .compact(
            "raw.t",
            MAIN,
            &CompactOptions {
                target_file_size: Some(64 << 20),
                filters: Vec::new(),
                properties: HashMap::new(),
            },
        )
        .await
        .unwrap();
    assert!(compacted.files_rewritten > 1, "{compacted:?}");
    assert_eq!(contents(&lh, MAIN).await, model);
    // The server's own catalog has every commit: its reader sees the same rows.
    assert_eq!(contents(&fx.server_lh, MAIN).await, model);

    let evolved = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("extra", DataType::Utf8, true),
    ]));
    assert!(lh.evolve_schema("raw.t", MAIN, &evolved).await.unwrap());
    let served = fx.server_lh.load_table("raw.t", MAIN).await.unwrap();
    assert!(
        served
            .metadata
            .current_schema()
            .field_by_name("extra")
            .is_some()
    );

    lh.drop_table("raw.t", false, MAIN).await.unwrap();
    let err = lh.load_table("raw.t", MAIN).await.unwrap_err();
    assert_eq!(err.code(), "no_such_table", "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_race_is_a_409_then_a_retry_on_the_new_state() {
    let fx = fixture(None);
    let (a, b) = (fx.client(&[]).await.unwrap(), fx.client(&[]).await.unwrap());
    a.create_table("raw.t", &schema(), &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    let stale = a.load_table("raw.t", MAIN).await.unwrap();
    b.append("raw.t", rows(&[(1, "b")]), MAIN, HashMap::new())
        .await
        .unwrap();
    let change = SnapshotChange {
        branch: MAIN.into(),
        ..Default::default()
    };
    let outcome = commit_append(a.catalog(), a.file_io(), stale, &change)
        .await
        .unwrap();
    assert_eq!(outcome.retries, 1);
    // The retry landed on top of b's append, which is still there.
    let table = a.load_table("raw.t", MAIN).await.unwrap();
    let head = table.snapshot_for_ref(MAIN).unwrap();
    assert_eq!(head.snapshot_id(), outcome.snapshot_id);
    assert_eq!(
        contents(&a, MAIN).await,
        Model::from([(1, "b".to_string())])
    );

    // Writers racing behind a barrier: every commit lands.
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let writers: Vec<_> = (0..2i64)
        .map(|w| {
            let (barrier, uri, warehouse) =
                (barrier.clone(), fx.server.uri.clone(), fx.warehouse());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Runtime::new().unwrap();
                runtime.block_on(async move {
                    let lh = Lakehouse::connect(&uri, &warehouse, &HashMap::new())
                        .await
                        .unwrap();
                    barrier.wait();
                    for i in 0..4 {
                        let id = 100 + w * 10 + i;
                        lh.append("raw.t", rows(&[(id, "race")]), MAIN, HashMap::new())
                            .await
                            .unwrap();
                    }
                })
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let rows = contents(&a, MAIN).await;
    assert_eq!(rows.len(), 9, "{rows:?}");
}

/// Table branch `name` at `main`'s head, made as another REST client would (`set-snapshot-ref`).
async fn create_table_branch(fx: &Fixture, name: &str) {
    create_table_ref(fx, name, "branch").await
}

/// Table ref `name` (`kind` `branch` or `tag`) of `raw.t` at `main`'s head.
async fn create_table_ref(fx: &Fixture, name: &str, kind: &str) {
    let main_head = fx.server_lh.load_table("raw.t", MAIN).await.unwrap();
    let id = main_head.snapshot_for_ref(MAIN).unwrap().snapshot_id();
    let body = serde_json::json!({"requirements": [], "updates": [
        {"action": "set-snapshot-ref", "ref-name": name, "snapshot-id": id, "type": kind}
    ]});
    let request = Request {
        method: "POST".into(),
        path: "/v1/main/namespaces/raw/tables/t".into(),
        body: body.to_string().into_bytes(),
        ..Default::default()
    };
    let response = RestService::new(fx.server_lh.clone(), None)
        .handle(&request)
        .await;
    assert_eq!(response.status, 200, "{:?}", response.body_json());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ref_is_a_table_branch_on_a_rest_catalog() {
    let fx = fixture(None);
    let lh = fx.client(&[]).await.unwrap();
    table_holding(&lh, "raw.t", (1, "main")).await;
    let err = lh
        .append("raw.t", rows(&[(2, "dev")]), "dev", HashMap::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input", "{err}");
    assert!(err.to_string().contains("no branch or tag dev"), "{err}");

    create_table_branch(&fx, "dev").await;
    lh.append("raw.t", rows(&[(2, "dev")]), "dev", HashMap::new())
        .await
        .unwrap();
    let mut options = model::upsert(Some(WriteMode::MergeOnRead));
    options.ref_name = "dev".into();
    lh.merge("raw.t", rows(&[(1, "dev-merged")]), &options)
        .await
        .unwrap();
    // A commit on main while dev moves: scoped to its branch, neither conflicts.
    lh.append("raw.t", rows(&[(3, "main")]), MAIN, HashMap::new())
        .await
        .unwrap();
    let dev = Model::from([(1, "dev-merged".to_string()), (2, "dev".to_string())]);
    let main = Model::from([(1, "main".to_string()), (3, "main".to_string())]);
    assert_eq!(contents(&lh, "dev").await, dev);
    assert_eq!(contents(&lh, MAIN).await, main);
    // Both branches are the server's table's refs.
    let served = fx.server_lh.load_table("raw.t", MAIN).await.unwrap();
    let dev_head = lh.load_table("raw.t", "dev").await.unwrap();
    assert_eq!(
        served
            .metadata
            .snapshot_for_ref("dev")
            .unwrap()
            .snapshot_id(),
        dev_head.snapshot_for_ref(MAIN).unwrap().snapshot_id()
    );
    assert_eq!(contents(&fx.server_lh, MAIN).await, main);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_5xx_after_the_commit_applied_is_commit_state_unknown_and_keeps_the_files() {
    let fx = fixture(None);
    let lh = fx.client(&[]).await.unwrap();
    lh.create_table("raw.t", &schema(), &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    fx.server.fail_commits.store(true, Ordering::SeqCst);
    let err = lh
        .append("raw.t", rows(&[(7, "x")]), MAIN, HashMap::new())
        .await
        .unwrap_err();
    fx.server.fail_commits.store(false, Ordering::SeqCst);
    assert_eq!(err.code(), "commit_state_unknown", "{err}");
    assert!(err.to_string().contains("502"), "{err}");
    // The server applied it: the table has the row, and every file it names is there.
    assert_eq!(
        contents(&lh, MAIN).await,
        Model::from([(7, "x".to_string())])
    );
    assert_eq!(
        contents(&fx.server_lh, MAIN).await,
        Model::from([(7, "x".to_string())])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_are_checked_and_never_shown() {
    let fx = fixture(Some("s3cret-token"));
    let err = fx.refused(&[("token", "wrong-token")]).await;
    assert_eq!(err.code(), "config", "{err}");
    assert!(!err.to_string().contains("wrong-token"), "{err}");
    let err = fx.refused(&[]).await;
    assert_eq!(err.code(), "config", "{err}");
    let err = fx.refused(&[("credential", "phlo:not-the-token")]).await;
    assert_eq!(err.code(), "config", "{err}");
    assert!(!err.to_string().contains("not-the-token"), "{err}");

    let by_token = fx.client(&[("token", "s3cret-token")]).await.unwrap();
    assert_eq!(by_token.catalog().list_namespaces().unwrap(), vec!["raw"]);
    let by_oauth = fx
        .client(&[("credential", "phlo:s3cret-token")])
        .await
        .unwrap();
    by_oauth
        .create_table("raw.t", &schema(), &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    by_oauth
        .append("raw.t", rows(&[(1, "o")]), MAIN, HashMap::new())
        .await
        .unwrap();
    assert!(!format!("{:?}", by_oauth.catalog().rest().unwrap()).contains("s3cret"));

    // SigV4 without its secret: refused before any request.
    let err = fx
        .refused(&[
            ("rest.sigv4-enabled", "true"),
            ("rest.access-key-id", "key"),
            ("rest.signing-region", "us-east-1"),
        ])
        .await;
    assert_eq!(err.code(), "config", "{err}");
    assert!(err.to_string().contains("secret access key"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_wide_operations_are_config_errors_and_refused_connections_name_the_uri() {
    let fx = fixture(None);
    let lh = fx.client(&[]).await.unwrap();
    let err = lh.catalog().log(None, 10).unwrap_err();
    assert_eq!(err.code(), "config", "{err}");
    assert!(err.to_string().contains("REST catalog"), "{err}");
    let err = lh
        .catalog()
        .create_ref("dev", RefKind::Branch, MAIN)
        .unwrap_err();
    assert_eq!(err.code(), "config", "{err}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let Err(err) = Lakehouse::connect(&uri, &fx.warehouse(), &HashMap::new()).await else {
        panic!("connected to a closed port");
    };
    assert!(err.to_string().contains(&uri), "{err}");
}

/// Properties and warehouse for SeaweedFS's own REST catalog: its S3 key pair as the OAuth2
/// credential, its table bucket as the warehouse, path-style S3 requests.
fn seaweedfs_rest(weed: &seaweedfs::SeaweedFs) -> (HashMap<String, String>, String) {
    let mut properties = weed.properties();
    properties.insert(
        "credential".into(),
        format!("{}:{}", seaweedfs::ACCESS_KEY, seaweedfs::SECRET_KEY),
    );
    properties.insert("s3.path-style-access".into(), "true".into());
    (properties, format!("s3://{}", seaweedfs::TABLE_BUCKET))
}

/// SeaweedFS's own REST catalog (table bucket `lake`) with its S3 for the files: phlo writes
/// data, manifests and manifest lists to S3 and commits them as updates; SeaweedFS writes the
/// metadata. The OAuth2 credential is SeaweedFS's S3 key pair.
#[tokio::test(flavor = "multi_thread")]
async fn every_engine_path_commits_through_seaweedfs_rest_catalog() {
    let weed = seaweedfs::shared().await;
    let (properties, warehouse) = seaweedfs_rest(&weed);
    let lh = Lakehouse::connect(&weed.iceberg, &warehouse, &properties)
        .await
        .unwrap();
    let namespace = format!("ns{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    lh.catalog().create_namespace(&namespace).unwrap();
    let name = format!("{namespace}.t");
    lh.create_table(&name, &schema(), &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    let mut model = Model::new();
    let first: Vec<(i64, &str)> = (0..10).map(|i| (i, "a")).collect();
    lh.append(&name, rows(&first), MAIN, HashMap::new())
        .await
        .unwrap();
    upsert(&mut model, &first);
    let cow: Vec<(i64, &str)> = (5..15).map(|i| (i, "cow")).collect();
    let mut options = model::upsert(Some(WriteMode::CopyOnWrite));
    lh.merge(&name, rows(&cow), &options).await.unwrap();
    upsert(&mut model, &cow);
    options.write_mode = Some(WriteMode::MergeOnRead);
    let mor: Vec<(i64, &str)> = (12..20).map(|i| (i, "mor")).collect();
    lh.merge(&name, rows(&mor), &options).await.unwrap();
    upsert(&mut model, &mor);
    let filter = Filter {
        column: "id".into(),
        op: FilterOp::Lt,
        values: vec![Literal::Int(3)],
    };
    lh.delete(&name, &[filter], MAIN, HashMap::new())
        .await
        .unwrap();
    model.retain(|id, _| *id >= 3);
    assert_eq!(scan(&lh, &name).await, model);
    let compact = CompactOptions {
        target_file_size: Some(64 << 20),
        filters: Vec::new(),
        properties: HashMap::new(),
    };
    assert!(
        lh.compact(&name, MAIN, &compact)
            .await
            .unwrap()
            .files_rewritten
            > 1
    );
    assert_eq!(scan(&lh, &name).await, model);
    // A second client (a fresh connection) reads what the server has.
    let other = Lakehouse::connect(&weed.iceberg, &warehouse, &properties)
        .await
        .unwrap();
    assert_eq!(scan(&other, &name).await, model);
}

/// Tables `raw.a` and `raw.b` on a served lakehouse, each with one row, and a client.
/// Creates table `name` on main holding the one row `row`.
async fn table_holding(lh: &Lakehouse, name: &str, row: (i64, &str)) {
    lh.create_table(name, &schema(), &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    lh.append(name, rows(&[row]), MAIN, HashMap::new())
        .await
        .unwrap();
}

async fn two_tables(fx: &Fixture) -> Lakehouse {
    let lh = fx.client(&[]).await.unwrap();
    for name in ["raw.a", "raw.b"] {
        table_holding(&lh, name, (0, "before")).await;
    }
    lh
}

/// What the server's own catalog has in table `name` on main.
async fn served(fx: &Fixture, name: &str) -> Model {
    model::contents(&fx.server_lh, name, MAIN).await
}

/// Commits transaction `tx` into main, as `lh.transaction()` does when its block ends.
async fn commit(lh: &Lakehouse, tx: &str) -> phlo_core::Result<RefMerge> {
    let merged = lh.merge_branch(tx, MAIN, &CommitMeta::default()).await;
    lh.catalog().delete_branch(tx).unwrap();
    merged
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_commits_several_tables_at_once_through_the_rest_catalog() {
    let fx = fixture(None);
    let lh = two_tables(&fx).await;
    let tx = lh.catalog().create_internal_branch("tx/", MAIN).unwrap();
    lh.append("raw.a", rows(&[(1, "tx")]), &tx, HashMap::new())
        .await
        .unwrap();
    let mut options = model::upsert(Some(WriteMode::CopyOnWrite));
    options.ref_name = tx.clone();
    lh.merge("raw.a", rows(&[(0, "merged"), (2, "tx")]), &options)
        .await
        .unwrap();
    lh.append("raw.b", rows(&[(1, "tx")]), &tx, HashMap::new())
        .await
        .unwrap();
    // The transaction reads its own writes; nobody else sees them yet.
    let a = model_of(&[(0, "merged"), (1, "tx"), (2, "tx")]);
    let b = model_of(&[(0, "before"), (1, "tx")]);
    assert_eq!(model::contents(&lh, "raw.a", &tx).await, a);
    assert_eq!(model::contents(&lh, "raw.b", &tx).await, b);
    let before = model_of(&[(0, "before")]);
    assert_eq!(served(&fx, "raw.a").await, before);
    assert_eq!(scan(&lh, "raw.b").await, before);

    let merged = commit(&lh, &tx).await.unwrap();
    assert_eq!(merged.fast_forwarded, vec!["raw.a", "raw.b"]);
    assert_eq!(served(&fx, "raw.a").await, a);
    assert_eq!(served(&fx, "raw.b").await, b);
    assert_eq!(scan(&lh, "raw.a").await, a);
    // Both tables moved in one commit of the server's catalog.
    let log = fx.server_lh.catalog().log(Some(MAIN), 1).unwrap();
    let mut tables = log[0].tables.clone();
    tables.sort();
    assert_eq!(tables, vec!["raw.a", "raw.b"], "{log:?}");
    assert!(!lh.catalog().rest().unwrap().in_transaction(&tx));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_that_lost_the_race_reapplies_its_appends_or_changes_nothing() {
    let fx = fixture(None);
    let lh = two_tables(&fx).await;
    let other = fx.client(&[]).await.unwrap();

    // Appends only: another writer's append to b is kept, and the transaction's lands on top.
    let tx = lh.catalog().create_internal_branch("tx/", MAIN).unwrap();
    for name in ["raw.a", "raw.b"] {
        lh.append(name, rows(&[(1, "tx")]), &tx, HashMap::new())
            .await
            .unwrap();
    }
    other
        .append("raw.b", rows(&[(2, "other")]), MAIN, HashMap::new())
        .await
        .unwrap();
    let merged = commit(&lh, &tx).await.unwrap();
    assert_eq!(merged.rebased, vec!["raw.b"]);
    assert_eq!(merged.fast_forwarded, vec!["raw.a"]);
    let a = model_of(&[(0, "before"), (1, "tx")]);
    let b = model_of(&[(0, "before"), (1, "tx"), (2, "other")]);
    assert_eq!(served(&fx, "raw.a").await, a);
    assert_eq!(served(&fx, "raw.b").await, b);
    // The first attempt's manifest list and manifest for b went once the re-applied one
    // landed: no file is left that no snapshot references.
    assert_eq!(unreferenced(&fx).await, Vec::<String>::new());

    // An upsert on a table another writer moved (after the transaction read it) cannot be
    // re-applied: neither table changes, and every file the transaction wrote is removed.
    let tx = lh.catalog().create_internal_branch("tx/", MAIN).unwrap();
    lh.load_table("raw.a", &tx).await.unwrap();
    other
        .append("raw.a", rows(&[(4, "other")]), MAIN, HashMap::new())
        .await
        .unwrap();
    let files = files_under(fx.dir.path());
    let mut options = model::upsert(Some(WriteMode::CopyOnWrite));
    options.ref_name = tx.clone();
    lh.merge("raw.a", rows(&[(0, "upserted")]), &options)
        .await
        .unwrap();
    lh.append("raw.b", rows(&[(3, "tx")]), &tx, HashMap::new())
        .await
        .unwrap();
    assert_ne!(files_under(fx.dir.path()), files);
    let err = commit(&lh, &tx).await.unwrap_err();
    assert_eq!(files_under(fx.dir.path()), files);
    assert_eq!(err.code(), "commit_conflict", "{err}");
    assert!(err.to_string().contains("raw.a"), "{err}");
    let mut a_now = a.clone();
    a_now.insert(4, "other".into());
    assert_eq!(served(&fx, "raw.a").await, a_now);
    assert_eq!(served(&fx, "raw.b").await, b);
}

/// A merge that only inserted commits as an append, but the keys it inserted may be ones another
/// writer inserted meanwhile: then it is a conflict (nothing lands, no file is left behind);
/// with other keys it is re-applied like an append.
#[tokio::test(flavor = "multi_thread")]
async fn a_transactions_inserting_merge_is_reapplied_only_when_no_key_collides() {
    let fx = fixture(None);
    let lh = two_tables(&fx).await;
    let other = fx.client(&[]).await.unwrap();
    let mut a = model_of(&[(0, "before")]);
    for (ours, theirs) in [(1, 2), (3, 3)] {
        let tx = lh.catalog().create_internal_branch("tx/", MAIN).unwrap();
        let mut options = model::upsert(Some(WriteMode::CopyOnWrite));
        options.ref_name = tx.clone();
        let merged = lh.merge("raw.a", rows(&[(ours, "tx")]), &options);
        assert_eq!(merged.await.unwrap().rows_inserted, 1);
        let options = model::upsert(Some(WriteMode::CopyOnWrite));
        let theirs_merged = other.merge("raw.a", rows(&[(theirs, "other")]), &options);
        theirs_merged.await.unwrap();
        upsert(&mut a, &[(theirs, "other")]);
        match commit(&lh, &tx).await {
            Ok(merged) if ours != theirs => {
                assert_eq!(merged.rebased, vec!["raw.a"]);
                upsert(&mut a, &[(ours, "tx")]);
            }
            Err(err) if ours == theirs => {
                assert_eq!(err.code(), "commit_conflict", "{err}");
                assert!(err.to_string().contains("unique key (id)"), "{err}");
            }
            outcome => panic!("keys {ours} and {theirs}: {outcome:?}"),
        }
        assert_eq!(served(&fx, "raw.a").await, a);
        assert_eq!(unreferenced(&fx).await, Vec::<String>::new());
    }
}

/// The files under the served tables' locations that nothing in the server's catalog
/// references (what orphan removal would delete).
async fn unreferenced(fx: &Fixture) -> Vec<String> {
    let far_future = chrono::Utc::now().timestamp_millis() + 3_600_000;
    let orphans = fx.server_lh.remove_orphan_files(far_future, true).await;
    orphans.unwrap().files
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_creates_a_table_with_its_writes_through_the_rest_catalog() {
    let fx = fixture(None);
    let lh = two_tables(&fx).await;
    let tx = creating_c(&lh).await;
    // A staged create: the transaction sees its table, the server has nothing yet.
    assert_eq!(
        model::contents(&lh, "raw.c", &tx).await,
        model_of(&[(1, "tx")])
    );
    let err = fx.server_lh.load_table("raw.c", MAIN).await.unwrap_err();
    assert_eq!(err.code(), "no_such_table", "{err}");
    // Staged in the transaction, or already on the server: either way it exists.
    for name in ["raw.c", "raw.a"] {
        let err = lh
            .create_table(name, &schema(), &[], HashMap::new(), &tx)
            .await;
        assert_eq!(err.unwrap_err().code(), "table_already_exists", "{name}");
    }

    let merged = commit(&lh, &tx).await.unwrap();
    assert_eq!(merged.added, vec!["raw.c"]);
    assert_eq!(merged.fast_forwarded, vec!["raw.a"]);
    assert_eq!(served(&fx, "raw.c").await, model_of(&[(1, "tx")]));
    assert_eq!(
        served(&fx, "raw.a").await,
        model_of(&[(0, "before"), (1, "tx")])
    );
    let log = fx.server_lh.catalog().log(Some(MAIN), 1).unwrap();
    let mut tables = log[0].tables.clone();
    tables.sort();
    assert_eq!(tables, vec!["raw.a", "raw.c"], "{log:?}");
    assert_eq!(unreferenced(&fx).await, Vec::<String>::new());
    // The table the transaction staged is the one that landed (same uuid), and writable.
    lh.append("raw.c", rows(&[(2, "after")]), MAIN, HashMap::new())
        .await
        .unwrap();
    assert_eq!(
        served(&fx, "raw.c").await,
        model_of(&[(1, "tx"), (2, "after")])
    );
}

/// A transaction that creates `raw.c` and appends `(1, tx)` to it and to `raw.a`; its name.
async fn creating_c(lh: &Lakehouse) -> String {
    let tx = lh.catalog().create_internal_branch("tx/", MAIN).unwrap();
    lh.create_table("raw.c", &schema(), &[], HashMap::new(), &tx)
        .await
        .unwrap();
    for name in ["raw.c", "raw.a"] {
        lh.append(name, rows(&[(1, "tx")]), &tx, HashMap::new())
            .await
            .unwrap();
    }
    tx
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_created_meanwhile_fails_the_transaction_that_creates_it_and_nothing_lands() {
    let fx = fixture(None);
    let lh = two_tables(&fx).await;
    let other = fx.client(&[]).await.unwrap();
    let before = files_under(fx.dir.path());
    let tx = creating_c(&lh).await;
    other
        .create_table("raw.c", &schema(), &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    let created = files_under(fx.dir.path());

    let err = commit(&lh, &tx).await.unwrap_err();
    assert_eq!(err.code(), "commit_conflict", "{err}");
    assert!(err.to_string().contains("raw.c"), "{err}");
    assert_eq!(served(&fx, "raw.a").await, model_of(&[(0, "before")]));
    assert_eq!(served(&fx, "raw.c").await, Model::new());
    // Every file the transaction wrote is gone: what is left is the other creator's.
    let now = files_under(fx.dir.path());
    let others: Vec<_> = now.iter().filter(|f| !before.contains(f)).collect();
    assert_eq!(others.len(), 1, "{others:?}");
    assert!(created.contains(others[0]), "{others:?}");
    assert!(others[0].to_string_lossy().ends_with(".metadata.json"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_discarded_transaction_removes_its_files_and_commits_nothing_on_the_rest_catalog() {
    let fx = fixture(None);
    let lh = two_tables(&fx).await;
    let before = files_under(fx.dir.path());
    let tx = creating_c(&lh).await;
    let mut options = model::upsert(Some(WriteMode::CopyOnWrite));
    options.ref_name = tx.clone();
    lh.merge("raw.b", rows(&[(0, "merged")]), &options)
        .await
        .unwrap();
    assert_ne!(files_under(fx.dir.path()), before);
    // What `with lh.transaction()` does when its block raises.
    lh.discard_transaction(&tx).await.unwrap();
    assert_eq!(files_under(fx.dir.path()), before);
    assert!(!lh.catalog().rest().unwrap().in_transaction(&tx));
    let before_rows = model_of(&[(0, "before")]);
    assert_eq!(served(&fx, "raw.a").await, before_rows);
    assert_eq!(served(&fx, "raw.b").await, before_rows);
    let err = fx.server_lh.load_table("raw.c", MAIN).await.unwrap_err();
    assert_eq!(err.code(), "no_such_table", "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_commit_without_an_answer_is_commit_state_unknown_and_keeps_the_files() {
    let fx = fixture(None);
    let lh = two_tables(&fx).await;
    let tx = lh.catalog().create_internal_branch("tx/", MAIN).unwrap();
    for name in ["raw.a", "raw.b"] {
        lh.append(name, rows(&[(1, "tx")]), &tx, HashMap::new())
            .await
            .unwrap();
    }
    fx.server.fail_commits.store(true, Ordering::SeqCst);
    let err = commit(&lh, &tx).await.unwrap_err();
    fx.server.fail_commits.store(false, Ordering::SeqCst);
    assert_eq!(err.code(), "commit_state_unknown", "{err}");
    assert!(err.to_string().contains("502"), "{err}");
    // The server applied it, and every file its snapshots name is there to read.
    let after = model_of(&[(0, "before"), (1, "tx")]);
    assert_eq!(scan(&lh, "raw.a").await, after);
    assert_eq!(scan(&lh, "raw.b").await, after);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_multi_table_commits_refuses_the_transaction_and_changes_nothing() {
    let fx = fixture(None);
    let lh = two_tables(&fx).await;
    fx.server.hide_transactions.store(true, Ordering::SeqCst);
    // It lists no endpoints: the client tries, and the 404 is a ConfigError.
    let unlisted = fx.client(&[]).await.unwrap();
    let tx = unlisted
        .catalog()
        .create_internal_branch("tx/", MAIN)
        .unwrap();
    for name in ["raw.a", "raw.b"] {
        unlisted
            .append(name, rows(&[(1, "tx")]), &tx, HashMap::new())
            .await
            .unwrap();
    }
    // Nor can it tell that the commit would create a table: refused before a file is written.
    let files = files_under(fx.dir.path());
    let err = unlisted
        .create_table("raw.c", &schema(), &[], HashMap::new(), &tx)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "config", "{err}");
    assert!(err.to_string().contains("raw.c"), "{err}");
    assert_eq!(files_under(fx.dir.path()), files);
    let err = commit(&unlisted, &tx).await.unwrap_err();
    assert_eq!(err.code(), "config", "{err}");
    assert!(err.to_string().contains("transactions/commit"), "{err}");
    let before = model_of(&[(0, "before")]);
    assert_eq!(served(&fx, "raw.a").await, before);
    assert_eq!(served(&fx, "raw.b").await, before);
    fx.server.hide_transactions.store(false, Ordering::SeqCst);
    // A transaction that changed nothing commits nothing, on any server.
    let tx = lh.catalog().create_internal_branch("tx/", MAIN).unwrap();
    assert_eq!(commit(&lh, &tx).await.unwrap(), RefMerge::default());
}

/// Two clients of SeaweedFS's REST catalog and a fresh namespace the first created.
async fn seaweedfs_clients(weed: &seaweedfs::SeaweedFs) -> (Lakehouse, Lakehouse, String) {
    let (properties, warehouse) = seaweedfs_rest(weed);
    let connect = || Lakehouse::connect(&weed.iceberg, &warehouse, &properties);
    let (lh, other) = (connect().await.unwrap(), connect().await.unwrap());
    let namespace = format!("ns{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    lh.catalog().create_namespace(&namespace).unwrap();
    (lh, other, namespace)
}

/// SeaweedFS 4.48 lists no endpoints in `/v1/config` but serves `/transactions/commit`: a
/// transaction lands on both tables at once, and one whose table another writer moved (an
/// upsert, which cannot be re-applied) leaves both as they were.
#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_commits_two_tables_through_seaweedfs_rest_catalog() {
    let weed = seaweedfs::shared().await;
    let (lh, other, namespace) = seaweedfs_clients(&weed).await;
    let (a, b) = (format!("{namespace}.a"), format!("{namespace}.b"));
    for name in [&a, &b] {
        table_holding(&lh, name, (0, "before")).await;
    }
    let tx = lh.catalog().create_internal_branch("tx/", MAIN).unwrap();
    for name in [&a, &b] {
        lh.append(name, rows(&[(1, "tx")]), &tx, HashMap::new())
            .await
            .unwrap();
    }
    assert_eq!(scan(&other, &b).await, model_of(&[(0, "before")]));
    commit(&lh, &tx).await.unwrap();
    let landed = model_of(&[(0, "before"), (1, "tx")]);
    assert_eq!(scan(&other, &a).await, landed);
    assert_eq!(scan(&other, &b).await, landed);

    let tx = lh.catalog().create_internal_branch("tx/", MAIN).unwrap();
    let mut options = model::upsert(Some(WriteMode::CopyOnWrite));
    options.ref_name = tx.clone();
    // The failing table comes second in the request: a server that applied the first before
    // checking the second would show a changed here.
    lh.merge(&b, rows(&[(0, "upserted")]), &options)
        .await
        .unwrap();
    lh.append(&a, rows(&[(2, "tx")]), &tx, HashMap::new())
        .await
        .unwrap();
    other
        .append(&b, rows(&[(3, "other")]), MAIN, HashMap::new())
        .await
        .unwrap();
    let err = commit(&lh, &tx).await.unwrap_err();
    assert_eq!(err.code(), "commit_conflict", "{err}");
    assert!(err.to_string().contains(&b), "{err}");
    let mut b_now = landed.clone();
    b_now.insert(3, "other".into());
    assert_eq!(scan(&other, &a).await, landed);
    assert_eq!(scan(&other, &b).await, b_now);
}

/// SeaweedFS 4.48 answers a staged create but not a `/transactions/commit` that creates the
/// table ("table does not exist"), and lists no endpoints: a create inside a transaction is
/// refused there before anything is written, and the transaction's other writes still land.
#[tokio::test(flavor = "multi_thread")]
async fn seaweedfs_refuses_a_create_inside_a_transaction_before_writing_anything() {
    let weed = seaweedfs::shared().await;
    let (lh, other, namespace) = seaweedfs_clients(&weed).await;
    let (a, c) = (format!("{namespace}.a"), format!("{namespace}.c"));
    table_holding(&lh, &a, (0, "before")).await;
    let prefix = format!("{namespace}.db");
    let objects = weed.list(seaweedfs::TABLE_BUCKET, &prefix).await;
    assert!(objects.iter().any(|o| o.contains("/a/")), "{objects:?}");
    let tx = lh.catalog().create_internal_branch("tx/", MAIN).unwrap();
    let err = lh
        .create_table(&c, &schema(), &[], HashMap::new(), &tx)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "config", "{err}");
    assert!(err.to_string().contains(&c), "{err}");
    assert!(err.to_string().contains("transactions/commit"), "{err}");
    assert_eq!(weed.list(seaweedfs::TABLE_BUCKET, &prefix).await, objects);
    let tables = other.catalog().list_tables_on(MAIN, &namespace).unwrap();
    assert_eq!(tables.len(), 1, "{tables:?}");
    lh.append(&a, rows(&[(1, "tx")]), &tx, HashMap::new())
        .await
        .unwrap();
    commit(&lh, &tx).await.unwrap();
    assert_eq!(
        scan(&other, &a).await,
        model_of(&[(0, "before"), (1, "tx")])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_tag_is_read_only_and_refused_before_any_file_is_written() {
    let fx = fixture(None);
    let lh = fx.client(&[]).await.unwrap();
    table_holding(&lh, "raw.t", (1, "tagged")).await;
    create_table_ref(&fx, "v1", "tag").await;
    lh.append("raw.t", rows(&[(2, "main")]), MAIN, HashMap::new())
        .await
        .unwrap();
    let files = files_under(fx.dir.path());
    let tagged = Model::from([(1, "tagged".to_string())]);
    assert_eq!(contents(&lh, "v1").await, tagged);

    let err = lh
        .append("raw.t", rows(&[(3, "x")]), "v1", HashMap::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input", "{err}");
    assert!(err.to_string().contains("v1 is a tag of raw.t"), "{err}");
    let mut options = model::upsert(Some(WriteMode::MergeOnRead));
    options.ref_name = "v1".into();
    let err = lh
        .merge("raw.t", rows(&[(1, "x")]), &options)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input", "{err}");
    let all = Filter {
        column: "id".into(),
        op: FilterOp::Gt,
        values: vec![Literal::Int(0)],
    };
    let err = lh
        .delete("raw.t", &[all], "v1", HashMap::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input", "{err}");
    let tx = lh.catalog().create_internal_branch("tx/", "v1").unwrap();
    let err = lh
        .append("raw.t", rows(&[(3, "x")]), &tx, HashMap::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input", "{err}");
    lh.catalog().delete_branch(&tx).unwrap();

    // Nothing was written, the tag and main are as they were.
    assert_eq!(files_under(fx.dir.path()), files);
    assert_eq!(contents(&lh, "v1").await, tagged);
    let main = Model::from([(1, "tagged".to_string()), (2, "main".to_string())]);
    assert_eq!(contents(&lh, MAIN).await, main);
}

/// SeaweedFS's REST catalog checks S3-style SigV4 signatures: phlo signs every request (no
/// OAuth2 token at all) and commits through it; a request signed with a wrong secret is
/// refused (`/v1/config` answers anyone, so the refusal comes at the first catalog call).
#[tokio::test(flavor = "multi_thread")]
async fn requests_signed_with_sigv4_commit_through_seaweedfs_rest_catalog() {
    let weed = seaweedfs::shared().await;
    let warehouse = format!("s3://{}", seaweedfs::TABLE_BUCKET);
    let signed = |secret: &str| {
        let mut properties = weed.properties();
        for (key, value) in [
            ("rest.sigv4-enabled", "true"),
            ("rest.signing-region", "us-east-1"),
            ("rest.signing-name", "s3"),
            ("rest.access-key-id", seaweedfs::ACCESS_KEY),
            ("rest.secret-access-key", secret),
            ("s3.path-style-access", "true"),
        ] {
            properties.insert(key.into(), value.into());
        }
        properties
    };
    let wrong = Lakehouse::connect(&weed.iceberg, &warehouse, &signed("not-the-secret"))
        .await
        .unwrap();
    let err = wrong.catalog().list_namespaces().unwrap_err();
    assert_eq!(err.code(), "config", "{err}");
    assert!(err.to_string().contains("403"), "{err}");
    assert!(!err.to_string().contains("not-the-secret"), "{err}");

    let lh = Lakehouse::connect(&weed.iceberg, &warehouse, &signed(seaweedfs::SECRET_KEY))
        .await
        .unwrap();
    let namespace = format!("ns{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    lh.catalog().create_namespace(&namespace).unwrap();
    let name = format!("{namespace}.t");
    table_holding(&lh, &name, (1, "signed")).await;
    assert_eq!(scan(&lh, &name).await, model_of(&[(1, "signed")]));
}
