//! Arrow ⇄ Iceberg schemas: type mapping with fresh field ids, partition specs from
//! `(column, transform)` pairs, and casting incoming batches to a table's schema.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, new_null_array};
use arrow_cast::{CastOptions, can_cast_types, cast_with_options};
use arrow_schema::{
    DataType, Field, FieldRef, Schema as ArrowSchema, SchemaRef as ArrowSchemaRef, TimeUnit,
};
use iceberg::spec::{
    ListType, MapType, NestedField, NestedFieldRef, PartitionSpec, PrimitiveType, Schema,
    StructType, TableMetadata, Transform, Type, UnboundPartitionSpec,
};

use crate::error::{Context, Error, Location, Result};
use crate::tables::column_defaults::repeated;
use crate::tables::promoted_partitions::wide;

/// Field ids phlo reserves for its metadata columns (see `stage`), the same in every table.
pub const RESERVED_FIELD_IDS: [(&str, i32); 4] = [
    ("_phlo_row_id", 10_001),
    ("_phlo_ingested_at", 10_002),
    ("_phlo_partition_date", 10_003),
    ("_phlo_run_id", 10_004),
];

fn reserved_field_id(name: &str) -> Option<i32> {
    RESERVED_FIELD_IDS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, id)| *id)
}

/// Converts an Arrow schema into an Iceberg schema, assigning field ids 1..n (top-level fields
/// first, nested fields after them, as Iceberg does for new tables); phlo's metadata columns get
/// their reserved ids. Non-nullable Arrow fields become required Iceberg fields.
pub fn iceberg_schema_from_arrow(arrow: &ArrowSchema) -> Result<Schema> {
    if arrow.fields().is_empty() {
        return Err(Error::schema(
            "the schema has no columns",
            Location::default(),
            "give the table at least one column",
        ));
    }
    check_column_names(arrow)?;
    let reserved = reserved_field_id;
    let user_fields = arrow
        .fields()
        .iter()
        .filter(|f| reserved(f.name()).is_none())
        .count() as i32;
    let mut ids = FieldIds {
        next: user_fields + 1,
    };
    let mut next_top_level = 0;
    let mut fields = Vec::with_capacity(arrow.fields().len());
    for field in arrow.fields() {
        let id = reserved(field.name()).unwrap_or_else(|| {
            next_top_level += 1;
            next_top_level
        });
        fields.push(to_nested_field(id, field, &mut ids)?);
    }
    if ids.next > RESERVED_FIELD_IDS[0].1 {
        return Err(Error::schema(
            "the schema has more fields than phlo supports",
            Location::default(),
            "keep tables below 10,000 fields (nested fields included)",
        ));
    }
    Schema::builder()
        .with_fields(fields)
        .build()
        .context(|| "building the Iceberg schema".into())
}

/// Errors naming the first column whose name is empty, holds control characters, or is used
/// twice: by two columns (`id`, `id`), or by a column and a struct field (`a.b`, and `b` in
/// struct `a`). Iceberg addresses columns by these names, so data with such names would lose a
/// column or fail deep in a write; this runs before anything is written.
pub fn check_column_names(schema: &ArrowSchema) -> Result<()> {
    let mut seen = HashSet::new();
    check_names(schema.fields(), "", &mut seen)
}

fn check_names<'a>(
    fields: impl IntoIterator<Item = &'a FieldRef>,
    parent: &str,
    seen: &mut HashSet<String>,
) -> Result<()> {
    for field in fields {
        let name = field.name();
        let path = match parent {
            "" => name.clone(),
            _ => format!("{parent}.{name}"),
        };
        let at = Location {
            table: None,
            column: Some(path.clone()),
        };
        if name.is_empty() {
            return Err(Error::schema(
                "a column has an empty name",
                at,
                "name every column (pyarrow: pa.table({\"id\": ...}) or table.rename_columns)",
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(Error::schema(
                format!("column name {name:?} holds control characters"),
                at,
                "rename the column without tabs, newlines or other control characters",
            ));
        }
        if !seen.insert(path.clone()) {
            return Err(Error::schema(
                format!("column {path} appears twice"),
                at,
                "give every column a distinct name (for a struct field, a name that no \
                 top-level column spells with dots)",
            ));
        }
        match field.data_type() {
            DataType::Struct(children) => check_names(children, &path, seen)?,
            DataType::List(el)
            | DataType::LargeList(el)
            | DataType::ListView(el)
            | DataType::LargeListView(el)
            | DataType::FixedSizeList(el, _)
            | DataType::Map(el, _) => check_names([el], &path, seen)?,
            _ => {}
        }
    }
    Ok(())
}

struct FieldIds {
    next: i32,
}

impl FieldIds {
    fn take(&mut self) -> i32 {
        self.next += 1;
        self.next - 1
    }
}

fn to_nested_field(id: i32, field: &Field, ids: &mut FieldIds) -> Result<NestedFieldRef> {
    let ty = iceberg_type_from_arrow(field.name(), field.data_type(), ids)?;
    let nested = if field.is_nullable() {
        NestedField::optional(id, field.name(), ty)
    } else {
        NestedField::required(id, field.name(), ty)
    };
    let doc = field
        .metadata()
        .get("doc")
        .or_else(|| field.metadata().get("description"));
    Ok(Arc::new(match doc {
        Some(doc) => nested.with_doc(doc),
        None => nested,
    }))
}

fn iceberg_type_from_arrow(column: &str, dt: &DataType, ids: &mut FieldIds) -> Result<Type> {
    use PrimitiveType as P;
    let primitive = |p: PrimitiveType| Ok(Type::Primitive(p));
    match dt {
        DataType::Boolean => primitive(P::Boolean),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => primitive(P::Int),
        DataType::UInt8 | DataType::UInt16 => primitive(P::Int),
        DataType::Int64 | DataType::UInt32 => primitive(P::Long),
        DataType::Float16 | DataType::Float32 => primitive(P::Float),
        DataType::Float64 => primitive(P::Double),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s)
            if *p <= 38 && *s >= 0 =>
        {
            primitive(P::Decimal {
                precision: *p as u32,
                scale: *s as u32,
            })
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => primitive(P::String),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => primitive(P::Binary),
        DataType::FixedSizeBinary(n) if *n > 0 => primitive(P::Fixed(*n as u64)),
        DataType::Date32 | DataType::Date64 => primitive(P::Date),
        DataType::Time32(_) | DataType::Time64(_) => primitive(P::Time),
        DataType::Timestamp(_, Some(_)) => primitive(P::Timestamptz),
        DataType::Timestamp(_, None) => primitive(P::Timestamp),
        DataType::Dictionary(_, value) => iceberg_type_from_arrow(column, value, ids),
        DataType::List(el)
        | DataType::LargeList(el)
        | DataType::ListView(el)
        | DataType::LargeListView(el)
        | DataType::FixedSizeList(el, _) => {
            let id = ids.take();
            let element = to_nested_field(id, el, ids)?;
            Ok(Type::List(ListType {
                element_field: element,
            }))
        }
        DataType::Struct(fields) => {
            let first = ids.next;
            ids.next += fields.len() as i32;
            let nested = fields
                .iter()
                .enumerate()
                .map(|(i, f)| to_nested_field(first + i as i32, f, ids))
                .collect::<Result<Vec<_>>>()?;
            Ok(Type::Struct(StructType::new(nested)))
        }
        DataType::Map(entries, _) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return Err(unsupported(column, dt));
            };
            let (key_id, value_id) = (ids.take(), ids.take());
            let key = to_nested_field(key_id, &kv[0], ids)?;
            let value = to_nested_field(value_id, &kv[1], ids)?;
            Ok(Type::Map(MapType {
                key_field: key,
                value_field: value,
            }))
        }
        _ => Err(unsupported(column, dt)),
    }
}

fn unsupported(column: &str, dt: &DataType) -> Error {
    Error::schema(
        format!("Arrow type {dt} has no Iceberg equivalent"),
        Location {
            table: None,
            column: Some(column.into()),
        },
        "cast the column to a supported type (integers, floats, decimal, string, binary, \
         date, time, timestamp, list, struct, map) before writing",
    )
}

/// The Arrow schema of an Iceberg schema, with `PARQUET:field_id` metadata on every field.
pub fn arrow_schema_of(schema: &Schema) -> Result<ArrowSchemaRef> {
    iceberg::arrow::schema_to_arrow_schema(schema)
        .map(Arc::new)
        .context(|| "converting the Iceberg schema to Arrow".into())
}

/// Builds an unbound partition spec from `(column, transform)` pairs such as
/// `("ts", "day")`, `("region", "identity")`, `("id", "bucket[16]")`. Everything iceberg-rust
/// would only trip over at the first write (a bucket count of 0 divides by zero there) is
/// refused here, naming the transform and column: unknown transforms, counts and widths that
/// are not integers from 1 to 2^31-1, transforms that do not fit the column's type, columns
/// inside lists or maps, the same partition field twice, two time transforms of one column,
/// and partition field names that clash with a column.
pub fn partition_spec(
    schema: &Schema,
    partition_by: &[(String, String)],
) -> Result<UnboundPartitionSpec> {
    let mut builder = UnboundPartitionSpec::builder();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut time_transforms: HashMap<&str, String> = HashMap::new();
    for (column, transform_name) in partition_by {
        let invalid = |message: String, hint: &str| Error::InvalidInput {
            message,
            at: Location {
                table: None,
                column: Some(column.clone()),
            },
            hint: hint.into(),
        };
        let field = schema.field_by_name(column).ok_or_else(|| {
            invalid(
                format!("partition column {column} is not in the schema"),
                "partition by one of the table's columns",
            )
        })?;
        if schema.accessor_by_field_id(field.id).is_none() {
            return Err(invalid(
                format!("partition column {column} is inside a list or map"),
                "partition by a top-level column or a field of a struct column",
            ));
        }
        let transform = parse_transform(transform_name).map_err(|message| {
            invalid(
                format!("partition transform {transform_name:?} on {column}: {message}"),
                "use identity, year, month, day, hour, bucket(N, column) or \
                 truncate(W, column), with N and W whole numbers from 1 to 2147483647",
            )
        })?;
        let described = format!("{transform}({column})");
        if transform.result_type(&field.field_type).is_err() {
            return Err(invalid(
                format!(
                    "{described}: {transform} cannot apply to a {} column",
                    field.field_type
                ),
                transform_fits(&transform),
            ));
        }
        if let Some(reason) = uncomputable(&transform, &field.field_type) {
            return Err(invalid(
                format!("{described}: {reason}"),
                "partition the column by bucket(N, column) instead",
            ));
        }
        let name = partition_field_name(column, &transform);
        if let Some(earlier) = names.insert(name.clone(), described.clone()) {
            return Err(invalid(
                format!("partition field {name} is given twice ({earlier} and {described})"),
                "partition by each column and transform once",
            ));
        }
        let is_time = matches!(
            transform,
            Transform::Year | Transform::Month | Transform::Day | Transform::Hour
        );
        if is_time && let Some(earlier) = time_transforms.insert(column, described.clone()) {
            return Err(invalid(
                format!("{earlier} and {described} partition {column} by time twice"),
                "keep one of them: the finer one already implies the coarser",
            ));
        }
        if transform != Transform::Identity && schema.field_by_name(&name).is_some() {
            return Err(invalid(
                format!("partition field {name} of {described} has the name of a column"),
                "rename that column, or partition differently",
            ));
        }
        builder = builder
            .add_partition_field(field.id, name, transform)
            .context(|| format!("adding partition field {described}"))?;
    }
    Ok(builder.build())
}

/// The transforms a table can be created with. Stricter than `Transform::from_str`, which
/// also takes `void`, `unknown` and `bucket16` (without brackets) and bucket counts of 0.
fn parse_transform(text: &str) -> std::result::Result<Transform, String> {
    let text = text.trim().to_ascii_lowercase();
    let argument = |name: &str| -> Option<std::result::Result<u32, String>> {
        let inner = text.strip_prefix(name)?;
        let Some(number) = inner.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
            return Some(Err(format!(
                "write {name} with its argument: {name}(N, column)"
            )));
        };
        Some(match number.trim().parse::<i64>() {
            Ok(n) if (1..=i64::from(i32::MAX)).contains(&n) => Ok(n as u32),
            Ok(n) => Err(format!(
                "{name} takes a whole number from 1 to 2147483647, got {n}"
            )),
            Err(_) => Err(format!(
                "{name} takes a whole number from 1 to 2147483647, got {:?}",
                number.trim()
            )),
        })
    };
    match text.as_str() {
        "identity" => Ok(Transform::Identity),
        "year" => Ok(Transform::Year),
        "month" => Ok(Transform::Month),
        "day" => Ok(Transform::Day),
        "hour" => Ok(Transform::Hour),
        _ => {
            if let Some(n) = argument("bucket") {
                return n.map(Transform::Bucket);
            }
            if let Some(w) = argument("truncate") {
                return w.map(Transform::Truncate);
            }
            Err("unknown transform".into())
        }
    }
}

/// Why phlo cannot compute `transform` of a column of type `source`, when it cannot:
/// iceberg-rust 0.10 truncates binary values only in the Arrow type phlo does not read binary
/// columns as (apache/iceberg-rust#3119).
fn uncomputable(transform: &Transform, source: &Type) -> Option<&'static str> {
    match (transform, source) {
        (Transform::Truncate(_), Type::Primitive(PrimitiveType::Binary)) => {
            Some("phlo cannot compute truncate of a binary column")
        }
        _ => None,
    }
}

/// Refuses, before anything is written, a partition spec (another engine's) with a field phlo
/// cannot compute: the error names the field and its column.
pub fn refuse_uncomputable_partitions(spec: &PartitionSpec, schema: &Schema) -> Result<()> {
    for field in spec.fields() {
        let Some(source) = schema.field_by_id(field.source_id) else {
            continue;
        };
        if let Some(reason) = uncomputable(&field.transform, &source.field_type) {
            return Err(Error::schema(
                format!(
                    "partition field {} ({}({})): {reason}, so phlo cannot write this table",
                    field.name, field.transform, source.name
                ),
                Location {
                    table: None,
                    column: Some(source.name.clone()),
                },
                "write the table with the engine that created it, or change its partition \
                 spec (e.g. bucket[N] on the column instead)",
            ));
        }
    }
    Ok(())
}

/// Which column types a transform applies to.
fn transform_fits(transform: &Transform) -> &'static str {
    match transform {
        Transform::Year | Transform::Month | Transform::Day => {
            "year, month and day apply to date and timestamp columns"
        }
        Transform::Hour => "hour applies to timestamp columns",
        Transform::Bucket(_) => {
            "bucket applies to integer, decimal, date, time, timestamp, string, uuid and binary \
             columns (not floats or booleans)"
        }
        Transform::Truncate(_) => "truncate applies to integer, decimal and string columns",
        _ => "identity applies to any column that is not a struct, list or map",
    }
}

/// Partition field names follow the convention of PyIceberg and Spark (`ts_day`, `id_bucket`).
fn partition_field_name(column: &str, transform: &Transform) -> String {
    match transform {
        Transform::Identity => column.to_string(),
        Transform::Bucket(_) => format!("{column}_bucket"),
        Transform::Truncate(_) => format!("{column}_trunc"),
        other => format!("{column}_{other}"),
    }
}

/// Casts a batch to the table's Arrow schema: columns are matched by name, cast to the table
/// type (failing instead of silently nulling values that do not fit), columns missing from the
/// batch are filled with their `defaults` (the target's columns' `write-default`, one element
/// each, see [`crate::tables::column_defaults::write_defaults`]; empty: none), optional ones without one with
/// nulls. Extra or repeated columns, missing required columns without a default, nulls in
/// required columns and impossible casts are `Error::Schema` naming the column.
pub fn cast_to_schema(
    batch: &RecordBatch,
    target: &ArrowSchemaRef,
    defaults: &[Option<ArrayRef>],
) -> Result<RecordBatch> {
    let source = batch.schema();
    check_column_names(&source)?;
    if let Some(extra) = source
        .fields()
        .iter()
        .find(|f| target.field_with_name(f.name()).is_err())
    {
        return Err(Error::schema(
            format!("column {} is not in the table schema", extra.name()),
            Location {
                table: None,
                column: Some(extra.name().clone()),
            },
            format!(
                "drop the column, or add it to the table first (table columns: {})",
                column_names(target)
            ),
        ));
    }
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let columns = target
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let at = || Location {
                table: None,
                column: Some(field.name().clone()),
            };
            let Some((index, _)) = source.column_with_name(field.name()) else {
                if let Some(Some(value)) = defaults.get(i) {
                    return repeated(value, batch.num_rows());
                }
                if field.is_nullable() {
                    return Ok(new_null_array(field.data_type(), batch.num_rows()));
                }
                return Err(Error::schema(
                    "required column is missing",
                    at(),
                    "add the column to the data; required columns must be present and non-null",
                ));
            };
            let column = batch.column(index);
            let cast = cast_column(column, field.data_type(), &options).map_err(|reason| {
                Error::schema(
                    format!(
                        "cannot cast {} to {}: {reason}",
                        column.data_type(),
                        field.data_type()
                    ),
                    at(),
                    "convert the column to the table's type before writing",
                )
            })?;
            if !field.is_nullable() && cast.null_count() > 0 {
                return Err(Error::schema(
                    format!("required column has {} null value(s)", cast.null_count()),
                    at(),
                    "fill or drop the nulls; required columns cannot hold nulls",
                ));
            }
            Ok(cast)
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(target.clone(), columns).context(|| "assembling the cast batch".into())
}

fn cast_column(
    column: &ArrayRef,
    to: &DataType,
    options: &CastOptions,
) -> std::result::Result<ArrayRef, String> {
    if column.data_type() == to {
        return Ok(column.clone());
    }
    if let (DataType::Timestamp(_, None), DataType::Timestamp(_, Some(_)))
    | (DataType::Timestamp(_, Some(_)), DataType::Timestamp(_, None)) = (column.data_type(), to)
    {
        return Err("timestamps with and without time zone do not mix; \
                    localize or strip the time zone first"
            .into());
    }
    if !implicitly_convertible(column.data_type(), to) || !can_cast_types(column.data_type(), to) {
        return Err(
            "phlo converts only within a kind of type (integers, floats and \
                    decimals, strings, binaries, dates, times, timestamps)"
                .into(),
        );
    }
    // Nested types must keep the target's field metadata (Iceberg field ids), so they are
    // cast to the exact target type; time units are converted (ns → µs) only when lossless.
    let cast = cast_with_options(column, to, options).map_err(|e| e.to_string())?;
    if let (
        DataType::Timestamp(TimeUnit::Nanosecond, _),
        DataType::Timestamp(TimeUnit::Microsecond, _),
    ) = (column.data_type(), to)
    {
        check_lossless_ns_to_us(column)?;
    }
    Ok(cast)
}

/// The conversions a write applies on its own: widening or narrowing within a kind (narrowing
/// is checked value by value), integers to floats or decimals. Anything else (text to numbers,
/// floats to integers, numbers to text) needs an explicit conversion, e.g. a Pandera schema
/// with `coerce=True`.
fn implicitly_convertible(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let numeric = |t: &DataType| t.is_integer() || t.is_floating() || is_decimal(t);
    match (from, to) {
        (Null, _) => true,
        (Dictionary(_, value), to) => implicitly_convertible(value, to),
        (a, b) if a.is_integer() && numeric(b) => true,
        (a, b) if (a.is_floating() || is_decimal(a)) && (b.is_floating() || is_decimal(b)) => true,
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) => true,
        (
            Binary | LargeBinary | BinaryView | FixedSizeBinary(_),
            Binary | LargeBinary | BinaryView,
        ) => true,
        (Date32 | Date64, Date32 | Date64) => true,
        (Time32(_) | Time64(_), Time32(_) | Time64(_)) => true,
        (Timestamp(..), Timestamp(..)) => true,
        (a, b) if a.is_nested() && b.is_nested() => true,
        (a, b) => a == b,
    }
}

fn is_decimal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
    )
}

/// How a write treats a batch whose columns differ from the table's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SchemaEvolution {
    /// The table schema never changes: extra columns are a `SchemaError`.
    #[default]
    Strict,
    /// New columns are added (nullable), and int→long, float→double and wider decimals are
    /// promoted; anything else is still a `SchemaError`.
    Evolve,
}

impl SchemaEvolution {
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "strict" => Ok(Self::Strict),
            "evolve" => Ok(Self::Evolve),
            other => Err(Error::invalid(
                format!("unknown schema_evolution {other:?}"),
                "use \"strict\" (the default) or \"evolve\"",
            )),
        }
    }
}

/// The schema the table's current one must become to take batches of `incoming` under
/// `Evolve`: new columns appended as optional fields with fresh ids, safe type promotions
/// applied. `None` when nothing changes. Fresh ids follow the table's `last-column-id`, not
/// the current schema's highest id: the id of a dropped column is never reused (old files
/// would bring its values back), and a reserved id only while no column ever had it.
pub fn evolve(metadata: &TableMetadata, incoming: &ArrowSchema) -> Result<Option<Schema>> {
    use PrimitiveType as P;
    let current = metadata.current_schema();
    let mut ids = FieldIds {
        next: metadata.last_column_id() + 1,
    };
    let mut changed = false;
    let mut fields: Vec<NestedFieldRef> = Vec::new();
    for field in current.as_struct().fields() {
        let promoted = incoming.field_with_name(&field.name).ok().and_then(|f| {
            match (field.field_type.as_ref(), f.data_type()) {
                (Type::Primitive(P::Int), DataType::Int64 | DataType::UInt32) => Some(P::Long),
                (Type::Primitive(P::Float), DataType::Float64) => Some(P::Double),
                (
                    Type::Primitive(P::Decimal { precision, scale }),
                    DataType::Decimal128(p, s) | DataType::Decimal64(p, s),
                ) if *s >= 0 && *s as u32 == *scale && *p as u32 > *precision && *p <= 38 => {
                    Some(P::Decimal {
                        precision: *p as u32,
                        scale: *scale,
                    })
                }
                _ => None,
            }
        });
        match promoted {
            Some(p) => {
                changed = true;
                let mut widened = field.as_ref().clone();
                widened.field_type = Box::new(Type::Primitive(p));
                // Column defaults take the new type too (an int literal of a long column
                // cannot be written out).
                widened.initial_default = widened.initial_default.as_ref().map(wide);
                widened.write_default = widened.write_default.as_ref().map(wide);
                fields.push(Arc::new(widened));
            }
            None => fields.push(field.clone()),
        }
    }
    for field in incoming.fields() {
        if current.field_by_name(field.name()).is_none() {
            changed = true;
            let id = reserved_field_id(field.name())
                .filter(|id| *id > metadata.last_column_id())
                .unwrap_or_else(|| ids.take());
            let added = to_nested_field(id, &field.as_ref().clone().with_nullable(true), &mut ids)?;
            fields.push(added);
        }
    }
    if !changed {
        return Ok(None);
    }
    Schema::builder()
        .with_schema_id(current.schema_id() + 1)
        .with_identifier_field_ids(current.identifier_field_ids())
        .with_fields(fields)
        .build()
        .map(Some)
        .context(|| "building the evolved schema".into())
}

/// Errors (naming the column) unless every column of `incoming` can be written into
/// `target` by the implicit conversions of a write; checked before a schema change commits.
pub fn check_convertible(incoming: &ArrowSchema, target: &ArrowSchema) -> Result<()> {
    for field in incoming.fields() {
        let Ok(to) = target.field_with_name(field.name()) else {
            continue;
        };
        if !implicitly_convertible(field.data_type(), to.data_type()) {
            return Err(Error::schema(
                format!("cannot write {} into {}", field.data_type(), to.data_type()),
                Location {
                    table: None,
                    column: Some(field.name().clone()),
                },
                "convert the column first (e.g. a Pandera schema with coerce=True)",
            ));
        }
    }
    Ok(())
}

fn check_lossless_ns_to_us(column: &ArrayRef) -> std::result::Result<(), String> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampNanosecondType;
    let values = column.as_primitive::<TimestampNanosecondType>();
    match values.iter().flatten().find(|v| v % 1000 != 0) {
        Some(v) => Err(format!(
            "nanosecond timestamp {v} would lose precision in a microsecond column"
        )),
        None => Ok(()),
    }
}

fn column_names(schema: &ArrowSchema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use arrow_array::{Int32Array, StringArray, TimestampNanosecondArray};
    use arrow_schema::Fields;

    use super::*;

    fn new_table(schema: Schema) -> TableMetadata {
        let creation = iceberg::TableCreation::builder()
            .name("t".into())
            .location("file:///tmp/t".into())
            .schema(schema)
            .build();
        iceberg::spec::TableMetadataBuilder::from_table_creation(creation)
            .and_then(|b| b.build())
            .unwrap()
            .metadata
    }

    fn with_schema(table: &TableMetadata, schema: Schema) -> TableMetadata {
        iceberg::spec::TableMetadataBuilder::new_from_metadata(table.clone(), None)
            .add_current_schema(schema)
            .and_then(|b| b.build())
            .unwrap()
            .metadata
    }

    #[test]
    fn metadata_columns_get_reserved_ids_and_evolution_adds_and_promotes() {
        let arrow = ArrowSchema::new(vec![
            Field::new("_phlo_row_id", DataType::Utf8, false),
            Field::new("n", DataType::Int32, true),
            Field::new("x", DataType::Float32, true),
            Field::new("_phlo_run_id", DataType::Utf8, false),
        ]);
        let schema = iceberg_schema_from_arrow(&arrow).unwrap();
        let id = |s: &Schema, name: &str| s.field_by_name(name).unwrap().id;
        assert_eq!(id(&schema, "_phlo_row_id"), 10_001);
        assert_eq!(id(&schema, "_phlo_run_id"), 10_004);
        assert_eq!((id(&schema, "n"), id(&schema, "x")), (1, 2));

        let incoming = ArrowSchema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
            Field::new("note", DataType::Utf8, false),
        ]);
        // A new table's ids are 1..4 (iceberg-rust renumbers them on creation).
        let table = new_table(schema.clone());
        let evolved = evolve(&table, &incoming).unwrap().unwrap();
        let field = |name: &str| evolved.field_by_name(name).unwrap().clone();
        assert_eq!(*field("n").field_type, Type::Primitive(PrimitiveType::Long));
        assert_eq!(
            *field("x").field_type,
            Type::Primitive(PrimitiveType::Double)
        );
        // New columns are optional (old rows lack them) with a fresh id; ids never change.
        assert!(!field("note").required);
        assert_eq!(field("note").id, 5);
        assert_eq!(field("n").id, 2);
        let table = with_schema(&table, evolved);
        assert!(evolve(&table, &incoming).unwrap().is_none());
        // After `note` (id 5) is dropped, a column added again gets id 6, not 5 again.
        let fields = table.current_schema().as_struct().fields();
        let dropped = Schema::builder()
            .with_schema_id(table.current_schema_id() + 1)
            .with_fields(fields.iter().filter(|f| f.name != "note").cloned())
            .build()
            .unwrap();
        let table = with_schema(&table, dropped);
        let again = evolve(&table, &incoming).unwrap().unwrap();
        assert_eq!(again.field_by_name("note").unwrap().id, 6);
        // A reserved id is taken only while no column ever had it.
        let run_id = ArrowSchema::new(vec![Field::new("_phlo_run_id", DataType::Utf8, true)]);
        let one = ArrowSchema::new(vec![Field::new("a", DataType::Int64, true)]);
        let plain = new_table(iceberg_schema_from_arrow(&one).unwrap());
        let added = evolve(&plain, &run_id).unwrap().unwrap();
        assert_eq!(id(&added, "_phlo_run_id"), 10_004);
        let readded = with_schema(
            &with_schema(&plain, added),
            plain.current_schema().as_ref().clone(),
        );
        let again = evolve(&readded, &run_id).unwrap().unwrap();
        assert_eq!(id(&again, "_phlo_run_id"), 10_005);
        // Narrower batches need no change; text into a number column is refused.
        let narrow = ArrowSchema::new(vec![Field::new("n", DataType::Int8, true)]);
        assert!(evolve(&table, &narrow).unwrap().is_none());
        let text = ArrowSchema::new(vec![Field::new("n", DataType::Utf8, true)]);
        let target = arrow_schema_of(&schema).unwrap();
        let err = check_convertible(&text, &target).unwrap_err();
        assert_eq!(err.location().column.as_deref(), Some("n"));
        assert!(check_convertible(&narrow, &target).is_ok());
        assert!(SchemaEvolution::parse("sometimes").is_err());
    }

    #[test]
    fn maps_arrow_types_and_assigns_unique_ids() {
        let arrow = ArrowSchema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("n", DataType::Int16, true),
            Field::new("price", DataType::Decimal128(12, 2), true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                "local",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
            Field::new("day", DataType::Date32, true),
            Field::new("tags", DataType::new_list(DataType::Utf8, true), true),
            Field::new(
                "point",
                DataType::Struct(Fields::from(vec![Field::new("x", DataType::Float64, true)])),
                true,
            ),
        ]);
        let schema = iceberg_schema_from_arrow(&arrow).unwrap();
        let ty = |name: &str| schema.field_by_name(name).unwrap().field_type.to_string();
        assert_eq!(ty("id"), "long");
        assert!(schema.field_by_name("id").unwrap().required);
        assert_eq!(ty("n"), "int");
        assert_eq!(ty("price"), "decimal(12, 2)");
        assert_eq!(ty("ts"), "timestamptz");
        assert_eq!(ty("local"), "timestamp");
        assert_eq!(ty("day"), "date");
        let mut ids: Vec<i32> = (1..=schema.highest_field_id())
            .filter(|id| schema.field_by_id(*id).is_some())
            .collect();
        ids.dedup();
        assert_eq!(
            ids.len(),
            10,
            "8 top-level fields + list element + struct field"
        );
    }

    #[test]
    fn unsupported_types_name_the_column() {
        let arrow = ArrowSchema::new(vec![Field::new("big", DataType::UInt64, true)]);
        let err = iceberg_schema_from_arrow(&arrow).unwrap_err();
        assert_eq!(err.code(), "schema");
        assert_eq!(err.location().column.as_deref(), Some("big"));
    }

    #[test]
    fn partition_transforms_parse_and_validate() {
        let arrow = ArrowSchema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new("region", DataType::Utf8, true),
        ]);
        let schema = iceberg_schema_from_arrow(&arrow).unwrap();
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        for transform in ["year", "month", "day", "hour", "identity", "bucket[8]"] {
            let spec = partition_spec(&schema, &pairs(&[("ts", transform)])).unwrap();
            assert_eq!(spec.fields()[0].transform.to_string(), transform);
        }
        let spec =
            partition_spec(&schema, &pairs(&[("ts", "day"), ("region", "identity")])).unwrap();
        let names: Vec<_> = spec.fields().iter().map(|f| f.name.clone()).collect();
        assert_eq!(names, ["ts_day", "region"]);
        for bad in [("nope", "day"), ("ts", "weekly"), ("region", "day")] {
            let err = partition_spec(&schema, &pairs(&[bad])).unwrap_err();
            assert_eq!(err.code(), "invalid_input", "{bad:?}");
        }
    }

    #[test]
    fn partition_specs_refuse_what_would_fail_at_the_first_write() {
        let arrow = ArrowSchema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("x", DataType::Float64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new("ts_day", DataType::Date32, true),
            Field::new("tags", DataType::new_list(DataType::Utf8, true), true),
        ]);
        let schema = iceberg_schema_from_arrow(&arrow).unwrap();
        let spec = |v: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = v
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            partition_spec(&schema, &pairs)
        };
        let ok = spec(&[
            ("id", "bucket[16]"),
            ("name", "truncate[4]"),
            ("ts", "Hour"),
        ])
        .unwrap();
        let names: Vec<_> = ok.fields().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["id_bucket", "name_trunc", "ts_hour"]);
        assert!(spec(&[("id", "bucket[2147483647]")]).is_ok());
        for (bad, column, says) in [
            (vec![("id", "bucket[0]")], "id", "got 0"),
            (vec![("name", "truncate[0]")], "name", "got 0"),
            (vec![("id", "bucket[-1]")], "id", "got -1"),
            (vec![("id", "bucket[2147483648]")], "id", "got 2147483648"),
            (vec![("id", "bucket[x]")], "id", "got \"x\""),
            (vec![("id", "bucket16")], "id", "bucket(N, column)"),
            (vec![("id", "void")], "id", "unknown transform"),
            (vec![("id", "unknown")], "id", "unknown transform"),
            (vec![("name", "year")], "name", "year(name)"),
            (vec![("x", "bucket[4]")], "x", "double"),
            (vec![("ts", "truncate[4]")], "ts", "timestamp"),
            (
                vec![("tags.element", "identity")],
                "tags.element",
                "list or map",
            ),
            (
                vec![("id", "identity"), ("id", "identity")],
                "id",
                "given twice",
            ),
            (vec![("ts", "hour"), ("ts", "month")], "ts", "by time twice"),
            (vec![("ts", "day")], "ts", "ts_day"),
        ] {
            let err = spec(&bad).unwrap_err();
            assert_eq!(err.code(), "invalid_input", "{bad:?}");
            assert_eq!(err.location().column.as_deref(), Some(column), "{bad:?}");
            assert!(err.to_string().contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn column_names_must_be_distinct_non_empty_and_printable() {
        let check = |fields: Vec<Field>| check_column_names(&ArrowSchema::new(fields));
        let int = |name: &str| Field::new(name, DataType::Int64, true);
        let point =
            |fields: Vec<Field>| Field::new("point", DataType::Struct(Fields::from(fields)), true);
        assert!(check(vec![int("a"), point(vec![int("a")])]).is_ok());
        for (fields, column) in [
            (vec![int("id"), int("id")], "id"),
            (vec![point(vec![int("x"), int("x")])], "point.x"),
            (vec![point(vec![int("x")]), int("point.x")], "point.x"),
            (vec![int("")], ""),
            (vec![int("a\tb")], "a\tb"),
        ] {
            let err = check(fields).unwrap_err();
            assert_eq!(err.code(), "schema");
            assert_eq!(err.location().column.as_deref(), Some(column));
        }
        let err = iceberg_schema_from_arrow(&ArrowSchema::empty()).unwrap_err();
        assert!(err.to_string().contains("no columns"));
        let twice = RecordBatch::try_new(
            Arc::new(ArrowSchema::new(vec![int("id"), int("id")])),
            vec![
                Arc::new(arrow_array::Int64Array::from(vec![1])),
                Arc::new(arrow_array::Int64Array::from(vec![2])),
            ],
        )
        .unwrap();
        let table = Arc::new(ArrowSchema::new(vec![int("id")]));
        let err = cast_to_schema(&twice, &table, &[]).unwrap_err();
        assert_eq!(err.location().column.as_deref(), Some("id"));
    }

    #[test]
    fn casts_fill_optional_and_reject_what_does_not_fit() {
        let table = Arc::new(ArrowSchema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::new(ArrowSchema::new(vec![Field::new(
                "id",
                DataType::Int32,
                true,
            )])),
            vec![Arc::new(Int32Array::from(vec![1, 2]))],
        )
        .unwrap();
        let cast = cast_to_schema(&batch, &table, &[]).unwrap();
        assert_eq!(cast.schema(), table);
        assert_eq!(cast.column(1).null_count(), 2);

        let with_null = RecordBatch::try_new(
            Arc::new(ArrowSchema::new(vec![Field::new(
                "id",
                DataType::Int32,
                true,
            )])),
            vec![Arc::new(Int32Array::from(vec![Some(1), None]))],
        )
        .unwrap();
        assert!(
            cast_to_schema(&with_null, &table, &[])
                .unwrap_err()
                .to_string()
                .contains("null")
        );

        let extra = RecordBatch::try_new(
            Arc::new(ArrowSchema::new(vec![
                Field::new("id", DataType::Int32, false),
                Field::new("surprise", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(Int32Array::from(vec![1])),
                Arc::new(StringArray::from(vec!["x"])),
            ],
        )
        .unwrap();
        let err = cast_to_schema(&extra, &table, &[]).unwrap_err();
        assert_eq!(err.location().column.as_deref(), Some("surprise"));

        let ns = RecordBatch::try_new(
            Arc::new(ArrowSchema::new(vec![
                Field::new("id", DataType::Int32, false),
                Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            ])),
            vec![
                Arc::new(Int32Array::from(vec![1])),
                Arc::new(TimestampNanosecondArray::from(vec![1_000_000_001])),
            ],
        )
        .unwrap();
        let err = cast_to_schema(&ns, &table, &[]).unwrap_err();
        assert_eq!(err.location().column.as_deref(), Some("ts"));
        assert!(err.to_string().contains("precision"));
    }
}
