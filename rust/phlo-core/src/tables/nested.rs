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
use arrow_schema::{ArrowError, DataType, Field, FieldRef, Fields};
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;

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

/// Whether a file's struct fields carry field ids. Those of a file written without them (read
/// through the table's name mapping, whose nested names are not consulted yet) are left to
/// Arrow's cast, which matches them by name, else by position.
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
