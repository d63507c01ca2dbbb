//! The validation plan: what Python compiles from a Pandera schema, as JSON (see
//! `python/phlo/schema/plan.py`). Declared column types travel separately, as an Arrow schema.

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
pub struct Plan {
    /// The schema's name; Pandera reports schema-level failures under it.
    pub schema_name: String,
    #[serde(default)]
    pub strict: Strict,
    /// Column sets that must be unique together (`Config.unique`).
    #[serde(default)]
    pub unique: Vec<Vec<String>>,
    pub columns: Vec<ColumnRule>,
    /// Failure cases kept per check (all of them when `None`); counts are always exact.
    #[serde(default)]
    pub max_failure_cases: Option<usize>,
    /// Whose semantics to follow where Pandera's backends differ.
    #[serde(default)]
    pub backend: Backend,
    /// Which occurrences of a duplicated `unique` key are reported.
    #[serde(default)]
    pub report_duplicates: Keep,
}

/// Pandera's `report_duplicates`: every occurrence of a duplicated key, or all but the first
/// or the last (pandas' `duplicated(keep=...)`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    #[default]
    All,
    ExcludeFirst,
    ExcludeLast,
}

/// Pandera's backends differ on uniqueness: pandas counts NaN and null as the same missing
/// value and leaves missing values out of the failure cases (multi-column duplicates are
/// reported per column); polars tells NaN from null and reports each duplicated row once,
/// under the schema's name, as JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Pandas,
    Polars,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strict {
    /// Extra columns pass through.
    #[default]
    Off,
    /// Extra columns are failures (`column_in_schema`).
    Error,
    /// Extra columns are dropped.
    Filter,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ColumnRule {
    pub name: String,
    /// Pandera's name of the declared type (`int64`, `str`…), used in check names.
    #[serde(default)]
    pub dtype_name: Option<String>,
    #[serde(default)]
    pub coerce: bool,
    #[serde(default = "yes")]
    pub nullable: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub report_duplicates: Keep,
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default)]
    pub checks: Vec<CheckRule>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
pub struct CheckRule {
    /// Position in the column's check list (Pandera's `check_number`).
    pub number: i64,
    /// Pandera's name of the check, e.g. `greater_than(0)`.
    pub name: String,
    pub op: CheckOp,
    /// Operands as JSON scalars, cast to the column's type: one for comparisons, two for
    /// `in_range` (min, max) and `str_length` (min, max; null = unbounded), any number for
    /// `isin` / `notin`, one string for the string checks.
    #[serde(default)]
    pub values: Vec<serde_json::Value>,
    #[serde(default = "yes")]
    pub include_min: bool,
    #[serde(default = "yes")]
    pub include_max: bool,
    /// Missing values (null, NaN) pass the check, as in Pandera.
    #[serde(default = "yes")]
    pub ignore_na: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    InRange,
    Isin,
    Notin,
    StrLength,
    StrMatches,
    StrContains,
    StrStartswith,
    StrEndswith,
}

impl Plan {
    pub fn from_json(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| {
            Error::invalid(
                format!("invalid validation plan: {e}"),
                "build plans with phlo.schema.validation_plan()",
            )
        })
    }
}
