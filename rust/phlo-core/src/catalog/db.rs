//! The one SQL interface the catalog's queries run on, whichever database holds the catalog.
//! Every query is written once, in SQL that SQLite and PostgreSQL both accept, with `?N`
//! placeholders (the PostgreSQL backend rewrites them to `$N`); values and rows are the few types
//! the catalog stores: text, 64-bit integers and NULL.

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};

use crate::error::{Context, Error, Result};

/// A database error of either backend, kept as the source of [`Error::Catalog`].
pub(super) type DbError = Box<dyn std::error::Error + Send + Sync>;

/// A query parameter.
#[derive(Debug, Clone, Copy)]
pub(super) enum Value<'a> {
    Null,
    Int(i64),
    Text(&'a str),
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(text: &'a str) -> Self {
        Value::Text(text)
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(text: &'a String) -> Self {
        Value::Text(text)
    }
}

impl From<i64> for Value<'_> {
    fn from(int: i64) -> Self {
        Value::Int(int)
    }
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(text: Option<&'a str>) -> Self {
        text.map_or(Value::Null, Value::Text)
    }
}

impl<'a> From<&'a Option<String>> for Value<'a> {
    fn from(text: &'a Option<String>) -> Self {
        Value::from(text.as_deref())
    }
}

/// `args![a, b]`: the parameters `?1`, `?2` of a query.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        &[$($crate::catalog::db::Value::from($value)),*]
    };
}
pub(super) use args;

/// A value read from a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cell {
    Null,
    Int(i64),
    Text(String),
}

/// One result row.
#[derive(Debug)]
pub(super) struct Row(pub(super) Vec<Cell>);

impl Row {
    pub(super) fn opt_text(&self, column: usize) -> Result<Option<String>> {
        match self.cell(column)? {
            Cell::Null => Ok(None),
            Cell::Text(text) => Ok(Some(text.clone())),
            Cell::Int(_) => Err(self.mismatch(column, "text")),
        }
    }

    pub(super) fn text(&self, column: usize) -> Result<String> {
        self.opt_text(column)?
            .ok_or_else(|| self.mismatch(column, "text"))
    }

    pub(super) fn int(&self, column: usize) -> Result<i64> {
        match self.cell(column)? {
            Cell::Int(int) => Ok(*int),
            _ => Err(self.mismatch(column, "an integer")),
        }
    }

    fn cell(&self, column: usize) -> Result<&Cell> {
        self.0
            .get(column)
            .ok_or_else(|| self.mismatch(column, "a column"))
    }

    fn mismatch(&self, column: usize, expected: &str) -> Error {
        Error::Internal {
            context: "reading the catalog".into(),
            message: format!("column {column} of {:?} is not {expected}", self.0),
        }
    }
}

/// A transaction (or a read) on the catalog database.
pub(super) trait Sql {
    /// Runs a statement; returns the number of rows it changed.
    fn execute(&mut self, sql: &str, args: &[Value<'_>]) -> Result<u64, DbError>;
    fn query(&mut self, sql: &str, args: &[Value<'_>]) -> Result<Vec<Row>, DbError>;
}

impl dyn Sql + '_ {
    /// The first row of a query, if any.
    pub(super) fn query_first(
        &mut self,
        sql: &str,
        args: &[Value<'_>],
    ) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, args)?.into_iter().next())
    }
}

/// Whether the statement broke a primary key (the row is there already).
pub(super) fn is_unique_violation(error: &DbError) -> bool {
    if let Some(e) = error.downcast_ref::<rusqlite::Error>() {
        return e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation);
    }
    #[cfg(feature = "postgres")]
    if let Some(e) = error.downcast_ref::<super::postgres::PgError>() {
        return e.0.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION);
    }
    false
}

impl<T> Context<T> for std::result::Result<T, DbError> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Catalog {
            message: context(),
            source,
        })
    }
}

/// This process's connection. Connections must not be used across a fork (Dagster and
/// multiprocessing fork workers): a child opens its own, and forgets the inherited one instead
/// of closing it, which would disturb the parent's (its SQLite locks, its PostgreSQL session).
pub(super) struct PerProcess<C> {
    /// The process that opened the connection; `None` only while dropping.
    slot: Mutex<(u32, Option<C>)>,
    open: Box<dyn Fn() -> Result<C> + Send + Sync>,
    close: fn(C),
}

impl<C> PerProcess<C> {
    /// `conn` is this process's first connection; `open` makes another; `close` closes one.
    pub(super) fn new(
        conn: C,
        open: impl Fn() -> Result<C> + Send + Sync + 'static,
        close: fn(C),
    ) -> Self {
        Self {
            slot: Mutex::new((std::process::id(), Some(conn))),
            open: Box::new(open),
            close,
        }
    }

    /// The connection, locked for the caller.
    pub(super) fn get(&self) -> Result<Conn<'_, C>> {
        // A panic while holding the lock cannot leave the database half-written (transactions
        // roll back), so a poisoned lock is safe to reuse.
        let mut guard = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if guard.0 != std::process::id() {
            std::mem::forget(guard.1.replace((self.open)()?));
            guard.0 = std::process::id();
        }
        Ok(Conn(guard))
    }

    /// Replaces a connection that broke (the server closed it) with a new one.
    #[cfg(feature = "postgres")]
    pub(super) fn reopen(&self, conn: &mut Conn<'_, C>) -> Result<()> {
        if let Some(broken) = conn.0.1.replace((self.open)()?) {
            (self.close)(broken);
        }
        Ok(())
    }
}

impl<C> Drop for PerProcess<C> {
    fn drop(&mut self) {
        let slot = self.slot.get_mut().unwrap_or_else(|p| p.into_inner());
        match slot.1.take() {
            Some(conn) if slot.0 == std::process::id() => (self.close)(conn),
            inherited => std::mem::forget(inherited),
        }
    }
}

/// A locked connection.
pub(super) struct Conn<'a, C>(MutexGuard<'a, (u32, Option<C>)>);

impl<C> Deref for Conn<'_, C> {
    type Target = C;

    fn deref(&self) -> &C {
        self.0
            .1
            .as_ref()
            .expect("a connection is open until the catalog is dropped")
    }
}

impl<C> DerefMut for Conn<'_, C> {
    fn deref_mut(&mut self) -> &mut C {
        self.0
            .1
            .as_mut()
            .expect("a connection is open until the catalog is dropped")
    }
}
