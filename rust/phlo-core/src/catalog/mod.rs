//! Where tables are registered: names → current metadata file, with compare-and-swap commits,
//! branches, tags and a commit log. One [`Catalog`] over two databases: SQLite (embedded, shared
//! with PyIceberg's `SqlCatalog`) and PostgreSQL (feature `postgres`: shared by many workers);
//! or, with tables only, over an Iceberg REST catalog ([`rest_client`]).

mod backend;
mod db;
mod ident;
mod layout;
pub mod log;
mod namespaces;
mod orphan_fence;
mod pointers;
#[cfg(feature = "postgres")]
mod postgres;
pub mod ref_copies;
pub mod refs;
pub mod rest_client;
mod sqlite;
pub mod swept;

pub use backend::{CATALOG_NAME, Catalog, redact_uri};
pub use ident::{TableIdent, validate_name};
pub use log::{CommitMeta, CommitPoint, LogEntry};
pub use namespaces::PropertyChanges;
pub use refs::{Changed, MAIN, MergeStep, Pointer, RefDiff, RefInfo, RefKind, RefMerge};
