//! Namespace properties, stored as PyIceberg's `SqlCatalog` stores them: one row per key in
//! `iceberg_namespace_properties` (its `exists` marker among them).

use std::collections::BTreeMap;

use rusqlite::params;

use super::sqlite::{CATALOG_NAME, SqliteCatalog};
use crate::error::{Context, Error, Result};

/// The key PyIceberg writes to mark that a namespace exists; never removed through properties.
const EXISTS_KEY: &str = "exists";

/// What a properties update did, key by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertyChanges {
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    /// Keys asked to be removed that were not there.
    pub missing: Vec<String>,
}

impl SqliteCatalog {
    /// The properties of `namespace`.
    pub fn namespace_properties(&self, namespace: &str) -> Result<BTreeMap<String, String>> {
        if !self.namespace_exists(namespace)? {
            return Err(Error::NoSuchNamespace(namespace.into()));
        }
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(
                "SELECT property_key, property_value FROM iceberg_namespace_properties
                 WHERE catalog_name = ?1 AND namespace = ?2",
            )
            .context(|| format!("reading the properties of {namespace}"))?;
        let rows = stmt
            .query_map(params![CATALOG_NAME, namespace], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<BTreeMap<String, String>>>())
            .context(|| format!("reading the properties of {namespace}"))?;
        Ok(rows)
    }

    /// Sets `updates` and removes `removals` on `namespace`, in one transaction.
    pub fn update_namespace_properties(
        &self,
        namespace: &str,
        removals: &[String],
        updates: &BTreeMap<String, String>,
    ) -> Result<PropertyChanges> {
        if let Some(key) = removals.iter().find(|k| updates.contains_key(*k)) {
            return Err(Error::invalid(
                format!("property {key:?} is both set and removed"),
                "name each key in either updates or removals",
            ));
        }
        if !self.namespace_exists(namespace)? {
            return Err(Error::NoSuchNamespace(namespace.into()));
        }
        self.in_transaction(|tx| {
            let mut changes = PropertyChanges::default();
            for key in removals {
                let removed = key != EXISTS_KEY
                    && tx
                        .execute(
                            "DELETE FROM iceberg_namespace_properties WHERE catalog_name = ?1
                             AND namespace = ?2 AND property_key = ?3",
                            params![CATALOG_NAME, namespace, key],
                        )
                        .context(|| format!("updating the properties of {namespace}"))?
                        == 1;
                if removed {
                    changes.removed.push(key.clone());
                } else {
                    changes.missing.push(key.clone());
                }
            }
            for (key, value) in updates {
                tx.execute(
                    "INSERT OR REPLACE INTO iceberg_namespace_properties VALUES (?1, ?2, ?3, ?4)",
                    params![CATALOG_NAME, namespace, key, value],
                )
                .context(|| format!("updating the properties of {namespace}"))?;
                changes.updated.push(key.clone());
            }
            Ok(changes)
        })
    }
}
