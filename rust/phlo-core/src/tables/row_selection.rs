//! Rows deleted by position, as the Parquet reader skips them: a [`RowSelection`] per row
//! group (runs of deleted rows are skipped, not decoded and filtered out afterwards; the reader
//! itself turns a very fragmented selection into a mask over decoded pages), and the file
//! positions of the rows it yields, for readers that need them (merge-on-read key reads).

use std::ops::Range;

use parquet::arrow::arrow_reader::{RowSelection, RowSelector};

/// The rows of `rows` (file positions) not among `deleted` (ascending, each once, all inside
/// `rows`); `None` when none is deleted (the reader then reads every row).
pub fn skipping(rows: Range<i64>, deleted: &[i64]) -> Option<RowSelection> {
    if deleted.is_empty() {
        return None;
    }
    let mut selectors: Vec<RowSelector> = Vec::new();
    let mut at = rows.start;
    for &p in deleted {
        if p > at {
            selectors.push(RowSelector::select((p - at) as usize));
            selectors.push(RowSelector::skip(1));
        } else {
            // `p == at`: it extends the run of deleted rows just before it (or starts one at
            // the first row).
            match selectors.last_mut() {
                Some(run) if run.skip => run.row_count += 1,
                _ => selectors.push(RowSelector::skip(1)),
            }
        }
        at = p + 1;
    }
    if at < rows.end {
        selectors.push(RowSelector::select((rows.end - at) as usize));
    }
    Some(selectors.into())
}

/// Follows the rows a selection yields back to their positions in the file: from a first row,
/// every row is yielded but the deleted ones.
#[derive(Debug)]
pub struct Positions {
    next_row: i64,
}

impl Positions {
    pub fn from(first_row: i64) -> Self {
        Self {
            next_row: first_row,
        }
    }

    /// The positions of the next `n` rows yielded, given the file's `deleted` positions
    /// (ascending, each once).
    pub fn take(&mut self, n: usize, deleted: &[i64]) -> Vec<i64> {
        let mut out = Vec::with_capacity(n);
        let from = deleted.partition_point(|&p| p < self.next_row);
        let mut deleted = deleted[from..].iter().peekable();
        while out.len() < n {
            // The run of rows up to the next deleted one is yielded whole (or as much as fits).
            let until = deleted.peek().map_or(i64::MAX, |&&p| p);
            if self.next_row == until {
                deleted.next();
                self.next_row += 1;
                continue;
            }
            let run = (until - self.next_row).min((n - out.len()) as i64);
            out.extend(self.next_row..self.next_row + run);
            self.next_row += run;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The selected rows of a selection over `rows`, as positions.
    fn selected(rows: Range<i64>, selection: &RowSelection) -> Vec<i64> {
        let mut at = rows.start;
        let mut out = Vec::new();
        for s in selection.iter() {
            if !s.skip {
                out.extend(at..at + s.row_count as i64);
            }
            at += s.row_count as i64;
        }
        assert_eq!(at, rows.end, "the selection covers the rows exactly");
        out
    }

    fn model(rows: Range<i64>, deleted: &[i64]) -> Vec<i64> {
        rows.filter(|r| !deleted.contains(r)).collect()
    }

    #[test]
    fn skips_deleted_runs_at_the_edges_and_inside() {
        for deleted in [
            vec![10],
            vec![19],
            vec![10, 11, 12],
            vec![17, 18, 19],
            vec![10, 12, 14, 15, 19],
            (10..20).collect(),
        ] {
            let selection = skipping(10..20, &deleted).unwrap();
            assert_eq!(selected(10..20, &selection), model(10..20, &deleted));
            // Adjacent runs are merged: selectors alternate.
            let kinds: Vec<bool> = selection.iter().map(|s| s.skip).collect();
            assert!(kinds.windows(2).all(|w| w[0] != w[1]), "{kinds:?}");
        }
        assert!(skipping(10..20, &[]).is_none());
    }

    #[test]
    fn positions_follow_the_selected_rows() {
        let deleted = [0, 1, 5, 6, 7, 12, 19];
        let expected = model(0..20, &deleted);
        for step in [1, 2, 3, 7, 13] {
            let mut positions = Positions::from(0);
            let mut got = Vec::new();
            while got.len() < expected.len() {
                let n = step.min(expected.len() - got.len());
                got.extend(positions.take(n, &deleted));
            }
            assert_eq!(got, expected, "batches of {step}");
        }
    }
}
