//! Iceberg types phlo's Iceberg library cannot parse (format v3's `variant`, `unknown`,
//! `geometry` and `geography`, which Spark and Java write): a table's metadata with one of them
//! fails to parse as a whole. That failure is turned into a `SchemaError` naming the column and
//! the type, instead of an internal error quoting the JSON parser.

use serde_json::Value;

use crate::error::{Error, Location};

/// The error for a metadata file that failed to parse (`failure`, while `context`): a
/// `SchemaError` naming the first column of an unsupported type when `text` (the file) has
/// one, `failure` otherwise.
pub fn explain(text: &[u8], context: &str, failure: Error) -> Error {
    let Ok(metadata) = serde_json::from_slice::<Value>(text) else {
        return failure;
    };
    let schemas = (metadata.get("schemas").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .into_iter()
        .chain(metadata.get("schema").cloned());
    let found = schemas
        .filter_map(|s| s.get("fields").and_then(Value::as_array).cloned())
        .find_map(|fields| unsupported(&fields, ""));
    let Some((column, kind)) = found else {
        return failure;
    };
    Error::Schema {
        message: format!(
            "{context}: column {column} has the Iceberg type {kind}, which phlo cannot read \
             (the format v3 types variant, unknown, geometry and geography are not supported)"
        ),
        at: Location {
            table: None,
            column: Some(column),
        },
        hint: "read and write this table with the engine that created the column, or copy its \
               other columns into a table phlo can read"
            .into(),
    }
}

/// The first field under `fields` (dotted path) whose type is unsupported, with that type.
fn unsupported(fields: &[Value], prefix: &str) -> Option<(String, String)> {
    fields.iter().find_map(|field| {
        let name = field.get("name").and_then(Value::as_str).unwrap_or("?");
        let path = format!("{prefix}{name}");
        in_type(field.get("type")?, &path)
    })
}

fn in_type(kind: &Value, path: &str) -> Option<(String, String)> {
    match kind {
        Value::String(name) => {
            let lower = name.to_ascii_lowercase();
            let unsupported = ["variant", "unknown", "geometry", "geography"]
                .iter()
                .any(|t| lower == *t || lower.starts_with(&format!("{t}(")));
            unsupported.then(|| (path.to_string(), name.clone()))
        }
        Value::Object(nested) => match nested.get("type").and_then(Value::as_str) {
            Some("struct") => unsupported(nested.get("fields")?.as_array()?, &format!("{path}.")),
            Some("list") => in_type(nested.get("element")?, &format!("{path}.element")),
            Some("map") => in_type(nested.get("key")?, &format!("{path}.key"))
                .or_else(|| in_type(nested.get("value")?, &format!("{path}.value"))),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(fields: &str) -> Vec<u8> {
        format!(r#"{{"format-version":3,"schemas":[{{"type":"struct","fields":{fields}}}]}}"#)
            .into_bytes()
    }

    #[test]
    fn unsupported_types_are_named_with_their_column() {
        let failure = || Error::invalid("unparsed", "");
        let cases = [
            (
                r#"[{"id":1,"name":"v","type":"variant"}]"#,
                Some("reading t: column v has the Iceberg type variant"),
            ),
            (
                r#"[{"id":1,"name":"s","type":{"type":"struct","fields":[{"id":2,"name":"g","type":"geometry(srid:4326)"}]}}]"#,
                Some("column s.g has the Iceberg type geometry(srid:4326)"),
            ),
            (
                r#"[{"id":1,"name":"m","type":{"type":"map","key-id":2,"key":"string","value-id":3,"value":{"type":"list","element-id":4,"element":"unknown"}}}]"#,
                Some("column m.value.element has the Iceberg type unknown"),
            ),
            (r#"[{"id":1,"name":"t","type":"timestamp_ns"}]"#, None),
        ];
        for (fields, expected) in cases {
            let err = explain(&metadata(fields), "reading t", failure());
            match expected {
                Some(text) => {
                    assert_eq!(err.code(), "schema", "{err}");
                    assert!(err.to_string().contains(text), "{err}");
                }
                None => assert!(err.to_string().contains("unparsed"), "{err}"),
            }
        }
        let err = explain(b"not json", "reading t", failure());
        assert!(err.to_string().contains("unparsed"), "{err}");
    }
}
