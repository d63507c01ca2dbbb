use std::fmt;

use crate::error::{Error, Result};

/// A table's name: a (possibly dotted) namespace and a table name, written `ns.table`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableIdent {
    pub namespace: String,
    pub name: String,
}

impl TableIdent {
    /// Parses `namespace.table` (the namespace may itself contain dots: `a.b.table`).
    pub fn parse(full_name: &str) -> Result<Self> {
        let Some((namespace, name)) = full_name.rsplit_once('.') else {
            return Err(Error::invalid(
                format!("table name {full_name:?} has no namespace"),
                "write it as namespace.table, e.g. raw.events",
            ));
        };
        for part in namespace.split('.') {
            validate_name(part, "namespace")?;
        }
        validate_name(name, "table")?;
        Ok(Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }
}

impl fmt::Display for TableIdent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace, self.name)
    }
}

/// Names become folder names in the warehouse, so they are restricted to letters, digits,
/// `_` and `-` (not leading). This rules out empty names, `..`, slashes and control characters.
pub fn validate_name(name: &str, what: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= 255
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            format!("invalid {what} name {name:?}"),
            "use letters, digits, '_' and '-' (not first); no dots, slashes, spaces or control \
             characters",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dotted_namespaces() {
        let ident = TableIdent::parse("a.b.events").unwrap();
        assert_eq!(ident.namespace, "a.b");
        assert_eq!(ident.name, "events");
        assert_eq!(ident.to_string(), "a.b.events");
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "events",
            "raw.",
            ".events",
            "raw..events",
            "raw/x.events",
            "raw.ev ents",
            "raw.ev\u{7}",
            "raw.-x",
            "../x.y",
        ] {
            let err = TableIdent::parse(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_input", "{bad:?}");
        }
    }
}
