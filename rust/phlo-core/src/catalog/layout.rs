//! The catalog database's tables: PyIceberg's `SqlCatalog` v1 layout, phlo's refs and commit
//! log beside it, and in-place upgrades of older SQLite files. Opening is safe when several
//! processes open an old file at once: the upgrade runs in one IMMEDIATE transaction that checks
//! again what is missing, so exactly one process applies each change. PostgreSQL gets the same
//! tables from [`postgres_ddl`].

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Context, Result};

const CREATE: &str = "
CREATE TABLE IF NOT EXISTS iceberg_tables (
    catalog_name VARCHAR(255) NOT NULL,
    table_namespace VARCHAR(255) NOT NULL,
    table_name VARCHAR(255) NOT NULL,
    metadata_location VARCHAR(1000),
    previous_metadata_location VARCHAR(1000),
    iceberg_type VARCHAR(5),
    PRIMARY KEY (catalog_name, table_namespace, table_name)
);
CREATE TABLE IF NOT EXISTS iceberg_namespace_properties (
    catalog_name VARCHAR(255) NOT NULL,
    namespace VARCHAR(255) NOT NULL,
    property_key VARCHAR(255) NOT NULL,
    property_value VARCHAR(1000) NOT NULL,
    PRIMARY KEY (catalog_name, namespace, property_key)
);
CREATE TABLE IF NOT EXISTS phlo_refs (
    catalog_name VARCHAR(255) NOT NULL,
    ref_name VARCHAR(255) NOT NULL,
    ref_type VARCHAR(6) NOT NULL CHECK (ref_type IN ('branch', 'tag')),
    source_ref VARCHAR(255) NOT NULL,
    created_at INTEGER NOT NULL,
    owner VARCHAR(255),
    PRIMARY KEY (catalog_name, ref_name)
);
CREATE TABLE IF NOT EXISTS phlo_ref_tables (
    catalog_name VARCHAR(255) NOT NULL,
    ref_name VARCHAR(255) NOT NULL,
    table_namespace VARCHAR(255) NOT NULL,
    table_name VARCHAR(255) NOT NULL,
    metadata_location VARCHAR(1000) NOT NULL,
    base_location VARCHAR(1000),
    PRIMARY KEY (catalog_name, ref_name, table_namespace, table_name)
);
CREATE TABLE IF NOT EXISTS phlo_commits (
    commit_id VARCHAR(36) NOT NULL PRIMARY KEY,
    catalog_name VARCHAR(255) NOT NULL,
    ref_name VARCHAR(255) NOT NULL,
    tables VARCHAR(4000) NOT NULL,
    message VARCHAR(4000) NOT NULL,
    author VARCHAR(255) NOT NULL,
    created_at INTEGER NOT NULL,
    run_id VARCHAR(255),
    properties VARCHAR(4000) NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS phlo_commit_tables (
    commit_id VARCHAR(36) NOT NULL,
    table_namespace VARCHAR(255) NOT NULL,
    table_name VARCHAR(255) NOT NULL,
    metadata_location VARCHAR(1000) NOT NULL,
    PRIMARY KEY (commit_id, table_namespace, table_name)
);
CREATE TABLE IF NOT EXISTS phlo_orphan_fence (
    catalog_name VARCHAR(255) NOT NULL PRIMARY KEY,
    cutoff_ms INTEGER NOT NULL
);";

/// Tables every catalog has; a file missing one of them is new or from an older phlo.
const TABLES: [&str; 7] = [
    "iceberg_tables",
    "iceberg_namespace_properties",
    "phlo_refs",
    "phlo_ref_tables",
    "phlo_commits",
    "phlo_commit_tables",
    "phlo_orphan_fence",
];

/// Columns added after a table's first release (PyIceberg's v0 → v1 `iceberg_type` among
/// them), added in place to older files.
const ADDED_COLUMNS: [(&str, &str); 3] = [
    ("iceberg_tables", "iceberg_type VARCHAR(5)"),
    (
        "phlo_commits",
        "properties VARCHAR(4000) NOT NULL DEFAULT '{}'",
    ),
    ("phlo_refs", "owner VARCHAR(255)"),
];

/// Brings the file to the current layout; only reads when it is there already.
pub(super) fn ensure(conn: &mut Connection) -> Result<()> {
    let tables_exist = |conn: &Connection| {
        TABLES
            .iter()
            .all(|t| conn.prepare(&format!("SELECT 1 FROM {t} LIMIT 0")).is_ok())
    };
    if tables_exist(conn) && missing_columns(conn).is_empty() {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context(|| "locking the catalog to create or upgrade it".into())?;
    tx.execute_batch(CREATE)
        .context(|| "creating catalog tables".into())?;
    for (table, column) in missing_columns(&tx) {
        tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column}"))
            .context(|| format!("upgrading {table}: adding {column}"))?;
    }
    tx.commit()
        .context(|| "committing the catalog upgrade".into())
}

/// The statements that bring a PostgreSQL database to the current layout; each is a no-op when
/// its table or column is there (PyIceberg may have created its tables first). Timestamps are
/// milliseconds: `BIGINT` there (SQLite's `INTEGER` is 64-bit already).
#[cfg(feature = "postgres")]
pub(super) fn postgres_ddl() -> Vec<String> {
    let create = CREATE
        .split(';')
        .filter(|sql| !sql.trim().is_empty())
        .map(|sql| sql.replace("INTEGER", "BIGINT"));
    let add = ADDED_COLUMNS
        .iter()
        .map(|(table, column)| format!("ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column}"));
    create.chain(add).collect()
}

/// Queries that fail unless every table and added column is there.
#[cfg(feature = "postgres")]
pub(super) fn probes() -> impl Iterator<Item = String> {
    let tables = TABLES.iter().map(|t| format!("SELECT 1 FROM {t} LIMIT 0"));
    let columns = ADDED_COLUMNS.iter().map(|(table, column)| {
        let name = column.split_whitespace().next().unwrap_or_default();
        format!("SELECT {name} FROM {table} LIMIT 0")
    });
    tables.chain(columns)
}

/// Added columns that existing tables lack.
fn missing_columns(conn: &Connection) -> Vec<(&'static str, &'static str)> {
    ADDED_COLUMNS
        .into_iter()
        .filter(|(table, column)| {
            let name = column.split_whitespace().next().unwrap_or_default();
            let table_exists = conn
                .prepare(&format!("SELECT 1 FROM {table} LIMIT 0"))
                .is_ok();
            table_exists
                && conn
                    .prepare(&format!("SELECT {name} FROM {table} LIMIT 0"))
                    .is_err()
        })
        .collect()
}
