//! Table pointers (ref, table → metadata file): the one place that knows `main` lives in
//! PyIceberg's `iceberg_tables` and every other ref in `phlo_ref_tables`. Every function runs
//! on the caller's connection or transaction.

use rusqlite::{Connection, OptionalExtension, params};

use super::TableIdent;
use super::refs::MAIN;
use super::sqlite::CATALOG_NAME;
use crate::error::{Context, Result};

/// Rows of `iceberg_tables` that are tables with a pointer (PyIceberg also stores views there).
const MAIN_TABLES: &str = "catalog_name = ?1 AND metadata_location IS NOT NULL
     AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)";

/// The table's metadata file on `ref_name`, if the table is there.
pub(super) fn get(conn: &Connection, ref_name: &str, ident: &TableIdent) -> Result<Option<String>> {
    let found = if ref_name == MAIN {
        conn.query_row(
            "SELECT metadata_location FROM iceberg_tables WHERE catalog_name = ?1
             AND table_namespace = ?2 AND table_name = ?3",
            params![CATALOG_NAME, ident.namespace, ident.name],
            |row| row.get::<_, Option<String>>(0),
        )
    } else {
        conn.query_row(
            "SELECT metadata_location FROM phlo_ref_tables WHERE catalog_name = ?1
             AND ref_name = ?2 AND table_namespace = ?3 AND table_name = ?4",
            params![CATALOG_NAME, ref_name, ident.namespace, ident.name],
            |row| row.get(0),
        )
    };
    Ok(found
        .optional()
        .context(|| format!("reading {ident} on {ref_name}"))?
        .flatten())
}

/// Every table of `ref_name` with its metadata file, ordered by name.
pub(super) fn list(conn: &Connection, ref_name: &str) -> Result<Vec<(TableIdent, String)>> {
    let main_sql = format!(
        "SELECT table_namespace, table_name, metadata_location FROM iceberg_tables
         WHERE {MAIN_TABLES} AND ?2 = ?2 ORDER BY table_namespace, table_name"
    );
    let sql = if ref_name == MAIN {
        main_sql.as_str()
    } else {
        "SELECT table_namespace, table_name, metadata_location FROM phlo_ref_tables
         WHERE catalog_name = ?1 AND ref_name = ?2 ORDER BY table_namespace, table_name"
    };
    let mut stmt = conn
        .prepare(sql)
        .context(|| format!("reading the tables of {ref_name}"))?;
    let rows = stmt
        .query_map(params![CATALOG_NAME, ref_name], |row| {
            Ok((
                TableIdent {
                    namespace: row.get(0)?,
                    name: row.get(1)?,
                },
                row.get(2)?,
            ))
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .context(|| format!("reading the tables of {ref_name}"))?;
    Ok(rows)
}

/// Compare-and-swap of the table's pointer on `ref_name`: `false` (nothing changed) when it is
/// no longer at `from`.
pub(super) fn swap(
    conn: &Connection,
    ref_name: &str,
    ident: &TableIdent,
    from: &str,
    to: &str,
) -> Result<bool> {
    let changed = if ref_name == MAIN {
        conn.execute(
            "UPDATE iceberg_tables SET metadata_location = ?1, previous_metadata_location = ?2
             WHERE catalog_name = ?3 AND table_namespace = ?4 AND table_name = ?5
             AND metadata_location = ?2",
            params![to, from, CATALOG_NAME, ident.namespace, ident.name],
        )
    } else {
        conn.execute(
            "UPDATE phlo_ref_tables SET metadata_location = ?1 WHERE metadata_location = ?2
             AND catalog_name = ?3 AND ref_name = ?4 AND table_namespace = ?5 AND table_name = ?6",
            params![
                to,
                from,
                CATALOG_NAME,
                ref_name,
                ident.namespace,
                ident.name
            ],
        )
    }
    .context(|| format!("committing {ident} on {ref_name}"))?;
    Ok(changed == 1)
}

/// Registers a table on `ref_name` (the caller checked it is not there). On a branch other
/// than `main` it has no fork point, so merging the branch adds it to the target.
pub(super) fn insert(
    conn: &Connection,
    ref_name: &str,
    ident: &TableIdent,
    location: &str,
) -> Result<()> {
    if ref_name == MAIN {
        conn.execute(
            "INSERT INTO iceberg_tables (catalog_name, table_namespace, table_name,
             metadata_location, previous_metadata_location, iceberg_type)
             VALUES (?1, ?2, ?3, ?4, NULL, 'TABLE')",
            params![CATALOG_NAME, ident.namespace, ident.name, location],
        )
    } else {
        conn.execute(
            "INSERT INTO phlo_ref_tables VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
            params![
                CATALOG_NAME,
                ref_name,
                ident.namespace,
                ident.name,
                location
            ],
        )
    }
    .context(|| format!("adding {ident} to {ref_name}"))?;
    Ok(())
}

/// Removes the table from `ref_name` if it is still at `expected`; `false` otherwise.
pub(super) fn remove(
    conn: &Connection,
    ref_name: &str,
    ident: &TableIdent,
    expected: &str,
) -> Result<bool> {
    let removed = if ref_name == MAIN {
        conn.execute(
            "DELETE FROM iceberg_tables WHERE catalog_name = ?1 AND table_namespace = ?2
             AND table_name = ?3 AND metadata_location = ?4",
            params![CATALOG_NAME, ident.namespace, ident.name, expected],
        )
    } else {
        conn.execute(
            "DELETE FROM phlo_ref_tables WHERE catalog_name = ?1 AND ref_name = ?2
             AND table_namespace = ?3 AND table_name = ?4 AND metadata_location = ?5",
            params![
                CATALOG_NAME,
                ref_name,
                ident.namespace,
                ident.name,
                expected
            ],
        )
    }
    .context(|| format!("dropping {ident} on {ref_name}"))?;
    Ok(removed == 1)
}

/// Copies every pointer of `from` to the new ref `to`, each also as its fork point.
pub(super) fn fork(conn: &Connection, from: &str, to: &str) -> Result<()> {
    let main_sql = format!(
        "INSERT INTO phlo_ref_tables SELECT catalog_name, ?2, table_namespace, table_name,
         metadata_location, metadata_location FROM iceberg_tables WHERE {MAIN_TABLES} AND ?3 = ?3"
    );
    let sql = if from == MAIN {
        main_sql.as_str()
    } else {
        "INSERT INTO phlo_ref_tables SELECT catalog_name, ?2, table_namespace, table_name,
         metadata_location, metadata_location FROM phlo_ref_tables
         WHERE catalog_name = ?1 AND ref_name = ?3"
    };
    conn.execute(sql, params![CATALOG_NAME, to, from])
        .context(|| format!("copying the pointers of {from}"))?;
    Ok(())
}

/// `main`'s rows as maintenance lists them (ref, kind, table, pointer, fork point).
pub(super) const MAIN_POINTERS: &str = "SELECT 'main', 'branch', table_namespace, table_name,
     metadata_location, NULL FROM iceberg_tables WHERE catalog_name = ?1
     AND metadata_location IS NOT NULL AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)";
