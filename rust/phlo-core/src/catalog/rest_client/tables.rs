//! Namespaces and tables on the REST catalog: list, create, load, drop. Namespaces belong to
//! the catalog; a table is reached on a catalog ref's prefix (see [`super::config`]).

use std::collections::{BTreeMap, HashMap};

use iceberg::TableCreation;
use iceberg::spec::TableMetadata;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::RestCatalog;
use super::errors::{namespace_missing, read_error};
use crate::catalog::{MAIN, TableIdent};
use crate::error::{Error, Result};

/// A `LoadTableResult`: the table's current metadata and where the server keeps it, with the
/// storage properties the server hands out for its files (see [`super::storage`]).
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct LoadedMetadata {
    pub metadata_location: Option<String>,
    pub metadata: TableMetadata,
    #[serde(default)]
    pub config: HashMap<String, String>,
    #[serde(default)]
    pub storage_credentials: Vec<StorageCredential>,
}

/// One entry of `storage-credentials`: properties for the files under `prefix`.
#[derive(Deserialize)]
pub(crate) struct StorageCredential {
    pub prefix: String,
    #[serde(default)]
    pub config: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Page<T> {
    #[serde(default = "Vec::new")]
    namespaces: Vec<Vec<String>>,
    #[serde(default = "Vec::new")]
    identifiers: Vec<T>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct Identifier {
    namespace: Vec<String>,
    name: String,
}

/// A path segment: phlo's `a.b` namespace as the spec's levels joined by 0x1F, encoded.
fn segment(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

fn namespace_segment(namespace: &str) -> String {
    segment(&namespace.split('.').collect::<Vec<_>>().join("\u{1f}"))
}

fn levels(namespace: &str) -> Vec<&str> {
    namespace.split('.').collect()
}

impl RestCatalog {
    pub(super) fn namespace_path(&self, namespace: &str) -> String {
        self.namespace_path_on(MAIN, namespace)
    }

    fn namespace_path_on(&self, ref_name: &str, namespace: &str) -> String {
        format!(
            "v1/{}namespaces/{}",
            self.config.prefix_on(ref_name),
            namespace_segment(namespace)
        )
    }

    /// The table's path on catalog ref `ref_name`.
    pub(super) fn table_path(&self, ident: &TableIdent, ref_name: &str) -> String {
        format!(
            "{}/tables/{}",
            self.namespace_path_on(ref_name, &ident.namespace),
            segment(&ident.name)
        )
    }

    /// Whether catalog ref `name` exists on a server with catalog branches (Nessie-style): its
    /// prefix answers. Always `false` elsewhere (refs are inside each table there).
    pub fn has_catalog_ref(&self, name: &str) -> Result<bool> {
        if !self.config.catalog_branches() {
            return Ok(false);
        }
        let reply = self
            .http
            .get(&format!("v1/{}namespaces", self.config.prefix_on(name)))?;
        match reply.status {
            404 => Ok(false),
            _ if reply.ok() => Ok(true),
            _ => Err(read_error(
                &self.http,
                &reply,
                &format!("looking up ref {name}"),
            )),
        }
    }

    /// A 404 on catalog ref `ref_name`'s prefix: the ref is missing (an error naming it), or
    /// else what `otherwise` says is.
    fn missing(&self, ref_name: &str, otherwise: Error) -> Error {
        if ref_name == MAIN || !self.config.catalog_branches() {
            return otherwise;
        }
        match self.has_catalog_ref(ref_name) {
            Ok(true) => otherwise,
            Ok(false) => Error::invalid(
                format!(
                    "ref {ref_name} does not exist in the REST catalog at {}",
                    self.http.uri()
                ),
                "use an existing branch, or create it with the server's own API (phlo catalog \
                 serve: `phlo --root DIR branch create NAME` on the served lakehouse; Nessie: its \
                 REST API or CLI)",
            ),
            Err(e) => e,
        }
    }

    pub fn namespace_exists(&self, namespace: &str) -> Result<bool> {
        let reply = self.http.get(&self.namespace_path(namespace))?;
        match reply.status {
            404 => Ok(false),
            _ if reply.ok() => Ok(true),
            _ => Err(read_error(&self.http, &reply, "loading a namespace")),
        }
    }

    pub fn create_namespace(&self, namespace: &str) -> Result<()> {
        let body = json!({"namespace": levels(namespace), "properties": {}});
        let path = format!("v1/{}namespaces", self.config.prefix);
        let reply = self.http.post(&path, &body)?;
        match reply.status {
            409 => Err(Error::NamespaceAlreadyExists(namespace.into())),
            _ if reply.ok() => Ok(()),
            _ => Err(read_error(&self.http, &reply, "creating a namespace")),
        }
    }

    /// The top-level namespaces (and, below them, their children), `a.b` for nested ones.
    pub fn list_namespaces(&self) -> Result<Vec<String>> {
        let mut all = Vec::new();
        let mut pending = vec![None::<String>];
        while let Some(parent) = pending.pop() {
            let query = parent.as_ref().map(|p| {
                let levels = levels(p).join("\u{1f}");
                format!("parent={}", segment(&levels))
            });
            let path = format!("v1/{}namespaces", self.config.prefix);
            let found: Vec<Vec<String>> = self.pages(
                &path,
                query.as_deref(),
                "listing namespaces",
                |p: Page<Identifier>| p.namespaces,
            )?;
            for levels in found {
                let name = levels.join(".");
                pending.push(Some(name.clone()));
                all.push(name);
            }
        }
        all.sort();
        Ok(all)
    }

    pub fn drop_namespace(&self, namespace: &str) -> Result<()> {
        let reply = self.http.delete(&self.namespace_path(namespace))?;
        match reply.status {
            404 => Err(Error::NoSuchNamespace(namespace.into())),
            409 => Err(Error::NamespaceNotEmpty(namespace.into())),
            _ if reply.ok() => Ok(()),
            _ => Err(read_error(&self.http, &reply, "dropping a namespace")),
        }
    }

    pub fn namespace_properties(&self, namespace: &str) -> Result<BTreeMap<String, String>> {
        let reply = self.http.get(&self.namespace_path(namespace))?;
        match reply.status {
            404 => Err(Error::NoSuchNamespace(namespace.into())),
            _ if reply.ok() => {
                let body: Value = reply.json("loading a namespace")?;
                Ok(serde_json::from_value(body["properties"].clone()).unwrap_or_default())
            }
            _ => Err(read_error(&self.http, &reply, "loading a namespace")),
        }
    }

    /// The tables of `namespace` on catalog ref `ref_name`.
    pub fn list_tables(&self, namespace: &str, ref_name: &str) -> Result<Vec<TableIdent>> {
        let path = format!("{}/tables", self.namespace_path_on(ref_name, namespace));
        let found: Vec<Identifier> = self
            .pages(&path, None, "listing tables", |p| p.identifiers)
            .map_err(|e| match e {
                Error::NoSuchTable(_) => {
                    self.missing(ref_name, Error::NoSuchNamespace(namespace.into()))
                }
                e => e,
            })?;
        let mut tables: Vec<TableIdent> = found
            .into_iter()
            .map(|i| TableIdent {
                namespace: i.namespace.join("."),
                name: i.name,
            })
            .collect();
        tables.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(tables)
    }

    /// Every page of a listing (`pageToken`); a 404 is `NoSuchTable` for the caller to name.
    fn pages<T: serde::de::DeserializeOwned, I>(
        &self,
        path: &str,
        query: Option<&str>,
        what: &str,
        items: impl Fn(Page<T>) -> Vec<I>,
    ) -> Result<Vec<I>> {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut params: Vec<String> = query.map(str::to_string).into_iter().collect();
            if let Some(token) = &token {
                params.push(format!("pageToken={}", segment(token)));
            }
            let url = match params.is_empty() {
                true => path.to_string(),
                false => format!("{path}?{}", params.join("&")),
            };
            let reply = self.http.get(&url)?;
            if reply.status == 404 {
                return Err(Error::NoSuchTable(path.into()));
            }
            if !reply.ok() {
                return Err(read_error(&self.http, &reply, what));
            }
            let page: Page<T> = reply.json(what)?;
            token = page.next_page_token.clone().filter(|t| !t.is_empty());
            all.extend(items(page));
            if token.is_none() {
                return Ok(all);
            }
        }
    }

    /// The table's current metadata as the server has it on catalog ref `ref_name`.
    pub(crate) fn load_table(&self, ident: &TableIdent, ref_name: &str) -> Result<LoadedMetadata> {
        let reply = self.http.get(&self.table_path(ident, ref_name))?;
        match reply.status {
            404 if namespace_missing(&reply) => {
                Err(Error::NoSuchNamespace(ident.namespace.clone()))
            }
            404 => Err(self.missing(ref_name, Error::NoSuchTable(ident.to_string()))),
            _ if reply.ok() => {
                Ok(self.remember_storage(ident, reply.json(&format!("loading {ident}"))?))
            }
            _ => Err(read_error(&self.http, &reply, &format!("loading {ident}"))),
        }
    }

    /// Creates the table; the server picks its location unless `creation` names one, and
    /// writes its first metadata file. With `stage`, the server only answers the metadata a
    /// commit asserting `assert-create` will create (a staged create).
    pub(crate) fn create_table(
        &self,
        ident: &TableIdent,
        ref_name: &str,
        creation: &TableCreation,
        stage: bool,
    ) -> Result<LoadedMetadata> {
        let mut body = json!({
            "name": ident.name,
            "schema": creation.schema,
            "properties": creation.properties,
            "stage-create": stage,
        });
        if let Some(spec) = &creation.partition_spec {
            body["partition-spec"] = json!(spec);
        }
        if let Some(location) = &creation.location {
            body["location"] = json!(location);
        }
        let path = format!(
            "{}/tables",
            self.namespace_path_on(ref_name, &ident.namespace)
        );
        let reply = self.http.post(&path, &body)?;
        match reply.status {
            404 => Err(self.missing(ref_name, Error::NoSuchNamespace(ident.namespace.clone()))),
            409 => Err(Error::TableAlreadyExists(ident.to_string())),
            _ if reply.ok() => {
                Ok(self.remember_storage(ident, reply.json(&format!("creating {ident}"))?))
            }
            _ => Err(read_error(&self.http, &reply, &format!("creating {ident}"))),
        }
    }

    /// Where the server keeps the table's current metadata.
    pub fn metadata_location(&self, ident: &TableIdent, ref_name: &str) -> Result<String> {
        self.load_table(ident, ref_name)?
            .metadata_location
            .ok_or_else(|| {
                Error::invalid(
                    format!("the REST catalog has no metadata file for {ident} (a staged table)"),
                    "commit the table's creation first",
                )
            })
    }

    /// Drops the table on catalog ref `ref_name`, returning its last metadata file. Without
    /// catalog branches (not Nessie-style) only on `main`: the server keeps a table's branches
    /// inside the table, so it cannot drop it from one branch only.
    pub fn drop_table_on(&self, ref_name: &str, ident: &TableIdent) -> Result<String> {
        if ref_name != MAIN && !self.config.catalog_branches() {
            return Err(Error::invalid(
                format!(
                    "cannot drop {ident} from {ref_name} only: on a REST catalog a table's branches are inside the table"
                ),
                "drop the table on main (ref=\"main\"), which drops it with all its branches",
            ));
        }
        let location = self.metadata_location(ident, ref_name)?;
        self.drop_table(ident, ref_name, false)?;
        Ok(location)
    }

    /// Drops the table from catalog ref `ref_name`; its files stay unless `purge`.
    pub fn drop_table(&self, ident: &TableIdent, ref_name: &str, purge: bool) -> Result<()> {
        let path = format!(
            "{}?purgeRequested={purge}",
            self.table_path(ident, ref_name)
        );
        let reply = self.http.delete(&path)?;
        match reply.status {
            404 => Err(Error::NoSuchTable(ident.to_string())),
            _ if reply.ok() => Ok(()),
            _ => Err(read_error(&self.http, &reply, &format!("dropping {ident}"))),
        }
    }
}
