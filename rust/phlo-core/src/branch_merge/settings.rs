//! The table settings a branch changed besides its data and schema — properties (phlo's
//! `set_properties`, another engine's through `phlo catalog serve`), the sort order, the format
//! version — carried onto the target of a rebase as a fast-forward carries them; and the changes
//! a rebase cannot carry (table-level refs, the partition spec) refused, never dropped. A rebase
//! writes the target's metadata with the branch's data re-applied: whatever it leaves out of
//! that metadata is lost once the branch is deleted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use iceberg::spec::{
    FormatVersion, SnapshotReference, SortOrder, TableMetadata, TableMetadataBuilder,
};

use super::rebase::Conflict;
use crate::catalog::MAIN;
use crate::error::{Context, Result};
use crate::maintenance::table_refs;
use crate::tables::LoadedTable;

/// `target` with the settings the branch changed since `base`, or why they cannot be carried.
pub fn carry_settings(
    (base, branch): (&TableMetadata, &TableMetadata),
    target: LoadedTable,
) -> Result<std::result::Result<LoadedTable, Conflict>> {
    let (mut set, mut removed) = (HashMap::new(), Vec::new());
    let mut conflicts = Vec::new();
    let keys: HashSet<&String> = base
        .properties()
        .keys()
        .chain(branch.properties().keys())
        .collect();
    for key in keys {
        let (was, now) = (base.properties().get(key), branch.properties().get(key));
        let theirs = target.metadata.properties().get(key);
        if was == now || theirs == now {
            continue;
        }
        if theirs != was {
            conflicts.push(format!(
                "both sides changed table property {key} ({} on the branch, {} on the target)",
                shown(now),
                shown(theirs)
            ));
        }
        match now {
            Some(value) => {
                set.insert(key.clone(), value.clone());
            }
            None => removed.push(key.clone()),
        }
    }
    let order = |m: &TableMetadata| m.default_sort_order().fields.clone();
    let carry_order = order(branch) != order(base) && order(&target.metadata) != order(branch);
    if carry_order && order(&target.metadata) != order(base) {
        conflicts.push("both sides changed the sort order".into());
    }
    let spec = |m: &TableMetadata| m.default_partition_spec().fields().to_vec();
    if spec(branch) != spec(base) && spec(&target.metadata) != spec(branch) {
        conflicts.push(
            "the branch changed the partition spec, which a rebase does not carry over".into(),
        );
    }
    let (base_refs, branch_refs) = (table_refs(base)?, table_refs(branch)?);
    let target_refs = table_refs(&target.metadata)?;
    let moved = moved_refs(&base_refs, &branch_refs);
    if !moved.is_empty() {
        conflicts.push(format!(
            "the branch created or moved table-level refs {} (in the table's own metadata, e.g. \
             by PyIceberg's manage_snapshots), which name snapshots a rebase does not carry over",
            moved.join(", ")
        ));
    }
    if !conflicts.is_empty() {
        return Ok(Err(Conflict {
            what: conflicts.join("; "),
            or: Some(
                "undo those changes on the branch and make them on the target after the merge",
            ),
        }));
    }
    // Refs the branch dropped (expired) go from the target too, unless the target moved them.
    let dropped: Vec<&String> = (base_refs.keys())
        .filter(|name| *name != MAIN && !branch_refs.contains_key(*name))
        .filter(|name| target_refs.get(*name) == base_refs.get(*name))
        .collect();
    let upgrade = branch.format_version() > target.metadata.format_version();
    if set.is_empty() && removed.is_empty() && !carry_order && !upgrade && dropped.is_empty() {
        return Ok(Ok(target));
    }
    let changes = Changes {
        set,
        removed,
        order: carry_order.then(|| branch.default_sort_order().as_ref().clone()),
        version: upgrade.then(|| branch.format_version()),
        dropped,
    };
    let metadata = apply(target.metadata.as_ref().clone(), changes)
        .context(|| format!("carrying the branch's table settings into {}", target.ident))?;
    Ok(Ok(LoadedTable {
        metadata: Arc::new(metadata),
        ..target
    }))
}

/// The settings a rebase carries onto the target.
struct Changes<'a> {
    set: HashMap<String, String>,
    removed: Vec<String>,
    order: Option<SortOrder>,
    version: Option<FormatVersion>,
    dropped: Vec<&'a String>,
}

fn apply(target: TableMetadata, changes: Changes) -> iceberg::Result<TableMetadata> {
    let mut builder = TableMetadataBuilder::new_from_metadata(target, None);
    if let Some(version) = changes.version {
        builder = builder.upgrade_format_version(version)?;
    }
    builder = (builder.set_properties(changes.set)?).remove_properties(&changes.removed)?;
    if let Some(order) = changes.order {
        builder = builder.add_sort_order(order)?.set_default_sort_order(-1)?;
    }
    for name in changes.dropped {
        builder = builder.remove_ref(name);
    }
    Ok(builder.build()?.metadata)
}

/// Table-level refs other than main that the branch added or changed since the fork.
fn moved_refs(
    base: &BTreeMap<String, SnapshotReference>,
    branch: &BTreeMap<String, SnapshotReference>,
) -> Vec<String> {
    (branch.iter())
        .filter(|(name, reference)| *name != MAIN && base.get(*name) != Some(*reference))
        .map(|(name, _)| name.clone())
        .collect()
}

fn shown(value: Option<&String>) -> String {
    value.map_or("removed".into(), |v| format!("{v:?}"))
}
