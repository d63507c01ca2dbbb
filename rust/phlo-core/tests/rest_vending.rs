//! Storage credentials from the REST catalog, on a real SeaweedFS: a lakehouse on S3 served by
//! `phlo catalog serve`'s service, and a client with no S3 keys. Without vending the client is
//! refused with a `ConfigError` naming the missing keys (never showing the server's); with
//! `vending_credentials()` the load-table answers carry the warehouse's storage properties and
//! the client reads and writes the tables' files with them. SeaweedFS's own REST catalog is not
//! Nessie-style: there a ref stays a ref inside the table.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{self, Model, contents, schema};
use crate::rest::serve;
use crate::seaweedfs;
use arrow_array::RecordBatch;
use arrow_schema::ArrowError;
use phlo_core::Lakehouse;
use phlo_core::catalog::MAIN;
use phlo_core::rest::RestService;

/// Rows `ids`, each named `name`.
fn named(ids: std::ops::Range<i64>, name: &str) -> Vec<(i64, &str)> {
    ids.map(|id| (id, name)).collect()
}

fn rows(ids: std::ops::Range<i64>, name: &str) -> Vec<Result<RecordBatch, ArrowError>> {
    model::rows(&named(ids, name))
}

fn model_of(ids: std::ops::Range<i64>, name: &str) -> Model {
    model::model_of(&named(ids, name))
}

/// A lakehouse on SeaweedFS (SQLite catalog, a fresh warehouse prefix) with `raw.t` holding
/// ids 0..5.
async fn served(weed: &seaweedfs::SeaweedFs) -> (tempfile::TempDir, Arc<Lakehouse>) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let warehouse = format!(
        "s3://{}/{}",
        seaweedfs::BUCKET,
        uuid::Uuid::new_v4().simple()
    );
    let lh = Lakehouse::connect(&catalog, &warehouse, &weed.properties())
        .await
        .unwrap();
    lh.catalog().create_namespace("raw").unwrap();
    lh.create_table("raw.t", &schema(), &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    lh.append("raw.t", rows(0..5, "served"), MAIN, HashMap::new())
        .await
        .unwrap();
    (dir, Arc::new(lh))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_without_keys_needs_the_catalog_to_vend_them() {
    let weed = seaweedfs::shared().await;
    let (_dir, lh) = served(&weed).await;
    let no_keys = HashMap::new();

    let plain = serve(RestService::new(lh.clone(), None));
    let client = Lakehouse::connect(&plain.uri, lh.warehouse(), &no_keys)
        .await
        .unwrap();
    let err = client
        .append("raw.t", rows(9..10, "x"), MAIN, HashMap::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "config", "{err}");
    let text = err.to_string();
    assert!(text.contains("no S3 credentials for table raw.t"), "{text}");
    assert!(text.contains("s3.access-key-id"), "{text}");
    assert!(!text.contains(seaweedfs::SECRET_KEY), "{text}");
    assert_eq!(contents(&lh, "raw.t", MAIN).await, model_of(0..5, "served"));

    let vending = serve(RestService::new(lh.clone(), None).vending_credentials());
    let client = Lakehouse::connect(&vending.uri, lh.warehouse(), &no_keys)
        .await
        .unwrap();
    client
        .append("raw.t", rows(5..8, "client"), MAIN, HashMap::new())
        .await
        .unwrap();
    let mut model = model_of(0..5, "served");
    model.extend(model_of(5..8, "client"));
    assert_eq!(contents(&client, "raw.t", MAIN).await, model);
    assert_eq!(contents(&lh, "raw.t", MAIN).await, model);
    // The handed-out keys stay out of what the client shows.
    assert!(!format!("{:?}", client.catalog().rest().unwrap()).contains(seaweedfs::SECRET_KEY));
}

/// SeaweedFS's REST catalog sends no Nessie markers: a ref is a ref inside the table there.
#[tokio::test(flavor = "multi_thread")]
async fn seaweedfs_rest_catalog_keeps_refs_inside_the_table() {
    let weed = seaweedfs::shared().await;
    let mut properties = weed.properties();
    properties.insert(
        "credential".into(),
        format!("{}:{}", seaweedfs::ACCESS_KEY, seaweedfs::SECRET_KEY),
    );
    let warehouse = format!("s3://{}", seaweedfs::TABLE_BUCKET);
    let lh = Lakehouse::connect(&weed.iceberg, &warehouse, &properties)
        .await
        .unwrap();
    assert!(!lh.catalog().rest().unwrap().catalog_branches());
    let namespace = format!("ns{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    lh.catalog().create_namespace(&namespace).unwrap();
    let name = format!("{namespace}.t");
    lh.create_table(&name, &schema(), &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    lh.append(&name, rows(0..2, "main"), MAIN, HashMap::new())
        .await
        .unwrap();
    let err = lh
        .append(&name, rows(2..3, "dev"), "dev", HashMap::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no branch or tag dev"), "{err}");
}
