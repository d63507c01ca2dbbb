//! Whether arrow-rs can skip rows in a row group's DELTA_BINARY_PACKED column chunks. Its
//! decoder skips values only in miniblocks of 32 or 64 values, as parquet-java, arrow-cpp
//! (pyarrow) and arrow-rs write them; DuckDB's `PARQUET_VERSION V2` writes 256 values per
//! miniblock, and a row selection that skips inside such a chunk fails. A writer sizes the
//! miniblocks of all its pages alike, so the delta header at the start of a chunk's first
//! delta-encoded page (block size, miniblocks per block) tells. Reading it costs the first
//! bytes of the chunk; it is asked only where position deletes apply to a row group.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::basic::Encoding;
use parquet::column::page::{Page, PageReader};
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};
use parquet::file::serialized_reader::SerializedPageReader;

use super::chunk_strings::skip_levels;
use super::dictionary_pages::Window;
use super::file_ranges::FileRanges;

/// Bytes read from the start of a chunk first: page headers and a first page of ordinary size
/// (a chunk cut off before its first delta page is read whole).
const PROBE_BYTES: u64 = 64 << 10;

/// The projected DELTA_BINARY_PACKED column chunks of `row_groups`.
pub(super) fn delta_chunks(
    metadata: &ParquetMetaData,
    mask: &ProjectionMask,
    row_groups: &[usize],
) -> Vec<ColumnChunkMetaData> {
    (row_groups.iter())
        .flat_map(|&g| metadata.row_group(g).columns().iter().enumerate())
        .filter(|(leaf, chunk)| {
            mask.leaf_included(*leaf)
                && chunk
                    .encodings()
                    .any(|e| e == Encoding::DELTA_BINARY_PACKED)
        })
        .map(|(_, chunk)| chunk.clone())
        .collect()
}

/// Whether arrow-rs can skip values in every one of `chunks` of `file`; `false` also when a
/// chunk's miniblocks cannot be read (the rows are then decoded, which is always right).
pub(super) async fn skippable(mut file: FileRanges, chunks: Vec<ColumnChunkMetaData>) -> bool {
    let first = chunks.iter().map(|c| prefix(c, PROBE_BYTES)).collect();
    let Ok(prefixes) = file.get_byte_ranges(first).await else {
        return false;
    };
    for (chunk, bytes) in chunks.iter().zip(prefixes) {
        let mut values = miniblock_values(chunk, bytes.clone());
        let whole = prefix(chunk, u64::MAX);
        if values.is_err() && (bytes.len() as u64) < whole.end - whole.start {
            let Ok(bytes) = file.get_bytes(whole).await else {
                return false;
            };
            values = miniblock_values(chunk, bytes);
        }
        if !matches!(values, Ok(Some(32 | 64))) {
            return false;
        }
    }
    true
}

/// The first `limit` bytes of `chunk` (all of them when it is shorter).
fn prefix(chunk: &ColumnChunkMetaData, limit: u64) -> Range<u64> {
    let (start, length) = chunk.byte_range();
    start..start + length.min(limit)
}

/// Values per miniblock of the first DELTA_BINARY_PACKED data page of `chunk`, from `bytes`
/// (the chunk's first bytes); `None` when no page is delta-encoded. An error when the page is
/// malformed or cut off.
pub(super) fn miniblock_values(chunk: &ColumnChunkMetaData, bytes: Bytes) -> Result<Option<u64>> {
    let descr = chunk.column_descr();
    let (repeated, optional) = (descr.max_rep_level() > 0, descr.max_def_level() > 0);
    let window = Arc::new(Window::new(chunk.byte_range().0, bytes));
    let mut pages = SerializedPageReader::new(window, chunk, chunk.num_values() as usize, None)?;
    while let Some(page) = pages.get_next_page()? {
        let values = match page {
            Page::DataPage {
                buf,
                encoding: Encoding::DELTA_BINARY_PACKED,
                def_level_encoding,
                rep_level_encoding,
                ..
            } => {
                let mut at = 0;
                if repeated {
                    at = skip_levels(&buf, at, rep_level_encoding)?;
                }
                if optional {
                    at = skip_levels(&buf, at, def_level_encoding)?;
                }
                buf.slice(at..)
            }
            Page::DataPageV2 {
                buf,
                encoding: Encoding::DELTA_BINARY_PACKED,
                def_levels_byte_len,
                rep_levels_byte_len,
                ..
            } => {
                let at = def_levels_byte_len as usize + rep_levels_byte_len as usize;
                buf.get(at..).map(|_| buf.slice(at..)).unwrap_or_default()
            }
            _ => continue,
        };
        // The header: block size, miniblocks per block (ULEB128), then the values' count and
        // first value.
        let mut at = 0;
        let block = uleb128(&values, &mut at)?;
        let miniblocks = uleb128(&values, &mut at)?;
        return match miniblocks {
            0 => Err(ParquetError::General(
                "a delta header with no miniblocks".into(),
            )),
            _ => Ok(Some(block / miniblocks)),
        };
    }
    Ok(None)
}

fn uleb128(buf: &[u8], at: &mut usize) -> Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf
            .get(*at)
            .ok_or_else(|| ParquetError::EOF("a delta header is cut off".into()))?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ParquetError::General(
        "a delta header's number is too long".into(),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::{WriterProperties, WriterVersion};
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;

    /// arrow-rs writes 64-bit values in miniblocks of 64, in v1 and v2 pages alike; a chunk of
    /// another encoding has no delta page, and bytes cut off before the header are an error.
    #[test]
    fn the_miniblock_size_is_read_from_the_first_delta_page() {
        for (version, optional) in [
            (WriterVersion::PARQUET_1_0, true),
            (WriterVersion::PARQUET_2_0, false),
        ] {
            let schema = Arc::new(Schema::new(vec![Field::new(
                "id",
                DataType::Int64,
                optional,
            )]));
            let values: Int64Array = (0..5000)
                .map(|i| (!optional || i % 7 != 3).then_some(i * 3))
                .collect();
            let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap();
            let mut file = Vec::new();
            for encoding in [Encoding::DELTA_BINARY_PACKED, Encoding::PLAIN] {
                file.clear();
                let properties = WriterProperties::builder()
                    .set_writer_version(version)
                    .set_dictionary_enabled(false)
                    .set_encoding(encoding)
                    .build();
                let mut writer =
                    ArrowWriter::try_new(&mut file, schema.clone(), Some(properties)).unwrap();
                writer.write(&batch).unwrap();
                writer.close().unwrap();
                let bytes = Bytes::from(file.clone());
                let reader = SerializedFileReader::new(bytes.clone()).unwrap();
                let chunk = reader.metadata().row_group(0).column(0).clone();
                let range = prefix(&chunk, u64::MAX);
                let chunk_bytes = bytes.slice(range.start as usize..range.end as usize);
                let expected = (encoding == Encoding::DELTA_BINARY_PACKED).then_some(64);
                assert_eq!(
                    miniblock_values(&chunk, chunk_bytes.clone()).unwrap(),
                    expected
                );
                assert!(miniblock_values(&chunk, chunk_bytes.slice(..8)).is_err());
            }
        }
    }
}
