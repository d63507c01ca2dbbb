//! Namespaces and the tables on `main`, in PyIceberg's `SqlCatalog` tables. Namespace
//! properties are one row per key in `iceberg_namespace_properties`, as PyIceberg stores them
//! (its `exists` marker among them).

use std::collections::BTreeMap;

use super::db::{args, is_unique_violation};
use super::{CATALOG_NAME, Catalog, MAIN, TableIdent, validate_name};
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

impl Catalog {
    pub fn namespace_exists(&self, namespace: &str) -> Result<bool> {
        if let Some(rest) = self.rest() {
            return rest.namespace_exists(namespace);
        }
        self.read(|db| {
            db.query_first(
                "SELECT 1 FROM iceberg_namespace_properties WHERE catalog_name = ?1 AND namespace = ?2
                 UNION SELECT 1 FROM iceberg_tables WHERE catalog_name = ?1 AND table_namespace = ?2
                 LIMIT 1",
                args![CATALOG_NAME, namespace],
            )
            .context(|| format!("looking up namespace {namespace}"))
            .map(|row| row.is_some())
        })
    }

    pub fn create_namespace(&self, namespace: &str) -> Result<()> {
        if let Some(rest) = self.rest() {
            return rest.create_namespace(namespace);
        }
        for part in namespace.split('.') {
            validate_name(part, "namespace")?;
        }
        if self.namespace_exists(namespace)? {
            return Err(Error::NamespaceAlreadyExists(namespace.into()));
        }
        self.write(|db| {
            db.execute(
                "INSERT INTO iceberg_namespace_properties VALUES (?1, ?2, 'exists', 'true')",
                args![CATALOG_NAME, namespace],
            )
            .map_err(|e| match is_unique_violation(&e) {
                true => Error::NamespaceAlreadyExists(namespace.into()),
                false => Error::Catalog {
                    message: format!("creating namespace {namespace}"),
                    source: e,
                },
            })
        })?;
        Ok(())
    }

    pub fn list_namespaces(&self) -> Result<Vec<String>> {
        if let Some(rest) = self.rest() {
            return rest.list_namespaces();
        }
        let rows = self.read(|db| {
            db.query(
                "SELECT namespace FROM iceberg_namespace_properties WHERE catalog_name = ?1
                 UNION SELECT table_namespace FROM iceberg_tables WHERE catalog_name = ?1
                 ORDER BY 1",
                args![CATALOG_NAME],
            )
            .context(|| "listing namespaces".into())
        })?;
        rows.iter().map(|row| row.text(0)).collect()
    }

    pub fn drop_namespace(&self, namespace: &str) -> Result<()> {
        if let Some(rest) = self.rest() {
            return rest.drop_namespace(namespace);
        }
        if !self.namespace_exists(namespace)? {
            return Err(Error::NoSuchNamespace(namespace.into()));
        }
        if !self.list_tables(namespace)?.is_empty() {
            return Err(Error::NamespaceNotEmpty(namespace.into()));
        }
        self.write(|db| {
            db.execute(
                "DELETE FROM iceberg_namespace_properties WHERE catalog_name = ?1 AND namespace = ?2",
                args![CATALOG_NAME, namespace],
            )
            .context(|| format!("dropping namespace {namespace}"))
        })?;
        Ok(())
    }

    pub fn list_tables(&self, namespace: &str) -> Result<Vec<TableIdent>> {
        if let Some(rest) = self.rest() {
            return rest.list_tables(namespace, MAIN);
        }
        let rows = self.read(|db| {
            db.query(
                "SELECT table_name FROM iceberg_tables WHERE catalog_name = ?1 AND table_namespace = ?2
                 AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL) ORDER BY table_name",
                args![CATALOG_NAME, namespace],
            )
            .context(|| format!("listing tables of {namespace}"))
        })?;
        rows.iter()
            .map(|row| {
                Ok(TableIdent {
                    namespace: namespace.into(),
                    name: row.text(0)?,
                })
            })
            .collect()
    }

    /// The current metadata file of a table on `main`.
    pub fn metadata_location(&self, ident: &TableIdent) -> Result<String> {
        if self.rest().is_some() {
            return self.metadata_location_on(super::MAIN, ident);
        }
        self.read(|db| super::pointers::get(db, super::MAIN, ident))?
            .ok_or_else(|| Error::NoSuchTable(ident.to_string()))
    }

    /// Compare-and-swap of `main`'s pointer as another engine (PyIceberg) does it: no log entry.
    /// Tests use it to play that other writer; phlo commits through `swap_metadata_location_on`.
    #[cfg(test)]
    pub fn swap_metadata_location(
        &self,
        ident: &TableIdent,
        expected: &str,
        new: &str,
    ) -> Result<bool> {
        self.write(|db| super::pointers::swap(db, super::MAIN, ident, expected, new))
    }

    /// The properties of `namespace`.
    pub fn namespace_properties(&self, namespace: &str) -> Result<BTreeMap<String, String>> {
        if let Some(rest) = self.rest() {
            return rest.namespace_properties(namespace);
        }
        if !self.namespace_exists(namespace)? {
            return Err(Error::NoSuchNamespace(namespace.into()));
        }
        let rows = self.read(|db| {
            db.query(
                "SELECT property_key, property_value FROM iceberg_namespace_properties
                 WHERE catalog_name = ?1 AND namespace = ?2",
                args![CATALOG_NAME, namespace],
            )
            .context(|| format!("reading the properties of {namespace}"))
        })?;
        rows.iter()
            .map(|row| Ok((row.text(0)?, row.opt_text(1)?.unwrap_or_default())))
            .collect()
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
        self.write(|db| {
            let mut changes = PropertyChanges::default();
            for key in removals {
                let removed = key != EXISTS_KEY
                    && db
                        .execute(
                            "DELETE FROM iceberg_namespace_properties WHERE catalog_name = ?1
                             AND namespace = ?2 AND property_key = ?3",
                            args![CATALOG_NAME, namespace, key],
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
                db.execute(
                    "INSERT INTO iceberg_namespace_properties VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (catalog_name, namespace, property_key)
                     DO UPDATE SET property_value = excluded.property_value",
                    args![CATALOG_NAME, namespace, key, value],
                )
                .context(|| format!("updating the properties of {namespace}"))?;
                changes.updated.push(key.clone());
            }
            Ok(changes)
        })
    }
}
