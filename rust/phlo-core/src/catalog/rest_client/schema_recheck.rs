//! A REST transaction's table whose schema another engine changed after the transaction wrote
//! to it. The transaction's snapshots were planned under the schema it read, and its commit
//! asserts that schema (`assert-current-schema-id`), so the server refuses the commit (409)
//! even when the table's head did not move. The re-check then decides: the transaction's files
//! fit the new schema (Iceberg's evolutions keep old files readable by field id, except a
//! required column they lack) and its snapshots name the new schema, or it is a conflict.

use iceberg::spec::{NestedFieldRef, Schema, Snapshot, StructType, Type};

use crate::catalog::TableIdent;
use crate::error::{Error, Result};

/// `CommitConflict` when files written under `written` cannot be read under `now`: `now` has a
/// required column (without an initial default) that `written` lacks, so their rows would
/// hold nulls where the table promises none. `changes_schema`: the transaction changes the
/// schema itself, which cannot be merged with another engine's change.
pub(super) fn files_fit(
    ident: &TableIdent,
    written: &Schema,
    now: &Schema,
    changes_schema: bool,
) -> Result<()> {
    let conflict = |what: String| Error::CommitConflict {
        table: ident.to_string(),
        message: format!(
            "another engine changed the schema of {ident} while the transaction ran, and {what}; \
             nothing was committed"
        ),
        hint: "Run the transaction again: it then writes under the new schema".into(),
    };
    if changes_schema {
        return Err(conflict("the transaction changes that schema too".into()));
    }
    match missing_required(written, now.as_struct()) {
        Some(name) => Err(conflict(format!(
            "the transaction's files lack its new required column {name}"
        ))),
        None => Ok(()),
    }
}

/// The first required column of `now` (without an initial default) that `written` does not
/// have, by field id; within structs both have (a new struct brings its fields with it).
fn missing_required(written: &Schema, now: &StructType) -> Option<String> {
    now.fields().iter().find_map(
        |field: &NestedFieldRef| match written.field_by_id(field.id) {
            None if field.required && field.initial_default.is_none() => Some(field.name.clone()),
            None => None,
            Some(_) => match field.field_type.as_ref() {
                Type::Struct(inner) => missing_required(written, inner),
                _ => None,
            },
        },
    )
}

/// `snapshot` naming schema `schema_id` (its manifests and manifest list stay: the table's head
/// and spec are where the snapshot was planned).
pub(super) fn under_schema(snapshot: &Snapshot, schema_id: i32) -> Snapshot {
    let builder = Snapshot::builder()
        .with_snapshot_id(snapshot.snapshot_id())
        .with_parent_snapshot_id(snapshot.parent_snapshot_id())
        .with_sequence_number(snapshot.sequence_number())
        .with_timestamp_ms(snapshot.timestamp_ms())
        .with_manifest_list(snapshot.manifest_list())
        .with_summary(snapshot.summary().clone())
        .with_schema_id(schema_id)
        .with_encryption_key_id(snapshot.encryption_key_id().map(String::from));
    match snapshot.row_range() {
        Some((first_row_id, added_rows)) => {
            builder.with_row_range(first_row_id, added_rows).build()
        }
        None => builder.build(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use iceberg::spec::{Literal, NestedField, Operation, PrimitiveType, Summary};

    use super::*;

    fn schema(fields: Vec<NestedField>) -> Schema {
        let fields = fields.into_iter().map(Arc::new).collect::<Vec<_>>();
        Schema::builder().with_fields(fields).build().unwrap()
    }

    fn string(id: i32, name: &str, required: bool) -> NestedField {
        NestedField::new(id, name, Type::Primitive(PrimitiveType::String), required)
    }

    #[test]
    fn only_a_new_required_column_without_default_refuses_the_files() {
        let ident = TableIdent::parse("raw.t").unwrap();
        let written = schema(vec![string(1, "v", false)]);
        let renamed = schema(vec![string(1, "label", false), string(2, "w", false)]);
        assert!(files_fit(&ident, &written, &renamed, false).is_ok());
        assert!(files_fit(&ident, &written, &renamed, true).is_err());
        let required = schema(vec![string(1, "v", false), string(3, "x", true)]);
        let err = files_fit(&ident, &written, &required, false).unwrap_err();
        assert_eq!(err.code(), "commit_conflict");
        assert!(err.to_string().contains("required column x"), "{err}");
        let defaulted = string(3, "x", true).with_initial_default(Literal::string("d"));
        let defaulted = schema(vec![string(1, "v", false), defaulted]);
        assert!(files_fit(&ident, &written, &defaulted, false).is_ok());
    }

    #[test]
    fn a_snapshot_under_another_schema_keeps_everything_else() {
        let snapshot = Snapshot::builder()
            .with_snapshot_id(7)
            .with_parent_snapshot_id(Some(6))
            .with_sequence_number(3)
            .with_timestamp_ms(1_000)
            .with_manifest_list("file:///m.avro")
            .with_summary(Summary {
                operation: Operation::Overwrite,
                additional_properties: Default::default(),
            })
            .with_schema_id(0)
            .build();
        let moved = under_schema(&snapshot, 4);
        assert_eq!(moved.schema_id(), Some(4));
        assert_eq!(under_schema(&moved, 0), snapshot);
    }
}
