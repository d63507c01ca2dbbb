//! The commit log: one row per change a ref went through in this catalog (a table commit, a
//! ref created or deleted, a merge), written in the same transaction as the change. Commits
//! other engines make on `main` (PyIceberg) are not in it; the tables' own histories have them.

use rusqlite::{Connection, params};

use super::sqlite::{CATALOG_NAME, SqliteCatalog};
use crate::error::{Context, Result};

pub(super) const CREATE_LOG_TABLE: &str = "
CREATE TABLE IF NOT EXISTS phlo_commits (
    commit_id VARCHAR(36) NOT NULL PRIMARY KEY,
    catalog_name VARCHAR(255) NOT NULL,
    ref_name VARCHAR(255) NOT NULL,
    tables VARCHAR(4000) NOT NULL,
    message VARCHAR(4000) NOT NULL,
    author VARCHAR(255) NOT NULL,
    created_at INTEGER NOT NULL,
    run_id VARCHAR(255)
);";

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
}

/// Who is committing: `PHLO_AUTHOR`, else the OS user.
fn author() -> String {
    ["PHLO_AUTHOR", "USER", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// Appends a log row; call inside the transaction that makes the change.
pub(super) fn record(
    conn: &Connection,
    ref_name: &str,
    tables: &[String],
    message: &str,
    run_id: Option<&str>,
) -> Result<()> {
    conn.execute(
        "INSERT INTO phlo_commits VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            uuid::Uuid::now_v7().to_string(),
            CATALOG_NAME,
            ref_name,
            tables.join(","),
            message,
            author(),
            chrono::Utc::now().timestamp_millis(),
            run_id
        ],
    )
    .context(|| "recording the commit".into())?;
    Ok(())
}

impl SqliteCatalog {
    /// The newest `limit` log entries of `ref_name` (every ref when `None`), newest first.
    pub fn log(&self, ref_name: Option<&str>, limit: usize) -> Result<Vec<LogEntry>> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(
                "SELECT commit_id, ref_name, tables, message, author, created_at, run_id
                 FROM phlo_commits WHERE catalog_name = ?1 AND (?2 IS NULL OR ref_name = ?2)
                 ORDER BY commit_id DESC LIMIT ?3",
            )
            .context(|| "reading the log".into())?;
        let entries = stmt
            .query_map(params![CATALOG_NAME, ref_name, limit as i64], |row| {
                let tables: String = row.get(2)?;
                Ok(LogEntry {
                    commit_id: row.get(0)?,
                    ref_name: row.get(1)?,
                    tables: tables
                        .split(',')
                        .filter(|t| !t.is_empty())
                        .map(String::from)
                        .collect(),
                    message: row.get(3)?,
                    author: row.get(4)?,
                    created_at_ms: row.get(5)?,
                    run_id: row.get(6)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .context(|| "reading the log".into())?;
        Ok(entries)
    }
}
