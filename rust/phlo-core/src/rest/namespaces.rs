//! Namespace endpoints. Namespaces belong to the catalog, not to a ref: every prefix sees the
//! same ones (a table is on a ref; its namespace is everywhere).

use std::collections::BTreeSet;

use serde_json::json;

use super::routes::{levels, namespace_from_levels};
use super::{Response, RestError, wire};
use crate::lakehouse::Lakehouse;

/// The namespaces one level below `parent` (the top level without one). A namespace `a.b`
/// also lists `a` at the top level, as a parent.
pub fn list(lh: &Lakehouse, parent: Option<&str>) -> Result<Response, RestError> {
    let all = lh.catalog().list_namespaces()?;
    let depth = parent.map_or(0, |p| levels(p).len());
    let children: BTreeSet<Vec<&str>> = all
        .iter()
        .map(|namespace| levels(namespace))
        .filter(|parts| parts.len() > depth && parent.is_none_or(|p| parts[..depth].join(".") == p))
        .map(|parts| parts[..=depth].to_vec())
        .collect();
    if let Some(parent) = parent
        && children.is_empty()
        && !lh.catalog().namespace_exists(parent)?
    {
        return Err(crate::Error::NoSuchNamespace(parent.into()).into());
    }
    Ok(Response::json(200, &json!({"namespaces": children})))
}

pub fn create(lh: &Lakehouse, body: &[u8]) -> Result<Response, RestError> {
    let request: wire::CreateNamespace = wire::parse(body, "create namespace")?;
    let namespace = namespace_from_levels(request.namespace.iter().map(String::as_str))?;
    lh.catalog().create_namespace(&namespace)?;
    if !request.properties.is_empty() {
        lh.catalog()
            .update_namespace_properties(&namespace, &[], &request.properties)?;
    }
    load(lh, &namespace)
}

pub fn load(lh: &Lakehouse, namespace: &str) -> Result<Response, RestError> {
    let properties = lh.catalog().namespace_properties(namespace)?;
    Ok(Response::json(
        200,
        &json!({"namespace": levels(namespace), "properties": properties}),
    ))
}

pub fn exists(lh: &Lakehouse, namespace: &str) -> Result<Response, RestError> {
    if lh.catalog().namespace_exists(namespace)? {
        Ok(Response::empty(204))
    } else {
        Err(crate::Error::NoSuchNamespace(namespace.into()).into())
    }
}

pub fn drop(lh: &Lakehouse, namespace: &str) -> Result<Response, RestError> {
    lh.catalog().drop_namespace(namespace)?;
    Ok(Response::empty(204))
}

pub fn update_properties(
    lh: &Lakehouse,
    namespace: &str,
    body: &[u8],
) -> Result<Response, RestError> {
    let request: wire::UpdateProperties = wire::parse(body, "update namespace properties")?;
    let changes =
        lh.catalog()
            .update_namespace_properties(namespace, &request.removals, &request.updates)?;
    Ok(Response::json(
        200,
        &json!({
            "updated": changes.updated,
            "removed": changes.removed,
            "missing": changes.missing,
        }),
    ))
}
