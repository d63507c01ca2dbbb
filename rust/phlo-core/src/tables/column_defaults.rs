//! Iceberg column default values (`initial-default`, `write-default`; PyIceberg's
//! `add_column(..., default_value=...)`). A data file written before a column was added holds
//! the column's `initial-default` in every row (reads fill it in, [`super::read`]); a row
//! written without the column gets its `write-default` (writes fill it in,
//! [`crate::schema::cast_to_schema`]). Defaults phlo cannot apply — on fields inside structs,
//! lists and maps, or of types other than booleans, numbers, decimals, strings, dates and
//! timestamps — are refused before anything is read or written.

use arrow_array::{ArrayRef, UInt32Array};
use arrow_schema::{DataType, Schema as ArrowSchema};
use iceberg::spec::{Literal, NestedField, NestedFieldRef, Schema, Type};

use super::eval::primitive_array;
use crate::error::{Context, Error, Location, Result};

/// What phlo does with a table's rows: the column defaults it must honour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultsUse {
    /// Reading rows: a file written before a column was added holds its `initial-default`.
    Read,
    /// Committing rows (which also reads the table's rows, for merges, deletes and
    /// compactions): a row written without a column gets its `write-default`.
    Write,
}

/// One of a column's two default values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnDefault {
    /// The value of rows written before the column existed.
    Initial,
    /// The value of rows written without the column.
    Write,
}

impl ColumnDefault {
    fn of(self, field: &NestedField) -> Option<&Literal> {
        match self {
            Self::Initial => field.initial_default.as_ref(),
            Self::Write => field.write_default.as_ref(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Initial => "initial-default",
            Self::Write => "write-default",
        }
    }
}

impl DefaultsUse {
    fn defaults(self) -> &'static [ColumnDefault] {
        match self {
            Self::Read => &[ColumnDefault::Initial],
            Self::Write => &[ColumnDefault::Initial, ColumnDefault::Write],
        }
    }
}

/// Refuses a schema with column defaults `usage` would have to apply that phlo cannot: on a
/// field inside a struct, list or map, or of a type [`default_array`] does not build. Checked
/// before any read or write, so nothing is read as null or written without its default.
pub fn refuse_defaults(schema: &Schema, usage: DefaultsUse) -> Result<()> {
    for field in schema.as_struct().fields() {
        for &kind in usage.defaults() {
            default_array(field, kind, None)?;
        }
        if let Some((path, kind)) = nested_default(field, usage, &field.name) {
            return Err(refusal(
                &path,
                kind,
                "phlo applies defaults of top-level columns only",
            ));
        }
    }
    Ok(())
}

/// Column `field`'s `kind` default, when it has one, as a one-element array of Arrow type `to`
/// (the type phlo reads the column as when `None`). A default phlo cannot apply is a
/// `SchemaError` naming the column.
pub fn default_array(
    field: &NestedField,
    kind: ColumnDefault,
    to: Option<&DataType>,
) -> Result<Option<ArrayRef>> {
    let Some(value) = kind.of(field) else {
        return Ok(None);
    };
    let cannot = || {
        refusal(
            &field.name,
            kind,
            &format!(
                "phlo applies defaults of boolean, number, decimal, string, date and timestamp \
                 columns, not of {}",
                field.field_type
            ),
        )
    };
    let (Type::Primitive(ty), Literal::Primitive(value)) = (field.field_type.as_ref(), value)
    else {
        return Err(cannot());
    };
    let array = primitive_array(ty, value).ok_or_else(cannot)??;
    match to {
        Some(to) if to != array.data_type() => arrow_cast::cast(&array, to)
            .map(Some)
            .context(|| format!("converting the {} of column {}", kind.name(), field.name)),
        _ => Ok(Some(array)),
    }
}

/// The `write-default` of each column of `target` (the Arrow schema of table schema `schema`,
/// in its order), as one-element arrays: what [`crate::schema::cast_to_schema`] writes for a
/// column a batch lacks.
pub fn write_defaults(schema: &Schema, target: &ArrowSchema) -> Result<Vec<Option<ArrayRef>>> {
    (target.fields().iter())
        .map(|column| match schema.field_by_name(column.name()) {
            Some(field) => default_array(field, ColumnDefault::Write, Some(column.data_type())),
            None => Ok(None),
        })
        .collect()
}

/// `value` (one element) repeated `rows` times.
pub fn repeated(value: &ArrayRef, rows: usize) -> Result<ArrayRef> {
    arrow_select::take::take(value, &UInt32Array::from(vec![0; rows]), None)
        .context(|| "repeating a column default".into())
}

/// The first field (dotted path) inside `field` with a default `usage` needs, and which.
fn nested_default(
    field: &NestedField,
    usage: DefaultsUse,
    path: &str,
) -> Option<(String, ColumnDefault)> {
    let children: Vec<&NestedFieldRef> = match field.field_type.as_ref() {
        Type::Struct(s) => s.fields().iter().collect(),
        Type::List(l) => vec![&l.element_field],
        Type::Map(m) => vec![&m.key_field, &m.value_field],
        Type::Primitive(_) => vec![],
    };
    children.into_iter().find_map(|child| {
        let path = format!("{path}.{}", child.name);
        match usage
            .defaults()
            .iter()
            .find(|kind| kind.of(child).is_some())
        {
            Some(&kind) => Some((path, kind)),
            None => nested_default(child, usage, &path),
        }
    })
}

fn refusal(path: &str, kind: ColumnDefault, why: &str) -> Error {
    Error::schema(
        format!(
            "column {path} has an Iceberg {} value (column defaults) phlo cannot apply: {why}",
            kind.name()
        ),
        Location {
            table: None,
            column: Some(path.into()),
        },
        "use the engine that set the default for this table (PyIceberg honours it), or copy \
         its rows into a table whose columns have no such default values and use phlo there",
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Array, Date32Array, Decimal128Array, Int32Array, StringArray};
    use iceberg::spec::{NestedField, PrimitiveType, StructType};

    use super::*;

    fn schema(fields: Vec<NestedField>) -> Schema {
        Schema::builder()
            .with_fields(fields.into_iter().map(Arc::new).collect::<Vec<_>>())
            .build()
            .unwrap()
    }

    #[test]
    fn defaults_of_top_level_columns_become_arrays_of_their_type() {
        let p = |t| Type::Primitive(t);
        let int = NestedField::optional(1, "x", p(PrimitiveType::Int))
            .with_initial_default(Literal::int(5))
            .with_write_default(Literal::int(6));
        let string = NestedField::optional(2, "s", p(PrimitiveType::String))
            .with_initial_default(Literal::string("a"));
        let decimal = NestedField::optional(
            3,
            "d",
            p(PrimitiveType::Decimal {
                precision: 10,
                scale: 2,
            }),
        )
        .with_initial_default(Literal::decimal(1234));
        let date = NestedField::optional(4, "day", p(PrimitiveType::Date))
            .with_initial_default(Literal::date(19_000));
        let table = schema(vec![
            int.clone(),
            string.clone(),
            decimal.clone(),
            date.clone(),
        ]);
        for usage in [DefaultsUse::Read, DefaultsUse::Write] {
            refuse_defaults(&table, usage).unwrap();
        }
        let initial = |f: &NestedField| default_array(f, ColumnDefault::Initial, None).unwrap();
        let x = initial(&int).unwrap();
        assert_eq!(x.as_any().downcast_ref::<Int32Array>().unwrap().value(0), 5);
        let x = repeated(&x, 3).unwrap();
        assert_eq!(x.len(), 3);
        let s = initial(&string).unwrap();
        assert_eq!(
            s.as_any().downcast_ref::<StringArray>().unwrap().value(0),
            "a"
        );
        let d = initial(&decimal).unwrap();
        let d = d.as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!((d.value(0), d.scale()), (1234, 2));
        let day = initial(&date).unwrap();
        assert_eq!(
            day.as_any().downcast_ref::<Date32Array>().unwrap().value(0),
            19_000
        );
        let target = crate::schema::arrow_schema_of(&table).unwrap();
        let written = write_defaults(&table, &target).unwrap();
        let six = written[0].as_ref().unwrap();
        assert_eq!(
            six.as_any().downcast_ref::<Int32Array>().unwrap().value(0),
            6
        );
        assert!(written[1..].iter().all(Option::is_none));
        assert!(initial(&NestedField::optional(5, "n", p(PrimitiveType::Int))).is_none());
    }

    #[test]
    fn defaults_phlo_cannot_apply_are_refused() {
        let long = || Type::Primitive(PrimitiveType::Long);
        let plain = NestedField::optional(3, "x", long());
        let inner = |field: NestedField| {
            let s = StructType::new(vec![Arc::new(field)]);
            schema(vec![
                NestedField::optional(1, "id", long()),
                NestedField::optional(2, "s", Type::Struct(s)),
            ])
        };
        let initial = plain.clone().with_initial_default(Literal::long(5));
        let write = plain.clone().with_write_default(Literal::long(5));
        for usage in [DefaultsUse::Read, DefaultsUse::Write] {
            assert!(refuse_defaults(&inner(plain.clone()), usage).is_ok());
            let err = refuse_defaults(&inner(initial.clone()), usage).unwrap_err();
            assert!(
                err.to_string().contains(
                    "column s.x has an Iceberg initial-default value (column defaults) phlo \
                     cannot apply: phlo applies defaults of top-level columns only"
                ),
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
        let binary = NestedField::optional(4, "b", Type::Primitive(PrimitiveType::Binary))
            .with_initial_default(Literal::binary(vec![1, 2]));
        let err = refuse_defaults(&schema(vec![binary]), DefaultsUse::Read).unwrap_err();
        assert!(
            err.to_string()
                .contains("column b has an Iceberg initial-default value")
                && err.to_string().contains("not of binary"),
            "{err}"
        );
    }
}
