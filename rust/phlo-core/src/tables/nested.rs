//! A data file's nested column read as the table schema's type, field by field id. Inside a
//! struct (also one in a list or a map) Iceberg identifies fields by id as it does top-level
//! columns: a renamed field keeps its values even when another field took its old name, a
//! field the file lacks (added later, or dropped and added again under its old name) reads as
//! null, a dropped field is left out. Arrow's cast matches struct fields by name or position
//! instead, so it would swap, resurrect or refuse them.

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, GenericListArray, MapArray, OffsetSizeTrait, StructArray, new_null_array,
};
use arrow_cast::{CastOptions, can_cast_types, cast_with_options};
use arrow_schema::{ArrowError, DataType, Field, FieldRef, Fields, Schema as ArrowSchema};
use iceberg::spec::{MappedField, NameMapping};
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};

/// Whether a file's column of type `from` can be read as `to` ([`align`]).
pub fn can_align(from: &DataType, to: &DataType) -> bool {
    match (from, to) {
        _ if from == to => true,
        (DataType::Struct(from), DataType::Struct(to)) if has_ids(from) => {
            to.iter().all(|field| match counterpart(from, field) {
                Some(i) => can_align(from[i].data_type(), field.data_type()),
                None => field.is_nullable(),
            })
        }
        (
            DataType::List(from) | DataType::LargeList(from),
            DataType::List(to) | DataType::LargeList(to),
        ) => can_align(from.data_type(), to.data_type()),
        (DataType::Map(from, _), DataType::Map(to, _)) => {
            match (from.data_type(), to.data_type()) {
                (DataType::Struct(from), DataType::Struct(to)) => {
                    from.len() == 2
                        && to.len() == 2
                        && (from.iter().zip(to.iter()))
                            .all(|(f, t)| can_align(f.data_type(), t.data_type()))
                }
                _ => false,
            }
        }
        (DataType::List(_) | DataType::LargeList(_) | DataType::Map(..), _) => false,
        _ => can_cast_types(from, to),
    }
}

/// `array` (a file's column) as type `to`: nested fields matched by field id, leaf values cast
/// (promoted types).
pub fn align(
    array: &ArrayRef,
    to: &DataType,
    options: &CastOptions,
) -> Result<ArrayRef, ArrowError> {
    if array.data_type() == to {
        return Ok(array.clone());
    }
    match (array.data_type(), to) {
        (DataType::Struct(from_fields), DataType::Struct(to_fields)) if has_ids(from_fields) => {
            let from = array
                .as_any()
                .downcast_ref::<StructArray>()
                .ok_or_else(not_struct)?;
            let columns = to_fields
                .iter()
                .map(|field| match counterpart(from_fields, field) {
                    Some(i) => align(from.column(i), field.data_type(), options),
                    None => Ok(new_null_array(field.data_type(), from.len())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = StructArray::try_new_with_length(
                to_fields.clone(),
                columns,
                from.nulls().cloned(),
                from.len(),
            )?;
            Ok(Arc::new(out))
        }
        (DataType::List(_), DataType::List(to_field)) => list::<i32>(array, to_field, options),
        (DataType::LargeList(_), DataType::LargeList(to_field)) => {
            list::<i64>(array, to_field, options)
        }
        // Lists of another offset width: elements aligned first, then the offsets cast.
        (DataType::List(_), DataType::LargeList(to_field)) => {
            let narrow = list::<i32>(array, to_field, options)?;
            cast_with_options(&narrow, to, options)
        }
        (DataType::LargeList(_), DataType::List(to_field)) => {
            let wide = list::<i64>(array, to_field, options)?;
            cast_with_options(&wide, to, options)
        }
        (DataType::Map(..), DataType::Map(to_field, ordered)) => {
            let map = array
                .as_any()
                .downcast_ref::<MapArray>()
                .ok_or_else(not_struct)?;
            let DataType::Struct(to_entries) = to_field.data_type() else {
                return Err(not_struct());
            };
            let entries = map.entries();
            // Keys and values by position: a map's entries are always (key, value).
            let columns = (entries.columns().iter())
                .zip(to_entries.iter())
                .map(|(column, field)| align(column, field.data_type(), options))
                .collect::<Result<Vec<_>, _>>()?;
            let entries =
                StructArray::try_new_with_length(to_entries.clone(), columns, None, entries.len())?;
            let out = MapArray::try_new(
                to_field.clone(),
                map.offsets().clone(),
                entries,
                map.nulls().cloned(),
                *ordered,
            )?;
            Ok(Arc::new(out))
        }
        _ => cast_with_options(array, to, options),
    }
}

/// A list whose elements are aligned to `to_field`'s type, keeping its offsets.
fn list<O: OffsetSizeTrait>(
    array: &ArrayRef,
    to_field: &FieldRef,
    options: &CastOptions,
) -> Result<ArrayRef, ArrowError> {
    let list = array
        .as_any()
        .downcast_ref::<GenericListArray<O>>()
        .ok_or_else(not_struct)?;
    let values = align(list.values(), to_field.data_type(), options)?;
    let out = GenericListArray::<O>::try_new(
        to_field.clone(),
        list.offsets().clone(),
        values,
        list.nulls().cloned(),
    )?;
    Ok(Arc::new(out))
}

/// The position among `from` (the file's fields of a struct) of the field `field` reads: the
/// one of the same field id.
fn counterpart(from: &Fields, field: &Field) -> Option<usize> {
    let id = field_id(field)?;
    from.iter().position(|f| field_id(f) == Some(id))
}

/// Whether a file's struct fields carry field ids (or were given them by the name mapping,
/// [`with_mapped_ids`]). Those of a file without them are left to Arrow's cast, which matches
/// them by name, else by position.
fn has_ids(fields: &Fields) -> bool {
    fields.iter().any(|f| field_id(f).is_some())
}

fn field_id(field: &Field) -> Option<i32> {
    field
        .metadata()
        .get(PARQUET_FIELD_ID_META_KEY)
        .and_then(|id| id.parse().ok())
}

fn not_struct() -> ArrowError {
    ArrowError::CastError("a nested array does not have the type it declares".into())
}

/// The footer of a file written without field ids, its columns and their nested fields given
/// the ids the table's name mapping holds for their names (a field renamed since is found by
/// its old name among the mapping's aliases; a name the mapping lacks gets none, and reads as
/// null). A file with ids, or whose footer the reader does not take back, is left as it is.
pub fn with_mapped_ids(
    metadata: ArrowReaderMetadata,
    mapping: &NameMapping,
) -> ArrowReaderMetadata {
    let schema = metadata.schema();
    if schema.fields().iter().any(|f| field_id(f).is_some()) {
        return metadata;
    }
    let top: Vec<&MappedField> = mapping.fields().iter().collect();
    let fields: Vec<Field> = (schema.fields().iter())
        .map(|f| mapped(f, named(&top, f.name())))
        .collect();
    let supplied = Arc::new(ArrowSchema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    ));
    let options = ArrowReaderOptions::new().with_schema(supplied);
    ArrowReaderMetadata::try_new(metadata.metadata().clone(), options).unwrap_or(metadata)
}

/// `field` with the id of `mapping` and its nested fields with theirs.
fn mapped(field: &Field, mapping: Option<&MappedField>) -> Field {
    let Some(mapping) = mapping else {
        return field.clone();
    };
    let children: Vec<&MappedField> = mapping.fields().iter().map(|f| f.as_ref()).collect();
    let child = |f: &Field, name: &str| Arc::new(mapped(f, named(&children, name)));
    let data_type = match field.data_type() {
        DataType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| child(f, f.name()).as_ref().clone())
                .collect(),
        ),
        DataType::List(element) => DataType::List(child(element, "element")),
        DataType::LargeList(element) => DataType::LargeList(child(element, "element")),
        DataType::Map(entries, sorted) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                let kv = Fields::from(vec![child(&kv[0], "key"), child(&kv[1], "value")]);
                let entries = entries
                    .as_ref()
                    .clone()
                    .with_data_type(DataType::Struct(kv));
                DataType::Map(Arc::new(entries), *sorted)
            }
            _ => field.data_type().clone(),
        },
        other => other.clone(),
    };
    let mut metadata = field.metadata().clone();
    if let Some(id) = mapping.field_id() {
        metadata.insert(PARQUET_FIELD_ID_META_KEY.into(), id.to_string());
    }
    field
        .clone()
        .with_data_type(data_type)
        .with_metadata(metadata)
}

/// The mapped field of `fields` that holds `name` among its names.
fn named<'a>(fields: &[&'a MappedField], name: &str) -> Option<&'a MappedField> {
    fields
        .iter()
        .copied()
        .find(|f| f.names().iter().any(|n| n == name))
}
