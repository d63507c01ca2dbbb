//! phlo's versioned catalog served as an Iceberg REST catalog (`phlo catalog serve`). This is
//! the whole protocol as pure logic: a request (method, path, query, headers, body) in, a
//! response (status, headers, body) out; the socket lives in Python. Catalog refs are
//! prefixes (see [`routes`]): the metadata served on ref X is the metadata X points at, and a
//! commit on X moves X's pointer, so a table's own `main` snapshot ref is X's head.

mod auth;
mod commit;
mod errors;
mod namespaces;
pub mod routes;
mod tables;
mod wire;

use std::sync::Arc;

use serde_json::{Value, json};

pub use errors::RestError;
pub use routes::{Endpoint, Route};

use crate::catalog::refs::validate_ref_name;
use crate::catalog::{MAIN, RefKind};
use crate::lakehouse::Lakehouse;

/// How Nessie (and this server) builds a prefix from a ref and a warehouse: sent to clients in
/// `nessie.prefix-pattern`.
pub const NESSIE_PREFIX_PATTERN: &str = "{ref}|{warehouse}";

/// One HTTP request as the server read it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            // A `Value` always encodes.
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }

    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The body as JSON (tests and logs).
    pub fn body_json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// The REST catalog over one lakehouse; cheap to share between the server's threads.
pub struct RestService {
    lakehouse: Arc<Lakehouse>,
    /// When set, every request but the token exchange needs `Authorization: Bearer <token>`.
    token: Option<String>,
    /// What load-table and create-table answers carry as `config`: nothing, or with
    /// [`Self::vending_credentials`] the warehouse's own storage properties.
    table_config: Value,
}

impl RestService {
    pub fn new(lakehouse: Arc<Lakehouse>, token: Option<String>) -> Self {
        Self {
            lakehouse,
            token,
            table_config: json!({}),
        }
    }

    /// Hands the warehouse's storage properties (its S3 endpoint, region, path style and
    /// **its own access key and secret**) to every client in load-table and create-table
    /// answers, so clients without credentials of their own read and write the tables' files:
    /// for trusted networks only, as anyone who can reach the server gets the keys.
    pub fn vending_credentials(mut self) -> Self {
        let vended: serde_json::Map<String, Value> = self
            .lakehouse
            .storage_properties()
            .iter()
            .filter(|(key, _)| key.starts_with("s3.") || key.as_str() == "client.region")
            .map(|(key, value)| (key.clone(), Value::String(value.clone())))
            .collect();
        self.table_config = Value::Object(vended);
        self
    }

    /// Answers one request; every failure is a response in Iceberg's error model.
    pub async fn handle(&self, request: &Request) -> Response {
        let head = request.method == "HEAD";
        match self.dispatch(request).await {
            Ok(response) => response,
            Err(error) => error.into_response(head),
        }
    }

    async fn dispatch(&self, request: &Request) -> Result<Response, RestError> {
        let route = routes::parse(&request.method, &request.path)?;
        if route.endpoint == Endpoint::OAuthTokens {
            return auth::issue_token(self.token.as_deref(), &request.body);
        }
        auth::check(self.token.as_deref(), request.header("Authorization"))?;
        if route.endpoint == Endpoint::Config {
            return self.config(&route, &request.query);
        }
        let ref_name = route.ref_name().unwrap_or(MAIN).to_string();
        self.check_ref(&ref_name, route.endpoint.writes())?;
        let lh = &self.lakehouse;
        let body = request.body.as_slice();
        let author = commit::author(request);
        match route.endpoint {
            Endpoint::ListNamespaces => {
                let parent = routes::query_param(&request.query, "parent")
                    .map(|p| routes::namespace(&p))
                    .transpose()?;
                namespaces::list(lh, parent.as_deref())
            }
            Endpoint::CreateNamespace => namespaces::create(lh, body),
            Endpoint::LoadNamespace(ns) => namespaces::load(lh, &ns),
            Endpoint::NamespaceExists(ns) => namespaces::exists(lh, &ns),
            Endpoint::DropNamespace(ns) => namespaces::drop(lh, &ns),
            Endpoint::UpdateNamespaceProperties(ns) => namespaces::update_properties(lh, &ns, body),
            Endpoint::ListTables(ns) => tables::list(lh, &ref_name, &ns),
            Endpoint::CreateTable(ns) => {
                tables::create(lh, &ref_name, &ns, body, &author, &self.table_config).await
            }
            Endpoint::LoadTable(ident) => {
                tables::load(lh, &ref_name, &ident, &self.table_config).await
            }
            Endpoint::TableExists(ident) => tables::exists(lh, &ref_name, &ident),
            Endpoint::DropTable(ident) => {
                let purge = routes::query_param(&request.query, "purgeRequested")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"));
                tables::drop(lh, &ref_name, &ident, purge).await
            }
            Endpoint::RenameTable => tables::rename(lh, &ref_name, body, &author),
            Endpoint::CommitTable(ident) => {
                commit::commit_table(lh, &ref_name, &ident, body, &author).await
            }
            Endpoint::CommitTransaction => {
                commit::commit_transaction(lh, &ref_name, body, &author).await
            }
            // Scan reports are accepted and dropped: phlo keeps no scan metrics.
            Endpoint::ReportMetrics(_) => Ok(Response::empty(204)),
            Endpoint::Config | Endpoint::OAuthTokens => unreachable!("answered above"),
        }
    }

    /// `GET /v1/config`: the ref this client works on becomes its prefix. Without a ref in
    /// the path, `?warehouse=` may name one (DuckDB and PyIceberg send the warehouse they were
    /// given); a warehouse that is not a ref name (`s3://…`, `file://…`) selects `main`.
    /// Under Nessie's `/iceberg` base path the answer is Nessie's: prefix `<ref>|<warehouse>`
    /// and the marker keys that tell Nessie-aware clients (phlo's own among them) that branches
    /// are catalog refs reached by prefix. At the root it is a plain catalog whose prefix is
    /// the bare ref (clients there treat refs as table refs).
    fn config(&self, route: &Route, query: &str) -> Result<Response, RestError> {
        let asked = routes::query_param(query, "warehouse").filter(|w| !w.is_empty());
        let warehouse_ref = asked
            .clone()
            .filter(|w| route.ref_name().is_none() && validate_ref_name(w).is_ok());
        let ref_name = route
            .ref_name()
            .map(str::to_string)
            .or(warehouse_ref.clone())
            .unwrap_or_else(|| MAIN.to_string());
        self.check_ref(&ref_name, false)?;
        let overrides = match route.nessie_path {
            true => {
                let warehouse = asked.filter(|_| warehouse_ref.is_none());
                let warehouse = warehouse.as_deref().unwrap_or(self.lakehouse.warehouse());
                json!({
                    "prefix": routes::nessie_prefix_of(&ref_name, warehouse),
                    "nessie.is-nessie-catalog": "true",
                    "nessie.prefix-pattern": NESSIE_PREFIX_PATTERN,
                    "nessie.default-branch.name": ref_name,
                })
            }
            false => json!({"prefix": routes::prefix_of(&ref_name)}),
        };
        Ok(Response::json(
            200,
            &json!({"defaults": {}, "overrides": overrides, "endpoints": wire::ENDPOINTS}),
        ))
    }

    /// Errors unless `ref_name` exists, and is a branch when the request writes.
    fn check_ref(&self, ref_name: &str, writes: bool) -> Result<(), RestError> {
        match self.lakehouse.catalog().ref_kind(ref_name)? {
            None => Err(RestError::not_found(format!(
                "ref {ref_name} does not exist: create it with `phlo branch create {ref_name}`, \
                 or use a client URI …/iceberg/<ref> of an existing branch or tag"
            ))),
            Some(RefKind::Tag) if writes => Err(RestError::new(
                403,
                "ForbiddenException",
                format!("{ref_name} is a tag, and tags are read-only: write to a branch"),
            )),
            Some(_) => Ok(()),
        }
    }
}
