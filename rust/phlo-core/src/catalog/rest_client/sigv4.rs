//! AWS Signature Version 4 for REST catalog requests (`rest.sigv4-enabled=true`): AWS Glue's
//! and S3 Tables' Iceberg endpoints, API Gateway in front of a catalog, S3-style servers. Each
//! request gets `x-amz-date`, `x-amz-content-sha256` (and `x-amz-security-token`) and an
//! `Authorization` signed over its method, path, query, headers and body; the secret never
//! leaves this module (`Debug` shows the access key id only).

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Where the credentials may be named, first found wins: Java's `rest.*`, PyIceberg's
/// `client.*`, then the storage's `s3.*` (one key pair for catalog and files).
const PREFIXES: [&str; 3] = ["rest.", "client.", "s3."];

pub(super) struct SigV4 {
    access_key: String,
    secret: String,
    session_token: Option<String>,
    region: String,
    service: String,
}

impl fmt::Debug for SigV4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigV4")
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl SigV4 {
    /// The signer the properties ask for, or `None` without `rest.sigv4-enabled=true`.
    /// Credentials: `{rest,client,s3}.access-key-id`, `.secret-access-key`, `.session-token`,
    /// else `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`; region:
    /// `rest.signing-region`, `client.region`, `s3.region`, else `AWS_REGION`; service:
    /// `rest.signing-name` (default `execute-api`).
    pub fn from_properties(properties: &HashMap<String, String>) -> Result<Option<Self>> {
        let enabled = properties
            .get("rest.sigv4-enabled")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if !enabled {
            return Ok(None);
        }
        let named = |suffix: &str| {
            PREFIXES
                .iter()
                .find_map(|p| properties.get(&format!("{p}{suffix}")).cloned())
        };
        let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        let (access_key, secret, session_token) =
            match (named("access-key-id"), named("secret-access-key")) {
                (None, None) => (
                    env("AWS_ACCESS_KEY_ID"),
                    env("AWS_SECRET_ACCESS_KEY"),
                    env("AWS_SESSION_TOKEN"),
                ),
                (key, secret) => (key, secret, named("session-token")),
            };
        let (Some(access_key), Some(secret)) = (access_key, secret) else {
            return Err(Error::config(
                "rest.sigv4-enabled=true needs an access key id and its secret access key",
                "set rest.access-key-id and rest.secret-access-key (or client.* / s3.*, or \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment)",
            ));
        };
        let region = properties
            .get("rest.signing-region")
            .or_else(|| properties.get("client.region"))
            .or_else(|| properties.get("s3.region"))
            .cloned()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"));
        let Some(region) = region else {
            return Err(Error::config(
                "rest.sigv4-enabled=true needs the region requests are signed for",
                "set rest.signing-region (e.g. us-east-1), client.region or AWS_REGION",
            ));
        };
        Ok(Some(Self {
            access_key,
            secret,
            session_token,
            region,
            service: properties
                .get("rest.signing-name")
                .cloned()
                .unwrap_or_else(|| "execute-api".into()),
        }))
    }

    /// The headers that sign a request to `url` (`Authorization` among them) at `now`.
    /// `headers` are the request's own headers to sign too (`content-type`).
    pub fn sign(
        &self,
        method: &str,
        url: &reqwest::Url,
        headers: &[(&str, &str)],
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Vec<(String, String)> {
        let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
        let payload = hex(&Sha256::digest(body));
        let mut added = vec![
            ("x-amz-date".to_string(), amz_date.clone()),
            ("x-amz-content-sha256".to_string(), payload.clone()),
        ];
        if let Some(token) = &self.session_token {
            added.push(("x-amz-security-token".to_string(), token.clone()));
        }
        let mut signed: Vec<(&str, &str)> = headers.to_vec();
        signed.extend(added.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let authorization = self.authorization(method, url, &signed, &payload, &amz_date);
        added.push(("authorization".to_string(), authorization));
        added
    }

    /// The `Authorization` value for a request whose signed headers (besides `host`, taken
    /// from `url`) are `headers`, its body hashing to `payload` (hex SHA-256).
    fn authorization(
        &self,
        method: &str,
        url: &reqwest::Url,
        headers: &[(&str, &str)],
        payload: &str,
        amz_date: &str,
    ) -> String {
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let mut canonical: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), collapse_spaces(v)))
            .chain([("host".to_string(), host)])
            .collect();
        canonical.sort();
        let signed_headers = canonical
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let header_lines: String = canonical
            .iter()
            .map(|(k, v)| format!("{k}:{v}\n"))
            .collect();
        let request = [
            method,
            &encode(url.path(), true),
            &canonical_query(url.query().unwrap_or_default()),
            &header_lines,
            &signed_headers,
            payload,
        ]
        .join("\n");
        let date = &amz_date[..8];
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex(&Sha256::digest(request.as_bytes()))
        );
        let key = [
            date.as_bytes(),
            self.region.as_bytes(),
            self.service.as_bytes(),
            b"aws4_request",
        ]
        .iter()
        .fold(format!("AWS4{}", self.secret).into_bytes(), |key, part| {
            hmac(&key, part)
        });
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={}",
            self.access_key,
            hex(&hmac(&key, to_sign.as_bytes()))
        )
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SigV4's URI encoding: every byte but `A-Za-z0-9-_.~` (and `/` in a path) as `%XX`. A path
/// is encoded as sent (its `%` encoded again), as AWS does for every service but S3.
fn encode(text: &str, path: bool) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b'/' if path => "/".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The query's parameters decoded, encoded the SigV4 way, sorted by name then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (encode(&k, false), encode(&v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    /// The credentials of AWS's SigV4 test suite (`aws-sig-v4-test-suite`).
    fn suite() -> SigV4 {
        SigV4 {
            access_key: "AKIDEXAMPLE".into(),
            secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
            region: "us-east-1".into(),
            service: "service".into(),
        }
    }

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn suite_authorization(method: &str, url: &str) -> String {
        let url = reqwest::Url::parse(url).unwrap();
        let date = [("X-Amz-Date", "20150830T123600Z")];
        suite().authorization(method, &url, &date, EMPTY, "20150830T123600Z")
    }

    #[test]
    fn signatures_match_aws_test_suite_vectors() {
        let scope = "Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                     SignedHeaders=host;x-amz-date";
        for (name, method, url, signature) in [
            (
                "get-vanilla",
                "GET",
                "https://example.amazonaws.com/",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            (
                "post-vanilla",
                "POST",
                "https://example.amazonaws.com/",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            ),
            (
                "get-vanilla-query-order-key-case",
                "GET",
                "https://example.amazonaws.com/?Param2=value2&Param1=value1",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
        ] {
            assert_eq!(
                suite_authorization(method, url),
                format!("AWS4-HMAC-SHA256 {scope}, Signature={signature}"),
                "{name}"
            );
        }
    }

    /// Amazon S3's documented "GET Object" example: a range header and the payload hash signed.
    #[test]
    fn the_signature_covers_the_request_headers_as_s3s_example_does() {
        let signer = SigV4 {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
            region: "us-east-1".into(),
            service: "s3".into(),
        };
        let url = reqwest::Url::parse("https://examplebucket.s3.amazonaws.com/test.txt").unwrap();
        let now = Utc.with_ymd_and_hms(2013, 5, 24, 0, 0, 0).unwrap();
        let headers = signer.sign("GET", &url, &[("Range", "bytes=0-9")], b"", now);
        let value = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .unwrap()
        };
        assert_eq!(value("x-amz-date"), "20130524T000000Z");
        assert_eq!(value("x-amz-content-sha256"), EMPTY);
        assert_eq!(
            value("authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn credentials_come_from_the_properties_and_the_secret_is_never_shown() {
        let properties = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(SigV4::from_properties(&properties(&[])).unwrap().is_none());
        let signer = SigV4::from_properties(&properties(&[
            ("rest.sigv4-enabled", "true"),
            ("s3.access-key-id", "from-s3"),
            ("s3.secret-access-key", "s3-secret"),
            ("rest.access-key-id", "from-rest"),
            ("rest.secret-access-key", "rest-secret"),
            ("rest.session-token", "rest-token"),
            ("rest.signing-region", "eu-west-1"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(signer.access_key, "from-rest");
        assert_eq!(signer.secret, "rest-secret");
        assert_eq!(signer.service, "execute-api");
        let shown = format!("{signer:?}");
        assert!(
            shown.contains("from-rest") && !shown.contains("rest-secret"),
            "{shown}"
        );
        let url = reqwest::Url::parse("http://127.0.0.1:8181/v1/config").unwrap();
        let signed = signer.sign("GET", &url, &[], b"", Utc::now());
        assert!(signed.contains(&("x-amz-security-token".into(), "rest-token".into())));

        let err = SigV4::from_properties(&properties(&[
            ("rest.sigv4-enabled", "true"),
            ("rest.access-key-id", "key"),
            ("rest.signing-region", "eu-west-1"),
        ]))
        .unwrap_err();
        assert_eq!(err.code(), "config", "{err}");
        assert!(err.to_string().contains("secret access key"), "{err}");
    }
}
