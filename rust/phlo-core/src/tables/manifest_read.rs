//! Reading a manifest, tolerant of one defect of other engines' manifests.
//!
//! iceberg-rust parses the `schema` key of a manifest's Avro metadata as the table's schema and
//! refuses the whole manifest when it is not one. DuckDB 1.4 writes the manifest *entries'*
//! schema there (field ids 0–4 and 100+, Avro `array`/`record` types) although its entries are
//! standard. The spec says the key holds the table schema of the manifest's `schema-id`, which
//! the table metadata has: a `schema` that is not that one is replaced by it before the
//! entries are parsed (it types the column bounds). Anything else wrong with a manifest (not
//! Avro, truncated, bad entries, an unknown schema id with no valid schema of its own) is an
//! `Error::Storage` of kind `InvalidData` naming the file.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use iceberg::io::FileIO;
use iceberg::spec::{Manifest, ManifestEntry, ManifestFile, ManifestStatus, Schema, TableMetadata};

use super::read_bytes;
use crate::error::{Context, Error, Result};

/// The sequence number of manifests written before sequence numbers existed (format v1).
const INITIAL_SEQUENCE_NUMBER: i64 = 0;

/// The manifest `manifest` lists, its entries carrying what they inherit from the list.
pub(crate) async fn read_manifest(
    io: &FileIO,
    manifest: &ManifestFile,
    table: &TableMetadata,
) -> Result<Manifest> {
    Ok(read_manifest_keeping_bytes(io, manifest, table).await?.0)
}

/// [`read_manifest`], with the bytes it parsed (for a commit to parse again instead of
/// reading them again); `None` for an encrypted manifest, which only iceberg-rust reads.
pub(crate) async fn read_manifest_keeping_bytes(
    io: &FileIO,
    manifest: &ManifestFile,
    table: &TableMetadata,
) -> Result<(Manifest, Option<Bytes>)> {
    let path = &manifest.manifest_path;
    if manifest.key_metadata.is_some() {
        let loaded = manifest
            .load_manifest(io)
            .await
            .context(|| format!("reading manifest {path}"))?;
        return Ok((loaded, None));
    }
    let bytes = read_bytes(io, path).await?;
    Ok((parse_manifest(&bytes, manifest, table)?, Some(bytes)))
}

/// The manifest `manifest` lists, from its (unencrypted) bytes.
pub(crate) fn parse_manifest(
    bytes: &[u8],
    manifest: &ManifestFile,
    table: &TableMetadata,
) -> Result<Manifest> {
    let path = &manifest.manifest_path;
    let parsed = match with_table_schema(bytes, table).map_err(|why| corrupt(path, why))? {
        None => Manifest::parse_avro(bytes),
        Some(patched) => Manifest::parse_avro(&patched),
    };
    let (entries, metadata) = parsed
        .map_err(|e| corrupt(path, e.to_string()))?
        .into_parts();
    let entries = entries
        .into_iter()
        .map(|entry| inherit(Arc::unwrap_or_clone(entry), manifest))
        .collect();
    Ok(Manifest::new(metadata, entries))
}

/// The manifest's bytes with the table's schema of its `schema-id` as its `schema` metadata,
/// or `None` to read them as they are: when the manifest's own schema is that one, or the
/// table no longer has that schema and the manifest's own is a valid Iceberg schema.
fn with_table_schema(bytes: &[u8], table: &TableMetadata) -> Result<Option<Vec<u8>>, String> {
    let header = Header::parse(bytes)?;
    let own = header
        .get(b"schema")
        .and_then(|json| serde_json::from_slice::<Schema>(json).ok());
    let id = header
        .get(b"schema-id")
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<i32>().ok());
    let Some(schema) = id.and_then(|id| table.schema_by_id(id)) else {
        let not_iceberg = "its `schema` metadata is not an Iceberg schema";
        return match (own, id) {
            (Some(_), _) => Ok(None),
            (None, Some(id)) => Err(format!("{not_iceberg} and the table has no schema {id}")),
            (None, None) => Err(format!("{not_iceberg} and it names no `schema-id`")),
        };
    };
    // A schema that parses can still be another one (DuckDB's entry schema without its map
    // columns does): its field types would decode the column bounds wrongly.
    if own.is_some_and(|own| own.as_struct() == schema.as_struct()) {
        return Ok(None);
    }
    let json = serde_json::to_vec(schema.as_ref()).map_err(|e| e.to_string())?;
    Ok(Some(header.rewritten(bytes, b"schema", &json)))
}

/// What an entry inherits from its manifest-list entry when it leaves it null (the spec's
/// inheritance rules: the snapshot id always, sequence numbers for added files and v1 lists).
fn inherit(mut entry: ManifestEntry, manifest: &ManifestFile) -> ManifestEntry {
    entry.snapshot_id.get_or_insert(manifest.added_snapshot_id);
    if entry.status == ManifestStatus::Added || manifest.sequence_number == INITIAL_SEQUENCE_NUMBER
    {
        entry
            .sequence_number
            .get_or_insert(manifest.sequence_number);
        entry
            .file_sequence_number
            .get_or_insert(manifest.sequence_number);
    }
    entry
}

fn corrupt(path: &str, why: String) -> Error {
    // A sound manifest iceberg-rust refuses: PyIceberg, removing an identity field from a
    // format v1 spec, keeps the column's name on the void field that replaces it.
    let source = if why.contains("conflicts with schema field") {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "a manifest of a partition spec phlo cannot read: {why} (another engine kept a \
                 column's name on a void partition field, as PyIceberg does when it removes an \
                 identity field from a format v1 table)"
            ),
        )
    } else {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a readable Iceberg manifest: {why}"),
        )
    };
    Error::Storage {
        path: path.to_string(),
        source,
    }
}

/// The metadata map of an Avro object container file's header (`Obj\x01`, a map of byte
/// strings, then the sync marker where `end` points).
struct Header<'a> {
    entries: Vec<(&'a [u8], &'a [u8])>,
    end: usize,
}

impl<'a> Header<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        let mut at = bytes
            .strip_prefix(b"Obj\x01")
            .map(|_| 4)
            .ok_or("it is not an Avro file")?;
        let mut entries = Vec::new();
        loop {
            let count = read_long(bytes, &mut at)?;
            if count == 0 {
                break;
            }
            if count < 0 {
                read_long(bytes, &mut at)?; // the block's size in bytes
            }
            for _ in 0..count.unsigned_abs() {
                entries.push((
                    read_bytes_field(bytes, &mut at)?,
                    read_bytes_field(bytes, &mut at)?,
                ));
            }
        }
        Ok(Self { entries, end: at })
    }

    fn get(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    /// The whole file again, with `key` set to `value` in the header (the blocks unchanged).
    fn rewritten(&self, bytes: &[u8], key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut entries: Vec<_> = self.entries.iter().filter(|(k, _)| *k != key).collect();
        let replacement = (key, value);
        entries.push(&replacement);
        let mut out = Vec::with_capacity(bytes.len() + value.len());
        out.extend_from_slice(b"Obj\x01");
        write_long(&mut out, entries.len() as i64);
        for (k, v) in entries {
            write_long(&mut out, k.len() as i64);
            out.extend_from_slice(k);
            write_long(&mut out, v.len() as i64);
            out.extend_from_slice(v);
        }
        write_long(&mut out, 0);
        out.extend_from_slice(&bytes[self.end..]);
        out
    }
}

/// An Avro `long`: a zig-zag varint of at most 10 bytes.
fn read_long(bytes: &[u8], at: &mut usize) -> Result<i64, String> {
    let mut raw = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *bytes.get(*at).ok_or("its header is cut short")?;
        *at += 1;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err("its header has a malformed number".into())
}

fn read_bytes_field<'a>(bytes: &'a [u8], at: &mut usize) -> Result<&'a [u8], String> {
    let len = usize::try_from(read_long(bytes, at)?).map_err(|_| "a negative length")?;
    let field = bytes
        .get(*at..at.saturating_add(len))
        .ok_or("its header is cut short")?;
    *at += len;
    Ok(field)
}

fn write_long(out: &mut Vec<u8>, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8 & 0x7f) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use apache_avro::{Reader, Writer};
    use iceberg::io::FileIO;
    use iceberg::spec::{
        DataContentType, DataFileBuilder, DataFileFormat, Datum, FormatVersion, ManifestFile,
        ManifestWriterBuilder, NestedField, PartitionSpec, PrimitiveType, Schema, Struct,
        TableMetadata, TableMetadataBuilder, Type,
    };

    use super::read_manifest;
    use crate::error::Error;

    /// The `schema` metadata DuckDB 1.4.4's iceberg extension writes into a manifest of an
    /// unpartitioned table (copied from one it wrote through `phlo catalog serve`): the entry
    /// schema, not the table's.
    const DUCKDB_SCHEMA: &str = r#"{"type":"struct","schema-id":0,"fields":[{"id":0,"name":"status","required":true,"type":"int"},{"id":1,"name":"snapshot_id","required":false,"type":"long"},{"id":3,"name":"sequence_number","required":false,"type":"long"},{"id":4,"name":"file_sequence_number","required":false,"type":"long"},{"id":2,"name":"data_file","required":true,"type":{"type":"struct","fields":[{"id":134,"name":"content","required":true,"type":"int"},{"id":100,"name":"file_path","required":true,"type":"string"},{"id":101,"name":"file_format","required":true,"type":"string"},{"id":102,"name":"partition","required":true,"type":{"type":"struct","fields":[]}},{"id":103,"name":"record_count","required":true,"type":"long"},{"id":104,"name":"file_size_in_bytes","required":true,"type":"long"},{"id":125,"name":"lower_bounds","required":false,"type":{"type":"array","items":{"type":"record","name":"k126_k127","fields":[{"name":"key","type":"int","id":126},{"name":"value","type":"binary","id":127}]}}},{"id":128,"name":"upper_bounds","required":false,"type":{"type":"array","items":{"type":"record","name":"k129_k130","fields":[{"name":"key","type":"int","id":129},{"name":"value","type":"binary","id":130}]}}}]}}]}"#;

    fn table() -> TableMetadata {
        let schema = Schema::builder()
            .with_schema_id(0)
            .with_fields([
                Arc::new(NestedField::required(
                    1,
                    "id",
                    Type::Primitive(PrimitiveType::Long),
                )),
                Arc::new(NestedField::optional(
                    2,
                    "v",
                    Type::Primitive(PrimitiveType::String),
                )),
            ])
            .build()
            .unwrap();
        TableMetadataBuilder::new(
            schema,
            PartitionSpec::unpartition_spec(),
            iceberg::spec::SortOrder::unsorted_order(),
            "memory:///t".into(),
            FormatVersion::V2,
            HashMap::new(),
        )
        .unwrap()
        .build()
        .unwrap()
        .metadata
    }

    /// A manifest of two added files, as iceberg-rust writes it, and its list entry.
    async fn written(io: &FileIO, table: &TableMetadata) -> ManifestFile {
        let output = io.new_output("memory:///m.avro").unwrap();
        let schema = table.current_schema().clone();
        let spec = PartitionSpec::unpartition_spec();
        let mut writer = ManifestWriterBuilder::new(output, Some(7), schema, spec).build_v2_data();
        for (name, low) in [("a", 1), ("b", 10)] {
            let file = DataFileBuilder::default()
                .content(DataContentType::Data)
                .file_path(format!("memory:///{name}.parquet"))
                .file_format(DataFileFormat::Parquet)
                .partition(Struct::empty())
                .record_count(3)
                .file_size_in_bytes(100)
                .lower_bounds(HashMap::from([(1, Datum::long(low))]))
                .upper_bounds(HashMap::from([(2, Datum::string(name))]))
                .build()
                .unwrap();
            writer.add_file(file, 5).unwrap();
        }
        writer.write_manifest_file().await.unwrap()
    }

    /// The same file with its header's `schema` set to `schema` (re-encoded by apache-avro,
    /// as another engine would write it).
    fn with_schema(avro: &[u8], schema: &str) -> Vec<u8> {
        let reader = Reader::new(avro).unwrap();
        let avro_schema = reader.writer_schema().clone();
        let metadata = reader.user_metadata().clone();
        let values: Vec<_> = reader.map(Result::unwrap).collect();
        let mut writer = Writer::new(&avro_schema, Vec::new());
        for (key, value) in metadata {
            let value = if key == "schema" {
                schema.as_bytes().to_vec()
            } else {
                value
            };
            writer.add_user_metadata(key, value).unwrap();
        }
        for value in values {
            writer.append(value).unwrap();
        }
        writer.into_inner().unwrap()
    }

    async fn overwrite(io: &FileIO, path: &str, bytes: Vec<u8>) {
        io.new_output(path)
            .unwrap()
            .write(bytes.into())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_manifest_with_duckdbs_entry_schema_reads_like_the_original() {
        let io = FileIO::new_with_memory();
        let table = table();
        let manifest = written(&io, &table).await;
        let original = read_manifest(&io, &manifest, &table).await.unwrap();
        let avro = io
            .new_input(&manifest.manifest_path)
            .unwrap()
            .read()
            .await
            .unwrap();
        // DuckDB's, and the same without its map columns: a valid Iceberg schema, but not the
        // table's (its field 2 is a struct, not the string column `v`).
        let cut = DUCKDB_SCHEMA.find(r#",{"id":125"#).unwrap();
        let parses = format!("{}]}}}}]}}", &DUCKDB_SCHEMA[..cut]);
        assert!(serde_json::from_str::<Schema>(DUCKDB_SCHEMA).is_err());
        assert!(serde_json::from_str::<Schema>(&parses).is_ok());
        for schema in [DUCKDB_SCHEMA, &parses] {
            overwrite(&io, &manifest.manifest_path, with_schema(&avro, schema)).await;
            assert!(
                manifest.load_manifest(&io).await.is_err(),
                "iceberg-rust refuses it"
            );
            let tolerated = read_manifest(&io, &manifest, &table).await.unwrap();
            assert_eq!(tolerated.entries(), original.entries());
            assert_eq!(tolerated.metadata().schema(), table.current_schema());
            let entry = &tolerated.entries()[0];
            assert_eq!(
                entry.snapshot_id(),
                Some(7),
                "inherited from the list entry"
            );
            assert_eq!(entry.data_file().lower_bounds()[&1], Datum::long(1));
            assert_eq!(entry.data_file().upper_bounds()[&2], Datum::string("a"));
        }
    }

    #[tokio::test]
    async fn broken_manifests_are_storage_errors_naming_the_file() {
        let io = FileIO::new_with_memory();
        let table = table();
        let manifest = written(&io, &table).await;
        let avro = io
            .new_input(&manifest.manifest_path)
            .unwrap()
            .read()
            .await
            .unwrap();
        // DuckDB's schema and a `schema-id` the table does not have.
        let mut unknown_id = with_schema(&avro, DUCKDB_SCHEMA);
        let key = b"schema-id\x020";
        let at = unknown_id
            .windows(key.len())
            .position(|w| w == key)
            .unwrap();
        unknown_id[at + key.len() - 1] = b'9';
        let cases: [(Vec<u8>, &str); 4] = [
            (b"not avro at all".to_vec(), "not an Avro file"),
            (
                avro[..avro.len() / 2].to_vec(),
                "not a readable Iceberg manifest",
            ),
            (avro[..40].to_vec(), "cut short"),
            (unknown_id, "no schema 9"),
        ];
        for (bytes, says) in cases {
            overwrite(&io, &manifest.manifest_path, bytes).await;
            let failed = read_manifest(&io, &manifest, &table).await.unwrap_err();
            let Error::Storage { path, source } = &failed else {
                panic!("{failed:?}");
            };
            assert_eq!(path, &manifest.manifest_path);
            assert_eq!(source.kind(), std::io::ErrorKind::InvalidData);
            assert!(failed.to_string().contains(says), "{failed}");
            assert!(failed.to_string().contains("memory:///m.avro"), "{failed}");
        }
    }
}
