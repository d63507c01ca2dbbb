//! Storage properties a REST catalog hands out per table: a load-table (or create-table)
//! answer's `config` (`s3.access-key-id`, `s3.secret-access-key`, `s3.session-token`,
//! `s3.endpoint`, …) and, in newer servers, `storage-credentials` (properties by location
//! prefix; the longest prefix of the table's location wins, laid over `config`). The table's
//! files are read and written with these over the catalog's properties. They are credentials:
//! kept in memory only, never logged or put in a message.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::RestCatalog;
use super::tables::{LoadedMetadata, StorageCredential};
use crate::catalog::TableIdent;

/// The properties handed out, by table name. `Debug` shows the tables only.
#[derive(Default)]
pub(super) struct Vended(Mutex<HashMap<String, HashMap<String, String>>>);

impl Vended {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, HashMap<String, String>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for Vended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.lock().keys()).finish()
    }
}

/// What the server handed out for the files of a table at `location`: `config`, with the
/// credential of the longest matching prefix over it.
fn table_properties(
    config: &HashMap<String, String>,
    credentials: &[StorageCredential],
    location: &str,
) -> HashMap<String, String> {
    let mut properties = config.clone();
    let best = credentials
        .iter()
        .filter(|c| location.starts_with(&c.prefix))
        .max_by_key(|c| c.prefix.len());
    if let Some(credential) = best {
        properties.extend(credential.config.clone());
    }
    properties
}

impl RestCatalog {
    /// Keeps what the server handed out for `ident`'s files (the latest answer wins).
    pub(super) fn remember_storage(
        &self,
        ident: &TableIdent,
        loaded: LoadedMetadata,
    ) -> LoadedMetadata {
        let location = loaded.metadata.location();
        let properties = table_properties(&loaded.config, &loaded.storage_credentials, location);
        let mut vended = self.vended.lock();
        match properties.is_empty() {
            true => vended.remove(&ident.to_string()),
            false => vended.insert(ident.to_string(), properties),
        };
        loaded
    }

    /// The storage properties the server handed out for `ident`'s files, if any.
    pub fn table_storage(&self, ident: &TableIdent) -> Option<HashMap<String, String>> {
        self.vended.lock().get(&ident.to_string()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_matching_prefix_wins_over_config() {
        let credential = |prefix: &str, key: &str| StorageCredential {
            prefix: prefix.into(),
            config: HashMap::from([("s3.access-key-id".to_string(), key.to_string())]),
        };
        let config = HashMap::from([
            ("s3.access-key-id".to_string(), "from-config".to_string()),
            ("s3.endpoint".to_string(), "http://127.0.0.1:1".to_string()),
        ]);
        let credentials = [
            credential("s3://lake/", "bucket"),
            credential("s3://lake/raw/t", "table"),
            credential("s3://other/", "other"),
        ];
        let key = |location: &str| {
            let properties = table_properties(&config, &credentials, location);
            assert_eq!(properties["s3.endpoint"], "http://127.0.0.1:1");
            properties["s3.access-key-id"].clone()
        };
        assert_eq!(key("s3://lake/raw/t"), "table");
        assert_eq!(key("s3://lake/raw/u"), "bucket");
        assert_eq!(key("s3://elsewhere/x"), "from-config");
    }
}
