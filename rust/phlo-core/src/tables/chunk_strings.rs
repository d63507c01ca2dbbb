//! Every string a Parquet column chunk holds, judged in its pages without decoding its rows:
//! the values of its dictionary page and of its plain-encoded data pages. Data pages store
//! only present values, and a dictionary-encoded page only refers to its dictionary, so a
//! check that every one of these strings passes passes every row of the chunk (quality
//! checks, `crate::quality`). Rows, levels and nulls are not decoded: no Arrow reader, no copy
//! of the strings; each page is decompressed once and its values judged where they lie.

use std::sync::Arc;

use arrow_array::{ArrayRef, StringArray};
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use bytes::Bytes;
use parquet::basic::{Encoding, Type as PhysicalType};
use parquet::column::page::{Page, PageReader};
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::serialized_reader::SerializedPageReader;

use super::dictionary_pages::Window;

/// Where `chunk` lies in its file (every page, headers included), when its data pages use only
/// encodings [`chunk_strings`] reads (plain values, dictionary keys, RLE levels).
pub fn chunk_range(chunk: &ColumnChunkMetaData) -> Option<std::ops::Range<u64>> {
    let readable = chunk.encodings().all(|e| {
        matches!(
            e,
            Encoding::PLAIN | Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY | Encoding::RLE
        )
    });
    let start = chunk
        .dictionary_page_offset()
        .unwrap_or(chunk.data_page_offset());
    let start = u64::try_from(start).ok()?;
    let length = u64::try_from(chunk.compressed_size()).ok()?;
    (readable && chunk.column_type() == PhysicalType::BYTE_ARRAY).then(|| start..start + length)
}

/// Whether `judge` passes every page of strings of the string (`BYTE_ARRAY`) `chunk`, from
/// `bytes`, the file's [`chunk_range`] of it: its dictionary page, then each plain-encoded
/// data page, in order; the pages after one `judge` fails are not read. An error for any
/// other encoding or a malformed page; `judge` fails a page whose values
/// ([`PlainValues::iter`]) are cut off or not UTF-8.
pub fn judge_chunk_strings(
    chunk: &ColumnChunkMetaData,
    bytes: Bytes,
    judge: &mut dyn FnMut(&PlainValues) -> bool,
) -> Result<bool> {
    let range = chunk_range(chunk)
        .ok_or_else(|| ParquetError::General("the chunk's encodings are not read here".into()))?;
    let levels = Levels {
        repeated: chunk.column_descr().max_rep_level() > 0,
        optional: chunk.column_descr().max_def_level() > 0,
    };
    let window = Arc::new(Window::new(range.start, bytes));
    let mut pages = SerializedPageReader::new(window, chunk, chunk.num_values() as usize, None)?;
    let mut dictionary = false;
    while let Some(page) = pages.get_next_page()? {
        let values = match page {
            Page::DictionaryPage {
                buf,
                encoding: Encoding::PLAIN | Encoding::PLAIN_DICTIONARY,
                ..
            } => {
                dictionary = true;
                judge(&PlainValues::new(&buf))
            }
            Page::DataPage {
                encoding: Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY,
                ..
            }
            | Page::DataPageV2 {
                encoding: Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY,
                ..
            } if dictionary => true,
            Page::DataPage {
                buf,
                encoding: Encoding::PLAIN,
                def_level_encoding,
                rep_level_encoding,
                ..
            } => {
                let mut at = 0;
                if levels.repeated {
                    at = skip_levels(&buf, at, rep_level_encoding)?;
                }
                if levels.optional {
                    at = skip_levels(&buf, at, def_level_encoding)?;
                }
                judge(&PlainValues::new(&buf[at..]))
            }
            Page::DataPageV2 {
                buf,
                encoding: Encoding::PLAIN,
                num_values,
                num_nulls,
                def_levels_byte_len,
                rep_levels_byte_len,
                ..
            } => {
                let at = def_levels_byte_len as usize + rep_levels_byte_len as usize;
                let values = PlainValues::new(buf.get(at..).ok_or_else(|| cut_off("levels"))?);
                let (read, present) = (values.count()?, num_values.saturating_sub(num_nulls));
                if read != present as usize {
                    return Err(ParquetError::General(format!(
                        "a data page holds {read} values, its header says {present}"
                    )));
                }
                judge(&values)
            }
            other => {
                return Err(ParquetError::General(format!(
                    "a {:?} page encoded {} is not read here",
                    other.page_type(),
                    other.encoding()
                )));
            }
        };
        if !values {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Which level runs precede a v1 data page's values.
struct Levels {
    repeated: bool,
    optional: bool,
}

/// The position after the levels at `at` of a v1 data page: RLE levels are prefixed by their
/// length in bytes (4, little-endian).
pub(super) fn skip_levels(buf: &[u8], at: usize, encoding: Encoding) -> Result<usize> {
    if encoding != Encoding::RLE {
        return Err(ParquetError::General(format!(
            "levels encoded {encoding} are not read here"
        )));
    }
    let length = buf
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| cut_off("levels"))?;
    let end = at + 4 + length;
    (end <= buf.len())
        .then_some(end)
        .ok_or_else(|| cut_off("levels"))
}

fn cut_off(what: &str) -> ParquetError {
    ParquetError::EOF(format!("a page's {what} are cut off"))
}

/// The values of one PLAIN page of byte arrays (each a 4-byte little-endian length, then the
/// bytes), walked where they lie. A page that is all ASCII (length prefixes included, as short
/// values' are) holds only UTF-8 values, known by one fast pass; any other page's values are
/// checked one by one as they are walked.
pub struct PlainValues<'a> {
    buf: &'a [u8],
    ascii: bool,
}

impl<'a> PlainValues<'a> {
    /// The values of `buf` (PLAIN byte arrays up to its end).
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            ascii: buf.is_ascii(),
        }
    }

    /// Each value's bytes, in order, checked to be whole and UTF-8: the walk ends at the first
    /// error.
    pub fn iter(&self) -> impl Iterator<Item = Result<&'a [u8]>> + '_ {
        let (buf, ascii) = (self.buf, self.ascii);
        let mut at = 0usize;
        std::iter::from_fn(move || {
            if at >= buf.len() {
                return None;
            }
            let value = value_at(buf, at).and_then(|value| match ascii {
                true => Ok(value),
                false => std::str::from_utf8(value)
                    .map(|_| value)
                    .map_err(|e| ParquetError::General(format!("a value is not UTF-8: {e}"))),
            });
            // After an error, the walk ends.
            at = value.as_ref().map_or(buf.len(), |v| at + 4 + v.len());
            Some(value)
        })
    }

    /// How many values (all checked).
    pub fn count(&self) -> Result<usize> {
        self.iter().try_fold(0, |n, value| value.map(|_| n + 1))
    }

    /// The values copied into one string array (for kernels that need Arrow arrays).
    pub fn to_array(&self) -> Result<ArrayRef> {
        let mut offsets = vec![0i32];
        let mut values = Vec::with_capacity(self.buf.len());
        for value in self.iter() {
            values.extend_from_slice(value?);
            offsets.push(i32::try_from(values.len()).map_err(|_| {
                ParquetError::General("more than 2 GiB of strings in one page".into())
            })?);
        }
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        let strings = StringArray::try_new(offsets, Buffer::from(values), None)
            .map_err(|e| ParquetError::General(format!("a value is not UTF-8: {e}")))?;
        Ok(Arc::new(strings))
    }
}

/// The value whose length prefix is at `at` of `buf`.
fn value_at(buf: &[u8], at: usize) -> Result<&[u8]> {
    let length = buf
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| cut_off("value lengths"))?;
    buf.get(at + 4..at + 4 + length)
        .ok_or_else(|| cut_off("values"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use arrow_array::cast::AsArray;
    use arrow_array::{ListArray, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::{WriterProperties, WriterVersion};
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;

    /// Writes `column` (strings, or lists of strings) with `properties`; returns the file.
    fn written(column: ArrayRef, properties: WriterProperties) -> Bytes {
        let field = Field::new("s", column.data_type().clone(), true);
        let batch = RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![column]).unwrap();
        let mut file = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut file, batch.schema(), Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        Bytes::from(file)
    }

    /// The strings of every chunk of the file's only column, and the encodings of its pages.
    fn read_back(file: Bytes) -> (BTreeSet<String>, BTreeSet<Encoding>) {
        let reader = SerializedFileReader::new(file.clone()).unwrap();
        let mut strings = BTreeSet::new();
        let mut encodings = BTreeSet::new();
        for group in reader.metadata().row_groups() {
            let chunk = group.column(0);
            encodings.extend(chunk.page_encoding_stats_mask().unwrap().encodings());
            let range = chunk_range(chunk).unwrap();
            let bytes = file.slice(range.start as usize..range.end as usize);
            let mut judge = |values: &PlainValues| {
                let array = values.to_array().unwrap();
                assert_eq!(array.len(), values.count().unwrap());
                let walked: Vec<String> = (values.iter())
                    .map(|v| String::from_utf8(v.unwrap().to_vec()).unwrap())
                    .collect();
                assert!(
                    walked
                        .iter()
                        .map(|s| s.as_str())
                        .eq(array.as_string::<i32>().iter().flatten())
                );
                strings.extend(walked);
                true
            };
            assert!(judge_chunk_strings(chunk, bytes, &mut judge).unwrap());
        }
        (strings, encodings)
    }

    /// Short and long strings (some not ASCII, one 200 bytes long, some empty), nulls every 5th
    /// row.
    fn values(n: usize) -> Vec<Option<String>> {
        (0..n)
            .map(|i| match i {
                _ if i % 5 == 0 => None,
                7 => Some(format!("é{}", "x".repeat(200))),
                _ if i % 17 == 0 => Some(String::new()),
                _ if i % 3 == 0 => Some(format!("C{i}")),
                _ => Some(format!("long value number {i} ✓")),
            })
            .collect()
    }

    fn present(values: &[Option<String>]) -> BTreeSet<String> {
        values.iter().flatten().cloned().collect()
    }

    /// Every present string, whatever the page version, encoding (plain, dictionary, a
    /// dictionary that falls back to plain mid-chunk) or page size: the same set as written.
    #[test]
    fn every_present_string_of_a_chunk_is_read_from_its_pages() {
        let data = values(20_000);
        let column: ArrayRef = Arc::new(StringArray::from(data.clone()));
        for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
            for (dictionary, dictionary_limit) in [(false, 1 << 20), (true, 1 << 20), (true, 4096)]
            {
                let properties = WriterProperties::builder()
                    .set_writer_version(version)
                    .set_dictionary_enabled(dictionary)
                    .set_encoding(Encoding::PLAIN)
                    .set_dictionary_page_size_limit(dictionary_limit)
                    .set_data_page_size_limit(8192)
                    .set_max_row_group_row_count(Some(7_000))
                    .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                    .build();
                let (strings, encodings) = read_back(written(column.clone(), properties));
                assert_eq!(strings, present(&data), "{version:?} {dictionary_limit}");
                let plain = encodings.contains(&Encoding::PLAIN);
                let keyed = encodings.contains(&Encoding::RLE_DICTIONARY);
                // The cases cover plain pages, keyed pages and both in one chunk.
                assert_eq!(
                    (plain, keyed),
                    match (dictionary, dictionary_limit) {
                        (false, _) => (true, false),
                        (true, 4096) => (true, true),
                        _ => (false, true),
                    },
                    "{version:?} {dictionary} {dictionary_limit}"
                );
            }
        }
    }

    /// A repeated column (lists of strings) has repetition levels before its values.
    #[test]
    fn strings_inside_lists_are_read_past_both_levels() {
        let data = values(3_000);
        let strings = StringArray::from(data.clone());
        let offsets = OffsetBuffer::from_lengths((0..1_000).map(|_| 3));
        let nulls =
            arrow_buffer::NullBuffer::from((0..1_000).map(|i| i % 4 != 0).collect::<Vec<_>>());
        let item = Arc::new(Field::new("item", DataType::Utf8, true));
        let lists = ListArray::new(item, offsets, Arc::new(strings), Some(nulls.clone()));
        // The values under null lists are not stored.
        let kept: Vec<Option<String>> = (0..3_000)
            .filter(|i| nulls.is_valid(i / 3))
            .map(|i| data[i].clone())
            .collect();
        let properties = WriterProperties::builder()
            .set_dictionary_enabled(false)
            .build();
        let (read, _) = read_back(written(Arc::new(lists), properties));
        assert_eq!(read, present(&kept));
    }

    /// A chunk of another encoding (here Parquet 2's default for strings) is not read.
    #[test]
    fn other_encodings_are_left_to_the_scan() {
        let column: ArrayRef = Arc::new(StringArray::from(values(100)));
        let properties = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_2_0)
            .set_dictionary_enabled(false)
            .build();
        let file = written(column, properties);
        let reader = SerializedFileReader::new(file).unwrap();
        let chunk = reader.metadata().row_group(0).column(0);
        assert!(chunk.encodings().any(|e| e == Encoding::DELTA_BYTE_ARRAY));
        assert!(chunk_range(chunk).is_none());
    }

    /// A page that is not strings, or not UTF-8, is an error (the column is then scanned),
    /// whether the page is otherwise ASCII or not; an empty string and a non-ASCII one in a
    /// page are values like any other.
    #[test]
    fn bytes_that_are_not_utf8_strings_are_refused() {
        let refused = |buf: &[u8]| {
            let values = PlainValues::new(buf);
            let last = values.iter().last().unwrap();
            values.count().is_err() && values.to_array().is_err() && last.is_err()
        };
        assert!(refused(&[2, 0, 0, 0, 0xC3, 0x28]));
        assert!(refused(&[1, 0, 0, 0, b'a', 1, 0, 0, 0, 0xFF]));
        // A length prefix that is not ASCII (200) next to a value that is not UTF-8.
        let mut long = vec![200, 0, 0, 0];
        long.extend([b'x'; 199]);
        long.push(0x80);
        assert!(refused(&long));
        assert!(refused(&[9, 0, 0, 0, b'a']));
        assert!(refused(&[9, 0, 0]));
        let mut mixed = vec![0, 0, 0, 0, 2, 0, 0, 0];
        mixed.extend("é".as_bytes());
        mixed.extend([1, 0, 0, 0, b'C']);
        let values = PlainValues::new(&mixed);
        assert_eq!(values.count().unwrap(), 3);
        let walked: Vec<&[u8]> = values.iter().map(|v| v.unwrap()).collect();
        assert_eq!(walked, vec![&b""[..], "é".as_bytes(), b"C"]);
        assert_eq!(values.to_array().unwrap().len(), 3);
    }

    /// The pages after the first one the judge fails are not judged; the answer is false.
    #[test]
    fn judging_stops_at_the_first_failing_page() {
        let data = values(20_000);
        let column: ArrayRef = Arc::new(StringArray::from(data));
        let properties = WriterProperties::builder()
            .set_dictionary_enabled(false)
            .set_data_page_size_limit(4096)
            .build();
        let file = written(column, properties);
        let reader = SerializedFileReader::new(file.clone()).unwrap();
        let chunk = reader.metadata().row_group(0).column(0);
        let range = chunk_range(chunk).unwrap();
        let bytes = file.slice(range.start as usize..range.end as usize);
        let mut pages = 0;
        let mut all = |_: &PlainValues| {
            pages += 1;
            true
        };
        assert!(judge_chunk_strings(chunk, bytes.clone(), &mut all).unwrap());
        assert!(pages > 3, "{pages} pages");
        let mut judged = 0;
        let mut second_fails = |_: &PlainValues| {
            judged += 1;
            judged < 2
        };
        assert!(!judge_chunk_strings(chunk, bytes, &mut second_fails).unwrap());
        assert_eq!(judged, 2);
    }
}
