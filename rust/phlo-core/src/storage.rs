//! Where a lakehouse keeps its data and metadata files: a warehouse URI (`file:///abs/dir`, or
//! `s3://bucket/prefix` with the `s3` feature) and Iceberg-style properties become iceberg's
//! `FileIO`, which every table read and write goes through, plus the one thing `FileIO` cannot
//! do: list the files under a location (orphan removal).
//!
//! S3 properties (`s3.endpoint`, `s3.access-key-id`, `s3.secret-access-key`, `s3.session-token`,
//! `s3.region`, `s3.path-style-access`) fall back to the standard AWS environment variables.
//! Credentials never appear in errors or in `Debug` output.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use iceberg::io::FileIO;

use crate::error::{Error, Result};

/// A file found under a location, with what orphan removal needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// The file's URI, spelled as table metadata spells it (`file:///…`, `s3://bucket/key`).
    pub uri: String,
    pub modified_ms: i64,
    pub size: u64,
}

/// The storage of one warehouse.
#[derive(Clone)]
pub struct Storage {
    warehouse: String,
    io: FileIO,
    kind: Kind,
    /// The storage properties `io` was built from (S3: with the AWS environment filled in):
    /// what a table's own properties are laid over, and what a catalog server hands its
    /// clients when it vends credentials. Empty for a local warehouse.
    properties: HashMap<String, String>,
    /// Opened without S3 credentials, waiting for a catalog to hand them out per table.
    credentials_missing: bool,
}

#[derive(Clone)]
enum Kind {
    Local,
    #[cfg(feature = "s3")]
    S3(s3::ObjectStore),
}

impl fmt::Debug for Storage {
    // Only the URI: the properties may hold credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("warehouse", &self.warehouse)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Opens the storage of `warehouse` (`file:///abs/dir` or `s3://bucket/prefix`). A local
    /// folder is created when missing; an S3 warehouse is checked once (one listing request,
    /// short timeout, a few quick retries of temporary failures) so a wrong endpoint or credential fails here, typed.
    pub async fn open(warehouse: &str, properties: &HashMap<String, String>) -> Result<Self> {
        let warehouse = warehouse.trim_end_matches('/');
        if let Some(dir) = local_path(warehouse) {
            return Self::local(Path::new(dir));
        }
        if warehouse.starts_with("s3://") {
            #[cfg(feature = "s3")]
            return s3::open(warehouse, properties, true).await;
            #[cfg(not(feature = "s3"))]
            return Err(Error::config(
                format!("warehouse {warehouse} needs S3 support, which this build of phlo lacks"),
                "build phlo-core with the `s3` cargo feature (the phlo wheel has it)",
            ));
        }
        let _ = properties;
        Err(Error::config(
            format!("unsupported warehouse URI {warehouse:?}"),
            "use file:///absolute/folder or s3://bucket/prefix",
        ))
    }

    /// [`Self::open`] for a lakehouse whose catalog may hand out storage credentials per table
    /// (an Iceberg REST catalog): an S3 warehouse without credentials in `properties` or the
    /// environment is opened unchecked, and each table's files need the catalog's (see
    /// [`Self::file_io_with`]).
    pub async fn open_awaiting_credentials(
        warehouse: &str,
        properties: &HashMap<String, String>,
    ) -> Result<Self> {
        #[cfg(feature = "s3")]
        if warehouse.starts_with("s3://") && !s3::has_credentials(properties) {
            // Without keys, S3 clients look for credentials on the network (the EC2 metadata
            // service): refuse fast instead, the catalog's keys come per table.
            let mut properties = properties.clone();
            for key in ["s3.disable-ec2-metadata", "s3.disable-config-load"] {
                properties
                    .entry(key.into())
                    .or_insert_with(|| "true".into());
            }
            let warehouse = warehouse.trim_end_matches('/');
            let mut storage = s3::open(warehouse, &properties, false).await?;
            storage.credentials_missing = true;
            return Ok(storage);
        }
        Self::open(warehouse, properties).await
    }

    /// The local folder `dir` (absolute), created when missing.
    pub fn local(dir: &Path) -> Result<Self> {
        if !dir.is_absolute() {
            return Err(Error::config(
                format!("warehouse folder {} is not an absolute path", dir.display()),
                "write file:///absolute/folder (three slashes, then the path)",
            ));
        }
        durable::create_dirs(dir).map_err(|source| Error::Storage {
            path: dir.display().to_string(),
            source,
        })?;
        let dir = dir.canonicalize().map_err(|source| Error::Storage {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(Self {
            warehouse: format!("file://{}", dir.display()),
            io: durable::file_io(),
            kind: Kind::Local,
            properties: HashMap::new(),
            credentials_missing: false,
        })
    }

    /// The warehouse URI, normalized (no trailing slash; local paths canonical).
    pub fn warehouse(&self) -> &str {
        &self.warehouse
    }

    pub fn file_io(&self) -> &FileIO {
        &self.io
    }

    /// The storage properties (S3 credentials among them): never log or show them.
    pub fn properties(&self) -> &HashMap<String, String> {
        &self.properties
    }

    /// Whether the warehouse was opened without the S3 credentials its files need.
    pub fn credentials_missing(&self) -> bool {
        self.credentials_missing
    }

    /// A file IO with `overlay` (a table's own storage properties, as a REST catalog hands
    /// them out) laid over the warehouse's properties; the warehouse's own for a local one.
    pub fn file_io_with(&self, overlay: &HashMap<String, String>) -> FileIO {
        match &self.kind {
            Kind::Local => self.io.clone(),
            #[cfg(feature = "s3")]
            Kind::S3(_) => {
                let mut properties = self.properties.clone();
                properties.extend(overlay.clone());
                s3::file_io(&properties)
            }
        }
    }

    /// Every file below `location` (a table location URI), recursively; none when the
    /// location does not exist.
    pub async fn list(&self, location: &str) -> Result<Vec<ListedFile>> {
        match &self.kind {
            Kind::Local => {
                let Some(dir) = local_path(location) else {
                    return Err(foreign(location, &self.warehouse));
                };
                let mut files = Vec::new();
                list_local(Path::new(dir), &mut files)?;
                Ok(files)
            }
            #[cfg(feature = "s3")]
            Kind::S3(store) => store.list(location).await,
        }
    }
}

/// The path of a local file's URI: `file:///abs/dir` (and Java's spelling `file:/abs/dir`) is
/// `/abs/dir`; `None` for an object store's URI.
pub fn local_path(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("file:")?;
    Some(rest.strip_prefix("//").unwrap_or(rest))
}

fn foreign(location: &str, warehouse: &str) -> Error {
    Error::invalid(
        format!("cannot list {location}: it is not in the storage of warehouse {warehouse}"),
        "tables of one lakehouse must live in its warehouse's storage",
    )
}

/// Files below `dir` (recursively) with their modification time (ms) and size.
fn list_local(dir: &Path, files: &mut Vec<ListedFile>) -> Result<()> {
    let storage = |source| Error::Storage {
        path: dir.display().to_string(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(storage(e)),
    };
    for entry in entries {
        let entry = entry.map_err(storage)?;
        let meta = entry.metadata().map_err(storage)?;
        if meta.is_dir() {
            list_local(&entry.path(), files)?;
        } else if meta.is_file() {
            let modified = meta.modified().map_err(storage)?;
            files.push(ListedFile {
                uri: format!("file://{}", entry.path().display()),
                modified_ms: chrono::DateTime::<chrono::Utc>::from(modified).timestamp_millis(),
                size: meta.len(),
            });
        }
    }
    Ok(())
}

#[cfg(feature = "s3")]
pub(crate) use s3::object_store_failure;

pub(crate) mod durable;

#[cfg(feature = "s3")]
mod s3_upload;

#[cfg(feature = "s3")]
mod s3 {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;
    use futures::TryStreamExt;
    use futures::stream::BoxStream;
    use iceberg::io::{
        CLIENT_REGION, FileIOBuilder, S3_ACCESS_KEY_ID, S3_ALLOW_ANONYMOUS, S3_ASSUME_ROLE_ARN,
        S3_ASSUME_ROLE_EXTERNAL_ID, S3_ASSUME_ROLE_SESSION_NAME, S3_DISABLE_CONFIG_LOAD,
        S3_DISABLE_EC2_METADATA, S3_ENDPOINT, S3_PATH_STYLE_ACCESS, S3_REGION,
        S3_SECRET_ACCESS_KEY, S3_SESSION_TOKEN, S3_SSE_KEY, S3_SSE_MD5, S3_SSE_TYPE,
    };
    use iceberg::io::{
        FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage as FileStorage,
        StorageConfig, StorageFactory,
    };
    use iceberg_storage_opendal::OpenDalStorageFactory;
    use opendal::layers::{RetryLayer, TimeoutLayer};
    use opendal::services::S3Config;
    use opendal::{Configurator, ErrorKind, Operator};
    use serde::{Deserialize, Serialize};

    use super::s3_upload::{Bucket, Upload};
    use super::{Kind, ListedFile, Storage, foreign};
    use crate::error::{Error, Result};

    /// Each request phlo itself sends (the check at open, listings) gives up after this.
    const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
    /// A request that failed in a way the store calls temporary (a dropped connection, a 503)
    /// is sent again this often, quickly: an unreachable store still fails within a second.
    const RETRIES: usize = 3;

    /// Property keys and the AWS environment variables they fall back to.
    const FROM_ENV: [(&str, &[&str]); 5] = [
        ("s3.endpoint", &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]),
        ("s3.access-key-id", &["AWS_ACCESS_KEY_ID"]),
        ("s3.secret-access-key", &["AWS_SECRET_ACCESS_KEY"]),
        ("s3.session-token", &["AWS_SESSION_TOKEN"]),
        ("s3.region", &["AWS_REGION", "AWS_DEFAULT_REGION"]),
    ];

    /// An S3 bucket and phlo's own operator on it (for listing).
    #[derive(Clone)]
    pub(super) struct ObjectStore {
        bucket: String,
        endpoint: Option<String>,
        op: Operator,
    }

    /// The S3 warehouse, its bucket checked with one listing when `check`.
    pub(super) async fn open(
        warehouse: &str,
        properties: &HashMap<String, String>,
        check: bool,
    ) -> Result<Storage> {
        let rest = &warehouse["s3://".len()..];
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::config(
                format!("warehouse {warehouse} names no bucket"),
                "write s3://bucket/prefix",
            ));
        }
        let props = with_defaults(properties);
        let store = ObjectStore {
            bucket: bucket.to_string(),
            endpoint: props.get("s3.endpoint").cloned(),
            op: operator(bucket, &props)?,
        };
        if check {
            store.check(prefix).await?;
        }
        Ok(Storage {
            warehouse: warehouse.to_string(),
            io: file_io(&props),
            kind: Kind::S3(store),
            properties: props,
            credentials_missing: false,
        })
    }

    /// iceberg's file IO on S3 with `props` (already [`with_defaults`]): iceberg's own S3
    /// storage, except that files are written by [`UploadingStorage`].
    pub(super) fn file_io(props: &HashMap<String, String>) -> iceberg::io::FileIO {
        FileIOBuilder::new(Arc::new(UploadingStorageFactory))
            .with_props(props.clone())
            .build()
    }

    /// Builds [`UploadingStorage`].
    #[derive(Debug, Serialize, Deserialize)]
    struct UploadingStorageFactory;

    #[typetag::serde(name = "PhloUploadingS3StorageFactory")]
    impl StorageFactory for UploadingStorageFactory {
        fn build(&self, config: &StorageConfig) -> iceberg::Result<Arc<dyn FileStorage>> {
            let files = OpenDalStorageFactory::S3 {
                customized_credential_load: None,
            }
            .build(config)?;
            let config = s3_config(config.props())
                .map_err(|e| iceberg::Error::new(iceberg::ErrorKind::DataInvalid, e.to_string()))?;
            Ok(Arc::new(UploadingStorage {
                files,
                config: Arc::new(config),
                buckets: Arc::default(),
            }))
        }
    }

    /// iceberg's S3 storage (reads, deletes, listings go to it), but a file being written
    /// goes up in parts while it is written ([`s3_upload`]), from its first full part on.
    /// iceberg's own writer uploads one part at a time in the writer's call, so the Parquet
    /// encoder waited for each part's round trip; opendal's concurrent one keeps the first
    /// part back until the second is full.
    #[derive(Clone, Serialize, Deserialize)]
    struct UploadingStorage {
        #[serde(with = "stored_storage")]
        files: Arc<dyn FileStorage>,
        config: Arc<S3Config>,
        /// Each bucket's request settings (signer, connection pool), built at its first file.
        #[serde(skip)]
        buckets: Arc<Mutex<HashMap<String, Arc<Bucket>>>>,
    }

    /// `Arc<dyn Storage>` through serde (typetag serializes `dyn Storage` boxed).
    mod stored_storage {
        use std::sync::Arc;

        use iceberg::io::Storage;
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        pub fn serialize<S: Serializer>(
            storage: &Arc<dyn Storage>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            storage.as_ref().serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<dyn Storage>, D::Error> {
            Ok(Arc::from(Box::<dyn Storage>::deserialize(d)?))
        }
    }

    impl std::fmt::Debug for UploadingStorage {
        // The settings hold credentials.
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("UploadingStorage").finish_non_exhaustive()
        }
    }

    impl UploadingStorage {
        /// The requests of the bucket of `path` (`scheme://bucket/key`), and the key.
        fn bucket<'a>(&self, path: &'a str) -> iceberg::Result<(Arc<Bucket>, &'a str)> {
            let invalid = || {
                iceberg::Error::new(
                    iceberg::ErrorKind::DataInvalid,
                    format!("{path} is not an s3://bucket/key location"),
                )
            };
            let (_, rest) = path.split_once("://").ok_or_else(invalid)?;
            let (name, key) = rest.split_once('/').ok_or_else(invalid)?;
            let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(bucket) = buckets.get(name) {
                return Ok((bucket.clone(), key));
            }
            let bucket = Arc::new(Bucket::new(name, &self.config).map_err(io_failure)?);
            buckets.insert(name.to_string(), bucket.clone());
            Ok((bucket, key))
        }
    }

    /// An opendal failure as iceberg's storage reports it (the opendal error its source, for
    /// [`object_store_failure`] to classify).
    fn io_failure(error: opendal::Error) -> iceberg::Error {
        iceberg::Error::new(iceberg::ErrorKind::Unexpected, "io failure").with_source(error)
    }

    #[async_trait::async_trait]
    #[typetag::serde(name = "PhloUploadingS3Storage")]
    impl FileStorage for UploadingStorage {
        async fn exists(&self, path: &str) -> iceberg::Result<bool> {
            self.files.exists(path).await
        }

        async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
            self.files.metadata(path).await
        }

        async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
            self.files.read(path).await
        }

        async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
            self.files.reader(path).await
        }

        async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
            self.files.write(path, bs).await
        }

        async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
            let (bucket, key) = self.bucket(path)?;
            Ok(Box::new(UploadingWriter(Upload::new(bucket, key))))
        }

        async fn delete(&self, path: &str) -> iceberg::Result<()> {
            self.files.delete(path).await
        }

        async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
            self.files.delete_prefix(path).await
        }

        async fn delete_stream(&self, paths: BoxStream<'static, String>) -> iceberg::Result<()> {
            self.files.delete_stream(paths).await
        }

        fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
            Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
        }

        fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
            Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
        }
    }

    struct UploadingWriter(Upload);

    #[async_trait::async_trait]
    impl FileWrite for UploadingWriter {
        async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
            self.0.write(bs).await.map_err(io_failure)
        }

        async fn close(&mut self) -> iceberg::Result<()> {
            self.0.close().await.map_err(io_failure)
        }
    }

    /// AWS environment variables that name where credentials come from (a profile file, a web
    /// identity, a container's credential endpoint) without holding a key pair.
    const CREDENTIAL_SOURCES: [&str; 4] = [
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ];

    /// Whether `properties` or the environment hold an S3 key pair, name a source of
    /// credentials, or allow anonymous access.
    pub(super) fn has_credentials(properties: &HashMap<String, String>) -> bool {
        let props = with_defaults(properties);
        let anonymous = props
            .get("s3.allow-anonymous")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        anonymous
            || (props.contains_key("s3.access-key-id")
                && props.contains_key("s3.secret-access-key"))
            || CREDENTIAL_SOURCES
                .iter()
                .any(|v| std::env::var_os(v).is_some())
    }

    /// The properties with the AWS environment filled in, and what S3-compatible servers
    /// need: path-style requests when an endpoint is given (virtual-host style would send
    /// `bucket.127.0.0.1`), and a region (S3 signs with one; AWS's default).
    fn with_defaults(properties: &HashMap<String, String>) -> HashMap<String, String> {
        let mut props = properties.clone();
        for (key, vars) in FROM_ENV {
            if !props.contains_key(key)
                && let Some(value) = vars.iter().find_map(|v| std::env::var(v).ok())
            {
                props.insert(key.to_string(), value);
            }
        }
        if props.contains_key("s3.endpoint") && !props.contains_key("s3.path-style-access") {
            props.insert("s3.path-style-access".into(), "true".into());
        }
        if !props.contains_key("s3.region") && !props.contains_key("client.region") {
            props.insert("s3.region".into(), "us-east-1".into());
        }
        props
    }

    /// The opendal settings of `props` (already [`with_defaults`]), read as iceberg's S3
    /// storage reads them, so the listing operator addresses, signs and encrypts as the file IO
    /// does (iceberg's own reader of them is private).
    pub(super) fn s3_config(props: &HashMap<String, String>) -> Result<S3Config> {
        let get = |key: &str| props.get(key).cloned();
        let truthy = |key: &str| {
            props
                .get(key)
                .is_some_and(|v| ["true", "t", "1", "on"].contains(&v.to_lowercase().as_str()))
        };
        let mut config = S3Config::default();
        config.root = Some("/".into());
        config.endpoint = get(S3_ENDPOINT);
        config.region = get(CLIENT_REGION).or(get(S3_REGION));
        config.access_key_id = get(S3_ACCESS_KEY_ID);
        config.secret_access_key = get(S3_SECRET_ACCESS_KEY);
        config.session_token = get(S3_SESSION_TOKEN);
        config.enable_virtual_host_style = !truthy(S3_PATH_STYLE_ACCESS);
        config.role_arn = get(S3_ASSUME_ROLE_ARN);
        config.external_id = get(S3_ASSUME_ROLE_EXTERNAL_ID);
        config.role_session_name = get(S3_ASSUME_ROLE_SESSION_NAME);
        config.skip_signature = truthy(S3_ALLOW_ANONYMOUS);
        config.disable_ec2_metadata = truthy(S3_DISABLE_EC2_METADATA);
        config.disable_config_load = truthy(S3_DISABLE_CONFIG_LOAD);
        match get(S3_SSE_TYPE).map(|t| t.to_lowercase()).as_deref() {
            None | Some("none") => {}
            Some("s3") => config.server_side_encryption = Some("AES256".into()),
            Some("kms") => {
                config.server_side_encryption = Some("aws:kms".into());
                config.server_side_encryption_aws_kms_key_id = get(S3_SSE_KEY);
            }
            Some("custom") => {
                config.server_side_encryption_customer_algorithm = Some("AES256".into());
                config.server_side_encryption_customer_key = get(S3_SSE_KEY);
                config.server_side_encryption_customer_key_md5 = get(S3_SSE_MD5);
            }
            Some(other) => {
                return Err(Error::config(
                    format!("{S3_SSE_TYPE} = {other:?} is not a server-side encryption type"),
                    "use one of none, s3, kms, custom",
                ));
            }
        }
        Ok(config)
    }

    fn operator(bucket: &str, props: &HashMap<String, String>) -> Result<Operator> {
        let builder = s3_config(props)?.into_builder().bucket(bucket);
        let op = Operator::new(builder)
            .map_err(|e| Error::config(format!("S3 settings: {e}"), "check the s3.* properties"))?
            .layer(
                TimeoutLayer::new()
                    .with_timeout(REQUEST_TIMEOUT)
                    .with_io_timeout(REQUEST_TIMEOUT),
            )
            .layer(
                RetryLayer::new()
                    .with_max_times(RETRIES)
                    .with_min_delay(Duration::from_millis(50))
                    .with_max_delay(Duration::from_millis(300))
                    .with_jitter(),
            )
            .finish();
        Ok(op)
    }

    impl ObjectStore {
        /// One listing request under the warehouse prefix: reachable, bucket there, allowed.
        async fn check(&self, prefix: &str) -> Result<()> {
            let dir = as_dir(prefix);
            let uri = format!("s3://{}/{dir}", self.bucket);
            let mut lister = self
                .op
                .lister_with(&dir)
                .await
                .map_err(|e| self.failure(&uri, &e))?;
            lister
                .try_next()
                .await
                .map_err(|e| self.failure(&uri, &e))?;
            Ok(())
        }

        pub(super) async fn list(&self, location: &str) -> Result<Vec<ListedFile>> {
            let bucket_prefix = format!("s3://{}/", self.bucket);
            let Some(key) = location.strip_prefix(&bucket_prefix) else {
                return Err(foreign(location, &bucket_prefix));
            };
            let dir = as_dir(key);
            let mut lister = self
                .op
                .lister_with(&dir)
                .recursive(true)
                .await
                .map_err(|e| self.failure(location, &e))?;
            let mut files = Vec::new();
            while let Some(entry) = lister
                .try_next()
                .await
                .map_err(|e| self.failure(location, &e))?
            {
                let meta = entry.metadata();
                if !meta.is_file() {
                    continue;
                }
                let modified_ms = meta.last_modified().map_or(0, |t| {
                    chrono::DateTime::<chrono::Utc>::from(SystemTime::from(t)).timestamp_millis()
                });
                files.push(ListedFile {
                    uri: format!("{bucket_prefix}{}", entry.path()),
                    modified_ms,
                    size: meta.content_length(),
                });
            }
            Ok(files)
        }

        fn failure(&self, uri: &str, error: &opendal::Error) -> Error {
            classify(
                uri,
                self.endpoint.as_deref().unwrap_or("the AWS default"),
                error,
            )
        }
    }

    /// A key prefix as a "directory" for opendal (trailing slash; the bucket root is `/`).
    fn as_dir(key: &str) -> String {
        let key = key.trim_matches('/');
        if key.is_empty() {
            "/".into()
        } else {
            format!("{key}/")
        }
    }

    /// An object store failure as a typed error with a hint by its kind. opendal's message
    /// names the operation, bucket and endpoint, never the credential.
    fn classify(uri: &str, endpoint: &str, error: &opendal::Error) -> Error {
        let hint = match error.kind() {
            ErrorKind::PermissionDenied => {
                "access denied: check s3.access-key-id and s3.secret-access-key (or \
                 AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and the bucket's policy"
            }
            ErrorKind::NotFound => "the bucket or object does not exist: create the bucket",
            ErrorKind::ConfigInvalid => "check the s3.* properties",
            // opendal adds the response to the error's context when the store answered.
            _ if error.to_string().contains("response: ") => {
                "the object store refused the request (its message says why): check the s3.* \
                 properties"
            }
            _ => {
                "check that the object store is running and reachable at s3.endpoint (or \
                 AWS_ENDPOINT_URL), and the network"
            }
        };
        Error::ObjectStore {
            uri: uri.to_string(),
            endpoint: endpoint.to_string(),
            message: error.to_string(),
            hint: hint.to_string(),
        }
    }

    /// The object store failure behind an iceberg `FileIO` error, if that is what it is: the
    /// whole chain of sources is searched, since an upload that fails inside the Parquet
    /// writer arrives wrapped in the writer's errors.
    pub(crate) fn object_store_failure(context: &str, error: &iceberg::Error) -> Option<Error> {
        let opendal = std::iter::successors(std::error::Error::source(error), |e| e.source())
            .find_map(|e| e.downcast_ref::<opendal::Error>())?;
        let uri = context
            .split_whitespace()
            .find(|word| word.contains("://"))
            .unwrap_or("the warehouse");
        let endpoint = request_endpoint(opendal).unwrap_or_else(|| NO_REQUEST.into());
        Some(classify(uri, &endpoint, opendal))
    }

    /// What an error names as the endpoint when it failed before sending a request.
    const NO_REQUEST: &str = "none: no request was sent";

    /// The endpoint (scheme and host, never user info) of the request an opendal error is
    /// about: opendal puts its URL in the error's context (`uri: …` for a response, `url: …`
    /// when sending failed), which is readable only through the error's text.
    fn request_endpoint(error: &opendal::Error) -> Option<String> {
        let text = error.to_string();
        let start = ["uri: ", "url: "]
            .iter()
            .find_map(|key| text.find(key).map(|at| at + key.len()))?;
        let (scheme, rest) = text[start..].split_once("://")?;
        let authority = rest.split(['/', '?', ',', ' ', '}']).next()?;
        let host = authority.rsplit('@').next()?;
        (!host.is_empty()).then(|| format!("{scheme}://{host}"))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn an_endpoint_means_path_style_and_a_default_region() {
            let props = HashMap::from([("s3.endpoint".to_string(), "http://x:1".to_string())]);
            let filled = with_defaults(&props);
            assert_eq!(filled["s3.path-style-access"], "true");
            assert!(filled.contains_key("s3.region"));
            let explicit = HashMap::from([
                ("s3.endpoint".to_string(), "http://x:1".to_string()),
                ("s3.path-style-access".to_string(), "false".to_string()),
            ]);
            assert_eq!(with_defaults(&explicit)["s3.path-style-access"], "false");
        }

        fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }

        #[test]
        fn the_listing_reads_the_keys_the_file_io_reads() {
            let config = s3_config(&props(&[
                (S3_ENDPOINT, "http://x:1"),
                (S3_REGION, "eu-west-1"),
                (CLIENT_REGION, "eu-north-1"),
                (S3_PATH_STYLE_ACCESS, "True"),
                (S3_ASSUME_ROLE_ARN, "arn:aws:iam::1:role/r"),
                (S3_ASSUME_ROLE_EXTERNAL_ID, "ext"),
                (S3_SSE_TYPE, "KMS"),
                (S3_SSE_KEY, "key-id"),
                (S3_DISABLE_EC2_METADATA, "true"),
            ]))
            .unwrap();
            assert_eq!(config.endpoint.as_deref(), Some("http://x:1"));
            // iceberg's order: client.region wins over s3.region.
            assert_eq!(config.region.as_deref(), Some("eu-north-1"));
            assert!(!config.enable_virtual_host_style);
            assert_eq!(config.role_arn.as_deref(), Some("arn:aws:iam::1:role/r"));
            assert_eq!(config.external_id.as_deref(), Some("ext"));
            assert_eq!(config.server_side_encryption.as_deref(), Some("aws:kms"));
            assert_eq!(
                config.server_side_encryption_aws_kms_key_id.as_deref(),
                Some("key-id")
            );
            assert!(config.disable_ec2_metadata && !config.skip_signature);
            let custom = s3_config(&props(&[
                (S3_SSE_TYPE, "custom"),
                (S3_SSE_KEY, "k"),
                (S3_SSE_MD5, "m"),
            ]))
            .unwrap();
            assert_eq!(
                custom.server_side_encryption_customer_algorithm.as_deref(),
                Some("AES256")
            );
            assert_eq!(
                custom.server_side_encryption_customer_key_md5.as_deref(),
                Some("m")
            );
            assert!(custom.enable_virtual_host_style);
        }

        #[test]
        fn an_unknown_encryption_type_is_a_config_error() {
            let err = s3_config(&props(&[(S3_SSE_TYPE, "rot13")])).unwrap_err();
            assert_eq!(err.code(), "config", "{err}");
            assert!(err.to_string().contains("s3.sse.type"), "{err}");
        }

        /// An opendal failure as it comes out of the Parquet writer: the writer's iceberg error,
        /// its Parquet error, the storage's iceberg error, then opendal's.
        fn failed_upload(kind: ErrorKind) -> iceberg::Error {
            let storage = iceberg::Error::new(iceberg::ErrorKind::Unexpected, "io failure")
                .with_source(opendal::Error::new(kind, "AccessDenied"));
            iceberg::Error::new(iceberg::ErrorKind::Unexpected, "Failed to write parquet")
                .with_source(parquet::errors::ParquetError::External(Box::new(storage)))
        }

        #[test]
        fn a_failed_upload_inside_the_parquet_writer_is_an_object_store_error() {
            let err = object_store_failure(
                "writing s3://b-chain/t/data/x.parquet",
                &failed_upload(ErrorKind::PermissionDenied),
            )
            .expect("opendal's error is below the Parquet writer's");
            let text = err.to_string();
            assert!(matches!(err, Error::ObjectStore { .. }), "{text}");
            assert!(text.contains("s3://b-chain/t/data/x.parquet"), "{text}");
            assert!(text.contains("s3.access-key-id"), "{text}");
            let plain = iceberg::Error::new(iceberg::ErrorKind::DataInvalid, "bad schema");
            assert!(object_store_failure("writing s3://b-chain/t", &plain).is_none());
        }

        #[test]
        fn file_io_errors_name_the_endpoint_their_request_went_to() {
            let refused = opendal::Error::new(ErrorKind::PermissionDenied, "AccessDenied")
                .with_context("uri", "http://127.0.0.1:9/b/t/data/x.parquet?partNumber=1")
                .with_context("response", "Parts { status: 403 }");
            let unsent = opendal::Error::new(ErrorKind::Unexpected, "connection refused")
                .with_context("url", "https://store.example:8443/b/k");
            let neither = opendal::Error::new(ErrorKind::ConfigInvalid, "no credential");
            for (error, endpoint) in [
                (refused, "http://127.0.0.1:9"),
                (unsent, "https://store.example:8443"),
                (neither, NO_REQUEST),
            ] {
                let failure = iceberg::Error::new(iceberg::ErrorKind::Unexpected, "io failure")
                    .with_source(error);
                let err = object_store_failure("reading s3://b/t/x", &failure).unwrap();
                let text = format!("{err} {err:?}");
                assert!(text.contains(&format!("(endpoint {endpoint})")), "{text}");
                assert!(!text.contains("AWS default"), "{text}");
            }
            let with_user = opendal::Error::new(ErrorKind::Unexpected, "refused")
                .with_context("url", "https://me:pw-Hn5@store.example/b/k");
            assert_eq!(
                request_endpoint(&with_user).as_deref(),
                Some("https://store.example")
            );
        }

        #[test]
        fn prefixes_become_opendal_directories() {
            assert_eq!(as_dir(""), "/");
            assert_eq!(as_dir("/a/b/"), "a/b/");
            assert_eq!(as_dir("a"), "a/");
        }
    }
}
