//! Domain rules: rejected items are reported in OTLP partial_success with exact
//! counts and reasons; the rest is stored.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
use prost::Message;

use crate::fixtures::*;
use crate::otlp_http::post;
use crate::support::TestServer;

#[tokio::test]
async fn invalid_spans_are_rejected_and_reported() {
    let s = TestServer::start().await;
    let mut zero_trace = span(1, 3, "zero-trace", T0);
    zero_trace.trace_id = vec![0; 16];
    let mut short_span = span(1, 4, "short-span", T0);
    short_span.span_id = vec![1, 2, 3];
    let mut backwards = span(1, 5, "backwards", T0);
    backwards.end_time_unix_nano = T0 - 1;
    let req = traces(
        "svc",
        vec![
            span(1, 1, "ok-1", T0),
            zero_trace,
            short_span,
            backwards,
            span(1, 2, "ok-2", T0),
        ],
    );
    let r = post(
        &format!("{}/v1/traces", s.http),
        "application/x-protobuf",
        None,
        req.encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let ps = ExportTraceServiceResponse::decode(&r.body[..])
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(ps.rejected_spans, 3);
    assert_eq!(
        ps.error_message,
        "rejected 3 of 5 spans: 1 with invalid trace id (must be 16 bytes, not all zero); \
         1 with invalid span id (must be 8 bytes, not all zero); 1 with end time before start time"
    );
    s.wait_for_count(
        "SELECT count(*) FROM otel_traces WHERE span_name LIKE 'ok-%'",
        2,
    )
    .await;
    s.wait_for_count("SELECT count(*) FROM otel_traces", 2)
        .await;
}

#[tokio::test]
async fn metric_rules_reject_bad_names_and_misbehaving_counters() {
    let s = TestServer::start().await;
    let url = format!("{}/v1/metrics", s.http);
    let send =
        |req: opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest| {
            let url = url.clone();
            async move {
                let r = post(
                    &url,
                    "application/x-protobuf",
                    None,
                    req.encode_to_vec(),
                    None,
                )
                .await;
                assert_eq!(r.status, 200);
                ExportMetricsServiceResponse::decode(&r.body[..])
                    .unwrap()
                    .partial_success
            }
        };
    let start = T0 - 60 * SEC;
    let ps = send(metrics(
        "svc",
        vec![
            gauge(
                "1bad name",
                vec![
                    number_point(T0, 0, Value::AsDouble(1.0), vec![]),
                    number_point(T0 + 1, 0, Value::AsDouble(2.0), vec![]),
                ],
            ),
            counter(
                "requests",
                vec![number_point(
                    T0,
                    start,
                    Value::AsInt(10),
                    vec![kv_str("route", "/a")],
                )],
            ),
            counter(
                "errors",
                vec![number_point(T0, start, Value::AsDouble(-1.0), vec![])],
            ),
        ],
    ))
    .await
    .unwrap();
    assert_eq!(ps.rejected_data_points, 3);
    assert!(
        ps.error_message
            .starts_with("rejected 3 of 4 data points: 2 with invalid metric name"),
        "{}",
        ps.error_message
    );
    assert!(
        ps.error_message
            .contains("1 with negative value on a monotonic counter")
    );

    // The counter goes down for the same start time: rejected. Another series
    // (other attributes) is independent. A new start time is a reset.
    let ps = send(metrics(
        "svc",
        vec![counter(
            "requests",
            vec![
                number_point(
                    T0 + SEC,
                    start,
                    Value::AsInt(9),
                    vec![kv_str("route", "/a")],
                ),
                number_point(
                    T0 + SEC,
                    start,
                    Value::AsInt(1),
                    vec![kv_str("route", "/b")],
                ),
                number_point(
                    T0 + 2 * SEC,
                    T0 + SEC,
                    Value::AsInt(1),
                    vec![kv_str("route", "/a")],
                ),
            ],
        )],
    ))
    .await
    .unwrap();
    assert_eq!(ps.rejected_data_points, 1);
    assert_eq!(
        ps.error_message,
        "rejected 1 of 3 data points: 1 with cumulative monotonic counter decreased without a new start time"
    );
    // All valid: no partial_success at all.
    assert_eq!(
        send(metrics(
            "svc",
            vec![counter(
                "requests",
                vec![number_point(
                    T0 + 3 * SEC,
                    T0 + SEC,
                    Value::AsInt(5),
                    vec![kv_str("route", "/a")]
                )]
            )]
        ))
        .await,
        None
    );
    s.wait_for_count(
        "SELECT count(*) FROM otel_metrics_sum WHERE metric_name = 'requests'",
        4,
    )
    .await;
    s.wait_for_count("SELECT count(*) FROM otel_metrics_gauge", 0)
        .await;
    s.wait_for_count(
        "SELECT count(*) FROM otel_metrics_sum WHERE metric_name = 'errors'",
        0,
    )
    .await;
}

#[tokio::test]
async fn log_rules_reject_bad_context_and_severity() {
    let s = TestServer::start().await;
    let mut bad_ctx = log(T0, 9, "bad ctx");
    bad_ctx.trace_id = vec![1; 5];
    let bad_sev = log(T0, 99, "bad severity");
    let mut no_time = log(0, 9, "observed only");
    no_time.observed_time_unix_nano = T0 + SEC;
    let req = logs("svc", vec![log(T0, 9, "fine"), bad_ctx, bad_sev, no_time]);
    let r = post(
        &format!("{}/v1/logs", s.http),
        "application/x-protobuf",
        None,
        req.encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let ps = ExportLogsServiceResponse::decode(&r.body[..])
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(ps.rejected_log_records, 2);
    assert!(
        ps.error_message.contains("1 with invalid trace context"),
        "{}",
        ps.error_message
    );
    assert!(
        ps.error_message
            .contains("1 with severity number outside 0..=24")
    );
    // A record without event time is filed under its observed time.
    s.wait_for_count(
        "SELECT count(*) FROM otel_logs WHERE body = 'observed only' AND timestamp = to_timestamp_nanos(1795687201000000000)",
        1,
    )
    .await;
    s.wait_for_count("SELECT count(*) FROM otel_logs", 2).await;
}

/// A number point without a value is rejected with its reason, not stored
/// as 0; the points beside it are stored.
#[tokio::test]
async fn a_number_point_without_a_value_is_rejected_not_zero() {
    let s = TestServer::start().await;
    let mut empty_gauge = number_point(T0, 0, Value::AsDouble(1.0), vec![]);
    empty_gauge.value = None;
    let mut empty_counter = number_point(T0, T0 - 60 * SEC, Value::AsInt(1), vec![]);
    empty_counter.value = None;
    let req = metrics(
        "svc",
        vec![
            gauge(
                "temperature",
                vec![
                    empty_gauge,
                    number_point(T0 + 1, 0, Value::AsDouble(21.5), vec![]),
                ],
            ),
            counter("requests", vec![empty_counter]),
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
    let ps = ExportMetricsServiceResponse::decode(&r.body[..])
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(ps.rejected_data_points, 2);
    assert!(
        ps.error_message
            .contains("2 with number data point without a value"),
        "{}",
        ps.error_message
    );
    let rows = s
        .sql("SELECT metric_name, value FROM otel_metrics_gauge UNION ALL SELECT metric_name, value FROM otel_metrics_sum")
        .await;
    datafusion::assert_batches_sorted_eq!(
        [
            "+-------------+-------+",
            "| metric_name | value |",
            "+-------------+-------+",
            "| temperature | 21.5  |",
            "+-------------+-------+",
        ],
        &rows
    );
}
