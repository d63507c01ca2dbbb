//! Whether two sets of data files of one table hold a common unique key: all key columns
//! together, compared as a tuple (a row with a null key column has no key). Only the key
//! columns are read, matched by field id (`tables/read.rs`), so files written by other engines
//! or under an older schema read as the table sees them. The side with fewer rows is indexed in
//! memory; the other is streamed against it batch by batch, stopping at the first shared key.
//!
//! Memory is the indexed side's key columns plus about 10 bytes a row: a UUID string key takes
//! ~50 bytes a row, so [`MAX_INDEXED_KEYS`] rows take ~200 MB. A larger side is not read at all
//! ([`Shared::TooMany`]).

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_buffer::NullBuffer;
use hashbrown::HashTable;
use iceberg::io::FileIO;
use iceberg::spec::DataFile;

use crate::error::Result;
use crate::keys::{KeyColumns, KeyEncoder};
use crate::tables::{ProjectedFile, ProjectedReader, Projection};
use crate::validate::failures::JsonRows;

/// Rows the smaller side may have for its keys to be indexed.
pub const MAX_INDEXED_KEYS: u64 = 4_000_000;

pub enum Shared {
    None,
    /// One key both sides hold, as a JSON object of the key columns.
    Key(String),
    /// Both sides have more than [`MAX_INDEXED_KEYS`] rows (the smaller side's count).
    TooMany(u64),
}

/// Whether a row of `left` and a row of `right` have the same key. `projection` selects
/// exactly the key columns.
pub async fn shared_key(
    io: &FileIO,
    projection: &Projection,
    left: &[DataFile],
    right: &[DataFile],
) -> Result<Shared> {
    let rows = |files: &[DataFile]| files.iter().map(DataFile::record_count).sum::<u64>();
    let (indexed, streamed) = match rows(left) <= rows(right) {
        true => (left, right),
        false => (right, left),
    };
    if rows(indexed) > MAX_INDEXED_KEYS {
        return Ok(Shared::TooMany(rows(indexed)));
    }
    let set = Arc::new(KeySet::read(io, projection, indexed).await?);
    for file in streamed {
        let set = set.clone();
        let found = ProjectedFile::open(io, file, projection)
            .await?
            .read_parallel(workers(), move |reader| set.first_shared(reader))
            .await?;
        if let Some(key) = found.into_iter().flatten().next() {
            return Ok(Shared::Key(key));
        }
    }
    Ok(Shared::None)
}

fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The keys of a set of data files, indexed by hash as (batch, row) pairs.
struct KeySet {
    encoder: Arc<KeyEncoder>,
    batches: Vec<KeyColumns>,
    index: HashTable<(u32, u32)>,
}

impl KeySet {
    async fn read(io: &FileIO, projection: &Projection, files: &[DataFile]) -> Result<Self> {
        let encoder = Arc::new(encoder(projection)?);
        let mut set = Self {
            encoder: encoder.clone(),
            batches: Vec::new(),
            index: HashTable::new(),
        };
        for file in files {
            let encoder = encoder.clone();
            let parts = ProjectedFile::open(io, file, projection)
                .await?
                .read_parallel(workers(), move |reader| {
                    reader
                        .map(|batch| {
                            let batch = batch?;
                            Ok((encoder.keys(&batch)?, key_nulls(&batch)))
                        })
                        .collect::<Result<Vec<_>>>()
                })
                .await?;
            for (keys, nulls) in parts.into_iter().flatten() {
                set.add(keys, nulls);
            }
        }
        Ok(set)
    }

    fn add(&mut self, keys: KeyColumns, nulls: Option<NullBuffer>) {
        let b = self.batches.len() as u32;
        for i in 0..keys.len() {
            if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                continue;
            }
            let batches = &self.batches;
            let hash = keys.hash(i);
            self.index.insert_unique(hash, (b, i as u32), |&(b, j)| {
                // Rehashing on growth: earlier batches are in `batches`, this one is `keys`.
                batches.get(b as usize).unwrap_or(&keys).hash(j as usize)
            });
        }
        self.batches.push(keys);
    }

    fn contains(&self, probe: &KeyColumns, i: usize) -> bool {
        self.index
            .find(probe.hash(i), |&(b, j)| {
                self.batches[b as usize].same(j as usize, probe, i)
            })
            .is_some()
    }

    /// The first key of `reader`'s rows that the set holds, as JSON.
    fn first_shared(&self, reader: ProjectedReader) -> Result<Option<String>> {
        for batch in reader {
            let batch = batch?;
            let (keys, nulls) = (self.encoder.keys(&batch)?, key_nulls(&batch));
            let shared = (0..keys.len()).find(|&i| {
                !nulls.as_ref().is_some_and(|n| n.is_null(i)) && self.contains(&keys, i)
            });
            if let Some(i) = shared {
                return Ok(Some(JsonRows::new(&batch).row(i)));
            }
        }
        Ok(None)
    }
}

/// One encoder for both sides, so their keys compare.
fn encoder(projection: &Projection) -> Result<KeyEncoder> {
    let schema = projection.schema();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    KeyEncoder::new(&RecordBatch::new_empty(schema.clone()), &names)
}

/// Rows with a null in any key column (they hold no key).
fn key_nulls(batch: &RecordBatch) -> Option<NullBuffer> {
    batch.columns().iter().fold(None, |nulls, column| {
        NullBuffer::union(nulls.as_ref(), column.logical_nulls().as_ref())
    })
}
