//! phlo's tables on a REST catalog. phlo's `ref_name` `R` names a table ref (branch or tag)
//! there, or, on a Nessie-style server, a catalog branch whose prefix serves the table with
//! `R`'s head as its `main` (see [`super::config`]). The engine works on a view of the table
//! whose `main` is that table ref's snapshot, and its commits go back to the server as updates
//! of the table ref: `add-snapshot` + `set-snapshot-ref`, guarded by `assert-table-uuid` +
//! `assert-ref-snapshot-id` (the server's compare-and-swap, scoped to that branch) +
//! `assert-default-spec-id` + `assert-current-schema-id` (the snapshot was planned under
//! them), or schema and property updates for metadata-only commits.

use std::sync::Arc;

use iceberg::spec::{Snapshot, SnapshotReference, SnapshotRetention, TableMetadata};
use iceberg::{TableCreation, TableRequirement, TableUpdate};

use super::RestCatalog;
use super::commit::{Committed, TableChange};
use super::tables::LoadedMetadata;
use crate::catalog::{MAIN, TableIdent};
use crate::error::{Context, Error, Location, Result};
use crate::tables::LoadedTable;

/// A branch reference with the table's default retention.
fn branch_ref(snapshot_id: i64) -> SnapshotReference {
    SnapshotReference {
        snapshot_id,
        retention: SnapshotRetention::Branch {
            min_snapshots_to_keep: None,
            max_snapshot_age_ms: None,
            max_ref_age_ms: None,
        },
    }
}

/// The table as phlo's engine sees it on `ref_name`, loaded from that ref's prefix: for a
/// table ref other than `main`, `main` is moved to that ref's snapshot (the view is never
/// written anywhere).
fn view_of(
    ident: &TableIdent,
    ref_name: &str,
    table_ref: &str,
    loaded: LoadedMetadata,
) -> Result<LoadedTable> {
    let location = loaded.metadata_location.unwrap_or_default();
    let metadata = match table_ref {
        MAIN => loaded.metadata,
        _ => {
            let Some(head) = loaded.metadata.snapshot_for_ref(ref_name) else {
                return Err(Error::invalid(
                    format!("table {ident} has no branch or tag {ref_name} in the REST catalog"),
                    "create the branch on the table first (PyIceberg: \
                     table.manage_snapshots().create_branch(snapshot_id, name)), or use ref=\"main\"",
                ));
            };
            let id = head.snapshot_id();
            loaded
                .metadata
                .into_builder(None)
                .set_ref(MAIN, branch_ref(id))
                .and_then(|b| b.build())
                .context(|| format!("reading branch {ref_name} of {ident}"))?
                .metadata
        }
    };
    Ok(LoadedTable::read_now(
        ident,
        ref_name,
        Arc::new(metadata),
        location,
    ))
}

impl RestCatalog {
    /// The table as phlo's engine sees it on catalog ref `ref_name` (see [`view_of`]).
    pub(super) fn view(
        &self,
        ident: &TableIdent,
        ref_name: &str,
        loaded: LoadedMetadata,
    ) -> Result<LoadedTable> {
        view_of(ident, ref_name, self.config.table_ref(ref_name), loaded)
    }

    /// The engine's branch name as a ref of the REST table: `main` of the view is the table
    /// ref that holds `table.ref_name`.
    pub(super) fn table_ref<'a>(&self, table: &'a LoadedTable, branch: &'a str) -> &'a str {
        match branch {
            MAIN => self.config.table_ref(&table.ref_name),
            other => other,
        }
    }

    /// Loads the table as ref `ref_name` has it (a transaction's: with its staged changes).
    pub(crate) fn load(&self, ident: &TableIdent, ref_name: &str) -> Result<LoadedTable> {
        if self.in_transaction(ref_name) {
            return self.load_staged(ident, ref_name);
        }
        self.view(ident, ref_name, self.load_table(ident, ref_name)?)
    }

    /// Refuses to write to `table` when its ref is one of the table's tags (immutable): the
    /// engine's write paths ask before they write any file, commits ask again.
    pub fn require_branch(&self, table: &LoadedTable) -> Result<()> {
        let name = self.config.table_ref(&table.ref_name);
        if name == MAIN || self.in_transaction(name) {
            return Ok(());
        }
        // iceberg-rust keeps the refs private; the serialized metadata has their kinds.
        let metadata = serde_json::to_value(table.metadata.as_ref()).unwrap_or_default();
        if metadata["refs"][name]["type"] != "tag" {
            return Ok(());
        }
        Err(Error::InvalidInput {
            message: format!("{name} is a tag of {}, and tags are immutable", table.ident),
            at: Location {
                table: Some(table.ident.to_string()),
                column: None,
            },
            hint: "write to main or to a branch of the table (PyIceberg: \
                   table.manage_snapshots().create_branch(snapshot_id, name))"
                .into(),
        })
    }

    /// Creates the table (only on `main` unless branches are the catalog's: elsewhere a REST
    /// table's branches live inside it; in a transaction, when the transaction commits).
    pub(crate) fn create(
        &self,
        ident: &TableIdent,
        ref_name: &str,
        creation: &TableCreation,
    ) -> Result<LoadedTable> {
        if self.in_transaction(ref_name) {
            return self.stage_create(ident, ref_name, creation);
        }
        if ref_name != MAIN && !self.config.catalog_branches() {
            return Err(Error::invalid(
                format!(
                    "cannot create {ident} on {ref_name}: on a REST catalog a table is created on main"
                ),
                "create it with ref=\"main\", then create the branch on the table",
            ));
        }
        let created = self.create_table(ident, ref_name, creation, false)?;
        self.view(ident, ref_name, created)
    }

    /// Commits `snapshot` as the new head of `branch` (of the engine's view) of `table`.
    /// `None`: another writer moved the branch first (nothing changed). Inside a transaction
    /// (`table.ref_name` is one) the change is staged until the transaction commits.
    pub(crate) fn publish_snapshot(
        &self,
        table: &LoadedTable,
        snapshot: Snapshot,
        branch: &str,
    ) -> Result<Option<LoadedTable>> {
        if self.in_transaction(&table.ref_name) {
            return self.stage_snapshot(table, snapshot, branch);
        }
        self.require_branch(table)?;
        let target = self.table_ref(table, branch).to_string();
        let parent = table.snapshot_for_ref(branch).map(|s| s.snapshot_id());
        let mut requirements = ref_guard(&table.metadata, &target, parent);
        requirements.extend(planned_guard(&table.metadata));
        let change = TableChange {
            ident: &table.ident,
            requirements,
            updates: snapshot_updates(snapshot, target),
        };
        self.publish(table, &change)
    }

    /// Commits a metadata-only change: the schemas and properties `next` has beyond
    /// `table`'s, while the table's branch and schema are still where `table` saw them.
    pub(crate) fn publish_metadata(
        &self,
        table: &LoadedTable,
        next: &TableMetadata,
    ) -> Result<Option<LoadedTable>> {
        if self.in_transaction(&table.ref_name) {
            return self.stage_metadata(table, next);
        }
        self.require_branch(table)?;
        let old = &table.metadata;
        let target = self.config.table_ref(&table.ref_name);
        let mut requirements = ref_guard(old, target, old.current_snapshot_id());
        requirements.extend(schema_guard(old));
        let change = TableChange {
            ident: &table.ident,
            requirements,
            updates: metadata_updates(old, next),
        };
        self.publish(table, &change)
    }

    fn publish(
        &self,
        table: &LoadedTable,
        change: &TableChange<'_>,
    ) -> Result<Option<LoadedTable>> {
        match self.commit_table(&table.ref_name, change)? {
            Committed::Landed(loaded) => {
                Ok(Some(self.view(&table.ident, &table.ref_name, loaded)?))
            }
            Committed::Conflict(_) => Ok(None),
        }
    }
}

/// What every commit requires: the same table (not one dropped and created again under its
/// name), and ref `target` at `head` (`None`: not there yet), where the writer saw it.
pub(super) fn ref_guard(
    metadata: &TableMetadata,
    target: &str,
    head: Option<i64>,
) -> Vec<TableRequirement> {
    vec![
        TableRequirement::UuidMatch {
            uuid: metadata.uuid(),
        },
        TableRequirement::RefSnapshotIdMatch {
            r#ref: target.to_string(),
            snapshot_id: head,
        },
    ]
}

/// What a snapshot also requires: the spec its new files were written under and the schema it
/// names. Another engine may change either without moving the ref; the server then refuses
/// (409), and the writer's reload decides, as a SQL catalog's pointer swap makes it do.
pub(super) fn planned_guard(metadata: &TableMetadata) -> [TableRequirement; 2] {
    [
        TableRequirement::DefaultSpecIdMatch {
            default_spec_id: metadata.default_partition_spec_id(),
        },
        TableRequirement::CurrentSchemaIdMatch {
            current_schema_id: metadata.current_schema_id(),
        },
    ]
}

/// What a schema or property change also requires: the schema the writer saw.
pub(super) fn schema_guard(old: &TableMetadata) -> [TableRequirement; 2] {
    [
        TableRequirement::CurrentSchemaIdMatch {
            current_schema_id: old.current_schema_id(),
        },
        TableRequirement::LastAssignedFieldIdMatch {
            last_assigned_field_id: old.last_column_id(),
        },
    ]
}

/// `snapshot` added and made the head of branch `target`.
pub(super) fn snapshot_updates(snapshot: Snapshot, target: String) -> Vec<TableUpdate> {
    let id = snapshot.snapshot_id();
    vec![
        TableUpdate::AddSnapshot { snapshot },
        TableUpdate::SetSnapshotRef {
            ref_name: target,
            reference: branch_ref(id),
        },
    ]
}

/// The REST updates that turn `old` into `next` for what phlo changes without a snapshot:
/// new schemas (and the current one) and table properties.
pub(super) fn metadata_updates(old: &TableMetadata, next: &TableMetadata) -> Vec<TableUpdate> {
    let mut updates: Vec<TableUpdate> = next
        .schemas_iter()
        .filter(|s| old.schema_by_id(s.schema_id()).is_none())
        .map(|s| TableUpdate::AddSchema {
            schema: s.as_ref().clone(),
        })
        .collect();
    if next.current_schema_id() != old.current_schema_id() {
        updates.push(TableUpdate::SetCurrentSchema {
            schema_id: next.current_schema_id(),
        });
    }
    let set: std::collections::HashMap<String, String> = next
        .properties()
        .iter()
        .filter(|(k, v)| old.properties().get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !set.is_empty() {
        updates.push(TableUpdate::SetProperties { updates: set });
    }
    let removed: Vec<String> = old
        .properties()
        .keys()
        .filter(|k| !next.properties().contains_key(*k))
        .cloned()
        .collect();
    if !removed.is_empty() {
        updates.push(TableUpdate::RemoveProperties { removals: removed });
    }
    updates
}
