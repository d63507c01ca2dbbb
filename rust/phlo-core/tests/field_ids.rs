//! Data files are read by Iceberg field id after a schema evolves (rename, drop and add again,
//! type promotion, files without ids): through the read module itself, and through the merge
//! and diff that use it. Tables are evolved with iceberg-rust's `TableMetadataBuilder` and
//! phlo's own commit path, as another engine would.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, Decimal128Array, Float32Array, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use arrow_cast::cast;
use arrow_schema::{ArrowError, DataType, Field, Schema as ArrowSchema};
use futures::TryStreamExt;
use iceberg::spec::{
    DataFile, DataFileBuilder, DataFileFormat, NestedField, PrimitiveType, Schema, Struct,
    TableMetadataBuilder, Type,
};
use phlo_core::Lakehouse;
use phlo_core::catalog::MAIN;
use phlo_core::merge::MergeOptions;
use phlo_core::tables::commit::{SnapshotChange, commit_append, commit_metadata, live_data_files};
use phlo_core::tables::{Projection, ScanOptions, read_data_file};

type Rows = Vec<Vec<Option<String>>>;

/// Every value as text (null as `None`), rows sorted: comparable with a written-out model.
fn rows(batches: &[RecordBatch]) -> Rows {
    let mut out = Vec::new();
    for batch in batches {
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .map(|c| cast(c, &DataType::Utf8).unwrap())
            .collect();
        for i in 0..batch.num_rows() {
            out.push(
                columns
                    .iter()
                    .map(|c| {
                        let c = c.as_any().downcast_ref::<StringArray>().unwrap();
                        (!c.is_null(i)).then(|| c.value(i).to_string())
                    })
                    .collect(),
            );
        }
    }
    out.sort();
    out
}

fn model(rows: &[&[Option<&str>]]) -> Rows {
    let mut out: Rows = rows
        .iter()
        .map(|r| r.iter().map(|v| v.map(str::to_string)).collect())
        .collect();
    out.sort();
    out
}

fn one(batch: RecordBatch) -> Vec<Result<RecordBatch, ArrowError>> {
    vec![Ok(batch)]
}

fn id_v(ids: &[i64], values: &[Option<&str>], value_column: &str) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(ArrowSchema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(value_column, DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(values.to_vec())),
        ],
    )
    .unwrap()
}

async fn table_with(batch: RecordBatch) -> (tempfile::TempDir, Lakehouse) {
    let dir = tempfile::tempdir().unwrap();
    let lh = Lakehouse::open(dir.path()).unwrap();
    lh.catalog().create_namespace("raw").unwrap();
    lh.create_table("raw.t", &batch.schema(), &[], HashMap::new(), MAIN)
        .await
        .unwrap();
    lh.append("raw.t", one(batch), MAIN, HashMap::new())
        .await
        .unwrap();
    (dir, lh)
}

/// Commits `fields` as the table's new current schema (ids chosen by the caller, as an
/// engine evolving the table does).
async fn evolve(lh: &Lakehouse, fields: Vec<NestedField>) {
    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    let schema = Schema::builder()
        .with_schema_id(table.metadata.current_schema().schema_id() + 1)
        .with_fields(fields.into_iter().map(Arc::new).collect::<Vec<_>>())
        .build()
        .unwrap();
    let next = TableMetadataBuilder::new_from_metadata(
        (*table.metadata).clone(),
        Some(table.metadata_location.clone()),
    )
    .add_current_schema(schema)
    .unwrap()
    .build()
    .unwrap()
    .metadata;
    assert!(
        commit_metadata(lh.catalog(), lh.file_io(), &table, &next, "evolve")
            .await
            .unwrap()
    );
}

/// The table's live files, each read with the read module onto the current schema.
async fn read_by_field_id(lh: &Lakehouse) -> Rows {
    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    let projection = Projection::new(&table.metadata, table.metadata.current_schema()).unwrap();
    let mut batches = Vec::new();
    for file in live_data_files(lh.file_io(), &table, MAIN).await.unwrap() {
        let read = read_data_file(lh.file_io(), &file, &projection, 2)
            .await
            .unwrap();
        assert!(read.iter().all(|b| b.schema() == *projection.schema()));
        batches.extend(read);
    }
    rows(&batches)
}

/// The table as a scan of its head reads it.
async fn scan(lh: &Lakehouse) -> Rows {
    scan_with(lh, &ScanOptions::default()).await.1
}

/// The column names and rows a scan reads.
async fn scan_with(lh: &Lakehouse, options: &ScanOptions) -> (Vec<String>, Rows) {
    let plan = lh.scan("raw.t", options).await.unwrap();
    let names = plan
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let batches: Vec<RecordBatch> = plan.into_stream().unwrap().try_collect().await.unwrap();
    (names, rows(&batches))
}

/// An upsert by id on main, deduplicating the batch (last wins) or not.
fn upsert(dedupe: bool) -> MergeOptions {
    MergeOptions {
        dedupe: dedupe.then_some(phlo_core::dedupe::DedupeMethod::Last),
        ..crate::model::upsert(None)
    }
}

fn string(id: i32, name: &str) -> NestedField {
    NestedField::optional(id, name, Type::Primitive(PrimitiveType::String))
}

fn long_id() -> NestedField {
    NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_column_keeps_its_values_through_reads_and_merges() {
    for dedupe in [true, false] {
        let (_dir, lh) =
            table_with(id_v(&[1, 2, 3], &[Some("a"), Some("b"), Some("c")], "v")).await;
        evolve(&lh, vec![long_id(), string(2, "w")]).await;
        let before = model(&[
            &[Some("1"), Some("a")],
            &[Some("2"), Some("b")],
            &[Some("3"), Some("c")],
        ]);
        assert_eq!(read_by_field_id(&lh).await, before);

        let batch = id_v(&[2, 4], &[Some("B"), Some("D")], "w");
        lh.merge("raw.t", one(batch), &upsert(dedupe))
            .await
            .unwrap();
        let after = model(&[
            &[Some("1"), Some("a")],
            &[Some("2"), Some("B")],
            &[Some("3"), Some("c")],
            &[Some("4"), Some("D")],
        ]);
        assert_eq!(scan(&lh).await, after, "dedupe: {dedupe}");
        assert_eq!(read_by_field_id(&lh).await, after);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_dropped_and_added_again_reads_null_in_older_files() {
    let (_dir, lh) = table_with(id_v(&[1, 2, 3], &[Some("a"), Some("b"), Some("c")], "v")).await;
    evolve(&lh, vec![long_id()]).await;
    evolve(&lh, vec![long_id(), string(3, "v")]).await;
    let nulls = model(&[&[Some("1"), None], &[Some("2"), None], &[Some("3"), None]]);
    assert_eq!(read_by_field_id(&lh).await, nulls);

    let batch = id_v(&[2, 4], &[Some("B"), Some("D")], "v");
    lh.merge("raw.t", one(batch), &upsert(false)).await.unwrap();
    let after = model(&[
        &[Some("1"), None],
        &[Some("2"), Some("B")],
        &[Some("3"), None],
        &[Some("4"), Some("D")],
    ]);
    assert_eq!(scan(&lh).await, after);
    assert_eq!(read_by_field_id(&lh).await, after);

    // The row diff reads both sides by id too: the old `v` is not the new one.
    lh.catalog()
        .create_ref("dev", phlo_core::catalog::RefKind::Branch, MAIN)
        .unwrap();
    let batch = id_v(&[1], &[Some("A")], "v");
    let dev = MergeOptions {
        ref_name: "dev".into(),
        ..upsert(true)
    };
    lh.merge("raw.t", one(batch), &dev).await.unwrap();
    let diff = lh
        .diff_rows("raw.t", MAIN, "dev", &["id".into()], 10)
        .await
        .unwrap();
    assert_eq!((diff.added, diff.removed, diff.changed), (0, 0, 1));
    assert_eq!(
        rows(&[diff.changed_sample]),
        model(&[&[Some("1"), Some("A")]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promoted_types_are_cast_when_read() {
    let schema = Arc::new(ArrowSchema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("n", DataType::Int32, true),
        Field::new("x", DataType::Float32, true),
        Field::new("d", DataType::Decimal128(9, 2), true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(Int32Array::from(vec![Some(7), None])),
            Arc::new(Float32Array::from(vec![1.5, 2.5])),
            Arc::new(
                Decimal128Array::from(vec![12_345, -5])
                    .with_precision_and_scale(9, 2)
                    .unwrap(),
            ),
        ],
    )
    .unwrap();
    let (_dir, lh) = table_with(batch).await;
    use PrimitiveType as P;
    evolve(
        &lh,
        vec![
            long_id(),
            NestedField::optional(2, "n", Type::Primitive(P::Long)),
            NestedField::optional(3, "x", Type::Primitive(P::Double)),
            NestedField::optional(
                4,
                "amount",
                Type::Primitive(P::Decimal {
                    precision: 18,
                    scale: 2,
                }),
            ),
        ],
    )
    .await;
    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    let projection = Projection::new(&table.metadata, table.metadata.current_schema()).unwrap();
    let types: Vec<DataType> = projection
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(
        types,
        [
            DataType::Int64,
            DataType::Int64,
            DataType::Float64,
            DataType::Decimal128(18, 2)
        ]
    );
    let expected = model(&[
        &[Some("1"), Some("7"), Some("1.5"), Some("123.45")],
        &[Some("2"), None, Some("2.5"), Some("-0.05")],
    ]);
    assert_eq!(read_by_field_id(&lh).await, expected);
    assert_eq!(scan(&lh).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_reads_the_columns_asked_for_in_their_order() {
    let (_dir, lh) = table_with(id_v(&[1, 2], &[Some("a"), None], "v")).await;
    evolve(&lh, vec![long_id(), string(2, "w"), string(3, "later")]).await;
    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    let schema = table.metadata.current_schema();
    let projection =
        Projection::select(&table.metadata, schema, &["later".into(), "w".into()]).unwrap();
    let file = &live_data_files(lh.file_io(), &table, MAIN).await.unwrap()[0];
    let batches = read_data_file(lh.file_io(), file, &projection, 1)
        .await
        .unwrap();
    assert_eq!(batches[0].schema().field(1).name(), "w");
    assert_eq!(rows(&batches), model(&[&[None, Some("a")], &[None, None]]));
    let err = Projection::select(&table.metadata, schema, &["v".into()]).unwrap_err();
    assert_eq!(err.location().column.as_deref(), Some("v"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_without_field_ids_are_read_through_the_name_mapping() {
    let (dir, lh) = table_with(id_v(&[1], &[Some("a")], "v")).await;
    // A file as a non-Iceberg writer leaves it: plain Parquet, columns known by name only.
    let path = dir.path().join("foreign.parquet");
    let foreign = id_v(&[5, 6], &[Some("e"), Some("f")], "v");
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        foreign.schema(),
        None,
    )
    .unwrap();
    writer.write(&foreign).unwrap();
    writer.close().unwrap();
    let file = DataFileBuilder::default()
        .content(iceberg::spec::DataContentType::Data)
        .file_path(format!("file://{}", path.display()))
        .file_format(DataFileFormat::Parquet)
        .partition(Struct::empty())
        .record_count(2)
        .file_size_in_bytes(std::fs::metadata(&path).unwrap().len())
        .build()
        .unwrap();

    let table = lh.load_table("raw.t", MAIN).await.unwrap();
    let schema = table.metadata.current_schema();
    let projection = Projection::new(&table.metadata, schema).unwrap();
    let err = read_data_file(lh.file_io(), &file, &projection, 1)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "schema");
    assert!(
        err.to_string().contains("schema.name-mapping.default"),
        "{err}"
    );

    // The mapping names the file's `v` as field 2, under its new name too.
    let mapped = TableMetadataBuilder::new_from_metadata((*table.metadata).clone(), None)
        .set_properties(HashMap::from([(
            "schema.name-mapping.default".to_string(),
            r#"[{"field-id": 1, "names": ["id"]}, {"field-id": 2, "names": ["v", "w"]}]"#
                .to_string(),
        )]))
        .unwrap()
        .build()
        .unwrap()
        .metadata;
    let projection = Projection::new(&mapped, schema).unwrap();
    let batches = read_data_file(lh.file_io(), &file, &projection, 1)
        .await
        .unwrap();
    assert_eq!(
        rows(&batches),
        model(&[&[Some("5"), Some("e")], &[Some("6"), Some("f")]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_of_the_head_uses_the_current_schema_and_time_travel_the_snapshots() {
    let (_dir, lh) = table_with(id_v(&[1, 2], &[Some("a"), Some("b")], "v")).await;
    let written = lh.load_table("raw.t", MAIN).await.unwrap();
    let snapshot = written.snapshot_for_ref(MAIN).unwrap().snapshot_id();
    // Another engine renames `v` and adds a column; no snapshot is written.
    evolve(&lh, vec![long_id(), string(2, "w"), string(3, "note")]).await;
    let values = model(&[&[Some("1"), Some("a"), None], &[Some("2"), Some("b"), None]]);
    assert_eq!(
        scan_with(&lh, &ScanOptions::default()).await,
        (vec!["id".into(), "w".into(), "note".into()], values)
    );
    let filtered = ScanOptions {
        columns: Some(vec!["w".into()]),
        filters: vec![phlo_core::tables::Filter {
            column: "w".into(),
            op: phlo_core::tables::FilterOp::Eq,
            values: vec![phlo_core::tables::Literal::String("b".into())],
        }],
        ..Default::default()
    };
    assert_eq!(
        scan_with(&lh, &filtered).await,
        (vec!["w".into()], model(&[&[Some("b")]]))
    );
    let old = ScanOptions {
        snapshot_id: Some(snapshot),
        ..Default::default()
    };
    assert_eq!(
        scan_with(&lh, &old).await,
        (
            vec!["id".into(), "v".into()],
            model(&[&[Some("1"), Some("a")], &[Some("2"), Some("b")]])
        )
    );
}

/// A data file as another engine may write it: Iceberg field ids, columns in its own order.
fn foreign_file(dir: &std::path::Path, ids: &[i64], a: &[&str], b: &[&str]) -> DataFile {
    let field = |name: &str, kind: DataType, nullable: bool, id: i32| {
        Field::new(name, kind, nullable).with_metadata(HashMap::from([(
            parquet::arrow::PARQUET_FIELD_ID_META_KEY.to_string(),
            id.to_string(),
        )]))
    };
    // `b` before `a`: the same types in the same places as the table's `a`, `b`.
    let schema = Arc::new(ArrowSchema::new(vec![
        field("id", DataType::Int64, false, 1),
        field("b", DataType::Utf8, true, 3),
        field("a", DataType::Utf8, true, 2),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(b.to_vec())),
            Arc::new(StringArray::from(a.to_vec())),
        ],
    )
    .unwrap();
    let path = dir.join(format!("foreign-{}.parquet", ids[0]));
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None)
            .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    DataFileBuilder::default()
        .content(iceberg::spec::DataContentType::Data)
        .file_path(format!("file://{}", path.display()))
        .file_format(DataFileFormat::Parquet)
        .partition(Struct::empty())
        .record_count(ids.len() as u64)
        .file_size_in_bytes(std::fs::metadata(&path).unwrap().len())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_with_columns_in_another_order_read_by_field_id_everywhere() {
    let schema = Arc::new(ArrowSchema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("a", DataType::Utf8, true),
        Field::new("b", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec!["a1"])),
            Arc::new(StringArray::from(vec!["b1"])),
        ],
    )
    .unwrap();
    let (dir, lh) = table_with(batch).await;
    let before = lh.load_table("raw.t", MAIN).await.unwrap();
    let from = before.snapshot_for_ref(MAIN).unwrap().snapshot_id();
    for (ids, a, b) in [
        ([2, 3], ["a2", "a3"], ["b2", "b3"]),
        ([4, 5], ["a4", "a5"], ["b4", "b5"]),
    ] {
        let table = lh.load_table("raw.t", MAIN).await.unwrap();
        let change = SnapshotChange {
            branch: MAIN.into(),
            added_files: vec![foreign_file(dir.path(), &ids, &a, &b)],
            ..Default::default()
        };
        commit_append(lh.catalog(), lh.file_io(), table, &change)
            .await
            .unwrap();
    }
    let row = |i: usize| -> Vec<Option<String>> {
        vec![
            Some(i.to_string()),
            Some(format!("a{i}")),
            Some(format!("b{i}")),
        ]
    };
    let expected = |ids: &[usize]| -> Rows {
        let mut out: Rows = ids.iter().map(|&i| row(i)).collect();
        out.sort();
        out
    };
    assert_eq!(scan(&lh).await, expected(&[1, 2, 3, 4, 5]));
    assert_eq!(read_by_field_id(&lh).await, expected(&[1, 2, 3, 4, 5]));

    // Only the appended files are read, in the table's order.
    let plan = lh
        .changes("raw.t", MAIN, Some(from), None, None)
        .await
        .unwrap();
    let batches: Vec<RecordBatch> = plan.into_stream().unwrap().try_collect().await.unwrap();
    assert_eq!(rows(&batches), expected(&[2, 3, 4, 5]));

    // A delete rewrites the file it touches with the values under their columns.
    let delete = phlo_core::tables::Filter {
        column: "id".into(),
        op: phlo_core::tables::FilterOp::Eq,
        values: vec![phlo_core::tables::Literal::Int(3)],
    };
    lh.delete("raw.t", &[delete], MAIN, HashMap::new())
        .await
        .unwrap();
    assert_eq!(scan(&lh).await, expected(&[1, 2, 4, 5]));

    let compacted = lh
        .compact(
            "raw.t",
            MAIN,
            &phlo_core::compact::CompactOptions {
                target_file_size: Some(1 << 20),
                filters: vec![],
                properties: HashMap::new(),
            },
        )
        .await
        .unwrap();
    assert_eq!(compacted.files_added, 1);
    assert_eq!(scan(&lh).await, expected(&[1, 2, 4, 5]));
    assert_eq!(read_by_field_id(&lh).await, expected(&[1, 2, 4, 5]));
}
