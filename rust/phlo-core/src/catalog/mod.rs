//! Where tables are registered: names → current metadata file, with compare-and-swap commits.
//! `sqlite` is the embedded catalog, shared with PyIceberg's `SqlCatalog`.

mod ident;
mod layout;
pub mod log;
mod namespaces;
mod pointers;
pub mod refs;
pub mod sqlite;

pub use ident::{TableIdent, validate_name};
pub use log::{CommitMeta, CommitPoint, LogEntry};
pub use namespaces::PropertyChanges;
pub use refs::{Changed, MAIN, MergeStep, Pointer, RefDiff, RefInfo, RefKind, RefMerge};
pub use sqlite::SqliteCatalog;
