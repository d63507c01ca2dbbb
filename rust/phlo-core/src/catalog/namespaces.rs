//! Namespaces and the tables on `main`, in PyIceberg's `SqlCatalog` tables.

use super::db::{args, is_unique_violation};
use super::{CATALOG_NAME, Catalog, TableIdent, validate_name};
use crate::error::{Context, Error, Result};

impl Catalog {
    pub fn namespace_exists(&self, namespace: &str) -> Result<bool> {
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
}
