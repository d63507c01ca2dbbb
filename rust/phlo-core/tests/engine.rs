//! The engine's integration tests, one module per file of this folder, built as one test binary:
//! each binary links the whole dependency graph (iceberg, arrow, parquet, the S3 stack), so one
//! link instead of one per file saves minutes of a cold `make test` and gigabytes of target dir.
//! Run one file's tests with its module path: `cargo test -p phlo-core --test engine merge::`.
//!
//! `#[path]` loads each file as a module that owns its folder, so the modules a file declares
//! itself (`mod rest;`) resolve next to it, as when it was its own crate.
//! Helpers several files share are declared once, here, and reached as `crate::seaweedfs`,
//! `crate::support`, `crate::model`, `crate::rest`.
//! `streaming.rs` stays a binary of its own: its counting global allocator must see only its
//! own test's allocations. A new test file must be declared here (autotests are off); the test
//! at the bottom fails when one is not.

#[path = "branch_conflicts.rs"]
mod branch_conflicts;
#[path = "compaction.rs"]
mod compaction;
#[path = "delete_changes.rs"]
mod delete_changes;
#[path = "delete_files.rs"]
mod delete_files;
#[path = "field_ids.rs"]
mod field_ids;
#[path = "lakehouse.rs"]
mod lakehouse;
#[path = "maintenance.rs"]
mod maintenance;
#[path = "manifest_pruning.rs"]
mod manifest_pruning;
#[path = "merge.rs"]
mod merge;
#[path = "merge_on_read.rs"]
mod merge_on_read;
// Object storage needs the `s3` feature (opendal), as does the SeaweedFS helper it shares with
// the REST catalog tests. The model of a table is shared by both and the Nessie tests.
#[cfg_attr(not(feature = "s3"), allow(dead_code))]
#[path = "support/model.rs"]
mod model;
#[cfg(feature = "s3")]
#[path = "object_storage.rs"]
mod object_storage;
#[path = "postgres_catalog.rs"]
mod postgres_catalog;
#[path = "quality.rs"]
mod quality;
#[path = "quality_dictionaries.rs"]
mod quality_dictionaries;
#[path = "quality_dictionary_pages.rs"]
mod quality_dictionary_pages;
#[cfg(feature = "s3")]
#[path = "rest_catalog.rs"]
mod rest_catalog;
#[path = "rest_nessie.rs"]
mod rest_nessie;
#[path = "rest_read_retries.rs"]
mod rest_read_retries;
#[path = "rest_service.rs"]
mod rest_service;
#[cfg(feature = "s3")]
#[path = "rest_vending.rs"]
mod rest_vending;
#[path = "scan_row_groups.rs"]
mod scan_row_groups;
#[cfg(feature = "s3")]
mod seaweedfs;
mod support;
#[path = "write_cleanup.rs"]
mod write_cleanup;
// A `phlo catalog serve` service on a socket, with fault-injection switches rest_catalog.rs
// (behind `s3`) and rest_read_retries.rs use.
#[cfg_attr(not(feature = "s3"), allow(dead_code))]
mod rest;

/// Every `*.rs` file of this folder is a module here, or a binary of its own in Cargo.toml:
/// with autotests off, an undeclared file would silently never run.
#[test]
fn every_test_file_is_declared() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let manifest = include_str!("../Cargo.toml");
    let here = include_str!("engine.rs");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let own_binary = format!("path = \"tests/{name}\"");
        let module = format!("#[path = \"{name}\"]");
        if name.ends_with(".rs") && !manifest.contains(&own_binary) && !here.contains(&module) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "test files {missing:?} in {} are not run: declare each in tests/engine.rs \
         (`#[path = \"FILE.rs\"] mod FILE;`) or as a [[test]] in rust/phlo-core/Cargo.toml",
        dir.display()
    );
}
