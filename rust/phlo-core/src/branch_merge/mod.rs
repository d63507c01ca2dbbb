//! Merging a branch into another (docs/architecture.md, "The versioned catalog"): plan from one
//! consistent read of both refs — tables changed on the source only fast-forward, tables new on
//! the source are added, tables changed on both sides are rebased (the source's changes
//! re-applied on the target, schema changes included) — then apply every table in one catalog
//! transaction. When either ref moved in between, the plan is made again (bounded, with
//! jittered backoff): concurrent publishers wait their turn instead of failing. Only a real
//! overlap is a `CommitConflict`, and then nothing is merged.

mod rebase;
mod rewritten;
mod schema;
mod settings;
mod shared_keys;

pub use rebase::UNIQUE_KEY_PROPERTY;
pub(crate) use rebase::inserted_keys_collide;

use futures::future::try_join_all;
use iceberg::io::FileIO;

use crate::catalog::{Catalog, Changed, CommitMeta, MAIN, MergeStep, RefMerge};
use crate::catalog::{ref_copies, swept};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::tables::commit::{AttemptFiles, backoff};
use crate::tables::table::now_ms;
use rebase::{Rebased, rebase};

/// Plans made and lost to another writer before the merge gives up.
const MAX_ATTEMPTS: u32 = 32;

/// Files checked at once before a fast-forward (object stores answer each request slowly, in
/// parallel well).
const CONCURRENCY: usize = 16;

pub async fn merge_branch(
    catalog: &Catalog,
    io: &FileIO,
    source: &str,
    into: &str,
    meta: &CommitMeta,
) -> Result<RefMerge> {
    for attempt in 0..MAX_ATTEMPTS {
        let started = now_ms();
        let mut steps = Vec::new();
        let mut prepared: Vec<AttemptFiles> = Vec::new();
        let mut conflicts = Vec::new();
        for changed in catalog.changed_tables(source, into)? {
            let step = match (&changed.base, &changed.target) {
                (None, None) => MergeStep::Add(changed),
                // Adding it back would undo the drop with the old table's rows.
                (Some(_), None) => {
                    let reason = format!("dropped on {into} since the fork, changed on {source}");
                    conflicts.push((changed.ident.to_string(), reason.into()));
                    continue;
                }
                _ if changed.target_unmoved() => MergeStep::FastForward(changed),
                _ => match rebase(io, &changed, (source, into)).await {
                    Ok(Rebased::Written(files)) => {
                        let to = files.metadata.clone();
                        prepared.push(files);
                        MergeStep::Rebase { changed, to }
                    }
                    Ok(Rebased::Conflict(reason)) => {
                        conflicts.push((changed.ident.to_string(), reason));
                        continue;
                    }
                    Err(e) => {
                        discard(io, &prepared).await;
                        return Err(swept::on_ref(e, source));
                    }
                },
            };
            steps.push(step);
        }
        if !conflicts.is_empty() {
            discard(io, &prepared).await;
            let tables: Vec<&str> = conflicts.iter().map(|(t, _)| t.as_str()).collect();
            let reasons: Vec<String> = conflicts
                .iter()
                .map(|(t, c)| format!("{t}: {}", c.what))
                .collect();
            let mut or: Vec<&str> = conflicts.iter().filter_map(|(_, c)| c.or).collect();
            or.sort_unstable();
            or.dedup();
            let or: String = or.iter().map(|o| format!(", or {o}")).collect();
            return Err(Error::CommitConflict {
                table: tables.join(", "),
                message: format!(
                    "cannot merge {source} into {into}, changed on both sides: {}",
                    reasons.join("; ")
                ),
                hint: format!(
                    "To publish, re-run the branch's writes on a branch forked from {into} now{or}"
                ),
            });
        }
        if let Err(e) = failpoint::hit("merge.before-apply") {
            discard(io, &prepared).await;
            return Err(e);
        }
        if let Err(e) = require_moved_heads((catalog, io), source, &steps).await {
            discard(io, &prepared).await;
            return Err(e);
        }
        if into == MAIN && !catalog.is_internal_branch(source)? {
            keep_fast_forwarded(io, &steps).await?;
        }
        // Rebased tables' files are new: the catalog refuses them if orphan removal may have
        // deleted them since.
        let meta = CommitMeta {
            files_written_since_ms: (!prepared.is_empty()).then_some(started),
            ..meta.clone()
        };
        let applied = catalog
            .apply_merge(source, into, &steps, &meta)
            .and_then(|merged| failpoint::hit("merge.after-apply").map(|()| merged));
        match applied {
            Ok(Some(merged)) => return Ok(merged),
            Ok(None) => {
                discard(io, &prepared).await;
                tokio::time::sleep(backoff(attempt)).await;
            }
            // Like a table commit's swap: an error may come after the merge landed.
            Err(e) => {
                return match landed(catalog, into, &steps) {
                    Some(true) => Ok(merged_by(&steps)),
                    Some(false) => {
                        discard(io, &prepared).await;
                        Err(e)
                    }
                    None => Err(Error::CommitStateUnknown {
                        table: steps
                            .iter()
                            .map(|s| step_target(s).0.ident.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                        message: format!(
                            "the catalog failed while merging {source} into {into} ({e}), and \
                             whether the merge landed could not be read back; the files written \
                             are kept"
                        ),
                    }),
                };
            }
        }
    }
    Err(Error::CommitConflict {
        table: source.to_string(),
        message: format!(
            "{into} kept moving: the merge of {source} was planned {MAX_ATTEMPTS} times and \
             lost the race each time"
        ),
        hint: format!("Merge again when fewer writers commit to {into} at once"),
    })
}

/// Fails when the source's files a fast-forward or an addition would make the target point
/// at are gone (see `catalog::swept`): the target would lose its rows otherwise.
async fn require_moved_heads(
    (catalog, io): (&Catalog, &FileIO),
    source: &str,
    steps: &[MergeStep],
) -> Result<()> {
    let moved: Vec<&str> = (steps.iter())
        .filter_map(|step| match step {
            MergeStep::FastForward(c) | MergeStep::Add(c) => Some(c.source.as_str()),
            MergeStep::Rebase { .. } => None,
        })
        .collect();
    for chunk in moved.chunks(CONCURRENCY) {
        try_join_all(
            chunk
                .iter()
                .map(|l| swept::require_head(catalog, io, source, l)),
        )
        .await?;
    }
    Ok(())
}

/// Copies of the branch's files that `main` is about to point at too (the source keeps them as
/// its pointers and fork points): once `main` moves on, other engines' cleanup of its
/// `metadata-log` may delete them (see `catalog::ref_copies`). A rebased table's new file is
/// `main`'s alone.
async fn keep_fast_forwarded(io: &FileIO, steps: &[MergeStep]) -> Result<()> {
    let shared: Vec<String> = (steps.iter())
        .filter_map(|step| match step {
            MergeStep::FastForward(c) | MergeStep::Add(c) => Some(c.source.clone()),
            MergeStep::Rebase { .. } => None,
        })
        .collect();
    ref_copies::keep(io, &shared).await
}

/// A step's table and the metadata file the merge moves the target to.
fn step_target(step: &MergeStep) -> (&Changed, &str) {
    match step {
        MergeStep::FastForward(c) | MergeStep::Add(c) => (c, &c.source),
        MergeStep::Rebase { changed, to } => (changed, to),
    }
}

/// Whether `steps`, applied to `into` by a call that failed, landed (`Some(true)`: every table
/// is where the merge moves it), did not (`Some(false)`: every table is where it was), or
/// cannot be told (`None`: the catalog cannot be read, or another writer moved a table since).
fn landed(catalog: &Catalog, into: &str, steps: &[MergeStep]) -> Option<bool> {
    let mut states = Vec::with_capacity(steps.len());
    for step in steps {
        let (changed, to) = step_target(step);
        let now = failpoint::hit("merge.read-outcome")
            .and_then(|()| catalog.metadata_location_on(into, &changed.ident));
        let now = match now {
            Ok(location) => Some(location),
            Err(Error::NoSuchTable(_)) => None,
            Err(_) => return None,
        };
        states.push(match now {
            Some(now) if now == to => Some(true),
            now if now == changed.target => Some(false),
            _ => None,
        });
    }
    match (
        states.iter().all(|s| *s == Some(true)),
        states.iter().all(|s| *s == Some(false)),
    ) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    }
}

/// What applying `steps` did, as [`Catalog::apply_merge`] reports it.
fn merged_by(steps: &[MergeStep]) -> RefMerge {
    let mut merged = RefMerge::default();
    for step in steps {
        let name = step_target(step).0.ident.to_string();
        match step {
            MergeStep::Add(_) => merged.added.push(name),
            MergeStep::FastForward(_) => merged.fast_forwarded.push(name),
            MergeStep::Rebase { .. } => merged.rebased.push(name),
        }
    }
    merged
}

/// Best effort: files written for a plan that did not land are unreferenced.
async fn discard(io: &FileIO, prepared: &[AttemptFiles]) {
    for path in prepared.iter().flat_map(|p| p.paths()) {
        let _ = io.delete(path).await;
    }
}
