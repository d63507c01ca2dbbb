//! The shared backend: the catalog's tables in a PostgreSQL database, so workers on many
//! machines commit to one catalog, and PyIceberg's `SqlCatalog(uri="postgresql+psycopg://…")`
//! on the same database reads and writes `main`.
//!
//! Isolation: every write transaction is SERIALIZABLE, retried from the start when PostgreSQL
//! reports a serialization failure or a deadlock. Catalog writes are check-then-act over several
//! rows (a merge checks every table on both refs before moving any; creating a table or ref
//! checks that it is absent; forking copies a ref's pointers), written once for SQLite, whose
//! write lock makes each transaction serial. SERIALIZABLE gives every one of them that same
//! guarantee without a row lock per row read (absent rows cannot be locked with `FOR UPDATE`),
//! and a lost race costs one retry on a fresh snapshot. Pointer moves stay compare-and-swap
//! (`UPDATE … WHERE metadata_location = expected`), so PyIceberg's own commits on `main` (READ
//! COMMITTED) interleave safely: two updates of one row conflict, and ours retries. Reads run
//! in one REPEATABLE READ snapshot.
//!
//! The client is the synchronous `postgres` crate without TLS (servers on 127.0.0.1 or a
//! private network). TLS needs a `MakeTlsConnect` (`postgres-native-tls` or `postgres-openssl`)
//! in place of `NoTls` in [`connect`]. The client blocks on a runtime of its own, which cannot
//! run inside the engine's tokio runtime: called from there, the work runs on a scoped thread.

use std::str::FromStr;
use std::time::Duration;

use bytes::BytesMut;
use postgres::error::SqlState;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, Config, IsolationLevel, NoTls, Transaction};

use super::backend::redact_uri;
use super::db::{Cell, DbError, PerProcess, Row, Sql, Value};
use super::layout;
use crate::error::{Context, Error, Result};

/// Attempts at a transaction that keeps losing serialization races to other writers.
const MAX_ATTEMPTS: u32 = 64;
/// Advisory lock key held while creating the tables: concurrent `CREATE TABLE IF NOT EXISTS`
/// of one table can still collide in PostgreSQL's system catalog.
const LAYOUT_LOCK: i64 = 0x7068_6c6f;

pub(super) struct Postgres {
    conn: PerProcess<Client>,
}

impl Postgres {
    /// Connects to `url` (`postgresql://user:password@host:port/database`) and creates the
    /// catalog's tables unless they are there.
    pub(super) fn open(url: &str) -> Result<Self> {
        let config = parse(url)?;
        let shown = redact_uri(url);
        let client = off_runtime(|| {
            let mut client = connect(&config, &shown)?;
            ensure_layout(&mut client)?;
            Ok::<_, Error>(client)
        })?;
        Ok(Self {
            conn: PerProcess::new(client, move || connect(&config, &shown), close),
        })
    }

    pub(super) fn read<T: Send>(
        &self,
        mut read: impl FnMut(&mut dyn Sql) -> Result<T> + Send,
    ) -> Result<T> {
        self.run(IsolationLevel::RepeatableRead, true, &mut read)
    }

    pub(super) fn write<T: Send>(
        &self,
        mut change: impl FnMut(&mut dyn Sql) -> Result<T> + Send,
    ) -> Result<T> {
        self.run(IsolationLevel::Serializable, false, &mut change)
    }

    fn run<T: Send>(
        &self,
        level: IsolationLevel,
        read_only: bool,
        work: &mut (dyn FnMut(&mut dyn Sql) -> Result<T> + Send),
    ) -> Result<T> {
        off_runtime(|| {
            let mut client = self.conn.get()?;
            // The server closed the session (restart, idle timeout): start a new one.
            if client.is_closed() {
                self.conn.reopen(&mut client)?;
            }
            let mut attempt = 0;
            loop {
                match transaction(&mut client, level, read_only, work) {
                    Err(e) if lost_race(&e) && attempt + 1 < MAX_ATTEMPTS => {
                        attempt += 1;
                        std::thread::sleep(backoff(attempt));
                    }
                    done => return done,
                }
            }
        })
    }
}

fn transaction<T>(
    client: &mut Client,
    level: IsolationLevel,
    read_only: bool,
    work: &mut (dyn FnMut(&mut dyn Sql) -> Result<T> + Send),
) -> Result<T> {
    let mut tx = client
        .build_transaction()
        .isolation_level(level)
        .read_only(read_only)
        .start()
        .context(|| "starting a catalog transaction".into())?;
    let value = work(&mut PgSql(&mut tx))?;
    tx.commit()
        .context(|| "committing a catalog transaction".into())?;
    Ok(value)
}

/// Whether the transaction lost a race with another writer and may simply run again.
fn lost_race(error: &Error) -> bool {
    let Error::Catalog { source, .. } = error else {
        return false;
    };
    let code = source.downcast_ref::<PgError>().and_then(|e| e.0.code());
    code.is_some_and(|code| {
        *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// A short pause with jitter, so writers that collided do not collide again in step.
fn backoff(attempt: u32) -> Duration {
    let jitter = (uuid::Uuid::new_v4().as_u128() % 5) as u64;
    Duration::from_millis((1u64 << attempt.min(5)) + jitter)
}

/// Runs `work` where the blocking client may block: on this thread, or on a scoped thread when
/// this thread drives a tokio runtime (the client's own runtime cannot start inside another).
fn off_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return work();
    }
    std::thread::scope(|scope| {
        scope
            .spawn(work)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Closing a client blocks on its runtime too (it tells the server goodbye).
fn close(client: Client) {
    off_runtime(|| drop(client));
}

fn parse(url: &str) -> Result<Config> {
    let mut config = Config::from_str(url).map_err(|_| {
        Error::invalid(
            format!("catalog URI {} is not a PostgreSQL URL", redact_uri(url)),
            "write it as postgresql://user:password@host:port/database",
        )
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("phlo");
    }
    Ok(config)
}

/// `shown` is the URL without its password: PostgreSQL's own errors never contain it.
fn connect(config: &Config, shown: &str) -> Result<Client> {
    config.connect(NoTls).map_err(|e| Error::Catalog {
        message: format!(
            "connecting to the PostgreSQL catalog {shown} (check that the server is running and \
             reachable from here, and that the user, password and database are right)"
        ),
        source: PgError::boxed(e),
    })
}

fn ensure_layout(client: &mut Client) -> Result<()> {
    // Probing first keeps an up-to-date database free of DDL locks: `ADD COLUMN IF NOT EXISTS`
    // locks the table even when the column is there.
    if layout::probes().all(|probe| client.batch_execute(&probe).is_ok()) {
        return Ok(());
    }
    let mut tx = client
        .transaction()
        .context(|| "locking the catalog to create its tables".into())?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LAYOUT_LOCK])
        .context(|| "locking the catalog to create its tables".into())?;
    for ddl in layout::postgres_ddl() {
        tx.batch_execute(&ddl)
            .context(|| "creating the catalog tables".into())?;
    }
    tx.commit()
        .context(|| "committing the catalog tables".into())
}

struct PgSql<'a, 'b>(&'a mut Transaction<'b>);

impl Sql for PgSql<'_, '_> {
    fn execute(&mut self, sql: &str, args: &[Value<'_>]) -> Result<u64, DbError> {
        self.0
            .execute(&placeholders(sql), &params(args))
            .map_err(PgError::boxed)
    }

    fn query(&mut self, sql: &str, args: &[Value<'_>]) -> Result<Vec<Row>, DbError> {
        let rows = self
            .0
            .query(&placeholders(sql), &params(args))
            .map_err(PgError::boxed)?;
        rows.iter().map(row).collect()
    }
}

/// `?N` → `$N`. The catalog's queries have no `?` anywhere else (no string literal holds one).
fn placeholders(sql: &str) -> String {
    sql.replace('?', "$")
}

fn params<'a>(args: &'a [Value<'_>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter().map(|arg| arg as &(dyn ToSql + Sync)).collect()
}

fn row(row: &postgres::Row) -> Result<Row, DbError> {
    let get = PgError::boxed;
    let mut cells = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let int = if *ty == Type::INT8 {
            Some(row.try_get::<_, Option<i64>>(i).map_err(get)?)
        } else if *ty == Type::INT4 {
            Some(
                row.try_get::<_, Option<i32>>(i)
                    .map_err(get)?
                    .map(i64::from),
            )
        } else if *ty == Type::INT2 {
            Some(
                row.try_get::<_, Option<i16>>(i)
                    .map_err(get)?
                    .map(i64::from),
            )
        } else {
            None
        };
        cells.push(match int {
            Some(int) => int.map_or(Cell::Null, Cell::Int),
            None => row
                .try_get::<_, Option<String>>(i)
                .map_err(get)?
                .map_or(Cell::Null, Cell::Text),
        });
    }
    Ok(Row(cells))
}

impl ToSql for Value<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, DbError> {
        match *self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(int) if *ty == Type::INT4 => i32::try_from(int)?.to_sql(ty, out),
            Value::Int(int) => int.to_sql(ty, out),
            Value::Text(text) => text.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl<T> Context<T> for std::result::Result<T, postgres::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Catalog {
            message: context(),
            source: PgError::boxed(source),
        })
    }
}

/// A client error that shows its causes: the server's message ("password authentication
/// failed …", "connection refused") is a cause, not part of `postgres::Error`'s own text.
#[derive(Debug)]
pub(super) struct PgError(pub(super) postgres::Error);

impl PgError {
    fn boxed(error: postgres::Error) -> DbError {
        Box::new(Self(error))
    }
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = std::error::Error::source(&self.0);
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

impl std::error::Error for PgError {}
