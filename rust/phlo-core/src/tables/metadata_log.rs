//! `write.metadata.delete-after-commit.enabled`, as Java and PyIceberg honour it: after a commit,
//! the metadata files that fell out of the table's `metadata-log` (which keeps the newest
//! `write.metadata.previous-versions-max`, 100 unless set) are deleted. Unlike theirs, phlo's
//! keeps any such file another catalog ref still uses: a branch or tag made from that version
//! of the table (pointers only, no copy), a branch's fork point (its merge reads it), or an
//! entry of another ref's own `metadata-log` (a branch inherits main's log when it forks). A
//! rename moves one ref's pointer only, so the table's files may be another name's on other
//! refs: every pointer counts, not only those of the committed name.

use std::collections::HashSet;

use iceberg::io::FileIO;
use iceberg::spec::TableMetadata;

use crate::catalog::ref_copies::copy_of;
use crate::catalog::{Catalog, TableIdent};

pub const DELETE_AFTER_COMMIT: &str = "write.metadata.delete-after-commit.enabled";

/// The metadata files `old`'s log lists and `new`'s (the version committed over it) no longer
/// does, when `new` asks for them to be deleted after commit; nothing otherwise. The property
/// is read as Java reads a boolean: `true` in any case, anything else is false.
pub fn dropped_from_log(old: &TableMetadata, new: &TableMetadata) -> Vec<String> {
    let enabled = new
        .properties()
        .get(DELETE_AFTER_COMMIT)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if !enabled {
        return Vec::new();
    }
    let kept: HashSet<&str> = (new.metadata_log().iter())
        .map(|m| m.metadata_file.as_str())
        .collect();
    (old.metadata_log().iter())
        .map(|m| m.metadata_file.as_str())
        .filter(|f| !kept.contains(f))
        .map(String::from)
        .collect()
}

/// Deletes what [`dropped_from_log`] names, but the files a ref of `catalog` still uses, under
/// `ident` or another name (see the module docs). Best effort, after the commit landed: a file
/// left behind (the catalog or a ref's metadata unreadable, a delete failing) is an orphan for
/// `remove_orphan_files`, never an error of the commit.
pub async fn delete_dropped(
    catalog: &Catalog,
    io: &FileIO,
    ident: &TableIdent,
    old: &TableMetadata,
    new: &TableMetadata,
) {
    let dropped = dropped_from_log(old, new);
    if dropped.is_empty() {
        return;
    }
    let Ok(pointers) = catalog.all_pointers() else {
        return;
    };
    // The folders the dropped files are in: a pointer to a file elsewhere is another table's,
    // whose log is not read (its current file and fork point still count).
    let folders: HashSet<&str> = dropped.iter().map(|f| folder(f)).collect();
    let mut used = HashSet::new();
    for pointer in pointers {
        let files = [
            Some(&pointer.metadata_location),
            pointer.base_location.as_ref(),
        ];
        let related = &pointer.ident == ident
            || (files.iter().flatten()).any(|f| folders.contains(folder(f)));
        used.extend(files.into_iter().flatten().cloned());
        if !related {
            continue;
        }
        let read = (catalog.metadata_cache())
            .read(io, &pointer.metadata_location, String::new)
            .await;
        let Ok(metadata) = read else {
            return;
        };
        used.extend(
            metadata
                .metadata_log()
                .iter()
                .map(|m| m.metadata_file.clone()),
        );
    }
    for path in dropped.iter().filter(|f| !used.contains(*f)) {
        let _ = io.delete(path).await;
        // A ref that used it once may have left a copy (`catalog::ref_copies`).
        let _ = io.delete(&copy_of(path)).await;
    }
}

fn folder(file: &str) -> &str {
    file.rsplit_once('/').map_or("", |(folder, _)| folder)
}

#[cfg(test)]
mod tests {
    use iceberg::spec::{
        FormatVersion, NestedField, PrimitiveType, Schema, SortOrder, TableMetadataBuilder, Type,
        UnboundPartitionSpec,
    };

    use super::*;

    fn metadata(properties: &[(&str, &str)]) -> TableMetadata {
        let schema = Schema::builder()
            .with_fields(vec![
                NestedField::optional(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
            ])
            .build()
            .unwrap();
        TableMetadataBuilder::new(
            schema,
            UnboundPartitionSpec::builder().build(),
            SortOrder::unsorted_order(),
            "file:///t".into(),
            FormatVersion::V2,
            properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap()
        .build()
        .unwrap()
        .metadata
    }

    /// The version after `base` (read from file `location`): its log gains `location`.
    fn next(base: &TableMetadata, location: &str) -> TableMetadata {
        TableMetadataBuilder::new_from_metadata(base.clone(), Some(location.into()))
            .build()
            .unwrap()
            .metadata
    }

    #[test]
    fn files_that_fall_out_of_the_log_are_dropped_only_when_the_table_asks() {
        for (enabled, expected) in [
            ("TRUE", vec!["file:///t/m1.json".to_string()]),
            ("yes", vec![]),
        ] {
            let base = metadata(&[
                (DELETE_AFTER_COMMIT, enabled),
                ("write.metadata.previous-versions-max", "2"),
            ]);
            let v1 = next(&base, "file:///t/m0.json");
            let v2 = next(&v1, "file:///t/m1.json");
            let v3 = next(&v2, "file:///t/m2.json");
            assert!(dropped_from_log(&v1, &v2).is_empty());
            let v4 = next(&v3, "file:///t/m3.json");
            // m0 left the log when v3 was committed, m1 with v4.
            assert_eq!(dropped_from_log(&v3, &v4), expected, "{enabled}");
        }
        let plain = metadata(&[("write.metadata.previous-versions-max", "1")]);
        let v1 = next(&plain, "file:///t/m0.json");
        assert!(dropped_from_log(&v1, &next(&v1, "file:///t/m1.json")).is_empty());
    }
}
