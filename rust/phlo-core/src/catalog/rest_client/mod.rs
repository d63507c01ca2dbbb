//! A catalog behind the Iceberg REST API (`http(s)://` catalog URIs): PyIceberg's
//! `RestCatalog`, SeaweedFS, `phlo catalog serve`. Tables live in the server; phlo still
//! writes data files, manifests and manifest lists itself, and commits a snapshot as REST
//! updates (see [`commit`]) — the server writes the metadata file.

mod auth;
pub(crate) mod commit;
mod config;
mod errors;
mod http;
mod publish;
mod schema_recheck;
mod sigv4;
mod storage;
mod tables;
mod transaction;

use std::collections::HashMap;

use auth::Auth;
use config::ServerConfig;
use http::Http;
use sigv4::SigV4;
use storage::Vended;
use transaction::Transactions;

use crate::error::Result;

/// A connection to one REST catalog (one prefix of it).
#[derive(Debug)]
pub struct RestCatalog {
    http: Http,
    config: ServerConfig,
    transactions: Transactions,
    /// The storage properties the server handed out, by table.
    vended: Vended,
}

impl RestCatalog {
    /// Connects to the catalog at `uri` (`http://host:port[/base]`): reads `/v1/config`,
    /// logging in first when the properties carry a credential. Properties: `token`,
    /// `credential` (`client_id:client_secret`), `oauth2-server-uri`, `scope`, `warehouse`,
    /// `rest.timeout-ms`; `rest.sigv4-enabled=true` signs every request with AWS SigV4
    /// (`rest.signing-region`, `rest.signing-name`, `rest.access-key-id`, … see `sigv4`).
    pub fn connect(uri: &str, properties: &HashMap<String, String>) -> Result<Self> {
        let timeout = properties
            .get("rest.timeout-ms")
            .and_then(|v| v.parse().ok());
        let signer = SigV4::from_properties(properties)?;
        let http = Http::new(uri, Auth::from_properties(properties)?, signer, timeout);
        let config = ServerConfig::fetch(&http, properties)?;
        Ok(Self {
            http,
            config,
            transactions: Transactions::default(),
            vended: Vended::default(),
        })
    }

    /// The client's properties with the server's defaults and overrides applied (storage
    /// settings such as `s3.endpoint` may come from the server).
    pub fn properties(&self) -> &HashMap<String, String> {
        &self.config.properties
    }

    /// Whether the server's branches are the catalog's own (Nessie-style prefixes), which
    /// phlo reads and writes by `ref` but cannot create, merge or delete over Iceberg REST.
    pub fn catalog_branches(&self) -> bool {
        self.config.catalog_branches()
    }

    /// The catalog URI for messages (no password).
    pub fn uri(&self) -> String {
        self.http.uri()
    }
}
