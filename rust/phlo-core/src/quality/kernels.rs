//! Per-batch kernels of the row-level checks: which rows of one batch fail. Range and
//! accepted-values checks reuse the validation engine's Pandera kernels (same comparison and
//! missing-value rules); the others are small enough to live here.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow_array::{Array, ArrayRef, StringArrayType};
use arrow_buffer::BooleanBuffer;
use arrow_schema::{DataType, TimeUnit};
use regex::{Regex, RegexBuilder};
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::{Anchored, Input, util::syntax};
use serde_json::Value;

use crate::validate::checks::{failing_rows, missing};
use crate::validate::{CheckOp, CheckRule};

/// The failing rows of one batch: how many, and the first positions (as many as asked for).
pub struct Failing {
    pub count: u64,
    pub first: Vec<usize>,
}

impl Failing {
    fn of_positions(positions: Vec<usize>, wanted: usize) -> Self {
        let count = positions.len() as u64;
        let mut first = positions;
        first.truncate(wanted);
        Self { count, first }
    }

    fn of_mask(mask: &BooleanBuffer, wanted: usize) -> Self {
        Self {
            count: mask.count_set_bits() as u64,
            first: mask.set_indices().take(wanted).collect(),
        }
    }
}

/// Missing cells (null, or NaN in a float column) of each column, and the rows with any.
pub fn missing_cells(arrays: &[ArrayRef], wanted: usize) -> (Vec<u64>, Failing) {
    let masks: Vec<BooleanBuffer> = arrays.iter().map(missing).collect();
    let per_column = masks.iter().map(|m| m.count_set_bits() as u64).collect();
    let any = masks
        .iter()
        .skip(1)
        .fold(masks[0].clone(), |acc, m| &acc | m);
    let mut rows = Failing::of_mask(&any, wanted);
    rows.count = masks.iter().map(|m| m.count_set_bits() as u64).sum();
    (per_column, rows)
}

/// A comparison or membership rule of the validation engine; missing values pass.
pub fn rule(op: CheckOp, name: &str, values: Vec<Value>) -> CheckRule {
    CheckRule {
        number: 0,
        name: name.into(),
        op,
        values,
        include_min: true,
        include_max: true,
        ignore_na: true,
    }
}

/// Rows failing `rule`; `Err` says why the rule cannot be evaluated on this column.
pub fn rule_failures(array: &ArrayRef, rule: &CheckRule, wanted: usize) -> Result<Failing, String> {
    let positions = failing_rows(array, &missing(array), rule).map_err(|u| u.0)?;
    Ok(Failing::of_positions(positions, wanted))
}

/// Python's `re.match` of one pattern: anchored at the start of each value. A lazy DFA with
/// a cache of its own answers (no shared pool, no per-call setup of the general engine); the
/// full engine answers the rare value the DFA gives up on (a Unicode word boundary next to
/// non-ASCII text) and patterns the DFA cannot build.
pub struct Pattern {
    dfa: Option<(DFA, Cache)>,
    regex: Regex,
}

impl Pattern {
    pub fn new(pattern: &str, case_sensitive: bool) -> Result<Self, String> {
        let anchored = format!("^(?:{pattern})");
        let regex = RegexBuilder::new(&anchored)
            .case_insensitive(!case_sensitive)
            .build()
            .map_err(|e| format!("pattern {pattern:?} does not compile: {e}"))?;
        let dfa = DFA::builder()
            .configure(DFA::config().unicode_word_boundary(true))
            .syntax(syntax::Config::new().case_insensitive(!case_sensitive))
            .build(&anchored)
            .ok()
            .map(|dfa| {
                let cache = dfa.create_cache();
                (dfa, cache)
            });
        Ok(Self { dfa, regex })
    }

    fn is_match(&mut self, value: &str) -> bool {
        if let Some((dfa, cache)) = &mut self.dfa
            && let Some(found) = walk(dfa, cache, value.as_bytes())
        {
            return found;
        }
        self.regex.is_match(value)
    }
}

/// Whether the DFA matches at the start of `hay`, walked byte by byte: values are short, so a
/// plain walk that stops at the first match or the dead state beats the general search's
/// per-call setup. `None` when the DFA gives up (a quit byte, a thrashing cache).
fn walk(dfa: &DFA, cache: &mut Cache, hay: &[u8]) -> Option<bool> {
    let input = Input::new(hay).anchored(Anchored::Yes);
    let mut state = dfa.start_state_forward(cache, &input).ok()?;
    for &byte in hay {
        state = dfa.next_state(cache, state, byte).ok()?;
        if state.is_tagged() {
            // Matches show one byte late: a match state here means a match ended before.
            if state.is_match() {
                return Some(true);
            }
            if state.is_dead() {
                return Some(false);
            }
            if state.is_quit() {
                return None;
            }
        }
    }
    Some(dfa.next_eoi_state(cache, state).ok()?.is_match())
}

/// Present strings that `pattern` does not match.
pub fn pattern_failures(
    array: &ArrayRef,
    pattern: &mut Pattern,
    wanted: usize,
) -> Result<Failing, String> {
    fn each<'a, S: StringArrayType<'a>>(array: S, pattern: &mut Pattern) -> BooleanBuffer {
        BooleanBuffer::collect_bool(array.len(), |i| {
            array.is_valid(i) && !pattern.is_match(array.value(i))
        })
    }
    let mask = match array.data_type() {
        DataType::Utf8 => each(array.as_string::<i32>(), pattern),
        DataType::LargeUtf8 => each(array.as_string::<i64>(), pattern),
        DataType::Utf8View => each(array.as_string_view(), pattern),
        other => return Err(format!("a pattern needs a string column, not {other}")),
    };
    Ok(Failing::of_mask(&mask, wanted))
}

/// The column as microseconds since the epoch (nulls as `None`), for freshness.
pub fn micros(array: &ArrayRef) -> Result<Vec<Option<i64>>, String> {
    fn scaled<T: arrow_array::ArrowPrimitiveType<Native = i64>>(
        array: &ArrayRef,
        to_micros: impl Fn(i64) -> i64,
    ) -> Vec<Option<i64>> {
        array
            .as_primitive::<T>()
            .iter()
            .map(|v| v.map(&to_micros))
            .collect()
    }
    Ok(match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            scaled::<TimestampSecondType>(array, |v| v.saturating_mul(1_000_000))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            scaled::<TimestampMillisecondType>(array, |v| v.saturating_mul(1_000))
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            scaled::<TimestampMicrosecondType>(array, |v| v)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            scaled::<TimestampNanosecondType>(array, |v| v.div_euclid(1_000))
        }
        DataType::Date32 => array
            .as_primitive::<arrow_array::types::Date32Type>()
            .iter()
            .map(|d| d.map(|d| d as i64 * 86_400_000_000))
            .collect(),
        DataType::Date64 => array
            .as_primitive::<arrow_array::types::Date64Type>()
            .iter()
            .map(|d| d.map(|d| d.saturating_mul(1_000)))
            .collect(),
        other => {
            return Err(format!(
                "freshness needs a timestamp or date column, not {other}"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte walk of the lazy DFA answers as the full regex engine does, including where
    /// the DFA gives up (Unicode word boundaries next to non-ASCII text).
    #[test]
    fn the_dfa_walk_matches_as_the_regex_engine() {
        let patterns = [
            r"C\d+",
            r"a|ab",
            r"\bfoo\b",
            r"x$",
            r"",
            r".*z",
            r"[a-z]+@[a-z]+\.com",
            r"é+",
            r"\d{3}-\d{4}",
            r"(?:ab)*c",
        ];
        let values = [
            "", "C1", "C", "c12", "xC1", "foo bar", "fooé", "éé", "ab", "a", "abababc", "x",
            "xx\n", "123-4567", "12-4567", "a@b.com", "ß", "Zz", "foo", "föo",
        ];
        for pattern in patterns {
            for case_sensitive in [true, false] {
                let mut ours = Pattern::new(pattern, case_sensitive).unwrap();
                assert!(ours.dfa.is_some(), "{pattern}");
                let regex = RegexBuilder::new(&format!("^(?:{pattern})"))
                    .case_insensitive(!case_sensitive)
                    .build()
                    .unwrap();
                for value in values {
                    assert_eq!(
                        ours.is_match(value),
                        regex.is_match(value),
                        "{pattern:?} on {value:?} (case sensitive: {case_sensitive})"
                    );
                }
            }
        }
    }
}
