//! phlo's transactions (`lh.transaction()`) on a REST catalog. A REST catalog has no
//! catalog-wide branch to write to in private, so the transaction's "branch" (`tx/<uuid>`) lives
//! in this client only: each table's commits are staged here (the same requirements and updates
//! a single-table commit sends) and the transaction's reads see them; at the end every table's
//! change goes to the server in one `POST .../transactions/commit`, which applies all or none.
//! When another writer moved a table first (409), every table is reloaded: one that did not
//! move keeps its change, one that only gained appends here has them re-applied on its new head
//! (as a single-table append retries), anything else is a `CommitConflict` and nothing lands.
//! Each snapshot asserts the schema it was planned under: when another engine changed the
//! schema, even without moving the table, the re-check decides ([`super::schema_recheck`]).
//! A table created in the transaction is a staged create (`stage-create`: the server answers
//! its metadata and keeps nothing); its entry in the commit asserts that the table does not
//! exist yet and carries the whole table as updates, as PyIceberg's create transaction does.
//! Files that no landed snapshot references are removed: all of them when the transaction
//! does not land (or is discarded), the first attempt's manifests when it landed re-applied.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use iceberg::io::FileIO;
use iceberg::spec::{Operation, Snapshot, TableMetadata};
use iceberg::{TableCreation, TableRequirement, TableUpdate};

use super::RestCatalog;
use super::commit::{Committed, TableChange};
use super::publish::{metadata_updates, planned_guard, ref_guard, schema_guard, snapshot_updates};
use super::schema_recheck::{files_fit, under_schema};
use crate::branch_merge::inserted_keys_collide;
use crate::catalog::{MAIN, RefMerge, TableIdent};
use crate::error::{Context, Error, Result};
use crate::tables::LoadedTable;
use crate::tables::commit::{
    SnapshotChange, backoff, files_added_since, prepare_rest_snapshot, same_table,
};
use crate::tables::discard::{Discard, discard_snapshots};

/// The endpoint, as servers list it in `GET /v1/config`.
const ENDPOINT: &str = "POST /v1/{prefix}/transactions/commit";

/// Attempts before a transaction that keeps losing to other writers gives up.
const MAX_ATTEMPTS: u32 = 16;

/// The way out of a transaction another writer's change refused.
const RUN_AGAIN: &str = "Run the transaction again: it then reads the other writer's change";

/// The file IO for one table's files: with the storage credentials the server handed out for
/// it (`Lakehouse::io_for`); the connection's own IO may have none.
pub type TableIo<'a> = &'a (dyn Fn(&LoadedTable) -> Result<FileIO> + Sync);

/// The open transactions of one connection, by name.
#[derive(Default)]
pub(super) struct Transactions(Mutex<HashMap<String, Staging>>);

impl std::fmt::Debug for Transactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_list().entries(open.keys()).finish()
    }
}

struct Staging {
    /// The table ref the transaction commits to.
    target: String,
    tables: BTreeMap<String, StagedTable>,
}

#[derive(Clone)]
struct StagedTable {
    /// The table on the target as the transaction first read it.
    base: LoadedTable,
    /// The table on the target as the commit requires it: `base`, or where another writer
    /// moved it and the transaction's appends were re-applied.
    guard: LoadedTable,
    /// `base` with the transaction's changes: what its reads see.
    head: LoadedTable,
    /// The updates that make `base` into `head`, on the target ref.
    updates: Vec<TableUpdate>,
    /// A schema or property change is among them (only snapshots can be re-applied).
    metadata_changed: bool,
    /// The transaction creates the table: `base` is the server's staged metadata.
    created: bool,
    /// Every snapshot staged or re-applied: what to remove if the transaction cannot land
    /// (those its commit does not carry are first attempts, removed once it landed).
    written: Vec<Snapshot>,
}

impl StagedTable {
    /// The change on table ref `target` (the one holding the transaction's target).
    fn change<'a>(&'a self, target: &str) -> TableChange<'a> {
        let old = &self.guard.metadata;
        let head = self.guard.snapshot_for_ref(MAIN).map(|s| s.snapshot_id());
        let mut requirements = match self.created {
            true => vec![TableRequirement::NotExist],
            false => ref_guard(old, target, head),
        };
        if self.metadata_changed && !self.created {
            requirements.extend(schema_guard(old));
        }
        // Its snapshots were planned under the guard's spec and schema; another engine may
        // change either without moving the ref (the re-check after a 409 decides).
        if !self.created && self.adds_snapshot() {
            let planned = planned_guard(old).into_iter();
            let new: Vec<_> = planned.filter(|r| !requirements.contains(r)).collect();
            requirements.extend(new);
        }
        TableChange {
            ident: &self.base.ident,
            requirements,
            updates: self.updates.clone(),
        }
    }

    /// Makes the staged snapshots name schema `schema_id`, another engine's, which their files
    /// fit (`files_fit`).
    fn name_schema(&mut self, schema_id: i32) {
        for update in &mut self.updates {
            if let TableUpdate::AddSnapshot { snapshot } = update {
                *snapshot = under_schema(snapshot, schema_id);
            }
        }
    }

    fn adds_snapshot(&self) -> bool {
        self.updates
            .iter()
            .any(|u| matches!(u, TableUpdate::AddSnapshot { .. }))
    }

    /// Whether everything staged is appends, which another writer's commits cannot affect.
    fn only_appends(&self) -> bool {
        !self.metadata_changed
            && !self.created
            && self.updates.iter().all(|u| match u {
                TableUpdate::AddSnapshot { snapshot } => {
                    snapshot.summary().operation == Operation::Append
                }
                TableUpdate::SetSnapshotRef { .. } => true,
                _ => false,
            })
    }
}

impl RestCatalog {
    /// Opens a transaction that will commit to table ref `target`, named `{prefix}<uuid>`.
    /// Refused when the server says it has no multi-table commits.
    pub fn begin_transaction(&self, prefix: &str, target: &str) -> Result<String> {
        if self.config.serves(ENDPOINT) == Some(false) {
            return Err(self.no_transactions());
        }
        let name = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
        let staging = Staging {
            target: target.to_string(),
            tables: BTreeMap::new(),
        };
        self.open().insert(name.clone(), staging);
        Ok(name)
    }

    /// Whether `name` is a transaction open on this connection.
    pub fn in_transaction(&self, name: &str) -> bool {
        self.open().contains_key(name)
    }

    /// Forgets a transaction (committed or not); staged changes that did not land are dropped.
    pub fn end_transaction(&self, name: &str) {
        self.open().remove(name);
    }

    /// Ends transaction `name` without committing it, removing every file its writes left
    /// (each table's with its own IO, `io_for`).
    pub async fn discard_transaction(&self, io_for: TableIo<'_>, name: &str) -> Result<()> {
        let staging = self.open().remove(name).ok_or_else(|| closed(name))?;
        for table in staging.tables.values() {
            discard(io_for, table, &table.written).await;
        }
        Ok(())
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<String, Staging>> {
        self.transactions
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn no_transactions(&self) -> Error {
        Error::config(
            format!(
                "the REST catalog at {} does not commit several tables at once (it does not \
                 serve {ENDPOINT}), so phlo's transaction cannot land atomically there",
                self.http.uri()
            ),
            "write the tables one by one, or keep them in a sqlite:/// or postgresql:// \
             catalog (served to other engines by `phlo catalog serve`, which commits \
             transactions)",
        )
    }

    /// Refuses a create inside a transaction on a server that does not list
    /// `/transactions/commit` among its endpoints: whether it creates a staged table there
    /// cannot be known before the commit (SeaweedFS 4.48 stages the create but answers the
    /// commit with "table does not exist"), and a failure then would come after every write.
    fn no_staged_creates(&self, ident: &TableIdent) -> Error {
        Error::config(
            format!(
                "cannot create {ident} inside a transaction on the REST catalog at {}: it does \
                 not list {ENDPOINT} among its endpoints (GET /v1/config), so phlo cannot know \
                 that the commit will create the table with the transaction's other changes \
                 (SeaweedFS 4.48, for one, does not)",
                self.http.uri()
            ),
            "create the table before the transaction (lh.create_table), then write it inside \
             the transaction",
        )
    }

    /// The table as transaction `name` sees it: its staged changes, else the target's table
    /// (read now, and kept as the base the transaction's changes require).
    pub(super) fn load_staged(&self, ident: &TableIdent, name: &str) -> Result<LoadedTable> {
        let key = ident.to_string();
        let target = match self.open().get(name) {
            Some(staging) => match staging.tables.get(&key) {
                Some(staged) => return Ok(staged.head.clone()),
                None => staging.target.clone(),
            },
            None => return Err(closed(name)),
        };
        let base = self.view(ident, &target, self.load_table(ident, &target)?)?;
        self.require_branch(&base)?;
        let head = LoadedTable {
            ref_name: name.to_string(),
            ..base.clone()
        };
        let mut open = self.open();
        let staging = open.get_mut(name).ok_or_else(|| closed(name))?;
        let staged = staging.tables.entry(key).or_insert(StagedTable {
            guard: base.clone(),
            base,
            head,
            updates: Vec::new(),
            metadata_changed: false,
            created: false,
            written: Vec::new(),
        });
        Ok(staged.head.clone())
    }

    /// Stages the creation of `ident` in transaction `name`: the server answers the new
    /// table's metadata and keeps nothing; the table exists once the transaction commits.
    pub(super) fn stage_create(
        &self,
        ident: &TableIdent,
        name: &str,
        creation: &TableCreation,
    ) -> Result<LoadedTable> {
        let key = ident.to_string();
        match self.open().get(name) {
            None => return Err(closed(name)),
            Some(staging) if staging.target != MAIN && !self.config.catalog_branches() => {
                return Err(Error::invalid(
                    format!(
                        "the transaction on {} cannot create {ident}: on a REST catalog a table \
                         is created on main",
                        staging.target
                    ),
                    "create the table in a transaction on main (lh.transaction(\"main\"))",
                ));
            }
            Some(staging) if staging.tables.contains_key(&key) => {
                return Err(Error::TableAlreadyExists(key));
            }
            Some(_) if self.config.serves(ENDPOINT) != Some(true) => {
                return Err(self.no_staged_creates(ident));
            }
            Some(_) => {}
        }
        let target = self.open().get(name).map(|t| t.target.clone());
        let target = target.ok_or_else(|| closed(name))?;
        let created = self.create_table(ident, &target, creation, true)?;
        let base = self.view(ident, &target, created)?;
        let staged = StagedTable {
            guard: base.clone(),
            head: LoadedTable {
                ref_name: name.to_string(),
                ..base.clone()
            },
            updates: creation_updates(&base.metadata),
            base,
            metadata_changed: false,
            created: true,
            written: Vec::new(),
        };
        let mut open = self.open();
        let staging = open.get_mut(name).ok_or_else(|| closed(name))?;
        if staging.tables.contains_key(&key) {
            return Err(Error::TableAlreadyExists(key));
        }
        let head = staged.head.clone();
        staging.tables.insert(key, staged);
        Ok(head)
    }

    /// Stages `snapshot` as the new head of the transaction's table. `None` when another
    /// write of the same transaction staged first (the writer reloads and tries again).
    pub(super) fn stage_snapshot(
        &self,
        table: &LoadedTable,
        snapshot: Snapshot,
        branch: &str,
    ) -> Result<Option<LoadedTable>> {
        if branch != MAIN {
            return Err(Error::invalid(
                format!(
                    "a transaction on a REST catalog writes {} on its target only, not on {branch}",
                    table.ident
                ),
                "write to the other branch outside the transaction",
            ));
        }
        self.restage(table, |staged| {
            let target = self.table_ref(&staged.base, MAIN).to_string();
            let next = (*staged.head.metadata)
                .clone()
                .into_builder(None)
                .set_branch_snapshot(snapshot.clone(), MAIN)
                .and_then(|b| b.build())
                .context(|| format!("staging a snapshot of {}", table.ident))?
                .metadata;
            staged.written.push(snapshot.clone());
            staged.updates.extend(snapshot_updates(snapshot, target));
            Ok(next)
        })
    }

    /// Stages a schema or property change of the transaction's table.
    pub(super) fn stage_metadata(
        &self,
        table: &LoadedTable,
        next: &TableMetadata,
    ) -> Result<Option<LoadedTable>> {
        self.restage(table, |staged| {
            staged
                .updates
                .extend(metadata_updates(&staged.head.metadata, next));
            staged.metadata_changed = true;
            Ok(next.clone())
        })
    }

    /// Applies `step` to the staged table `table` was read from, if it is still its head.
    fn restage(
        &self,
        table: &LoadedTable,
        step: impl FnOnce(&mut StagedTable) -> Result<TableMetadata>,
    ) -> Result<Option<LoadedTable>> {
        let mut open = self.open();
        let staging = open
            .get_mut(&table.ref_name)
            .ok_or_else(|| closed(&table.ref_name))?;
        let Some(staged) = staging.tables.get_mut(&table.ident.to_string()) else {
            return Err(closed(&table.ref_name));
        };
        // The writer's table must be the staged head (as loaded, or equal to it).
        let current = Arc::ptr_eq(&staged.head.metadata, &table.metadata)
            || staged.head.metadata == table.metadata;
        if !current {
            return Ok(None);
        }
        let next = step(staged)?;
        staged.head.metadata = Arc::new(next);
        Ok(Some(staged.head.clone()))
    }

    /// Commits transaction `name` to `into`: every table it changed, at once. When it
    /// cannot land (a conflict, a refusal), the files its snapshots wrote are removed; when it
    /// may have landed, they are kept. Each table's files are read, written and removed with
    /// its own IO (`io_for`: the credentials the server handed out for it).
    pub async fn commit_transaction(
        &self,
        io_for: TableIo<'_>,
        name: &str,
        into: &str,
    ) -> Result<RefMerge> {
        let (target, mut tables): (String, Vec<StagedTable>) = {
            let open = self.open();
            let staging = open.get(name).ok_or_else(|| closed(name))?;
            let changed = staging.tables.values().filter(|t| !t.updates.is_empty());
            (staging.target.clone(), changed.cloned().collect())
        };
        if target != into {
            return Err(Error::invalid(
                format!("transaction {name} writes to {target}, not to {into}"),
                "commit it into the ref it was opened on",
            ));
        }
        let committed = self.commit_staged(io_for, name, &target, &mut tables).await;
        match &committed {
            // Only the snapshots of the commit's updates landed: the others were first
            // attempts, re-applied on another writer's head, whose data files are now the
            // re-applied snapshot's.
            Ok(_) => {
                for table in &tables {
                    let landed = |s: &&Snapshot| {
                        table.updates.iter().any(|u| matches!(u, TableUpdate::AddSnapshot { snapshot } if snapshot.snapshot_id() == s.snapshot_id()))
                    };
                    let superseded: Vec<&Snapshot> =
                        table.written.iter().filter(|s| !landed(s)).collect();
                    if let Ok(io) = io_for(&table.guard) {
                        let metadata = &table.head.metadata;
                        discard_snapshots(&io, metadata, superseded, Discard::ManifestsOnly).await;
                    }
                }
            }
            Err(e) if !e.commit_may_have_landed() => {
                for table in &tables {
                    discard(io_for, table, &table.written).await;
                }
            }
            Err(_) => {}
        }
        committed
    }

    async fn commit_staged(
        &self,
        io_for: TableIo<'_>,
        name: &str,
        target: &str,
        tables: &mut [StagedTable],
    ) -> Result<RefMerge> {
        let table_ref = self.config.table_ref(target);
        let mut rebased = Vec::new();
        for attempt in 0..MAX_ATTEMPTS {
            if tables.is_empty() {
                break;
            }
            let changes: Vec<TableChange<'_>> =
                tables.iter().map(|t| t.change(table_ref)).collect();
            if let Committed::Landed(()) = self.commit_tables(target, &changes)? {
                let names = |created: bool| {
                    let named = tables.iter().filter(move |t| t.created == created);
                    named.map(|t| t.base.ident.to_string())
                };
                return Ok(RefMerge {
                    fast_forwarded: names(false).filter(|n| !rebased.contains(n)).collect(),
                    added: names(true).collect(),
                    rebased,
                });
            }
            tokio::time::sleep(backoff(attempt)).await;
            for staged in tables.iter_mut() {
                let name = staged.base.ident.to_string();
                if self.reapply(io_for, staged).await? && !rebased.contains(&name) {
                    rebased.push(name);
                }
            }
        }
        match tables.is_empty() {
            true => Ok(RefMerge::default()),
            false => Err(Error::CommitConflict {
                table: tables
                    .iter()
                    .map(|t| t.base.ident.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                message: format!(
                    "transaction {name} lost the commit race {MAX_ATTEMPTS} times in a row"
                ),
                hint: "Run the transaction again when fewer writers commit to its tables".into(),
            }),
        }
    }

    /// After a lost race: reloads the table and, when another writer moved it, re-applies the
    /// transaction's appends on its new head (`true`), or refuses anything else. A schema
    /// another engine changed meanwhile is re-checked against the transaction's files first.
    async fn reapply(&self, io_for: TableIo<'_>, staged: &mut StagedTable) -> Result<bool> {
        let ident = &staged.guard.ident;
        let target = staged.guard.ref_name.clone();
        if staged.created {
            return match self.load_table(ident, &target) {
                Err(Error::NoSuchTable(_)) => Ok(false),
                Err(e) => Err(e),
                Ok(_) => Err(Error::CommitConflict {
                    table: ident.to_string(),
                    message: format!(
                        "another writer created {ident} while the transaction that creates it \
                         ran; nothing was committed"
                    ),
                    hint: "Drop or rename one of them, then run the transaction again".into(),
                }),
            };
        }
        let newer = self.view(ident, &target, self.load_table(ident, &target)?)?;
        let head = |t: &LoadedTable| t.snapshot_for_ref(MAIN).map(|s| s.snapshot_id());
        // A table created again under the name is not the one the transaction changed.
        same_table(&staged.guard, &newer)?;
        let spec = staged.base.metadata.default_partition_spec_id();
        if staged.adds_snapshot() && newer.metadata.default_partition_spec_id() != spec {
            return Err(Error::CommitConflict {
                table: ident.to_string(),
                message: format!(
                    "another writer changed the partition spec of {ident} while the \
                     transaction ran, and its files were written under the old one; nothing \
                     was committed"
                ),
                hint: RUN_AGAIN.into(),
            });
        }
        let schema_id = newer.metadata.current_schema_id();
        let schema_moved = schema_id != staged.guard.metadata.current_schema_id();
        if schema_moved {
            let written = staged.head.metadata.current_schema();
            let now = newer.metadata.current_schema();
            files_fit(ident, written, now, staged.metadata_changed)?;
        }
        if head(&newer) == head(&staged.guard) {
            if schema_moved {
                staged.name_schema(schema_id);
                staged.guard = newer;
            }
            return Ok(false);
        }
        if !staged.only_appends() {
            return Err(Error::CommitConflict {
                table: ident.to_string(),
                message: format!(
                    "another writer changed {ident} on {target} while the transaction ran, and \
                     the transaction's changes to it are not only appends, so they cannot be \
                     re-applied; nothing was committed"
                ),
                hint: RUN_AGAIN.into(),
            });
        }
        // The reload refreshed the table's handed-out credentials (they may be short-lived).
        let io = io_for(&newer)?;
        let added = files_added_since(&io, &staged.base, &staged.head, MAIN).await?;
        // A merge that only inserted is an append too, but its keys may be the other writer's.
        let tables = (&staged.base, &staged.head, &newer);
        if let Some(reason) = inserted_keys_collide(&io, tables, &added).await? {
            return Err(Error::CommitConflict {
                table: ident.to_string(),
                message: format!(
                    "another writer changed {ident} on {target} while the transaction ran: \
                     {}; nothing was committed",
                    reason.what
                ),
                hint: RUN_AGAIN.into(),
            });
        }
        let change = SnapshotChange {
            branch: MAIN.to_string(),
            added_files: added,
            ..Default::default()
        };
        let snapshot = prepare_rest_snapshot(&io, &newer, &change).await?;
        staged.written.push(snapshot.clone());
        staged.updates = snapshot_updates(snapshot, self.config.table_ref(&target).to_string());
        staged.guard = newer;
        Ok(true)
    }
}

/// Removes what `snapshots` of the staged table wrote: none of it is on the server. Best
/// effort: without an IO for the table, the files stay (unreferenced).
async fn discard(io_for: TableIo<'_>, table: &StagedTable, snapshots: &[Snapshot]) {
    if let Ok(io) = io_for(&table.guard) {
        discard_snapshots(&io, &table.head.metadata, snapshots, Discard::Everything).await;
    }
}

/// A staged create's table as updates (PyIceberg's create transaction sends the same): its
/// uuid, format version, schema, spec, sort order, location and properties, each made current.
fn creation_updates(metadata: &TableMetadata) -> Vec<TableUpdate> {
    vec![
        TableUpdate::AssignUuid {
            uuid: metadata.uuid(),
        },
        TableUpdate::UpgradeFormatVersion {
            format_version: metadata.format_version(),
        },
        TableUpdate::AddSchema {
            schema: metadata.current_schema().as_ref().clone(),
        },
        TableUpdate::SetCurrentSchema { schema_id: -1 },
        TableUpdate::AddSpec {
            spec: metadata
                .default_partition_spec()
                .as_ref()
                .clone()
                .into_unbound(),
        },
        TableUpdate::SetDefaultSpec { spec_id: -1 },
        TableUpdate::AddSortOrder {
            sort_order: metadata.default_sort_order().as_ref().clone(),
        },
        TableUpdate::SetDefaultSortOrder { sort_order_id: -1 },
        TableUpdate::SetLocation {
            location: metadata.location().to_string(),
        },
        TableUpdate::SetProperties {
            updates: metadata.properties().clone(),
        },
    ]
}

fn closed(name: &str) -> Error {
    Error::invalid(
        format!("transaction {name} is not open on this REST catalog connection"),
        "write through the transaction inside its `with lh.transaction()` block",
    )
}
