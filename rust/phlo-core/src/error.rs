//! One error type for the engine. Every variant says what went wrong, where, and how to fix it;
//! `code()` is a stable machine-readable name that the Python layer maps onto `phlo.errors`.

use std::fmt;

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
    /// Another writer committed first and the change could not be re-applied safely.
    #[error("commit conflict on table {table}: {message}. Retry the write against the new state")]
    CommitConflict { table: String, message: String },
    /// The commit may or may not have landed (e.g. the catalog went away mid-commit).
    #[error("commit state unknown for table {table}: {message}. Reload the table before retrying")]
    CommitStateUnknown { table: String, message: String },
    /// The catalog database failed.
    #[error("catalog error: {message}: {source}")]
    Catalog {
        message: String,
        #[source]
        source: rusqlite::Error,
    },
    /// Reading or writing files failed.
    #[error("storage error at {path}: {source}")]
    Storage {
        path: String,
        #[source]
        source: std::io::Error,
    },
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
            Error::Storage { .. } => "storage",
            Error::Iceberg { .. } | Error::Arrow { .. } => "internal",
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
        self.map_err(|source| Error::Iceberg {
            context: context(),
            source: Box::new(source),
        })
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
            source,
        })
    }
}
