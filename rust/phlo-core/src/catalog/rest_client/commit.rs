//! Commits through the REST catalog: requirements + updates POSTed to the table. The server checks and applies them atomically
//! and writes the metadata file. A 409 means nothing changed; a 5xx or a request that got no
//! answer may have landed: the caller must keep its files.

use iceberg::{TableRequirement, TableUpdate};
use serde_json::{Value, json};

use super::RestCatalog;
use super::errors::read_error;
use super::http::{Failure, Reply};
use super::tables::LoadedMetadata;
use crate::catalog::TableIdent;
use crate::error::{Error, Result};

/// How a commit ended when the server answered it.
pub(crate) enum Committed<T> {
    Landed(T),
    /// Another writer committed first (409): nothing changed.
    Conflict(String),
}

/// One table's part of a commit.
pub(crate) struct TableChange<'a> {
    pub ident: &'a TableIdent,
    pub requirements: Vec<TableRequirement>,
    pub updates: Vec<TableUpdate>,
}

impl TableChange<'_> {
    fn body(&self) -> Value {
        json!({
            "identifier": {
                "namespace": self.ident.namespace.split('.').collect::<Vec<_>>(),
                "name": self.ident.name,
            },
            "requirements": self.requirements,
            "updates": self.updates,
        })
    }
}

impl RestCatalog {
    /// Commits one table on catalog ref `ref_name`; `Landed` holds the table's new metadata.
    pub(crate) fn commit_table(
        &self,
        ref_name: &str,
        change: &TableChange<'_>,
    ) -> Result<Committed<LoadedMetadata>> {
        let what = change.ident.to_string();
        let path = self.table_path(change.ident, ref_name);
        let reply = self.send_commit(&path, &change.body(), &what)?;
        match reply.status {
            404 => Err(Error::NoSuchTable(what)),
            _ => Ok(match self.outcome(&reply, &what)? {
                Committed::Landed(()) => {
                    Committed::Landed(reply.json(&format!("committing {what}"))?)
                }
                Committed::Conflict(message) => Committed::Conflict(message),
            }),
        }
    }

    /// Commits several tables at once on catalog ref `ref_name` (`POST
    /// .../transactions/commit`): all land or none. A server without the endpoint (404, 405 or
    /// 501 to it) is a `ConfigError`.
    pub(crate) fn commit_tables(
        &self,
        ref_name: &str,
        changes: &[TableChange<'_>],
    ) -> Result<Committed<()>> {
        let what = changes
            .iter()
            .map(|c| c.ident.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let body =
            json!({"table-changes": changes.iter().map(TableChange::body).collect::<Vec<_>>()});
        let path = format!("v1/{}transactions/commit", self.config.prefix_on(ref_name));
        let reply = self.send_commit(&path, &body, &what)?;
        let kind = reply.error_text().1;
        match reply.status {
            404 if kind == "NoSuchTableException" || kind == "NoSuchNamespaceException" => Err(
                Error::NoSuchTable(format!("{what} ({})", reply.error_text().0)),
            ),
            404 | 405 | 501 => Err(self.no_transactions()),
            _ => self.outcome(&reply, &what),
        }
    }

    /// POSTs a commit; a request that went out and got no answer is `CommitStateUnknown`.
    fn send_commit(&self, path: &str, body: &Value, what: &str) -> Result<Reply> {
        // A local warehouse's new files are named on disk before the server points at them.
        crate::storage::durable::sync_new_entries()?;
        match self.http.send("POST", path, Some(body)) {
            Ok(reply) => Ok(reply),
            Err(Failure::NotSent(e)) => Err(e),
            Err(Failure::NoAnswer(e)) => Err(Error::CommitStateUnknown {
                table: what.to_string(),
                message: format!(
                    "the commit was sent to the REST catalog at {} but no answer came ({e}); \
                     the files written are kept",
                    self.http.uri()
                ),
            }),
        }
    }

    /// A commit's answer: 2xx landed, 409 lost the race, 5xx unknown (the server may have
    /// applied it before failing), other errors typed as for any request.
    fn outcome(&self, reply: &Reply, what: &str) -> Result<Committed<()>> {
        match reply.status {
            409 => Ok(Committed::Conflict(reply.error_text().0)),
            500..=599 => {
                let (message, kind) = reply.error_text();
                Err(Error::CommitStateUnknown {
                    table: what.to_string(),
                    message: format!(
                        "the REST catalog at {} answered HTTP {} ({kind}: {message}), so the \
                         commit may or may not have landed; the files written are kept",
                        self.http.uri(),
                        reply.status
                    ),
                })
            }
            _ if reply.ok() => Ok(Committed::Landed(())),
            _ => Err(read_error(
                &self.http,
                reply,
                &format!("the commit of {what}"),
            )),
        }
    }
}
