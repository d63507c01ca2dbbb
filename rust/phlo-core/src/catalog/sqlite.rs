//! The embedded catalog: one SQLite file laid out exactly like PyIceberg's `SqlCatalog` (v1
//! schema), so PyIceberg reads and writes the same tables. A commit is a compare-and-swap of
//! `metadata_location`, the same protocol PyIceberg and iceberg-rust use.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, params,
};

use super::{TableIdent, validate_name};
use crate::error::{Context, Error, Result};

/// The `catalog_name` column value phlo uses; PyIceberg must open the catalog with this name.
pub const CATALOG_NAME: &str = "phlo";

pub struct SqliteCatalog {
    path: PathBuf,
    /// The connection and the process that opened it: SQLite connections must not be used
    /// across a fork (Dagster and multiprocessing fork workers), so a child reopens its own.
    conn: Mutex<(u32, Connection)>,
}

impl SqliteCatalog {
    /// Opens (creating if needed) the catalog database and brings it to the current layout
    /// (see [`super::layout`]); older files are upgraded in place.
    pub fn open(path: &Path) -> Result<Self> {
        let mut conn = connect(path)?;
        super::layout::ensure(&mut conn)?;
        Ok(Self {
            path: path.to_path_buf(),
            conn: Mutex::new((std::process::id(), conn)),
        })
    }

    /// Runs `change` in one SQLite transaction, committed only when it returns `Ok`. The
    /// transaction is IMMEDIATE: it takes the write lock up front, so a writer that must wait
    /// waits in the busy handler (a deferred transaction that reads, then writes, fails with
    /// "database is locked" at the upgrade instead).
    pub(super) fn in_transaction<T>(
        &self,
        change: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context(|| "starting a catalog transaction".into())?;
        let value = change(&tx)?;
        tx.commit()
            .context(|| "committing a catalog transaction".into())?;
        Ok(value)
    }

    pub(super) fn conn(&self) -> Result<ConnGuard<'_>> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back), so a poisoned lock is safe to reuse.
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if guard.0 != std::process::id() {
            let inherited = std::mem::replace(&mut guard.1, connect(&self.path)?);
            // Closing the parent's connection from the child could disturb the parent's locks.
            std::mem::forget(inherited);
            guard.0 = std::process::id();
        }
        Ok(ConnGuard(guard))
    }

    pub fn namespace_exists(&self, namespace: &str) -> Result<bool> {
        let conn = self.conn()?;
        let found: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM iceberg_namespace_properties WHERE catalog_name = ?1 AND namespace = ?2
                 UNION SELECT 1 FROM iceberg_tables WHERE catalog_name = ?1 AND table_namespace = ?2
                 LIMIT 1",
                params![CATALOG_NAME, namespace],
                |row| row.get(0),
            )
            .optional()
            .context(|| format!("looking up namespace {namespace}"))?;
        Ok(found.is_some())
    }

    pub fn create_namespace(&self, namespace: &str) -> Result<()> {
        for part in namespace.split('.') {
            validate_name(part, "namespace")?;
        }
        if self.namespace_exists(namespace)? {
            return Err(Error::NamespaceAlreadyExists(namespace.into()));
        }
        self.conn()?
            .execute(
                "INSERT INTO iceberg_namespace_properties VALUES (?1, ?2, 'exists', 'true')",
                params![CATALOG_NAME, namespace],
            )
            .map_err(|e| match e.sqlite_error_code() {
                Some(ErrorCode::ConstraintViolation) => {
                    Error::NamespaceAlreadyExists(namespace.into())
                }
                _ => Error::Catalog {
                    message: format!("creating namespace {namespace}"),
                    source: e,
                },
            })?;
        Ok(())
    }

    pub fn list_namespaces(&self) -> Result<Vec<String>> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(
                "SELECT namespace FROM iceberg_namespace_properties WHERE catalog_name = ?1
                 UNION SELECT table_namespace FROM iceberg_tables WHERE catalog_name = ?1
                 ORDER BY 1",
            )
            .context(|| "listing namespaces".into())?;
        let rows = stmt
            .query_map(params![CATALOG_NAME], |row| row.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
            .context(|| "listing namespaces".into())?;
        Ok(rows)
    }

    pub fn drop_namespace(&self, namespace: &str) -> Result<()> {
        if !self.namespace_exists(namespace)? {
            return Err(Error::NoSuchNamespace(namespace.into()));
        }
        if !self.list_tables(namespace)?.is_empty() {
            return Err(Error::NamespaceNotEmpty(namespace.into()));
        }
        self.conn()?
            .execute(
                "DELETE FROM iceberg_namespace_properties WHERE catalog_name = ?1 AND namespace = ?2",
                params![CATALOG_NAME, namespace],
            )
            .context(|| format!("dropping namespace {namespace}"))?;
        Ok(())
    }

    pub fn list_tables(&self, namespace: &str) -> Result<Vec<TableIdent>> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(
                "SELECT table_name FROM iceberg_tables WHERE catalog_name = ?1 AND table_namespace = ?2
                 AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL) ORDER BY table_name",
            )
            .context(|| format!("listing tables of {namespace}"))?;
        let names = stmt
            .query_map(params![CATALOG_NAME, namespace], |row| {
                row.get::<_, String>(0)
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .context(|| format!("listing tables of {namespace}"))?;
        Ok(names
            .into_iter()
            .map(|name| TableIdent {
                namespace: namespace.into(),
                name,
            })
            .collect())
    }

    /// The current metadata file of a table on `main`.
    pub fn metadata_location(&self, ident: &TableIdent) -> Result<String> {
        super::pointers::get(&*self.conn()?, super::MAIN, ident)?
            .ok_or_else(|| Error::NoSuchTable(ident.to_string()))
    }

    /// Compare-and-swap of `main`'s pointer as another engine (PyIceberg) does it: no log entry.
    /// Tests use it to play that other writer; phlo commits through `swap_metadata_location_on`.
    #[cfg(test)]
    pub fn swap_metadata_location(
        &self,
        ident: &TableIdent,
        expected: &str,
        new: &str,
    ) -> Result<bool> {
        let changed = self
            .conn()?
            .execute(
                "UPDATE iceberg_tables SET metadata_location = ?1, previous_metadata_location = ?2
                 WHERE catalog_name = ?3 AND table_namespace = ?4 AND table_name = ?5
                 AND metadata_location = ?2",
                params![new, expected, CATALOG_NAME, ident.namespace, ident.name],
            )
            .context(|| format!("committing table {ident}"))?;
        Ok(changed == 1)
    }
}

pub(super) struct ConnGuard<'a>(MutexGuard<'a, (u32, Connection)>);

impl Deref for ConnGuard<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.0.1
    }
}

impl DerefMut for ConnGuard<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.0.1
    }
}

fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).context(|| format!("opening {}", path.display()))?;
    // Concurrent writers (other processes, PyIceberg) wait for the lock instead of failing.
    conn.busy_timeout(Duration::from_secs(30))
        .context(|| "setting busy timeout".into())?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{CommitMeta, MAIN};

    fn ident() -> TableIdent {
        TableIdent {
            namespace: "raw".into(),
            name: "events".into(),
        }
    }

    #[test]
    fn compare_and_swap_only_moves_from_the_expected_location() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = SqliteCatalog::open(&dir.path().join("catalog.db")).unwrap();
        catalog.create_namespace("raw").unwrap();
        catalog
            .create_table_on(MAIN, &ident(), "m0", &CommitMeta::default())
            .unwrap();
        assert!(
            catalog
                .swap_metadata_location(&ident(), "m0", "m1")
                .unwrap()
        );
        // A writer still holding m0 lost the race and must not overwrite m1.
        assert!(
            !catalog
                .swap_metadata_location(&ident(), "m0", "m2")
                .unwrap()
        );
        assert_eq!(catalog.metadata_location(&ident()).unwrap(), "m1");
    }

    #[test]
    fn duplicate_and_missing_names_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = SqliteCatalog::open(&dir.path().join("catalog.db")).unwrap();
        assert_eq!(
            catalog
                .create_table_on(MAIN, &ident(), "m0", &CommitMeta::default())
                .unwrap_err()
                .code(),
            "no_such_namespace"
        );
        catalog.create_namespace("raw").unwrap();
        assert_eq!(
            catalog.create_namespace("raw").unwrap_err().code(),
            "namespace_already_exists"
        );
        catalog
            .create_table_on(MAIN, &ident(), "m0", &CommitMeta::default())
            .unwrap();
        assert_eq!(
            catalog
                .create_table_on(MAIN, &ident(), "m9", &CommitMeta::default())
                .unwrap_err()
                .code(),
            "table_already_exists"
        );
        let other = TableIdent {
            namespace: "raw".into(),
            name: "nope".into(),
        };
        assert_eq!(
            catalog.metadata_location(&other).unwrap_err().code(),
            "no_such_table"
        );
        assert_eq!(
            catalog.drop_namespace("raw").unwrap_err().code(),
            "namespace_not_empty"
        );
        assert_eq!(catalog.drop_table_on(MAIN, &ident()).unwrap(), "m0");
        catalog.drop_namespace("raw").unwrap();
    }

    #[test]
    fn upgrades_a_v0_catalog_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE iceberg_tables (catalog_name VARCHAR(255) NOT NULL,
             table_namespace VARCHAR(255) NOT NULL, table_name VARCHAR(255) NOT NULL,
             metadata_location VARCHAR(1000), previous_metadata_location VARCHAR(1000),
             PRIMARY KEY (catalog_name, table_namespace, table_name));
             INSERT INTO iceberg_tables VALUES ('phlo', 'raw', 'old', 'm0', NULL);",
        )
        .unwrap();
        drop(conn);
        let catalog = SqliteCatalog::open(&path).unwrap();
        let old = TableIdent {
            namespace: "raw".into(),
            name: "old".into(),
        };
        assert_eq!(catalog.metadata_location(&old).unwrap(), "m0");
        assert_eq!(catalog.list_tables("raw").unwrap(), vec![old]);
    }
}
