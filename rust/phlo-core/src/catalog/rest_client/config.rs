//! `GET /v1/config`: what the server tells the client. Its `defaults` yield to the client's
//! properties and its `overrides` win over them (the REST spec's order); the merged `prefix`
//! goes in front of every path, and `endpoints` (when sent) says what the server serves.
//!
//! A Nessie-style server (Nessie, `phlo catalog serve`) says so with `nessie.is-nessie-catalog`
//! and `nessie.prefix-pattern` (`{ref}|{warehouse}`): its branches are the catalog's own, each
//! reached through a prefix of its own, and a table's `main` on that prefix is the branch's
//! head. Elsewhere a phlo ref is a ref inside each table's metadata.

use std::collections::HashMap;

use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Deserialize;

use super::errors::read_error;
use super::http::Http;
use crate::catalog::MAIN;
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
    /// How to reach other catalog branches when the server is Nessie-style.
    nessie: Option<NessieRefs>,
}

/// A Nessie-style server's prefixes: `pattern` with `{ref}` and `{warehouse}` filled in.
#[derive(Debug)]
struct NessieRefs {
    pattern: String,
    /// The warehouse of the server's own prefix (`None` when it sent a bare ref).
    warehouse: Option<String>,
}

impl std::fmt::Debug for ServerConfig {
    // Not the properties: they hold the credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("prefix", &self.prefix)
            .field("endpoints", &self.endpoints)
            .field("nessie", &self.nessie)
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
        let nessie = NessieRefs::from_config(&merged, &prefix);
        Ok(Self {
            properties: merged,
            prefix,
            endpoints: config.endpoints,
            nessie,
        })
    }

    /// Whether branches are the catalog's own (a Nessie-style server), not each table's.
    pub fn catalog_branches(&self) -> bool {
        self.nessie.is_some()
    }

    /// `"{prefix}/"` of the paths on catalog ref `ref_name`: on a Nessie-style server the
    /// ref's own prefix (`main` is the ref the server chose for this connection, which
    /// `…/iceberg/<ref>` picks), elsewhere the one prefix of the connection.
    pub fn prefix_on(&self, ref_name: &str) -> String {
        match &self.nessie {
            Some(nessie) if ref_name != MAIN => nessie.prefix(ref_name),
            _ => self.prefix.clone(),
        }
    }

    /// The table ref that holds catalog ref `ref_name`'s state: the table's `main` on a
    /// Nessie-style server (the prefix picks the branch), else the ref itself.
    pub fn table_ref<'a>(&self, ref_name: &'a str) -> &'a str {
        match self.nessie {
            Some(_) => MAIN,
            None => ref_name,
        }
    }

    /// Whether the server serves `endpoint` (`"POST /v1/{prefix}/transactions/commit"`):
    /// `Some` when it listed its endpoints, `None` when it sent no list.
    pub fn serves(&self, endpoint: &str) -> Option<bool> {
        self.endpoints
            .as_ref()
            .map(|listed| listed.iter().any(|e| e == endpoint))
    }
}

impl NessieRefs {
    /// The server's Nessie markers, if it sent them (Nessie's `IcebergConfigurer` does).
    fn from_config(merged: &HashMap<String, String>, prefix: &str) -> Option<Self> {
        if merged.get("nessie.is-nessie-catalog").map(String::as_str) != Some("true") {
            return None;
        }
        let pattern = merged.get("nessie.prefix-pattern")?.clone();
        let own = percent_decode_str(prefix.trim_end_matches('/')).decode_utf8_lossy();
        let warehouse = own.split_once('|').map(|(_, w)| w.to_string());
        Some(Self { pattern, warehouse })
    }

    fn prefix(&self, ref_name: &str) -> String {
        let raw = match &self.warehouse {
            Some(warehouse) => self
                .pattern
                .replace("{ref}", ref_name)
                .replace("{warehouse}", warehouse),
            None => ref_name.to_string(),
        };
        format!("{}/", utf8_percent_encode(&raw, NON_ALPHANUMERIC))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nessie(prefix: &str) -> Option<NessieRefs> {
        let merged = HashMap::from([
            ("nessie.is-nessie-catalog".to_string(), "true".to_string()),
            ("nessie.prefix-pattern".into(), "{ref}|{warehouse}".into()),
        ]);
        NessieRefs::from_config(&merged, prefix)
    }

    #[test]
    fn nessie_prefixes_carry_the_servers_warehouse() {
        let refs = nessie("main%7Cs3%3A%2F%2Flake/").unwrap();
        assert_eq!(refs.prefix("run/42"), "run%2F42%7Cs3%3A%2F%2Flake/");
        assert_eq!(nessie("main/").unwrap().prefix("dev"), "dev/");
        assert!(NessieRefs::from_config(&HashMap::new(), "main/").is_none());
    }
}
