//! Partition values of files written before another engine promoted a source column (int →
//! long, float → double) keep their narrow literal in the manifests: `Int(1)` where the current
//! partition type says long. Taken as they are, they differ from the same value written since
//! (`Long(1)`): a delete file written after the promotion would skip the old data files of its
//! partition, a merge would prune the old file holding a key, and a compacted file would carry
//! a literal its type cannot print. These helpers compare and rewrite them as the wider type.

use iceberg::spec::{Literal, PrimitiveLiteral, PrimitiveType, Struct, StructType, Type};

/// `partition` with every narrow literal widened to what `partition_type` (its spec's type
/// under the current schema) says: int to long, float to double. Other values stay.
pub fn promoted(partition: &Struct, partition_type: &StructType) -> Struct {
    let types = partition_type.fields();
    partition
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let value = value?;
            let wider = match types.get(i).map(|f| f.field_type.as_ref()) {
                Some(Type::Primitive(t)) => widened(value, t),
                _ => None,
            };
            Some(wider.unwrap_or_else(|| value.clone()))
        })
        .collect()
}

fn widened(value: &Literal, to: &PrimitiveType) -> Option<Literal> {
    match (value, to) {
        (Literal::Primitive(PrimitiveLiteral::Int(v)), PrimitiveType::Long) => {
            Some(Literal::long(i64::from(*v)))
        }
        (Literal::Primitive(PrimitiveLiteral::Float(v)), PrimitiveType::Double) => {
            Some(Literal::double(f64::from(v.0)))
        }
        _ => None,
    }
}

/// Whether two partition tuples of one spec hold the same values, a narrow literal of a
/// promoted column equal to its wide form (only a promotion mixes them in one column).
pub fn same_partition(a: &Struct, b: &Struct) -> bool {
    a.fields().len() == b.fields().len() && a.iter().zip(b.iter()).all(|(a, b)| same(a, b))
}

fn same(a: Option<&Literal>, b: Option<&Literal>) -> bool {
    use PrimitiveLiteral::{Double, Float, Int, Long};
    match (a, b) {
        (Some(Literal::Primitive(a)), Some(Literal::Primitive(b))) => match (a, b) {
            (Int(a), Long(b)) | (Long(b), Int(a)) => i64::from(*a) == *b,
            (Float(a), Double(b)) | (Double(b), Float(a)) => f64::from(a.0) == b.0,
            (a, b) => a == b,
        },
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use iceberg::spec::NestedField;

    use super::*;

    fn tuple(values: Vec<Option<Literal>>) -> Struct {
        values.into_iter().collect()
    }

    #[test]
    fn narrow_values_of_promoted_columns_equal_and_become_their_wide_form() {
        let long = |n| NestedField::optional(n, "p", Type::Primitive(PrimitiveType::Long));
        let int = |n| NestedField::optional(n, "b", Type::Primitive(PrimitiveType::Int));
        let double = |n| NestedField::optional(n, "f", Type::Primitive(PrimitiveType::Double));
        let ty = StructType::new(vec![long(1).into(), int(2).into(), double(3).into()]);
        let old = tuple(vec![
            Some(Literal::int(1)),
            Some(Literal::int(3)),
            Some(Literal::float(0.5)),
        ]);
        let new = tuple(vec![
            Some(Literal::long(1)),
            Some(Literal::int(3)),
            Some(Literal::double(0.5)),
        ]);
        assert_ne!(old, new);
        assert!(same_partition(&old, &new) && same_partition(&new, &old));
        assert_eq!(promoted(&old, &ty), new);
        assert_eq!(promoted(&new, &ty), new);
        let other = tuple(vec![Some(Literal::long(2)), Some(Literal::int(3)), None]);
        assert!(!same_partition(&old, &other));
        // A bucket (int) of a promoted column stays an int.
        let bucket = tuple(vec![None, Some(Literal::int(3)), None]);
        assert_eq!(promoted(&bucket, &ty), bucket);
    }
}
