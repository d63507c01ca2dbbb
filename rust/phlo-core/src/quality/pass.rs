//! One quality pass over a planned scan, driven by the engine: what the files' metadata proves
//! is settled first; then the columns the unsettled checks read stream while the dictionary
//! pages of the columns only pattern and accepted-values checks read are judged. Neither
//! waits for the other (on one partition the judging used to hold back the first batch); a
//! column some value of which fails is read afterwards, for its checks only.

use futures::StreamExt;

use super::Evaluator;
use crate::error::Result;
use crate::failpoint;
use crate::tables::scan::ScanPlan;

impl Evaluator {
    /// Checks the rows `plan` (planned with every column a check reads, string columns as
    /// dictionaries or not) selects; returns the columns read (id columns first; none when
    /// metadata and dictionary pages settled every check).
    pub async fn check_scan(&mut self, plan: &ScanPlan) -> Result<Vec<String>> {
        failpoint::hit("quality.check")?;
        let columns = self.settle(plan.file_metadata());
        let Some((candidates, judging)) = self.judging(plan, &columns)? else {
            return self.read(plan, &columns).await;
        };
        let others: Vec<String> = (columns.iter())
            .filter(|c| !candidates.contains(c))
            .cloned()
            .collect();
        // The rows must be counted by a scan when the metadata does not count them.
        let others = self.counted(others);
        self.defer(&candidates, true);
        let (passing, read) = futures::join!(judging, self.read(plan, &others));
        let mut read = read?;
        let failing = self.judged(&candidates, passing?);
        if !failing.is_empty() {
            // The checks of the failing columns (still deferred) get their rows now, uncounted:
            // every check's total is the rows read (or counted by the metadata) before.
            for column in self.read_deferred(plan, &failing).await? {
                if !read.contains(&column) {
                    read.push(column);
                }
            }
        }
        self.defer(&candidates, false);
        Ok(read)
    }

    /// Marks the running checks reading any of `columns` deferred or not.
    fn defer(&mut self, columns: &[String], deferred: bool) {
        for check in self.checks.iter_mut().filter(|c| c.kernel.is_some()) {
            if check.fields.iter().any(|f| columns.contains(f.name())) {
                check.deferred = deferred;
            }
        }
    }

    /// The id columns and `columns`, when there is any column to read.
    fn with_ids(&self, columns: &[String]) -> Vec<String> {
        if columns.is_empty() {
            return vec![];
        }
        let mut read = self.ids.clone();
        read.extend(columns.iter().filter(|c| !self.ids.contains(c)).cloned());
        read
    }

    /// Reads `columns` (with the id columns) of `plan`'s rows into the checks not deferred,
    /// counting the rows; returns the columns read.
    async fn read(&mut self, plan: &ScanPlan, columns: &[String]) -> Result<Vec<String>> {
        let read = self.with_ids(columns);
        if !read.is_empty() {
            let mut batches = plan.select(&read)?.into_stream()?;
            while let Some(batch) = batches.next().await {
                self.update(&batch?)?;
            }
        }
        Ok(read)
    }

    /// Reads `columns` (with the id columns) of `plan`'s rows into the deferred checks only.
    async fn read_deferred(&mut self, plan: &ScanPlan, columns: &[String]) -> Result<Vec<String>> {
        let read = self.with_ids(columns);
        let mut batches = plan.select(&read)?.into_stream()?;
        while let Some(batch) = batches.next().await {
            self.feed(&batch?, true)?;
        }
        Ok(read)
    }
}
