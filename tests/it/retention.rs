//! Retention through the running server and the CLI: rules (default, table
//! and tenant overrides) applied to data stored before they existed, whole
//! hour partitions only, items already too old rejected in the OTLP partial
//! success, and `/metrics`.

use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use crate::fixtures::*;
use crate::otlp_http::post;
use crate::support::{TestServer, first_value, metric_value, parquet_files, run_cli, test_config};

const HOUR: u64 = 3600 * SEC;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Posts logs at `times` for `tenant` as OTLP/JSON; returns the answer.
async fn send_logs(s: &TestServer, tenant: &str, times: &[u64]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = times
        .iter()
        .map(|t| {
            serde_json::json!({
                "timeUnixNano": t.to_string(),
                "severityNumber": 9,
                "body": {"stringValue": format!("at {t}")}
            })
        })
        .collect();
    let body = serde_json::json!({
        "resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
            "scopeLogs": [{"logRecords": records}]
        }]
    });
    let r = post(
        &format!("{}/v1/logs", s.http),
        "application/json",
        None,
        body.to_string().into_bytes(),
        Some(tenant),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    serde_json::from_slice(&r.body).unwrap()
}

async fn send_spans_at(s: &TestServer, tenant: &str, t: u8, start: u64) {
    let r = post(
        &format!("{}/v1/traces", s.http),
        "application/x-protobuf",
        None,
        traces("svc", vec![span(t, 1, "op", start)]).encode_to_vec(),
        Some(tenant),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

async fn count(s: &TestServer, tenant: &str, sql: &str) -> u64 {
    first_value(&s.sql_as(tenant, sql).await).parse().unwrap()
}

async fn logs_between(s: &TestServer, tenant: &str, from: u64, to: u64) -> u64 {
    count(
        s,
        tenant,
        &format!(
            "SELECT count(*) FROM otel_logs WHERE timestamp >= to_timestamp_nanos({from}) \
             AND timestamp < to_timestamp_nanos({to})"
        ),
    )
    .await
}

#[tokio::test]
async fn rules_apply_to_stored_data_by_whole_partitions_and_too_old_items_are_rejected() {
    let now = now_ns();
    let cut = now - 24 * HOUR;
    let straddling = cut - cut % HOUR;
    // Two records far past a day, two in the hour the one-day cut-off falls
    // in, one now.
    let times = [
        now - 72 * HOUR,
        now - 30 * HOUR,
        straddling,
        straddling + HOUR - SEC,
        now,
    ];
    let mut s = TestServer::start().await;
    for tenant in ["acme", "beta"] {
        let answer = send_logs(&s, tenant, &times).await;
        assert!(answer.get("partialSuccess").is_none(), "{answer}");
        send_spans_at(&s, tenant, 1, now - 72 * HOUR).await;
        send_spans_at(&s, tenant, 2, now - 30 * HOUR).await;
        send_spans_at(&s, tenant, 3, now).await;
    }
    s.flush().await;
    s.shutdown().await;

    // Restart with rules: logs a day, everything else two days; beta keeps
    // its logs forever.
    let mut config = test_config(s.dir.path());
    let rules = |c: &mut telemetryflow::Config| {
        c.retention = toml::from_str(
            r#"
            default = "48h"
            tables = { otel_logs = "24h" }
            tenants = { beta = { otel_logs = "0" } }
            "#,
        )
        .unwrap();
    };
    rules(&mut config);
    let s = TestServer::from_config(config, tempfile::tempdir().unwrap(), None).await;
    // The start-up pass and this one are serialized: both are done when it answers.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v2/admin/retention", s.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let summary: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    for key in [
        "partitions",
        "files",
        "rows",
        "bytes",
        "buffered_rows",
        "conflicts",
    ] {
        assert!(summary[key].is_u64(), "{key} in {summary}");
    }

    // acme's logs: the two old partitions are gone, the straddling one is
    // whole (or, had the clock crossed into the next hour meanwhile, wholly
    // gone), the recent one is there.
    let acme_straddling = logs_between(&s, "acme", straddling, straddling + HOUR).await;
    assert!(
        acme_straddling == 2 || now_ns() - 24 * HOUR >= straddling + HOUR,
        "never half-visible: {acme_straddling} of 2"
    );
    assert_eq!(logs_between(&s, "acme", 0, straddling).await, 0);
    assert_eq!(logs_between(&s, "acme", now, now + 1).await, 1);
    // beta's logs: all kept. Spans (48 h for both): the 72-hour-old one went.
    assert_eq!(count(&s, "beta", "SELECT count(*) FROM otel_logs").await, 5);
    for tenant in ["acme", "beta"] {
        assert_eq!(
            count(&s, tenant, "SELECT count(*) FROM otel_traces").await,
            2,
            "{tenant}"
        );
    }
    let expired: u64 = metric_value(&s.http, "telemetryflow_retention_expired_partitions_total")
        .await
        .parse()
        .unwrap();
    // acme logs 72 h and 30 h, spans 72 h for both tenants (+ the straddling
    // hour if the clock crossed an hour).
    assert!((4..=5).contains(&expired), "{expired}");
    assert!(
        metric_value(
            &s.http,
            "telemetryflow_retention_last_pass_timestamp_seconds"
        )
        .await
        .parse::<u64>()
        .unwrap()
            > 0
    );

    // Items for an expired hour are rejected, with the reason; the rest of
    // the request is stored. beta keeps logs forever: nothing rejected.
    let answer = send_logs(&s, "acme", &[now - 30 * HOUR, now_ns()]).await;
    assert_eq!(
        answer["partialSuccess"]["rejectedLogRecords"], "1",
        "{answer}"
    );
    let message = answer["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(message.contains("retention period"), "{message}");
    let answer = send_logs(&s, "beta", &[now - 30 * HOUR]).await;
    assert!(answer.get("partialSuccess").is_none(), "{answer}");
    assert_eq!(count(&s, "beta", "SELECT count(*) FROM otel_logs").await, 6);
}

#[tokio::test]
async fn the_cli_expires_a_stopped_servers_data_and_deletes_its_files() {
    let now = now_ns();
    let mut s = TestServer::start().await;
    send_spans_at(&s, "default", 1, now - 50 * HOUR).await;
    send_spans_at(&s, "default", 2, now - 30 * HOUR).await;
    send_spans_at(&s, "default", 3, now).await;
    s.flush().await;
    s.shutdown().await;
    assert_eq!(parquet_files(&s.parquet_dir()).len(), 3);

    // A rule given after the fact, in the environment; no grace period.
    let out = run_cli(
        &[
            "retention".as_ref(),
            "--data-dir".as_ref(),
            s.dir.path().as_ref(),
        ],
        &[
            (
                "TELEMETRYFLOW_RETENTION_TABLES",
                r#"{ otel_traces = "1d" }"#,
            ),
            ("TELEMETRYFLOW_STORAGE_GC_GRACE_SECS", "0"),
        ],
    );
    let printed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            printed["partitions"].as_u64(),
            printed["files"].as_u64(),
            printed["rows"].as_u64()
        ),
        (Some(2), Some(2), Some(2)),
        "{printed}"
    );
    assert!(printed["bytes"].as_u64().unwrap() > 0, "{printed}");
    assert_eq!(parquet_files(&s.parquet_dir()).len(), 1);
    // A second pass finds nothing.
    let again: serde_json::Value = serde_json::from_str(&run_cli(
        &[
            "retention".as_ref(),
            "--data-dir".as_ref(),
            s.dir.path().as_ref(),
        ],
        &[(
            "TELEMETRYFLOW_RETENTION_TABLES",
            r#"{ otel_traces = "1d" }"#,
        )],
    ))
    .unwrap();
    assert_eq!(again["partitions"], 0, "{again}");
    // The server sees what is left.
    let s2 = TestServer::from_config(
        test_config(s.dir.path()),
        tempfile::tempdir().unwrap(),
        None,
    )
    .await;
    assert_eq!(
        first_value(&s2.sql("SELECT count(*) FROM otel_traces").await),
        "1"
    );
}

#[tokio::test]
async fn bad_retention_settings_are_clear_errors() {
    for (toml, needle) in [
        ("[retention]\ndefault = \"7x\"", "retention.default"),
        ("[retention.tables]\notel_lgs = \"7d\"", "otel_lgs"),
        (
            "[retention.tenants.acme]\notel_logs = \"soon\"",
            "retention.tenants.acme.otel_logs",
        ),
        (
            "[retention]\ncheck_interval_secs = 0",
            "retention.check_interval_secs",
        ),
    ] {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, toml.as_bytes()).unwrap();
        let e = telemetryflow::Config::load(Some(f.path()), Vec::new(), &Default::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{toml}: {e}");
    }
}
