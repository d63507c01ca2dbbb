//! The dictionary page of a Parquet column chunk, read on its own. A chunk whose every data
//! page is dictionary-encoded (its page encoding statistics say so) holds only values of its
//! dictionary page: a check that every one of them passes passes every row of the chunk,
//! without decoding the rows (quality checks, `crate::quality`).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Encoding, Type as PhysicalType};
use parquet::column::page::{Page, PageReader};
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::page_index::offset_index::PageLocation;
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::serialized_reader::SerializedPageReader;

use super::chunk_strings::PlainValues;

/// Whether every data page of `chunk` is dictionary-encoded (by its page encoding
/// statistics; without them, not known to be).
pub fn all_dictionary(chunk: &ColumnChunkMetaData) -> bool {
    chunk.dictionary_page_offset().is_some()
        && chunk.page_encoding_stats_mask().is_some_and(|mask| {
            mask.is_only(Encoding::RLE_DICTIONARY) || mask.is_only(Encoding::PLAIN_DICTIONARY)
        })
}

/// Where the dictionary page of `chunk` lies in the file (header included), when every data
/// page of the chunk is dictionary-encoded.
pub fn dictionary_range(chunk: &ColumnChunkMetaData) -> Option<Range<u64>> {
    let start = u64::try_from(chunk.dictionary_page_offset()?).ok()?;
    let end = u64::try_from(chunk.data_page_offset()).ok()?;
    (all_dictionary(chunk) && start < end).then_some(start..end)
}

/// Whether `judge` passes the values of the dictionary page of the string (`BYTE_ARRAY`)
/// `chunk`, from `bytes`, the file's [`dictionary_range`] of it: decompressed, checked to be
/// UTF-8, judged where they lie.
pub fn judge_dictionary(
    chunk: &ColumnChunkMetaData,
    bytes: Bytes,
    judge: &mut dyn FnMut(&PlainValues) -> bool,
) -> Result<bool> {
    if chunk.column_type() != PhysicalType::BYTE_ARRAY {
        return Err(ParquetError::General(format!(
            "a dictionary of strings is BYTE_ARRAY, not {}",
            chunk.column_type()
        )));
    }
    let range = dictionary_range(chunk)
        .ok_or_else(|| ParquetError::General("the chunk is not all dictionary-encoded".into()))?;
    // The first data page is named only so that the reader knows where the dictionary ends.
    let first_data_page = PageLocation {
        offset: range.end as i64,
        compressed_page_size: 0,
        first_row_index: 0,
    };
    let window = Arc::new(Window::new(range.start, bytes));
    let mut pages = SerializedPageReader::new(
        window,
        chunk,
        chunk.num_values() as usize,
        Some(vec![first_data_page]),
    )?;
    match pages.get_next_page()? {
        Some(Page::DictionaryPage {
            buf,
            num_values,
            encoding: Encoding::PLAIN | Encoding::PLAIN_DICTIONARY,
            ..
        }) => {
            let values = PlainValues::new(&buf);
            match values.count()? == num_values as usize {
                true => Ok(judge(&values)),
                false => Err(ParquetError::General(
                    "a dictionary page holds another number of values than its header says".into(),
                )),
            }
        }
        Some(other) => Err(ParquetError::General(format!(
            "expected a PLAIN dictionary page, found a {:?} page encoded {}",
            other.page_type(),
            other.encoding()
        ))),
        None => Err(ParquetError::General(
            "the chunk has no dictionary page".into(),
        )),
    }
}

/// Bytes of a file starting at offset `start`, read by file offset.
pub(super) struct Window {
    start: u64,
    bytes: Bytes,
}

impl Window {
    pub(super) fn new(start: u64, bytes: Bytes) -> Self {
        Self { start, bytes }
    }

    fn at(&self, offset: u64) -> Result<Bytes> {
        offset
            .checked_sub(self.start)
            .map(|o| o as usize)
            .filter(|&o| o <= self.bytes.len())
            .map(|o| self.bytes.slice(o..))
            .ok_or_else(|| ParquetError::EOF(format!("offset {offset} is outside the page read")))
    }
}

impl Length for Window {
    fn len(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

impl ChunkReader for Window {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> Result<Self::T> {
        Ok(bytes::Buf::reader(self.at(start)?))
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes> {
        let from = self.at(start)?;
        match length <= from.len() {
            true => Ok(from.slice(..length)),
            false => Err(ParquetError::EOF(format!(
                "bytes {start}..{} are outside the page read",
                start + length as u64
            ))),
        }
    }
}
