//! API keys on every entry point: each route's scope, per protocol, with
//! Bearer and Basic; the tenant and workspace a key carries; who may make
//! keys; relay keys and the marks of forwarded batches; revocation across
//! nodes; what is stored; the store down; running without keys; the
//! failure limit; tokens; file modes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use datafusion::assert_batches_sorted_eq;
use object_store::local::LocalFileSystem;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use reqwest::Method;
use serde_json::{Value, json};
use telemetryflow::Config;
use telemetryflow::application::access::{Caller, KeyRing};
use telemetryflow::config::{AuthMode, StorageUrl};
use telemetryflow::domain::access::{Grant, Need, Scopes};
use telemetryflow::infrastructure::api::http::{OTLP_PATHS, routes};
use telemetryflow::infrastructure::api::keys::new_key;
use telemetryflow::infrastructure::storage::ObjectDocumentStore;

use crate::faults::FlakyStore;
use crate::fixtures::*;
use crate::support::{TestServer, test_config};

/// Makes a key straight in the store of `config`, as `telemetryflow keys
/// create` does.
async fn mint(config: &Config, tenant: &str, workspace: Option<&str>, scopes: &str) -> String {
    let store = config.storage_location().build().unwrap();
    let ring = KeyRing::new(Arc::new(ObjectDocumentStore::new(store)));
    ring.refresh().await.unwrap();
    let op = Grant::unrestricted();
    let spec = new_key(
        &op,
        Some(tenant),
        workspace,
        Scopes::parse(scopes).unwrap(),
        None,
        None,
        1,
    )
    .unwrap();
    ring.create(&Caller::anonymous(), spec, 1)
        .await
        .unwrap()
        .secret
}

fn keyed(c: &mut Config) {
    c.auth.mode = AuthMode::ApiKey;
}

/// A server with keys on, and an operator key made before it started.
async fn keyed_server() -> (TestServer, String) {
    keyed_server_with(|_| {}).await
}

pub(crate) async fn keyed_server_with(tweak: impl FnOnce(&mut Config)) -> (TestServer, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    keyed(&mut config);
    tweak(&mut config);
    let operator = mint(&config, "*", None, "admin,query").await;
    (TestServer::from_config(config, dir, None).await, operator)
}

/// Makes a key through the API with `by`; returns it.
pub(crate) async fn create(s: &TestServer, by: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v2/admin/keys", s.http))
        .bearer_auth(by)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, json_of(resp).await)
}

pub(crate) async fn key(s: &TestServer, operator: &str, tenant: &str, scopes: &str) -> String {
    let (status, v) = create(s, operator, json!({"tenant": tenant, "scopes": scopes})).await;
    assert_eq!(status, 201, "{v}");
    v["key"].as_str().unwrap().to_owned()
}

async fn json_of(r: reqwest::Response) -> Value {
    let bytes = r.bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// The status of an OTLP/HTTP export of one span with `cred` and `headers`.
async fn send_span(s: &TestServer, cred: Cred<'_>, headers: &[(&str, &str)]) -> u16 {
    let body = traces("checkout", vec![span(1, 1, "GET", T0)]).encode_to_vec();
    call(s, Method::POST, "/v1/traces", cred, headers, body)
        .await
        .status()
        .as_u16()
}

/// The status of a request without headers or body.
async fn status_of(s: &TestServer, method: Method, path: &str, cred: Cred<'_>) -> u16 {
    call(s, method, path, cred, &[], vec![])
        .await
        .status()
        .as_u16()
}

/// `POST /api/v2/auth/token` with `key` and `body`: the status, and the
/// token if one was given.
async fn token_for(s: &TestServer, key: &str, body: &str) -> (u16, Option<String>) {
    let body = body.as_bytes().to_vec();
    let r = call(
        s,
        Method::POST,
        "/api/v2/auth/token",
        Cred::Bearer(key),
        &[],
        body,
    )
    .await;
    let status = r.status().as_u16();
    let v = json_of(r).await;
    (status, v["token"].as_str().map(str::to_owned))
}

/// A well-formed key that no store holds.
const UNKNOWN_KEY: &str =
    "tf_0123456789abcdef_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// `key` with its secret changed (its id stays that of a real key).
fn wrong_secret(key: &str) -> String {
    let (head, last) = key.split_at(key.len() - 1);
    format!("{head}{}", if last == "0" { "1" } else { "0" })
}

#[derive(Clone, Copy)]
enum Cred<'a> {
    None,
    Bearer(&'a str),
    Basic(&'a str),
}

async fn call(
    s: &TestServer,
    method: Method,
    path: &str,
    cred: Cred<'_>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", s.http))
        .body(body);
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        req = req.header("content-type", "application/x-protobuf");
    }
    req = match cred {
        Cred::None => req,
        Cred::Bearer(k) => req.bearer_auth(k),
        Cred::Basic(k) => req.basic_auth("otel", Some(k)),
    };
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn concrete(path: &str) -> String {
    path.replace("{trace_id}", &"ab".repeat(16))
        .replace("{service}", "checkout")
        .replace("{id}", "0123456789abcdef")
}

/// Every route of the route table and every OTLP path: no key → 401 with
/// `WWW-Authenticate: Bearer`; a key without the route's scope → 403; the
/// right key, as Bearer or Basic password → neither.
#[tokio::test]
async fn every_route_refuses_without_a_key_and_without_its_scope() {
    // Every route fails twice on purpose: no failure limit here.
    let (s, operator) = keyed_server_with(|c| {
        c.auth.max_failures_per_minute = std::num::NonZero::new(1000).unwrap();
    })
    .await;
    let ingest = key(&s, &operator, "acme", "ingest").await;
    let query = key(&s, &operator, "acme", "query").await;
    let admin = key(&s, &operator, "acme", "admin").await;
    // What each entry point needs, written out here, independently of the
    // route table: the table must say the same.
    let expected: Vec<(&str, Method, Need)> = vec![
        ("/api/v2/sql", Method::POST, Need::Query),
        ("/api/v2/metrics", Method::GET, Need::Query),
        ("/api/v2/metrics/timeseries", Method::GET, Need::Query),
        ("/api/v2/traces", Method::GET, Need::Query),
        ("/api/v2/traces/{trace_id}", Method::GET, Need::Query),
        ("/api/v2/services", Method::GET, Need::Query),
        (
            "/api/v2/services/{service}/operations",
            Method::GET,
            Need::Query,
        ),
        ("/api/v2/logs", Method::GET, Need::Query),
        ("/api/v2/admin/compact", Method::POST, Need::Operator),
        ("/api/v2/admin/retention", Method::POST, Need::Operator),
        ("/api/v2/admin/keys", Method::GET, Need::Admin),
        ("/api/v2/admin/keys", Method::POST, Need::Admin),
        ("/api/v2/admin/keys/{id}", Method::DELETE, Need::Admin),
        ("/api/v2/auth/token", Method::POST, Need::Key),
        ("/metrics", Method::GET, Need::Operator),
        ("/healthz", Method::GET, Need::Open),
        ("/readyz", Method::GET, Need::Open),
    ];
    let declared: Vec<(&str, Method, Need)> = routes()
        .iter()
        .flat_map(|r| {
            r.methods
                .iter()
                .map(|m| (r.path, m.clone(), r.need))
                .collect::<Vec<_>>()
        })
        .collect();
    let sorted = |v: &[(&str, Method, Need)]| {
        let mut v: Vec<String> = v.iter().map(|(p, m, n)| format!("{m} {p} {n:?}")).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&declared), sorted(&expected));
    let mut table: Vec<(String, Method, Need)> = routes()
        .iter()
        .flat_map(|r| {
            r.methods
                .iter()
                .map(|m| (concrete(r.path), m.clone(), r.need))
                .collect::<Vec<_>>()
        })
        .collect();
    for p in OTLP_PATHS {
        table.push((p.to_owned(), Method::POST, Need::Ingest));
    }
    let mut checked = 0;
    for (path, method, need) in &table {
        let (wrong, right) = match need {
            Need::Open => (None, None),
            Need::Key => (None, Some(ingest.as_str())),
            Need::Ingest => (Some(query.as_str()), Some(ingest.as_str())),
            Need::Query => (Some(ingest.as_str()), Some(query.as_str())),
            Need::Admin => (Some(query.as_str()), Some(admin.as_str())),
            Need::Operator => (Some(admin.as_str()), Some(operator.as_str())),
        };
        let what = format!("{method} {path} ({need:?})");
        let anon = call(&s, method.clone(), path, Cred::None, &[], vec![]).await;
        if *need == Need::Open {
            assert_eq!(anon.status(), 200, "{what}");
            continue;
        }
        assert_eq!(anon.status(), 401, "{what}");
        assert_eq!(
            anon.headers()["www-authenticate"],
            "Bearer realm=\"telemetryflow\"",
            "{what}"
        );
        for bad in [
            UNKNOWN_KEY.to_owned(),
            wrong_secret(right.unwrap_or(&ingest)),
        ] {
            let r = call(&s, method.clone(), path, Cred::Basic(&bad), &[], vec![]).await;
            assert_eq!(r.status(), 401, "{what}");
        }
        // HEAD of a GET route is guarded too.
        if *method == Method::GET {
            assert_eq!(
                status_of(&s, Method::HEAD, path, Cred::None).await,
                401,
                "HEAD {what}"
            );
        }
        if let Some(wrong) = wrong {
            let r = call(&s, method.clone(), path, Cred::Bearer(wrong), &[], vec![]).await;
            assert_eq!(r.status(), 403, "{what}");
        }
        let right = right.unwrap();
        for cred in [Cred::Bearer(right), Cred::Basic(right)] {
            let r = call(&s, method.clone(), path, cred, &[], vec![]).await;
            let status = r.status().as_u16();
            assert!(status != 401 && status != 403, "{what}: {status}");
        }
        checked += 1;
    }
    assert!(checked >= 18, "only {checked} routes checked");
    // An OTLP refusal is a google.rpc.Status in the request's format.
    let r = call(&s, Method::POST, "/v1/traces", Cred::None, &[], vec![]).await;
    let status =
        telemetryflow::infrastructure::otlp::status::RpcStatus::decode(r.bytes().await.unwrap())
            .unwrap();
    assert_eq!(status.code, 16, "UNAUTHENTICATED");
}

async fn grpc_export(
    s: &TestServer,
    key: Option<&str>,
    tenant: Option<&str>,
) -> Result<(), tonic::Status> {
    let mut client = TraceServiceClient::connect(s.grpc.clone()).await.unwrap();
    let mut req = tonic::Request::new(traces("checkout", vec![span(1, 1, "GET", T0)]));
    if let Some(k) = key {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {k}").parse().unwrap());
    }
    if let Some(t) = tenant {
        req.metadata_mut().insert("x-tenant-id", t.parse().unwrap());
    }
    client.export(req).await.map(|_| ())
}

#[tokio::test]
async fn grpc_export_needs_an_ingest_key_for_its_tenant() {
    let (s, operator) = keyed_server().await;
    let ingest = key(&s, &operator, "acme", "ingest").await;
    let query = key(&s, &operator, "acme", "query").await;
    let code = |r: Result<(), tonic::Status>| r.err().map(|e| e.code());
    assert_eq!(
        code(grpc_export(&s, None, None).await),
        Some(tonic::Code::Unauthenticated)
    );
    assert_eq!(
        code(grpc_export(&s, Some(UNKNOWN_KEY), None).await),
        Some(tonic::Code::Unauthenticated)
    );
    assert_eq!(
        code(grpc_export(&s, Some(&query), None).await),
        Some(tonic::Code::PermissionDenied)
    );
    assert_eq!(
        code(grpc_export(&s, Some(&ingest), Some("globex")).await),
        Some(tonic::Code::PermissionDenied)
    );
    grpc_export(&s, Some(&ingest), None).await.unwrap();
    grpc_export(&s, Some(&ingest), Some("acme")).await.unwrap();
}

async fn sql(
    s: &TestServer,
    key: &str,
    tenant: Option<&str>,
    sql: &str,
) -> Vec<arrow::array::RecordBatch> {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(t) = tenant {
        headers.push(("x-tenant-id", t));
    }
    let body = json!({ "sql": sql }).to_string().into_bytes();
    let resp = call(
        s,
        Method::POST,
        "/api/v2/sql?format=arrow",
        Cred::Bearer(key),
        &headers,
        body,
    )
    .await;
    let status = resp.status();
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(status, 200, "{sql}: {}", String::from_utf8_lossy(&bytes));
    telemetryflow::infrastructure::query::format::from_arrow_ipc(&bytes, false)
        .unwrap()
        .batches
}

use datafusion::arrow;

#[tokio::test]
async fn a_key_carries_its_tenant_and_workspace() {
    let (s, operator) = keyed_server().await;
    let (status, v) = create(
        &s,
        &operator,
        json!({"tenant": "acme", "workspace": "web", "scopes": ["ingest", "query"]}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let web = v["key"].as_str().unwrap().to_owned();
    // No tenant header: the key's tenant and workspace.
    assert_eq!(send_span(&s, Cred::Bearer(&web), &[]).await, 200);
    for (h, v) in [("x-tenant-id", "globex"), ("x-workspace-id", "api")] {
        assert_eq!(
            send_span(&s, Cred::Bearer(&web), &[(h, v)]).await,
            403,
            "{h}: {v}"
        );
    }
    let rows = sql(
        &s,
        &web,
        None,
        "SELECT workspace_id, count(*) AS n FROM otel_traces GROUP BY 1",
    )
    .await;
    assert_batches_sorted_eq!(
        [
            "+--------------+---+",
            "| workspace_id | n |",
            "+--------------+---+",
            "| web          | 1 |",
            "+--------------+---+",
        ],
        &rows
    );
    // The operator reads any tenant it names; globex has nothing.
    assert_eq!(spans_in(&s, &operator, "acme", None).await, count_table(1));
    assert_eq!(
        spans_in(&s, &operator, "globex", None).await,
        count_table(0)
    );
}

#[tokio::test]
async fn an_admin_key_manages_only_its_tenant_and_mints_nothing_broader() {
    let (s, operator) = keyed_server().await;
    let admin = key(&s, &operator, "acme", "admin,ingest").await;
    let globex = key(&s, &operator, "globex", "ingest").await;
    for (body, want) in [
        (json!({"scopes": "ingest"}), 201),
        (
            json!({"scopes": "ingest", "workspace": "web", "name": "web-sdk", "expires": "90d"}),
            201,
        ),
        (json!({"scopes": "query"}), 403),
        (json!({"scopes": "relay,ingest"}), 403),
        (json!({"tenant": "*", "scopes": "relay,ingest"}), 403),
        (json!({"tenant": "globex", "scopes": "ingest"}), 403),
        (json!({"scopes": "root"}), 400),
        (json!({"scopes": "ingest", "expires": "soon"}), 400),
        (json!({"scopes": "ingest", "color": "red"}), 400),
    ] {
        let (status, v) = create(&s, &admin, body.clone()).await;
        assert_eq!(status, want, "{body}: {v}");
        if want == 201 {
            assert_eq!(v["tenant"], "acme", "{v}");
            assert!(v["key"].as_str().unwrap().starts_with("tf_"));
        }
    }
    let list = |by: String| {
        let s = &s;
        async move {
            let r = call(
                s,
                Method::GET,
                "/api/v2/admin/keys",
                Cred::Bearer(&by),
                &[],
                vec![],
            )
            .await;
            assert_eq!(r.status(), 200);
            json_of(r).await
        }
    };
    let mine = list(admin.clone()).await;
    let keys = mine["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3, "{mine}");
    assert!(keys.iter().all(|k| k["tenant"] == "acme"));
    assert!(
        !mine.to_string().contains(&admin[20..]),
        "a listing shows no secret"
    );
    let everything = list(operator.clone()).await;
    assert_eq!(everything["keys"].as_array().unwrap().len(), 5);
    // Another tenant's key is not found (its existence is not this
    // tenant's business); its own is revoked.
    let globex_id = &globex[3..19];
    assert_eq!(
        status_of(
            &s,
            Method::DELETE,
            &format!("/api/v2/admin/keys/{globex_id}"),
            Cred::Bearer(&admin)
        )
        .await,
        404
    );
    let own_id = keys.iter().find(|k| k["name"] == "web-sdk").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        status_of(
            &s,
            Method::DELETE,
            &format!("/api/v2/admin/keys/{own_id}"),
            Cred::Bearer(&admin)
        )
        .await,
        204
    );
    assert_eq!(
        list(admin.clone()).await["keys"].as_array().unwrap().len(),
        2
    );
}

/// How many spans `tenant` has stored (of `service`, if named), as a table.
async fn spans_in(s: &TestServer, key: &str, tenant: &str, service: Option<&str>) -> String {
    let filter = service.map_or(String::new(), |svc| {
        format!(" WHERE service_name = '{svc}'")
    });
    let sql_text = format!("SELECT count(*) AS n FROM otel_traces{filter}");
    let rows = sql(s, key, Some(tenant), &sql_text).await;
    arrow::util::pretty::pretty_format_batches(&rows)
        .unwrap()
        .to_string()
}

fn count_table(n: u64) -> String {
    arrow::util::pretty::pretty_format_batches(&[arrow::array::RecordBatch::try_from_iter([(
        "n",
        Arc::new(arrow::array::Int64Array::from(vec![n as i64])) as arrow::array::ArrayRef,
    )])
    .unwrap()])
    .unwrap()
    .to_string()
}

/// A batch key needs a relay key; a relay's marks are its own, so neither
/// a tenant key nor another relay can make the upstream drop a sidecar's
/// batches.
#[tokio::test]
async fn only_relay_keys_send_batch_keys_and_each_relay_has_its_own_marks() {
    let (s, operator) = keyed_server().await;
    let tenant_key = key(&s, &operator, "acme", "ingest").await;
    let (status, v) = create(
        &s,
        &operator,
        json!({"tenant": "*", "scopes": "relay,ingest", "name": "edge-a"}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let relay_a = v["key"].as_str().unwrap().to_owned();
    let (_, v) = create(
        &s,
        &operator,
        json!({"tenant": "*", "scopes": "relay,ingest", "name": "edge-b"}),
    )
    .await;
    let relay_b = v["key"].as_str().unwrap().to_owned();
    let send = |key: String, service: &'static str, batch: &'static str| {
        let s = &s;
        async move {
            let body = traces(service, vec![span(1, 1, "GET", T0)]).encode_to_vec();
            let headers = [("x-tenant-id", "acme"), ("x-telemetryflow-batch", batch)];
            call(
                s,
                Method::POST,
                "/v1/traces",
                Cred::Bearer(&key),
                &headers,
                body,
            )
            .await
            .status()
            .as_u16()
        }
    };
    // A tenant key naming the whole range of node "edge": refused, no mark.
    assert_eq!(
        send(tenant_key.clone(), "forged", "edge/1-18446744073709551615").await,
        403
    );
    // Relay B sends a huge range for "edge": it marks only B's stream.
    assert_eq!(send(relay_b.clone(), "b", "edge/1-1000000").await, 200);
    // Relay A's batches of node "edge" are stored, once.
    assert_eq!(send(relay_a.clone(), "a", "edge/1-5").await, 200);
    assert_eq!(send(relay_a.clone(), "a", "edge/1-5").await, 200);
    assert_eq!(send(relay_a.clone(), "a", "edge/6-9").await, 200);
    assert_eq!(
        spans_in(&s, &operator, "acme", Some("forged")).await,
        count_table(0)
    );
    assert_eq!(
        spans_in(&s, &operator, "acme", Some("a")).await,
        count_table(2)
    );
    assert_eq!(
        spans_in(&s, &operator, "acme", Some("b")).await,
        count_table(1)
    );
    // A relay key cannot query.
    let r = call(
        &s,
        Method::POST,
        "/api/v2/sql",
        Cred::Bearer(&relay_a),
        &[],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(r.status(), 403);
}

/// Two nodes on one bucket: a key made on one works on the other, and its
/// revocation reaches the other within five seconds.
#[tokio::test]
async fn revocation_reaches_a_second_node_within_five_seconds() {
    let shared = tempfile::tempdir().unwrap();
    let start = |operator: Option<String>| {
        let shared = shared.path().to_path_buf();
        async move {
            let dir = tempfile::tempdir().unwrap();
            let mut config = test_config(dir.path());
            keyed(&mut config);
            config.storage.url = StorageUrl::File(shared);
            let operator = match operator {
                Some(k) => k,
                None => mint(&config, "*", None, "admin").await,
            };
            (TestServer::from_config(config, dir, None).await, operator)
        }
    };
    let (a, operator) = start(None).await;
    let (b, _) = start(Some(operator.clone())).await;
    let ingest = key(&a, &operator, "acme", "ingest").await;
    let body = || traces("checkout", vec![span(1, 1, "GET", T0)]).encode_to_vec();
    let status_on_b = |k: String| {
        let b = &b;
        async move {
            call(b, Method::POST, "/v1/traces", Cred::Bearer(&k), &[], body())
                .await
                .status()
                .as_u16()
        }
    };
    // Until B reads the key, B refuses it; once refusals pass the failure
    // limit they are 429 rather than 401.
    let wait_for = |accepted: bool| {
        let ingest = ingest.clone();
        async move {
            let started = Instant::now();
            loop {
                let got = status_on_b(ingest.clone()).await;
                if (got == 200) == accepted {
                    assert!(accepted || got == 401 || got == 429, "{got}");
                    return started.elapsed();
                }
                assert!(started.elapsed() < Duration::from_secs(5), "still {got}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    wait_for(true).await;
    let id = &ingest[3..19];
    assert_eq!(
        status_of(
            &a,
            Method::DELETE,
            &format!("/api/v2/admin/keys/{id}"),
            Cred::Bearer(&operator)
        )
        .await,
        204
    );
    // On the node that revoked it: at once.
    let r = call(
        &a,
        Method::POST,
        "/v1/traces",
        Cred::Bearer(&ingest),
        &[],
        body(),
    )
    .await;
    assert_eq!(r.status(), 401);
    wait_for(false).await;
}

fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[tokio::test]
async fn no_key_or_token_is_stored_in_the_clear() {
    let (s, operator) = keyed_server().await;
    let k = key(&s, &operator, "acme", "ingest,query").await;
    let (token_status, token) = token_for(&s, &k, "").await;
    assert_eq!(token_status, 200);
    let token = token.unwrap();
    let mut files = Vec::new();
    files_under(s.dir.path(), &mut files);
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("_system")),
        "{files:?}"
    );
    for secret in [&k[20..], &operator[20..], &token[4..]] {
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{} holds a secret", f.display());
        }
    }
}

/// Tokens stand for a key, narrowed, in a header or (for clients that
/// cannot send headers) the `access_token` parameter.
#[tokio::test]
async fn tokens_stand_for_their_key() {
    let (s, operator) = keyed_server().await;
    let k = key(&s, &operator, "acme", "ingest,query").await;
    let body = br#"{"scopes":"query","ttl_secs":60}"#.to_vec();
    let r = call(
        &s,
        Method::POST,
        "/api/v2/auth/token",
        Cred::Bearer(&k),
        &[],
        body,
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = json_of(r).await;
    assert_eq!(v["expires_in"], 60, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    assert_eq!(
        status_of(&s, Method::GET, "/api/v2/services", Cred::Bearer(&token)).await,
        200
    );
    assert_eq!(
        status_of(
            &s,
            Method::GET,
            &format!("/api/v2/services?access_token={token}"),
            Cred::None
        )
        .await,
        200
    );
    // Narrowed to query: no ingest.
    assert_eq!(
        status_of(&s, Method::POST, "/v1/traces", Cred::Bearer(&token)).await,
        403
    );
    // A key is never taken from the URL.
    assert_eq!(
        status_of(
            &s,
            Method::GET,
            &format!("/api/v2/services?access_token={k}"),
            Cred::None
        )
        .await,
        401
    );
    assert_eq!(token_for(&s, &k, r#"{"scopes":"admin"}"#).await.0, 400);
}

/// The store unreachable: the keys read last keep working, a wrong key is
/// still refused, and nothing is let through.
#[tokio::test]
async fn cached_keys_keep_working_while_the_store_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("parquet")).unwrap();
    let mut config = test_config(dir.path());
    keyed(&mut config);
    let ingest = mint(&config, "acme", None, "ingest").await;
    let down = Arc::new(AtomicBool::new(false));
    let reads_down = Arc::new(AtomicBool::new(false));
    let store = Arc::new(FlakyStore::new(
        LocalFileSystem::new_with_prefix(dir.path().join("parquet")).unwrap(),
        Arc::clone(&down),
        Arc::clone(&reads_down),
    ));
    let s = TestServer::from_config(config, dir, Some(store)).await;
    down.store(true, Ordering::SeqCst);
    reads_down.store(true, Ordering::SeqCst);
    // Refreshes fail for longer than several refresh periods.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(send_span(&s, Cred::Bearer(&ingest), &[]).await, 200);
    for bad in [UNKNOWN_KEY.to_owned(), wrong_secret(&ingest)] {
        assert_eq!(send_span(&s, Cred::Bearer(&bad), &[]).await, 401);
    }
}

/// A server that never read its keys refuses every key, retryably.
#[tokio::test]
async fn keys_never_read_refuse_everything_retryably() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("parquet")).unwrap();
    let mut config = test_config(dir.path());
    keyed(&mut config);
    let ingest = mint(&config, "acme", None, "ingest").await;
    let reads_down = Arc::new(AtomicBool::new(true));
    let store = Arc::new(FlakyStore::new(
        LocalFileSystem::new_with_prefix(dir.path().join("parquet")).unwrap(),
        Arc::new(AtomicBool::new(false)),
        Arc::clone(&reads_down),
    ));
    let s = TestServer::from_config(config, dir, Some(store)).await;
    let r = call(
        &s,
        Method::POST,
        "/v1/traces",
        Cred::Bearer(&ingest),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    reads_down.store(false, Ordering::SeqCst);
    let started = Instant::now();
    loop {
        let body = traces("checkout", vec![span(1, 1, "GET", T0)]).encode_to_vec();
        let r = call(
            &s,
            Method::POST,
            "/v1/traces",
            Cred::Bearer(&ingest),
            &[],
            body,
        )
        .await;
        if r.status() == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn without_keys_the_server_stays_on_loopback_and_answers_loopback_names_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.server.http_addr = "0.0.0.0:0".parse().unwrap();
    let err = telemetryflow::bootstrap::start(config.clone())
        .await
        .err()
        .expect("refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("server.http_addr") && msg.contains("auth.mode"),
        "{msg}"
    );
    config.auth.allow_unauthenticated = true;
    let mut open = TestServer::from_config(config, dir, None).await;
    open.shutdown().await;

    let s = TestServer::start().await;
    let body = traces("checkout", vec![span(1, 1, "GET", T0)]).encode_to_vec();
    for (host, want) in [
        ("evil.example", 403),
        ("localhost:4318", 200),
        ("127.0.0.1", 200),
    ] {
        let r = call(
            &s,
            Method::POST,
            "/v1/traces",
            Cred::None,
            &[("host", host)],
            body.clone(),
        )
        .await;
        assert_eq!(r.status(), want, "{host}");
    }
    let r = call(
        &s,
        Method::GET,
        "/api/v2/services",
        Cred::None,
        &[("host", "rebound.example:4318")],
        vec![],
    )
    .await;
    assert_eq!(r.status(), 403);
    // Health checks answer any name.
    let r = call(
        &s,
        Method::GET,
        "/healthz",
        Cred::None,
        &[("host", "evil.example")],
        vec![],
    )
    .await;
    assert_eq!(r.status(), 200);
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// More than ten failures a minute from one address: 429 with
/// `Retry-After`, while a good key still gets in; failures are counted.
#[tokio::test]
async fn failed_authentications_are_limited_per_address_and_counted() {
    let (s, operator) = keyed_server().await;
    for i in 0..10 {
        assert_eq!(
            status_of(
                &s,
                Method::GET,
                "/api/v2/services",
                Cred::Bearer(UNKNOWN_KEY)
            )
            .await,
            401,
            "attempt {i}"
        );
    }
    let r = call(&s, Method::GET, "/api/v2/services", Cred::None, &[], vec![]).await;
    assert_eq!(r.status(), 429);
    let after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&after), "{after}");
    let r = call(
        &s,
        Method::GET,
        "/metrics",
        Cred::Bearer(&operator),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert_eq!(
        metric(
            &text,
            "telemetryflow_auth_failures_total{reason=\"unknown\"}"
        ),
        10.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "telemetryflow_auth_failures_total{reason=\"rate_limited\"}"
        ),
        1.0
    );
    assert!(!text.contains(&operator[20..]));
}

/// `/metrics` names every tenant: an operator's, or on a private listener.
#[tokio::test]
async fn metrics_need_an_operator_or_the_private_listener() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    keyed(&mut config);
    config.server.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    let s = TestServer::from_config(config, dir, None).await;
    let private = s.server.as_ref().unwrap().metrics_addr.unwrap();
    let r = reqwest::get(format!("http://{private}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("telemetryflow_"));
    let r = reqwest::get(format!("http://{private}/api/v2/services"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        status_of(&s, Method::GET, "/metrics", Cred::None).await,
        401
    );
}

/// `telemetryflow keys`: the key alone on stdout, listings without
/// secrets, and a data directory only its user can read.
#[cfg(unix)]
#[test]
fn the_keys_command_and_file_modes() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bin = env!("CARGO_BIN_EXE_telemetryflow");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let made = run(&[
        "keys",
        "create",
        "--tenant",
        "acme",
        "--scopes",
        "ingest,query",
        "--name",
        "web",
        "--expires",
        "90d",
    ]);
    let key = made.trim();
    assert_eq!(made.lines().count(), 1, "{made}");
    assert!(key.starts_with("tf_") && key.len() == 84, "{key}");
    let listed = run(&["keys", "list"]);
    let fields: Vec<&str> = listed.trim().split('\t').collect();
    assert_eq!(
        fields[..5],
        [&key[3..19], "web", "acme", "-", "ingest,query"],
        "{listed}"
    );
    assert!(fields[5].ends_with('Z'), "{listed}");
    assert!(!listed.contains(&key[20..]));
    let mut files = Vec::new();
    files_under(&data, &mut files);
    assert!(!files.is_empty());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
        assert_eq!(mode(f.parent().unwrap()), 0o700, "{}", f.display());
    }
    run(&["keys", "revoke", &key[3..19]]);
    assert_eq!(run(&["keys", "list"]), "");
}

/// A sidecar carrying two tenants forwards with a relay key, over gRPC and
/// HTTP: everything arrives once, under its own tenant.
#[tokio::test]
async fn a_sidecar_forwards_many_tenants_with_a_relay_key() {
    use telemetryflow::infrastructure::otlp::export::{Compression, Protocol};
    let (central, operator) = keyed_server().await;
    let (status, v) = create(
        &central,
        &operator,
        json!({"tenant": "*", "scopes": "relay,ingest", "name": "edge"}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let relay = v["key"].as_str().unwrap().to_owned();
    let mut sidecars = Vec::new();
    for (protocol, endpoint) in [
        (Protocol::Grpc, central.grpc.clone()),
        (Protocol::HttpProtobuf, central.http.clone()),
    ] {
        let relay = relay.clone();
        let sidecar = TestServer::start_with(move |c| {
            c.storage.persist = false;
            let mut f =
                crate::forward::forward_to("central", &endpoint, protocol, Compression::Gzip);
            f.headers
                .insert("authorization".into(), format!("Bearer {relay}"));
            c.forward = vec![f];
        })
        .await;
        for tenant in ["acme", "globex"] {
            let body = traces(tenant, vec![span(1, 1, "GET", T0)]).encode_to_vec();
            let headers = [("x-tenant-id", tenant)];
            let r = call(
                &sidecar,
                Method::POST,
                "/v1/traces",
                Cred::None,
                &headers,
                body,
            )
            .await;
            assert_eq!(r.status(), 200);
        }
        sidecars.push(sidecar);
    }
    for tenant in ["acme", "globex"] {
        let started = Instant::now();
        loop {
            let text = spans_in(&central, &operator, tenant, Some(tenant)).await;
            if text == count_table(2) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{tenant}: {text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A token stands in only for sending and querying: it cannot mint a token
/// or a key, even from an admin key.
#[tokio::test]
async fn a_token_mints_neither_tokens_nor_keys() {
    let (s, operator) = keyed_server().await;
    let admin = key(&s, &operator, "acme", "admin,query,ingest").await;
    let (token_status, token) = token_for(&s, &admin, "").await;
    assert_eq!(token_status, 200);
    let token = token.unwrap();
    assert_eq!(token_for(&s, &token, "").await.0, 403);
    let (status, v) = create(&s, &token, json!({"scopes": "ingest"})).await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(
        status_of(&s, Method::GET, "/api/v2/admin/keys", Cred::Bearer(&token)).await,
        403
    );
    // An operator's token narrowed to query cannot read every tenant; with
    // admin kept it can, for queries only.
    let narrow = token_for(&s, &operator, r#"{"scopes":"query"}"#)
        .await
        .1
        .unwrap();
    let r = call(
        &s,
        Method::GET,
        "/api/v2/services",
        Cred::Bearer(&narrow),
        &[("x-tenant-id", "acme")],
        vec![],
    )
    .await;
    assert_eq!(r.status(), 403);
    let full = token_for(&s, &operator, r#""#).await.1.unwrap();
    let r = call(
        &s,
        Method::GET,
        "/api/v2/services",
        Cred::Bearer(&full),
        &[("x-tenant-id", "acme")],
        vec![],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        status_of(
            &s,
            Method::POST,
            "/api/v2/admin/compact",
            Cred::Bearer(&full)
        )
        .await,
        403
    );
}

/// A workspace's admin key sees and revokes only that workspace's keys; a
/// duplicated tenant header cannot smuggle in another tenant.
#[tokio::test]
async fn a_workspace_admin_stays_in_its_workspace() {
    let (s, operator) = keyed_server().await;
    let (_, v) = create(
        &s,
        &operator,
        json!({"tenant": "acme", "workspace": "web", "scopes": "admin,ingest"}),
    )
    .await;
    let web_admin = v["key"].as_str().unwrap().to_owned();
    let (_, v) = create(&s, &operator, json!({"tenant": "acme", "scopes": "admin"})).await;
    let tenant_admin_id = v["id"].as_str().unwrap().to_owned();
    let r = call(
        &s,
        Method::GET,
        "/api/v2/admin/keys",
        Cred::Bearer(&web_admin),
        &[],
        vec![],
    )
    .await;
    let listed = json_of(r).await;
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{listed}");
    assert_eq!(keys[0]["workspace"], "web");
    assert_eq!(
        status_of(
            &s,
            Method::DELETE,
            &format!("/api/v2/admin/keys/{tenant_admin_id}"),
            Cred::Bearer(&web_admin)
        )
        .await,
        404
    );
    // Two tenant headers, the second another tenant's: the key's tenant it is.
    let body = traces("dup", vec![span(1, 1, "GET", T0)]).encode_to_vec();
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/traces", s.http))
        .bearer_auth(&web_admin)
        .header("content-type", "application/x-protobuf")
        .header("x-tenant-id", "acme")
        .header("x-tenant-id", "globex")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        spans_in(&s, &operator, "globex", None).await,
        count_table(0)
    );
}

/// Without keys, key management over HTTP is refused (anyone on the
/// server could otherwise mint an operator key for every node of the
/// store), and a loopback gRPC listener refuses a foreign `:authority`.
#[tokio::test]
async fn without_keys_keys_are_managed_offline_only() {
    let s = TestServer::start().await;
    let (status, v) = create(&s, "unused", json!({"tenant": "*", "scopes": "admin"})).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(
        status_of(&s, Method::GET, "/api/v2/admin/keys", Cred::None).await,
        400
    );
    let channel = tonic::transport::Endpoint::from_shared(s.grpc.clone())
        .unwrap()
        .origin("http://evil.example:4317".parse().unwrap())
        .connect()
        .await
        .unwrap();
    let mut client = TraceServiceClient::new(channel);
    let err = client
        .export(traces("checkout", vec![span(1, 1, "GET", T0)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
}

/// A batch key over gRPC needs a relay key too.
#[tokio::test]
async fn a_grpc_batch_key_needs_a_relay_key() {
    let (s, operator) = keyed_server().await;
    let ingest = key(&s, &operator, "acme", "ingest").await;
    let mut client = TraceServiceClient::connect(s.grpc.clone()).await.unwrap();
    let mut req = tonic::Request::new(traces("checkout", vec![span(1, 1, "GET", T0)]));
    req.metadata_mut()
        .insert("authorization", format!("Bearer {ingest}").parse().unwrap());
    req.metadata_mut()
        .insert("x-telemetryflow-batch", "edge/1-99".parse().unwrap());
    let err = client.export(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
}

/// A browser page may send `Authorization`; with keys on it may no longer
/// name a tenant (the key does).
#[tokio::test]
async fn cors_allows_the_key_header_and_not_the_tenant_header_with_keys() {
    let preflight = |s: &TestServer| {
        let url = format!("{}/v1/traces", s.http);
        async move {
            let r = reqwest::Client::new()
                .request(Method::OPTIONS, url)
                .header("origin", "https://app.example")
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization,x-tenant-id",
                )
                .send()
                .await
                .unwrap();
            r.headers()
                .get("access-control-allow-headers")
                .map(|v| v.to_str().unwrap().to_ascii_lowercase())
                .unwrap_or_default()
        }
    };
    let origins =
        |c: &mut Config| c.server.cors_allowed_origins = vec!["https://app.example".into()];
    let (keyed, _) = keyed_server_with(origins).await;
    let allowed = preflight(&keyed).await;
    assert!(allowed.contains("authorization"), "{allowed}");
    assert!(!allowed.contains("x-tenant-id"), "{allowed}");
    let open = TestServer::start_with(origins).await;
    let allowed = preflight(&open).await;
    assert!(
        allowed.contains("authorization") && allowed.contains("x-tenant-id"),
        "{allowed}"
    );
}
