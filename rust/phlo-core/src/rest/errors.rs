//! Iceberg's REST error model: `{"error": {"message", "type", "code"}}` with the HTTP status
//! clients map to their exceptions (404 → no such table/namespace, 409 → conflict, ...).

use serde_json::json;

use super::Response;
use crate::error::Error;

/// An error answered to the client; every failure of a request ends up as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestError {
    pub status: u16,
    /// The exception name Iceberg clients know (`NoSuchTableException`, ...).
    pub kind: &'static str,
    pub message: String,
}

impl RestError {
    pub fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequestException", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "NotFoundException", message)
    }

    pub fn commit_failed(message: impl Into<String>) -> Self {
        Self::new(409, "CommitFailedException", message)
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(406, "UnsupportedOperationException", message)
    }

    /// The body clients parse; HEAD requests get the status only.
    pub fn into_response(self, head: bool) -> Response {
        let body = json!({
            "error": {"message": self.message, "type": self.kind, "code": self.status}
        });
        if head {
            Response::empty(self.status)
        } else {
            Response::json(self.status, &body)
        }
    }
}

impl From<Error> for RestError {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        let (status, kind) = match &error {
            Error::NoSuchTable(_) => (404, "NoSuchTableException"),
            Error::NoSuchNamespace(_) => (404, "NoSuchNamespaceException"),
            Error::TableAlreadyExists(_) | Error::NamespaceAlreadyExists(_) => {
                (409, "AlreadyExistsException")
            }
            Error::NamespaceNotEmpty(_) => (409, "NamespaceNotEmptyException"),
            Error::CommitConflict { .. } => (409, "CommitFailedException"),
            // Clients keep their files on 5xx: the commit may have landed.
            Error::CommitStateUnknown { .. } => (500, "CommitStateUnknownException"),
            Error::Schema { .. }
            | Error::InvalidInput { .. }
            | Error::Merge { .. }
            | Error::EmptyInput { .. } => (400, "BadRequestException"),
            Error::Catalog { .. }
            | Error::Config { .. }
            | Error::Storage { .. }
            | Error::ObjectStore { .. }
            | Error::Internal { .. }
            | Error::Iceberg { .. }
            | Error::Arrow { .. } => (500, "ServiceFailureException"),
        };
        Self::new(status, kind, message)
    }
}
