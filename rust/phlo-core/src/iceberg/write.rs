//! Arrow batches → Parquet data files (zstd, Iceberg field ids and column statistics), split by
//! the table's partition spec.

use std::sync::Arc;

use arrow_array::RecordBatch;
use iceberg::arrow::RecordBatchPartitionSplitter;
use iceberg::io::FileIO;
use iceberg::spec::{DataFile, DataFileFormat, TableMetadata};
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::writer::partitioning::unpartitioned_writer::UnpartitionedWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::{Context, Result};

type FileWriterBuilder =
    DataFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

/// Target size of one data file before the writer rolls over to the next.
const TARGET_FILE_SIZE: usize = 256 * 1024 * 1024;

/// Writes the batches of one commit. Batches must already match the table's Arrow schema.
pub struct DataFileSink {
    writer: Writer,
    rows: u64,
}

enum Writer {
    Unpartitioned(Box<UnpartitionedWriter<FileWriterBuilder>>),
    /// One open file per partition seen; the splitter computes each row's partition.
    Partitioned(
        Box<(
            RecordBatchPartitionSplitter,
            FanoutWriter<FileWriterBuilder>,
        )>,
    ),
}

impl DataFileSink {
    /// `file_prefix` names the files of this write (e.g. a run or commit id) so that orphans of
    /// an unfinished write can be traced back to it.
    pub fn new(file_io: &FileIO, metadata: &TableMetadata, file_prefix: &str) -> Result<Self> {
        let schema = metadata.current_schema().clone();
        let spec = metadata.default_partition_spec().clone();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
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
        let builder = DataFileWriterBuilder::new(rolling);
        let writer = if spec.is_unpartitioned() {
            Writer::Unpartitioned(Box::new(UnpartitionedWriter::new(builder)))
        } else {
            let splitter = RecordBatchPartitionSplitter::try_new_with_computed_values(
                schema,
                Arc::clone(&spec),
            )
            .context(|| "preparing the partition splitter".into())?;
            Writer::Partitioned(Box::new((splitter, FanoutWriter::new(builder))))
        };
        Ok(Self { writer, rows: 0 })
    }

    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        match &mut self.writer {
            Writer::Unpartitioned(w) => w
                .write(batch)
                .await
                .context(|| "writing a data file".into()),
            Writer::Partitioned(parts) => {
                let (splitter, w) = parts.as_mut();
                let split = splitter
                    .split(&batch)
                    .context(|| "computing partition values".into())?;
                for (key, part) in split {
                    w.write(key, part)
                        .await
                        .context(|| "writing a data file".into())?;
                }
                Ok(())
            }
        }
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Closes every open file and returns the data files written.
    pub async fn finish(self) -> Result<Vec<DataFile>> {
        match self.writer {
            Writer::Unpartitioned(w) => w.close().await,
            Writer::Partitioned(parts) => parts.1.close().await,
        }
        .context(|| "closing data files".into())
    }
}
