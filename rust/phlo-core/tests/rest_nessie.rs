//! phlo's REST client on a Nessie-style server: `phlo catalog serve`'s service reached under
//! Nessie's `/iceberg` base path, whose `/v1/config` says `nessie.is-nessie-catalog` and
//! `nessie.prefix-pattern`. There a ref is a catalog branch with a prefix of its own
//! (`dev|<warehouse>`), not a ref inside each table: reads, appends, merges, creates and
//! transactions on `dev` move the served catalog's branch `dev` and leave `main` alone.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{contents, model_of, rows, schema, upsert};
use crate::rest::{Server, serve};
use phlo_core::Lakehouse;
use phlo_core::catalog::{CommitMeta, MAIN, RefKind};
use phlo_core::merge::{MergeOptions, WriteMode};
use phlo_core::rest::RestService;

struct Fixture {
    dir: tempfile::TempDir,
    served: Arc<Lakehouse>,
    server: Server,
}

/// A served lakehouse with `raw.t` holding `(1, main)` on main and a catalog branch `dev`.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let served = Arc::new(Lakehouse::open(dir.path()).unwrap());
    served.catalog().create_namespace("raw").unwrap();
    served
        .create_table("raw.t", &schema(), &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    served
        .append("raw.t", rows(&[(1, "main")]), MAIN, HashMap::new())
        .await
        .unwrap();
    served
        .catalog()
        .create_ref("dev", RefKind::Branch, MAIN)
        .unwrap();
    let server = serve(RestService::new(served.clone(), None));
    Fixture {
        dir,
        served,
        server,
    }
}

impl Fixture {
    /// A client of the server at `uri_path` (`/iceberg`: Nessie-style).
    async fn client(&self, uri_path: &str) -> Lakehouse {
        let warehouse = format!(
            "file://{}/warehouse",
            self.dir.path().canonicalize().unwrap().display()
        );
        let uri = format!("{}{uri_path}", self.server.uri);
        Lakehouse::connect(&uri, &warehouse, &HashMap::new())
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ref_is_a_catalog_branch_on_a_nessie_style_server() {
    let fx = fixture().await;
    let lh = fx.client("/iceberg").await;
    assert!(lh.catalog().rest().unwrap().catalog_branches());
    assert_eq!(lh.catalog().ref_kind("dev").unwrap(), Some(RefKind::Branch));
    assert_eq!(lh.catalog().ref_kind("nope").unwrap(), None);

    lh.append("raw.t", rows(&[(2, "dev")]), "dev", HashMap::new())
        .await
        .unwrap();
    let mut options = MergeOptions {
        ref_name: "dev".into(),
        ..upsert(Some(WriteMode::MergeOnRead))
    };
    lh.merge("raw.t", rows(&[(1, "dev-merged")]), &options)
        .await
        .unwrap();
    options.write_mode = Some(WriteMode::CopyOnWrite);
    lh.merge("raw.t", rows(&[(3, "dev-cow")]), &options)
        .await
        .unwrap();
    // A transaction on dev lands on dev, with a table created there.
    let tx = lh.catalog().create_internal_branch("tx/", "dev").unwrap();
    lh.append("raw.t", rows(&[(4, "tx")]), &tx, HashMap::new())
        .await
        .unwrap();
    lh.merge_branch(&tx, "dev", &CommitMeta::default())
        .await
        .unwrap();
    lh.catalog().delete_branch(&tx).unwrap();
    lh.create_table("raw.only_dev", &schema(), &[], HashMap::new(), "dev")
        .await
        .unwrap();

    let dev = model_of(&[(1, "dev-merged"), (2, "dev"), (3, "dev-cow"), (4, "tx")]);
    let main = model_of(&[(1, "main")]);
    // The served catalog's branch dev moved; its main, and every table ref of main, did not.
    assert_eq!(contents(&fx.served, "raw.t", "dev").await, dev);
    assert_eq!(contents(&fx.served, "raw.t", MAIN).await, main);
    let on_main = fx.served.load_table("raw.t", MAIN).await.unwrap();
    assert!(on_main.metadata.snapshot_for_ref("dev").is_none());
    let dev_tables = fx.served.catalog().list_tables_on("dev", "raw").unwrap();
    let main_tables = fx.served.catalog().list_tables_on(MAIN, "raw").unwrap();
    assert_eq!((dev_tables.len(), main_tables.len()), (2, 1));
    // The client reads the same, on both refs.
    assert_eq!(contents(&lh, "raw.t", "dev").await, dev);
    assert_eq!(contents(&lh, "raw.t", MAIN).await, main);
    // The log of the served catalog has every commit on dev.
    let log = fx.served.catalog().log(Some("dev"), 10).unwrap();
    assert!(log.len() >= 5, "{log:?}");

    // A client whose URI names the branch works on it as its main.
    let on_dev = fx.client("/iceberg/dev").await;
    assert_eq!(contents(&on_dev, "raw.t", MAIN).await, dev);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_refs_and_branch_operations_are_typed_errors_naming_the_fix() {
    let fx = fixture().await;
    let lh = fx.client("/iceberg").await;
    let before = contents(&fx.served, "raw.t", MAIN).await;

    let err = lh
        .append("raw.t", rows(&[(9, "x")]), "nope", HashMap::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input", "{err}");
    let text = err.to_string();
    assert!(text.contains("ref nope does not exist"), "{text}");
    assert!(text.contains("branch create"), "{text}");
    let err = lh.catalog().list_tables_on("nope", "raw").unwrap_err();
    assert!(err.to_string().contains("ref nope does not exist"), "{err}");

    // Creating, merging and deleting branches is the server's own API, not Iceberg REST.
    let err = lh
        .catalog()
        .create_ref("feature", RefKind::Branch, MAIN)
        .unwrap_err();
    assert_eq!(err.code(), "config", "{err}");
    assert!(err.to_string().contains("server's own API"), "{err}");
    let err = lh
        .merge_branch("dev", MAIN, &CommitMeta::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "config", "{err}");
    assert!(err.to_string().contains("server's own API"), "{err}");
    let err = lh.catalog().delete_branch("dev").unwrap_err();
    assert_eq!(err.code(), "config", "{err}");

    assert_eq!(contents(&fx.served, "raw.t", MAIN).await, before);
    assert!(fx.served.catalog().ref_kind("feature").unwrap().is_none());
    assert!(fx.served.catalog().ref_kind("dev").unwrap().is_some());
}

/// At the server's root (not Nessie's `/iceberg`) the server is a plain Iceberg REST catalog,
/// and a ref stays a ref inside the table, as on any other server.
#[tokio::test(flavor = "multi_thread")]
async fn at_the_root_a_ref_is_still_a_table_ref() {
    let fx = fixture().await;
    let lh = fx.client("").await;
    assert!(!lh.catalog().rest().unwrap().catalog_branches());
    let err = lh
        .append("raw.t", rows(&[(2, "dev")]), "dev", HashMap::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no branch or tag dev"), "{err}");
}
