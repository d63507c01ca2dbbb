//! Branches and tags of the embedded catalog (docs/architecture.md, "The versioned catalog").
//! `main` is PyIceberg's `iceberg_tables`; every other ref keeps its own table pointers in
//! `phlo_ref_tables`, with the pointer each table had when the ref was forked or last merged
//! (`base_location`), which is what merges compare against. Creating a ref copies pointers only
//! (zero-copy); data and metadata files are shared until a write on the ref makes a new
//! metadata file. Internal branches (a transaction's `tx/…`) record the process that owns them,
//! are left out of listings, and are removed by maintenance once that process is gone.

use super::db::{Row, Sql, args, is_unique_violation};
use super::log::{CommitMeta, record};
use super::{CATALOG_NAME, Catalog, TableIdent, validate_name};
use super::{orphan_fence, pointers};
use crate::error::{Context, Error, Result};

pub const MAIN: &str = "main";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Branch,
    Tag,
}

impl RefKind {
    fn as_str(self) -> &'static str {
        match self {
            RefKind::Branch => "branch",
            RefKind::Tag => "tag",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "tag" => RefKind::Tag,
            _ => RefKind::Branch,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefInfo {
    pub name: String,
    pub kind: RefKind,
    pub source: String,
    pub created_at_ms: i64,
}

/// What a merge did to each table of the target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefMerge {
    /// Tables whose target pointer moved to the source's (fast-forward).
    pub fast_forwarded: Vec<String>,
    /// Tables that exist on the source only and were added to the target.
    pub added: Vec<String>,
    /// Tables changed on both sides whose source changes were re-applied on the target.
    pub rebased: Vec<String>,
}

/// How two refs differ, table by table (full names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefDiff {
    /// On both refs, at different metadata files.
    pub changed: Vec<String>,
    /// Only on the second ref.
    pub added: Vec<String>,
    /// Only on the first ref.
    pub removed: Vec<String>,
}

/// A table the source branch changed since its fork (or last merge), with the pointers a merge
/// starts from, all read at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub ident: TableIdent,
    /// The table on the source now.
    pub source: String,
    /// The table when the source forked or last merged (`None`: created on the source).
    pub base: Option<String>,
    /// The table on the target now (`None`: not there).
    pub target: Option<String>,
}

impl Changed {
    /// Whether the target still is where the source started: the merge is a fast-forward.
    pub fn target_unmoved(&self) -> bool {
        self.base.is_some() && self.base == self.target
    }
}

/// What a merge does to one table, decided from a [`Changed`]; applied only if neither side
/// moved since (see [`Catalog::apply_merge`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeStep {
    FastForward(Changed),
    Add(Changed),
    /// The target moves to `to`, a metadata file with the source's changes re-applied on top
    /// of `changed.target`.
    Rebase {
        changed: Changed,
        to: String,
    },
}

impl MergeStep {
    fn changed(&self) -> &Changed {
        match self {
            MergeStep::FastForward(c) | MergeStep::Add(c) => c,
            MergeStep::Rebase { changed, .. } => changed,
        }
    }

    /// The metadata file the target's pointer moves to.
    fn to(&self) -> &str {
        match self {
            MergeStep::FastForward(c) | MergeStep::Add(c) => &c.source,
            MergeStep::Rebase { to, .. } => to,
        }
    }
}

/// One table on one ref, as maintenance sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    pub ref_name: String,
    pub kind: RefKind,
    pub ident: TableIdent,
    pub metadata_location: String,
    /// The table's pointer when the ref was forked or last merged (branches only).
    pub base_location: Option<String>,
}

/// Ref names: like table names, plus `/` between parts (`pipeline-run/42`), never `..`.
pub fn validate_ref_name(name: &str) -> Result<()> {
    for part in name.split('/') {
        validate_name(part, "ref").map_err(|_| {
            Error::invalid(
                format!("invalid ref name {name:?}"),
                "use letters, digits, '_' and '-' (not first), parts separated by '/'; no '..', \
                 spaces or control characters",
            )
        })?;
    }
    Ok(())
}

impl Catalog {
    /// Errors unless `name` is an existing branch: tags are immutable.
    fn require_branch(&self, name: &str) -> Result<()> {
        match self.ref_kind(name)? {
            None => Err(no_such_ref(name)),
            Some(RefKind::Tag) => Err(Error::invalid(
                format!("{name} is a tag"),
                "tags are immutable: write to or merge into a branch",
            )),
            Some(RefKind::Branch) => Ok(()),
        }
    }

    /// The kind of `name`, or `None` if no such ref exists (`main` always exists).
    /// On a REST catalog refs belong to each table, not to the catalog: only `main` is known,
    /// unless the server has catalog branches (Nessie-style), which it is asked about.
    pub fn ref_kind(&self, name: &str) -> Result<Option<RefKind>> {
        if let Some(rest) = self.rest() {
            let known = name == MAIN || rest.in_transaction(name) || rest.has_catalog_ref(name)?;
            return Ok(known.then_some(RefKind::Branch));
        }
        self.read(|db| ref_kind(db, name))
    }

    /// Creates a branch or tag pointing at every table of `from` as it is now.
    pub fn create_ref(&self, name: &str, kind: RefKind, from: &str) -> Result<()> {
        validate_ref_name(name)?;
        if name == MAIN {
            return Err(Error::invalid(
                "ref main already exists",
                "pick another name: main is PyIceberg's table list and always there",
            ));
        }
        self.insert_ref(name, kind, from, None)
    }

    /// Creates a branch private to this process (a transaction's), named `{prefix}{uuid}`:
    /// listings leave it out, and maintenance removes it once the process is gone.
    /// On a REST catalog, a transaction staged in this client (see its `transaction` module).
    pub fn create_internal_branch(&self, prefix: &str, from: &str) -> Result<String> {
        if let Some(rest) = self.rest() {
            return rest.begin_transaction(prefix, from);
        }
        let name = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
        validate_ref_name(&name)?;
        self.insert_ref(&name, RefKind::Branch, from, Some(owner::current()))?;
        Ok(name)
    }

    fn insert_ref(
        &self,
        name: &str,
        kind: RefKind,
        from: &str,
        owner: Option<String>,
    ) -> Result<()> {
        self.write(|db| {
            if ref_kind(db, from)?.is_none() {
                return Err(no_such_ref(from));
            }
            let inserted = db.execute(
                "INSERT INTO phlo_refs (catalog_name, ref_name, ref_type, source_ref, created_at,
                 owner) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                args![
                    CATALOG_NAME,
                    name,
                    kind.as_str(),
                    from,
                    chrono::Utc::now().timestamp_millis(),
                    &owner,
                ],
            );
            match inserted {
                Err(e) if is_unique_violation(&e) => {
                    return Err(Error::invalid(
                        format!("ref {name} already exists"),
                        "pick another name, or delete the branch first (tags are immutable)",
                    ));
                }
                other => {
                    other.context(|| format!("creating ref {name}"))?;
                }
            }
            pointers::fork(db, from, name)?;
            let message = format!("create {} {name} from {from}", kind.as_str());
            record(db, name, &[], &message, &CommitMeta::default())
        })
    }

    /// Whether `name` is a branch private to a process (a transaction's).
    pub fn is_internal_branch(&self, name: &str) -> Result<bool> {
        if self.rest().is_some() {
            return Ok(false);
        }
        let found = self.read(|db| {
            db.query_first(
                "SELECT owner FROM phlo_refs WHERE catalog_name = ?1 AND ref_name = ?2",
                args![CATALOG_NAME, name],
            )
            .context(|| format!("looking up ref {name}"))
        })?;
        Ok(match found {
            Some(row) => row.opt_text(0)?.is_some(),
            None => false,
        })
    }

    /// The branches or tags users made (internal branches are left out), by name.
    /// A REST catalog has none (its refs are each table's own).
    pub fn list_refs(&self, kind: RefKind) -> Result<Vec<RefInfo>> {
        if self.rest().is_some() {
            return Ok(Vec::new());
        }
        let rows = self.read(|db| {
            db.query(
                "SELECT ref_name, source_ref, created_at FROM phlo_refs
                 WHERE catalog_name = ?1 AND ref_type = ?2 AND owner IS NULL ORDER BY ref_name",
                args![CATALOG_NAME, kind.as_str()],
            )
            .context(|| "listing refs".into())
        })?;
        rows.iter()
            .map(|row| {
                Ok(RefInfo {
                    name: row.text(0)?,
                    kind,
                    source: row.text(1)?,
                    created_at_ms: row.int(2)?,
                })
            })
            .collect()
    }

    /// Deletes a branch (pointers only: files stay, other refs may use them).
    pub fn delete_branch(&self, name: &str) -> Result<()> {
        if let Some(rest) = self.rest().filter(|r| r.in_transaction(name)) {
            rest.end_transaction(name);
            return Ok(());
        }
        self.require_branch(name)?;
        if name == MAIN {
            return Err(Error::invalid(
                "main cannot be deleted",
                "delete other branches",
            ));
        }
        self.write(|db| delete_ref(db, name))
    }

    /// Deletes the internal branches whose owning process is gone (a transaction killed before
    /// it cleaned up); returns their names.
    pub fn remove_abandoned_branches(&self) -> Result<Vec<String>> {
        let owned = self.read(|db| {
            db.query(
                "SELECT ref_name, owner FROM phlo_refs WHERE catalog_name = ?1
                 AND owner IS NOT NULL ORDER BY ref_name",
                args![CATALOG_NAME],
            )
            .context(|| "listing internal branches".into())
        })?;
        let mut removed = Vec::new();
        for row in owned {
            let name = row.text(0)?;
            if owner::is_gone(&row.text(1)?) {
                self.write(|db| delete_ref(db, &name))?;
                removed.push(name);
            }
        }
        Ok(removed)
    }

    /// The tables `source` changed since its fork or last merge, with where each is on the
    /// source, at its fork point and on `into`, read in one transaction.
    pub fn changed_tables(&self, source: &str, into: &str) -> Result<Vec<Changed>> {
        if source == MAIN {
            return Err(Error::invalid(
                "main cannot be merged into another ref",
                "merge branches into main",
            ));
        }
        if self.ref_kind(source)?.is_none() {
            return Err(no_such_ref(source));
        }
        self.require_branch(into)?;
        self.read(|db| {
            let mut changed = Vec::new();
            for (ident, location, base) in source_tables(db, source)? {
                if base.as_deref() == Some(location.as_str()) {
                    continue;
                }
                let target = pointers::get(db, into, &ident)?;
                changed.push(Changed {
                    ident,
                    source: location,
                    base,
                    target,
                });
            }
            Ok(changed)
        })
    }

    /// Applies a merge of `source` into `into` planned from [`Self::changed_tables`], all tables
    /// in one transaction, then records the merged pointers as the source's new fork points (so
    /// the branch can keep working and merge again). `None` (and nothing changed) when either
    /// side moved since the plan was read: plan again.
    pub fn apply_merge(
        &self,
        source: &str,
        into: &str,
        steps: &[MergeStep],
        meta: &CommitMeta,
    ) -> Result<Option<RefMerge>> {
        self.write(|db| {
            if let Some(since) = meta.files_written_since_ms {
                let rebased: Vec<String> = steps
                    .iter()
                    .filter(|s| matches!(s, MergeStep::Rebase { .. }))
                    .map(|s| s.changed().ident.to_string())
                    .collect();
                orphan_fence::check(db, &rebased.join(", "), since)?;
            }
            // Checked for every table before any moves: a stale plan changes nothing.
            for step in steps {
                let changed = step.changed();
                let on_source = pointers::get(db, source, &changed.ident)?;
                let on_target = pointers::get(db, into, &changed.ident)?;
                if on_source.as_ref() != Some(&changed.source) || on_target != changed.target {
                    return Ok(None);
                }
            }
            let mut result = RefMerge::default();
            let mut moved = Vec::new();
            for step in steps {
                let (ident, to) = (&step.changed().ident, step.to());
                match &step.changed().target {
                    None => pointers::insert(db, into, ident, to)?,
                    // The transaction is serial since the check above: the swap cannot miss.
                    Some(from) => {
                        pointers::swap(db, into, ident, from, to)?;
                    }
                }
                match step {
                    MergeStep::Add(_) => &mut result.added,
                    MergeStep::FastForward(_) => &mut result.fast_forwarded,
                    MergeStep::Rebase { .. } => &mut result.rebased,
                }
                .push(ident.to_string());
                db.execute(
                    "UPDATE phlo_ref_tables SET base_location = metadata_location
                     WHERE catalog_name = ?1 AND ref_name = ?2 AND table_namespace = ?3
                     AND table_name = ?4",
                    args![CATALOG_NAME, source, &ident.namespace, &ident.name],
                )
                .context(|| "recording the merge".into())?;
                moved.push((ident.clone(), to.to_string()));
            }
            moved.sort();
            let tables: Vec<(&TableIdent, &str)> =
                moved.iter().map(|(t, l)| (t, l.as_str())).collect();
            let message = format!(
                "merge {source} into {into}: {} fast-forwarded, {} added, {} rebased",
                result.fast_forwarded.len(),
                result.added.len(),
                result.rebased.len()
            );
            record(db, into, &tables, &message, meta)?;
            Ok(Some(result))
        })
    }

    /// Which tables differ between refs `from` and `to`.
    pub fn diff_refs(&self, from: &str, to: &str) -> Result<RefDiff> {
        let (a, b) = (self.pointers(from)?, self.pointers(to)?);
        let mut diff = RefDiff::default();
        for (name, location) in &a {
            match b.get(name) {
                None => diff.removed.push(name.clone()),
                Some(other) if other != location => diff.changed.push(name.clone()),
                Some(_) => {}
            }
        }
        diff.added = b
            .keys()
            .filter(|name| !a.contains_key(*name))
            .cloned()
            .collect();
        Ok(diff)
    }

    /// Every table of a ref with its metadata file, by full name.
    fn pointers(&self, ref_name: &str) -> Result<std::collections::BTreeMap<String, String>> {
        if self.ref_kind(ref_name)?.is_none() {
            return Err(no_such_ref(ref_name));
        }
        Ok(self
            .read(|db| pointers::list(db, ref_name))?
            .into_iter()
            .map(|(ident, location)| (ident.to_string(), location))
            .collect())
    }

    /// A table's metadata file on `ref_name`.
    /// On a REST catalog, the table's one metadata file (every table ref is in it).
    pub fn metadata_location_on(&self, ref_name: &str, ident: &TableIdent) -> Result<String> {
        if let Some(rest) = self.rest() {
            return rest.metadata_location(ident, ref_name);
        }
        self.read(|db| match pointers::get(db, ref_name, ident)? {
            Some(location) => Ok(location),
            None if ref_kind(db, ref_name)?.is_none() => Err(no_such_ref(ref_name)),
            None => Err(Error::NoSuchTable(on_ref(ident, ref_name))),
        })
    }

    /// Registers a new table on branch `ref_name` whose first metadata file is written. On a
    /// branch other than `main` the table has no fork point, so a merge adds it to the target.
    pub fn create_table_on(
        &self,
        ref_name: &str,
        ident: &TableIdent,
        location: &str,
        meta: &CommitMeta,
    ) -> Result<()> {
        self.require_branch(ref_name)?;
        if !self.namespace_exists(&ident.namespace)? {
            return Err(Error::NoSuchNamespace(ident.namespace.clone()));
        }
        self.write(|db| {
            if pointers::get(db, ref_name, ident)?.is_some() {
                return Err(Error::TableAlreadyExists(on_ref(ident, ref_name)));
            }
            pointers::insert(db, ref_name, ident, location)?;
            let message = format!("create table {ident}");
            record(db, ref_name, &[(ident, location)], &message, meta)
        })
    }

    /// Removes a table from branch `ref_name` (its pointer only) and returns its last metadata
    /// file. Other refs keep the table; merges do not carry a drop to the target.
    pub fn drop_table_on(&self, ref_name: &str, ident: &TableIdent) -> Result<String> {
        if let Some(rest) = self.rest() {
            return rest.drop_table_on(ref_name, ident);
        }
        self.require_branch(ref_name)?;
        let location = self.metadata_location_on(ref_name, ident)?;
        self.write(|db| {
            if !pointers::remove(db, ref_name, ident, &location)? {
                return Err(Error::CommitConflict {
                    table: ident.to_string(),
                    message: "the table changed while it was being dropped".into(),
                    hint: "Drop it again".into(),
                });
            }
            let message = format!("drop table {ident}");
            record(db, ref_name, &[], &message, &CommitMeta::default())?;
            Ok(location.clone())
        })
    }

    /// Every table pointer of every ref (`main`, branches, tags, internal branches) with the
    /// pointer it was forked from: what maintenance must keep reachable.
    pub fn all_pointers(&self) -> Result<Vec<Pointer>> {
        self.read(read_all_pointers)
    }

    /// Compare-and-swap of a table's pointer on a branch (tags refuse writes); on success the
    /// commit is logged in the same transaction. Returns `false` (and changes nothing) when the
    /// pointer is no longer `expected`: another writer committed first.
    pub fn swap_metadata_location_on(
        &self,
        ref_name: &str,
        ident: &TableIdent,
        expected: &str,
        new: &str,
        message: &str,
        meta: &CommitMeta,
    ) -> Result<bool> {
        self.require_branch(ref_name)?;
        self.write(|db| {
            if let Some(since) = meta.files_written_since_ms {
                orphan_fence::check(db, &ident.to_string(), since)?;
            }
            if !pointers::swap(db, ref_name, ident, expected, new)? {
                return Ok(false);
            }
            record(db, ref_name, &[(ident, new)], message, meta)?;
            Ok(true)
        })
    }
}

impl Catalog {
    /// The tables of `namespace` on ref `ref_name`, by name.
    pub fn list_tables_on(&self, ref_name: &str, namespace: &str) -> Result<Vec<TableIdent>> {
        if let Some(rest) = self.rest() {
            return rest.list_tables(namespace, ref_name);
        }
        let listed = self.read(|db| match ref_kind(db, ref_name)? {
            None => Err(no_such_ref(ref_name)),
            Some(_) => pointers::list(db, ref_name),
        })?;
        Ok(listed
            .into_iter()
            .map(|(ident, _)| ident)
            .filter(|ident| ident.namespace == namespace)
            .collect())
    }

    /// Compare-and-swap of several tables' pointers on branch `ref_name` (`(table, expected,
    /// new)` each; expected `None`: the table is new on the ref), all or none, logged as one
    /// commit. `false` (nothing changed) when any pointer is not where the caller expects it.
    pub fn swap_metadata_locations_on(
        &self,
        ref_name: &str,
        swaps: &[(TableIdent, Option<String>, String)],
        message: &str,
        meta: &CommitMeta,
    ) -> Result<bool> {
        self.require_branch(ref_name)?;
        self.write(|db| {
            // Checked for every table before any moves: a stale commit changes nothing.
            for (ident, expected, _) in swaps {
                if pointers::get(db, ref_name, ident)? != *expected {
                    return Ok(false);
                }
            }
            for (ident, expected, new) in swaps {
                // The transaction is serialized with other writers since the check above:
                // neither can miss.
                match expected {
                    Some(expected) => {
                        pointers::swap(db, ref_name, ident, expected, new)?;
                    }
                    None => pointers::insert(db, ref_name, ident, new)?,
                }
            }
            let tables: Vec<(&TableIdent, &str)> =
                swaps.iter().map(|(t, _, new)| (t, new.as_str())).collect();
            record(db, ref_name, &tables, message, meta)?;
            Ok(true)
        })
    }

    /// Renames a table on branch `ref_name` (its pointer only: files stay where they are; other
    /// refs keep the old name).
    pub fn rename_table_on(
        &self,
        ref_name: &str,
        from: &TableIdent,
        to: &TableIdent,
        meta: &CommitMeta,
    ) -> Result<()> {
        self.require_branch(ref_name)?;
        if !self.namespace_exists(&to.namespace)? {
            return Err(Error::NoSuchNamespace(to.namespace.clone()));
        }
        self.write(|db| {
            let location = pointers::get(db, ref_name, from)?
                .ok_or_else(|| Error::NoSuchTable(on_ref(from, ref_name)))?;
            if pointers::get(db, ref_name, to)?.is_some() {
                return Err(Error::TableAlreadyExists(on_ref(to, ref_name)));
            }
            pointers::remove(db, ref_name, from, &location)?;
            pointers::insert(db, ref_name, to, &location)?;
            let message = format!("rename table {from} to {to}");
            record(db, ref_name, &[(to, &location)], &message, meta)
        })
    }
}

/// [`Catalog::all_pointers`] in transaction `db`.
pub(super) fn read_all_pointers(db: &mut dyn Sql) -> Result<Vec<Pointer>> {
    let sql = format!(
        "{} UNION ALL
         SELECT t.ref_name, r.ref_type, t.table_namespace, t.table_name,
         t.metadata_location, t.base_location FROM phlo_ref_tables t JOIN phlo_refs r
         ON r.catalog_name = t.catalog_name AND r.ref_name = t.ref_name
         WHERE t.catalog_name = ?1",
        pointers::MAIN_POINTERS
    );
    let rows = db
        .query(&sql, args![CATALOG_NAME])
        .context(|| "reading every ref's tables".into())?;
    rows.iter()
        .map(|row| {
            Ok(Pointer {
                ref_name: row.text(0)?,
                kind: RefKind::parse(&row.text(1)?),
                ident: TableIdent {
                    namespace: row.text(2)?,
                    name: row.text(3)?,
                },
                metadata_location: row.text(4)?,
                base_location: row.opt_text(5)?,
            })
        })
        .collect()
}

/// Who owns an internal branch: the process (and boot) that created it, so maintenance can
/// tell when it is gone. Linux reads `/proc`; elsewhere an owner counts as gone after a day.
mod owner {
    const ABANDONED_AFTER_MS: i64 = 24 * 3600 * 1000;

    /// `{boot id}:{pid}:{process start time}:{created ms}`.
    pub fn current() -> String {
        let pid = std::process::id();
        format!(
            "{}:{pid}:{}:{}",
            boot_id().unwrap_or_default(),
            start_time(pid).unwrap_or_default(),
            chrono::Utc::now().timestamp_millis()
        )
    }

    pub fn is_gone(owner: &str) -> bool {
        let mut parts = owner.split(':');
        let (Some(boot), Some(pid), Some(started), Some(created)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        match (boot_id(), pid.parse::<u32>()) {
            (Some(now), Ok(pid)) if !boot.is_empty() => {
                // Another boot, or a pid that is free or belongs to a later process.
                now != boot || start_time(pid).as_deref() != Some(started)
            }
            _ => created.parse::<i64>().is_ok_and(|created| {
                chrono::Utc::now().timestamp_millis() - created > ABANDONED_AFTER_MS
            }),
        }
    }

    fn boot_id() -> Option<String> {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        Some(id.trim().to_string())
    }

    /// Field 22 of `/proc/<pid>/stat` (after the parenthesised command name).
    fn start_time(pid: u32) -> Option<String> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after_name = &stat[stat.rfind(')')? + 1..];
        after_name.split_whitespace().nth(19).map(String::from)
    }
}

fn ref_kind(db: &mut dyn Sql, name: &str) -> Result<Option<RefKind>> {
    if name == MAIN {
        return Ok(Some(RefKind::Branch));
    }
    let found = db
        .query_first(
            "SELECT ref_type FROM phlo_refs WHERE catalog_name = ?1 AND ref_name = ?2",
            args![CATALOG_NAME, name],
        )
        .context(|| format!("looking up ref {name}"))?;
    found
        .map(|row| row.text(0).map(|kind| RefKind::parse(&kind)))
        .transpose()
}

fn delete_ref(db: &mut dyn Sql, name: &str) -> Result<()> {
    for sql in [
        "DELETE FROM phlo_ref_tables WHERE catalog_name = ?1 AND ref_name = ?2",
        "DELETE FROM phlo_refs WHERE catalog_name = ?1 AND ref_name = ?2",
    ] {
        db.execute(sql, args![CATALOG_NAME, name])
            .context(|| format!("deleting {name}"))?;
    }
    record(
        db,
        name,
        &[],
        &format!("delete branch {name}"),
        &CommitMeta::default(),
    )
}

/// `ident`, saying which ref when it is not `main`.
fn on_ref(ident: &TableIdent, ref_name: &str) -> String {
    match ref_name {
        MAIN => ident.to_string(),
        _ => format!("{ident} (on {ref_name})"),
    }
}

fn no_such_ref(name: &str) -> Error {
    Error::invalid(
        format!("ref {name} does not exist"),
        "create it with create_branch() or create_tag()",
    )
}

/// The source's tables with their pointers and fork points.
fn source_tables(
    db: &mut dyn Sql,
    source: &str,
) -> Result<Vec<(TableIdent, String, Option<String>)>> {
    let rows = db
        .query(
            "SELECT table_namespace, table_name, metadata_location, base_location FROM phlo_ref_tables
             WHERE catalog_name = ?1 AND ref_name = ?2 ORDER BY table_namespace, table_name",
            args![CATALOG_NAME, source],
        )
        .context(|| "reading the source's tables".into())?;
    rows.iter().map(source_table).collect()
}

fn source_table(row: &Row) -> Result<(TableIdent, String, Option<String>)> {
    let ident = TableIdent {
        namespace: row.text(0)?,
        name: row.text(1)?,
    };
    Ok((ident, row.text(2)?, row.opt_text(3)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> TableIdent {
        TableIdent {
            namespace: "raw".into(),
            name: name.into(),
        }
    }

    /// Moves table `name` on branch `dev` from metadata file `from` to `to`.
    fn commit_on_dev(catalog: &Catalog, name: &str, from: &str, to: &str) {
        let meta = CommitMeta::default();
        let moved = catalog.swap_metadata_location_on("dev", &t(name), from, to, "test", &meta);
        assert!(moved.unwrap(), "{name} on dev was not at {from}");
    }

    /// Merges `source` into `into` when no table changed on both sides.
    fn merge(catalog: &Catalog, source: &str, into: &str) -> Result<RefMerge> {
        let mut steps = Vec::new();
        for changed in catalog.changed_tables(source, into)? {
            steps.push(match &changed.target {
                None => MergeStep::Add(changed),
                Some(_) if changed.target_unmoved() => MergeStep::FastForward(changed),
                Some(_) => {
                    return Err(Error::CommitConflict {
                        table: changed.ident.to_string(),
                        message: "changed on both sides".into(),
                        hint: "Re-run the branch's writes on a branch forked from the target \
                               now"
                        .into(),
                    });
                }
            });
        }
        Ok(catalog
            .apply_merge(source, into, &steps, &CommitMeta::default())?
            .expect("nothing moved"))
    }

    fn catalog() -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open_sqlite(&dir.path().join("catalog.db")).unwrap();
        catalog.create_namespace("raw").unwrap();
        catalog
            .create_table_on(MAIN, &t("a"), "a0", &CommitMeta::default())
            .unwrap();
        catalog
            .create_table_on(MAIN, &t("b"), "b0", &CommitMeta::default())
            .unwrap();
        (dir, catalog)
    }

    #[test]
    fn branches_are_isolated_and_fast_forward_atomically() {
        let (_dir, catalog) = catalog();
        catalog.create_ref("dev", RefKind::Branch, MAIN).unwrap();
        commit_on_dev(&catalog, "a", "a0", "a1");
        // A stale expected pointer changes nothing.
        assert!(
            !catalog
                .swap_metadata_location_on(
                    "dev",
                    &t("a"),
                    "a0",
                    "a2",
                    "test",
                    &CommitMeta::default()
                )
                .unwrap()
        );
        assert_eq!(catalog.metadata_location_on(MAIN, &t("a")).unwrap(), "a0");
        let merged = merge(&catalog, "dev", MAIN).unwrap();
        assert_eq!(merged.fast_forwarded, vec!["raw.a".to_string()]);
        assert_eq!(catalog.metadata_location(&t("a")).unwrap(), "a1");
        assert_eq!(catalog.metadata_location(&t("b")).unwrap(), "b0");
    }

    #[test]
    fn a_conflict_on_one_table_merges_none() {
        let (_dir, catalog) = catalog();
        catalog.create_ref("dev", RefKind::Branch, MAIN).unwrap();
        commit_on_dev(&catalog, "a", "a0", "a1");
        commit_on_dev(&catalog, "b", "b0", "b1");
        catalog
            .swap_metadata_location(&t("b"), "b0", "b-main")
            .unwrap();
        let err = merge(&catalog, "dev", MAIN).unwrap_err();
        assert_eq!(err.code(), "commit_conflict");
        assert!(err.to_string().contains("raw.b"), "{err}");
        assert_eq!(
            catalog.metadata_location(&t("a")).unwrap(),
            "a0",
            "all or nothing"
        );
    }

    #[test]
    fn diff_compares_pointers() {
        let (_dir, catalog) = catalog();
        catalog.create_ref("dev", RefKind::Branch, MAIN).unwrap();
        commit_on_dev(&catalog, "a", "a0", "a1");
        catalog
            .create_table_on(MAIN, &t("c"), "c0", &CommitMeta::default())
            .unwrap();
        let diff = catalog.diff_refs(MAIN, "dev").unwrap();
        assert_eq!(diff.changed, vec!["raw.a".to_string()]);
        assert_eq!(diff.removed, vec!["raw.c".to_string()]);
        assert!(diff.added.is_empty());
        assert_eq!(
            catalog.diff_refs("dev", MAIN).unwrap().added,
            vec!["raw.c".to_string()]
        );
    }

    #[test]
    fn tags_refuse_writes_and_names_are_checked() {
        let (_dir, catalog) = catalog();
        catalog.create_ref("v1", RefKind::Tag, MAIN).unwrap();
        let err = catalog
            .swap_metadata_location_on("v1", &t("a"), "a0", "a1", "test", &CommitMeta::default())
            .unwrap_err();
        assert_eq!(err.code(), "invalid_input");
        for bad in ["", "..", "a/../b", "x y", "nul\u{0}"] {
            assert!(
                catalog.create_ref(bad, RefKind::Branch, MAIN).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(
            catalog
                .create_ref(MAIN, RefKind::Branch, "v1")
                .unwrap_err()
                .code(),
            "invalid_input"
        );
        assert_eq!(catalog.list_refs(RefKind::Tag).unwrap()[0].name, "v1");
        assert!(catalog.list_refs(RefKind::Branch).unwrap().is_empty());
    }

    #[test]
    fn a_merge_planned_before_the_target_moved_applies_nothing() {
        let (_dir, catalog) = catalog();
        catalog.create_ref("dev", RefKind::Branch, MAIN).unwrap();
        commit_on_dev(&catalog, "a", "a0", "a1");
        commit_on_dev(&catalog, "b", "b0", "b1");
        let steps: Vec<MergeStep> = catalog
            .changed_tables("dev", MAIN)
            .unwrap()
            .into_iter()
            .map(MergeStep::FastForward)
            .collect();
        // Only the second table moved: the first must not move either.
        catalog
            .swap_metadata_location(&t("b"), "b0", "b-main")
            .unwrap();
        let applied = catalog.apply_merge("dev", MAIN, &steps, &CommitMeta::default());
        assert_eq!(applied.unwrap(), None, "stale: plan again");
        assert_eq!(catalog.metadata_location(&t("a")).unwrap(), "a0");
        assert_eq!(catalog.metadata_location(&t("b")).unwrap(), "b-main");
    }

    #[test]
    fn internal_branches_are_unlisted_and_removed_once_their_process_is_gone() {
        let (_dir, catalog) = catalog();
        let live = catalog.create_internal_branch("tx/", MAIN).unwrap();
        let dead = catalog.create_internal_branch("tx/", MAIN).unwrap();
        assert!(catalog.list_refs(RefKind::Branch).unwrap().is_empty());
        assert_eq!(catalog.ref_kind(&live).unwrap(), Some(RefKind::Branch));
        // A pid no process has (above Linux's pid_max), from this boot.
        let owner = owner::current();
        let mut parts: Vec<&str> = owner.split(':').collect();
        parts[1] = "4294967295";
        let owner = parts.join(":");
        catalog
            .write(|db| {
                db.execute(
                    "UPDATE phlo_refs SET owner = ?1 WHERE ref_name = ?2",
                    args![&owner, &dead],
                )
                .context(|| "test".into())
            })
            .unwrap();
        assert_eq!(
            catalog.remove_abandoned_branches().unwrap(),
            vec![dead.clone()]
        );
        assert_eq!(catalog.ref_kind(&dead).unwrap(), None);
        assert_eq!(catalog.ref_kind(&live).unwrap(), Some(RefKind::Branch));
    }
}
