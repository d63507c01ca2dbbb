//! Commits from clients: requirements checked against the table as the ref points at it,
//! updates applied with iceberg-rust's metadata builder, the new metadata files written, then
//! every table's pointer swapped at once (one catalog transaction) and logged. A lost race
//! reloads and checks the requirements again, as Iceberg's own catalogs do: a requirement
//! that no longer holds is a 409, and nothing changed.

use iceberg::spec::{TableMetadata, TableMetadataBuilder};
use iceberg::{ErrorKind, TableRequirement, TableUpdate};

use super::{Request, Response, RestError, wire};
use crate::catalog::{CommitMeta, TableIdent};
use crate::error::Context;
use crate::lakehouse::Lakehouse;
use crate::tables::LoadedTable;
use crate::tables::commit::backoff;

/// Attempts before a commit that keeps losing the race to other writers is a 409.
const MAX_ATTEMPTS: u32 = 16;

/// Header a client may set to be the author in phlo's log (PyIceberg: `header.X-Phlo-Author`).
const AUTHOR_HEADER: &str = "X-Phlo-Author";

/// Who commits, for the log: the `X-Phlo-Author` header, else the client's `User-Agent`.
pub fn author(request: &Request) -> CommitMeta {
    CommitMeta {
        author: request
            .header(AUTHOR_HEADER)
            .or(request.header("User-Agent"))
            .map(str::to_string),
        ..Default::default()
    }
}

/// One table's part of a commit.
struct Change {
    ident: TableIdent,
    requirements: Vec<TableRequirement>,
    updates: Vec<TableUpdate>,
}

/// `POST …/tables/{table}`: answers the table's new metadata.
pub async fn commit_table(
    lh: &Lakehouse,
    ref_name: &str,
    ident: &TableIdent,
    body: &[u8],
    client: &CommitMeta,
) -> Result<Response, RestError> {
    let request: wire::CommitTable = wire::parse(body, "commit table")?;
    if let Some(named) = &request.identifier
        && named.ident()? != *ident
    {
        return Err(RestError::bad_request(format!(
            "the body names table {}, the path {ident}",
            named.ident()?
        )));
    }
    let change = Change {
        ident: ident.clone(),
        requirements: request.requirements,
        updates: request.updates,
    };
    let mut committed = commit(lh, ref_name, vec![change], client).await?;
    Ok(Response::json(
        200,
        &wire::load_result(&committed.remove(0)),
    ))
}

/// `POST /v1/{prefix}/transactions/commit`: several tables on one ref, all or nothing.
pub async fn commit_transaction(
    lh: &Lakehouse,
    ref_name: &str,
    body: &[u8],
    client: &CommitMeta,
) -> Result<Response, RestError> {
    let request: wire::CommitTransaction = wire::parse(body, "commit transaction")?;
    let mut changes: Vec<Change> = Vec::new();
    for table in request.table_changes {
        let ident = table
            .identifier
            .as_ref()
            .ok_or_else(|| RestError::bad_request("every table change needs an identifier"))?
            .ident()?;
        if changes.iter().any(|c| c.ident == ident) {
            return Err(RestError::bad_request(format!(
                "table {ident} appears twice in one transaction: put its changes in one entry"
            )));
        }
        changes.push(Change {
            ident,
            requirements: table.requirements,
            updates: table.updates,
        });
    }
    if changes.is_empty() {
        return Err(RestError::bad_request("the transaction changes no table"));
    }
    commit(lh, ref_name, changes, client).await?;
    Ok(Response::empty(204))
}

/// Applies `changes` on `ref_name` atomically; returns the tables as committed.
async fn commit(
    lh: &Lakehouse,
    ref_name: &str,
    changes: Vec<Change>,
    client: &CommitMeta,
) -> Result<Vec<LoadedTable>, RestError> {
    for attempt in 0..MAX_ATTEMPTS {
        let mut staged = Vec::with_capacity(changes.len());
        for change in &changes {
            let table = lh.load_table(&change.ident.to_string(), ref_name).await?;
            let next = apply(&table, change)?;
            staged.push((table, next));
        }
        let written = write_all(lh, &staged).await?;
        let swaps: Vec<(TableIdent, String, String)> = staged
            .iter()
            .zip(&written)
            .map(|((table, _), to)| {
                (
                    table.ident.clone(),
                    table.metadata_location.clone(),
                    to.clone(),
                )
            })
            .collect();
        let (message, meta) = describe(&staged, client);
        let swapped = lh
            .catalog()
            .swap_metadata_locations_on(ref_name, &swaps, &message, &meta);
        let landed = match swapped {
            Ok(landed) => landed,
            // Pointers and log row are written in one transaction: the log tells.
            Err(error) => match lh.catalog().logged_metadata_location(&written[0]) {
                Ok(true) => true,
                Ok(false) => {
                    delete_all(lh, &written).await;
                    return Err(error.into());
                }
                Err(_) => {
                    return Err(crate::Error::CommitStateUnknown {
                        table: changes[0].ident.to_string(),
                        message: format!(
                            "the catalog failed while committing ({error}), and whether the \
                             commit landed could not be read back"
                        ),
                    }
                    .into());
                }
            },
        };
        if landed {
            return Ok(staged
                .into_iter()
                .zip(written)
                .map(|((table, next), location)| LoadedTable {
                    ident: table.ident,
                    ref_name: table.ref_name,
                    metadata: next.into(),
                    metadata_location: location,
                })
                .collect());
        }
        delete_all(lh, &written).await;
        tokio::time::sleep(backoff(attempt)).await;
    }
    Err(RestError::commit_failed(format!(
        "lost the commit race to other writers {MAX_ATTEMPTS} times in a row; retry"
    )))
}

/// Checks the requirements against `table` and applies the updates to its metadata.
fn apply(table: &LoadedTable, change: &Change) -> Result<TableMetadata, RestError> {
    for requirement in &change.requirements {
        requirement.check(Some(&table.metadata)).map_err(|e| {
            let message = format!("{}: {}", change.ident, e.message());
            match e.kind() {
                ErrorKind::CatalogCommitConflicts => RestError::commit_failed(message),
                _ => RestError::bad_request(message),
            }
        })?;
    }
    let rejected = |e: iceberg::Error| {
        RestError::bad_request(format!(
            "the updates of {} do not apply: {}",
            change.ident,
            e.message()
        ))
    };
    let mut builder = TableMetadataBuilder::new_from_metadata(
        (*table.metadata).clone(),
        Some(table.metadata_location.clone()),
    );
    for update in &change.updates {
        builder = update.clone().apply(builder).map_err(rejected)?;
    }
    Ok(builder.build().map_err(rejected)?.metadata)
}

/// Writes each table's next metadata file; on a failure removes those written and errors.
async fn write_all(
    lh: &Lakehouse,
    staged: &[(LoadedTable, TableMetadata)],
) -> Result<Vec<String>, RestError> {
    let mut written = Vec::with_capacity(staged.len());
    for (table, next) in staged {
        let location = table.next_metadata_location(next)?;
        let result = next
            .write_to(lh.file_io(), &location)
            .await
            .context(|| format!("writing metadata of {}", table.ident));
        if let Err(e) = result {
            delete_all(lh, &written).await;
            return Err(e.into());
        }
        written.push(location.to_string());
    }
    Ok(written)
}

/// The log message and metadata: what each table's new snapshot did (or "update" for a
/// metadata-only change), the author from the snapshot's `phlo.author` or the client.
fn describe(staged: &[(LoadedTable, TableMetadata)], client: &CommitMeta) -> (String, CommitMeta) {
    let mut parts = Vec::new();
    let mut meta = None;
    for (table, next) in staged {
        let snapshot = next
            .snapshots()
            .filter(|s| table.metadata.snapshot_by_id(s.snapshot_id()).is_none())
            .max_by_key(|s| s.sequence_number());
        match snapshot {
            Some(snapshot) => {
                parts.push(format!(
                    "{} {}",
                    snapshot.summary().operation.as_str(),
                    table.ident
                ));
                meta.get_or_insert_with(|| {
                    CommitMeta::from_properties(&snapshot.summary().additional_properties)
                });
            }
            None => parts.push(format!("update {}", table.ident)),
        }
    }
    let mut meta = meta.unwrap_or_default();
    if meta.author.is_none() {
        meta.author = client.author.clone();
    }
    let message = format!("{} (iceberg-rest)", parts.join("; "));
    (message, meta)
}

/// Best effort: files no pointer references are only orphans if a delete fails.
async fn delete_all(lh: &Lakehouse, paths: &[String]) {
    for path in paths {
        let _ = lh.file_io().delete(path).await;
    }
}
