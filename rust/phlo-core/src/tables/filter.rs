//! Simple row filters (`column op value`), bound to Iceberg predicates against a table schema.
//! Iceberg uses them for partition and min/max pruning and then filters rows exactly.

use iceberg::expr::{Predicate, Reference};
use iceberg::spec::{Datum, PrimitiveType, Schema, Type};

use crate::error::{Error, Location, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    In,
    NotIn,
    /// Inclusive on both ends: `values = [low, high]`.
    Between,
    IsNull,
    NotNull,
}

impl FilterOp {
    pub fn parse(op: &str) -> Result<Self> {
        Ok(match op.trim().to_ascii_lowercase().as_str() {
            "=" | "==" | "eq" => Self::Eq,
            "!=" | "<>" | "ne" => Self::NotEq,
            "<" | "lt" => Self::Lt,
            "<=" | "le" => Self::LtEq,
            ">" | "gt" => Self::Gt,
            ">=" | "ge" => Self::GtEq,
            "in" => Self::In,
            "not in" | "not_in" => Self::NotIn,
            "between" => Self::Between,
            "is null" | "is_null" => Self::IsNull,
            "is not null" | "not_null" => Self::NotNull,
            other => {
                return Err(Error::invalid(
                    format!("unknown filter operator {other:?}"),
                    "use =, !=, <, <=, >, >=, in, not in, between, is null, is not null",
                ));
            }
        })
    }
}

/// A filter value as it arrives from Python (datetimes already converted to epoch units).
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01T00:00:00 (UTC for time-zone-aware values).
    Timestamp(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub column: String,
    pub op: FilterOp,
    pub values: Vec<Literal>,
}

/// ANDs the filters into one predicate, converting each literal to its column's type.
pub fn bind_filters(filters: &[Filter], schema: &Schema) -> Result<Option<Predicate>> {
    let mut combined: Option<Predicate> = None;
    for filter in filters {
        let predicate = bind_filter(filter, schema)?;
        combined = Some(match combined {
            Some(acc) => acc.and(predicate),
            None => predicate,
        });
    }
    Ok(combined)
}

fn bind_filter(filter: &Filter, schema: &Schema) -> Result<Predicate> {
    let at = || Location {
        table: None,
        column: Some(filter.column.clone()),
    };
    let field = schema
        .field_by_name(&filter.column)
        .ok_or_else(|| Error::InvalidInput {
            message: format!("filter column {} is not in the table", filter.column),
            at: at(),
            hint: "filter on one of the table's columns".into(),
        })?;
    // `s.a` names field `a` of struct `s`: rows and statistics are judged on top-level
    // columns only.
    let top_level = schema.as_struct().field_by_id(field.id).is_some();
    let (Type::Primitive(ty), true) = (field.field_type.as_ref(), top_level) else {
        return Err(Error::InvalidInput {
            message: "filters on nested columns are not supported".into(),
            at: at(),
            hint: "filter on a top-level column of a primitive type".into(),
        });
    };
    let arity = |n: usize| -> Result<()> {
        if filter.values.len() == n {
            return Ok(());
        }
        Err(Error::InvalidInput {
            message: format!(
                "operator {:?} takes {n} value(s), got {}",
                filter.op,
                filter.values.len()
            ),
            at: at(),
            hint: "e.g. (\"ts\", \"between\", (low, high)), (\"id\", \"in\", [1, 2])".into(),
        })
    };
    let datums = filter
        .values
        .iter()
        .map(|v| {
            to_datum(v, ty).map_err(|message| Error::InvalidInput {
                message,
                at: at(),
                hint: format!("give a value of the column's type ({ty})"),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let reference = Reference::new(filter.column.clone());
    let one = |d: &[Datum]| d[0].clone();
    Ok(match filter.op {
        FilterOp::IsNull => {
            arity(0)?;
            reference.is_null()
        }
        FilterOp::NotNull => {
            arity(0)?;
            reference.is_not_null()
        }
        FilterOp::In | FilterOp::NotIn if datums.is_empty() => {
            return Err(Error::InvalidInput {
                message: "in / not in needs at least one value".into(),
                at: at(),
                hint: "pass a non-empty list".into(),
            });
        }
        FilterOp::In => reference.is_in(datums),
        FilterOp::NotIn => reference.is_not_in(datums),
        FilterOp::Between => {
            arity(2)?;
            Reference::new(filter.column.clone())
                .greater_than_or_equal_to(datums[0].clone())
                .and(reference.less_than_or_equal_to(datums[1].clone()))
        }
        op => {
            arity(1)?;
            match op {
                FilterOp::Eq => reference.equal_to(one(&datums)),
                FilterOp::NotEq => reference.not_equal_to(one(&datums)),
                FilterOp::Lt => reference.less_than(one(&datums)),
                FilterOp::LtEq => reference.less_than_or_equal_to(one(&datums)),
                FilterOp::Gt => reference.greater_than(one(&datums)),
                _ => reference.greater_than_or_equal_to(one(&datums)),
            }
        }
    })
}

fn to_datum(value: &Literal, ty: &PrimitiveType) -> std::result::Result<Datum, String> {
    use Literal as L;
    use PrimitiveType as P;
    let mismatch = || format!("value {value:?} does not fit a {ty} column");
    let parsed = |r: iceberg::Result<Datum>| r.map_err(|e| format!("{}: {e}", mismatch()));
    Ok(match (value, ty) {
        (L::Bool(b), P::Boolean) => Datum::bool(*b),
        (L::Int(i), P::Int) => Datum::int(i32::try_from(*i).map_err(|_| mismatch())?),
        (L::Int(i), P::Long) => Datum::long(*i),
        (L::Int(i), P::Float) => Datum::float(*i as f32),
        (L::Int(i), P::Double) => Datum::double(*i as f64),
        (L::Float(f), P::Float) => Datum::float(*f as f32),
        (L::Float(f), P::Double) => Datum::double(*f),
        (L::Int(i), P::Decimal { scale, .. }) => parsed(decimal(&i.to_string(), *scale))?,
        (L::Float(f), P::Decimal { scale, .. }) => parsed(decimal(&f.to_string(), *scale))?,
        (L::String(s), P::Decimal { scale, .. }) => parsed(decimal(s, *scale))?,
        (L::String(s), P::String) => Datum::string(s),
        (L::Date(d), P::Date) => Datum::date(*d),
        (L::String(s), P::Date) => parsed(Datum::date_from_str(s))?,
        (L::Timestamp(us), P::Timestamp) => Datum::timestamp_micros(*us),
        (L::Timestamp(us), P::Timestamptz) => Datum::timestamptz_micros(*us),
        (L::Date(d), P::Timestamp) => Datum::timestamp_micros(*d as i64 * 86_400_000_000),
        (L::Date(d), P::Timestamptz) => Datum::timestamptz_micros(*d as i64 * 86_400_000_000),
        (L::String(s), P::Timestamp) => parsed(Datum::timestamp_from_str(s))?,
        (L::String(s), P::Timestamptz) => parsed(Datum::timestamptz_from_str(s))?,
        _ => return Err(mismatch()),
    })
}

/// Parses a decimal literal at the column's scale (padding zeros; more digits are an error).
/// Only positional notation: an exponent (`1E+2`) would be read as another number.
fn decimal(text: &str, scale: u32) -> iceberg::Result<Datum> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let unsigned = int.strip_prefix(['-', '+']).unwrap_or(int);
    if unsigned.is_empty()
        || !unsigned
            .chars()
            .chain(frac.chars())
            .all(|c| c.is_ascii_digit())
    {
        return Err(iceberg::Error::new(
            iceberg::ErrorKind::DataInvalid,
            format!("{text} is not a decimal number written with digits and a point"),
        ));
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > scale as usize {
        return Err(iceberg::Error::new(
            iceberg::ErrorKind::DataInvalid,
            format!("{text} has more than {scale} decimal places"),
        ));
    }
    let padded = format!("{int}.{frac:0<width$}", width = scale as usize);
    Datum::decimal_from_str(if scale == 0 { int } else { &padded })
}

#[cfg(test)]
mod tests {
    use iceberg::spec::{NestedField, StructType};

    use super::*;

    fn schema() -> Schema {
        Schema::builder()
            .with_fields(vec![
                NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
                NestedField::optional(2, "ts", Type::Primitive(PrimitiveType::Timestamptz)).into(),
                NestedField::optional(
                    3,
                    "amount",
                    Type::Primitive(PrimitiveType::Decimal {
                        precision: 10,
                        scale: 2,
                    }),
                )
                .into(),
                NestedField::optional(
                    4,
                    "s",
                    Type::Struct(StructType::new(vec![
                        NestedField::optional(5, "a", Type::Primitive(PrimitiveType::Long)).into(),
                    ])),
                )
                .into(),
            ])
            .build()
            .unwrap()
    }

    fn filter(column: &str, op: &str, values: Vec<Literal>) -> Filter {
        Filter {
            column: column.into(),
            op: FilterOp::parse(op).unwrap(),
            values,
        }
    }

    #[test]
    fn binds_literals_to_column_types() {
        let filters = [
            filter("id", "in", vec![Literal::Int(1), Literal::Int(2)]),
            filter(
                "ts",
                ">=",
                vec![Literal::String("2024-01-01T00:00:00+00:00".into())],
            ),
            filter("amount", "<", vec![Literal::String("10.5".into())]),
            filter("amount", ">", vec![Literal::String("-0.5".into())]),
        ];
        let predicate = bind_filters(&filters, &schema()).unwrap().unwrap();
        let text = predicate.to_string();
        assert!(text.contains("id IN"), "{text}");
        assert!(text.contains("amount < 10.50"), "{text}");
        assert!(text.contains("amount > -0.50"), "{text}");
    }

    #[test]
    fn rejects_bad_filters_with_the_column_named() {
        let cases = [
            filter("nope", "=", vec![Literal::Int(1)]),
            filter("id", "=", vec![Literal::String("x".into())]),
            filter("id", "between", vec![Literal::Int(1)]),
            filter("amount", "=", vec![Literal::String("1.234".into())]),
            // Exponents are refused, not misread (`1E+2` is not 1).
            filter("amount", "=", vec![Literal::String("1E+2".into())]),
            filter("amount", "=", vec![Literal::String("-.5".into())]),
            filter("id", "in", vec![]),
            // A field of a struct: neither rows nor statistics are judged on it.
            filter("s.a", "=", vec![Literal::Int(1)]),
        ];
        for case in cases {
            let err = bind_filters(std::slice::from_ref(&case), &schema()).unwrap_err();
            assert_eq!(err.code(), "invalid_input");
            assert_eq!(err.location().column.as_deref(), Some(case.column.as_str()));
        }
        assert!(FilterOp::parse("~").is_err());
    }
}
