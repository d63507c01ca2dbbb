//! Branches and tags of the embedded catalog (DESIGN §4). `main` is PyIceberg's
//! `iceberg_tables`; every other ref keeps its own table pointers in `phlo_ref_tables`, with the
//! pointer each table had when the ref was forked (`base_location`), which is what merges
//! compare against. Creating a ref copies pointers only (zero-copy); data and metadata files are
//! shared until a write on the ref makes a new metadata file.

use rusqlite::{OptionalExtension, Transaction, params};

use super::log::{CommitMeta, record};
use super::sqlite::{CATALOG_NAME, SqliteCatalog};
use super::{TableIdent, validate_name};
use crate::error::{Context, Error, Result};

pub const MAIN: &str = "main";

pub(super) const CREATE_REF_TABLES: &str = "
CREATE TABLE IF NOT EXISTS phlo_refs (
    catalog_name VARCHAR(255) NOT NULL,
    ref_name VARCHAR(255) NOT NULL,
    ref_type VARCHAR(6) NOT NULL CHECK (ref_type IN ('branch', 'tag')),
    source_ref VARCHAR(255) NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (catalog_name, ref_name)
);
CREATE TABLE IF NOT EXISTS phlo_ref_tables (
    catalog_name VARCHAR(255) NOT NULL,
    ref_name VARCHAR(255) NOT NULL,
    table_namespace VARCHAR(255) NOT NULL,
    table_name VARCHAR(255) NOT NULL,
    metadata_location VARCHAR(1000) NOT NULL,
    base_location VARCHAR(1000),
    PRIMARY KEY (catalog_name, ref_name, table_namespace, table_name)
);";

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
    /// Tables changed on both sides whose source changes (appends) were re-applied on the target.
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

/// A table changed on both sides of a merge: the pointers the merge starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diverged {
    pub ident: TableIdent,
    pub source: String,
    pub base: String,
    pub target: String,
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

impl SqliteCatalog {
    /// Runs `change` in one SQLite transaction, committed only when it returns `Ok`.
    fn in_transaction<T>(&self, change: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction()
            .context(|| "starting a catalog transaction".into())?;
        let value = change(&tx)?;
        tx.commit()
            .context(|| "committing a catalog transaction".into())?;
        Ok(value)
    }

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
    pub fn ref_kind(&self, name: &str) -> Result<Option<RefKind>> {
        if name == MAIN {
            return Ok(Some(RefKind::Branch));
        }
        let kind: Option<String> = self
            .conn()?
            .query_row(
                "SELECT ref_type FROM phlo_refs WHERE catalog_name = ?1 AND ref_name = ?2",
                params![CATALOG_NAME, name],
                |row| row.get(0),
            )
            .optional()
            .context(|| format!("looking up ref {name}"))?;
        Ok(kind.map(|k| {
            if k == "tag" {
                RefKind::Tag
            } else {
                RefKind::Branch
            }
        }))
    }

    /// Creates a branch or tag pointing at every table of `from` as it is now.
    pub fn create_ref(&self, name: &str, kind: RefKind, from: &str) -> Result<()> {
        validate_ref_name(name)?;
        if self.ref_kind(from)?.is_none() {
            return Err(no_such_ref(from));
        }
        self.in_transaction(|tx| {
            let inserted = tx.execute(
                "INSERT INTO phlo_refs VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    CATALOG_NAME,
                    name,
                    kind.as_str(),
                    from,
                    chrono::Utc::now().timestamp_millis()
                ],
            );
            match inserted {
                Err(e)
                    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) =>
                {
                    return Err(Error::invalid(
                        format!("ref {name} already exists"),
                        "pick another name, or delete the branch first (tags are immutable)",
                    ));
                }
                other => {
                    other.context(|| format!("creating ref {name}"))?;
                }
            }
            let copy = if from == MAIN {
                "INSERT INTO phlo_ref_tables SELECT catalog_name, ?2, table_namespace, table_name,
             metadata_location, metadata_location FROM iceberg_tables
             WHERE catalog_name = ?1 AND metadata_location IS NOT NULL
             AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)"
            } else {
                "INSERT INTO phlo_ref_tables SELECT catalog_name, ?2, table_namespace, table_name,
             metadata_location, metadata_location FROM phlo_ref_tables
             WHERE catalog_name = ?1 AND ref_name = ?3"
            };
            let params: &[&dyn rusqlite::ToSql] = if from == MAIN {
                &[&CATALOG_NAME, &name]
            } else {
                &[&CATALOG_NAME, &name, &from]
            };
            tx.execute(copy, params)
                .context(|| format!("copying the pointers of {from}"))?;
            record(
                tx,
                name,
                &[],
                &format!("create {} {name} from {from}", kind.as_str()),
                &CommitMeta::default(),
            )?;
            Ok(())
        })
    }

    pub fn list_refs(&self, kind: RefKind) -> Result<Vec<RefInfo>> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(
                "SELECT ref_name, source_ref, created_at FROM phlo_refs
                 WHERE catalog_name = ?1 AND ref_type = ?2 ORDER BY ref_name",
            )
            .context(|| "listing refs".into())?;
        let refs = stmt
            .query_map(params![CATALOG_NAME, kind.as_str()], |row| {
                Ok(RefInfo {
                    name: row.get(0)?,
                    kind,
                    source: row.get(1)?,
                    created_at_ms: row.get(2)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .context(|| "listing refs".into())?;
        Ok(refs)
    }

    /// Deletes a branch (pointers only: files stay, other refs may use them).
    pub fn delete_branch(&self, name: &str) -> Result<()> {
        self.require_branch(name)?;
        if name == MAIN {
            return Err(Error::invalid(
                "main cannot be deleted",
                "delete other branches",
            ));
        }
        self.in_transaction(|tx| {
            for sql in [
                "DELETE FROM phlo_ref_tables WHERE catalog_name = ?1 AND ref_name = ?2",
                "DELETE FROM phlo_refs WHERE catalog_name = ?1 AND ref_name = ?2",
            ] {
                tx.execute(sql, params![CATALOG_NAME, name])
                    .context(|| format!("deleting {name}"))?;
            }
            record(
                tx,
                name,
                &[],
                &format!("delete branch {name}"),
                &CommitMeta::default(),
            )?;
            Ok(())
        })
    }

    /// The tables changed on both `source` (since its fork or last merge) and `into`.
    pub fn diverged_tables(&self, source: &str, into: &str) -> Result<Vec<Diverged>> {
        self.in_transaction(|tx| {
            let mut diverged = Vec::new();
            for (ident, location, base) in source_tables(tx, source)? {
                let (Some(base), Some(target)) = (base, target_location(tx, into, &ident)?) else {
                    continue;
                };
                if location != base && target != base {
                    diverged.push(Diverged {
                        ident,
                        source: location,
                        base,
                        target,
                    });
                }
            }
            Ok(diverged)
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
        let sql = if ref_name == MAIN {
            "SELECT table_namespace, table_name, metadata_location FROM iceberg_tables
             WHERE catalog_name = ?1 AND ?2 = ?2 AND metadata_location IS NOT NULL
             AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)"
        } else {
            "SELECT table_namespace, table_name, metadata_location FROM phlo_ref_tables
             WHERE catalog_name = ?1 AND ref_name = ?2"
        };
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(sql)
            .context(|| format!("reading the tables of {ref_name}"))?;
        let rows = stmt
            .query_map(params![CATALOG_NAME, ref_name], |row| {
                Ok((
                    format!("{}.{}", row.get::<_, String>(0)?, row.get::<_, String>(1)?),
                    row.get(2)?,
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<_>>())
            .context(|| format!("reading the tables of {ref_name}"))?;
        Ok(rows)
    }

    /// A table's metadata file on `ref_name`.
    pub fn metadata_location_on(&self, ref_name: &str, ident: &TableIdent) -> Result<String> {
        if ref_name == MAIN {
            return self.metadata_location(ident);
        }
        let location: Option<String> = self
            .conn()?
            .query_row(
                "SELECT metadata_location FROM phlo_ref_tables WHERE catalog_name = ?1
                 AND ref_name = ?2 AND table_namespace = ?3 AND table_name = ?4",
                params![CATALOG_NAME, ref_name, ident.namespace, ident.name],
                |row| row.get(0),
            )
            .optional()
            .context(|| format!("loading {ident} on {ref_name}"))?;
        match location {
            Some(location) => Ok(location),
            None if self.ref_kind(ref_name)?.is_none() => Err(no_such_ref(ref_name)),
            None => Err(Error::NoSuchTable(on_ref(ident, ref_name))),
        }
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
        self.in_transaction(|tx| {
            if target_location(tx, ref_name, ident)?.is_some() {
                return Err(Error::TableAlreadyExists(on_ref(ident, ref_name)));
            }
            add_table(tx, ref_name, ident, location)?;
            let message = format!("create table {ident}");
            record(tx, ref_name, &[(ident, location)], &message, meta)
        })
    }

    /// Removes a table from branch `ref_name` (its pointer only) and returns its last metadata
    /// file. Other refs keep the table; merges do not carry a drop to the target.
    pub fn drop_table_on(&self, ref_name: &str, ident: &TableIdent) -> Result<String> {
        self.require_branch(ref_name)?;
        let location = self.metadata_location_on(ref_name, ident)?;
        self.in_transaction(|tx| {
            let sql = if ref_name == MAIN {
                "DELETE FROM iceberg_tables WHERE catalog_name = ?1 AND ?2 = ?2
                 AND table_namespace = ?3 AND table_name = ?4 AND metadata_location = ?5"
            } else {
                "DELETE FROM phlo_ref_tables WHERE catalog_name = ?1 AND ref_name = ?2
                 AND table_namespace = ?3 AND table_name = ?4 AND metadata_location = ?5"
            };
            let removed = tx
                .execute(
                    sql,
                    params![
                        CATALOG_NAME,
                        ref_name,
                        ident.namespace,
                        ident.name,
                        location
                    ],
                )
                .context(|| format!("dropping {ident}"))?;
            if removed != 1 {
                return Err(Error::CommitConflict {
                    table: ident.to_string(),
                    message: "the table changed while it was being dropped".into(),
                });
            }
            let message = format!("drop table {ident}");
            record(tx, ref_name, &[], &message, &CommitMeta::default())?;
            Ok(location)
        })
    }

    /// Every table pointer of every ref (`main`, branches, tags) with the pointer it was forked
    /// from: what maintenance must keep reachable.
    pub fn all_pointers(&self) -> Result<Vec<Pointer>> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(
                "SELECT 'main', 'branch', table_namespace, table_name, metadata_location, NULL
                 FROM iceberg_tables WHERE catalog_name = ?1 AND metadata_location IS NOT NULL
                 AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)
                 UNION ALL
                 SELECT t.ref_name, r.ref_type, t.table_namespace, t.table_name,
                 t.metadata_location, t.base_location FROM phlo_ref_tables t JOIN phlo_refs r
                 ON r.catalog_name = t.catalog_name AND r.ref_name = t.ref_name
                 WHERE t.catalog_name = ?1",
            )
            .context(|| "reading every ref's tables".into())?;
        let pointers = stmt
            .query_map(params![CATALOG_NAME], |row| {
                Ok(Pointer {
                    ref_name: row.get(0)?,
                    kind: match row.get::<_, String>(1)?.as_str() {
                        "tag" => RefKind::Tag,
                        _ => RefKind::Branch,
                    },
                    ident: TableIdent {
                        namespace: row.get(2)?,
                        name: row.get(3)?,
                    },
                    metadata_location: row.get(4)?,
                    base_location: row.get(5)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .context(|| "reading every ref's tables".into())?;
        Ok(pointers)
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
        self.in_transaction(|tx| {
            let changed = cas_pointer(tx, ref_name, ident, expected, new)?;
            if !changed {
                return Ok(false);
            }
            record(tx, ref_name, &[(ident, new)], message, meta)?;
            Ok(true)
        })
    }

    /// Merges branch `source` into `into` (`main` or another branch), all tables in one SQLite
    /// transaction: a table changed on the source only moves to the source's pointer
    /// (fast-forward), a table only the source has is added, a table changed on both sides is
    /// a conflict (nothing is merged then). Afterwards the source's fork points are the merged
    /// pointers, so the branch can keep working and merge again.
    pub fn merge_ref(
        &self,
        source: &str,
        into: &str,
        rebased: &std::collections::HashMap<TableIdent, (String, String)>,
        meta: &CommitMeta,
    ) -> Result<RefMerge> {
        if self.ref_kind(source)?.is_none() {
            return Err(no_such_ref(source));
        }
        self.require_branch(into)?;
        self.in_transaction(|tx| {
        let tables = source_tables(tx, source)?;
        let mut result = RefMerge::default();
        let mut conflicts = Vec::new();
        let mut moved = Vec::new();
        for (ident, location, base) in tables {
            if base.as_deref() == Some(location.as_str()) {
                continue; // unchanged on the source
            }
            let target = target_location(tx, into, &ident)?;
            match (&target, &base) {
                (None, _) => {
                    add_table(tx, into, &ident, &location)?;
                    result.added.push(ident.to_string());
                    moved.push((ident.clone(), location.clone()));
                }
                (Some(current), Some(base)) if current == base => {
                    move_pointer(tx, into, &ident, current, &location)?;
                    result.fast_forwarded.push(ident.to_string());
                    moved.push((ident.clone(), location.clone()));
                }
                // Changed on both sides, re-applied on the target's state `expected` already.
                (Some(current), _) if rebased.get(&ident).is_some_and(|(e, _)| e == current) => {
                    move_pointer(tx, into, &ident, current, &rebased[&ident].1)?;
                    result.rebased.push(ident.to_string());
                    moved.push((ident.clone(), rebased[&ident].1.clone()));
                }
                _ => conflicts.push(format!("{ident}: changed on both {source} and {into}")),
            }
            tx.execute(
                "UPDATE phlo_ref_tables SET base_location = metadata_location WHERE catalog_name = ?1
                 AND ref_name = ?2 AND table_namespace = ?3 AND table_name = ?4",
                params![CATALOG_NAME, source, ident.namespace, ident.name],
            )
            .context(|| "recording the merge".into())?;
        }
        if !conflicts.is_empty() {
            return Err(Error::CommitConflict {
                table: conflicts
                    .iter()
                    .map(|c| c.split(':').next().unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join(", "),
                message: format!(
                    "cannot merge {source} into {into}: {}",
                    conflicts.join("; ")
                ),
            });
        }
        moved.sort();
        let tables: Vec<(&TableIdent, &str)> = moved.iter().map(|(t, l)| (t, l.as_str())).collect();
        let message = format!(
            "merge {source} into {into}: {} fast-forwarded, {} added, {} rebased",
            result.fast_forwarded.len(),
            result.added.len(),
            result.rebased.len()
        );
        record(tx, into, &tables, &message, meta)?;
            Ok(result)
        })
    }
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

fn source_tables(
    tx: &Transaction<'_>,
    source: &str,
) -> Result<Vec<(TableIdent, String, Option<String>)>> {
    if source == MAIN {
        return Err(Error::invalid(
            "main cannot be merged into another ref",
            "merge branches into main",
        ));
    }
    let mut stmt = tx
        .prepare(
            "SELECT table_namespace, table_name, metadata_location, base_location FROM phlo_ref_tables
             WHERE catalog_name = ?1 AND ref_name = ?2 ORDER BY table_namespace, table_name",
        )
        .context(|| "reading the source's tables".into())?;
    let rows = stmt
        .query_map(params![CATALOG_NAME, source], |row| {
            Ok((
                TableIdent {
                    namespace: row.get(0)?,
                    name: row.get(1)?,
                },
                row.get(2)?,
                row.get(3)?,
            ))
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .context(|| "reading the source's tables".into())?;
    Ok(rows)
}

fn target_location(tx: &Transaction<'_>, into: &str, ident: &TableIdent) -> Result<Option<String>> {
    let sql = if into == MAIN {
        "SELECT metadata_location FROM iceberg_tables WHERE catalog_name = ?1 AND ?2 = ?2
         AND table_namespace = ?3 AND table_name = ?4"
    } else {
        "SELECT metadata_location FROM phlo_ref_tables WHERE catalog_name = ?1 AND ref_name = ?2
         AND table_namespace = ?3 AND table_name = ?4"
    };
    tx.query_row(
        sql,
        params![CATALOG_NAME, into, ident.namespace, ident.name],
        |row| row.get(0),
    )
    .optional()
    .context(|| format!("reading {ident} on {into}"))
}

/// Compare-and-swap of a table's pointer on a ref, inside the caller's transaction.
fn cas_pointer(
    tx: &Transaction<'_>,
    ref_name: &str,
    ident: &TableIdent,
    from: &str,
    to: &str,
) -> Result<bool> {
    let sql = if ref_name == MAIN {
        "UPDATE iceberg_tables SET metadata_location = ?1, previous_metadata_location = ?2
         WHERE catalog_name = ?3 AND ?4 = ?4 AND table_namespace = ?5 AND table_name = ?6
         AND metadata_location = ?2"
    } else {
        "UPDATE phlo_ref_tables SET metadata_location = ?1 WHERE metadata_location = ?2
         AND catalog_name = ?3 AND ref_name = ?4 AND table_namespace = ?5 AND table_name = ?6"
    };
    let changed = tx
        .execute(
            sql,
            params![
                to,
                from,
                CATALOG_NAME,
                ref_name,
                ident.namespace,
                ident.name
            ],
        )
        .context(|| format!("committing {ident} on {ref_name}"))?;
    Ok(changed == 1)
}

fn move_pointer(
    tx: &Transaction<'_>,
    into: &str,
    ident: &TableIdent,
    from: &str,
    to: &str,
) -> Result<()> {
    if !cas_pointer(tx, into, ident, from, to)? {
        return Err(Error::CommitConflict {
            table: ident.to_string(),
            message: format!("{into} moved while merging"),
        });
    }
    Ok(())
}

fn add_table(tx: &Transaction<'_>, into: &str, ident: &TableIdent, location: &str) -> Result<()> {
    let sql = if into == MAIN {
        "INSERT INTO iceberg_tables (catalog_name, table_namespace, table_name, metadata_location,
         previous_metadata_location, iceberg_type) VALUES (?1, ?3, ?4, ?5, NULL, 'TABLE')"
    } else {
        "INSERT INTO phlo_ref_tables VALUES (?1, ?2, ?3, ?4, ?5, NULL)"
    };
    tx.execute(
        sql,
        params![CATALOG_NAME, into, ident.namespace, ident.name, location],
    )
    .context(|| format!("adding {ident} to {into}"))?;
    Ok(())
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
    fn commit_on_dev(catalog: &SqliteCatalog, name: &str, from: &str, to: &str) {
        let meta = CommitMeta::default();
        let moved = catalog.swap_metadata_location_on("dev", &t(name), from, to, "test", &meta);
        assert!(moved.unwrap(), "{name} on dev was not at {from}");
    }

    fn catalog() -> (tempfile::TempDir, SqliteCatalog) {
        let dir = tempfile::tempdir().unwrap();
        let catalog = SqliteCatalog::open(&dir.path().join("catalog.db")).unwrap();
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
        let merged = catalog
            .merge_ref("dev", MAIN, &Default::default(), &CommitMeta::default())
            .unwrap();
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
        let err = catalog
            .merge_ref("dev", MAIN, &Default::default(), &CommitMeta::default())
            .unwrap_err();
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
        assert_eq!(catalog.list_refs(RefKind::Tag).unwrap()[0].name, "v1");
        assert!(catalog.list_refs(RefKind::Branch).unwrap().is_empty());
    }
}
