//! The bytes of one data file as the Parquet decoder asks for them: ranges are read on demand
//! (a reader holds the row group it decodes, not the file), except the file's tail, read once
//! with the footer and kept, so that a small file (up to [`TAIL_BYTES`]) costs one request.
//!
//! A reader of a run of row groups knows which column chunks it will ask for, in order: it
//! reads them ahead ([`FileRanges::reading_ahead`]), up to [`READ_AHEAD_BYTES`] beyond the row
//! group being decoded, so on object storage the next row group's round trip overlaps the
//! decoding of this one instead of following it. A span running into the tail is read ahead
//! up to it, the rest taken from the tail.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use futures::future::{BoxFuture, try_join_all};
use iceberg::io::{FileIO, FileRead};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::error::{Context, Result};

/// Bytes read from the end of a file along with its footer.
const TAIL_BYTES: u64 = 1 << 20;
/// Ranges this close are read as one request (fewer requests beat a few unneeded bytes).
const COALESCE_GAP: u64 = 1 << 20;
/// Bytes a reader holds or has in flight beyond what it decodes: a span larger than this is
/// read only when asked for, so memory stays bounded whatever the row groups' size.
pub const READ_AHEAD_BYTES: u64 = 4 << 20;

/// An open data file: shared by every reader of it (cloning does not read again).
#[derive(Clone)]
pub struct FileRanges {
    read: Arc<dyn FileRead>,
    size: u64,
    /// The file's last bytes, from `tail_start` to its end.
    tail: Bytes,
    tail_start: u64,
    /// What this reader (and its clones) will ask for next, read ahead.
    ahead: Option<Arc<Mutex<ReadAhead>>>,
}

/// Spans a reader will ask for, in order: those not started yet, and those being read.
struct ReadAhead {
    planned: VecDeque<Range<u64>>,
    reading: VecDeque<(Range<u64>, JoinHandle<iceberg::Result<Bytes>>)>,
    /// The bytes of the spans in `reading`.
    bytes: u64,
    read: Arc<dyn FileRead>,
    runtime: Handle,
}

impl ReadAhead {
    /// The read of the span holding `range`, if one was started or is next; spans before it
    /// are dropped (their row groups were skipped), and further spans started while the
    /// budget allows.
    fn take(&mut self, range: &Range<u64>) -> Option<ReadSpan> {
        let holds = |span: &Range<u64>| span.start <= range.start && range.end <= span.end;
        let found = loop {
            if let Some((span, _)) = self.reading.front() {
                if holds(span) {
                    let (span, task) = self.reading.pop_front()?;
                    self.bytes -= span.end - span.start;
                    break Some((span, task));
                }
                if span.end > range.start {
                    break None;
                }
                let (span, task) = self.reading.pop_front()?;
                task.abort();
                self.bytes -= span.end - span.start;
                continue;
            }
            match self.planned.front() {
                Some(span) if holds(span) => {
                    let span = self.planned.pop_front()?;
                    break Some((span.clone(), self.spawn_read(span)));
                }
                Some(span) if span.end <= range.start => {
                    self.planned.pop_front();
                }
                _ => break None,
            }
        };
        self.start();
        found
    }

    /// Starts reading planned spans while they fit the budget.
    fn start(&mut self) {
        while let Some(span) = self.planned.front() {
            let len = span.end - span.start;
            if self.bytes + len > READ_AHEAD_BYTES {
                break;
            }
            let span = self.planned.pop_front().expect("a planned span");
            self.bytes += len;
            let task = self.spawn_read(span.clone());
            self.reading.push_back((span, task));
        }
    }

    fn spawn_read(&self, span: Range<u64>) -> JoinHandle<iceberg::Result<Bytes>> {
        let read = self.read.clone();
        self.runtime.spawn(async move { read.read(span).await })
    }
}

impl Drop for ReadAhead {
    // A reader that stops early (an error, a limit) leaves no reads running.
    fn drop(&mut self) {
        for (_, task) in &self.reading {
            task.abort();
        }
    }
}

type ReadSpan = (Range<u64>, JoinHandle<iceberg::Result<Bytes>>);

impl FileRanges {
    /// Opens `path` (`size` bytes long) and reads its tail.
    pub async fn open(io: &FileIO, path: &str, size: u64) -> Result<Self> {
        let read: Arc<dyn FileRead> = Arc::from(
            io.new_input(path)
                .context(|| format!("opening {path}"))?
                .reader()
                .await
                .context(|| format!("opening {path}"))?,
        );
        Self::of_reader(read, path, size).await
    }

    /// The file `read` reads (`path`, `size` bytes long), its tail read.
    async fn of_reader(read: Arc<dyn FileRead>, path: &str, size: u64) -> Result<Self> {
        let tail_start = size.saturating_sub(TAIL_BYTES);
        let tail = read
            .read(tail_start..size)
            .await
            .context(|| format!("reading {path}"))?;
        Ok(Self {
            read,
            size,
            tail,
            tail_start,
            ahead: None,
        })
    }

    /// A reader of the same file that will read the chunks of the columns `mask` selects in
    /// `row_groups` of `metadata`, in that order (as the Parquet decoder asks for them, nearby
    /// chunks coalesced), and reads them ahead of the decoder on the current Tokio runtime
    /// (outside one, it reads on demand).
    pub fn reading_ahead(
        &self,
        metadata: &ParquetMetaData,
        mask: &ProjectionMask,
        row_groups: &[usize],
    ) -> Self {
        let Ok(runtime) = Handle::try_current() else {
            return self.clone();
        };
        let planned: VecDeque<Range<u64>> = row_groups
            .iter()
            .flat_map(|&group| {
                let columns = metadata.row_group(group).columns();
                let chunks = (columns.iter().enumerate())
                    .filter(|(leaf, _)| mask.leaf_included(*leaf))
                    .map(|(_, chunk)| {
                        let (start, len) = chunk.byte_range();
                        start..start + len
                    })
                    .collect::<Vec<_>>();
                coalesce(&chunks).into_iter().map(|(span, _)| span)
            })
            // The tail is held already: only what comes before it is read.
            .filter(|span| span.start < self.tail_start)
            .map(|span| span.start..span.end.min(self.tail_start))
            .collect();
        let mut ahead = ReadAhead {
            planned,
            reading: VecDeque::new(),
            bytes: 0,
            read: self.read.clone(),
            runtime,
        };
        ahead.start();
        Self {
            ahead: Some(Arc::new(Mutex::new(ahead))),
            ..self.clone()
        }
    }

    async fn fetch(&self, range: Range<u64>) -> parquet::errors::Result<Bytes> {
        if range.start >= self.tail_start {
            return slice(&self.tail, self.tail_start, &range);
        }
        if range.end > self.tail_start {
            // The part before the tail, then the tail's.
            let head = self.fetch_before_tail(range.start..self.tail_start).await?;
            let rest = slice(&self.tail, self.tail_start, &(self.tail_start..range.end))?;
            let mut joined = BytesMut::with_capacity((range.end - range.start) as usize);
            joined.extend_from_slice(&head);
            joined.extend_from_slice(&rest);
            return Ok(joined.freeze());
        }
        self.fetch_before_tail(range).await
    }

    /// `range`, which ends at or before the tail: from a read ahead, or read now.
    async fn fetch_before_tail(&self, range: Range<u64>) -> parquet::errors::Result<Bytes> {
        let external = |e: iceberg::Error| ParquetError::External(Box::new(e));
        let ahead = (self.ahead.as_ref()).and_then(|ahead| ahead.lock().ok()?.take(&range));
        let (start, bytes) = match ahead {
            Some((span, task)) => {
                let read = task
                    .await
                    .map_err(|e| ParquetError::General(format!("reading ahead: {e}")))?;
                (span.start, read.map_err(external)?)
            }
            None => (
                range.start,
                self.read.read(range.clone()).await.map_err(external)?,
            ),
        };
        slice(&bytes, start, &range)
    }
}

/// `ranges` sorted and merged where they are at most [`COALESCE_GAP`] apart: the spans to
/// read, each with the indexes of the ranges it holds.
fn coalesce(ranges: &[Range<u64>]) -> Vec<(Range<u64>, Vec<usize>)> {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by_key(|&i| ranges[i].start);
    let mut spans: Vec<(Range<u64>, Vec<usize>)> = Vec::new();
    for i in order {
        match spans.last_mut() {
            Some((span, members)) if ranges[i].start <= span.end + COALESCE_GAP => {
                span.end = span.end.max(ranges[i].end);
                members.push(i);
            }
            _ => spans.push((ranges[i].clone(), vec![i])),
        }
    }
    spans
}

/// `range` of the file out of `bytes`, which start at file offset `start`.
fn slice(bytes: &Bytes, start: u64, range: &Range<u64>) -> parquet::errors::Result<Bytes> {
    let (from, to) = ((range.start - start) as usize, (range.end - start) as usize);
    match to <= bytes.len() {
        true => Ok(bytes.slice(from..to)),
        false => Err(ParquetError::EOF(format!(
            "bytes {}..{} are past the end of the file",
            range.start, range.end
        ))),
    }
}

impl AsyncFileReader for FileRanges {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.fetch(range).boxed()
    }

    /// Reads nearby ranges (a row group's column chunks) as one request, requests at once.
    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            let spans = coalesce(&ranges);
            let fetched =
                try_join_all(spans.iter().map(|(span, _)| self.fetch(span.clone()))).await?;
            let mut out = vec![Bytes::new(); ranges.len()];
            for ((span, members), bytes) in spans.iter().zip(fetched) {
                for &i in members {
                    out[i] = slice(&bytes, span.start, &ranges[i])?;
                }
            }
            Ok(out)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            // The footer is read from the tail already held; page indexes are not used.
            let metadata = ParquetMetaDataReader::new()
                .with_prefetch_hint(Some(TAIL_BYTES as usize))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;
    use std::time::Duration;

    use arrow_array::{ArrayRef, Int64Array, RecordBatch};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::*;

    /// A file in memory that records the ranges read from it; reads within `gated` wait for
    /// a gate that never opens.
    struct Recorded {
        bytes: Bytes,
        reads: StdMutex<Vec<Range<u64>>>,
        gate: tokio::sync::Semaphore,
        gated: Range<u64>,
    }

    #[async_trait::async_trait]
    impl FileRead for Recorded {
        async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
            self.reads.lock().unwrap().push(range.clone());
            if self.gated.start <= range.start && range.end <= self.gated.end {
                let _never = self.gate.acquire().await;
            }
            Ok(self.bytes.slice(range.start as usize..range.end as usize))
        }
    }

    /// A Parquet file of `groups` row groups of two plain int64 columns, `rows` rows each.
    fn parquet(groups: usize, rows: usize) -> (Bytes, ParquetMetaData) {
        let values = |k: i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(
                (0..rows as i64).map(move |i| i * k),
            ))
        };
        let batch = RecordBatch::try_from_iter([("a", values(7)), ("b", values(13))]).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(rows))
            .set_dictionary_enabled(false)
            .build();
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        for _ in 0..groups {
            writer.write(&batch).unwrap();
            writer.flush().unwrap();
        }
        writer.close().unwrap();
        let bytes = Bytes::from(out);
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&bytes)
            .unwrap();
        (bytes, metadata)
    }

    /// The bytes of column `leaf` in row group `group`.
    fn chunk(metadata: &ParquetMetaData, group: usize, leaf: usize) -> Range<u64> {
        let (start, len) = metadata.row_group(group).column(leaf).byte_range();
        start..start + len
    }

    async fn opened(bytes: &Bytes, gated: Range<u64>) -> (Arc<Recorded>, FileRanges) {
        let file = Arc::new(Recorded {
            bytes: bytes.clone(),
            reads: StdMutex::new(Vec::new()),
            gate: tokio::sync::Semaphore::new(0),
            gated,
        });
        let ranges = FileRanges::of_reader(file.clone(), "mem://f", bytes.len() as u64)
            .await
            .unwrap();
        (file, ranges)
    }

    /// The spans `ranges` has started reading ahead and not handed out yet.
    fn started(ranges: &FileRanges) -> Vec<Range<u64>> {
        let ahead = ranges.ahead.as_ref().unwrap().lock().unwrap();
        ahead.reading.iter().map(|(span, _)| span.clone()).collect()
    }

    /// Waits (up to 10 s) until `done` holds.
    async fn until(done: impl Fn() -> bool) {
        for _ in 0..10_000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("it never happened");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_next_row_groups_are_read_before_they_are_asked_for() {
        // 8 row groups of 300,000 bytes per column; the tail holds the last three or so.
        let (bytes, metadata) = parquet(8, 37_500);
        let (file, ranges) = opened(&bytes, 0..0).await;
        let tail = ranges.tail_start;
        assert_eq!(file.reads.lock().unwrap().len(), 1, "the tail alone");
        let mask = ProjectionMask::leaves(metadata.file_metadata().schema_descr(), [1]);
        let mut reader = ranges.reading_ahead(&metadata, &mask, &[1, 2, 3]);
        // Before anything is asked for, the run's chunks of `b` are being read.
        let wanted: Vec<Range<u64>> = [1, 2, 3].map(|g| chunk(&metadata, g, 1)).to_vec();
        assert!(wanted.iter().all(|r| r.end <= tail));
        assert_eq!(started(&reader), wanted);
        until(|| file.reads.lock().unwrap().len() == 4).await;
        // Asked for, they come from the reads already made, byte for byte, none read twice.
        for range in &wanted {
            let got = reader.get_byte_ranges(vec![range.clone()]).await.unwrap();
            assert_eq!(
                got[0],
                bytes.slice(range.start as usize..range.end as usize)
            );
        }
        // The reads run at once, so they may be recorded in any order.
        let mut read = file.reads.lock().unwrap()[1..].to_vec();
        read.sort_by_key(|r| r.start);
        assert_eq!(read, wanted);
        // A range outside the plan is read when asked for.
        let other = chunk(&metadata, 0, 0);
        let got = reader.get_bytes(other.clone()).await.unwrap();
        assert_eq!(got, bytes.slice(other.start as usize..other.end as usize));
        assert_eq!(file.reads.lock().unwrap().last(), Some(&other));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_span_running_into_the_tail_is_read_ahead_up_to_it() {
        // 8 row groups of 300,000 bytes per column: the 1 MiB tail starts inside one of them.
        let (bytes, metadata) = parquet(8, 37_500);
        let (file, ranges) = opened(&bytes, 0..0).await;
        let tail = ranges.tail_start;
        let group = (0..8)
            .find(|&g| chunk(&metadata, g, 0).start < tail && tail < chunk(&metadata, g, 1).end)
            .expect("a row group across the tail's start");
        let whole = chunk(&metadata, group, 0).start..chunk(&metadata, group, 1).end;
        let mut reader = ranges.reading_ahead(&metadata, &ProjectionMask::all(), &[group]);
        // Only the bytes before the tail are read, ahead of the decoder.
        let before_tail = whole.start..tail;
        assert_eq!(started(&reader), vec![before_tail.clone()]);
        until(|| file.reads.lock().unwrap().len() == 2).await;
        let got = reader.get_byte_ranges(vec![whole.clone()]).await.unwrap();
        assert_eq!(
            got[0],
            bytes.slice(whole.start as usize..whole.end as usize)
        );
        // Asked for, the span was not read again.
        assert_eq!(file.reads.lock().unwrap()[1..], vec![before_tail]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reading_ahead_keeps_to_its_budget_and_stops_with_its_reader() {
        // Row groups of about 1.5 MiB: two fit the budget, three do not.
        let (bytes, metadata) = parquet(6, 100_000);
        let span = |g: usize| chunk(&metadata, g, 0).start..chunk(&metadata, g, 1).end;
        let size = span(0).end - span(0).start;
        assert!(2 * size <= READ_AHEAD_BYTES && 3 * size > READ_AHEAD_BYTES);
        // Reads of groups 3 and 4 never finish.
        let (file, ranges) = opened(&bytes, span(3).start..span(4).end).await;
        let mut reader = ranges.reading_ahead(&metadata, &ProjectionMask::all(), &[0, 1, 2, 3, 4]);
        assert_eq!(started(&reader), [span(0), span(1)]);
        // Group 0 was skipped (its rows all deleted): asking for group 1 drops it, and the
        // budget taken back starts groups 2 and 3.
        let got = reader.get_byte_ranges(vec![span(1)]).await.unwrap();
        assert_eq!(
            got[0],
            bytes.slice(span(1).start as usize..span(1).end as usize)
        );
        assert_eq!(started(&reader), [span(2), span(3)]);
        reader.get_byte_ranges(vec![span(2)]).await.unwrap();
        assert_eq!(started(&reader), [span(3), span(4)]);
        until(|| file.reads.lock().unwrap().contains(&span(4))).await;
        // Once no reader is left, the reads still waiting are stopped: nothing holds the
        // file any more.
        drop((reader, ranges));
        until(|| Arc::strong_count(&file) == 1).await;
    }
}
