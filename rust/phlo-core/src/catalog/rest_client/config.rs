//! `GET /v1/config`: what the server tells the client. Its `defaults` yield to the client's
//! properties and its `overrides` win over them (the REST spec's order); the merged `prefix`
//! goes in front of every path, and `endpoints` (when sent) says what the server serves.

use std::collections::HashMap;

use serde::Deserialize;

use super::errors::read_error;
use super::http::Http;
use crate::error::Result;

#[derive(Deserialize, Default)]
struct ConfigReply {
    #[serde(default)]
    defaults: HashMap<String, String>,
    #[serde(default)]
    overrides: HashMap<String, String>,
    endpoints: Option<Vec<String>>,
}

/// The merged configuration of one connection.
pub(super) struct ServerConfig {
    /// Client properties with the server's defaults and overrides applied.
    pub properties: HashMap<String, String>,
    /// `"{prefix}/"`, or empty.
    pub prefix: String,
    /// `None`: the server did not say (older servers), so an endpoint beyond the base set may
    /// or may not be there.
    endpoints: Option<Vec<String>>,
}

impl std::fmt::Debug for ServerConfig {
    // Not the properties: they hold the credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("prefix", &self.prefix)
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    pub fn fetch(http: &Http, properties: &HashMap<String, String>) -> Result<Self> {
        let path = match properties.get("warehouse") {
            Some(warehouse) => format!(
                "v1/config?{}",
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("warehouse", warehouse)
                    .finish()
            ),
            None => "v1/config".to_string(),
        };
        let reply = http.get(&path)?;
        if !reply.ok() {
            return Err(read_error(http, &reply, "reading its configuration"));
        }
        let config: ConfigReply = reply.json("GET /v1/config")?;
        let mut merged = config.defaults;
        merged.extend(properties.clone());
        merged.extend(config.overrides);
        let prefix = match merged.get("prefix").map(|p| p.trim_matches('/')) {
            Some(p) if !p.is_empty() => format!("{p}/"),
            _ => String::new(),
        };
        Ok(Self {
            properties: merged,
            prefix,
            endpoints: config.endpoints,
        })
    }

    /// Whether the server serves `endpoint` (`"POST /v1/{prefix}/transactions/commit"`):
    /// `Some` when it listed its endpoints, `None` when it sent no list.
    pub fn serves(&self, endpoint: &str) -> Option<bool> {
        self.endpoints
            .as_ref()
            .map(|listed| listed.iter().any(|e| e == endpoint))
    }
}
