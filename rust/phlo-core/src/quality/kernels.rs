//! Per-batch kernels of the row-level checks: which rows of one batch fail. Range and
//! accepted-values checks reuse the validation engine's Pandera kernels (same comparison and
//! missing-value rules); the others are small enough to live here.
//!
//! String columns may come as Arrow dictionaries (a scan with string dictionaries keeps the
//! dictionary of a column chunk the file stores dictionary-encoded): pattern and rule checks
//! then judge each distinct value once per dictionary — the batches of one column chunk share
//! it — and find failing rows through the keys only when some value fails.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int32Type, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, DictionaryArray, RecordBatch, StringArrayType};
use arrow_buffer::{BooleanBuffer, NullBuffer};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use regex::{Regex, RegexBuilder};
use regex_automata::Anchored;
use regex_automata::hybrid::LazyStateID;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::util::{start, syntax};
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

    fn none() -> Self {
        Self {
            count: 0,
            first: Vec::new(),
        }
    }
}

/// The column with dictionary values spelled out (for kernels that compare whole keys).
pub fn plain(array: &ArrayRef) -> Result<ArrayRef, String> {
    match array.data_type() {
        DataType::Dictionary(_, values) => {
            arrow_cast::cast(array, values).map_err(|e| format!("cannot decode {values}: {e}"))
        }
        _ => Ok(array.clone()),
    }
}

/// `schema` with dictionary columns as their values' type: what the checks see.
pub fn plain_schema(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Dictionary(_, values) => f.as_ref().clone().with_data_type(*values.clone()),
            _ => f.as_ref().clone(),
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// `batch` with dictionary columns spelled out (sample rows leave the engine as read).
pub fn plain_batch(batch: &RecordBatch) -> Result<RecordBatch, String> {
    let columns = batch
        .columns()
        .iter()
        .map(plain)
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::new(plain_schema(&batch.schema())), columns)
        .map_err(|e| e.to_string())
}

/// Which values of the last dictionary seen fail a check. Its data is held, so buffers at the
/// same addresses are the same (immutable) values: a dictionary shared by the next batch is
/// recognized without comparing its values.
#[derive(Default)]
pub struct Verdicts {
    values: Option<ArrayRef>,
    /// Per value of the dictionary; `None` when none fails.
    failing: Option<BooleanBuffer>,
}

impl Verdicts {
    /// The rows of `dictionary` whose (present) value fails: `judge` gives the failing values
    /// of a dictionary not seen just before.
    fn failures(
        &mut self,
        dictionary: &DictionaryArray<Int32Type>,
        wanted: usize,
        judge: impl FnOnce(&ArrayRef) -> Result<BooleanBuffer, String>,
    ) -> Result<Failing, String> {
        let values = dictionary.values();
        if !self.values.as_ref().is_some_and(|seen| same(seen, values)) {
            let failing = judge(values)?;
            self.failing = (failing.count_set_bits() > 0).then_some(failing);
            self.values = Some(values.clone());
        }
        let Some(failing) = &self.failing else {
            return Ok(Failing::none());
        };
        let keys = dictionary.keys();
        let raw = keys.values();
        let mask = BooleanBuffer::collect_bool(keys.len(), |i| {
            // A null row's key may point anywhere: it is not read.
            keys.is_valid(i) && (raw[i] as usize) < failing.len() && failing.value(raw[i] as usize)
        });
        Ok(Failing::of_mask(&mask, wanted))
    }
}

/// Whether two arrays are views of the same memory (not merely equal values).
fn same(a: &ArrayRef, b: &ArrayRef) -> bool {
    let (a, b) = (a.to_data(), b.to_data());
    let nulls = |n: Option<&NullBuffer>| n.map(|n| (n.buffer().as_ptr(), n.offset(), n.len()));
    a.data_type() == b.data_type()
        && a.len() == b.len()
        && a.offset() == b.offset()
        && a.child_data().is_empty()
        && b.child_data().is_empty()
        && nulls(a.nulls()) == nulls(b.nulls())
        && a.buffers().len() == b.buffers().len()
        && a.buffers()
            .iter()
            .zip(b.buffers())
            .all(|(x, y)| x.as_ptr() == y.as_ptr() && x.len() == y.len())
}

/// A dictionary the verdicts can be reused for; other key types are decoded instead.
fn int32_dictionary(array: &ArrayRef) -> Option<&DictionaryArray<Int32Type>> {
    array.as_dictionary_opt::<Int32Type>()
}

/// Missing cells (null, or NaN in a float column) of each column, and the rows with any (a
/// dictionary's cells by their keys and values).
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
pub fn rule(op: CheckOp, name: &str, values: Vec<Value>) -> Rule {
    Rule {
        rule: CheckRule {
            number: 0,
            name: name.into(),
            op,
            values,
            include_min: true,
            include_max: true,
            ignore_na: true,
        },
        verdicts: Verdicts::default(),
    }
}

/// A rule, with its verdicts on the last dictionary seen.
pub struct Rule {
    rule: CheckRule,
    verdicts: Verdicts,
}

impl Rule {
    /// The same rule, with no verdicts yet.
    pub fn fresh(&self) -> Self {
        Self {
            rule: self.rule.clone(),
            verdicts: Verdicts::default(),
        }
    }

    /// Rows failing the rule; `Err` says why it cannot be evaluated on this column.
    pub fn failures(&mut self, array: &ArrayRef, wanted: usize) -> Result<Failing, String> {
        let rule = &self.rule;
        let failing =
            |array: &ArrayRef| failing_rows(array, &missing(array), rule).map_err(|u| u.0);
        match int32_dictionary(array) {
            Some(dictionary) => self.verdicts.failures(dictionary, wanted, |values| {
                let positions = failing(values)?;
                let mut mask = vec![false; values.len()];
                positions.into_iter().for_each(|p| mask[p] = true);
                Ok(BooleanBuffer::from(mask))
            }),
            None => Ok(Failing::of_positions(failing(array)?, wanted)),
        }
    }
}

/// Python's `re.match` of one pattern: anchored at the start of each value. A lazy DFA with
/// a cache of its own answers (no shared pool, no per-call setup of the general engine); the
/// full engine answers the rare value the DFA gives up on (a Unicode word boundary next to
/// non-ASCII text) and patterns the DFA cannot build.
pub struct Pattern {
    dfa: Option<Lazy>,
    regex: Regex,
    verdicts: Verdicts,
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
            .map(|dfa| Lazy {
                cache: dfa.create_cache(),
                dfa,
                start: None,
            });
        Ok(Self {
            dfa,
            regex,
            verdicts: Verdicts::default(),
        })
    }

    /// The same pattern, compiled once, with a cache of its own and no verdicts yet (for
    /// another thread).
    pub fn fresh(&self) -> Self {
        Self {
            dfa: self.dfa.as_ref().map(|lazy| Lazy {
                cache: lazy.dfa.create_cache(),
                dfa: lazy.dfa.clone(),
                start: None,
            }),
            regex: self.regex.clone(),
            verdicts: Verdicts::default(),
        }
    }

    fn is_match(&mut self, value: &str) -> bool {
        self.matches(value.as_bytes())
    }

    /// Whether the pattern matches at the start of `value`, a string's bytes (UTF-8: the
    /// caller checks it, as the DFA may answer before the end of the value).
    pub fn matches(&mut self, value: &[u8]) -> bool {
        if let Some(lazy) = &mut self.dfa
            && let Some(found) = lazy.walk(value)
        {
            return found;
        }
        std::str::from_utf8(value).is_ok_and(|value| self.regex.is_match(value))
    }
}

/// The lazy DFA of a pattern, its cache, and its start state as of the cache's clear count.
struct Lazy {
    dfa: DFA,
    cache: Cache,
    /// Every value is searched from its start (no look-behind), so one start state serves
    /// all until the cache is cleared (which invalidates its states).
    start: Option<(LazyStateID, usize)>,
}

impl Lazy {
    /// The anchored start state, computed once per clearing of the cache.
    fn start(&mut self) -> Option<LazyStateID> {
        let cleared = self.cache.clear_count();
        if let Some((state, at)) = self.start
            && at == cleared
        {
            return Some(state);
        }
        let config = start::Config::new().anchored(Anchored::Yes);
        let state = self.dfa.start_state(&mut self.cache, &config).ok()?;
        self.start = Some((state, self.cache.clear_count()));
        Some(state)
    }

    /// Whether the DFA matches at the start of `hay`, walked byte by byte: values are short,
    /// so a plain walk that stops at the first match or the dead state beats the general
    /// search's per-call setup. `None` when the DFA gives up (a quit byte, a thrashing cache).
    fn walk(&mut self, hay: &[u8]) -> Option<bool> {
        let mut state = self.start()?;
        if state.is_tagged() {
            // A start state that is already special (a pattern that never matches).
            return None;
        }
        let (dfa, cache) = (&self.dfa, &mut self.cache);
        for &byte in hay {
            // The walk stays on untagged states (it stops at any other): a transition is one
            // table lookup until it reaches a state not computed yet or a special one.
            let mut next = dfa.next_state_untagged(cache, state, byte);
            if next.is_tagged() {
                if next.is_unknown() {
                    next = dfa.next_state(cache, state, byte).ok()?;
                }
                // Matches show one byte late: a match state here means a match ended before.
                if next.is_match() {
                    return Some(true);
                }
                if next.is_dead() {
                    return Some(false);
                }
                if next.is_tagged() {
                    // A quit state, or one this walk does not expect: the regex answers.
                    return None;
                }
            }
            state = next;
        }
        Some(dfa.next_eoi_state(cache, state).ok()?.is_match())
    }
}

/// Present strings that `pattern` does not match.
pub fn pattern_failures(
    array: &ArrayRef,
    pattern: &mut Pattern,
    wanted: usize,
) -> Result<Failing, String> {
    fn each<'a, S: StringArrayType<'a>>(array: S, pattern: &mut Pattern) -> BooleanBuffer {
        match array.null_count() {
            // Strings read from pages (every one present): no validity to look up per value.
            0 => BooleanBuffer::collect_bool(array.len(), |i| !pattern.is_match(array.value(i))),
            _ => BooleanBuffer::collect_bool(array.len(), |i| {
                array.is_valid(i) && !pattern.is_match(array.value(i))
            }),
        }
    }
    fn mismatches(array: &ArrayRef, pattern: &mut Pattern) -> Result<BooleanBuffer, String> {
        Ok(match array.data_type() {
            DataType::Utf8 => each(array.as_string::<i32>(), pattern),
            DataType::LargeUtf8 => each(array.as_string::<i64>(), pattern),
            DataType::Utf8View => each(array.as_string_view(), pattern),
            DataType::Dictionary(_, values) => {
                return mismatches(&plain(array)?, pattern)
                    .map_err(|_| format!("a pattern needs a string column, not {values}"));
            }
            other => return Err(format!("a pattern needs a string column, not {other}")),
        })
    }
    if let Some(dictionary) = int32_dictionary(array) {
        let mut verdicts = std::mem::take(&mut pattern.verdicts);
        let found = verdicts.failures(dictionary, wanted, |values| mismatches(values, pattern));
        pattern.verdicts = verdicts;
        return found;
    }
    Ok(Failing::of_mask(&mismatches(array, pattern)?, wanted))
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
            r"[^\s\S]",
            r"\Bx",
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
                    // The DFA itself answers ASCII values (the regex is only the fallback),
                    // except where its start state is already special.
                    if value.is_ascii() && pattern != r"[^\s\S]" {
                        let walked = ours.dfa.as_mut().unwrap().walk(value.as_bytes());
                        assert_eq!(walked, Some(regex.is_match(value)), "{pattern:?} {value:?}");
                    }
                }
            }
        }
    }

    /// Keys -1 are null rows whose raw key points at value 1 (a failing one).
    fn dictionary(keys: &[i32], values: &[&str]) -> ArrayRef {
        let nulls = NullBuffer::from(keys.iter().map(|&k| k >= 0).collect::<Vec<_>>());
        let raw = keys.iter().map(|&k| if k < 0 { 1 } else { k }).collect();
        let keys = arrow_array::Int32Array::new(raw, Some(nulls));
        let values: ArrayRef = Arc::new(arrow_array::StringArray::from(values.to_vec()));
        Arc::new(DictionaryArray::new(keys, values))
    }

    /// Rows counted through the keys equal rows counted on the spelled-out strings: nulls (with
    /// keys pointing at failing values) never fail, slices of one dictionary reuse its
    /// verdicts, and another dictionary of the same size is judged again.
    #[test]
    fn dictionary_verdicts_count_as_the_plain_strings() {
        let first = dictionary(&[0, -1, 1, 2, 1, -1, 0], &["C1", "bad", "C22"]);
        let other = dictionary(&[2, 1, 0], &["x", "C1", "y"]);
        let batches = [first.slice(0, 3), first.slice(3, 4), other];
        let plain = |a: &ArrayRef| super::plain(a).unwrap();
        let mut through_keys = Pattern::new(r"C\d+", true).unwrap();
        let mut spelled_out = Pattern::new(r"C\d+", true).unwrap();
        let mut accepted = rule(CheckOp::Isin, "accepted", vec!["C1".into(), "x".into()]);
        let mut accepted_plain = rule(CheckOp::Isin, "accepted", vec!["C1".into(), "x".into()]);
        let mut counts = Vec::new();
        for batch in &batches {
            let ours = pattern_failures(batch, &mut through_keys, 10).unwrap();
            let theirs = pattern_failures(&plain(batch), &mut spelled_out, 10).unwrap();
            assert_eq!((ours.count, &ours.first), (theirs.count, &theirs.first));
            let ours = accepted.failures(batch, 10).unwrap();
            let theirs = accepted_plain.failures(&plain(batch), 10).unwrap();
            assert_eq!((ours.count, &ours.first), (theirs.count, &theirs.first));
            counts.push(ours.count);
        }
        // bad in the first slice; C22 and bad in the second (null rows skipped); y in the
        // other dictionary.
        assert_eq!(counts, vec![1, 2, 1]);
    }
}
