//! OTLP/HTTP with raw requests: protobuf, JSON as the spec writes it, gzip, zstd.

use std::io::Write;

use datafusion::assert_batches_sorted_eq;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, ExponentialHistogramDataPoint, Histogram, HistogramDataPoint, Summary,
    SummaryDataPoint, exponential_histogram_data_point, metric, number_data_point::Value,
    summary_data_point::ValueAtQuantile,
};
use prost::Message;

use crate::fixtures::*;
use crate::support::TestServer;

pub(crate) struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

pub(crate) async fn post(
    url: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
    tenant: Option<&str>,
) -> Reply {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .body(body);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    if let Some(t) = tenant {
        req = req.header("x-tenant-id", t);
    }
    let resp = req.send().await.unwrap();
    Reply {
        status: resp.status().as_u16(),
        content_type: resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default(),
        body: resp.bytes().await.unwrap().to_vec(),
    }
}

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn protobuf_traces_are_stored_with_every_field_queryable() {
    let s = TestServer::start().await;
    let mut child = span(1, 2, "GET /cart", T0 + SEC);
    child.parent_span_id = span_id(1);
    child.kind = 3;
    child.status = Some(opentelemetry_proto::tonic::trace::v1::Status {
        code: 2,
        message: "boom".into(),
    });
    child
        .events
        .push(opentelemetry_proto::tonic::trace::v1::span::Event {
            time_unix_nano: T0 + SEC + 5,
            name: "exception".into(),
            attributes: vec![kv_str("exception.type", "IOError")],
            dropped_attributes_count: 1,
        });
    child
        .links
        .push(opentelemetry_proto::tonic::trace::v1::span::Link {
            trace_id: trace_id(9),
            span_id: span_id(9),
            trace_state: "k=v".into(),
            flags: 1,
            ..Default::default()
        });
    let req = traces("checkout", vec![span(1, 1, "GET /", T0), child]);
    let r = post(
        &format!("{}/v1/traces", s.http),
        "application/x-protobuf",
        None,
        req.encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "application/x-protobuf");
    let resp = ExportTraceServiceResponse::decode(&r.body[..]).unwrap();
    assert_eq!(resp.partial_success, None);

    let batches = s
        .sql(
            "SELECT timestamp, trace_id, span_id, parent_span_id, span_name, span_kind, service_name, \
             duration_ns, status_code, status_message, span_attributes['http.method'] AS method, \
             span_attribute_types['http.status_code'] AS status_type, resource_attributes['host.name'] AS host, \
             scope_name, cardinality(events) AS events, events[1]['name'] AS event, cardinality(links) AS links \
             FROM otel_traces",
        )
        .await;
    assert_batches_sorted_eq!(
        [
            "+----------------------+----------------------------------+------------------+------------------+-----------+-----------+--------------+-------------+-------------+----------------+--------+-------------+------+------------+--------+-----------+-------+",
            "| timestamp            | trace_id                         | span_id          | parent_span_id   | span_name | span_kind | service_name | duration_ns | status_code | status_message | method | status_type | host | scope_name | events | event     | links |",
            "+----------------------+----------------------------------+------------------+------------------+-----------+-----------+--------------+-------------+-------------+----------------+--------+-------------+------+------------+--------+-----------+-------+",
            "| 2026-11-26T10:00:00Z | ab000000000000000000000000000001 | cd00000000000001 |                  | GET /     | Server    | checkout     | 250000000   | Ok          |                | GET    | int         | h1   | test-scope | 0      |           | 0     |",
            "| 2026-11-26T10:00:01Z | ab000000000000000000000000000001 | cd00000000000002 | cd00000000000001 | GET /cart | Client    | checkout     | 250000000   | Error       | boom           | GET    | int         | h1   | test-scope | 1      | exception | 1     |",
            "+----------------------+----------------------------------+------------------+------------------+-----------+-----------+--------------+-------------+-------------+----------------+--------+-------------+------+------------+--------+-----------+-------+",
        ],
        &batches
    );
}

#[tokio::test]
async fn gzip_and_zstd_bodies_are_accepted() {
    let s = TestServer::start().await;
    let body = traces("svc", vec![span(1, 1, "a", T0)]).encode_to_vec();
    let r = post(
        &format!("{}/v1/traces", s.http),
        "application/x-protobuf",
        Some("gzip"),
        gzip(&body),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = traces("svc", vec![span(2, 1, "b", T0)]).encode_to_vec();
    let z = zstd::encode_all(&body[..], 3).unwrap();
    let r = post(
        &format!("{}/v1/traces", s.http),
        "application/x-protobuf",
        Some("zstd"),
        z,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let json = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1795687200000000000","body":{"stringValue":"zipped"}}]}]}]}"#;
    let r = post(
        &format!("{}/v1/logs", s.http),
        "application/json",
        Some("gzip"),
        gzip(json),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let batches = s
        .sql("SELECT span_name FROM otel_traces UNION ALL SELECT body FROM otel_logs")
        .await;
    assert_batches_sorted_eq!(
        [
            "+-----------+",
            "| span_name |",
            "+-----------+",
            "| a         |",
            "| b         |",
            "| zipped    |",
            "+-----------+"
        ],
        &batches
    );
}

/// The OTLP/JSON of the specification's examples, with the encodings SDKs
/// really send: ids in upper-case hex, 64-bit integers as strings, enums by
/// name, snake_case keys.
#[tokio::test]
async fn json_as_the_spec_writes_it() {
    let s = TestServer::start().await;
    let traces = include_str!("../../testdata/otlp-json/sdk_traces.json");
    let r = post(
        &format!("{}/v1/traces", s.http),
        "application/json",
        None,
        traces.into(),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.content_type, "application/json");
    assert_eq!(r.body, b"{}");

    let metrics = include_str!("../../testdata/otlp-json/sdk_metrics.json");
    let r = post(
        &format!("{}/v1/metrics", s.http),
        "application/json; charset=utf-8",
        None,
        metrics.into(),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    let logs = include_str!("../../testdata/otlp-json/sdk_logs.json");
    let r = post(
        &format!("{}/v1/logs", s.http),
        "application/json",
        None,
        logs.into(),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    let batches = s
        .sql(
            "SELECT trace_id, span_id, parent_span_id, span_kind, status_code, duration_ns, \
             span_attributes['retries'] AS retries, span_attribute_types['retries'] AS rt, \
             span_attributes['ratio'] AS ratio, span_attributes['ok'] AS ok, scope_attributes['my.scope.attribute'] AS sa \
             FROM otel_traces",
        )
        .await;
    assert_batches_sorted_eq!(
        [
            "+----------------------------------+------------------+------------------+-----------+-------------+-------------+---------+-----+-------+------+----------------------+",
            "| trace_id                         | span_id          | parent_span_id   | span_kind | status_code | duration_ns | retries | rt  | ratio | ok   | sa                   |",
            "+----------------------------------+------------------+------------------+-----------+-------------+-------------+---------+-----+-------+------+----------------------+",
            "| 5b8efff798038103d269b633813fc60c | eee19b7ec3c1b174 | eee19b7ec3c1b173 | Server    | Error       | 1000000000  | 3       | int | 0.5   | true | some scope attribute |",
            "+----------------------------------+------------------+------------------+-----------+-------------+-------------+---------+-----+-------+------+----------------------+",
        ],
        &batches
    );
    let batches = s
        .sql(
            "SELECT metric_name, value, value_int, aggregation_temporality, is_monotonic, attributes['my.counter.attr'] AS a \
             FROM otel_metrics_sum UNION ALL SELECT metric_name, value, value_int, NULL, NULL, NULL FROM otel_metrics_gauge",
        )
        .await;
    assert_batches_sorted_eq!(
        [
            "+-------------+-------+-----------+-------------------------+--------------+------------+",
            "| metric_name | value | value_int | aggregation_temporality | is_monotonic | a          |",
            "+-------------+-------+-----------+-------------------------+--------------+------------+",
            "| my.counter  | 7.0   | 7         | 2                       | true         | some value |",
            "| my.gauge    | 10.5  |           |                         |              |            |",
            "+-------------+-------+-----------+-------------------------+--------------+------------+",
        ],
        &batches
    );
    let batches = s
        .sql("SELECT severity_number, severity_text, body, trace_id, log_attributes['int.attribute'] AS i FROM otel_logs")
        .await;
    assert_batches_sorted_eq!(
        [
            "+-----------------+---------------+--------------------+----------------------------------+----+",
            "| severity_number | severity_text | body               | trace_id                         | i  |",
            "+-----------------+---------------+--------------------+----------------------------------+----+",
            "| 9               | Information   | Example log record | 5b8efff798038103d269b633813fc60c | 10 |",
            "+-----------------+---------------+--------------------+----------------------------------+----+",
        ],
        &batches
    );
}

#[tokio::test]
async fn all_five_metric_types_land_in_their_tables() {
    let s = TestServer::start().await;
    let hist = opentelemetry_proto::tonic::metrics::v1::Metric {
        name: "http.server.duration".into(),
        unit: "ms".into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                time_unix_nano: T0,
                start_time_unix_nano: T0 - SEC,
                count: 6,
                sum: Some(120.0),
                bucket_counts: vec![1, 2, 3],
                explicit_bounds: vec![10.0, 50.0],
                min: Some(1.0),
                max: Some(70.0),
                ..Default::default()
            }],
            aggregation_temporality: 2,
        })),
        ..Default::default()
    };
    let exp = opentelemetry_proto::tonic::metrics::v1::Metric {
        name: "latency.exp".into(),
        data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![ExponentialHistogramDataPoint {
                time_unix_nano: T0,
                count: 5,
                sum: Some(9.0),
                scale: 2,
                zero_count: 1,
                positive: Some(exponential_histogram_data_point::Buckets {
                    offset: -1,
                    bucket_counts: vec![1, 3],
                }),
                ..Default::default()
            }],
            aggregation_temporality: 1,
        })),
        ..Default::default()
    };
    let summary = opentelemetry_proto::tonic::metrics::v1::Metric {
        name: "rpc.summary".into(),
        data: Some(metric::Data::Summary(Summary {
            data_points: vec![SummaryDataPoint {
                time_unix_nano: T0,
                count: 10,
                sum: 55.0,
                quantile_values: vec![
                    ValueAtQuantile {
                        quantile: 0.5,
                        value: 5.0,
                    },
                    ValueAtQuantile {
                        quantile: 0.99,
                        value: 9.9,
                    },
                ],
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    let req = metrics(
        "api",
        vec![
            gauge(
                "cpu.usage",
                vec![number_point(
                    T0,
                    0,
                    Value::AsDouble(0.25),
                    vec![kv_str("cpu", "0")],
                )],
            ),
            counter(
                "requests",
                vec![number_point(T0, T0 - SEC, Value::AsInt(42), vec![])],
            ),
            hist,
            exp,
            summary,
        ],
    );
    let r = post(
        &format!("{}/v1/metrics", s.http),
        "application/x-protobuf",
        None,
        req.encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let b = s
        .sql("SELECT metric_name, value, attributes['cpu'] AS cpu FROM otel_metrics_gauge")
        .await;
    assert_batches_sorted_eq!(
        [
            "+-------------+-------+-----+",
            "| metric_name | value | cpu |",
            "+-------------+-------+-----+",
            "| cpu.usage   | 0.25  | 0   |",
            "+-------------+-------+-----+"
        ],
        &b
    );
    let b = s
        .sql("SELECT metric_name, value_int, start_timestamp FROM otel_metrics_sum")
        .await;
    assert_batches_sorted_eq!(
        [
            "+-------------+-----------+----------------------+",
            "| metric_name | value_int | start_timestamp      |",
            "+-------------+-----------+----------------------+",
            "| requests    | 42        | 2026-11-26T09:59:59Z |",
            "+-------------+-----------+----------------------+"
        ],
        &b
    );
    let b = s
        .sql("SELECT metric_name, metric_unit, count, sum, bucket_counts, explicit_bounds, min, max FROM otel_metrics_histogram")
        .await;
    assert_batches_sorted_eq!(
        [
            "+----------------------+-------------+-------+-------+---------------+-----------------+-----+------+",
            "| metric_name          | metric_unit | count | sum   | bucket_counts | explicit_bounds | min | max  |",
            "+----------------------+-------------+-------+-------+---------------+-----------------+-----+------+",
            "| http.server.duration | ms          | 6     | 120.0 | [1, 2, 3]     | [10.0, 50.0]    | 1.0 | 70.0 |",
            "+----------------------+-------------+-------+-------+---------------+-----------------+-----+------+",
        ],
        &b
    );
    let b = s
        .sql("SELECT metric_name, count, scale, zero_count, positive_offset, positive_bucket_counts, aggregation_temporality FROM otel_metrics_exp_histogram")
        .await;
    assert_batches_sorted_eq!(
        [
            "+-------------+-------+-------+------------+-----------------+------------------------+-------------------------+",
            "| metric_name | count | scale | zero_count | positive_offset | positive_bucket_counts | aggregation_temporality |",
            "+-------------+-------+-------+------------+-----------------+------------------------+-------------------------+",
            "| latency.exp | 5     | 2     | 1          | -1              | [1, 3]                 | 1                       |",
            "+-------------+-------+-------+------------+-----------------+------------------------+-------------------------+",
        ],
        &b
    );
    let b = s.sql("SELECT metric_name, count, sum, quantiles[2]['value'] AS p99 FROM otel_metrics_summary").await;
    assert_batches_sorted_eq!(
        [
            "+-------------+-------+------+-----+",
            "| metric_name | count | sum  | p99 |",
            "+-------------+-------+------+-----+",
            "| rpc.summary | 10    | 55.0 | 9.9 |",
            "+-------------+-------+------+-----+"
        ],
        &b
    );
}
