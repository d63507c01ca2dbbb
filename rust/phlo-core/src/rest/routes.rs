//! Request paths → endpoints. A path is `[/iceberg[/<ref>]]/v1/[<prefix>/]<endpoint>`: Nessie's
//! convention, so a client given `uri=http://HOST:PORT/iceberg/<ref>` works on catalog ref
//! `<ref>` (`…/iceberg` and the bare server on `main`). `/v1/config` answers the ref as the
//! prefix, which then routes every other request; a prefix always wins over the base path.
//! A prefix is a bare ref name (`dev`) or Nessie's `<ref>|<warehouse>` (`dev%7Cs3%3A…`): this
//! server has one warehouse, so the part after `|` only says which one the client asked for.

use std::borrow::Cow;

use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::RestError;
use crate::catalog::{TableIdent, validate_name};

/// PyIceberg's and Java's separator of namespace levels in a path (`a%1Fb`).
const NAMESPACE_SEPARATOR: char = '\u{1f}';

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Config,
    OAuthTokens,
    ListNamespaces,
    CreateNamespace,
    LoadNamespace(String),
    NamespaceExists(String),
    DropNamespace(String),
    UpdateNamespaceProperties(String),
    ListTables(String),
    CreateTable(String),
    LoadTable(TableIdent),
    TableExists(TableIdent),
    DropTable(TableIdent),
    CommitTable(TableIdent),
    ReportMetrics(TableIdent),
    RenameTable,
    CommitTransaction,
}

impl Endpoint {
    /// Whether the endpoint changes the catalog (refused on tags, which are immutable).
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Endpoint::CreateNamespace
                | Endpoint::DropNamespace(_)
                | Endpoint::UpdateNamespaceProperties(_)
                | Endpoint::CreateTable(_)
                | Endpoint::DropTable(_)
                | Endpoint::CommitTable(_)
                | Endpoint::RenameTable
                | Endpoint::CommitTransaction
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Whether the path starts with Nessie's `/iceberg` base path.
    pub nessie_path: bool,
    /// The ref named by the base path (`/iceberg/<ref>`), if any.
    pub base_ref: Option<String>,
    /// The ref named by the prefix after `v1`, if any.
    pub prefix: Option<String>,
    pub endpoint: Endpoint,
}

impl Route {
    /// The catalog ref the request works on: the prefix, else the base path's, else `main`.
    pub fn ref_name(&self) -> Option<&str> {
        self.prefix.as_deref().or(self.base_ref.as_deref())
    }
}

/// Parses a method and a path (without the query) into a route. Ref names may look like
/// path words (a tag `v1`, a branch `namespaces`), so every reading is tried: each `v1` as the
/// API's root, with and without a prefix after it; the first that names an endpoint wins.
pub fn parse(method: &str, path: &str) -> Result<Route, RestError> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for v1 in (0..segments.len()).filter(|&i| segments[i] == "v1") {
        let nessie_path = segments.first() == Some(&"iceberg") && v1 > 0;
        let base_ref = match &segments[..v1] {
            [] | ["iceberg"] => None,
            ["iceberg", parts @ ..] => Some(
                parts
                    .iter()
                    .map(|p| decode(p))
                    .collect::<Result<Vec<_>, _>>()?
                    .join("/"),
            ),
            _ => continue,
        };
        let rest = &segments[v1 + 1..];
        let readings = [
            (None, rest),
            (rest.first(), rest.get(1..).unwrap_or_default()),
        ];
        for (prefix, rest) in readings {
            if let Some(endpoint) = endpoint(method, rest) {
                return Ok(Route {
                    nessie_path,
                    base_ref,
                    prefix: prefix.map(|p| prefix_ref(p)).transpose()?,
                    endpoint: endpoint?,
                });
            }
        }
    }
    Err(no_route(method, path))
}

/// `None`: no such endpoint; `Some(Err)`: the endpoint, with a malformed name in the path.
fn endpoint(method: &str, rest: &[&str]) -> Option<Result<Endpoint, RestError>> {
    let table = |ns: &str, t: &str| namespace(ns).and_then(|ns| table_ident(ns, t));
    Some(match (method, rest) {
        ("GET", ["config"]) => Ok(Endpoint::Config),
        ("POST", ["oauth", "tokens"]) => Ok(Endpoint::OAuthTokens),
        ("GET", ["namespaces"]) => Ok(Endpoint::ListNamespaces),
        ("POST", ["namespaces"]) => Ok(Endpoint::CreateNamespace),
        ("GET", ["namespaces", ns]) => namespace(ns).map(Endpoint::LoadNamespace),
        ("HEAD", ["namespaces", ns]) => namespace(ns).map(Endpoint::NamespaceExists),
        ("DELETE", ["namespaces", ns]) => namespace(ns).map(Endpoint::DropNamespace),
        ("POST", ["namespaces", ns, "properties"]) => {
            namespace(ns).map(Endpoint::UpdateNamespaceProperties)
        }
        ("GET", ["namespaces", ns, "tables"]) => namespace(ns).map(Endpoint::ListTables),
        ("POST", ["namespaces", ns, "tables"]) => namespace(ns).map(Endpoint::CreateTable),
        ("GET", ["namespaces", ns, "tables", t]) => table(ns, t).map(Endpoint::LoadTable),
        ("HEAD", ["namespaces", ns, "tables", t]) => table(ns, t).map(Endpoint::TableExists),
        ("DELETE", ["namespaces", ns, "tables", t]) => table(ns, t).map(Endpoint::DropTable),
        ("POST", ["namespaces", ns, "tables", t]) => table(ns, t).map(Endpoint::CommitTable),
        ("POST", ["namespaces", ns, "tables", t, "metrics"]) => {
            table(ns, t).map(Endpoint::ReportMetrics)
        }
        ("POST", ["tables", "rename"]) => Ok(Endpoint::RenameTable),
        ("POST", ["transactions", "commit"]) => Ok(Endpoint::CommitTransaction),
        _ => return None,
    })
}

fn no_route(method: &str, path: &str) -> RestError {
    RestError::not_found(format!(
        "no endpoint {method} {path}: this server speaks the Iceberg REST catalog API under \
         /v1 (or /iceberg/<ref>/v1 for a branch or tag)"
    ))
}

fn decode(segment: &str) -> Result<Cow<'_, str>, RestError> {
    percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| RestError::bad_request(format!("path segment {segment:?} is not UTF-8")))
}

/// A namespace from a path segment (`a%1Fb`, or `a.b`) as phlo writes it: `a.b`.
pub fn namespace(segment: &str) -> Result<String, RestError> {
    let decoded = decode(segment)?;
    namespace_from_levels(decoded.split([NAMESPACE_SEPARATOR, '.']))
}

/// A namespace from its levels (`["a", "b"]` → `a.b`), each checked as phlo checks names.
pub fn namespace_from_levels<'a>(
    levels: impl IntoIterator<Item = &'a str>,
) -> Result<String, RestError> {
    let levels: Vec<&str> = levels.into_iter().collect();
    if levels.is_empty() {
        return Err(RestError::bad_request("the namespace is empty"));
    }
    for level in &levels {
        validate_name(level, "namespace").map_err(|e| RestError::bad_request(e.to_string()))?;
    }
    Ok(levels.join("."))
}

fn table_ident(namespace: String, segment: &str) -> Result<TableIdent, RestError> {
    let name = decode(segment)?;
    validate_name(&name, "table").map_err(|e| RestError::bad_request(e.to_string()))?;
    Ok(TableIdent {
        namespace,
        name: name.into_owned(),
    })
}

/// The value of query parameter `key` (form-encoded), if present.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// A namespace's levels as clients see them (`a.b` → `["a", "b"]`).
pub fn levels(namespace: &str) -> Vec<&str> {
    namespace.split('.').collect()
}

/// The ref a prefix names: all of it, or the part before Nessie's `|<warehouse>`.
fn prefix_ref(segment: &str) -> Result<String, RestError> {
    let decoded = decode(segment)?;
    let ref_name = decoded.split_once('|').map_or(&*decoded, |(r, _)| r);
    if ref_name.is_empty() {
        return Err(RestError::bad_request(format!(
            "prefix {decoded:?} names no ref: write <ref> or <ref>|<warehouse>"
        )));
    }
    Ok(ref_name.to_string())
}

/// A ref name as a prefix: one path segment (`/` in names is encoded).
pub fn prefix_of(ref_name: &str) -> String {
    ref_name.replace('/', "%2F")
}

/// Nessie's prefix `<ref>|<warehouse>`, encoded as one path segment.
pub fn nessie_prefix_of(ref_name: &str, warehouse: &str) -> String {
    utf8_percent_encode(&format!("{ref_name}|{warehouse}"), NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_path_and_prefix_select_the_ref() {
        let route = parse("GET", "/v1/config").unwrap();
        assert_eq!(
            (route.ref_name(), &route.endpoint),
            (None, &Endpoint::Config)
        );
        let route = parse("GET", "/iceberg/dev/v1/config").unwrap();
        assert_eq!(route.ref_name(), Some("dev"));
        let route = parse("GET", "/iceberg/run/42/v1/run%2F42/namespaces").unwrap();
        assert_eq!(route.base_ref.as_deref(), Some("run/42"));
        assert_eq!(route.ref_name(), Some("run/42"));
        let route = parse("GET", "/iceberg/v1/main/namespaces/a%1Fb/tables/t").unwrap();
        assert_eq!(
            route.endpoint,
            Endpoint::LoadTable(TableIdent {
                namespace: "a.b".into(),
                name: "t".into()
            })
        );
    }

    #[test]
    fn nessie_prefixes_name_their_ref() {
        let prefix = nessie_prefix_of("run/42", "s3://lake/wh");
        assert_eq!(prefix, "run%2F42%7Cs3%3A%2F%2Flake%2Fwh");
        let route = parse(
            "GET",
            &format!("/iceberg/v1/{prefix}/namespaces/raw/tables"),
        )
        .unwrap();
        assert_eq!(route.ref_name(), Some("run/42"));
        assert!(route.nessie_path);
        let route = parse("GET", "/v1/dev%7Cwarehouse/namespaces").unwrap();
        assert_eq!(route.ref_name(), Some("dev"));
        assert!(!route.nessie_path);
        // A literal `|` (clients that do not encode it) and a bare ref keep working.
        assert_eq!(
            parse("GET", "/v1/dev|w/namespaces").unwrap().ref_name(),
            Some("dev")
        );
        assert_eq!(
            parse("GET", "/v1/dev/namespaces").unwrap().ref_name(),
            Some("dev")
        );
    }

    #[test]
    fn unknown_paths_and_bad_names_are_4xx() {
        assert_eq!(parse("GET", "/v2/config").unwrap_err().status, 404);
        assert_eq!(parse("PUT", "/v1/main/namespaces").unwrap_err().status, 404);
        assert_eq!(parse("GET", "/other/v1/config").unwrap_err().status, 404);
        let bad = parse("GET", "/v1/main/namespaces/..%2Fx/tables/t").unwrap_err();
        assert_eq!(bad.status, 400);
        assert_eq!(
            parse("GET", "/v1/main/namespaces/%FF").unwrap_err().status,
            400
        );
    }

    #[test]
    fn refs_named_like_path_words_still_route() {
        let route = parse("GET", "/iceberg/v1/v1/v1/namespaces/raw/tables/t").unwrap();
        assert_eq!(route.ref_name(), Some("v1"));
        let route = parse("GET", "/iceberg/v1/config").unwrap();
        assert_eq!(
            (route.ref_name(), &route.endpoint),
            (None, &Endpoint::Config)
        );
        let route = parse("GET", "/v1/namespaces/namespaces").unwrap();
        assert_eq!(route.endpoint, Endpoint::LoadNamespace("namespaces".into()));
        let route = parse("GET", "/v1/namespaces/namespaces/raw/tables").unwrap();
        assert_eq!(route.ref_name(), Some("namespaces"));
        assert_eq!(route.endpoint, Endpoint::ListTables("raw".into()));
    }
}
