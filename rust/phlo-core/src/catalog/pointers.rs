//! Table pointers (ref, table → metadata file): the one place that knows `main` lives in
//! PyIceberg's `iceberg_tables` and every other ref in `phlo_ref_tables`. Every function runs
//! on the caller's read or transaction.

use super::db::{Sql, args};
use super::refs::MAIN;
use super::{CATALOG_NAME, TableIdent};
use crate::error::{Context, Result};

/// Rows of `iceberg_tables` that are tables with a pointer (PyIceberg also stores views there).
const MAIN_TABLES: &str = "catalog_name = ?1 AND metadata_location IS NOT NULL
     AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)";

/// The table's metadata file on `ref_name`, if the table is there.
pub(super) fn get(db: &mut dyn Sql, ref_name: &str, ident: &TableIdent) -> Result<Option<String>> {
    let found = if ref_name == MAIN {
        db.query_first(
            "SELECT metadata_location FROM iceberg_tables WHERE catalog_name = ?1
             AND table_namespace = ?2 AND table_name = ?3",
            args![CATALOG_NAME, &ident.namespace, &ident.name],
        )
    } else {
        db.query_first(
            "SELECT metadata_location FROM phlo_ref_tables WHERE catalog_name = ?1
             AND ref_name = ?2 AND table_namespace = ?3 AND table_name = ?4",
            args![CATALOG_NAME, ref_name, &ident.namespace, &ident.name],
        )
    }
    .context(|| format!("reading {ident} on {ref_name}"))?;
    Ok(match found {
        Some(row) => row.opt_text(0)?,
        None => None,
    })
}

/// Every table of `ref_name` with its metadata file, ordered by name.
pub(super) fn list(db: &mut dyn Sql, ref_name: &str) -> Result<Vec<(TableIdent, String)>> {
    let rows = if ref_name == MAIN {
        db.query(
            &format!(
                "SELECT table_namespace, table_name, metadata_location FROM iceberg_tables
                 WHERE {MAIN_TABLES} ORDER BY table_namespace, table_name"
            ),
            args![CATALOG_NAME],
        )
    } else {
        db.query(
            "SELECT table_namespace, table_name, metadata_location FROM phlo_ref_tables
             WHERE catalog_name = ?1 AND ref_name = ?2 ORDER BY table_namespace, table_name",
            args![CATALOG_NAME, ref_name],
        )
    }
    .context(|| format!("reading the tables of {ref_name}"))?;
    rows.iter()
        .map(|row| {
            let ident = TableIdent {
                namespace: row.text(0)?,
                name: row.text(1)?,
            };
            Ok((ident, row.text(2)?))
        })
        .collect()
}

/// Compare-and-swap of the table's pointer on `ref_name`: `false` (nothing changed) when it is
/// no longer at `from`.
pub(super) fn swap(
    db: &mut dyn Sql,
    ref_name: &str,
    ident: &TableIdent,
    from: &str,
    to: &str,
) -> Result<bool> {
    let changed = if ref_name == MAIN {
        db.execute(
            "UPDATE iceberg_tables SET metadata_location = ?1, previous_metadata_location = ?2
             WHERE catalog_name = ?3 AND table_namespace = ?4 AND table_name = ?5
             AND metadata_location = ?2",
            args![to, from, CATALOG_NAME, &ident.namespace, &ident.name],
        )
    } else {
        db.execute(
            "UPDATE phlo_ref_tables SET metadata_location = ?1 WHERE metadata_location = ?2
             AND catalog_name = ?3 AND ref_name = ?4 AND table_namespace = ?5 AND table_name = ?6",
            args![
                to,
                from,
                CATALOG_NAME,
                ref_name,
                &ident.namespace,
                &ident.name
            ],
        )
    }
    .context(|| format!("committing {ident} on {ref_name}"))?;
    #[cfg(test)]
    if changed == 1 {
        moved(to);
    }
    Ok(changed == 1)
}

/// Registers a table on `ref_name` (the caller checked it is not there). On a branch other
/// than `main` it has no fork point, so merging the branch adds it to the target.
pub(super) fn insert(
    db: &mut dyn Sql,
    ref_name: &str,
    ident: &TableIdent,
    location: &str,
) -> Result<()> {
    if ref_name == MAIN {
        db.execute(
            "INSERT INTO iceberg_tables (catalog_name, table_namespace, table_name,
             metadata_location, previous_metadata_location, iceberg_type)
             VALUES (?1, ?2, ?3, ?4, NULL, 'TABLE')",
            args![CATALOG_NAME, &ident.namespace, &ident.name, location],
        )
    } else {
        db.execute(
            "INSERT INTO phlo_ref_tables VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
            args![
                CATALOG_NAME,
                ref_name,
                &ident.namespace,
                &ident.name,
                location
            ],
        )
    }
    .context(|| format!("adding {ident} to {ref_name}"))?;
    #[cfg(test)]
    moved(location);
    Ok(())
}

/// Tells the durability tests that a transaction points a table at `location`.
#[cfg(test)]
fn moved(location: &str) {
    use crate::storage::durable::log;
    log::record(log::Event::PointerMoved(location.to_string()));
}

/// Removes the table from `ref_name` if it is still at `expected`; `false` otherwise.
pub(super) fn remove(
    db: &mut dyn Sql,
    ref_name: &str,
    ident: &TableIdent,
    expected: &str,
) -> Result<bool> {
    let removed = if ref_name == MAIN {
        db.execute(
            "DELETE FROM iceberg_tables WHERE catalog_name = ?1 AND table_namespace = ?2
             AND table_name = ?3 AND metadata_location = ?4",
            args![CATALOG_NAME, &ident.namespace, &ident.name, expected],
        )
    } else {
        db.execute(
            "DELETE FROM phlo_ref_tables WHERE catalog_name = ?1 AND ref_name = ?2
             AND table_namespace = ?3 AND table_name = ?4 AND metadata_location = ?5",
            args![
                CATALOG_NAME,
                ref_name,
                &ident.namespace,
                &ident.name,
                expected
            ],
        )
    }
    .context(|| format!("dropping {ident} on {ref_name}"))?;
    Ok(removed == 1)
}

/// Copies every pointer of `from` to the new ref `to`, each also as its fork point.
pub(super) fn fork(db: &mut dyn Sql, from: &str, to: &str) -> Result<()> {
    // The new ref's name is a parameter in a SELECT list: cast, so PostgreSQL knows its type.
    if from == MAIN {
        db.execute(
            &format!(
                "INSERT INTO phlo_ref_tables SELECT catalog_name, CAST(?2 AS VARCHAR(255)),
                 table_namespace, table_name, metadata_location, metadata_location
                 FROM iceberg_tables WHERE {MAIN_TABLES}"
            ),
            args![CATALOG_NAME, to],
        )
    } else {
        db.execute(
            "INSERT INTO phlo_ref_tables SELECT catalog_name, CAST(?2 AS VARCHAR(255)),
             table_namespace, table_name, metadata_location, metadata_location FROM phlo_ref_tables
             WHERE catalog_name = ?1 AND ref_name = ?3",
            args![CATALOG_NAME, to, from],
        )
    }
    .context(|| format!("copying the pointers of {from}"))?;
    Ok(())
}

/// `main`'s rows as maintenance lists them (ref, kind, table, pointer, fork point).
pub(super) const MAIN_POINTERS: &str = "SELECT 'main', 'branch', table_namespace, table_name,
     metadata_location, NULL FROM iceberg_tables WHERE catalog_name = ?1
     AND metadata_location IS NOT NULL AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)";
