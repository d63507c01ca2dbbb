//! Writing one S3 object while it is produced: its multipart upload starts as soon as the first
//! part (S3's smallest, 5 MiB) is full, and [`PARTS_IN_FLIGHT`] parts go up while the writer
//! keeps writing; a file smaller than one part is a single PUT at close. opendal's multipart
//! writer keeps the first part back until the second is full (to send a small file whole), so
//! with it the first upload began only after 10 MiB were encoded, and the store was still
//! storing parts after the encoder had finished.
//!
//! Requests are signed as opendal's S3 service signs them (reqsign, the same credential chain
//! from the same settings), to the same endpoint, with the same encryption headers. Each is
//! sent again when it failed in a way the store calls temporary, each attempt with its own
//! timeout. Failures are opendal errors (the request's URL and the store's reply in their
//! context, never a credential), which the storage's error classification reads.

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use opendal::services::S3Config;
use opendal::{Error, ErrorKind};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqsign_aws_v4::{
    AssumeRoleCredentialProvider, Credential, DefaultCredentialProvider, RequestSigner,
    StaticCredentialProvider,
};
use reqsign_core::{Context, OsEnv, ProvideCredentialChain, Signer};
use reqwest::Method;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

type Result<T> = std::result::Result<T, Error>;
/// A successful reply's headers and body.
type Reply = (HeaderMap, Bytes);

/// The size at which a part goes up: S3's smallest part (the last may be smaller).
pub(super) const PART_SIZE: usize = 5 << 20;
/// Parts of one object uploading at once; the writer holds about this many beyond the one it
/// is filling.
const PARTS_IN_FLIGHT: usize = 2;
/// Each attempt of a request gives up after this (a part is at most a few MiB).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Waits before sending a request again after a temporary failure.
const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(200),
    Duration::from_millis(800),
    Duration::from_millis(2000),
];

/// What a key keeps as-is in a URL path: unreserved characters and `/` (as opendal encodes).
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');
/// A query value: `/` encoded too.
const QUERY: &AsciiSet = &PATH.add(b'/');

/// The thread every upload request runs on. The Parquet encoder runs on the caller's runtime
/// and keeps its worker threads busy while a file is written: a part's upload spawned there
/// would start only once the encoder yields (at close), however early it was handed over.
static UPLOADS: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("phlo-s3-upload")
        .enable_all()
        .build()
        .expect("a Tokio runtime for S3 uploads")
});

/// One bucket's requests: where they go, how they are signed, the headers every write carries.
pub(super) struct Bucket {
    http: reqwest::Client,
    /// `None` with `s3.allow-anonymous`: requests go unsigned.
    signer: Option<Signer<Credential>>,
    /// The bucket's URL: an object is `{url}/{key}`.
    url: String,
    /// Server-side encryption headers, on every request that writes.
    write_headers: HeaderMap,
}

impl Bucket {
    /// The requests to `bucket` that `config` (the settings the file IO reads) describes.
    pub fn new(bucket: &str, config: &S3Config) -> Result<Self> {
        let region = config.region.clone().unwrap_or_else(|| "us-east-1".into());
        Ok(Self {
            http: reqwest::Client::new(),
            signer: (!config.skip_signature).then(|| signer(config, &region)),
            url: bucket_url(bucket, config, &region),
            write_headers: encryption_headers(config)?,
        })
    }

    fn object_url(&self, key: &str) -> String {
        format!("{}/{}", self.url, utf8_percent_encode(key, PATH))
    }

    /// [`Self::send`] on the upload thread, waited for.
    async fn request(self: &Arc<Self>, method: Method, url: &str, body: Bytes) -> Result<Reply> {
        let (bucket, url) = (self.clone(), url.to_string());
        joined(
            UPLOADS
                .spawn(async move { bucket.send(method, &url, body).await })
                .await,
        )
    }

    /// Sends a request (again after a temporary failure), returning the successful reply's
    /// headers and body.
    async fn send(&self, method: Method, url: &str, body: Bytes) -> Result<Reply> {
        self.send_counted(method, url, body).await.0
    }

    /// [`Self::send`], and whether the request was sent more than once.
    async fn send_counted(&self, method: Method, url: &str, body: Bytes) -> (Result<Reply>, bool) {
        let mut delays = RETRY_DELAYS.iter();
        let mut resent = false;
        loop {
            match self.attempt(method.clone(), url, body.clone()).await {
                Err(e) if e.is_temporary() => match delays.next() {
                    Some(delay) => tokio::time::sleep(*delay).await,
                    None => return (Err(e), resent),
                },
                result => return (result, resent),
            }
            resent = true;
        }
    }

    /// Completes the multipart upload `id` of the object at `url`, `size` bytes in `parts`, on
    /// the upload thread. A completion whose reply was lost (a dropped connection, a timeout)
    /// is sent again, and the store may then no longer know the upload (`NoSuchUpload`): the
    /// first attempt completed it. The object is then there, `size` bytes long, which a HEAD
    /// shows; anything else is the failure it looks like.
    async fn complete(
        self: &Arc<Self>,
        url: &str,
        id: &str,
        parts: &[(u32, String)],
        size: u64,
    ) -> Result<()> {
        let (bucket, url) = (self.clone(), url.to_string());
        let (body, id) = (complete_body(parts), id.to_string());
        joined(
            UPLOADS
                .spawn(async move {
                    let completion = upload_url(&url, &id);
                    let (result, resent) =
                        bucket.send_counted(Method::POST, &completion, body).await;
                    match result {
                        Err(e) if resent && is_no_such_upload(&e) => {
                            match bucket.size_of(&url).await {
                                Ok(Some(landed)) if landed == size => Ok(()),
                                _ => Err(e),
                            }
                        }
                        result => result.map(|_| ()),
                    }
                })
                .await,
        )
    }

    /// The size of the object at `url` (a HEAD), `None` when there is none.
    async fn size_of(&self, url: &str) -> Result<Option<u64>> {
        let headers = match self.send(Method::HEAD, url, Bytes::new()).await {
            Ok((headers, _)) => headers,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let size = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        Ok(size)
    }

    /// A request's headers before signing: the encryption headers on every write (as opendal
    /// sends them), none on an abort, a customer key's on a HEAD (S3 asks for it to show an
    /// object encrypted with it, and refuses the others there); the completion's XML body
    /// typed as such.
    fn headers(&self, method: &Method, url: &str) -> HeaderMap {
        match *method {
            Method::DELETE => return HeaderMap::new(),
            Method::HEAD => {
                let customer = |name: &HeaderName| {
                    (name.as_str()).starts_with("x-amz-server-side-encryption-customer-")
                };
                return (self.write_headers.iter())
                    .filter(|(name, _)| customer(name))
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect();
            }
            _ => {}
        }
        let mut headers = self.write_headers.clone();
        if method == Method::POST && url.contains("?uploadId=") {
            let xml = HeaderValue::from_static("application/xml");
            headers.insert(http::header::CONTENT_TYPE, xml);
        }
        headers
    }

    async fn attempt(&self, method: Method, url: &str, body: Bytes) -> Result<Reply> {
        let mut request = http::Request::builder()
            .method(method.clone())
            .uri(url)
            .body(())
            .map_err(|e| Error::new(ErrorKind::Unexpected, "invalid request").set_source(e))?
            .into_parts()
            .0;
        request.headers = self.headers(&method, url);
        if let Some(signer) = &self.signer {
            signer.sign(&mut request, None).await.map_err(|e| {
                Error::new(ErrorKind::PermissionDenied, "could not sign the request")
                    .with_context("url", url)
                    .set_source(e)
            })?;
        }
        let sent = self
            .http
            .request(method, url)
            .headers(request.headers)
            .timeout(ATTEMPT_TIMEOUT)
            .body(body)
            .send()
            .await;
        let reply = sent.map_err(|e| {
            // Not sent, or no reply: a dropped connection, a timeout.
            Error::new(ErrorKind::Unexpected, "sending the request failed")
                .with_context("url", url)
                .set_source(e)
                .set_temporary()
        })?;
        let status = reply.status();
        let headers = reply.headers().clone();
        let body = reply.bytes().await.map_err(|e| {
            Error::new(ErrorKind::Unexpected, "reading the reply failed")
                .with_context("url", url)
                .set_source(e)
                .set_temporary()
        })?;
        // CompleteMultipartUpload may fail after its 200: the error is in the body.
        let failed_late = status.is_success() && reports_error(&body);
        if status.is_success() && !failed_late {
            return Ok((headers, body));
        }
        let kind = match status.as_u16() {
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            412 => ErrorKind::ConditionNotMatch,
            429 | 503 => ErrorKind::RateLimited,
            _ => ErrorKind::Unexpected,
        };
        let error = Error::new(kind, "the object store refused the request")
            .with_context("uri", url)
            .with_context(
                "response",
                format!("{status}: {}", String::from_utf8_lossy(&body)),
            );
        let temporary =
            failed_late || status.is_server_error() || matches!(status.as_u16(), 408 | 429);
        Err(if temporary {
            error.set_temporary()
        } else {
            error
        })
    }
}

/// Whether `error` is the store saying it does not know the multipart upload a request names.
fn is_no_such_upload(error: &Error) -> bool {
    error.kind() == ErrorKind::NotFound && error.to_string().contains("NoSuchUpload")
}

/// Whether a successful reply's body is an S3 error document.
fn reports_error(body: &[u8]) -> bool {
    String::from_utf8_lossy(&body[..body.len().min(256)]).contains("<Error>")
}

/// The credential chain opendal's S3 service builds from the same settings: the given key
/// pair first, then the environment, profile and instance metadata (unless disabled), the
/// whole chain behind an assumed role when one is named.
fn signer(config: &S3Config, region: &str) -> Signer<Credential> {
    let info = Arc::new(opendal::raw::AccessorInfo::default());
    let ctx = Context::new()
        .with_file_read(reqsign_file_read_tokio::TokioFileRead)
        .with_http_send(opendal::raw::AccessorInfoHttpSend::new(info))
        .with_env(OsEnv);
    let mut defaults = DefaultCredentialProvider::builder();
    if config.disable_config_load {
        defaults = defaults.no_env().no_profile();
    }
    if config.disable_ec2_metadata {
        defaults = defaults.no_imds();
    }
    let mut chain = ProvideCredentialChain::new().push(defaults.build());
    if let (Some(key), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
        let given = StaticCredentialProvider::new(key, secret);
        chain = chain.push_front(match config.session_token.as_deref() {
            Some(token) => given.with_session_token(token),
            None => given,
        });
    }
    if let Some(role) = &config.role_arn {
        let sts = Signer::new(ctx.clone(), chain, RequestSigner::new("sts", region));
        let mut assumed = AssumeRoleCredentialProvider::new(role.clone(), sts)
            .with_region(region.to_string())
            .with_regional_sts_endpoint();
        if let Some(id) = &config.external_id {
            assumed = assumed.with_external_id(id.clone());
        }
        if let Some(name) = &config.role_session_name {
            assumed = assumed.with_role_session_name(name.clone());
        }
        chain = ProvideCredentialChain::new().push(assumed);
    }
    Signer::new(ctx, chain, RequestSigner::new("s3", region))
}

/// The bucket's URL as opendal builds it: the endpoint (https when it names no scheme; AWS's
/// regional one when none), the bucket as a path segment or, virtual-host style, a host label.
fn bucket_url(bucket: &str, config: &S3Config, region: &str) -> String {
    let endpoint = match &config.endpoint {
        Some(e) if e.starts_with("http") => e.clone(),
        Some(e) => format!("https://{e}"),
        None => format!("https://s3.{region}.amazonaws.com"),
    };
    let endpoint = endpoint
        .replace(&format!("//{bucket}."), "//")
        .trim_end_matches('/')
        .to_string();
    if config.enable_virtual_host_style {
        endpoint.replacen("//", &format!("//{bucket}."), 1)
    } else {
        format!("{endpoint}/{bucket}")
    }
}

fn encryption_headers(config: &S3Config) -> Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        (
            "x-amz-server-side-encryption",
            &config.server_side_encryption,
        ),
        (
            "x-amz-server-side-encryption-aws-kms-key-id",
            &config.server_side_encryption_aws_kms_key_id,
        ),
        (
            "x-amz-server-side-encryption-customer-algorithm",
            &config.server_side_encryption_customer_algorithm,
        ),
        (
            "x-amz-server-side-encryption-customer-key",
            &config.server_side_encryption_customer_key,
        ),
        (
            "x-amz-server-side-encryption-customer-key-md5",
            &config.server_side_encryption_customer_key_md5,
        ),
    ] {
        if let Some(value) = value {
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("the {name} setting is not a valid header value"),
                )
            })?;
            value.set_sensitive(true);
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    Ok(headers)
}

/// One object being written.
pub(super) struct Upload {
    bucket: Arc<Bucket>,
    url: String,
    /// What is written but not yet sent (less than a part).
    buffer: BytesMut,
    /// The multipart upload's id, once the first part was full.
    id: Option<Arc<str>>,
    /// Parts being uploaded, oldest first.
    sending: VecDeque<JoinHandle<Result<(u32, String)>>>,
    /// Parts uploaded: number and ETag.
    sent: Vec<(u32, String)>,
    /// Bytes written so far.
    size: u64,
    next_part: u32,
    state: State,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Closed,
    /// A request failed: the upload was aborted.
    Failed,
}

impl Upload {
    pub fn new(bucket: Arc<Bucket>, key: &str) -> Self {
        Self {
            url: bucket.object_url(key),
            bucket,
            buffer: BytesMut::new(),
            id: None,
            sending: VecDeque::new(),
            sent: Vec::new(),
            size: 0,
            next_part: 1,
            state: State::Open,
        }
    }

    pub async fn write(&mut self, bytes: Bytes) -> Result<()> {
        if self.state != State::Open {
            return Err(Error::new(
                ErrorKind::Unexpected,
                "write after close or failure",
            ));
        }
        self.size += bytes.len() as u64;
        let part = if self.buffer.is_empty() && bytes.len() >= PART_SIZE {
            // A whole part in one write (a row group): sent as it is, not copied.
            bytes
        } else {
            self.buffer.extend_from_slice(&bytes);
            if self.buffer.len() < PART_SIZE {
                return Ok(());
            }
            let part = self.buffer.split().freeze();
            // The next part's room, allocated once rather than grown by each write.
            self.buffer.reserve(PART_SIZE);
            part
        };
        if let Err(e) = self.send_part(part).await {
            self.abort().await;
            return Err(e);
        }
        Ok(())
    }

    /// Completes the object: the rest as the last part (or, without parts, the whole object
    /// as one PUT); after a failure the upload is aborted.
    pub async fn close(&mut self) -> Result<()> {
        match self.state {
            State::Open => {}
            State::Closed => return Ok(()),
            State::Failed => {
                return Err(Error::new(
                    ErrorKind::Unexpected,
                    "the object's upload failed before it was closed",
                )
                .with_context("uri", &self.url));
            }
        }
        let result = self.finish().await;
        match result {
            Ok(()) => self.state = State::Closed,
            Err(_) => self.abort().await,
        }
        result
    }

    async fn finish(&mut self) -> Result<()> {
        let rest = self.buffer.split().freeze();
        if self.id.is_none() {
            self.bucket.request(Method::PUT, &self.url, rest).await?;
            return Ok(());
        }
        if !rest.is_empty() {
            self.send_part(rest).await?;
        }
        while let Some(part) = self.sending.pop_front() {
            self.sent.push(joined(part.await)?);
        }
        let id = self.id.clone().expect("a multipart upload");
        (self.bucket)
            .complete(&self.url, &id, &self.sent, self.size)
            .await
    }

    /// Starts uploading `part`, first the multipart upload when this is the first; waits for
    /// the oldest part when [`PARTS_IN_FLIGHT`] are on their way.
    async fn send_part(&mut self, part: Bytes) -> Result<()> {
        let id = match &self.id {
            Some(id) => id.clone(),
            None => {
                let url = format!("{}?uploads", self.url);
                let (_, reply) = self
                    .bucket
                    .request(Method::POST, &url, Bytes::new())
                    .await?;
                let id: Arc<str> = upload_id(&reply)
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Unexpected,
                            "the store's reply names no upload id",
                        )
                        .with_context("uri", &url)
                    })?
                    .into();
                self.id = Some(id.clone());
                id
            }
        };
        if self.sending.len() >= PARTS_IN_FLIGHT {
            let oldest = self.sending.pop_front().expect("parts in flight");
            self.sent.push(joined(oldest.await)?);
        }
        let number = self.next_part;
        self.next_part += 1;
        let url = format!(
            "{}?partNumber={number}&uploadId={}",
            self.url,
            utf8_percent_encode(&id, QUERY)
        );
        let bucket = self.bucket.clone();
        self.sending.push_back(UPLOADS.spawn(async move {
            let (headers, _) = bucket.send(Method::PUT, &url, part).await?;
            let etag = headers
                .get(http::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    Error::new(ErrorKind::Unexpected, "the store's reply has no ETag")
                        .with_context("uri", &url)
                })?;
            Ok((number, etag.to_string()))
        }));
        Ok(())
    }

    /// Stops the parts on their way and aborts the multipart upload (best effort: a failure
    /// to abort leaves the upload to the bucket's lifecycle rules).
    async fn abort(&mut self) {
        self.state = State::Failed;
        for part in self.sending.drain(..) {
            part.abort();
        }
        if let Some(id) = self.id.take() {
            let url = upload_url(&self.url, &id);
            let _ = self
                .bucket
                .request(Method::DELETE, &url, Bytes::new())
                .await;
        }
    }
}

impl Drop for Upload {
    /// A writer dropped unclosed (its write failed elsewhere) aborts its multipart upload.
    fn drop(&mut self) {
        for part in self.sending.drain(..) {
            part.abort();
        }
        let (Some(id), State::Open) = (self.id.take(), self.state) else {
            return;
        };
        let (bucket, url) = (self.bucket.clone(), upload_url(&self.url, &id));
        UPLOADS.spawn(async move {
            let _ = bucket.send(Method::DELETE, &url, Bytes::new()).await;
        });
    }
}

/// The multipart upload `id` of the object at `url`: completed with a POST, aborted with a
/// DELETE.
fn upload_url(url: &str, id: &str) -> String {
    format!("{url}?uploadId={}", utf8_percent_encode(id, QUERY))
}

/// The result of a task on the upload thread.
fn joined<T>(task: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    task.map_err(|e| Error::new(ErrorKind::Unexpected, "an upload request stopped").set_source(e))?
}

/// The `UploadId` of a CreateMultipartUpload reply.
fn upload_id(reply: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(reply).ok()?;
    let start = text.find("<UploadId>")? + "<UploadId>".len();
    let end = start + text[start..].find("</UploadId>")?;
    Some(unescape(&text[start..end]))
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// CompleteMultipartUpload's body: the parts in order, with their ETags.
fn complete_body(parts: &[(u32, String)]) -> Bytes {
    let mut parts = parts.to_vec();
    parts.sort();
    let mut body = String::from("<CompleteMultipartUpload>");
    for (number, etag) in parts {
        body.push_str(&format!(
            "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>",
            escape(&etag)
        ));
    }
    body.push_str("</CompleteMultipartUpload>");
    Bytes::from(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(endpoint: Option<&str>, path_style: bool) -> S3Config {
        let mut config = S3Config::default();
        config.endpoint = endpoint.map(str::to_string);
        config.enable_virtual_host_style = !path_style;
        config
    }

    #[test]
    fn objects_are_addressed_as_opendal_addresses_them() {
        let local = config(Some("http://127.0.0.1:8333/"), true);
        assert_eq!(
            bucket_url("b", &local, "us-east-1"),
            "http://127.0.0.1:8333/b"
        );
        let hosted = config(Some("store.example"), false);
        assert_eq!(
            bucket_url("b", &hosted, "us-east-1"),
            "https://b.store.example"
        );
        let aws = config(None, false);
        assert_eq!(
            bucket_url("b", &aws, "eu-west-1"),
            "https://b.s3.eu-west-1.amazonaws.com"
        );
        let bucket = Bucket::new("b", &local).unwrap();
        assert_eq!(
            bucket.object_url("t/data/a b+c.parquet"),
            "http://127.0.0.1:8333/b/t/data/a%20b%2Bc.parquet"
        );
    }

    #[test]
    fn the_upload_id_is_read_and_the_parts_listed_in_order() {
        let reply = b"<?xml version=\"1.0\"?><InitiateMultipartUploadResult><Bucket>b</Bucket>\
                      <Key>k</Key><UploadId>a&amp;b/c</UploadId></InitiateMultipartUploadResult>";
        assert_eq!(upload_id(reply).as_deref(), Some("a&b/c"));
        assert_eq!(upload_id(b"<Error/>"), None);
        let body = complete_body(&[(2, "\"e2\"".into()), (1, "\"e1\"".into())]);
        assert_eq!(
            body,
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;e1&quot;</ETag>\
             </Part><Part><PartNumber>2</PartNumber><ETag>&quot;e2&quot;</ETag></Part>\
             </CompleteMultipartUpload>"
        );
    }

    #[test]
    fn encryption_settings_become_write_headers_that_are_never_shown() {
        let mut config = config(None, false);
        config.server_side_encryption_customer_algorithm = Some("AES256".into());
        config.server_side_encryption_customer_key = Some("c2VjcmV0".into());
        let headers = encryption_headers(&config).unwrap();
        let key = &headers["x-amz-server-side-encryption-customer-key"];
        assert!(key.is_sensitive());
        assert_eq!(headers.len(), 2);
        config.server_side_encryption = Some("bad\nvalue".into());
        let err = encryption_headers(&config).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
    }

    #[test]
    fn a_head_carries_a_customer_key_and_no_other_encryption_header() {
        let mut config = config(Some("http://127.0.0.1:8333"), true);
        config.server_side_encryption = Some("aws:kms".into());
        config.server_side_encryption_aws_kms_key_id = Some("key".into());
        let bucket = Bucket::new("b", &config).unwrap();
        assert_eq!(bucket.headers(&Method::PUT, "u").len(), 2);
        assert!(bucket.headers(&Method::HEAD, "u").is_empty());
        config.server_side_encryption = None;
        config.server_side_encryption_aws_kms_key_id = None;
        config.server_side_encryption_customer_algorithm = Some("AES256".into());
        config.server_side_encryption_customer_key = Some("c2VjcmV0".into());
        let bucket = Bucket::new("b", &config).unwrap();
        let head = bucket.headers(&Method::HEAD, "u");
        assert_eq!(head.len(), 2);
        assert!(head.contains_key("x-amz-server-side-encryption-customer-key"));
    }
}
