//! Which snapshots and table-level refs one version of a table's metadata keeps when expiring:
//! the Iceberg spec's "Snapshot Retention Policy", with the caller's `older_than`/`keep_last`
//! as a floor and phlo's fork point on top.
//!
//! 1. A ref other than `main` whose snapshot is older than its `max-ref-age-ms` (the ref's own,
//!    else the table's `history.expire.max-ref-age-ms`) is removed.
//! 2. Every remaining ref's snapshot is kept.
//! 3. Every remaining branch keeps its ancestors that are among its newest `min_keep` or newer
//!    than its `cutoff` (see [`Request::keep_for`]); `main` also keeps its history back to the
//!    catalog branch's fork point.
//! 4. A snapshot no ref reaches is kept while newer than the table's cutoff.
//! 5. Everything else expires.
//!
//! Unlike Java's `RemoveSnapshots`, a property that is not set has no default here: the caller's
//! arguments stand in for it. A property only ever keeps more than the arguments ask.

use std::collections::{BTreeMap, HashSet};

use iceberg::spec::{SnapshotReference, SnapshotRetention, TableMetadata};

use crate::catalog::MAIN;
use crate::error::{Error, Result};

const MAX_SNAPSHOT_AGE_MS: &str = "history.expire.max-snapshot-age-ms";
const MIN_SNAPSHOTS_TO_KEEP: &str = "history.expire.min-snapshots-to-keep";
const MAX_REF_AGE_MS: &str = "history.expire.max-ref-age-ms";

/// What the caller asked for: expire what is older than `older_than_ms` beyond the newest
/// `keep_last` of every branch, as of `now_ms` (which the properties' ages count back from).
#[derive(Debug, Clone, Copy)]
pub(super) struct Request {
    pub older_than_ms: i64,
    pub keep_last: usize,
    pub now_ms: i64,
}

/// Retention settings a table (its properties) or a ref (its entry in `refs`) sets; `None` where
/// it sets nothing.
#[derive(Debug, Clone, Copy, Default)]
struct Retention {
    max_snapshot_age_ms: Option<i64>,
    min_snapshots_to_keep: Option<usize>,
    max_ref_age_ms: Option<i64>,
}

/// How much of a branch's history stays: every ancestor from `cutoff_ms` on, and at least the
/// newest `min_keep` (the head counts).
#[derive(Debug, Clone, Copy)]
struct Keep {
    cutoff_ms: i64,
    min_keep: usize,
}

/// What expiring one version of a table's metadata removes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Plan {
    pub expired: Vec<i64>,
    /// Table-level refs whose `max-ref-age-ms` has passed.
    pub refs_removed: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.expired.is_empty() && self.refs_removed.is_empty()
    }
}

impl Request {
    /// The more conservative of the caller's floor and what `retention` asks for.
    fn keep_for(&self, retention: &Retention) -> Keep {
        let cutoff_ms = match retention.max_snapshot_age_ms {
            Some(age) => self.older_than_ms.min(self.now_ms.saturating_sub(age)),
            None => self.older_than_ms,
        };
        let min_keep = self
            .keep_last
            .max(retention.min_snapshots_to_keep.unwrap_or(0));
        Keep {
            cutoff_ms,
            min_keep,
        }
    }
}

impl Retention {
    /// The table's `history.expire.*` properties.
    fn of_table(metadata: &TableMetadata, table: &str) -> Result<Self> {
        let property = |key: &str| -> Result<Option<i64>> {
            let Some(text) = metadata.properties().get(key) else {
                return Ok(None);
            };
            match text.trim().parse::<i64>() {
                Ok(value) if value > 0 => Ok(Some(value)),
                _ => Err(Error::invalid(
                    format!("table property {key} of {table} is {text:?}, not a positive number"),
                    "set it to a positive whole number, or remove it (PyIceberg: with \
                     tbl.transaction() as tx: tx.set_properties(...) / tx.remove_properties(...))",
                )
                .in_table(table)),
            }
        };
        Ok(Self {
            max_snapshot_age_ms: property(MAX_SNAPSHOT_AGE_MS)?,
            min_snapshots_to_keep: property(MIN_SNAPSHOTS_TO_KEEP)?.map(|n| n as usize),
            max_ref_age_ms: property(MAX_REF_AGE_MS)?,
        })
    }

    /// A ref's own settings, each falling back to the table's.
    fn of_ref(
        reference: &SnapshotReference,
        name: &str,
        table: &str,
        defaults: Retention,
    ) -> Result<Self> {
        let invalid = |field: &str, value: i64| {
            Error::invalid(
                format!("ref {name:?} of {table} has {field} {value}, not a positive number"),
                format!(
                    "recreate the ref with a positive {field}, or without it to use the table's \
                     history.expire.{field}"
                ),
            )
            .in_table(table)
        };
        let positive = |field: &str, value: Option<i64>| match value {
            Some(v) if v <= 0 => Err(invalid(field, v)),
            v => Ok(v),
        };
        let (min, max_snapshot_age, max_ref_age) = match reference.retention {
            SnapshotRetention::Branch {
                min_snapshots_to_keep,
                max_snapshot_age_ms,
                max_ref_age_ms,
            } => (
                min_snapshots_to_keep.map(i64::from),
                max_snapshot_age_ms,
                max_ref_age_ms,
            ),
            SnapshotRetention::Tag { max_ref_age_ms } => (None, None, max_ref_age_ms),
        };
        Ok(Self {
            max_snapshot_age_ms: positive("max-snapshot-age-ms", max_snapshot_age)?
                .or(defaults.max_snapshot_age_ms),
            min_snapshots_to_keep: positive("min-snapshots-to-keep", min)?
                .map(|n| n as usize)
                .or(defaults.min_snapshots_to_keep),
            max_ref_age_ms: positive("max-ref-age-ms", max_ref_age)?.or(defaults.max_ref_age_ms),
        })
    }
}

/// The refs of `metadata` by name. iceberg-rust keeps the map private; its serialized form has
/// it. Metadata without a `main` entry (format v1) gets one for its current snapshot.
pub(crate) fn table_refs(metadata: &TableMetadata) -> Result<BTreeMap<String, SnapshotReference>> {
    let mut value = serde_json::to_value(metadata).map_err(|e| {
        Error::invalid(
            format!("cannot read the refs of table metadata: {e}"),
            "check that the table's metadata file is valid Iceberg metadata",
        )
    })?;
    let mut refs: BTreeMap<String, SnapshotReference> = match value.get_mut("refs") {
        Some(refs) => serde_json::from_value(refs.take()).map_err(|e| {
            Error::invalid(
                format!("cannot read the refs of table metadata: {e}"),
                "check that the table's metadata file is valid Iceberg metadata",
            )
        })?,
        None => BTreeMap::new(),
    };
    if let Some(id) = metadata.current_snapshot_id() {
        refs.entry(MAIN.to_string())
            .or_insert_with(|| SnapshotReference {
                snapshot_id: id,
                retention: SnapshotRetention::branch(None, None, None),
            });
    }
    Ok(refs)
}

/// Checks the table's and its refs' retention settings, so a bad one fails before anything of
/// the table is rewritten.
pub(super) fn validate(metadata: &TableMetadata, table: &str) -> Result<()> {
    let defaults = Retention::of_table(metadata, table)?;
    for (name, reference) in table_refs(metadata)? {
        Retention::of_ref(&reference, &name, table, defaults)?;
    }
    Ok(())
}

/// Applies the policy (see the module docs) to one version of `table`'s metadata. `fork_snapshot`
/// is the snapshot the catalog branch forked from, if it is one.
pub(super) fn plan(
    metadata: &TableMetadata,
    table: &str,
    request: &Request,
    fork_snapshot: Option<i64>,
) -> Result<Plan> {
    let defaults = Retention::of_table(metadata, table)?;
    let mut plan = Plan::default();
    let mut keep = HashSet::new();
    let mut reached = HashSet::new();
    for (name, reference) in table_refs(metadata)? {
        let retention = Retention::of_ref(&reference, &name, table, defaults)?;
        // A ref to a missing snapshot is dropped by the rewrite anyway.
        let Some(head) = metadata.snapshot_by_id(reference.snapshot_id) else {
            continue;
        };
        let too_old = retention
            .max_ref_age_ms
            .is_some_and(|age| request.now_ms.saturating_sub(head.timestamp_ms()) > age);
        if name != MAIN && too_old {
            plan.refs_removed.push(name);
            continue;
        }
        keep.insert(head.snapshot_id());
        reached.insert(head.snapshot_id());
        if reference.is_branch() {
            let fork = if name == MAIN { fork_snapshot } else { None };
            let branch = request.keep_for(&retention);
            keep_branch(
                metadata,
                head.snapshot_id(),
                branch,
                fork,
                &mut keep,
                &mut reached,
            );
        }
    }
    let cutoff_ms = request.keep_for(&defaults).cutoff_ms;
    plan.expired = metadata
        .snapshots()
        .filter(|s| !keep.contains(&s.snapshot_id()))
        .filter(|s| reached.contains(&s.snapshot_id()) || s.timestamp_ms() < cutoff_ms)
        .map(|s| s.snapshot_id())
        .collect();
    plan.expired.sort_unstable();
    Ok(plan)
}

/// Walks a branch from its head through its ancestors, keeping those within `branch` and,
/// when `fork` is given, every one back to it (a merge reads the history since the fork).
fn keep_branch(
    metadata: &TableMetadata,
    head: i64,
    branch: Keep,
    fork: Option<i64>,
    keep: &mut HashSet<i64>,
    reached: &mut HashSet<i64>,
) {
    let mut before_fork = fork.is_some();
    let mut current = metadata.snapshot_by_id(head);
    let mut depth = 0;
    while let Some(snapshot) = current {
        let id = snapshot.snapshot_id();
        reached.insert(id);
        if depth < branch.min_keep || snapshot.timestamp_ms() >= branch.cutoff_ms || before_fork {
            keep.insert(id);
        }
        if Some(id) == fork {
            before_fork = false;
        }
        depth += 1;
        current = snapshot
            .parent_snapshot_id()
            .and_then(|parent| metadata.snapshot_by_id(parent));
    }
}
