//! The JSON bodies of the Iceberg REST API that this server reads, and helpers for the ones it
//! writes. Requirements, updates, schemas and specs are iceberg-rust's own types.

use std::collections::{BTreeMap, HashMap};

use iceberg::spec::{Schema, SortOrder, UnboundPartitionSpec};
use iceberg::{TableRequirement, TableUpdate};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::RestError;
use super::routes::{levels, namespace_from_levels};
use crate::catalog::TableIdent;
use crate::tables::LoadedTable;

/// What `/v1/config` lists as served, so clients call nothing else.
pub const ENDPOINTS: [&str; 17] = [
    "GET /v1/{prefix}/namespaces",
    "POST /v1/{prefix}/namespaces",
    "GET /v1/{prefix}/namespaces/{namespace}",
    "HEAD /v1/{prefix}/namespaces/{namespace}",
    "DELETE /v1/{prefix}/namespaces/{namespace}",
    "POST /v1/{prefix}/namespaces/{namespace}/properties",
    "GET /v1/{prefix}/namespaces/{namespace}/tables",
    "POST /v1/{prefix}/namespaces/{namespace}/tables",
    "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "DELETE /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}/metrics",
    "POST /v1/{prefix}/tables/rename",
    "POST /v1/{prefix}/transactions/commit",
    "GET /v1/config",
    "POST /v1/oauth/tokens",
];

/// A request body as `T`; malformed JSON or a wrong shape is a 400 naming the problem.
pub fn parse<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, RestError> {
    serde_json::from_slice(body)
        .map_err(|e| RestError::bad_request(format!("malformed {what} request: {e}")))
}

#[derive(Deserialize)]
pub struct CreateNamespace {
    pub namespace: Vec<String>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

#[derive(Deserialize)]
pub struct UpdateProperties {
    #[serde(default)]
    pub removals: Vec<String>,
    #[serde(default)]
    pub updates: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CreateTable {
    pub name: String,
    pub location: Option<String>,
    pub schema: Schema,
    pub partition_spec: Option<UnboundPartitionSpec>,
    pub write_order: Option<SortOrder>,
    #[serde(default)]
    pub stage_create: bool,
    #[serde(default)]
    pub properties: HashMap<String, String>,
}

/// A table named in a body: `{"namespace": ["a", "b"], "name": "t"}`.
#[derive(Deserialize)]
pub struct Identifier {
    pub namespace: Vec<String>,
    pub name: String,
}

impl Identifier {
    pub fn ident(&self) -> Result<TableIdent, RestError> {
        let namespace = namespace_from_levels(self.namespace.iter().map(String::as_str))?;
        crate::catalog::validate_name(&self.name, "table")
            .map_err(|e| RestError::bad_request(e.to_string()))?;
        Ok(TableIdent {
            namespace,
            name: self.name.clone(),
        })
    }
}

#[derive(Deserialize)]
pub struct Rename {
    pub source: Identifier,
    pub destination: Identifier,
}

#[derive(Deserialize)]
pub struct CommitTable {
    /// Required inside a transaction; a single-table commit names the table in its path.
    pub identifier: Option<Identifier>,
    #[serde(default)]
    pub requirements: Vec<TableRequirement>,
    #[serde(default)]
    pub updates: Vec<TableUpdate>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CommitTransaction {
    pub table_changes: Vec<CommitTable>,
}

/// `{"namespace": [...], "name": ...}` of a table.
pub fn identifier_json(ident: &TableIdent) -> Value {
    json!({"namespace": levels(&ident.namespace), "name": ident.name})
}

/// The `LoadTableResult` of a table: its metadata file and metadata. Files are read by the
/// client itself from the warehouse, so there is no storage config to hand out.
pub fn load_result(table: &LoadedTable) -> Value {
    json!({
        "metadata-location": table.metadata_location,
        "metadata": &*table.metadata,
        "config": {},
    })
}
