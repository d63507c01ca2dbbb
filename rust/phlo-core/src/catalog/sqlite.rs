//! The embedded backend: one SQLite file laid out exactly like PyIceberg's `SqlCatalog` (v1
//! schema), so PyIceberg reads and writes the same tables. A commit is a compare-and-swap of
//! `metadata_location`, the same protocol PyIceberg and iceberg-rust use.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql, TransactionBehavior, params_from_iter};

use super::db::{Cell, DbError, PerProcess, Row, Sql, Value};
use crate::error::{Context, Result};

pub(super) struct Sqlite {
    conn: PerProcess<Connection>,
}

impl Sqlite {
    pub(super) fn open(path: &Path) -> Result<Self> {
        let path: PathBuf = path.to_path_buf();
        let mut conn = connect(&path)?;
        super::layout::ensure(&mut conn)?;
        Ok(Self {
            conn: PerProcess::new(conn, move || connect(&path), drop),
        })
    }

    /// A deferred transaction: reads see one state of the file.
    pub(super) fn read<T>(&self, mut read: impl FnMut(&mut dyn Sql) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.get()?;
        let tx = conn
            .transaction()
            .context(|| "reading the catalog".into())?;
        let value = read(&mut SqliteSql(&tx))?;
        tx.commit().context(|| "reading the catalog".into())?;
        Ok(value)
    }

    /// The transaction is IMMEDIATE: it takes the write lock up front, so a writer that must wait
    /// waits in the busy handler (a deferred transaction that reads, then writes, fails with
    /// "database is locked" at the upgrade instead). Holding the lock makes the transaction
    /// serial: nothing it read can change before it commits.
    pub(super) fn write<T>(&self, mut change: impl FnMut(&mut dyn Sql) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.get()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context(|| "starting a catalog transaction".into())?;
        let value = change(&mut SqliteSql(&tx))?;
        tx.commit()
            .context(|| "committing a catalog transaction".into())?;
        Ok(value)
    }
}

struct SqliteSql<'a>(&'a Connection);

impl Sql for SqliteSql<'_> {
    fn execute(&mut self, sql: &str, args: &[Value<'_>]) -> Result<u64, DbError> {
        let changed = self
            .0
            .prepare_cached(sql)?
            .execute(params_from_iter(args))?;
        Ok(changed as u64)
    }

    fn query(&mut self, sql: &str, args: &[Value<'_>]) -> Result<Vec<Row>, DbError> {
        let mut stmt = self.0.prepare_cached(sql)?;
        let columns = stmt.column_count();
        let rows = stmt
            .query_map(params_from_iter(args), |row| {
                let cells = (0..columns)
                    .map(|i| {
                        Ok(match row.get_ref(i)? {
                            ValueRef::Null => Cell::Null,
                            ValueRef::Integer(int) => Cell::Int(int),
                            ValueRef::Real(real) => Cell::Text(real.to_string()),
                            ValueRef::Text(text) | ValueRef::Blob(text) => {
                                Cell::Text(String::from_utf8_lossy(text).into_owned())
                            }
                        })
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(Row(cells))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

impl ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(int) => ToSqlOutput::Borrowed(ValueRef::Integer(int)),
            Value::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
        })
    }
}

fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).context(|| format!("opening {}", path.display()))?;
    // Concurrent writers (other processes, PyIceberg) wait for the lock instead of failing.
    conn.busy_timeout(Duration::from_secs(30))
        .context(|| "setting busy timeout".into())?;
    // A committed pointer must survive a power loss. The file keeps SQLite's default rollback
    // journal (PyIceberg opens it too): a transaction commits by deleting its journal, and only
    // EXTRA also syncs the folder after that delete; with FULL, a journal that comes back after
    // a crash rolls the commit back. (In WAL mode, should someone switch the file to it, EXTRA
    // syncs as FULL does, which is durable there.) It costs one folder sync per write.
    conn.pragma_update(None, "synchronous", "EXTRA")
        .context(|| "setting synchronous = EXTRA".into())?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, CommitMeta, MAIN, TableIdent};

    fn ident() -> TableIdent {
        TableIdent {
            namespace: "raw".into(),
            name: "events".into(),
        }
    }

    #[test]
    fn compare_and_swap_only_moves_from_the_expected_location() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open_sqlite(&dir.path().join("catalog.db")).unwrap();
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
        let catalog = Catalog::open_sqlite(&dir.path().join("catalog.db")).unwrap();
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
    fn commits_are_synced_for_the_journal_mode_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Sqlite::open(&dir.path().join("catalog.db")).unwrap();
        let conn = sqlite.conn.get().unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        let synchronous: i64 = conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .unwrap();
        // 3 = EXTRA: in the rollback journal's `delete` mode, the one a commit survives in.
        assert_eq!((mode.as_str(), synchronous), ("delete", 3));
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
        let catalog = Catalog::open_sqlite(&path).unwrap();
        let old = TableIdent {
            namespace: "raw".into(),
            name: "old".into(),
        };
        assert_eq!(catalog.metadata_location(&old).unwrap(), "m0");
        assert_eq!(catalog.list_tables("raw").unwrap(), vec![old]);
    }
}
