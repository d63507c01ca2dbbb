//! Credentials for the REST catalog: a fixed bearer token (`token`), or OAuth2 client
//! credentials (`credential` = `client_id:client_secret`) exchanged for a token at
//! `oauth2-server-uri` (default `v1/oauth/tokens` of the catalog), refreshed on a 401.
//! Neither is ever shown: `Debug` and every message leave them out.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use serde_json::Value;

use super::http::Http;
use crate::error::{Error, Result};

pub(super) enum Auth {
    None,
    Token(String),
    Credential {
        client_id: Option<String>,
        secret: String,
        /// Absolute token endpoint, or `None` for the catalog's own `v1/oauth/tokens`.
        server_uri: Option<String>,
        scope: String,
        token: Mutex<Option<String>>,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Auth::None => "Auth::None",
            Auth::Token(_) => "Auth::Token(***)",
            Auth::Credential { .. } => "Auth::Credential(***)",
        })
    }
}

impl Auth {
    /// The credential the properties name (SigV4 signing is separate: see `sigv4`).
    pub fn from_properties(properties: &HashMap<String, String>) -> Result<Self> {
        if let Some(credential) = properties.get("credential") {
            let (client_id, secret) = match credential.split_once(':') {
                Some((id, secret)) => (Some(id.to_string()), secret.to_string()),
                None => (None, credential.clone()),
            };
            return Ok(Auth::Credential {
                client_id,
                secret,
                server_uri: properties.get("oauth2-server-uri").cloned(),
                scope: properties
                    .get("scope")
                    .cloned()
                    .unwrap_or_else(|| "catalog".into()),
                token: Mutex::new(properties.get("token").cloned()),
            });
        }
        Ok(match properties.get("token") {
            Some(token) => Auth::Token(token.clone()),
            None => Auth::None,
        })
    }

    /// Whether a 401 is worth one more try with a new token.
    pub fn refreshable(&self) -> bool {
        matches!(self, Auth::Credential { .. })
    }

    /// The `Authorization` header value; with `refresh`, a new OAuth2 token is fetched first.
    pub fn header(&self, http: &Http, refresh: bool) -> Result<Option<String>> {
        match self {
            Auth::None => Ok(None),
            Auth::Token(token) => Ok(Some(format!("Bearer {token}"))),
            Auth::Credential {
                client_id,
                secret,
                server_uri,
                scope,
                token,
            } => {
                let mut token = token.lock().unwrap_or_else(|p| p.into_inner());
                if refresh || token.is_none() {
                    let url = server_uri
                        .clone()
                        .unwrap_or_else(|| http.url("v1/oauth/tokens"));
                    *token = Some(fetch_token(
                        http,
                        &url,
                        client_id.as_deref(),
                        secret,
                        scope,
                    )?);
                }
                Ok(token.as_ref().map(|t| format!("Bearer {t}")))
            }
        }
    }
}

/// OAuth2 client credentials grant: the `access_token` the endpoint answers.
fn fetch_token(
    http: &Http,
    url: &str,
    client_id: Option<&str>,
    secret: &str,
    scope: &str,
) -> Result<String> {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_secret", secret),
        ("scope", scope),
    ];
    if let Some(id) = client_id {
        form.push(("client_id", id));
    }
    let reply = http.post_form(url, &form)?;
    let body: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    match body["access_token"].as_str() {
        Some(token) if reply.ok() => Ok(token.to_string()),
        _ => Err(Error::config(
            format!(
                "the REST catalog at {} refused the credential (HTTP {}, {})",
                http.uri(),
                reply.status,
                body["error_description"]
                    .as_str()
                    .or(body["error"].as_str())
                    .unwrap_or("no reason given")
            ),
            "check the credential property (client_id:client_secret) and oauth2-server-uri",
        )),
    }
}
