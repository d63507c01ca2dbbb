//! Requests to the REST catalog: one HTTP client on a runtime of its own, so the catalog's
//! synchronous API can wait for an answer from inside the engine's async code. Every request
//! carries the credential (refreshed once on a 401); every failure becomes a typed [`Error`]
//! naming the catalog by its redacted URI and never a credential.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::runtime::Runtime;

use super::auth::Auth;
use super::sigv4::SigV4;
use crate::catalog::redact_uri;
use crate::error::{Error, Result};

/// How long one request may take (property `rest.timeout-ms`).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// An answer of the server.
pub(super) struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Catalog {
            message: format!("the REST catalog answered {what} with a malformed body"),
            source: Box::new(e),
        })
    }

    /// The `message` and `type` of an Iceberg error body (`{"error": {...}}`), else the text.
    pub fn error_text(&self) -> (String, String) {
        let body: Option<Value> = serde_json::from_slice(&self.body).ok();
        let error = body.as_ref().map(|b| &b["error"]);
        let field = |key: &str| {
            error
                .and_then(|e| e[key].as_str())
                .map(str::to_string)
                .unwrap_or_default()
        };
        let message = match field("message") {
            m if m.is_empty() => String::from_utf8_lossy(&self.body)
                .chars()
                .take(300)
                .collect(),
            m => m,
        };
        (message, field("type"))
    }
}

/// How a request failed before any answer came back.
pub(super) enum Failure {
    /// Nothing reached the server (connection refused, DNS): the request did not act.
    NotSent(Error),
    /// The request went out and no answer came (timeout, reset): it may have acted.
    NoAnswer(Error),
}

impl Failure {
    pub fn into_error(self) -> Error {
        match self {
            Failure::NotSent(e) | Failure::NoAnswer(e) => e,
        }
    }

    /// Whether the network failed (rather than, say, a credential that could not be made).
    fn is_transport(&self) -> bool {
        let (Failure::NotSent(e) | Failure::NoAnswer(e)) = self;
        matches!(e, Error::Catalog { source, .. } if source.is::<reqwest::Error>())
    }
}

/// Sends of one GET before its transient failure is the caller's error.
pub(super) const READ_ATTEMPTS: u32 = 4;

/// The wait before a GET's attempt `attempt + 1`: 100, 200, 400 ms, plus up to 50 ms of
/// jitter so that clients failed together do not come back together.
fn read_backoff(attempt: u32) -> Duration {
    let jitter = (uuid::Uuid::new_v4().as_u128() % 50) as u64;
    Duration::from_millis((100 << (attempt - 1).min(4)) + jitter)
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("uri", &self.uri())
            .field("auth", &self.auth)
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

/// The client of one REST catalog.
pub(super) struct Http {
    /// `http(s)://host:port[/base]`, without a trailing slash.
    base: String,
    auth: Auth,
    /// Signs every request when `rest.sigv4-enabled=true`.
    signer: Option<SigV4>,
    timeout: Duration,
    /// This process's runtime and client: neither survives a fork (Dagster and
    /// multiprocessing fork workers), so a child makes its own.
    runtime: Mutex<Option<(u32, Arc<Runtime>, reqwest::Client)>>,
}

impl Http {
    pub fn new(base: &str, auth: Auth, signer: Option<SigV4>, timeout_ms: Option<u64>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            auth,
            signer,
            timeout: timeout_ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis),
            runtime: Mutex::new(None),
        }
    }

    /// The catalog URI for messages (no password).
    pub fn uri(&self) -> String {
        redact_uri(&self.base)
    }

    /// `GET path` (relative to the base URI: `v1/config`). A GET only reads, so one that met
    /// a transient failure (no answer: a reset, a timeout, a refused connection; or a 429,
    /// 500, 502, 503 or 504) is sent again, up to [`READ_ATTEMPTS`] times in all, with
    /// jittered backoff. Commits never are: whether one that got no answer landed must be
    /// read back first (`commit.rs`).
    pub fn get(&self, path: &str) -> Result<Reply> {
        let mut attempt = 1;
        loop {
            let sent = self.send("GET", path, None);
            let transient = match &sent {
                Ok(reply) => matches!(reply.status, 429 | 500 | 502 | 503 | 504),
                Err(failure) => failure.is_transport(),
            };
            if !transient || attempt == READ_ATTEMPTS {
                return sent.map_err(Failure::into_error);
            }
            std::thread::sleep(read_backoff(attempt));
            attempt += 1;
        }
    }

    pub fn delete(&self, path: &str) -> Result<Reply> {
        self.send("DELETE", path, None).map_err(Failure::into_error)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Reply> {
        self.send("POST", path, Some(body))
            .map_err(Failure::into_error)
    }

    /// Sends a request with its credential; on a 401, refreshes an OAuth2 token once and sends
    /// it again.
    pub fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Reply, Failure> {
        let reply = self.send_once(method, path, body, false)?;
        if reply.status == 401 && self.auth.refreshable() {
            return self.send_once(method, path, body, true);
        }
        Ok(reply)
    }

    fn send_once(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        refresh: bool,
    ) -> Result<Reply, Failure> {
        let header = self.auth.header(self, refresh).map_err(Failure::NotSent)?;
        let url = format!("{}/{path}", self.base);
        let body = body.map(|b| b.to_string().into_bytes());
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a valid method");
        self.exchange(method, url, header, body, "application/json")
    }

    /// A form POST to an absolute URL (the OAuth2 token endpoint), without a credential.
    pub fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<Reply> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.exchange(
            reqwest::Method::POST,
            url.to_string(),
            None,
            Some(body.into_bytes()),
            "application/x-www-form-urlencoded",
        )
        .map_err(Failure::into_error)
    }

    /// Absolute URL of a path below the base URI.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    fn exchange(
        &self,
        method: reqwest::Method,
        url: String,
        authorization: Option<String>,
        body: Option<Vec<u8>>,
        content_type: &'static str,
    ) -> Result<Reply, Failure> {
        let (runtime, client) = self.client().map_err(Failure::NotSent)?;
        let mut request = client
            .request(method.clone(), &url)
            .timeout(self.timeout)
            .header("Content-Type", content_type);
        match (&self.signer, authorization) {
            (Some(signer), bearer) => {
                let parsed = reqwest::Url::parse(&url).map_err(|e| {
                    Failure::NotSent(Error::config(
                        format!(
                            "the REST catalog URI {} is not a valid URL: {e}",
                            self.uri()
                        ),
                        "write it as http(s)://host:port[/path]",
                    ))
                })?;
                let signed = signer.sign(
                    method.as_str(),
                    &parsed,
                    &[("content-type", content_type)],
                    body.as_deref().unwrap_or_default(),
                    chrono::Utc::now(),
                );
                for (name, value) in signed {
                    request = request.header(name, value);
                }
                // The signature takes `Authorization`; a bearer token travels beside it, as
                // PyIceberg sends it.
                if let Some(bearer) = bearer {
                    request = request.header("Original-Authorization", bearer);
                }
            }
            (None, Some(authorization)) => request = request.header("Authorization", authorization),
            (None, None) => {}
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let sent = run(&runtime, async move {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>(Reply {
                status,
                body: body.to_vec(),
            })
        });
        sent.map_err(|e| {
            let error = Error::Catalog {
                message: format!("cannot reach the REST catalog at {}", self.uri()),
                source: Box::new(e.without_url()),
            };
            if error_is_before_send(&error) {
                Failure::NotSent(error)
            } else {
                Failure::NoAnswer(error)
            }
        })
    }

    fn client(&self) -> Result<(Arc<Runtime>, reqwest::Client)> {
        let mut slot = self.runtime.lock().unwrap_or_else(|p| p.into_inner());
        let pid = std::process::id();
        if let Some((owner, runtime, client)) = slot.as_ref()
            && *owner == pid
        {
            return Ok((runtime.clone(), client.clone()));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("phlo-rest-catalog")
            .enable_all()
            .build()
            .map_err(|source| Error::Storage {
                path: "a runtime for the REST catalog client".into(),
                source,
            })?;
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| Error::Catalog {
                message: "creating the REST catalog client".into(),
                source: Box::new(e),
            })?;
        let runtime = Arc::new(runtime);
        // A runtime inherited over a fork has no threads: forget it rather than shut it down.
        if let Some(inherited) = slot.replace((pid, runtime.clone(), client.clone())) {
            std::mem::forget(inherited);
        }
        Ok((runtime, client))
    }
}

/// Runs `future` on the client's runtime and waits for it from this (maybe async) thread.
fn run<T: Send + 'static>(
    runtime: &Runtime,
    future: impl Future<Output = T> + Send + 'static,
) -> T {
    let (send, receive) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        let _ = send.send(future.await);
    });
    receive
        .recv()
        .expect("the REST client's runtime runs every request to its end")
}

/// Whether a transport error happened before the request was sent (connect errors).
fn error_is_before_send(error: &Error) -> bool {
    let Error::Catalog { source, .. } = error else {
        return false;
    };
    source
        .downcast_ref::<reqwest::Error>()
        .is_some_and(|e| e.is_connect() || e.is_builder())
}

impl Drop for Http {
    fn drop(&mut self) {
        // The runtime may be dropped from inside another runtime (the engine's): shutting it
        // down in the background never blocks there.
        let slot = self.runtime.get_mut().unwrap_or_else(|p| p.into_inner());
        match slot.take() {
            Some((owner, runtime, _)) if owner == std::process::id() => {
                if let Ok(runtime) = Arc::try_unwrap(runtime) {
                    runtime.shutdown_background();
                }
            }
            inherited => std::mem::forget(inherited),
        }
    }
}
