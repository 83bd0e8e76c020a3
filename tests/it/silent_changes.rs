//! Well-formed requests whose items could not be stored as sent: each such
//! item is rejected in OTLP partial success with its reason, never dropped
//! or altered silently; the items beside it are stored. What can be stored
//! as sent (NaN, infinities) is, through Parquet and back out of queries.

use arrow::array::{Array, AsArray};
use arrow::datatypes::Float64Type;
use datafusion::arrow;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Histogram, HistogramDataPoint,
    Metric, Summary, SummaryDataPoint, exemplar, exponential_histogram_data_point, metric,
    number_data_point::Value, summary_data_point,
};
use opentelemetry_proto::tonic::trace::v1::span::Event;
use prost::Message;

use crate::fixtures::*;
use crate::otlp_http::post;
use crate::support::TestServer;

/// The first nanosecond past what storage holds (2262-04-11T23:47:16.854775808Z).
const LATE: u64 = i64::MAX as u64 + 1;

async fn post_metrics(
    s: &TestServer,
    req: opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
) -> (i64, String) {
    let r = post(
        &format!("{}/v1/metrics", s.http),
        "application/x-protobuf",
        None,
        req.encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let ps = ExportMetricsServiceResponse::decode(&r.body[..])
        .unwrap()
        .partial_success
        .unwrap_or_default();
    (ps.rejected_data_points, ps.error_message)
}

fn data(name: &str, data: Option<metric::Data>) -> Metric {
    Metric {
        name: name.into(),
        data,
        ..Default::default()
    }
}

/// A metric with no data, or with a type but no data points, is one
/// rejected data point with its reason (OTLP/JSON, as an SDK sends it).
#[tokio::test]
async fn a_metric_without_data_points_is_rejected_in_partial_success() {
    let s = TestServer::start().await;
    let body = format!(
        r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[
            {{"name":"no.data","unit":"1"}},
            {{"name":"no.points","gauge":{{"dataPoints":[]}}}},
            {{"name":"no.buckets","histogram":{{"aggregationTemporality":2,"dataPoints":[]}}}},
            {{"name":"kept","gauge":{{"dataPoints":[{{"timeUnixNano":"{T0}","asDouble":1.5}}]}}}}
        ]}}]}}]}}"#
    );
    let r = post(
        &format!("{}/v1/metrics", s.http),
        "application/json",
        None,
        body.into_bytes(),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let reply: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let ps = &reply["partialSuccess"];
    assert_eq!(ps["rejectedDataPoints"].as_str(), Some("3"), "{reply}");
    let message = ps["errorMessage"].as_str().unwrap();
    assert!(
        message.starts_with("rejected 3 of 4 data points: 3 with metric without data points"),
        "{message}"
    );
    s.wait_for_count("SELECT count(*) FROM otel_metrics_gauge", 1)
        .await;
    s.wait_for_count(
        "SELECT count(*) FROM otel_metrics_gauge WHERE metric_name = 'kept'",
        1,
    )
    .await;
}

/// Timestamps past 2262-04-11 are rejected wherever they are (a span's
/// end or event, a log's observed time, a point's start time or exemplar),
/// not clamped to the last storable nanosecond; 0 and the last storable
/// nanosecond itself are stored as sent.
#[tokio::test]
async fn timestamps_beyond_2262_are_rejected_not_clamped() {
    let s = TestServer::start().await;

    // Traces, over gRPC.
    let mut late_end = span(1, 1, "late-end", T0);
    late_end.end_time_unix_nano = LATE;
    let mut late_event = span(1, 2, "late-event", T0);
    late_event.events = vec![Event {
        time_unix_nano: u64::MAX,
        name: "e".into(),
        ..Default::default()
    }];
    let mut last_ns = span(1, 3, "last-ns", T0);
    last_ns.end_time_unix_nano = i64::MAX as u64;
    let mut client = TraceServiceClient::connect(s.grpc.clone()).await.unwrap();
    let ps = client
        .export(traces(
            "svc",
            vec![late_end, late_event, last_ns, span(1, 4, "ok", T0)],
        ))
        .await
        .unwrap()
        .into_inner()
        .partial_success
        .unwrap();
    assert_eq!(ps.rejected_spans, 2);
    assert!(
        ps.error_message
            .contains("2 with timestamp beyond 2262-04-11"),
        "{}",
        ps.error_message
    );

    // Logs, over HTTP.
    let mut late_observed = log(0, 9, "late-observed");
    late_observed.observed_time_unix_nano = LATE;
    let mut late_time = log(LATE, 9, "late-time");
    late_time.observed_time_unix_nano = T0;
    let r = post(
        &format!("{}/v1/logs", s.http),
        "application/x-protobuf",
        None,
        logs("svc", vec![late_observed, late_time, log(T0, 9, "ok")]).encode_to_vec(),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let ps = ExportLogsServiceResponse::decode(&r.body[..])
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(ps.rejected_log_records, 2, "{}", ps.error_message);

    // Metrics.
    let mut late_exemplar = number_point(T0, 0, Value::AsDouble(1.0), vec![]);
    late_exemplar.exemplars = vec![Exemplar {
        time_unix_nano: LATE,
        value: Some(exemplar::Value::AsInt(1)),
        ..Default::default()
    }];
    let (rejected, message) = post_metrics(
        &s,
        metrics(
            "svc",
            vec![
                gauge(
                    "g",
                    vec![
                        late_exemplar,
                        number_point(LATE, 0, Value::AsDouble(2.0), vec![]),
                        number_point(i64::MAX as u64, 0, Value::AsDouble(3.0), vec![]),
                    ],
                ),
                counter("c", vec![number_point(T0, LATE, Value::AsInt(5), vec![])]),
            ],
        ),
    )
    .await;
    assert_eq!(rejected, 3, "{message}");
    assert!(
        message.starts_with("rejected 3 of 4 data points: 3 with timestamp beyond 2262-04-11"),
        "{message}"
    );

    s.wait_for_count("SELECT count(*) FROM otel_traces", 2)
        .await;
    s.wait_for_count("SELECT count(*) FROM otel_logs", 1).await;
    s.wait_for_count("SELECT count(*) FROM otel_metrics_gauge", 1)
        .await;
    s.wait_for_count("SELECT count(*) FROM otel_metrics_sum", 0)
        .await;
    // The span ending on the last storable nanosecond keeps its duration.
    s.wait_for_count(
        "SELECT duration_ns FROM otel_traces WHERE span_name = 'last-ns'",
        i64::MAX as u64 - T0,
    )
    .await;
}

fn hist(count: u64, buckets: Vec<u64>, bounds: Vec<f64>) -> HistogramDataPoint {
    HistogramDataPoint {
        time_unix_nano: T0,
        count,
        sum: Some(10.0),
        bucket_counts: buckets,
        explicit_bounds: bounds,
        ..Default::default()
    }
}

fn exp(count: u64, scale: i32, negative: Vec<u64>) -> ExponentialHistogramDataPoint {
    ExponentialHistogramDataPoint {
        time_unix_nano: T0,
        count,
        scale,
        zero_count: 1,
        positive: Some(exponential_histogram_data_point::Buckets {
            offset: 0,
            bucket_counts: vec![1, 2, 3, 2, 1],
        }),
        negative: Some(exponential_histogram_data_point::Buckets {
            offset: -3,
            bucket_counts: negative,
        }),
        ..Default::default()
    }
}

fn quantiles(qs: &[f64]) -> SummaryDataPoint {
    SummaryDataPoint {
        time_unix_nano: T0,
        count: 2,
        sum: 3.0,
        quantile_values: qs
            .iter()
            .map(|&quantile| summary_data_point::ValueAtQuantile {
                quantile,
                value: 1.0,
            })
            .collect(),
        ..Default::default()
    }
}

/// Histograms whose buckets do not add up to their count, whose bounds are
/// out of order or do not match the buckets, exponential histograms of a
/// scale the data model does not define, summaries with a quantile that is
/// no fraction: rejected with the reason; consistent ones are stored.
#[tokio::test]
async fn inconsistent_histograms_are_rejected_with_their_reason() {
    let s = TestServer::start().await;
    let (rejected, message) = post_metrics(
        &s,
        metrics(
            "svc",
            vec![
                data(
                    "latency",
                    Some(metric::Data::Histogram(Histogram {
                        aggregation_temporality: 2,
                        data_points: vec![
                            hist(6, vec![1, 2, 3], vec![1.0, 2.0]),
                            hist(7, vec![1, 2, 3], vec![1.0, 2.0]),
                            hist(u64::MAX, vec![u64::MAX, 1], vec![1.0]),
                            hist(6, vec![1, 2, 3], vec![1.0]),
                            hist(6, vec![1, 2, 3], vec![2.0, 1.0]),
                        ],
                    })),
                ),
                data(
                    "size",
                    Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                        aggregation_temporality: 2,
                        data_points: vec![
                            exp(18, 3, vec![1, 0, 7]),
                            // The negative buckets left out of the count.
                            exp(10, 3, vec![1, 0, 7]),
                            exp(18, 21, vec![1, 0, 7]),
                        ],
                    })),
                ),
                data(
                    "rtt",
                    Some(metric::Data::Summary(Summary {
                        data_points: vec![quantiles(&[0.5, 0.99]), quantiles(&[0.5, 1.5])],
                    })),
                ),
            ],
        ),
    )
    .await;
    assert_eq!(rejected, 7, "{message}");
    assert_eq!(
        message,
        "rejected 7 of 10 data points: \
         3 with histogram whose bucket counts (and zero count) do not add up to its count; \
         1 with histogram whose bucket_counts are not one more than its explicit_bounds (or both empty); \
         1 with histogram whose explicit_bounds are not strictly ascending (or NaN); \
         1 with exponential histogram scale outside -10..=20; \
         1 with summary quantile outside [0, 1]"
    );
    s.wait_for_count("SELECT sum(count) FROM otel_metrics_histogram", 6)
        .await;
    s.wait_for_count("SELECT sum(count) FROM otel_metrics_exp_histogram", 18)
        .await;
    s.wait_for_count("SELECT count(*) FROM otel_metrics_summary", 1)
        .await;
}

/// NaN and the infinities are doubles OTLP carries (a gauge may read NaN;
/// a histogram's sum, min and max are plain doubles): the data model does
/// not forbid them, so they are stored as sent and read back as sent, from
/// the write buffer and from Parquet.
#[tokio::test]
async fn nan_and_infinities_round_trip_through_parquet_and_queries() {
    let s = TestServer::start().await;
    let specials = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
    let mut h = hist(1, vec![1], vec![]);
    h.sum = Some(f64::NAN);
    h.min = Some(f64::NEG_INFINITY);
    h.max = Some(f64::INFINITY);
    let (rejected, message) = post_metrics(
        &s,
        metrics(
            "svc",
            vec![
                gauge(
                    "reading",
                    specials
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| number_point(T0 + i as u64, 0, Value::AsDouble(v), vec![]))
                        .collect(),
                ),
                data(
                    "latency",
                    Some(metric::Data::Histogram(Histogram {
                        aggregation_temporality: 2,
                        data_points: vec![h],
                    })),
                ),
            ],
        ),
    )
    .await;
    assert_eq!(rejected, 0, "{message}");
    use arrow::record_batch::RecordBatch;
    let check = |when: &str, gauge: Vec<RecordBatch>, hist: Vec<RecordBatch>| {
        let values: Vec<u64> = gauge
            .iter()
            .flat_map(|b| {
                let c = b.column(0).as_primitive::<Float64Type>();
                assert_eq!(c.null_count(), 0, "{when}");
                c.values().iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            })
            .collect();
        let want: Vec<u64> = specials.iter().map(|v| v.to_bits()).collect();
        assert_eq!(values, want, "{when}: gauge values");
        let hist = &hist[0];
        let col = |i: usize| hist.column(i).as_primitive::<Float64Type>().value(0);
        assert!(col(0).is_nan(), "{when}: sum");
        assert_eq!(col(1), f64::NEG_INFINITY, "{when}: min");
        assert_eq!(col(2), f64::INFINITY, "{when}: max");
    };
    let gauge_sql = "SELECT value FROM otel_metrics_gauge ORDER BY timestamp";
    let hist_sql = r#"SELECT "sum", "min", "max" FROM otel_metrics_histogram"#;
    s.wait_for_count("SELECT count(*) FROM otel_metrics_gauge", 3)
        .await;
    check("buffered", s.sql(gauge_sql).await, s.sql(hist_sql).await);
    s.flush().await;
    assert!(!crate::support::parquet_files(&s.parquet_dir()).is_empty());
    check("in Parquet", s.sql(gauge_sql).await, s.sql(hist_sql).await);
    // Queries see the values themselves: one NaN; Arrow compares doubles
    // by their total order, where NaN is above +Inf, so both are above
    // every finite value.
    s.wait_for_count(
        "SELECT count(*) FROM otel_metrics_gauge WHERE isnan(value)",
        1,
    )
    .await;
    s.wait_for_count(
        "SELECT count(*) FROM otel_metrics_gauge WHERE value > 1e308",
        2,
    )
    .await;
    s.wait_for_count(
        "SELECT count(*) FROM otel_metrics_gauge WHERE value < -1e308",
        1,
    )
    .await;
}
