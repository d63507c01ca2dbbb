//! The Iceberg REST catalog service (`phlo catalog serve`) as a client sees it, without a
//! socket: every endpoint's answer, Iceberg's error model for bad input, commits that are
//! checked and swapped atomically, and catalog refs as prefixes.

use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use phlo_core::Lakehouse;
use phlo_core::catalog::{MAIN, RefKind};
use phlo_core::rest::{Request, Response, RestService};
use serde_json::{Value, json};

struct Fixture {
    _dir: tempfile::TempDir,
    lh: Arc<Lakehouse>,
    service: RestService,
}

/// A lakehouse with `raw.events` (two phlo appends on main) behind a service.
async fn fixture(token: Option<&str>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let lh = Arc::new(Lakehouse::open(dir.path()).unwrap());
    lh.catalog().create_namespace("raw").unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    lh.create_table("raw.events", &schema, &[], Default::default(), MAIN)
        .await
        .unwrap();
    for start in [0, 10] {
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(start..start + 10)),
                Arc::new(StringArray::from_iter_values(
                    (start..start + 10).map(|i| format!("n{i}")),
                )),
            ],
        )
        .unwrap();
        lh.append("raw.events", vec![Ok(batch)], MAIN, Default::default())
            .await
            .unwrap();
    }
    let service = RestService::new(lh.clone(), token.map(String::from));
    Fixture {
        _dir: dir,
        lh,
        service,
    }
}

impl Fixture {
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Response {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let request = Request {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
        };
        self.service.handle(&request).await
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Response {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.send(method, path, body.as_bytes(), &[]).await
    }

    async fn pointer(&self, ref_name: &str, table: &str) -> String {
        self.lh
            .catalog()
            .metadata_location_on(
                ref_name,
                &phlo_core::catalog::TableIdent::parse(table).unwrap(),
            )
            .unwrap()
    }
}

/// The error type of an Iceberg error response, checking its shape.
fn error_type(response: &Response) -> String {
    let body = response.body_json();
    assert_eq!(body["error"]["code"], response.status, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    body["error"]["type"].as_str().unwrap().to_string()
}

fn table_schema() -> Value {
    json!({"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "id", "required": true, "type": "long"},
        {"id": 2, "name": "city", "required": false, "type": "string"}
    ]})
}

/// A snapshot as a client adds it, on top of `parent` (its manifest list reused: the catalog
/// never reads it).
fn client_snapshot(metadata: &Value, id: i64) -> Value {
    let current = metadata["current-snapshot-id"].as_i64().unwrap();
    let parent = metadata["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["snapshot-id"] == current)
        .unwrap()
        .clone();
    json!({
        "snapshot-id": id,
        "parent-snapshot-id": current,
        "sequence-number": metadata["last-sequence-number"].as_i64().unwrap() + 1,
        "timestamp-ms": chrono::Utc::now().timestamp_millis(),
        "manifest-list": parent["manifest-list"],
        "summary": {"operation": "append", "phlo.author": "client-alice"},
        "schema-id": 0
    })
}

/// An append as PyIceberg commits it: guarded by `main`'s snapshot.
fn append_commit(metadata: &Value, id: i64) -> Value {
    json!({
        "requirements": [{"type": "assert-ref-snapshot-id", "ref": "main",
                          "snapshot-id": metadata["current-snapshot-id"]}],
        "updates": [
            {"action": "add-snapshot", "snapshot": client_snapshot(metadata, id)},
            {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": id}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_answers_the_ref_of_the_path_as_prefix() {
    let f = fixture(None).await;
    f.lh.catalog()
        .create_ref("dev", RefKind::Branch, MAIN)
        .unwrap();
    f.lh.catalog()
        .create_ref("run/7", RefKind::Branch, MAIN)
        .unwrap();
    // Under Nessie's `/iceberg` the prefix is Nessie's `<ref>|<warehouse>`, encoded.
    let nessie = |r: &str, w: &str| {
        percent_encoding::utf8_percent_encode(
            &format!("{r}|{w}"),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string()
    };
    let warehouse = f.lh.warehouse().to_string();
    for (path, prefix) in [
        ("/v1/config", "main".to_string()),
        ("/iceberg/v1/config", nessie("main", &warehouse)),
        ("/iceberg/dev/v1/config", nessie("dev", &warehouse)),
        ("/iceberg/run/7/v1/config", nessie("run/7", &warehouse)),
        (
            "/iceberg/v1/config?warehouse=s3%3A%2F%2Flake",
            nessie("main", "s3://lake"),
        ),
        (
            "/iceberg/v1/config?warehouse=dev",
            nessie("dev", &warehouse),
        ),
        ("/v1/config?warehouse=dev", "dev".to_string()),
        (
            "/v1/config?warehouse=file%3A%2F%2F%2Ftmp%2Fw",
            "main".to_string(),
        ),
    ] {
        let response = f.call("GET", path, None).await;
        assert_eq!(response.status, 200, "{path}");
        let body = response.body_json();
        assert_eq!(body["overrides"]["prefix"], prefix.as_str(), "{path}");
        // Nessie's markers, exactly where the prefix has Nessie's form.
        let overrides = &body["overrides"];
        match path.starts_with("/iceberg") {
            true => {
                assert_eq!(overrides["nessie.is-nessie-catalog"], "true", "{path}");
                assert_eq!(overrides["nessie.prefix-pattern"], "{ref}|{warehouse}");
                let default_branch = prefix.split("%7C").next().unwrap().replace("%2F", "/");
                assert_eq!(
                    overrides["nessie.default-branch.name"],
                    default_branch.as_str()
                );
            }
            false => assert!(
                overrides.get("nessie.is-nessie-catalog").is_none(),
                "{path}"
            ),
        }
        assert!(
            body["endpoints"]
                .as_array()
                .unwrap()
                .contains(&json!("POST /v1/{prefix}/transactions/commit"))
        );
    }
    // The prefix routes there: the base path of a client on run/7 plus its prefix.
    let listed = f
        .call(
            "GET",
            "/iceberg/run/7/v1/run%2F7/namespaces/raw/tables",
            None,
        )
        .await;
    assert_eq!(listed.body_json()["identifiers"][0]["name"], "events");
    // So does a Nessie prefix, on the ref before its `|`.
    let path = format!(
        "/iceberg/v1/{}/namespaces/raw/tables",
        nessie("run/7", "s3://anything")
    );
    let listed = f.call("GET", &path, None).await;
    assert_eq!(listed.body_json()["identifiers"][0]["name"], "events");
    let nope = format!("/iceberg/v1/{}/namespaces", nessie("nope", &warehouse));
    for path in [
        "/iceberg/nope/v1/config",
        "/v1/config?warehouse=nope",
        "/v1/nope/namespaces",
        nope.as_str(),
    ] {
        let response = f.call("GET", path, None).await;
        assert_eq!(
            (response.status, error_type(&response).as_str()),
            (404, "NotFoundException"),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_are_created_listed_updated_and_dropped() {
    let f = fixture(None).await;
    let created = f
        .call(
            "POST",
            "/v1/main/namespaces",
            Some(json!({"namespace": ["staging", "web"], "properties": {"owner": "ops"}})),
        )
        .await;
    assert_eq!(created.status, 200);
    assert_eq!(created.body_json()["namespace"], json!(["staging", "web"]));
    assert_eq!(created.body_json()["properties"]["owner"], "ops");
    let again = f
        .call(
            "POST",
            "/v1/main/namespaces",
            Some(json!({"namespace": ["staging", "web"]})),
        )
        .await;
    assert_eq!(
        (again.status, error_type(&again).as_str()),
        (409, "AlreadyExistsException")
    );

    let top = f.call("GET", "/v1/main/namespaces", None).await.body_json();
    assert_eq!(top["namespaces"], json!([["raw"], ["staging"]]));
    let under = f
        .call("GET", "/v1/main/namespaces?parent=staging", None)
        .await
        .body_json();
    assert_eq!(under["namespaces"], json!([["staging", "web"]]));
    let missing = f.call("GET", "/v1/main/namespaces?parent=nope", None).await;
    assert_eq!(error_type(&missing), "NoSuchNamespaceException");

    assert_eq!(
        f.call("HEAD", "/v1/main/namespaces/staging%1Fweb", None)
            .await
            .status,
        204
    );
    let head = f.call("HEAD", "/v1/main/namespaces/nope", None).await;
    assert_eq!((head.status, head.body.len()), (404, 0));

    let update = f
        .call(
            "POST",
            "/v1/main/namespaces/staging%1Fweb/properties",
            Some(json!({"updates": {"tier": "gold"}, "removals": ["owner", "absent"]})),
        )
        .await;
    assert_eq!(update.status, 200);
    assert_eq!(
        update.body_json(),
        json!({"updated": ["tier"], "removed": ["owner"], "missing": ["absent"]})
    );
    let loaded = f
        .call("GET", "/v1/main/namespaces/staging%1Fweb", None)
        .await
        .body_json();
    assert_eq!(loaded["properties"]["tier"], "gold");
    assert!(loaded["properties"].get("owner").is_none());

    let not_empty = f.call("DELETE", "/v1/main/namespaces/raw", None).await;
    assert_eq!(
        (not_empty.status, error_type(&not_empty).as_str()),
        (409, "NamespaceNotEmptyException")
    );
    assert_eq!(
        f.call("DELETE", "/v1/main/namespaces/staging%1Fweb", None)
            .await
            .status,
        204
    );
    assert_eq!(
        f.call("GET", "/v1/main/namespaces/staging%1Fweb", None)
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_in_icebergs_error_model() {
    let f = fixture(None).await;
    let cases: [(&str, &str, &[u8]); 7] = [
        ("POST", "/v1/main/namespaces", b"{not json"),
        ("POST", "/v1/main/namespaces", b"{\"namespace\": \"raw\"}"),
        (
            "POST",
            "/v1/main/namespaces",
            b"{\"namespace\": [\"../etc\"]}",
        ),
        (
            "POST",
            "/v1/main/namespaces/raw/tables",
            b"{\"name\": \"t\", \"schema\": 5}",
        ),
        ("POST", "/v1/main/namespaces/raw/tables/events", b"[]"),
        (
            "POST",
            "/v1/main/transactions/commit",
            b"{\"table-changes\": []}",
        ),
        ("POST", "/v1/main/tables/rename", b"{\"source\": {}}"),
    ];
    for (method, path, body) in cases {
        let response = f.send(method, path, body, &[]).await;
        assert_eq!(
            (response.status, error_type(&response).as_str()),
            (400, "BadRequestException"),
            "{method} {path} {}",
            String::from_utf8_lossy(body)
        );
    }
    let unknown = f
        .call("GET", "/v1/main/namespaces/raw/tables/events/nope", None)
        .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_are_created_loaded_listed_renamed_and_dropped() {
    let f = fixture(None).await;
    let created = f
        .call(
            "POST",
            "/v1/main/namespaces/raw/tables",
            Some(json!({
                "name": "cities", "schema": table_schema(),
                "partition-spec": {"spec-id": 0, "fields": [
                    {"source-id": 2, "field-id": 1000, "transform": "identity", "name": "city"}]},
                "write-order": {"order-id": 0, "fields": []},
                "stage-create": false, "properties": {"owner": "ops"}
            })),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body_json());
    let body = created.body_json();
    assert_eq!(body["metadata"]["properties"]["owner"], "ops");
    assert_eq!(
        body["metadata"]["partition-specs"][0]["fields"][0]["name"],
        "city"
    );
    assert_eq!(
        body["metadata-location"],
        f.pointer(MAIN, "raw.cities").await
    );
    let twice = f
        .call(
            "POST",
            "/v1/main/namespaces/raw/tables",
            Some(json!({"name": "cities", "schema": table_schema()})),
        )
        .await;
    assert_eq!(
        (twice.status, error_type(&twice).as_str()),
        (409, "AlreadyExistsException")
    );
    let no_ns = f
        .call(
            "POST",
            "/v1/main/namespaces/nope/tables",
            Some(json!({"name": "x", "schema": table_schema()})),
        )
        .await;
    assert_eq!(
        (no_ns.status, error_type(&no_ns).as_str()),
        (404, "NoSuchNamespaceException")
    );
    let staged = f
        .call(
            "POST",
            "/v1/main/namespaces/raw/tables",
            Some(json!({"name": "s", "schema": table_schema(), "stage-create": true})),
        )
        .await;
    assert_eq!(staged.status, 200);
    assert_eq!(staged.body_json()["metadata-location"], Value::Null);
    assert_eq!(
        f.call("HEAD", "/v1/main/namespaces/raw/tables/s", None)
            .await
            .status,
        404,
        "a staged create registers nothing"
    );

    let listed = f
        .call("GET", "/v1/main/namespaces/raw/tables", None)
        .await
        .body_json();
    assert_eq!(
        listed["identifiers"],
        json!([{"namespace": ["raw"], "name": "cities"}, {"namespace": ["raw"], "name": "events"}])
    );
    let loaded = f
        .call("GET", "/v1/main/namespaces/raw/tables/events", None)
        .await;
    assert_eq!(loaded.status, 200);
    let loaded = loaded.body_json();
    assert_eq!(
        loaded["metadata-location"],
        f.pointer(MAIN, "raw.events").await
    );
    assert_eq!(loaded["metadata"]["snapshots"].as_array().unwrap().len(), 2);
    assert_eq!(
        f.call("HEAD", "/v1/main/namespaces/raw/tables/events", None)
            .await
            .status,
        204
    );
    let missing = f
        .call("GET", "/v1/main/namespaces/raw/tables/nope", None)
        .await;
    assert_eq!(
        (missing.status, error_type(&missing).as_str()),
        (404, "NoSuchTableException")
    );
    assert_eq!(
        f.call("HEAD", "/v1/main/namespaces/raw/tables/nope", None)
            .await
            .status,
        404
    );

    let renamed = f
        .call(
            "POST",
            "/v1/main/tables/rename",
            Some(json!({
            "source": {"namespace": ["raw"], "name": "cities"},
            "destination": {"namespace": ["raw"], "name": "towns"}})),
        )
        .await;
    assert_eq!(renamed.status, 204);
    assert_eq!(
        f.call("HEAD", "/v1/main/namespaces/raw/tables/cities", None)
            .await
            .status,
        404
    );
    assert_eq!(
        f.call("HEAD", "/v1/main/namespaces/raw/tables/towns", None)
            .await
            .status,
        204
    );
    let onto_existing = f
        .call(
            "POST",
            "/v1/main/tables/rename",
            Some(json!({
            "source": {"namespace": ["raw"], "name": "towns"},
            "destination": {"namespace": ["raw"], "name": "events"}})),
        )
        .await;
    assert_eq!(onto_existing.status, 409);

    let location =
        f.lh.load_table("raw.towns", MAIN)
            .await
            .unwrap()
            .metadata_location;
    let dropped = f
        .call(
            "DELETE",
            "/v1/main/namespaces/raw/tables/towns?purgeRequested=true",
            None,
        )
        .await;
    assert_eq!(dropped.status, 204);
    assert_eq!(
        f.call("GET", "/v1/main/namespaces/raw/tables/towns", None)
            .await
            .status,
        404
    );
    assert!(
        !std::path::Path::new(location.trim_start_matches("file://")).exists(),
        "purged"
    );
    assert_eq!(
        f.call("DELETE", "/v1/main/namespaces/raw/tables/towns", None)
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_is_checked_applied_and_logged() {
    let f = fixture(None).await;
    let path = "/v1/main/namespaces/raw/tables/events";
    let metadata = f.call("GET", path, None).await.body_json()["metadata"].clone();
    let response = f
        .send(
            "POST",
            path,
            append_commit(&metadata, 4242).to_string().as_bytes(),
            &[("User-Agent", "PyIceberg/0.12.0")],
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.body_json());
    let body = response.body_json();
    assert_eq!(body["metadata"]["current-snapshot-id"], 4242);
    assert_eq!(
        body["metadata-location"],
        f.pointer(MAIN, "raw.events").await
    );
    let table = f.lh.load_table("raw.events", MAIN).await.unwrap();
    assert_eq!(table.metadata.current_snapshot_id(), Some(4242));
    let entry = &f.lh.catalog().log(Some(MAIN), 1).unwrap()[0];
    assert_eq!(entry.tables, vec!["raw.events".to_string()]);
    assert_eq!(entry.author, "client-alice", "the snapshot's phlo.author");
    assert!(
        entry.message.starts_with("append raw.events"),
        "{}",
        entry.message
    );

    // The same request again: main moved, the requirement fails, nothing changes.
    let before = f.pointer(MAIN, "raw.events").await;
    let stale = f
        .call("POST", path, Some(append_commit(&metadata, 4243)))
        .await;
    assert_eq!(
        (stale.status, error_type(&stale).as_str()),
        (409, "CommitFailedException")
    );
    assert_eq!(f.pointer(MAIN, "raw.events").await, before);

    // A metadata-only commit, authored by the client header.
    let props = json!({
        "requirements": [{"type": "assert-table-uuid", "uuid": metadata["table-uuid"]}],
        "updates": [{"action": "set-properties", "updates": {"team": "data"}}]
    });
    let response = f
        .send(
            "POST",
            path,
            props.to_string().as_bytes(),
            &[("X-Phlo-Author", "bob")],
        )
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.body_json()["metadata"]["properties"]["team"],
        "data"
    );
    let entry = &f.lh.catalog().log(Some(MAIN), 1).unwrap()[0];
    assert_eq!(
        (entry.author.as_str(), entry.message.as_str()),
        ("bob", "update raw.events (iceberg-rest)")
    );

    // An update that cannot apply is the client's error; the table stays.
    let before = f.pointer(MAIN, "raw.events").await;
    let bad = f
        .call(
            "POST",
            path,
            Some(json!({"requirements": [], "updates": [
            {"action": "set-current-schema", "schema-id": 99}]})),
        )
        .await;
    assert_eq!(
        (bad.status, error_type(&bad).as_str()),
        (400, "BadRequestException")
    );
    let unknown = f
        .call(
            "POST",
            "/v1/main/namespaces/raw/tables/nope",
            Some(json!({"requirements": [], "updates": []})),
        )
        .await;
    assert_eq!(
        (unknown.status, error_type(&unknown).as_str()),
        (404, "NoSuchTableException")
    );
    assert_eq!(f.pointer(MAIN, "raw.events").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_commits_every_table_or_none() {
    let f = fixture(None).await;
    f.call(
        "POST",
        "/v1/main/namespaces/raw/tables",
        Some(json!({"name": "other", "schema": table_schema()})),
    )
    .await;
    let events = f
        .call("GET", "/v1/main/namespaces/raw/tables/events", None)
        .await
        .body_json()["metadata"]
        .clone();
    let change = |table: &str, uuid: &Value, key: &str| {
        json!({
            "identifier": {"namespace": ["raw"], "name": table},
            "requirements": [{"type": "assert-table-uuid", "uuid": uuid}],
            "updates": [{"action": "set-properties", "updates": {key: "1"}}]
        })
    };
    let other = f
        .call("GET", "/v1/main/namespaces/raw/tables/other", None)
        .await
        .body_json()["metadata"]
        .clone();
    let before = (
        f.pointer(MAIN, "raw.events").await,
        f.pointer(MAIN, "raw.other").await,
    );

    // The second table's requirement fails: the first does not move either.
    let wrong = json!("00000000-0000-0000-0000-000000000000");
    let failed = f
        .call(
            "POST",
            "/v1/main/transactions/commit",
            Some(json!({"table-changes": [
            change("events", &events["table-uuid"], "a"), change("other", &wrong, "a")]})),
        )
        .await;
    assert_eq!(
        (failed.status, error_type(&failed).as_str()),
        (409, "CommitFailedException")
    );
    let missing = f
        .call(
            "POST",
            "/v1/main/transactions/commit",
            Some(json!({"table-changes": [
            change("events", &events["table-uuid"], "a"), change("nope", &wrong, "a")]})),
        )
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        (
            f.pointer(MAIN, "raw.events").await,
            f.pointer(MAIN, "raw.other").await
        ),
        before
    );

    let log_before = f.lh.catalog().log(Some(MAIN), 100).unwrap().len();
    let done = f
        .call("POST", "/v1/main/transactions/commit", Some(json!({"table-changes": [
            change("events", &events["table-uuid"], "b"), change("other", &other["table-uuid"], "b")]})))
        .await;
    assert_eq!(done.status, 204);
    for table in ["raw.events", "raw.other"] {
        let loaded = f.lh.load_table(table, MAIN).await.unwrap();
        assert_eq!(
            loaded.metadata.properties().get("b").map(String::as_str),
            Some("1"),
            "{table}"
        );
    }
    let log = f.lh.catalog().log(Some(MAIN), 100).unwrap();
    assert_eq!(log.len(), log_before + 1, "one commit for both tables");
    assert_eq!(
        log[0].tables,
        vec!["raw.events".to_string(), "raw.other".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_prefix_commits_to_that_branch_only_and_tags_are_read_only() {
    let f = fixture(None).await;
    f.lh.catalog()
        .create_ref("dev", RefKind::Branch, MAIN)
        .unwrap();
    f.lh.catalog().create_ref("v1", RefKind::Tag, MAIN).unwrap();
    let main_before = f.pointer(MAIN, "raw.events").await;
    let path = "/iceberg/dev/v1/dev/namespaces/raw/tables/events";
    let metadata = f.call("GET", path, None).await.body_json()["metadata"].clone();
    let response = f
        .call("POST", path, Some(append_commit(&metadata, 777)))
        .await;
    assert_eq!(response.status, 200, "{}", response.body_json());
    assert_eq!(
        f.pointer(MAIN, "raw.events").await,
        main_before,
        "main unchanged"
    );
    let dev = f.lh.load_table("raw.events", "dev").await.unwrap();
    assert_eq!(dev.metadata.current_snapshot_id(), Some(777));
    let main = f
        .call("GET", "/v1/main/namespaces/raw/tables/events", None)
        .await
        .body_json();
    assert_ne!(main["metadata"]["current-snapshot-id"], 777);
    assert_eq!(
        f.lh.catalog().log(Some("dev"), 1).unwrap()[0].tables,
        vec!["raw.events".to_string()]
    );

    // A table created on the branch is not on main.
    let created = f
        .call(
            "POST",
            "/iceberg/dev/v1/dev/namespaces/raw/tables",
            Some(json!({"name": "fresh", "schema": table_schema()})),
        )
        .await;
    assert_eq!(created.status, 200);
    assert_eq!(
        f.call("HEAD", "/v1/main/namespaces/raw/tables/fresh", None)
            .await
            .status,
        404
    );
    assert_eq!(
        f.call("HEAD", "/v1/dev/namespaces/raw/tables/fresh", None)
            .await
            .status,
        204
    );

    // A tag reads, and refuses writes.
    let tag = "/iceberg/v1/v1/namespaces/raw/tables/events";
    assert_eq!(f.call("GET", tag, None).await.status, 200);
    let write = f
        .call("POST", tag, Some(append_commit(&metadata, 778)))
        .await;
    assert_eq!(
        (write.status, error_type(&write).as_str()),
        (403, "ForbiddenException")
    );
    assert_eq!(f.pointer("v1", "raw.events").await, main_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_required_when_configured() {
    let f = fixture(Some("s3cret")).await;
    let path = "/v1/main/namespaces";
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong")],
        vec![("Authorization", "Basic s3cret")],
    ] {
        let response = f.send("GET", path, b"", &headers).await;
        assert_eq!(
            (response.status, error_type(&response).as_str()),
            (401, "NotAuthorizedException")
        );
    }
    let ok = f
        .send("GET", path, b"", &[("Authorization", "Bearer s3cret")])
        .await;
    assert_eq!(ok.status, 200);

    let exchange = f
        .send(
            "POST",
            "/v1/oauth/tokens",
            b"grant_type=client_credentials&client_id=me&client_secret=s3cret&scope=catalog",
            &[],
        )
        .await;
    assert_eq!(exchange.status, 200);
    assert_eq!(exchange.body_json()["access_token"], "s3cret");
    let refused = f
        .send(
            "POST",
            "/v1/oauth/tokens",
            b"grant_type=client_credentials&client_id=me&client_secret=nope",
            &[],
        )
        .await;
    assert_eq!(
        (refused.status, refused.body_json()["error"].as_str()),
        (401, Some("invalid_client"))
    );
}

/// The commit of a staged create, as PyIceberg's `create_table_transaction` and DuckDB's
/// `CREATE TABLE` send it: `assert-create` and the whole table as updates.
fn create_commit(table: &str) -> Value {
    json!({
        "identifier": {"namespace": ["raw"], "name": table},
        "requirements": [{"type": "assert-create"}],
        "updates": [
            {"action": "assign-uuid", "uuid": "9c12d441-03fe-4693-9a96-a0705ddf69c1"},
            {"action": "upgrade-format-version", "format-version": 2},
            {"action": "add-schema", "schema": table_schema(), "last-column-id": 2},
            {"action": "set-current-schema", "schema-id": -1},
            {"action": "add-spec", "spec": {"spec-id": 0, "fields": []}},
            {"action": "set-default-spec", "spec-id": -1},
            {"action": "add-sort-order", "sort-order": {"order-id": 0, "fields": []}},
            {"action": "set-default-sort-order", "sort-order-id": -1},
            {"action": "set-properties", "updates": {"owner": "duck"}}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_create_lands_with_its_commit_all_or_nothing() {
    let f = fixture(None).await;
    let staged = f
        .call(
            "POST",
            "/v1/main/namespaces/raw/tables",
            Some(json!({"name": "made", "schema": table_schema(), "stage-create": true})),
        )
        .await;
    assert_eq!(staged.status, 200);

    // With a failing change beside it, the create does not land either.
    let wrong = json!({
        "identifier": {"namespace": ["raw"], "name": "events"},
        "requirements": [{"type": "assert-table-uuid", "uuid": "00000000-0000-0000-0000-000000000000"}],
        "updates": []
    });
    let failed = f
        .call(
            "POST",
            "/v1/main/transactions/commit",
            Some(json!({"table-changes": [create_commit("made"), wrong]})),
        )
        .await;
    assert_eq!(failed.status, 409);
    assert_eq!(
        f.call("HEAD", "/v1/main/namespaces/raw/tables/made", None)
            .await
            .status,
        404
    );

    let done = f
        .call(
            "POST",
            "/v1/main/transactions/commit",
            Some(json!({"table-changes": [create_commit("made")]})),
        )
        .await;
    assert_eq!(done.status, 204, "{}", done.body_json());
    let made = f.lh.load_table("raw.made", MAIN).await.unwrap();
    assert_eq!(
        made.metadata.properties().get("owner").map(String::as_str),
        Some("duck")
    );
    assert_eq!(made.metadata.current_schema().as_struct().fields().len(), 2);
    assert!(
        made.metadata.location().ends_with("raw.db/made"),
        "{}",
        made.metadata.location()
    );
    assert_eq!(
        f.lh.catalog().log(Some(MAIN), 1).unwrap()[0].message,
        "create table raw.made (iceberg-rest)"
    );

    // Created already: assert-create fails.
    let again = f
        .call(
            "POST",
            "/v1/main/namespaces/raw/tables/made",
            Some(create_commit("made")),
        )
        .await;
    assert_eq!(
        (again.status, error_type(&again).as_str()),
        (409, "CommitFailedException")
    );
    // A create without a schema is the client's error, and creates nothing.
    let mut no_schema = create_commit("other");
    no_schema["updates"] = json!([]);
    let bad = f
        .call(
            "POST",
            "/v1/main/namespaces/raw/tables/other",
            Some(no_schema),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        f.call("HEAD", "/v1/main/namespaces/raw/tables/other", None)
            .await
            .status,
        404
    );
}
