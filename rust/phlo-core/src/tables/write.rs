//! Arrow batches → Parquet data files (zstd, Iceberg field ids and column statistics).
//!
//! Rows are split by the table's partition spec with vectorised kernels (partition values are
//! computed per column, rows grouped by their row-encoded partition value, one `take` per
//! partition), and the files of different partitions — or, unpartitioned, of different lanes —
//! are encoded in parallel on the runtime's worker threads.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow_row::{RowConverter, Rows, SortField};
use arrow_select::take::take_record_batch;
use hashbrown::HashMap;
use iceberg::arrow::{PartitionValueCalculator, arrow_struct_to_literal};
use iceberg::io::FileIO;
use iceberg::spec::{
    DataFile, DataFileFormat, Literal, PartitionKey, PartitionSpecRef, SchemaRef, Struct,
    StructType, TableMetadata,
};
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator, LocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tokio::task::{JoinHandle, JoinSet};

use super::discard::WrittenFiles;
use crate::error::{Context, Error, Result};
use crate::schema::refuse_uncomputable_partitions;

pub(crate) type FileWriterBuilder =
    DataFileWriterBuilder<ParquetWriterBuilder, RecordedLocations, DefaultFileNameGenerator>;
pub(crate) type FileWriter =
    DataFileWriter<ParquetWriterBuilder, RecordedLocations, DefaultFileNameGenerator>;

/// The table's data file locations, each recorded in the write's [`WrittenFiles`] as it is
/// handed out (before the file exists), so a write that fails can remove every file it began.
#[derive(Clone)]
pub(crate) struct RecordedLocations {
    locations: DefaultLocationGenerator,
    written: WrittenFiles,
}

impl LocationGenerator for RecordedLocations {
    fn generate_location(&self, partition: Option<&PartitionKey>, file_name: &str) -> String {
        let location = self.locations.generate_location(partition, file_name);
        self.written.record(&location);
        location
    }
}

/// Target size of one data file before the writer rolls over to the next, unless the table's
/// `write.target-file-size-bytes` (Iceberg's property; Java's default is 512 MiB) says otherwise.
const TARGET_FILE_SIZE: usize = 256 * 1024 * 1024;
pub const TARGET_FILE_SIZE_PROPERTY: &str = "write.target-file-size-bytes";
/// Rows per Parquet row group. A writer buffers its open row group in memory, and a write keeps
/// one writer open per partition, so this bounds memory per partition.
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Unpartitioned batches are cut into slices of this many rows, spread over parallel lanes.
const LANE_SLICE_ROWS: usize = 128 * 1024;

/// Where a slice of rows goes: a partition (with its lane) or, unpartitioned, a lane.
#[derive(Clone, PartialEq, Eq, Hash)]
struct LaneKey {
    partition: Option<Struct>,
    lane: usize,
}

/// A file writer and the write it may be busy with: writes to a lane are pipelined (the
/// caller prepares the next batch while the lane encodes the last one on a worker thread).
struct Lane {
    idle: Option<FileWriter>,
    busy: Option<JoinHandle<(FileWriter, iceberg::Result<()>)>>,
}

impl Lane {
    /// Waits for the lane's pending write and returns its writer.
    /// `data_dir` names where the files go in errors (a failed write's message has no path).
    async fn writer(&mut self, data_dir: &str) -> Result<Option<FileWriter>> {
        if let Some(task) = self.busy.take() {
            let (writer, result) = task
                .await
                .map_err(|e| Error::from_join("writing a data file", e))?;
            result.context(|| format!("writing a data file under {data_dir}"))?;
            return Ok(Some(writer));
        }
        Ok(self.idle.take())
    }
}

/// Writes the batches of one commit. Batches must already match the table's Arrow schema.
pub struct DataFileSink {
    builder: FileWriterBuilder,
    schema: SchemaRef,
    spec: PartitionSpecRef,
    partitioner: Option<Arc<Partitioner>>,
    lanes: HashMap<LaneKey, Lane>,
    /// Unpartitioned: the lane receiving rows, and how many it got since it became current.
    current_lane: usize,
    current_lane_rows: usize,
    parallelism: usize,
    rows: u64,
    /// The table's data folder, for error messages.
    data_dir: String,
}

impl DataFileSink {
    /// `file_prefix` names the files of this write (e.g. a commit id) so that orphans of an
    /// unfinished write can be traced back to it; each file's name goes to `written`.
    pub fn new(
        file_io: &FileIO,
        metadata: &TableMetadata,
        file_prefix: &str,
        written: &WrittenFiles,
    ) -> Result<Self> {
        let schema = metadata.current_schema().clone();
        let spec = metadata.default_partition_spec().clone();
        let builder = file_writer_builder(
            file_io,
            metadata,
            file_prefix,
            target_file_bytes(metadata)?,
            written,
        )?;
        // A spec of void fields alone (fields removed from a v1 spec) still gives every file a
        // partition of one null per field: the manifest's partition type has those fields.
        let partitioner = if spec.fields().is_empty() {
            None
        } else {
            Some(Arc::new(Partitioner::new(&spec, &schema)?))
        };
        Ok(Self {
            builder,
            schema,
            spec,
            partitioner,
            lanes: HashMap::new(),
            current_lane: 0,
            current_lane_rows: 0,
            parallelism: std::thread::available_parallelism().map_or(1, |n| n.get()),
            rows: 0,
            data_dir: format!("{}/data", metadata.location()),
        })
    }

    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        let Some(partitioner) = self.partitioner.clone() else {
            for (key, rows) in self.lane_slices(batch) {
                self.send(key, rows).await?;
            }
            return Ok(());
        };
        // Split slice by slice, so the rows copied into partitions stay a slice's worth.
        for start in (0..batch.num_rows()).step_by(LANE_SLICE_ROWS) {
            let slice = batch.slice(start, LANE_SLICE_ROWS.min(batch.num_rows() - start));
            for (partition, rows) in partitioner.split(&slice)? {
                self.send(
                    LaneKey {
                        partition: Some(partition),
                        lane: 0,
                    },
                    rows,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Unpartitioned rows fill one lane until it has had `LANE_SLICE_ROWS` rows, then the next:
    /// small writes make one file, large ones spread over as many files as there are cores.
    fn lane_slices(&mut self, batch: RecordBatch) -> Vec<(LaneKey, RecordBatch)> {
        let mut slices = Vec::new();
        let mut start = 0;
        while start < batch.num_rows() {
            if self.current_lane_rows >= LANE_SLICE_ROWS {
                self.current_lane = (self.current_lane + 1) % self.parallelism;
                self.current_lane_rows = 0;
            }
            let take = (LANE_SLICE_ROWS - self.current_lane_rows).min(batch.num_rows() - start);
            let key = LaneKey {
                partition: None,
                lane: self.current_lane,
            };
            slices.push((key, batch.slice(start, take)));
            self.current_lane_rows += take;
            start += take;
        }
        slices
    }

    /// Hands rows to their lane's writer on a worker thread, after the lane's previous write.
    async fn send(&mut self, key: LaneKey, rows: RecordBatch) -> Result<()> {
        let lane = self.lanes.entry(key.clone()).or_insert(Lane {
            idle: None,
            busy: None,
        });
        let mut writer = match lane.writer(&self.data_dir).await? {
            Some(writer) => writer,
            None => {
                let partition = key.partition.as_ref();
                open_writer(&self.builder, &self.spec, &self.schema, partition).await?
            }
        };
        lane.busy = Some(tokio::spawn(async move {
            let result = writer.write(rows).await;
            (writer, result)
        }));
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Waits for pending writes, closes every file and returns the data files written. A
    /// write that failed calls it too, so no file is still being written when it removes them.
    pub async fn finish(&mut self) -> Result<Vec<DataFile>> {
        let mut closing = JoinSet::new();
        let mut failure = None;
        for (_, mut lane) in std::mem::take(&mut self.lanes) {
            match lane.writer(&self.data_dir).await {
                Ok(Some(mut writer)) => {
                    closing.spawn(async move { writer.close().await });
                }
                Ok(None) => {}
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        let mut files = Vec::new();
        while let Some(joined) = closing.join_next().await {
            match joined {
                Ok(Ok(closed)) => files.extend(closed),
                Ok(Err(e)) => {
                    let context = format!("closing data files under {}", self.data_dir);
                    failure.get_or_insert(Error::iceberg(context, e));
                }
                Err(e) => {
                    failure.get_or_insert(Error::from_join("closing data files", e));
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(files),
        }
    }
}

/// Iceberg's table property for the largest dictionary page of a column chunk (bytes); a chunk
/// whose distinct values outgrow it continues plain-encoded.
pub const DICTIONARY_SIZE_PROPERTY: &str = "write.parquet.dict-size-bytes";

/// phlo's default dictionary (and data) page limit. Small pages keep the ~30 open partition
/// writers of an append from holding 1 MiB buffers per column each, and a column of distinct
/// strings from filling a large dictionary before falling back to plain (1 MiB cost a 5M-row
/// append 23% more CPU). Java Iceberg writes 2 MiB, pyarrow 1 MiB: a table checked by pattern or
/// accepted-values checks on a column of many distinct strings may set the property higher so
/// its chunks stay dictionary-encoded and the checks read only their dictionaries
/// (docs/quality.md).
const PAGE_BYTES: usize = 256 * 1024;

/// The dictionary page limit `metadata`'s table asks for (the property, else phlo's default).
pub fn dictionary_page_bytes(metadata: &TableMetadata) -> Result<usize> {
    byte_property(metadata, DICTIONARY_SIZE_PROPERTY, PAGE_BYTES)
}

/// The data file size `metadata`'s table asks for (the property, else phlo's default).
pub fn target_file_bytes(metadata: &TableMetadata) -> Result<usize> {
    byte_property(metadata, TARGET_FILE_SIZE_PROPERTY, TARGET_FILE_SIZE)
}

fn byte_property(metadata: &TableMetadata, property: &str, default: usize) -> Result<usize> {
    match metadata.properties().get(property) {
        None => Ok(default),
        Some(value) => parse_byte_property(property, value),
    }
}

/// The byte-count properties phlo's writers read: a value set through phlo is checked first.
pub const BYTE_PROPERTIES: [&str; 2] = [DICTIONARY_SIZE_PROPERTY, TARGET_FILE_SIZE_PROPERTY];

/// `value` of table property `property` as a positive byte count.
pub fn parse_byte_property(property: &str, value: &str) -> Result<usize> {
    value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|&bytes| bytes > 0)
        .ok_or_else(|| {
            Error::invalid(
                format!("table property {property} is {value:?}, not a byte count"),
                format!("set it to a positive number of bytes, e.g. {}", 1024 * 1024),
            )
        })
}

/// The writer stack of one write's data files (table schema, default spec): Parquet with zstd
/// and sized row groups, rolled over to a new file at `target_size` bytes, named after
/// `file_prefix` (each name recorded in `written`).
pub(crate) fn file_writer_builder(
    file_io: &FileIO,
    metadata: &TableMetadata,
    file_prefix: &str,
    target_size: usize,
    written: &WrittenFiles,
) -> Result<FileWriterBuilder> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_dictionary_page_size_limit(dictionary_page_bytes(metadata)?)
        .set_data_page_size_limit(PAGE_BYTES)
        .build();
    let location = RecordedLocations {
        locations: DefaultLocationGenerator::new(metadata)
            .context(|| "choosing the data file location".into())?,
        written: written.clone(),
    };
    let names =
        DefaultFileNameGenerator::new(file_prefix.to_string(), None, DataFileFormat::Parquet);
    let rolling = RollingFileWriterBuilder::new(
        ParquetWriterBuilder::new(props, metadata.current_schema().clone()),
        target_size,
        file_io.clone(),
        location,
        names,
    );
    Ok(DataFileWriterBuilder::new(rolling))
}

/// Opens a writer for rows of one partition (`None`: the table is unpartitioned).
pub(crate) async fn open_writer(
    builder: &FileWriterBuilder,
    spec: &PartitionSpecRef,
    schema: &SchemaRef,
    partition: Option<&Struct>,
) -> Result<FileWriter> {
    let partition_key = partition
        .map(|values| PartitionKey::new(spec.as_ref().clone(), schema.clone(), values.clone()));
    builder
        .build(partition_key)
        .await
        .context(|| "opening a data file".into())
}

/// The distinct partition values of `batch` under the table's current partition spec; `None`
/// when it is unpartitioned. (Files written under an older spec have values of another shape.)
pub fn partition_values(
    metadata: &TableMetadata,
    batch: &RecordBatch,
) -> Result<Option<Vec<Struct>>> {
    let spec = metadata.default_partition_spec();
    if spec.fields().is_empty() {
        return Ok(None);
    }
    let partitioner = Partitioner::new(spec, metadata.current_schema())?;
    partitioner.values(batch).map(Some)
}

/// Splits batches by partition value without materialising a value per row.
struct Partitioner {
    /// `None` for a spec of void fields alone: every row's partition is all nulls.
    calculator: Option<PartitionValueCalculator>,
    partition_type: StructType,
    /// Kept to refuse, at the first row to partition, a field phlo cannot compute (a write
    /// that partitions no row, e.g. of position deletes alone, still lands).
    spec: PartitionSpecRef,
    schema: SchemaRef,
}

impl Partitioner {
    fn new(spec: &PartitionSpecRef, schema: &SchemaRef) -> Result<Self> {
        let calculator = match spec.is_unpartitioned() {
            true => None,
            false => Some(
                PartitionValueCalculator::try_new(spec, schema)
                    .context(|| "preparing partition transforms".into())?,
            ),
        };
        let partition_type = spec
            .partition_type(schema)
            .context(|| "computing the partition type".into())?;
        Ok(Self {
            calculator,
            partition_type,
            spec: spec.clone(),
            schema: schema.clone(),
        })
    }

    /// Each row's partition value, and its row encoding (equal values, equal bytes).
    fn encoded_values(
        &self,
        calculator: &PartitionValueCalculator,
        batch: &RecordBatch,
    ) -> Result<(ArrayRef, Rows)> {
        refuse_uncomputable_partitions(&self.spec, &self.schema)?;
        let values: ArrayRef = calculator
            .calculate(batch)
            .context(|| "computing partition values".into())?;
        let converter = RowConverter::new(vec![SortField::new(values.data_type().clone())])
            .context(|| "encoding partition values".into())?;
        let rows = converter
            .convert_columns(std::slice::from_ref(&values))
            .context(|| "encoding partition values".into())?;
        Ok((values, rows))
    }

    /// The distinct partition values of a batch.
    fn values(&self, batch: &RecordBatch) -> Result<Vec<Struct>> {
        let Some(calculator) = &self.calculator else {
            return Ok(vec![self.nulls()]);
        };
        let (values, rows) = self.encoded_values(calculator, batch)?;
        let mut first_of_each: HashMap<_, usize> = HashMap::new();
        for (i, row) in rows.iter().enumerate() {
            first_of_each.entry(row).or_insert(i);
        }
        first_of_each
            .into_values()
            .map(|i| self.struct_value(&values.slice(i, 1)))
            .collect()
    }

    fn split(&self, batch: &RecordBatch) -> Result<Vec<(Struct, RecordBatch)>> {
        let Some(calculator) = &self.calculator else {
            return Ok(vec![(self.nulls(), batch.clone())]);
        };
        let (values, rows) = self.encoded_values(calculator, batch)?;
        // Group row indices by partition, remembering one row of each group for its value.
        let mut groups: HashMap<_, (usize, Vec<u32>)> = HashMap::new();
        for (i, row) in rows.iter().enumerate() {
            groups
                .entry(row)
                .or_insert_with(|| (i, Vec::new()))
                .1
                .push(i as u32);
        }
        groups
            .into_values()
            .map(|(first, indices)| {
                let value = self.struct_value(&values.slice(first, 1))?;
                let rows = if indices.len() == batch.num_rows() {
                    batch.clone()
                } else {
                    take_record_batch(batch, &UInt32Array::from(indices))
                        .context(|| "selecting a partition's rows".into())?
                };
                Ok((value, rows))
            })
            .collect()
    }

    /// The partition of a spec of void fields: a null per field.
    fn nulls(&self) -> Struct {
        Struct::from_iter(self.partition_type.fields().iter().map(|_| None))
    }

    fn struct_value(&self, one_row: &ArrayRef) -> Result<Struct> {
        let literal = arrow_struct_to_literal(one_row, &self.partition_type)
            .context(|| "reading a partition value".into())?;
        match literal.into_iter().next().flatten() {
            Some(Literal::Struct(value)) => Ok(value),
            _ => Err(Error::internal(
                "reading a partition value",
                "a row has no partition value",
            )),
        }
    }
}
