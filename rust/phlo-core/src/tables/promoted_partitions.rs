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
            Some(match types.get(i).map(|f| f.field_type.as_ref()) {
                Some(Type::Primitive(PrimitiveType::Long | PrimitiveType::Double)) => wide(value),
                _ => value.clone(),
            })
        })
        .collect()
}

/// Whether two partition tuples of one spec hold the same values, a narrow literal of a
/// promoted column equal to its wide form (only a promotion mixes them in one column).
pub fn same_partition(a: &Struct, b: &Struct) -> bool {
    a.fields().len() == b.fields().len()
        && a.iter()
            .zip(b.iter())
            .all(|(a, b)| a.map(wide) == b.map(wide))
}

/// `value` as the widest type a promotion can make of it; compared as literals, a NaN equals
/// a NaN as in the partition tuples themselves.
pub(crate) fn wide(value: &Literal) -> Literal {
    match value {
        Literal::Primitive(PrimitiveLiteral::Int(v)) => Literal::long(i64::from(*v)),
        Literal::Primitive(PrimitiveLiteral::Float(v)) => Literal::double(f64::from(v.0)),
        other => other.clone(),
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
        let nan = |f: Literal| tuple(vec![None, None, Some(f)]);
        assert!(same_partition(
            &nan(Literal::float(f32::NAN)),
            &nan(Literal::double(f64::NAN))
        ));
        let other = tuple(vec![Some(Literal::long(2)), Some(Literal::int(3)), None]);
        assert!(!same_partition(&old, &other));
        // A bucket (int) of a promoted column stays an int.
        let bucket = tuple(vec![None, Some(Literal::int(3)), None]);
        assert_eq!(promoted(&bucket, &ty), bucket);
    }
}
