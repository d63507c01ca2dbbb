//! Table endpoints on one catalog ref: list, create, load, exists, drop, rename.

use iceberg::TableCreation;
use iceberg::spec::{FormatVersion, TableMetadataBuilder};
use serde_json::{Value, json};

use super::{Response, RestError, wire};
use crate::catalog::{CommitMeta, TableIdent};
use crate::lakehouse::Lakehouse;
use crate::tables::LoadedTable;
use crate::tables::table::default_location;

pub fn list(lh: &Lakehouse, ref_name: &str, namespace: &str) -> Result<Response, RestError> {
    if !lh.catalog().namespace_exists(namespace)? {
        return Err(crate::Error::NoSuchNamespace(namespace.into()).into());
    }
    let tables = lh.catalog().list_tables_on(ref_name, namespace)?;
    let identifiers: Vec<_> = tables.iter().map(wire::identifier_json).collect();
    Ok(Response::json(200, &json!({"identifiers": identifiers})))
}

pub async fn create(
    lh: &Lakehouse,
    ref_name: &str,
    namespace: &str,
    body: &[u8],
    meta: &CommitMeta,
    config: &Value,
) -> Result<Response, RestError> {
    let request: wire::CreateTable = wire::parse(body, "create table")?;
    crate::catalog::validate_name(&request.name, "table")
        .map_err(|e| RestError::bad_request(e.to_string()))?;
    let ident = TableIdent {
        namespace: namespace.to_string(),
        name: request.name.clone(),
    };
    let format_version = match request.properties.get("format-version").map(String::as_str) {
        None | Some("2") => FormatVersion::V2,
        Some("1") => FormatVersion::V1,
        Some("3") => FormatVersion::V3,
        Some(other) => {
            return Err(RestError::bad_request(format!(
                "format-version {other:?} is not an Iceberg format version (1, 2 or 3)"
            )));
        }
    };
    let mut properties = request.properties;
    properties.remove("format-version");
    let creation = TableCreation::builder()
        .name(ident.name.clone())
        .location(
            request
                .location
                .unwrap_or_else(|| default_location(lh.warehouse(), &ident)),
        )
        .schema(request.schema)
        .partition_spec_opt(request.partition_spec)
        .sort_order_opt(request.write_order)
        .properties(properties)
        .format_version(format_version)
        .build();
    if request.stage_create {
        return staged(lh, ref_name, &ident, creation, config);
    }
    let table = LoadedTable::create_from(
        lh.catalog(),
        lh.file_io(),
        (&ident, ref_name),
        creation,
        meta,
    )
    .await
    .map_err(|e| match e {
        // The schema, spec or sort order did not build: the client's input.
        crate::Error::Iceberg { .. } => RestError::bad_request(e.to_string()),
        other => other.into(),
    })?;
    Ok(loaded(&table, config))
}

/// A staged create (`stage-create: true`): the new table's metadata, written nowhere; the
/// client's commit with `assert-create` creates the table (see [`super::commit`]).
fn staged(
    lh: &Lakehouse,
    ref_name: &str,
    ident: &TableIdent,
    creation: TableCreation,
    config: &Value,
) -> Result<Response, RestError> {
    if !lh.catalog().namespace_exists(&ident.namespace)? {
        return Err(crate::Error::NoSuchNamespace(ident.namespace.clone()).into());
    }
    if lh.catalog().metadata_location_on(ref_name, ident).is_ok() {
        return Err(crate::Error::TableAlreadyExists(ident.to_string()).into());
    }
    let metadata = TableMetadataBuilder::from_table_creation(creation)
        .and_then(|b| b.build())
        .map_err(|e| RestError::bad_request(format!("table {ident}: {}", e.message())))?
        .metadata;
    Ok(Response::json(
        200,
        &json!({"metadata-location": null, "metadata": metadata, "config": config}),
    ))
}

/// A table's load (or create) answer, with `config`: the storage properties the server hands
/// out (empty unless it vends them).
fn loaded(table: &LoadedTable, config: &Value) -> Response {
    let mut body = wire::load_result(table);
    body["config"] = config.clone();
    Response::json(200, &body)
}

pub async fn load(
    lh: &Lakehouse,
    ref_name: &str,
    ident: &TableIdent,
    config: &Value,
) -> Result<Response, RestError> {
    let table = lh.load_table(&ident.to_string(), ref_name).await?;
    Ok(loaded(&table, config))
}

pub fn exists(lh: &Lakehouse, ref_name: &str, ident: &TableIdent) -> Result<Response, RestError> {
    lh.catalog().metadata_location_on(ref_name, ident)?;
    Ok(Response::empty(204))
}

pub async fn drop(
    lh: &Lakehouse,
    ref_name: &str,
    ident: &TableIdent,
    purge: bool,
) -> Result<Response, RestError> {
    lh.drop_table(&ident.to_string(), purge, ref_name).await?;
    Ok(Response::empty(204))
}

pub fn rename(
    lh: &Lakehouse,
    ref_name: &str,
    body: &[u8],
    meta: &CommitMeta,
) -> Result<Response, RestError> {
    let request: wire::Rename = wire::parse(body, "rename table")?;
    let (from, to) = (request.source.ident()?, request.destination.ident()?);
    lh.catalog().rename_table_on(ref_name, &from, &to, meta)?;
    Ok(Response::empty(204))
}
