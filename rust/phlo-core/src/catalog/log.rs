//! The commit log: one row per change a ref went through in this catalog (a table commit, a
//! ref created or deleted, a merge), written in the same transaction as the change, with the
//! metadata file each changed table moved to (what time travel by commit reads). Commits other
//! engines make on `main` (PyIceberg) are not in it; the tables' own histories have them.

use std::collections::{BTreeMap, HashMap};

use super::db::{Row, Sql, args};
use super::{CATALOG_NAME, Catalog, TableIdent};
use crate::error::{Context, Error, Result};

/// Snapshot properties that carry who committed and why into the log.
pub const MESSAGE_PROPERTY: &str = "phlo.message";
pub const AUTHOR_PROPERTY: &str = "phlo.author";
pub const RUN_ID_PROPERTY: &str = "phlo.run-id";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Time-ordered (UUID v7).
    pub commit_id: String,
    pub ref_name: String,
    pub tables: Vec<String>,
    pub message: String,
    pub author: String,
    pub created_at_ms: i64,
    pub run_id: Option<String>,
    pub properties: BTreeMap<String, String>,
}

/// Who makes a change and why, recorded with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitMeta {
    /// `None`: a message describing the change is generated.
    pub message: Option<String>,
    /// `None`: `PHLO_AUTHOR`, else the OS user.
    pub author: Option<String>,
    pub run_id: Option<String>,
    pub properties: BTreeMap<String, String>,
    /// When the commit's files started to be written (ms since the epoch): a commit refuses
    /// to land when orphan-file removal since may have deleted them. `None`: no check (the
    /// change writes no file, or another process wrote them, as for a REST server).
    pub files_written_since_ms: Option<i64>,
}

impl CommitMeta {
    /// From a snapshot's properties: `phlo.message`, `phlo.author` and `phlo.run-id` fill their
    /// fields; other properties not starting with `phlo.` (phlo's metrics) are kept.
    pub fn from_properties(properties: &HashMap<String, String>) -> Self {
        Self {
            message: properties.get(MESSAGE_PROPERTY).cloned(),
            author: properties.get(AUTHOR_PROPERTY).cloned(),
            run_id: properties.get(RUN_ID_PROPERTY).cloned(),
            properties: properties
                .iter()
                .filter(|(k, _)| !k.starts_with("phlo."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            files_written_since_ms: None,
        }
    }
}

/// Who is committing when the caller does not say: `PHLO_AUTHOR`, else the OS user.
fn default_author() -> String {
    ["PHLO_AUTHOR", "USER", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// Appends a log row, with the new metadata file of each changed table; call inside the
/// transaction that makes the change. `message` is used when `meta` has none.
pub(super) fn record(
    db: &mut dyn Sql,
    ref_name: &str,
    tables: &[(&TableIdent, &str)],
    message: &str,
    meta: &CommitMeta,
) -> Result<()> {
    let commit_id = uuid::Uuid::now_v7().to_string();
    let names: Vec<String> = tables.iter().map(|(t, _)| t.to_string()).collect();
    // A map of strings always encodes.
    let properties = serde_json::to_string(&meta.properties).unwrap_or_default();
    let author = meta.author.clone().unwrap_or_else(default_author);
    db.execute(
        "INSERT INTO phlo_commits (commit_id, catalog_name, ref_name, tables, message, author,
         created_at, run_id, properties) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        args![
            &commit_id,
            CATALOG_NAME,
            ref_name,
            &names.join(","),
            meta.message.as_deref().unwrap_or(message),
            &author,
            chrono::Utc::now().timestamp_millis(),
            &meta.run_id,
            &properties,
        ],
    )
    .context(|| "recording the commit".into())?;
    for (ident, location) in tables {
        db.execute(
            "INSERT INTO phlo_commit_tables VALUES (?1, ?2, ?3, ?4)",
            args![&commit_id, &ident.namespace, &ident.name, *location],
        )
        .context(|| "recording the commit".into())?;
    }
    Ok(())
}

/// Where a table was at one commit, for time travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPoint {
    pub ref_name: String,
    pub created_at_ms: i64,
    /// The metadata file the commit moved the table to; `None` if it did not change the table.
    pub metadata_location: Option<String>,
}

impl Catalog {
    /// Whether a logged commit moved a table to metadata file `location`: a table commit's
    /// pointer swap and its log row land in one transaction, so this tells whether it landed.
    pub fn logged_metadata_location(&self, location: &str) -> Result<bool> {
        self.read(|db| {
            db.query_first(
                "SELECT 1 FROM phlo_commit_tables WHERE metadata_location = ?1 LIMIT 1",
                args![location],
            )
            .context(|| format!("looking up the commit of {location}"))
            .map(|row| row.is_some())
        })
    }

    /// The newest `limit` log entries of `ref_name` (every ref when `None`), newest first.
    pub fn log(&self, ref_name: Option<&str>, limit: usize) -> Result<Vec<LogEntry>> {
        let rows = self.read(|db| {
            db.query(
                "SELECT commit_id, ref_name, tables, message, author, created_at, run_id,
                 properties FROM phlo_commits
                 WHERE catalog_name = ?1 AND (CAST(?2 AS VARCHAR(255)) IS NULL OR ref_name = ?2)
                 ORDER BY commit_id DESC LIMIT ?3",
                args![CATALOG_NAME, ref_name, limit as i64],
            )
            .context(|| "reading the log".into())
        })?;
        rows.iter().map(log_entry).collect()
    }

    /// Commit `commit_id` as seen by table `ident`: its ref, time, and the metadata file it
    /// moved the table to (if it changed the table).
    pub fn commit_point(&self, commit_id: &str, ident: &TableIdent) -> Result<CommitPoint> {
        let found = self.read(|db| {
            db.query_first(
                "SELECT c.ref_name, c.created_at, t.metadata_location FROM phlo_commits c
                 LEFT JOIN phlo_commit_tables t ON t.commit_id = c.commit_id
                   AND t.table_namespace = ?3 AND t.table_name = ?4
                 WHERE c.catalog_name = ?1 AND c.commit_id = ?2",
                args![CATALOG_NAME, commit_id, &ident.namespace, &ident.name],
            )
            .context(|| format!("reading commit {commit_id}"))
        })?;
        let row = found.ok_or_else(|| {
            Error::invalid(
                format!("commit {commit_id} is not in the log"),
                "pick a commit_id from lh.log() or `phlo log`",
            )
        })?;
        Ok(CommitPoint {
            ref_name: row.text(0)?,
            created_at_ms: row.int(1)?,
            metadata_location: row.opt_text(2)?,
        })
    }
}

fn log_entry(row: &Row) -> Result<LogEntry> {
    Ok(LogEntry {
        commit_id: row.text(0)?,
        ref_name: row.text(1)?,
        tables: row
            .text(2)?
            .split(',')
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect(),
        message: row.text(3)?,
        author: row.text(4)?,
        created_at_ms: row.int(5)?,
        run_id: row.opt_text(6)?,
        properties: serde_json::from_str(&row.text(7)?).unwrap_or_default(),
    })
}
