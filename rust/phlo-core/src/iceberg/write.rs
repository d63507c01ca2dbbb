//! Arrow batches → Parquet data files (zstd, Iceberg field ids and column statistics).
//!
//! Rows are split by the table's partition spec with vectorised kernels (partition values are
//! computed per column, rows grouped by their row-encoded partition value, one `take` per
//! partition), and the files of different partitions — or, unpartitioned, of different lanes —
//! are encoded in parallel on the runtime's worker threads.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow_row::{RowConverter, SortField};
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
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tokio::task::JoinSet;

use crate::error::{Context, Error, Result};

type FileWriterBuilder =
    DataFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;
type FileWriter =
    DataFileWriter<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

/// Target size of one data file before the writer rolls over to the next.
const TARGET_FILE_SIZE: usize = 256 * 1024 * 1024;
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

/// Writes the batches of one commit. Batches must already match the table's Arrow schema.
pub struct DataFileSink {
    builder: FileWriterBuilder,
    schema: SchemaRef,
    spec: PartitionSpecRef,
    partitioner: Option<Arc<Partitioner>>,
    writers: HashMap<LaneKey, FileWriter>,
    lanes: usize,
    next_lane: usize,
    rows: u64,
}

impl DataFileSink {
    /// `file_prefix` names the files of this write (e.g. a commit id) so that orphans of an
    /// unfinished write can be traced back to it.
    pub fn new(file_io: &FileIO, metadata: &TableMetadata, file_prefix: &str) -> Result<Self> {
        let schema = metadata.current_schema().clone();
        let spec = metadata.default_partition_spec().clone();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_dictionary_page_size_limit(256 * 1024)
            .set_data_page_size_limit(256 * 1024)
            .build();
        let location = DefaultLocationGenerator::new(metadata)
            .context(|| "choosing the data file location".into())?;
        let names =
            DefaultFileNameGenerator::new(file_prefix.to_string(), None, DataFileFormat::Parquet);
        let rolling = RollingFileWriterBuilder::new(
            ParquetWriterBuilder::new(props, schema.clone()),
            TARGET_FILE_SIZE,
            file_io.clone(),
            location,
            names,
        );
        let partitioner = if spec.is_unpartitioned() {
            None
        } else {
            Some(Arc::new(Partitioner::new(&spec, &schema)?))
        };
        Ok(Self {
            builder: DataFileWriterBuilder::new(rolling),
            schema,
            spec,
            partitioner,
            writers: HashMap::new(),
            lanes: std::thread::available_parallelism().map_or(1, |n| n.get()),
            next_lane: 0,
            rows: 0,
        })
    }

    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        let Some(partitioner) = self.partitioner.clone() else {
            let pieces = self.lane_slices(batch);
            return self.write_pieces(pieces).await;
        };
        // Split slice by slice, so the rows copied into partitions stay a slice's worth.
        let mut pieces = Vec::new();
        for start in (0..batch.num_rows()).step_by(LANE_SLICE_ROWS) {
            let slice = batch.slice(start, LANE_SLICE_ROWS.min(batch.num_rows() - start));
            for (partition, rows) in partitioner.split(&slice)? {
                let key = LaneKey {
                    partition: Some(partition),
                    lane: 0,
                };
                pieces.push((key, rows));
            }
            if pieces.len() >= self.lanes {
                self.write_pieces(std::mem::take(&mut pieces)).await?;
            }
        }
        self.write_pieces(pieces).await
    }

    /// Unpartitioned rows: small batches go to one lane (no tiny files); large ones are sliced
    /// round-robin over as many lanes as there are cores.
    fn lane_slices(&mut self, batch: RecordBatch) -> Vec<(LaneKey, RecordBatch)> {
        let rows = batch.num_rows();
        let slices = rows.div_ceil(LANE_SLICE_ROWS).clamp(1, self.lanes);
        let per_slice = rows.div_ceil(slices);
        // One slice stays on lane 0 (small writes make one file); larger batches rotate.
        let first_lane = if slices == 1 { 0 } else { self.next_lane };
        self.next_lane = (first_lane + slices) % self.lanes;
        (0..slices)
            .map(|i| {
                let start = i * per_slice;
                let key = LaneKey {
                    partition: None,
                    lane: (first_lane + i) % self.lanes,
                };
                (key, batch.slice(start, per_slice.min(rows - start)))
            })
            .collect()
    }

    /// Writes each piece to its lane's file writer, lanes in parallel.
    async fn write_pieces(&mut self, pieces: Vec<(LaneKey, RecordBatch)>) -> Result<()> {
        let mut tasks = JoinSet::new();
        for (key, rows) in pieces {
            let mut writer = match self.writers.remove(&key) {
                Some(writer) => writer,
                None => open_writer(&self.builder, &self.spec, &self.schema, &key).await?,
            };
            tasks.spawn(async move {
                let result = writer.write(rows).await;
                (key, writer, result)
            });
        }
        let mut failure = None;
        while let Some(joined) = tasks.join_next().await {
            let (key, writer, result) = joined.map_err(|e| {
                Error::invalid(
                    format!("a data file writer task failed: {e}"),
                    "this is a bug; please report it",
                )
            })?;
            self.writers.insert(key, writer);
            if let Err(e) = result {
                failure.get_or_insert(e);
            }
        }
        match failure {
            Some(e) => Err(e).context(|| "writing a data file".into()),
            None => Ok(()),
        }
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Closes every open file and returns the data files written.
    pub async fn finish(self) -> Result<Vec<DataFile>> {
        let mut tasks = JoinSet::new();
        for (_, mut writer) in self.writers {
            tasks.spawn(async move { writer.close().await });
        }
        let mut files = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let closed = joined.map_err(|e| {
                Error::invalid(
                    format!("a data file writer task failed: {e}"),
                    "this is a bug; please report it",
                )
            })?;
            files.extend(closed.context(|| "closing data files".into())?);
        }
        Ok(files)
    }
}

async fn open_writer(
    builder: &FileWriterBuilder,
    spec: &PartitionSpecRef,
    schema: &SchemaRef,
    key: &LaneKey,
) -> Result<FileWriter> {
    let partition_key = key
        .partition
        .as_ref()
        .map(|values| PartitionKey::new(spec.as_ref().clone(), schema.clone(), values.clone()));
    builder
        .build(partition_key)
        .await
        .context(|| "opening a data file".into())
}

/// Splits batches by partition value without materialising a value per row.
struct Partitioner {
    calculator: PartitionValueCalculator,
    partition_type: StructType,
}

impl Partitioner {
    fn new(spec: &PartitionSpecRef, schema: &SchemaRef) -> Result<Self> {
        let calculator = PartitionValueCalculator::try_new(spec, schema)
            .context(|| "preparing partition transforms".into())?;
        let partition_type = spec
            .partition_type(schema)
            .context(|| "computing the partition type".into())?;
        Ok(Self {
            calculator,
            partition_type,
        })
    }

    fn split(&self, batch: &RecordBatch) -> Result<Vec<(Struct, RecordBatch)>> {
        let values: ArrayRef = self
            .calculator
            .calculate(batch)
            .context(|| "computing partition values".into())?;
        let converter = RowConverter::new(vec![SortField::new(values.data_type().clone())])
            .context(|| "encoding partition values".into())?;
        let rows = converter
            .convert_columns(std::slice::from_ref(&values))
            .context(|| "encoding partition values".into())?;
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

    fn struct_value(&self, one_row: &ArrayRef) -> Result<Struct> {
        let literal = arrow_struct_to_literal(one_row, &self.partition_type)
            .context(|| "reading a partition value".into())?;
        match literal.into_iter().next().flatten() {
            Some(Literal::Struct(value)) => Ok(value),
            _ => Err(Error::invalid(
                "a row has no partition value",
                "this is a bug; please report it",
            )),
        }
    }
}
