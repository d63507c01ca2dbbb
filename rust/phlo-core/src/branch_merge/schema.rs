//! Carrying a branch's schema changes into the target of a merge. phlo's writes evolve schemas
//! by adding optional columns and widening types; when both sides changed the table, the
//! target takes the union, or the merge is refused naming the columns. Columns are matched by
//! field id, as Iceberg reads data files: a column the source added must get the same id on the
//! target, which is only safe if the target never handed that id out itself.

use std::sync::Arc;

use iceberg::spec::{NestedField, NestedFieldRef, PrimitiveType, Schema, Type};

use crate::schema::RESERVED_FIELD_IDS;

/// The target's schema with the source's changes since `base` applied; `Ok(None)` when the
/// source changed nothing the target lacks. `Err` lists every incompatible column.
pub fn carry_over(
    base: &Schema,
    source: &Schema,
    target: &Schema,
    target_last_column_id: i32,
) -> Result<Option<Schema>, Vec<String>> {
    let mut fields: Vec<NestedFieldRef> = target.as_struct().fields().to_vec();
    let mut problems = Vec::new();
    let mut changed = false;
    for dropped in base.as_struct().fields() {
        if source.field_by_id(dropped.id).is_none() {
            problems.push(format!("{} was dropped on the source", dropped.name));
        }
    }
    for field in source.as_struct().fields() {
        let on_target = fields.iter().position(|f| f.id == field.id);
        match (base.field_by_id(field.id), on_target) {
            (Some(before), Some(i)) => {
                if before.name != field.name && fields[i].name != field.name {
                    problems.push(format!(
                        "{} was renamed to {} on the source",
                        before.name, field.name
                    ));
                    continue;
                }
                let target_field = fields[i].clone();
                match widened(
                    &before.field_type,
                    &field.field_type,
                    &target_field.field_type,
                ) {
                    Ok(Some(to)) => {
                        let mut next = target_field.as_ref().clone();
                        next.field_type = Box::new(to);
                        fields[i] = Arc::new(next);
                        changed = true;
                    }
                    Ok(None) => {}
                    Err(()) => problems.push(format!(
                        "{} is {} on the source and {} on the target",
                        field.name, field.field_type, target_field.field_type
                    )),
                }
                if before.required && !field.required && target_field.required {
                    let mut next = fields[i].as_ref().clone();
                    next.required = false;
                    fields[i] = Arc::new(next);
                    changed = true;
                }
            }
            // The source's column was dropped on the target since the fork.
            (Some(before), None) => problems.push(format!(
                "{} was dropped on the target but changed on the source",
                before.name
            )),
            (None, Some(i)) => {
                let same = fields[i].name == field.name && fields[i].field_type == field.field_type;
                if !same {
                    problems.push(format!(
                        "{} was added on the source with field id {}, which the target uses for {}",
                        field.name, field.id, fields[i].name
                    ));
                }
            }
            (None, None) => {
                let reserved = RESERVED_FIELD_IDS.contains(&(field.name.as_str(), field.id));
                if let Some(clash) = fields.iter().find(|f| f.name == field.name) {
                    problems.push(format!(
                        "{} was added on both sides (field ids {} and {})",
                        field.name, field.id, clash.id
                    ));
                } else if field.id <= target_last_column_id && !reserved {
                    problems.push(format!(
                        "{} was added on the source with field id {}, which the target has \
                         handed out since (files may carry it for another column)",
                        field.name, field.id
                    ));
                } else {
                    fields.push(Arc::new(
                        NestedField::optional(
                            field.id,
                            field.name.clone(),
                            field.field_type.as_ref().clone(),
                        )
                        .with_doc_opt(field.doc.clone()),
                    ));
                    changed = true;
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if !changed {
        return Ok(None);
    }
    Schema::builder()
        .with_schema_id(target.schema_id() + 1)
        .with_identifier_field_ids(target.identifier_field_ids())
        .with_fields(fields)
        .build()
        .map(Some)
        .map_err(|e| vec![format!("the merged schema is invalid: {e}")])
}

trait WithDoc {
    fn with_doc_opt(self, doc: Option<String>) -> Self;
}

impl WithDoc for NestedField {
    fn with_doc_opt(self, doc: Option<String>) -> Self {
        match doc {
            Some(doc) => self.with_doc(doc),
            None => self,
        }
    }
}

/// The type the target's column must take for the source's change `before → after`:
/// `None` when it has it already (or the source did not change it), `Err` when the two sides
/// changed it in ways that do not fit.
fn widened(before: &Type, after: &Type, target: &Type) -> Result<Option<Type>, ()> {
    if before == after || target == after || promotes(after, target) {
        return Ok(None);
    }
    if target == before && promotes(before, after) {
        return Ok(Some(after.clone()));
    }
    if promotes(target, after) {
        return Ok(Some(after.clone()));
    }
    Err(())
}

/// Iceberg's allowed promotions: int → long, float → double, decimal(p, s) → decimal(p' > p, s).
fn promotes(from: &Type, to: &Type) -> bool {
    use PrimitiveType as P;
    match (from, to) {
        (Type::Primitive(P::Int), Type::Primitive(P::Long))
        | (Type::Primitive(P::Float), Type::Primitive(P::Double)) => true,
        (
            Type::Primitive(P::Decimal {
                precision: p1,
                scale: s1,
            }),
            Type::Primitive(P::Decimal {
                precision: p2,
                scale: s2,
            }),
        ) => s1 == s2 && p2 > p1,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: Vec<NestedField>) -> Schema {
        Schema::builder()
            .with_fields(fields.into_iter().map(Arc::new))
            .build()
            .unwrap()
    }

    fn long(id: i32, name: &str) -> NestedField {
        NestedField::optional(id, name, Type::Primitive(PrimitiveType::Long))
    }

    fn int(id: i32, name: &str) -> NestedField {
        NestedField::optional(id, name, Type::Primitive(PrimitiveType::Int))
    }

    #[test]
    fn a_column_added_on_the_source_joins_the_target() {
        let base = schema(vec![long(1, "id")]);
        let source = schema(vec![long(1, "id"), long(2, "extra")]);
        let target = base.clone();
        let merged = carry_over(&base, &source, &target, 1).unwrap().unwrap();
        assert_eq!(merged.field_by_name("extra").unwrap().id, 2);
        assert!(carry_over(&base, &base, &target, 1).unwrap().is_none());
    }

    #[test]
    fn promotions_union_and_conflicting_ids_refuse() {
        let base = schema(vec![long(1, "id"), int(2, "n")]);
        let source = schema(vec![long(1, "id"), long(2, "n"), long(3, "extra")]);
        // The target added another column meanwhile: id 3 is taken.
        let target = schema(vec![long(1, "id"), int(2, "n"), long(3, "other")]);
        let problems = carry_over(&base, &source, &target, 3).unwrap_err();
        assert!(problems[0].contains("extra"), "{problems:?}");
        // Same column added on both sides with the same id and type: compatible.
        let target = schema(vec![long(1, "id"), int(2, "n"), long(3, "extra")]);
        let merged = carry_over(&base, &source, &target, 3).unwrap().unwrap();
        assert_eq!(
            *merged.field_by_id(2).unwrap().field_type,
            Type::Primitive(PrimitiveType::Long)
        );
        // An id the target handed out and dropped again may still be in its files.
        let target = schema(vec![long(1, "id"), int(2, "n")]);
        assert!(carry_over(&base, &source, &target, 3).is_err());
    }
}
