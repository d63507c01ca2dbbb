//! One error type for the engine. Every variant says what went wrong, where, and how to fix it;
//! `code()` is a stable machine-readable name that the Python layer maps onto `phlo.errors`.

use std::any::Any;
use std::fmt;
use std::io;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in the lakehouse an error happened (all parts optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    pub table: Option<String>,
    pub column: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.table, &self.column) {
            (Some(t), Some(c)) => write!(f, " (table {t}, column {c})"),
            (Some(t), None) => write!(f, " (table {t})"),
            (None, Some(c)) => write!(f, " (column {c})"),
            (None, None) => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Data does not fit the table schema, or a schema cannot be represented.
    #[error("{message}{at}. {hint}")]
    Schema {
        message: String,
        at: Location,
        hint: String,
    },
    /// The caller passed something unusable (bad name, bad filter, bad option).
    #[error("{message}{at}. {hint}")]
    InvalidInput {
        message: String,
        at: Location,
        hint: String,
    },
    /// A merge cannot be carried out on this data (null keys, ambiguous duplicates).
    #[error("{message}{at}. {hint}")]
    Merge {
        message: String,
        at: Location,
        hint: String,
    },
    /// A write was given no rows.
    #[error(
        "no rows to write{at}. Pass at least one row, or skip the write when the batch is empty"
    )]
    EmptyInput { at: Location },
    #[error(
        "table {0} does not exist. Create it with create_table(), or check the name and namespace"
    )]
    NoSuchTable(String),
    #[error("namespace {0} does not exist. Create it with create_namespace()")]
    NoSuchNamespace(String),
    #[error("table {0} already exists. Use table() to open it, or drop_table() first")]
    TableAlreadyExists(String),
    #[error("namespace {0} already exists")]
    NamespaceAlreadyExists(String),
    #[error("namespace {0} is not empty. Drop its tables first")]
    NamespaceNotEmpty(String),
    /// Another writer committed first and the change could not be re-applied safely. `hint`
    /// is the one sentence that says what to do about it.
    #[error("commit conflict on table {table}: {message}. {hint}")]
    CommitConflict {
        table: String,
        message: String,
        hint: String,
    },
    /// The commit may or may not have landed (e.g. the catalog went away mid-commit).
    #[error("commit state unknown for table {table}: {message}. Reload the table before retrying")]
    CommitStateUnknown { table: String, message: String },
    /// The catalog database failed.
    #[error("catalog error: {message}: {source}")]
    Catalog {
        message: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Reading or writing files failed.
    #[error("storage error at {path}: {source}. {}", storage_hint(.source))]
    Storage {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// An object store (S3) request failed: unreachable, access denied, bucket missing. The
    /// message is the store's, which names no credential.
    #[error("object store error at {uri} (endpoint {endpoint}): {message}. {hint}")]
    ObjectStore {
        uri: String,
        endpoint: String,
        message: String,
        hint: String,
    },
    /// How to reach the lakehouse is misconfigured (catalog or warehouse URI, properties).
    #[error("{message}. {hint}")]
    Config { message: String, hint: String },
    /// A bug: a panic in phlo or a library it drives, or a broken invariant.
    #[error("internal error while {context}: {message}. This is a bug in phlo; please report it")]
    Internal { context: String, message: String },
    /// iceberg-rust reported an error (metadata, manifests, Parquet).
    #[error("{context}: {source}")]
    Iceberg {
        context: String,
        #[source]
        source: Box<iceberg::Error>,
    },
    #[error("arrow error while {context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: arrow_schema::ArrowError,
    },
}

impl Error {
    /// Whether a write that failed with this error may still have committed: then the files
    /// it wrote may be referenced and must be kept.
    pub fn commit_may_have_landed(&self) -> bool {
        matches!(self, Error::CommitStateUnknown { .. })
    }

    /// A stable code, one per Python exception class.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Schema { .. } => "schema",
            Error::InvalidInput { .. } => "invalid_input",
            Error::Merge { .. } => "merge",
            Error::EmptyInput { .. } => "empty_input",
            Error::NoSuchTable(_) => "no_such_table",
            Error::NoSuchNamespace(_) => "no_such_namespace",
            Error::TableAlreadyExists(_) => "table_already_exists",
            Error::NamespaceAlreadyExists(_) => "namespace_already_exists",
            Error::NamespaceNotEmpty(_) => "namespace_not_empty",
            Error::CommitConflict { .. } => "commit_conflict",
            Error::CommitStateUnknown { .. } => "commit_state_unknown",
            Error::Catalog { .. } => "catalog",
            Error::Storage { .. } | Error::ObjectStore { .. } => "storage",
            Error::Config { .. } => "config",
            Error::Internal { .. } | Error::Iceberg { .. } | Error::Arrow { .. } => "internal",
        }
    }

    /// The table and column the error is about, when known.
    pub fn location(&self) -> Location {
        match self {
            Error::Schema { at, .. }
            | Error::InvalidInput { at, .. }
            | Error::Merge { at, .. }
            | Error::EmptyInput { at } => at.clone(),
            Error::NoSuchTable(t) | Error::TableAlreadyExists(t) => Location {
                table: Some(t.clone()),
                column: None,
            },
            Error::CommitConflict { table, .. } | Error::CommitStateUnknown { table, .. } => {
                Location {
                    table: Some(table.clone()),
                    column: None,
                }
            }
            _ => Location::default(),
        }
    }

    pub fn schema(message: impl Into<String>, at: Location, hint: impl Into<String>) -> Self {
        Error::Schema {
            message: message.into(),
            at,
            hint: hint.into(),
        }
    }

    pub fn invalid(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::InvalidInput {
            message: message.into(),
            at: Location::default(),
            hint: hint.into(),
        }
    }

    /// A `CommitConflict` that running the write again resolves (it then reads the other
    /// writer's change).
    pub fn conflict(table: impl Into<String>, message: impl Into<String>) -> Self {
        Error::CommitConflict {
            table: table.into(),
            message: message.into(),
            hint: "Run the write again: it then reads the other writer's change".into(),
        }
    }

    pub fn config(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Config {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// An iceberg-rust error while `context` ran; failures of the file system are `Storage`,
    /// of an object store `ObjectStore`.
    pub fn iceberg(context: String, source: iceberg::Error) -> Self {
        #[cfg(feature = "s3")]
        if let Some(failure) = crate::storage::object_store_failure(&context, &source) {
            return failure;
        }
        match storage_failure(&source.to_string(), &context) {
            Some(storage) => storage,
            None => Error::Iceberg {
                context,
                source: Box::new(source),
            },
        }
    }

    /// A broken invariant (`context`: what phlo was doing).
    pub fn internal(context: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Internal {
            context: context.into(),
            message: message.into(),
        }
    }

    /// A panic caught while `context` ran, with the panic's message.
    pub fn from_panic(context: impl Into<String>, payload: &(dyn Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        Error::internal(context, format!("panicked: {message}"))
    }

    /// A background task that did not finish: it panicked, or the runtime cancelled it.
    pub fn from_join(context: impl Into<String>, failed: tokio::task::JoinError) -> Self {
        match failed.try_into_panic() {
            Ok(payload) => Error::from_panic(context, payload.as_ref()),
            Err(failed) => Error::internal(context, failed.to_string()),
        }
    }

    /// Adds the table name to errors that carry a location but do not know it yet.
    pub fn in_table(mut self, table: &str) -> Self {
        if let Error::Schema { at, .. }
        | Error::InvalidInput { at, .. }
        | Error::Merge { at, .. }
        | Error::EmptyInput { at } = &mut self
        {
            at.table.get_or_insert_with(|| table.to_string());
        }
        self
    }
}

/// Attach a description of the step that failed to lower-level errors.
pub trait Context<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, iceberg::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::iceberg(context(), source))
    }
}

/// iceberg-rust's file IO reports operating-system failures as text ("Failed to read file
/// /x: No such file or directory (os error 2)"), without the `io::Error`. An error whose text
/// carries an OS error code is a storage failure: it becomes `Error::Storage` with that error's
/// kind and the path it names (else the path in `context`).
fn storage_failure(text: &str, context: &str) -> Option<Error> {
    const MARK: &str = "(os error ";
    let at = text.find(MARK)?;
    let code: i32 = text[at + MARK.len()..].split(')').next()?.parse().ok()?;
    let os = io::Error::from_raw_os_error(code);
    let path = path_in_message(text)
        .or_else(|| path_in_context(context))
        .unwrap_or_else(|| "an unknown path".into());
    Some(Error::Storage {
        source: io::Error::new(os.kind(), format!("{context}: {os}")),
        path,
    })
}

/// The path in iceberg-rust's file IO messages (`Failed to <verb> file <path>: <reason>`).
fn path_in_message(text: &str) -> Option<String> {
    const PREFIXES: [&str; 8] = [
        "Failed to read file ",
        "Failed to open file ",
        "Failed to get metadata for ",
        "Failed to create directory ",
        "Failed to write file ",
        "Failed to create file ",
        "Failed to delete file ",
        "Failed to delete directory ",
    ];
    PREFIXES.iter().find_map(|prefix| {
        let start = text.find(prefix)? + prefix.len();
        let path = text[start..].split(": ").next()?;
        Some(path.to_string())
    })
}

/// The first file path or URI in a context description ("reading data file file:///x").
fn path_in_context(context: &str) -> Option<String> {
    context
        .split_whitespace()
        .find(|word| word.starts_with('/') || word.contains("://"))
        .map(|word| word.strip_prefix("file://").unwrap_or(word).to_string())
}

/// How to fix a storage failure, by its kind.
fn storage_hint(source: &io::Error) -> &'static str {
    match source.kind() {
        io::ErrorKind::NotFound => {
            "The file or folder is missing: it was moved or deleted outside phlo. Restore it \
             (or the table from a backup)"
        }
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            "phlo may not access it: check the permissions of the lakehouse folder"
        }
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            "The disk is full: free space and retry; the failed write left no partial table"
        }
        io::ErrorKind::IsADirectory | io::ErrorKind::NotADirectory => {
            "Something else is in the way at that path (a folder where a file belongs, or the \
             reverse): remove it"
        }
        io::ErrorKind::InvalidData => {
            "The file is damaged or is not what the table's metadata says it is: restore it from \
             a backup; phlo changed nothing"
        }
        io::ErrorKind::Unsupported => {
            "The file is sound but phlo cannot read it as it is: read the table with the engine \
             that wrote it, or copy its rows into a table phlo created; phlo changed nothing"
        }
        _ => "Check that the path exists and that phlo may read and write it",
    }
}

impl<T> Context<T> for std::result::Result<T, arrow_schema::ArrowError> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Arrow {
            context: context(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, rusqlite::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Catalog {
            message: context(),
            source: Box::new(source),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iceberg_error(message: &str) -> iceberg::Error {
        iceberg::Error::new(iceberg::ErrorKind::DataInvalid, message)
    }

    #[test]
    fn a_commit_conflict_ends_in_its_one_hint() {
        let conflict = Error::conflict("raw.t", "another writer removed x.parquet");
        assert_eq!(
            conflict.to_string(),
            "commit conflict on table raw.t: another writer removed x.parquet. Run the write \
             again: it then reads the other writer's change"
        );
        let own = Error::CommitConflict {
            table: "raw.t".into(),
            message: "transaction t lost the race".into(),
            hint: "Run the transaction again".into(),
        };
        assert!(
            own.to_string()
                .ends_with(": transaction t lost the race. Run the transaction again")
        );
    }

    #[test]
    fn file_system_failures_are_storage_errors_naming_the_path() {
        let missing = Err::<(), _>(iceberg_error(
            "Failed to read file /w/t/metadata/1.json: No such file or directory (os error 2)",
        ))
        .context(|| "reading metadata of raw.t".into())
        .unwrap_err();
        assert_eq!(missing.code(), "storage");
        let Error::Storage { path, source } = &missing else {
            panic!("{missing}")
        };
        assert_eq!(path, "/w/t/metadata/1.json");
        assert_eq!(source.kind(), io::ErrorKind::NotFound);
        assert!(missing.to_string().contains("reading metadata of raw.t"));
        assert!(missing.to_string().contains("missing"));

        // Without a path in the message, the path comes from the context.
        let folder = Err::<(), _>(iceberg_error(
            "Failed to load Parquet metadata, source: Failed to read 60 bytes: Is a directory \
             (os error 21)",
        ))
        .context(|| "reading data file file:///w/t/data/a.parquet".into())
        .unwrap_err();
        let Error::Storage { path, source } = &folder else {
            panic!("{folder}")
        };
        assert_eq!(path, "/w/t/data/a.parquet");
        assert_eq!(source.kind(), io::ErrorKind::IsADirectory);

        // Anything else stays an iceberg error (internal).
        let other = Err::<(), _>(iceberg_error("Invalid schema"))
            .context(|| "building".into())
            .unwrap_err();
        assert_eq!(other.code(), "internal");
    }

    #[test]
    fn panics_and_failed_tasks_are_internal_errors_asking_for_a_report() {
        let payload: Box<dyn Any + Send> = Box::new("divide by zero");
        let err = Error::from_panic("appending", payload.as_ref());
        assert_eq!(err.code(), "internal");
        assert!(
            err.to_string()
                .contains("while appending: panicked: divide by zero")
        );
        assert!(err.to_string().contains("please report it"));

        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let failed = runtime.block_on(async {
            tokio::spawn(async { panic!("lane {} broke", 3) })
                .await
                .unwrap_err()
        });
        let err = Error::from_join("writing a data file", failed);
        assert_eq!(err.code(), "internal");
        assert!(err.to_string().contains("panicked: lane 3 broke"), "{err}");
    }
}
