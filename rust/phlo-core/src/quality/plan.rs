//! What Python asks the engine to check (`python/phlo/quality/engine.py` builds it), as JSON.
//! Thresholds, severities and names stay in Python: the engine only counts.

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
pub struct QualityPlan {
    pub checks: Vec<CheckSpec>,
    /// Columns every sample row carries to identify it (e.g. `_phlo_row_id`), when present.
    #[serde(default)]
    pub id_columns: Vec<String>,
    /// Failing rows kept per check.
    #[serde(default = "default_sample_limit")]
    pub sample_limit: usize,
}

fn default_sample_limit() -> usize {
    20
}

/// One engine-evaluated check. Every kind counts failing rows (cells for `NotNull`) over the
/// rows it is fed; null and NaN values are "missing" as in pandas.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CheckSpec {
    /// Missing cells of each column.
    NotNull { columns: Vec<String> },
    /// Present values below `min` or above `max` (inclusive bounds; either may be absent).
    Range {
        column: String,
        #[serde(default)]
        min: Option<Value>,
        #[serde(default)]
        max: Option<Value>,
    },
    /// Every row of a key (one or more columns) that occurs more than once; nulls are equal
    /// keys (pandas' `duplicated(keep=False)`).
    Unique { columns: Vec<String> },
    /// Rows older than `cutoff_us`, counted only when no row is at or after it (the newest
    /// value is too old). Microseconds since the epoch: UTC for time-zone-aware columns,
    /// wall-clock for naive ones.
    Freshness { column: String, cutoff_us: i64 },
    /// Rows only (the bounds are checked in Python).
    Count,
    /// Present string values that do not match `pattern` at their start (Python's `re.match`).
    Pattern {
        column: String,
        pattern: String,
        #[serde(default = "yes")]
        case_sensitive: bool,
    },
    /// Present values not in `values`.
    AcceptedValues { column: String, values: Vec<Value> },
}

fn yes() -> bool {
    true
}

impl CheckSpec {
    /// The columns the check reads.
    pub fn columns(&self) -> Vec<&str> {
        match self {
            Self::NotNull { columns } | Self::Unique { columns } => {
                columns.iter().map(String::as_str).collect()
            }
            Self::Range { column, .. }
            | Self::Freshness { column, .. }
            | Self::Pattern { column, .. }
            | Self::AcceptedValues { column, .. } => vec![column.as_str()],
            Self::Count => vec![],
        }
    }
}

impl QualityPlan {
    pub fn from_json(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| {
            Error::invalid(
                format!("invalid quality plan: {e}"),
                "build quality plans with phlo.quality (check classes)",
            )
        })
    }
}
