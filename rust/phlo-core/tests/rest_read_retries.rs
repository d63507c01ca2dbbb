//! Transient failures of a REST catalog (`phlo catalog serve`'s service on a real socket):
//! reads (table loads, listings) are sent again, a bounded number of times, and a commit is
//! never sent twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::model::{rows, schema};
use crate::rest::{Server, serve};
use phlo_core::Lakehouse;
use phlo_core::catalog::MAIN;
use phlo_core::rest::RestService;

/// Sends of one GET before a transient failure is the caller's (`http.rs`, `READ_ATTEMPTS`).
const READ_ATTEMPTS: usize = 4;

/// A served lakehouse with table `raw.t`, and a client of it.
async fn served() -> (tempfile::TempDir, Server, Lakehouse) {
    let dir = tempfile::tempdir().unwrap();
    let server_lh = Arc::new(Lakehouse::open(dir.path()).unwrap());
    server_lh.catalog().create_namespace("raw").unwrap();
    let server = serve(RestService::new(server_lh, None));
    let warehouse = format!(
        "file://{}/warehouse",
        dir.path().canonicalize().unwrap().display()
    );
    let lh = Lakehouse::connect(&server.uri, &warehouse, &HashMap::new())
        .await
        .unwrap();
    lh.create_table("raw.t", &schema(), &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    (dir, server, lh)
}

#[tokio::test(flavor = "multi_thread")]
async fn loads_and_listings_outlast_transient_failures() {
    let (_dir, server, lh) = served().await;
    // A 503, then a connection closed unanswered: the third send of the load is served.
    server.fail_reads.store(1, Ordering::SeqCst);
    server.drop_reads.store(1, Ordering::SeqCst);
    lh.load_table("raw.t", MAIN).await.unwrap();
    assert_eq!(server.fail_reads.load(Ordering::SeqCst), 0);
    assert_eq!(server.drop_reads.load(Ordering::SeqCst), 0);

    server.fail_reads.store(READ_ATTEMPTS - 1, Ordering::SeqCst);
    let listed = lh.catalog().list_tables_on(MAIN, "raw").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(server.fail_reads.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_failing_for_good_gives_up_after_bounded_attempts() {
    let (_dir, server, lh) = served().await;
    server.fail_reads.store(100, Ordering::SeqCst);
    let err = lh.load_table("raw.t", MAIN).await.unwrap_err();
    let left = server.fail_reads.swap(0, Ordering::SeqCst);
    assert_eq!(100 - left, READ_ATTEMPTS, "sends of the load");
    assert_eq!(err.code(), "catalog", "{err}");
    assert!(err.to_string().contains("503"), "{err}");
    // A 404 is an answer, not a transient failure.
    let missing = lh.load_table("raw.nope", MAIN).await.unwrap_err();
    assert_eq!(missing.code(), "no_such_table", "{missing}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_commit_answered_5xx_is_not_sent_again() {
    let (_dir, server, lh) = served().await;
    let before = server.commits.load(Ordering::SeqCst);
    server.fail_commits.store(true, Ordering::SeqCst);
    let err = lh
        .append("raw.t", rows(&[(1, "a")]), MAIN, HashMap::new())
        .await
        .unwrap_err();
    server.fail_commits.store(false, Ordering::SeqCst);
    assert_eq!(err.code(), "commit_state_unknown", "{err}");
    assert_eq!(server.commits.load(Ordering::SeqCst) - before, 1);
}
