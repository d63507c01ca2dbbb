//! The catalog handle and the database behind it: one SQLite file (embedded) or a PostgreSQL
//! database (shared by many workers on many machines). Every catalog operation is written once,
//! against [`Sql`]; the backends only differ in how they connect and run a transaction. A REST
//! catalog has no database: the operations it serves go to the server, the others (commit log,
//! catalog-wide refs, phlo's transactions) are a `ConfigError`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::db::Sql;
#[cfg(feature = "postgres")]
use super::postgres::Postgres;
use super::rest_client::RestCatalog;
use super::sqlite::Sqlite;
use crate::error::{Error, Result};
use crate::tables::metadata_cache::MetadataCache;

/// The `catalog_name` column value phlo uses; PyIceberg must open the catalog with this name.
pub const CATALOG_NAME: &str = "phlo";

/// phlo's versioned catalog: PyIceberg's `SqlCatalog` tables (`main`) plus phlo's refs, commit
/// log and transactions, in SQLite or PostgreSQL.
pub struct Catalog {
    backend: Backend,
    /// The metadata files this handle's loads and commits read or wrote, by location: every
    /// load asks the database (or server) where the table is, and reads the file only if new.
    metadata: MetadataCache,
}

enum Backend {
    Sqlite(Sqlite),
    #[cfg(feature = "postgres")]
    Postgres(Postgres),
    Rest(Box<RestCatalog>),
}

impl Catalog {
    /// Opens (creating if needed) the SQLite catalog file and brings it to the current layout;
    /// older files are upgraded in place.
    pub fn open_sqlite(path: &Path) -> Result<Self> {
        Ok(Self::of(Backend::Sqlite(Sqlite::open(path)?)))
    }

    /// Connects to the catalog in a PostgreSQL database (`postgresql://user:password@host:port/db`),
    /// creating its tables if needed.
    #[cfg(feature = "postgres")]
    pub fn open_postgres(url: &str) -> Result<Self> {
        Ok(Self::of(Backend::Postgres(Postgres::open(url)?)))
    }

    /// Opens the catalog a URI names, by its scheme: `sqlite:///path/catalog.db` (created when
    /// missing) or `postgresql://user:password@host:port/database`.
    pub fn connect(uri: &str) -> Result<Self> {
        Self::connect_with(uri, &HashMap::new())
    }

    /// [`Self::connect`], also to an Iceberg REST catalog (`http(s)://host:port[/base]`),
    /// which reads its settings (`token`, `credential`, `warehouse`, …) from `properties`.
    pub fn connect_with(uri: &str, properties: &HashMap<String, String>) -> Result<Self> {
        let scheme = uri.split_once("://").map_or(uri, |(scheme, _)| scheme);
        match scheme {
            "sqlite" => Self::open_sqlite(&sqlite_path(uri)?),
            #[cfg(feature = "postgres")]
            "postgresql" | "postgres" => Self::open_postgres(uri),
            #[cfg(not(feature = "postgres"))]
            "postgresql" | "postgres" => Err(Error::config(
                "this build of phlo has no PostgreSQL catalog",
                "build phlo-core with the cargo feature `postgres` (the Python package has it)",
            )),
            "http" | "https" => Ok(Self::of(Backend::Rest(Box::new(RestCatalog::connect(
                uri, properties,
            )?)))),
            _ => Err(Error::config(
                format!("catalog URI {} is not supported", redact_uri(uri)),
                "use sqlite:///absolute/path/catalog.db, \
                 postgresql://user:password@host:port/database or http(s)://host:port (REST)",
            )),
        }
    }

    fn of(backend: Backend) -> Self {
        Self {
            backend,
            metadata: MetadataCache::default(),
        }
    }

    /// Parsed metadata files by location, shared by everything using this catalog handle.
    pub fn metadata_cache(&self) -> &MetadataCache {
        &self.metadata
    }

    /// Runs `read` on one consistent view of the catalog.
    pub(super) fn read<T: Send>(
        &self,
        read: impl FnMut(&mut dyn Sql) -> Result<T> + Send,
    ) -> Result<T> {
        match &self.backend {
            Backend::Sqlite(db) => db.read(read),
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => db.read(read),
            Backend::Rest(rest) => Err(sql_only(rest)),
        }
    }

    /// Runs `change` in one transaction, committed only when it returns `Ok`, as if no other
    /// writer ran at the same time. `change` may run more than once (PostgreSQL retries a
    /// transaction that lost a race): it must only act through the transaction.
    pub(super) fn write<T: Send>(
        &self,
        change: impl FnMut(&mut dyn Sql) -> Result<T> + Send,
    ) -> Result<T> {
        // The change may point tables at files just written: their names reach the disk
        // first (see `storage::durable`).
        if !matches!(self.backend, Backend::Rest(_)) {
            crate::storage::durable::sync_new_entries()?;
        }
        match &self.backend {
            Backend::Sqlite(db) => db.write(change),
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => db.write(change),
            Backend::Rest(rest) => Err(sql_only(rest)),
        }
    }

    /// The REST catalog behind this handle, if it is one.
    pub fn rest(&self) -> Option<&RestCatalog> {
        match &self.backend {
            Backend::Rest(rest) => Some(rest.as_ref()),
            _ => None,
        }
    }
}

/// What a REST catalog cannot do: everything phlo keeps in its own catalog tables.
fn sql_only(rest: &RestCatalog) -> Error {
    if rest.catalog_branches() {
        return Error::config(
            format!(
                "the REST catalog at {} keeps its branches itself (Nessie-style prefixes): phlo \
                 reads and writes them with ref=<name>, but creating, merging or deleting a \
                 branch, the commit log and cross-ref maintenance are not part of the Iceberg \
                 REST API",
                rest.uri()
            ),
            "use the server's own API for these: for `phlo catalog serve`, phlo on the served \
             lakehouse (`phlo --root DIR branch create|merge|delete NAME`, or its sqlite:/// or \
             postgresql:// catalog URI); for Nessie, its REST API or CLI",
        );
    }
    Error::config(
        format!(
            "the catalog at {} is an Iceberg REST catalog, which has no place for phlo's commit \
             log, catalog-wide branches and tags, phlo's transactions or cross-ref maintenance",
            rest.uri()
        ),
        "use a sqlite:/// or postgresql:// catalog for these (serve it to other engines with \
         `phlo catalog serve`, whose …/iceberg/<ref> URIs expose catalog branches); on a REST \
         catalog, write to a table branch with ref=<name>",
    )
}

/// A catalog URI without its password (in the user part or a `password=` parameter), for
/// messages and displays.
pub fn redact_uri(uri: &str) -> String {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("", uri));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) if query.to_ascii_lowercase().contains("password") => {
            format!("{path}?***")
        }
        _ => tail.to_string(),
    };
    match scheme {
        "" => format!("{authority}{tail}"),
        _ => format!("{scheme}://{authority}{tail}"),
    }
}

/// The file of a `sqlite:///abs/path.db` URI (SQLAlchemy's `sqlite:////abs/path.db` too: both
/// name an absolute path); its folder is created when missing.
fn sqlite_path(uri: &str) -> Result<PathBuf> {
    let Some(rest) = uri.strip_prefix("sqlite:///").filter(|r| !r.is_empty()) else {
        return Err(Error::config(
            format!("catalog URI {uri:?} names no file"),
            "write sqlite:///absolute/path/catalog.db (three slashes, then the path)",
        ));
    };
    let path = Path::new("/").join(rest.trim_start_matches('/'));
    if let Some(dir) = path.parent() {
        crate::storage::durable::create_dirs(dir).map_err(|source| Error::Storage {
            path: dir.display().to_string(),
            source,
        })?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::redact_uri;

    #[test]
    fn passwords_are_left_out_of_uris() {
        for (uri, shown) in [
            (
                "postgresql://phlo:s3cret@db:5432/lake",
                "postgresql://phlo:***@db:5432/lake",
            ),
            (
                "postgresql://phlo@db/lake?password=s3cret&sslmode=disable",
                "postgresql://phlo@db/lake?***",
            ),
            ("sqlite:///tmp/catalog.db", "sqlite:///tmp/catalog.db"),
            ("postgresql://a:b:c@h/d", "postgresql://a:***@h/d"),
        ] {
            assert_eq!(redact_uri(uri), shown);
        }
    }
}
