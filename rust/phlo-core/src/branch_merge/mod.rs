//! Merging a branch into another (docs/architecture.md, "The versioned catalog"): plan from one
//! consistent read of both refs — tables changed on the source only fast-forward, tables new on
//! the source are added, tables changed on both sides are rebased (the source's changes
//! re-applied on the target, schema changes included) — then apply every table in one catalog
//! transaction. When either ref moved in between, the plan is made again (bounded, with
//! jittered backoff): concurrent publishers wait their turn instead of failing. Only a real
//! overlap is a `CommitConflict`, and then nothing is merged.

mod rebase;
mod schema;
mod shared_keys;

pub use rebase::UNIQUE_KEY_PROPERTY;
pub(crate) use rebase::inserted_keys_collide;

use iceberg::io::FileIO;

use crate::catalog::{Catalog, CommitMeta, MergeStep, RefMerge};
use crate::error::{Error, Result};
use crate::tables::commit::{AttemptFiles, backoff};
use rebase::{Rebased, rebase};

/// Plans made and lost to another writer before the merge gives up.
const MAX_ATTEMPTS: u32 = 32;

pub async fn merge_branch(
    catalog: &Catalog,
    io: &FileIO,
    source: &str,
    into: &str,
    meta: &CommitMeta,
) -> Result<RefMerge> {
    for attempt in 0..MAX_ATTEMPTS {
        let mut steps = Vec::new();
        let mut prepared: Vec<AttemptFiles> = Vec::new();
        let mut conflicts = Vec::new();
        for changed in catalog.changed_tables(source, into)? {
            let step = match (&changed.base, &changed.target) {
                (_, None) => MergeStep::Add(changed),
                _ if changed.target_unmoved() => MergeStep::FastForward(changed),
                _ => match rebase(io, &changed, source).await {
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
                        return Err(e);
                    }
                },
            };
            steps.push(step);
        }
        if !conflicts.is_empty() {
            discard(io, &prepared).await;
            let tables: Vec<&str> = conflicts.iter().map(|(t, _)| t.as_str()).collect();
            let reasons: Vec<String> = conflicts.iter().map(|(t, r)| format!("{t}: {r}")).collect();
            return Err(Error::CommitConflict {
                table: tables.join(", "),
                message: format!(
                    "cannot merge {source} into {into}, changed on both sides: {}",
                    reasons.join("; ")
                ),
            });
        }
        match catalog.apply_merge(source, into, &steps, meta) {
            Ok(Some(merged)) => return Ok(merged),
            Ok(None) => {
                discard(io, &prepared).await;
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(e) => {
                // The rebased metadata files are logged with the merge if it landed.
                let landed = prepared
                    .first()
                    .map(|f| catalog.logged_metadata_location(&f.metadata));
                match landed {
                    Some(Ok(true)) | Some(Err(_)) => {}
                    Some(Ok(false)) | None => discard(io, &prepared).await,
                }
                return Err(e);
            }
        }
    }
    Err(Error::CommitConflict {
        table: source.to_string(),
        message: format!(
            "{into} kept moving: the merge of {source} was planned {MAX_ATTEMPTS} times and \
             lost the race each time"
        ),
    })
}

/// Best effort: files written for a plan that did not land are unreferenced.
async fn discard(io: &FileIO, prepared: &[AttemptFiles]) {
    for path in prepared.iter().flat_map(|p| p.paths()) {
        let _ = io.delete(path).await;
    }
}
