//! The engine's core cases on S3 (a real SeaweedFS on 127.0.0.1) with the SQLite catalog, and
//! `Lakehouse::connect`'s URI handling.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{Model, contents, upsert};
use crate::seaweedfs::{SECRET_KEY, SeaweedFs, free_port, shared, warehouse};
use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use bytes::Bytes;
use phlo_core::catalog::{CommitMeta, MAIN, RefKind};
use phlo_core::compact::CompactOptions;
use phlo_core::tables::{Filter, FilterOp, Literal};
use phlo_core::{Error, Lakehouse};

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("v", DataType::Utf8, true),
    ]))
}

fn rows(ids: impl Iterator<Item = i64>, tag: &str) -> Vec<Result<RecordBatch, ArrowError>> {
    let ids: Vec<i64> = ids.collect();
    let values: Vec<String> = ids.iter().map(|i| format!("{tag}{i}")).collect();
    vec![Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(values)),
        ],
    )
    .unwrap())]
}

fn put(model: &mut Model, ids: impl Iterator<Item = i64>, tag: &str) {
    for i in ids {
        model.insert(i, format!("{tag}{i}"));
    }
}

fn future_ms() -> i64 {
    chrono::Utc::now().timestamp_millis() + 60_000
}

/// A lakehouse with the catalog in a temporary folder and the warehouse on `server`.
async fn connect(server: &SeaweedFs) -> (tempfile::TempDir, Lakehouse) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let lh = Lakehouse::connect(&catalog, &warehouse(), &server.properties())
        .await
        .unwrap();
    lh.catalog().create_namespace("raw").unwrap();
    (dir, lh)
}

async fn create(lh: &Lakehouse, name: &str) {
    lh.create_table(name, &schema(), &[], HashMap::new(), MAIN)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_live_on_s3_append_merge_delete_and_scan() {
    let server = shared().await;
    let (_dir, lh) = connect(&server).await;
    assert!(lh.warehouse().starts_with("s3://warehouse/"));
    assert!(lh.root().is_none());
    create(&lh, "raw.t").await;
    let mut model = Model::new();

    lh.append("raw.t", rows(0..100, "a"), MAIN, HashMap::new())
        .await
        .unwrap();
    put(&mut model, 0..100, "a");
    assert_eq!(contents(&lh, "raw.t", MAIN).await, model);

    let merged = lh
        .merge("raw.t", rows(50..150, "b"), &upsert(None))
        .await
        .unwrap();
    assert_eq!((merged.rows_updated, merged.rows_inserted), (50, 50));
    put(&mut model, 50..150, "b");
    assert_eq!(contents(&lh, "raw.t", MAIN).await, model);

    let filter = Filter {
        column: "id".into(),
        op: FilterOp::parse("<").unwrap(),
        values: vec![Literal::Int(20)],
    };
    lh.delete("raw.t", &[filter], MAIN, HashMap::new())
        .await
        .unwrap();
    model.retain(|id, _| *id >= 20);
    assert_eq!(contents(&lh, "raw.t", MAIN).await, model);

    // Every file the table references is an object in the bucket, under the warehouse.
    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    assert!(
        table
            .metadata_location
            .starts_with(&format!("{}/", lh.warehouse()))
    );
    assert!(lh.file_io().exists(&table.metadata_location).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branches_and_multi_table_merges_work_on_s3() {
    let server = shared().await;
    let (_dir, lh) = connect(&server).await;
    create(&lh, "raw.a").await;
    create(&lh, "raw.b").await;
    lh.append("raw.a", rows(0..10, "a"), MAIN, HashMap::new())
        .await
        .unwrap();

    // A branch sees main's state; its writes stay there until merged.
    lh.catalog()
        .create_ref("dev", RefKind::Branch, MAIN)
        .unwrap();
    lh.append("raw.a", rows(10..20, "a"), "dev", HashMap::new())
        .await
        .unwrap();
    let mut on_main = Model::new();
    put(&mut on_main, 0..10, "a");
    assert_eq!(contents(&lh, "raw.a", MAIN).await, on_main);

    // Two tables written on a private branch land on main together (a transaction).
    let tx = lh.catalog().create_internal_branch("tx", MAIN).unwrap();
    lh.append("raw.a", rows(100..105, "t"), &tx, HashMap::new())
        .await
        .unwrap();
    lh.append("raw.b", rows(0..5, "t"), &tx, HashMap::new())
        .await
        .unwrap();
    assert!(contents(&lh, "raw.b", MAIN).await.is_empty());
    lh.merge_branch(&tx, MAIN, &CommitMeta::default())
        .await
        .unwrap();
    put(&mut on_main, 100..105, "t");
    let mut b = Model::new();
    put(&mut b, 0..5, "t");
    assert_eq!(contents(&lh, "raw.a", MAIN).await, on_main);
    assert_eq!(contents(&lh, "raw.b", MAIN).await, b);

    // dev's append is rebased onto main's new state.
    let merged = lh
        .merge_branch("dev", MAIN, &CommitMeta::default())
        .await
        .unwrap();
    assert_eq!(merged.rebased, vec!["raw.a".to_string()]);
    put(&mut on_main, 10..20, "a");
    assert_eq!(contents(&lh, "raw.a", MAIN).await, on_main);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_expiry_and_orphan_removal_work_on_s3() {
    let server = shared().await;
    let (_dir, lh) = connect(&server).await;
    create(&lh, "raw.t").await;
    let mut model = Model::new();
    for i in 0..4 {
        lh.append(
            "raw.t",
            rows(i * 10..i * 10 + 10, "a"),
            MAIN,
            HashMap::new(),
        )
        .await
        .unwrap();
        put(&mut model, i * 10..i * 10 + 10, "a");
    }
    let options = CompactOptions {
        target_file_size: Some(64 << 20),
        filters: vec![],
        properties: HashMap::new(),
    };
    let compacted = lh.compact("raw.t", MAIN, &options).await.unwrap();
    assert_eq!(compacted.files_rewritten, 4);
    assert_eq!(contents(&lh, "raw.t", MAIN).await, model);

    let expired = lh.expire_snapshots(future_ms(), 1).await.unwrap();
    assert!(expired.snapshots_expired >= 4, "{expired:?}");
    assert!(expired.files_deleted > 0, "{expired:?}");
    assert_eq!(contents(&lh, "raw.t", MAIN).await, model);

    // A stray object under the table's location (a crashed write's leftover) is an orphan.
    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    let stray = format!("{}/data/leftover.parquet", table.metadata.location());
    lh.file_io()
        .new_output(&stray)
        .unwrap()
        .write(Bytes::from_static(b"not referenced"))
        .await
        .unwrap();
    let dry = lh.remove_orphan_files(future_ms(), true).await.unwrap();
    assert_eq!(dry.files, vec![stray.clone()]);
    assert!(lh.file_io().exists(&stray).await.unwrap());
    assert!(
        lh.remove_orphan_files(0, false)
            .await
            .unwrap()
            .files
            .is_empty(),
        "recent files stay"
    );
    let removed = lh.remove_orphan_files(future_ms(), false).await.unwrap();
    assert_eq!(removed.files, vec![stray.clone()]);
    assert!(!lh.file_io().exists(&stray).await.unwrap());
    assert_eq!(contents(&lh, "raw.t", MAIN).await, model);
}

/// A transaction whose block fails is discarded: every object its writes left under the
/// warehouse prefix (a table it created included) is deleted, and no table changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discarded_transaction_leaves_no_object_behind_on_s3() {
    let server = shared().await;
    let (_dir, lh) = connect(&server).await;
    create(&lh, "raw.t").await;
    lh.append("raw.t", rows(0..10, "a"), MAIN, HashMap::new())
        .await
        .unwrap();
    let mut model = Model::new();
    put(&mut model, 0..10, "a");
    let prefix = lh.warehouse().strip_prefix("s3://warehouse/").unwrap();
    let objects = server.list(crate::seaweedfs::BUCKET, prefix).await;
    assert!(!objects.is_empty());

    let tx = lh.catalog().create_internal_branch("tx/", MAIN).unwrap();
    lh.append("raw.t", rows(10..20, "tx"), &tx, HashMap::new())
        .await
        .unwrap();
    let mut options = upsert(None);
    options.ref_name = tx.clone();
    lh.merge("raw.t", rows(0..5, "upserted"), &options)
        .await
        .unwrap();
    lh.create_table("raw.new", &schema(), &[], HashMap::new(), &tx)
        .await
        .unwrap();
    lh.append("raw.new", rows(0..3, "n"), &tx, HashMap::new())
        .await
        .unwrap();
    assert_ne!(server.list(crate::seaweedfs::BUCKET, prefix).await, objects);

    lh.discard_transaction(&tx).await.unwrap();
    assert_eq!(server.list(crate::seaweedfs::BUCKET, prefix).await, objects);
    assert_eq!(contents(&lh, "raw.t", MAIN).await, model);
    let err = lh.load_table("raw.new", MAIN).await.unwrap_err();
    assert_eq!(err.code(), "no_such_table", "{err}");
    let err = lh.load_table("raw.t", &tx).await.unwrap_err();
    assert_eq!(err.code(), "invalid_input", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_a_typed_error_without_the_secret() {
    let server = shared().await;
    let dir = tempfile::tempdir().unwrap();
    let catalog = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let wrong = "wrong-secret-Zk31";
    let err = Lakehouse::connect(
        &catalog,
        &warehouse(),
        &server.properties_with_secret(wrong),
    )
    .await
    .err()
    .expect("a wrong secret must not connect");
    let text = format!("{err} {err:?}");
    assert!(matches!(err, Error::ObjectStore { .. }), "{text}");
    assert_eq!(err.code(), "storage");
    assert!(text.contains("s3.secret-access-key"), "{text}");
    assert!(
        !text.contains(wrong) && !text.contains(SECRET_KEY),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let props = HashMap::from([
        ("s3.endpoint".to_string(), endpoint.clone()),
        ("s3.access-key-id".to_string(), "k".to_string()),
        ("s3.secret-access-key".to_string(), "hidden-Qw9".to_string()),
    ]);
    let err = Lakehouse::connect(&catalog, "s3://b/p", &props)
        .await
        .err()
        .expect("nothing listens there");
    let text = err.to_string();
    assert!(matches!(err, Error::ObjectStore { .. }), "{text}");
    assert!(
        text.contains(&endpoint) && text.contains("reachable"),
        "{text}"
    );
    assert!(!text.contains("hidden-Qw9"), "{text}");
}

#[tokio::test]
async fn bad_uris_are_config_errors_naming_the_uri() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let warehouse = format!("file://{}", dir.path().join("wh").display());
    let none = HashMap::new();
    let cases = [
        ("mysql://h/db", warehouse.as_str(), "sqlite:///"),
        (
            "mysql://me:pw-Lk2@h/db",
            warehouse.as_str(),
            "mysql://me:***@h/db",
        ),
        ("ftp://cat/api", warehouse.as_str(), "http(s)://host:port"),
        ("sqlite:///", warehouse.as_str(), "names no file"),
        (catalog.as_str(), "gs://bucket/x", "s3://bucket/prefix"),
        (catalog.as_str(), "s3:///x", "names no bucket"),
        (catalog.as_str(), "file://relative/dir", "absolute"),
    ];
    for (catalog_uri, warehouse_uri, hint) in cases {
        let err = Lakehouse::connect(catalog_uri, warehouse_uri, &none)
            .await
            .err()
            .unwrap_or_else(|| panic!("{catalog_uri} + {warehouse_uri} connected"));
        let text = err.to_string();
        assert_eq!(err.code(), "config", "{text}");
        assert!(text.contains(hint), "{text}");
        assert!(!text.contains("pw-Lk2"), "{text}");
    }
}

#[tokio::test]
async fn open_is_connect_with_the_embedded_uris() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let opened = Lakehouse::open(&root).unwrap();
    opened.catalog().create_namespace("raw").unwrap();
    opened
        .create_table("raw.t", &schema(), &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    opened
        .append("raw.t", rows(0..3, "x"), MAIN, HashMap::new())
        .await
        .unwrap();
    let connected = Lakehouse::connect(
        &format!("sqlite:///{}", root.join("catalog.db").display()),
        &format!("file://{}/warehouse/", root.display()),
        &HashMap::new(),
    )
    .await
    .unwrap();
    assert_eq!(connected.warehouse(), opened.warehouse());
    assert_eq!(
        contents(&connected, "raw.t", MAIN).await,
        contents(&opened, "raw.t", MAIN).await
    );
    assert_eq!(contents(&connected, "raw.t", MAIN).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_object_is_a_typed_storage_error_naming_it() {
    let server = shared().await;
    let (dir, lh) = connect(&server).await;
    create(&lh, "raw.t").await;
    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    lh.file_io().delete(&table.metadata_location).await.unwrap();
    // Another process (`lh` keeps the metadata files it has read or written) reads it.
    let catalog = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let other = Lakehouse::connect(&catalog, lh.warehouse(), &server.properties())
        .await
        .unwrap();
    let Err(err) = other.load_table("raw.t", MAIN).await else {
        panic!("the metadata file is gone");
    };
    let text = err.to_string();
    assert!(matches!(err, Error::ObjectStore { .. }), "{text}");
    assert_eq!(err.code(), "storage");
    assert!(text.contains(&table.metadata_location), "{text}");
    assert!(text.contains("does not exist"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_refused_inside_the_parquet_writer_is_a_typed_object_store_error() {
    let server = shared().await;
    let (dir, lh) = connect(&server).await;
    create(&lh, "raw.t").await;
    lh.append("raw.t", rows(0..3, "a"), MAIN, HashMap::new())
        .await
        .unwrap();
    // SSE-C with a key that is not 256 bits: the server refuses the data file's upload (400),
    // which fails inside the Parquet writer. The listing at connect sends no SSE headers.
    let mut refused = server.properties();
    refused.extend([
        ("s3.sse.type".to_string(), "custom".to_string()),
        ("s3.sse.key".to_string(), "bm90LWEta2V5".to_string()),
        (
            "s3.sse.md5".to_string(),
            "AAAAAAAAAAAAAAAAAAAAAA==".to_string(),
        ),
    ]);
    let catalog = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let other = Lakehouse::connect(&catalog, lh.warehouse(), &refused)
        .await
        .unwrap();
    let err = other
        .append("raw.t", rows(3..6, "b"), MAIN, HashMap::new())
        .await
        .expect_err("the server refuses the upload");
    let text = err.to_string();
    assert!(matches!(err, Error::ObjectStore { .. }), "{text}");
    assert_eq!(err.code(), "storage");
    assert!(text.contains(&format!("{}/", lh.warehouse())), "{text}");
    assert!(
        text.contains(&format!("(endpoint {})", server.endpoint)),
        "{text}"
    );
    assert!(text.contains("refused the request"), "{text}");
    assert!(
        !text.contains("bm90LWEta2V5") && !text.contains(SECRET_KEY),
        "{text}"
    );
    let model: Model = (0..3).map(|i| (i, format!("a{i}"))).collect();
    assert_eq!(contents(&lh, "raw.t", MAIN).await, model);
}
