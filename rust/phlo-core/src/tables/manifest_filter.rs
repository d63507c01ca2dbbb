//! Skipping whole manifests when a scan is planned. The manifest list records, per partition
//! field of the spec a manifest was written with, the lowest and highest partition value of its
//! files and whether any is null. A row filter is projected onto each partition field with
//! Iceberg's inclusive projection (a row that matches the filter has a partition value that
//! matches the projection, whatever the transform); a manifest none of whose partition values
//! can match that projection holds no matching row, and is not read.
//!
//! Conservative: anything unknown (no summaries, a spec or transform that cannot project, bounds
//! of another type, `not`) keeps the manifest.

use std::cmp::Ordering;

use iceberg::expr::{BoundPredicate, Predicate, PredicateOperator};
use iceberg::spec::{
    Datum, FieldSummary, ManifestFile, PartitionSpec, PrimitiveType, TableMetadata, Type,
};

/// Whether `manifest` may list a file with rows matching `predicate`.
pub fn manifest_may_match(
    predicate: &BoundPredicate,
    manifest: &ManifestFile,
    metadata: &TableMetadata,
) -> bool {
    let (Some(spec), Some(summaries)) = (
        metadata.partition_spec_by_id(manifest.partition_spec_id),
        manifest.partitions.as_deref(),
    ) else {
        return true;
    };
    if spec.fields().is_empty() || spec.fields().len() != summaries.len() {
        return true;
    }
    may_match(predicate, spec, summaries)
}

fn may_match(predicate: &BoundPredicate, spec: &PartitionSpec, summaries: &[FieldSummary]) -> bool {
    match predicate {
        BoundPredicate::AlwaysFalse => false,
        BoundPredicate::And(e) => {
            let [a, b] = e.inputs();
            may_match(a, spec, summaries) && may_match(b, spec, summaries)
        }
        BoundPredicate::Or(e) => {
            let [a, b] = e.inputs();
            may_match(a, spec, summaries) || may_match(b, spec, summaries)
        }
        BoundPredicate::AlwaysTrue | BoundPredicate::Not(_) => true,
        BoundPredicate::Unary(e) => leaf_may_match(predicate, e.term().field(), spec, summaries),
        BoundPredicate::Binary(e) => leaf_may_match(predicate, e.term().field(), spec, summaries),
        BoundPredicate::Set(e) => leaf_may_match(predicate, e.term().field(), spec, summaries),
    }
}

/// A comparison of one column: every partition field derived from the column must allow it.
fn leaf_may_match(
    leaf: &BoundPredicate,
    column: &iceberg::spec::NestedField,
    spec: &PartitionSpec,
    summaries: &[FieldSummary],
) -> bool {
    spec.fields()
        .iter()
        .zip(summaries)
        .filter(|(field, _)| field.source_id == column.id)
        .all(|(field, summary)| {
            let Ok(Some(projected)) = field.transform.project(&field.name, leaf) else {
                return true;
            };
            let Ok(Type::Primitive(value_type)) = field.transform.result_type(&column.field_type)
            else {
                return true;
            };
            let bound = |bytes: Option<&Vec<u8>>| {
                bytes.map(|b| Datum::try_from_bytes(b, value_type.clone()).ok())
            };
            // Bounds are absent when no value is (all are null, or NaN); a bound that does
            // not decode leaves the manifest in.
            let range = match (
                bound(summary.lower_bound.as_deref()),
                bound(summary.upper_bound.as_deref()),
            ) {
                (Some(Some(lower)), Some(Some(upper))) => Some((lower, upper)),
                (None, None) => None,
                _ => return true,
            };
            Bounds {
                range,
                contains_null: summary.contains_null,
                value_type,
            }
            .may_match(&projected)
        })
}

/// The partition values of one field across a manifest's files.
struct Bounds {
    /// The lowest and highest value; `None` when every value is null or NaN.
    range: Option<(Datum, Datum)>,
    contains_null: bool,
    /// The partition field's type, which the projected values are compared as.
    value_type: PrimitiveType,
}

impl Bounds {
    /// Whether some value within the bounds (or a null) may match `projected`, a predicate on
    /// the partition field.
    fn may_match(&self, projected: &Predicate) -> bool {
        use PredicateOperator as Op;
        match projected {
            Predicate::Unary(e) if e.op() == Op::IsNull => self.contains_null,
            Predicate::Binary(e) => self.may_compare(e.op(), e.literal()),
            Predicate::Set(e) if e.op() == Op::In => e
                .literals()
                .iter()
                .any(|value| self.may_compare(Op::Eq, value)),
            _ => true,
        }
    }

    /// Whether some value in the bounds may be `op value`. A comparison (`!=` aside, which is
    /// never pruned) does not match a null or NaN, so none may when there are no bounds.
    fn may_compare(&self, op: PredicateOperator, value: &Datum) -> bool {
        use Ordering::{Greater, Less};
        use PredicateOperator as Op;
        let ordered = matches!(
            op,
            Op::LessThan | Op::LessThanOrEq | Op::GreaterThan | Op::GreaterThanOrEq | Op::Eq
        );
        let Some((lower, upper)) = self.range.as_ref().filter(|_| ordered) else {
            return !ordered;
        };
        let Some(value) = at_type(value, &self.value_type) else {
            return true;
        };
        let (Some(lower), Some(upper)) = (lower.partial_cmp(&value), upper.partial_cmp(&value))
        else {
            return true;
        };
        match op {
            Op::LessThan => lower == Less,
            Op::LessThanOrEq => lower != Greater,
            Op::GreaterThan => upper == Greater,
            Op::GreaterThanOrEq => upper != Less,
            _ => lower != Greater && upper != Less,
        }
    }
}

/// `value` as a value of `value_type`; `None` when it cannot be read so. iceberg-rust 0.10
/// projects a filter on a decimal through `truncate` to the right unscaled value but at scale 0
/// (`4.66` becomes `400`, not `4.00`; apache/iceberg-rust#3243), which no bound of the field
/// would match: the unscaled value is read again at the field's own scale.
fn at_type(value: &Datum, value_type: &PrimitiveType) -> Option<Datum> {
    match value_type {
        PrimitiveType::Decimal { .. } if value.data_type() != value_type => value
            .to_bytes()
            .and_then(|bytes| Datum::try_from_bytes(&bytes, value_type.clone()))
            .ok(),
        _ => Some(value.clone()),
    }
}

#[cfg(test)]
mod tests {
    use iceberg::expr::{Bind, Reference};
    use iceberg::spec::{NestedField, Schema, Transform};

    use super::*;

    fn decimal(text: &str) -> Datum {
        Datum::decimal_from_str(text).unwrap()
    }

    #[test]
    fn a_decimal_projected_through_truncate_is_compared_at_the_fields_scale() {
        let value_type = PrimitiveType::Decimal {
            precision: 12,
            scale: 2,
        };
        let schema = Schema::builder()
            .with_fields(vec![
                NestedField::optional(1, "d", Type::Primitive(value_type.clone())).into(),
            ])
            .build()
            .unwrap();
        let bounds = Bounds {
            range: Some((decimal("4.00"), decimal("12.00"))),
            contains_null: false,
            value_type,
        };
        for (filter, may) in [
            ("4.66", true),
            ("12.99", true),
            ("13.00", false),
            ("3.99", false),
        ] {
            let bound = Reference::new("d")
                .equal_to(decimal(filter))
                .bind(schema.clone().into(), true)
                .unwrap();
            let projected = Transform::Truncate(100)
                .project("p", &bound)
                .unwrap()
                .unwrap();
            assert_eq!(
                bounds.may_match(&projected),
                may,
                "d = {filter}: {projected}"
            );
        }
    }
}
