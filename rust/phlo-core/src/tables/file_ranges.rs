//! The bytes of one data file as the Parquet decoder asks for them: ranges are read on demand
//! (a reader holds the row group it decodes, not the file), except the file's tail, read once
//! with the footer and kept, so that a small file (up to [`TAIL_BYTES`]) costs one request.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, try_join_all};
use iceberg::io::{FileIO, FileRead};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::error::{Context, Result};

/// Bytes read from the end of a file along with its footer.
const TAIL_BYTES: u64 = 1 << 20;
/// Ranges this close are read as one request (fewer requests beat a few unneeded bytes).
const COALESCE_GAP: u64 = 1 << 20;

/// An open data file: shared by every reader of it (cloning does not read again).
#[derive(Clone)]
pub struct FileRanges {
    read: Arc<dyn FileRead>,
    size: u64,
    /// The file's last bytes, from `tail_start` to its end.
    tail: Bytes,
    tail_start: u64,
}

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
        })
    }

    async fn fetch(&self, range: Range<u64>) -> parquet::errors::Result<Bytes> {
        if range.start >= self.tail_start {
            return slice(&self.tail, self.tail_start, &range);
        }
        let bytes = self
            .read
            .read(range.clone())
            .await
            .map_err(|e| ParquetError::External(Box::new(e)))?;
        slice(&bytes, range.start, &range)
    }
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
