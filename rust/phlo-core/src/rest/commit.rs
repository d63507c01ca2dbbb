//! Commits from clients: requirements checked against the table as the ref points at it,
//! updates applied with iceberg-rust's metadata builder, the new metadata files written, then
//! every table's pointer swapped at once (one catalog transaction) and logged. A lost race
//! reloads and checks the requirements again, as Iceberg's own catalogs do: a requirement
//! that no longer holds is a 409, and nothing changed.

use std::sync::Arc;

use iceberg::spec::{FormatVersion, TableMetadata, TableMetadataBuilder};
use iceberg::{ErrorKind, MetadataLocation, TableCreation, TableRequirement, TableUpdate};

use super::{Request, Response, RestError, wire};
use crate::catalog::{CommitMeta, TableIdent};
use crate::error::Context;
use crate::lakehouse::Lakehouse;
use crate::tables::LoadedTable;
use crate::tables::commit::backoff;
use crate::tables::metadata_log::delete_dropped;
use crate::tables::table::default_location;

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

/// One table's next state, written but not yet committed.
struct Staged {
    ident: TableIdent,
    /// The table as the ref points at it; `None`: the commit creates it (a staged create).
    base: Option<LoadedTable>,
    next: TableMetadata,
    location: MetadataLocation,
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
            staged.push(stage(lh, ref_name, change).await?);
        }
        let written = write_all(lh, &staged).await?;
        let swaps: Vec<(TableIdent, Option<String>, String)> = staged
            .iter()
            .zip(&written)
            .map(|(s, to)| {
                let from = s.base.as_ref().map(|t| t.metadata_location.clone());
                (s.ident.clone(), from, to.clone())
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
            for s in &staged {
                if let Some(base) = &s.base {
                    let io = lh.file_io();
                    delete_dropped(lh.catalog(), io, &s.ident, &base.metadata, &s.next).await;
                }
            }
            // The files just written are the tables' state: the next load only reads pointers.
            let cache = lh.catalog().metadata_cache();
            return Ok(staged
                .into_iter()
                .zip(written)
                .map(|(s, location)| {
                    let metadata = Arc::new(s.next);
                    cache.insert(&location, metadata.clone());
                    LoadedTable {
                        ident: s.ident,
                        ref_name: ref_name.to_string(),
                        metadata,
                        metadata_location: location,
                        loaded_ms: crate::tables::table::now_ms(),
                    }
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

/// Loads the table, checks the change's requirements and builds its next metadata. A table
/// that is not there is created when the change asserts that (`assert-create`): the commit
/// of a staged create, whose updates carry the whole table.
async fn stage(lh: &Lakehouse, ref_name: &str, change: &Change) -> Result<Staged, RestError> {
    let ident = change.ident.clone();
    let creates = change.requirements.contains(&TableRequirement::NotExist);
    let base = match lh.load_table(&ident.to_string(), ref_name).await {
        Ok(table) => Some(table),
        Err(crate::Error::NoSuchTable(_)) if creates => None,
        Err(e) => return Err(e.into()),
    };
    check_requirements(change, base.as_ref().map(|t| &*t.metadata))?;
    let rejected = |e: iceberg::Error| {
        RestError::bad_request(format!(
            "the updates of {ident} do not apply: {}",
            e.message()
        ))
    };
    let (mut builder, updates) = match &base {
        Some(table) => (
            TableMetadataBuilder::new_from_metadata(
                (*table.metadata).clone(),
                Some(table.metadata_location.clone()),
            ),
            change.updates.iter().collect(),
        ),
        None => {
            if !lh.catalog().namespace_exists(&ident.namespace)? {
                return Err(crate::Error::NoSuchNamespace(ident.namespace.clone()).into());
            }
            new_table(lh, change).map_err(rejected)?
        }
    };
    for update in updates {
        builder = update.clone().apply(builder).map_err(rejected)?;
    }
    let next = builder.build().map_err(rejected)?.metadata;
    let location = match &base {
        Some(table) => table.next_metadata_location(&next)?,
        None => MetadataLocation::new_with_metadata(next.location(), &next),
    };
    Ok(Staged {
        ident,
        base,
        next,
        location,
    })
}

fn check_requirements(change: &Change, metadata: Option<&TableMetadata>) -> Result<(), RestError> {
    for requirement in &change.requirements {
        requirement.check(metadata).map_err(|e| {
            let message = format!("{}: {}", change.ident, e.message());
            match e.kind() {
                ErrorKind::CatalogCommitConflicts => RestError::commit_failed(message),
                ErrorKind::TableNotFound => {
                    crate::Error::NoSuchTable(change.ident.to_string()).into()
                }
                _ => RestError::bad_request(message),
            }
        })?;
    }
    Ok(())
}

/// A new table's builder from the first schema, spec, sort order, location, format version
/// and properties among a staged create's updates, with the updates still to apply. The
/// builder makes those the current schema and default spec and order, so the updates that
/// select them are left out too; a table without a location gets phlo's default one.
fn new_table<'a>(
    lh: &Lakehouse,
    change: &'a Change,
) -> iceberg::Result<(TableMetadataBuilder, Vec<&'a TableUpdate>)> {
    let (mut schema, mut spec, mut order, mut location) = (None, None, None, None);
    let (mut version, mut properties) = (None, None);
    let (mut schema_set, mut spec_set, mut order_set) = (false, false, false);
    let mut rest = Vec::new();
    for update in &change.updates {
        match update {
            TableUpdate::AddSchema { schema: s } if schema.is_none() => schema = Some(s.clone()),
            TableUpdate::AddSpec { spec: s } if spec.is_none() => spec = Some(s.clone()),
            TableUpdate::AddSortOrder { sort_order } if order.is_none() => {
                order = Some(sort_order.clone())
            }
            TableUpdate::SetLocation { location: l } if location.is_none() => {
                location = Some(l.clone())
            }
            TableUpdate::UpgradeFormatVersion { format_version } if version.is_none() => {
                version = Some(*format_version)
            }
            TableUpdate::SetProperties { updates } if properties.is_none() => {
                properties = Some(updates.clone())
            }
            TableUpdate::SetCurrentSchema { .. } if !schema_set => schema_set = true,
            TableUpdate::SetDefaultSpec { .. } if !spec_set => spec_set = true,
            TableUpdate::SetDefaultSortOrder { .. } if !order_set => order_set = true,
            other => rest.push(other),
        }
    }
    let schema = schema.ok_or_else(|| {
        iceberg::Error::new(
            ErrorKind::DataInvalid,
            "a table created by a commit needs an add-schema update",
        )
    })?;
    let creation = TableCreation::builder()
        .name(change.ident.name.clone())
        .location(location.unwrap_or_else(|| default_location(lh.warehouse(), &change.ident)))
        .schema(schema)
        .partition_spec_opt(spec)
        .sort_order_opt(order)
        .properties(properties.unwrap_or_default())
        .format_version(version.unwrap_or(FormatVersion::V2))
        .build();
    Ok((TableMetadataBuilder::from_table_creation(creation)?, rest))
}

/// Writes each table's next metadata file; on a failure removes those written and errors.
async fn write_all(lh: &Lakehouse, staged: &[Staged]) -> Result<Vec<String>, RestError> {
    let mut written = Vec::with_capacity(staged.len());
    for s in staged {
        let result = s
            .next
            .write_to(lh.file_io(), &s.location)
            .await
            .context(|| format!("writing metadata of {}", s.ident));
        if let Err(e) = result {
            delete_all(lh, &written).await;
            return Err(e.into());
        }
        written.push(s.location.to_string());
    }
    Ok(written)
}

/// The log message and metadata: what each table's new snapshot did (or "update" for a
/// metadata-only change), the author from the snapshot's `phlo.author` or the client.
fn describe(staged: &[Staged], client: &CommitMeta) -> (String, CommitMeta) {
    let mut parts = Vec::new();
    let mut meta = None;
    for s in staged {
        let known = |id: i64| {
            s.base
                .as_ref()
                .is_some_and(|t| t.metadata.snapshot_by_id(id).is_some())
        };
        let snapshot = s
            .next
            .snapshots()
            .filter(|snapshot| !known(snapshot.snapshot_id()))
            .max_by_key(|snapshot| snapshot.sequence_number());
        let what = match (&s.base, snapshot) {
            (None, _) => "create table",
            (Some(_), Some(snapshot)) => snapshot.summary().operation.as_str(),
            (Some(_), None) => "update",
        };
        parts.push(format!("{what} {}", s.ident));
        if let Some(snapshot) = snapshot {
            meta.get_or_insert_with(|| {
                CommitMeta::from_properties(&snapshot.summary().additional_properties)
            });
        }
    }
    let mut meta = meta.unwrap_or_default();
    if meta.author.is_none() {
        meta.author = client.author.clone();
    }
    (format!("{} (iceberg-rest)", parts.join("; ")), meta)
}

/// Best effort: files no pointer references are only orphans if a delete fails.
async fn delete_all(lh: &Lakehouse, paths: &[String]) {
    for path in paths {
        let _ = lh.file_io().delete(path).await;
    }
}
