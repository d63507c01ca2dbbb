//! Pattern and accepted-values checks settled from the dictionary pages of the files to read
//! instead of their rows. A column chunk every data page of which is dictionary-encoded holds
//! only values of its dictionary page; when every value of every such dictionary passes, no row
//! fails, whatever subset of the rows the filter and delete files select. Nulls never fail
//! these checks (only present values are judged), so null counts do not matter. A chunk stored
//! plain (a writer falls back to plain once a dictionary outgrows its page limit) is judged by
//! every string its pages hold (`ProjectedFile::judge_strings`). Anything else — a failing
//! value (its rows and a sample are needed), a column another running check also reads —
//! leaves the column to the scan.

use arrow_schema::DataType;
use futures::StreamExt;
use futures::future::BoxFuture;

use super::metadata::Settled;
use super::{CheckSpec, Evaluator, Kernel, Running};
use crate::error::Result;
use crate::tables::scan::ScanPlan;
use crate::tables::{PageJudge, PlainValues};

/// Whether each candidate column passes in every file, once judged.
pub(super) type Judging = BoxFuture<'static, Result<Vec<bool>>>;

impl Evaluator {
    /// Settles what the files' metadata proves ([`Self::settle`]), then what the dictionary
    /// pages of `plan`'s files prove; returns the columns the other checks still read.
    pub async fn settle_scan(&mut self, plan: &ScanPlan) -> Result<Vec<String>> {
        let columns = self.settle(plan.file_metadata());
        self.settle_dictionaries(plan, columns).await
    }

    /// Settles the pattern and accepted-values checks of those of `columns` (the columns still
    /// to read) that only such checks read, from the dictionary pages of `plan`'s files;
    /// returns the columns still to read. Each file's pages are read by a task of their own
    /// (on the runtime's workers), each chunk judged on the thread that decoded it.
    pub async fn settle_dictionaries(
        &mut self,
        plan: &ScanPlan,
        columns: Vec<String>,
    ) -> Result<Vec<String>> {
        let Some((candidates, judging)) = self.judging(plan, &columns)? else {
            return Ok(columns);
        };
        let failing = self.judged(&candidates, judging.await?);
        let left: Vec<String> = columns
            .into_iter()
            .filter(|c| !candidates.contains(c) || failing.contains(c))
            .collect();
        Ok(self.counted(left))
    }

    /// Those of `columns` that only pattern and accepted-values checks read, and the judging
    /// of their dictionaries: whether every value every file holds passes, per column (it
    /// stops once none can). `None` when there is no such column.
    pub(super) fn judging(
        &self,
        plan: &ScanPlan,
        columns: &[String],
    ) -> Result<Option<(Vec<String>, Judging)>> {
        let candidates: Vec<String> = columns
            .iter()
            .filter(|c| self.judged_by_dictionary(c))
            .cloned()
            .collect();
        if candidates.is_empty() {
            return Ok(None);
        }
        // The checks' own kernels (compiled once per run); each chunk is judged by fresh copies
        // (caches of their own) on the thread that decoded it. A check that cannot judge
        // strings (accepted values of another type) does not pass them: the scan reports it.
        let kernels: Vec<Vec<Option<Kernel>>> = candidates
            .iter()
            .map(|column| {
                self.reading(column)
                    .map(|c| fresh(c.kernel.as_ref()))
                    .collect()
            })
            .collect();
        let judges = move |column: usize| -> PageJudge {
            let mut chunk: Vec<Option<Kernel>> =
                kernels[column].iter().map(|k| fresh(k.as_ref())).collect();
            Box::new(move |values: &PlainValues| {
                (chunk.iter_mut()).all(|k| k.as_mut().is_some_and(|k| passes(k, values)))
            })
        };
        let mut files = plan.judge_dictionaries(&candidates, judges)?;
        let mut passing = vec![true; candidates.len()];
        let judging = async move {
            while let Some(file) = files.next().await {
                for (all, passes) in passing.iter_mut().zip(file?) {
                    *all &= passes;
                }
                if !passing.contains(&true) {
                    break;
                }
            }
            Ok(passing)
        };
        Ok(Some((candidates, Box::pin(judging))))
    }

    /// Settles the checks of the `candidates` that `passing` (per candidate) says pass;
    /// returns the others.
    pub(super) fn judged(&mut self, candidates: &[String], passing: Vec<bool>) -> Vec<String> {
        let (settled, failing): (Vec<_>, Vec<_>) =
            (candidates.iter().cloned().zip(passing)).partition(|(_, passes)| *passes);
        let settled: Vec<String> = settled.into_iter().map(|(c, _)| c).collect();
        for check in self
            .checks
            .iter_mut()
            .filter(|c| c.kernel.is_some() && c.fields.iter().any(|f| settled.contains(f.name())))
        {
            check.kernel = None;
            check.settled = Some(Settled::default());
            check.from_dictionaries = true;
        }
        failing.into_iter().map(|(c, _)| c).collect()
    }

    /// Whether `column` is a string column read only by running pattern and accepted-values
    /// checks.
    fn judged_by_dictionary(&self, column: &str) -> bool {
        let reading: Vec<&Running> = self.reading(column).collect();
        !reading.is_empty()
            && reading.iter().all(|c| {
                matches!(
                    c.spec,
                    CheckSpec::Pattern { .. } | CheckSpec::AcceptedValues { .. }
                ) && c.fields.len() == 1
                    && c.fields[0].data_type() == &DataType::Utf8
            })
    }

    /// The running checks that read `column`.
    fn reading<'a>(&'a self, column: &'a str) -> impl Iterator<Item = &'a Running> {
        (self.checks.iter())
            .filter(move |c| c.kernel.is_some() && c.fields.iter().any(|f| f.name() == column))
    }
}

/// A copy of a judging kernel with a cache of its own and no verdicts yet.
fn fresh(kernel: Option<&Kernel>) -> Option<Kernel> {
    match kernel? {
        Kernel::Pattern(pattern) => Some(Kernel::Pattern(Box::new(pattern.fresh()))),
        Kernel::Rule(rule) => Some(Kernel::Rule(rule.fresh())),
        _ => None,
    }
}

/// Whether every value of `values` (one page of strings of a chunk) passes `kernel`: a
/// pattern walks them where they lie, a rule gets them as an array. A page cut off or not
/// UTF-8 does not pass: the scan reports it.
fn passes(kernel: &mut Kernel, values: &PlainValues) -> bool {
    match kernel {
        Kernel::Pattern(pattern) => {
            (values.iter()).all(|value| value.is_ok_and(|value| pattern.matches(value)))
        }
        Kernel::Rule(rule) => (values.to_array().ok())
            .is_some_and(|array| rule.failures(&array, 0).is_ok_and(|f| f.count == 0)),
        _ => false,
    }
}
