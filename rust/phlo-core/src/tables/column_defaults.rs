//! Iceberg column default values (`initial-default`, `write-default`; PyIceberg's
//! `add_column(..., default_value=...)`), which phlo does not apply: the reads and writes that
//! would lose them are refused.

use iceberg::spec::{NestedFieldRef, Schema, StructType, Type};

use crate::error::{Error, Location, Result};

/// What phlo does with a table's rows: the column defaults each must honour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultsUse {
    /// Reading rows: a file written before a column was added holds its `initial-default`.
    Read,
    /// Committing rows: a row written without a column gets its `write-default`.
    Write,
}

/// Refuses a schema with column default values (Iceberg's `initial-default` and
/// `write-default`, e.g. PyIceberg's `add_column(..., default_value=...)`) that `usage` would
/// have to apply: phlo's reads, filters and statistics take a column a file lacks as nulls, and
/// its writes leave out what a batch lacks, so honouring neither would return nulls for the
/// default and write them into the table for good.
pub fn refuse_defaults(schema: &Schema, usage: DefaultsUse) -> Result<()> {
    let Some((path, kind)) = defaulted_field(schema.as_struct(), usage, "") else {
        return Ok(());
    };
    let doing = match usage {
        DefaultsUse::Read => "read",
        DefaultsUse::Write => "write",
    };
    Err(Error::schema(
        format!(
            "column {path} has an Iceberg {kind} value (column defaults): phlo cannot {doing} \
             such a table without losing the default"
        ),
        Location {
            table: None,
            column: Some(path),
        },
        "use the engine that set the default for this table (PyIceberg honours it), or copy \
         its rows into a table whose columns have no default values and use phlo there",
    ))
}

/// The first field (dotted path) under `fields` with a default `usage` needs, and which.
fn defaulted_field(
    fields: &StructType,
    usage: DefaultsUse,
    prefix: &str,
) -> Option<(String, &'static str)> {
    fields.fields().iter().find_map(|field| {
        let path = format!("{prefix}{}", field.name);
        let kind = match usage {
            DefaultsUse::Read => field.initial_default.as_ref().map(|_| "initial-default"),
            DefaultsUse::Write => (field.initial_default.as_ref().map(|_| "initial-default"))
                .or(field.write_default.as_ref().map(|_| "write-default")),
        };
        if let Some(kind) = kind {
            return Some((path, kind));
        }
        let children: Vec<&NestedFieldRef> = match field.field_type.as_ref() {
            Type::Struct(s) => s.fields().iter().collect(),
            Type::List(l) => vec![&l.element_field],
            Type::Map(m) => vec![&m.key_field, &m.value_field],
            Type::Primitive(_) => vec![],
        };
        let nested = StructType::new(children.into_iter().cloned().collect());
        defaulted_field(&nested, usage, &format!("{path}."))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use iceberg::spec::{NestedField, PrimitiveType};

    use super::*;

    #[test]
    fn column_defaults_are_refused_where_they_would_be_lost() {
        use iceberg::spec::Literal;
        let long = || Type::Primitive(PrimitiveType::Long);
        let plain = NestedField::optional(3, "x", long());
        let inner = |field: NestedField| {
            let s = StructType::new(vec![Arc::new(field)]);
            Schema::builder()
                .with_fields(vec![
                    NestedField::optional(1, "id", long()).into(),
                    NestedField::optional(2, "s", Type::Struct(s)).into(),
                ])
                .build()
                .unwrap()
        };
        let initial = plain.clone().with_initial_default(Literal::long(5));
        let write = plain.clone().with_write_default(Literal::long(5));
        for usage in [DefaultsUse::Read, DefaultsUse::Write] {
            assert!(refuse_defaults(&inner(plain.clone()), usage).is_ok());
            let err = refuse_defaults(&inner(initial.clone()), usage).unwrap_err();
            assert!(
                err.to_string()
                    .contains("column s.x has an Iceberg initial-default"),
                "{err}"
            );
        }
        // A write default only matters to rows written without the column.
        assert!(refuse_defaults(&inner(write.clone()), DefaultsUse::Read).is_ok());
        let err = refuse_defaults(&inner(write), DefaultsUse::Write).unwrap_err();
        assert!(
            err.to_string().contains("s.x has an Iceberg write-default"),
            "{err}"
        );
    }
}
