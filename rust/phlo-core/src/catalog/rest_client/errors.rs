//! The REST error model (`{"error": {"message", "type", "code"}}`) as phlo's typed errors.

use super::http::{Http, Reply};
use crate::error::Error;

/// An error answer to a request that does not commit: 400 is the caller's input, 401/403 the
/// credential, anything else a catalog failure. Callers map 404 and 409 themselves (they know
/// what was missing or already there).
pub(super) fn read_error(http: &Http, reply: &Reply, what: &str) -> Error {
    let (message, kind) = reply.error_text();
    let status = reply.status;
    match status {
        400 => Error::invalid(
            format!(
                "the REST catalog at {} refused {what}: {message}",
                http.uri()
            ),
            "check the names and values passed",
        ),
        401 | 403 => Error::config(
            format!(
                "the REST catalog at {} denied {what} (HTTP {status}, {kind}): {message}",
                http.uri()
            ),
            "check the catalog's authentication properties: token=... or \
             credential=client_id:client_secret",
        ),
        _ => Error::Catalog {
            message: format!("the REST catalog at {} failed {what}", http.uri()),
            source: format!("HTTP {status} {kind}: {message}").into(),
        },
    }
}

/// Whether a 404 says the namespace (rather than the table) is missing.
pub(super) fn namespace_missing(reply: &Reply) -> bool {
    reply.error_text().1 == "NoSuchNamespaceException"
}
