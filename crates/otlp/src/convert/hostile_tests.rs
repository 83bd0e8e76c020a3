//! What the converters do with items that are well-formed protobuf but
//! could not be stored as sent: each is rejected with its reason, and the
//! items beside it are stored unchanged. Values that can be stored as sent
//! (NaN and infinities) are, bit for bit.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, TimestampNanosecondType, UInt64Type};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exemplar, exponential_histogram_data_point, metric, number_data_point,
    summary_data_point,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};

use super::{Converted, convert_logs, convert_metrics, convert_traces};
use tf_application::commands::ShardedCounterStore;
use tf_domain::telemetry::Rejection;
use tf_domain::{Table, TenantContext};

const T0: u64 = 1_767_225_600_000_000_000;
/// The first nanosecond storage cannot hold.
const LATE: u64 = i64::MAX as u64 + 1;

fn metrics_request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metric(name: &str, data: Option<metric::Data>) -> Metric {
    Metric {
        name: name.into(),
        data,
        ..Default::default()
    }
}

fn convert(metrics: Vec<Metric>) -> Converted {
    let counters = ShardedCounterStore::new(100);
    convert_metrics(
        &metrics_request(metrics),
        &TenantContext::default(),
        &counters,
    )
    .unwrap()
}

fn number(time: u64, start: u64, v: f64) -> NumberDataPoint {
    NumberDataPoint {
        time_unix_nano: time,
        start_time_unix_nano: start,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

fn gauge(points: Vec<NumberDataPoint>) -> Option<metric::Data> {
    Some(metric::Data::Gauge(Gauge {
        data_points: points,
    }))
}

fn histogram(points: Vec<HistogramDataPoint>) -> Option<metric::Data> {
    Some(metric::Data::Histogram(Histogram {
        data_points: points,
        aggregation_temporality: 2,
    }))
}

fn hist_point(count: u64, buckets: Vec<u64>, bounds: Vec<f64>) -> HistogramDataPoint {
    HistogramDataPoint {
        time_unix_nano: T0,
        count,
        sum: Some(1.0),
        bucket_counts: buckets,
        explicit_bounds: bounds,
        ..Default::default()
    }
}

fn exp_point(
    count: u64,
    scale: i32,
    zero: u64,
    pos: Vec<u64>,
    neg: Vec<u64>,
) -> ExponentialHistogramDataPoint {
    let buckets = |counts: Vec<u64>| {
        Some(exponential_histogram_data_point::Buckets {
            offset: 0,
            bucket_counts: counts,
        })
    };
    ExponentialHistogramDataPoint {
        time_unix_nano: T0,
        count,
        scale,
        zero_count: zero,
        positive: buckets(pos),
        negative: buckets(neg),
        ..Default::default()
    }
}

fn summary_point(quantiles: &[f64]) -> SummaryDataPoint {
    SummaryDataPoint {
        time_unix_nano: T0,
        count: 3,
        sum: 6.0,
        quantile_values: quantiles
            .iter()
            .map(|&q| summary_data_point::ValueAtQuantile {
                quantile: q,
                value: 2.0,
            })
            .collect(),
        ..Default::default()
    }
}

fn rows(c: &Converted, table: Table) -> usize {
    c.batches
        .iter()
        .filter(|b| b.table == table)
        .map(|b| b.batch.num_rows())
        .sum()
}

fn assert_summary(c: &Converted, accepted: u64, rejected: &[(Rejection, u64)]) {
    let s = &c.summary;
    let total: u64 = rejected.iter().map(|r| r.1).sum();
    assert_eq!(
        (s.accepted(), s.rejected()),
        (accepted, total),
        "{}",
        s.rejection_message()
    );
    for &(r, n) in rejected {
        assert_eq!(
            s.rejections().count(r),
            n,
            "{r:?}: {}",
            s.rejection_message()
        );
    }
    let stored: u64 = c.batches.iter().map(|b| b.batch.num_rows() as u64).sum();
    assert_eq!(stored, accepted);
}

#[test]
fn a_metric_without_data_points_is_rejected_not_dropped() {
    let c = convert(vec![
        metric("no.data", None),
        metric("no.gauge.points", gauge(vec![])),
        metric(
            "no.sum.points",
            Some(metric::Data::Sum(Sum {
                data_points: vec![],
                aggregation_temporality: 2,
                is_monotonic: true,
            })),
        ),
        metric("no.histogram.points", histogram(vec![])),
        metric(
            "no.exp.points",
            Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![],
                aggregation_temporality: 2,
            })),
        ),
        metric(
            "no.summary.points",
            Some(metric::Data::Summary(Summary {
                data_points: vec![],
            })),
        ),
        // Even under a name the naming rule refuses: there is no point to
        // reject for its name.
        metric("9 bad name", None),
        metric("ok", gauge(vec![number(T0, 0, 1.0)])),
    ]);
    assert_summary(&c, 1, &[(Rejection::NoDataPoints, 7)]);
    assert_eq!(c.summary.received(), 8);
    assert_eq!(c.summary.metric_names(), ["ok"]);
    assert!(
        c.summary
            .rejection_message()
            .contains("7 with metric without data points"),
        "{}",
        c.summary.rejection_message()
    );
}

#[test]
fn timestamps_beyond_2262_are_rejected_not_clamped() {
    let ex = |time| Exemplar {
        time_unix_nano: time,
        value: Some(exemplar::Value::AsDouble(1.0)),
        ..Default::default()
    };
    let mut with_late_exemplar = number(T0, 0, 3.0);
    with_late_exemplar.exemplars = vec![ex(T0), ex(u64::MAX)];
    let mut late_hist = hist_point(1, vec![1], vec![]);
    late_hist.start_time_unix_nano = LATE;
    let c = convert(vec![
        metric(
            "g",
            gauge(vec![
                number(LATE, 0, 1.0),
                number(T0, LATE, 2.0),
                with_late_exemplar,
                // The last nanosecond storage holds, and 0 ("unknown").
                number(i64::MAX as u64, 0, 4.0),
                number(0, 0, 5.0),
            ]),
        ),
        metric(
            "c",
            Some(metric::Data::Sum(Sum {
                data_points: vec![number(LATE, 1, 1.0), number(T0, 1, 2.0)],
                aggregation_temporality: 2,
                is_monotonic: true,
            })),
        ),
        metric("h", histogram(vec![late_hist])),
    ]);
    assert_summary(&c, 3, &[(Rejection::TimestampOutOfRange, 5)]);
    let gauge = &c
        .batches
        .iter()
        .find(|b| b.table == Table::METRICS_GAUGE)
        .unwrap()
        .batch;
    let ts = gauge.column_by_name("timestamp").unwrap();
    let ts = ts.as_primitive::<TimestampNanosecondType>();
    assert_eq!(ts.values().to_vec(), [i64::MAX, 0]);
    assert!(
        c.summary
            .rejection_message()
            .contains("5 with timestamp beyond 2262-04-11"),
        "{}",
        c.summary.rejection_message()
    );

    let span = |start, end, event: Option<u64>| Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "s".into(),
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        events: event
            .map(|t| span::Event {
                time_unix_nano: t,
                name: "e".into(),
                ..Default::default()
            })
            .into_iter()
            .collect(),
        ..Default::default()
    };
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![
                    span(T0, LATE, None),
                    span(LATE, u64::MAX, None),
                    span(T0, T0 + 1, Some(LATE)),
                    span(T0, i64::MAX as u64, Some(T0)),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let c = convert_traces(&req, &TenantContext::default()).unwrap();
    assert_summary(&c, 1, &[(Rejection::TimestampOutOfRange, 3)]);

    let log = |time, observed| LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: observed,
        ..Default::default()
    };
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![log(LATE, T0), log(T0, LATE), log(0, LATE), log(T0, 0)],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let c = convert_logs(&req, &TenantContext::default()).unwrap();
    assert_summary(&c, 1, &[(Rejection::TimestampOutOfRange, 3)]);
}

#[test]
fn inconsistent_distributions_are_rejected_with_their_reason() {
    let c = convert(vec![
        metric(
            "h",
            histogram(vec![
                hist_point(6, vec![1, 2, 3], vec![1.0, 2.0]),
                hist_point(9, vec![], vec![]),
                hist_point(7, vec![1, 2, 3], vec![1.0, 2.0]),
                hist_point(u64::MAX, vec![u64::MAX, 1], vec![1.0]),
                hist_point(6, vec![1, 2, 3], vec![1.0]),
                hist_point(0, vec![], vec![1.0, 2.0]),
                hist_point(6, vec![1, 2, 3], vec![2.0, 1.0]),
                hist_point(6, vec![1, 2, 3], vec![f64::NAN, 2.0]),
            ]),
        ),
        metric(
            "e",
            Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![
                    exp_point(18, 3, 1, vec![1, 2, 3, 2, 1], vec![1, 0, 7]),
                    exp_point(10, 3, 1, vec![1, 2, 3, 2, 1], vec![1, 0, 7]),
                    exp_point(0, 0, u64::MAX, vec![1], vec![]),
                    exp_point(0, 21, 0, vec![], vec![]),
                    exp_point(0, -11, 0, vec![], vec![]),
                ],
                aggregation_temporality: 2,
            })),
        ),
        metric(
            "s",
            Some(metric::Data::Summary(Summary {
                data_points: vec![
                    summary_point(&[0.0, 0.5, 1.0]),
                    summary_point(&[0.5, 1.5]),
                    summary_point(&[f64::NAN]),
                    summary_point(&[-0.01]),
                ],
            })),
        ),
    ]);
    assert_summary(
        &c,
        4,
        &[
            (Rejection::HistogramCountMismatch, 4),
            (Rejection::HistogramBucketsMismatch, 2),
            (Rejection::HistogramBoundsNotAscending, 2),
            (Rejection::ExponentialScaleOutOfRange, 2),
            (Rejection::QuantileOutOfRange, 3),
        ],
    );
    assert_eq!(rows(&c, Table::METRICS_HISTOGRAM), 2);
    assert_eq!(rows(&c, Table::METRICS_EXP_HISTOGRAM), 1);
    assert_eq!(rows(&c, Table::METRICS_SUMMARY), 1);
    let hist = &c
        .batches
        .iter()
        .find(|b| b.table == Table::METRICS_HISTOGRAM)
        .unwrap()
        .batch;
    let count = hist.column_by_name("count").unwrap();
    assert_eq!(count.as_primitive::<UInt64Type>().values().to_vec(), [6, 9]);
    let message = c.summary.rejection_message();
    for part in [
        "4 with histogram whose bucket counts (and zero count) do not add up to its count",
        "2 with histogram whose bucket_counts are not one more than its explicit_bounds",
        "2 with histogram whose explicit_bounds are not strictly ascending",
        "2 with exponential histogram scale outside -10..=20",
        "3 with summary quantile outside [0, 1]",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
}

/// NaN and the infinities are values OTLP carries (a gauge may read NaN,
/// a histogram's sum, min and max are doubles): they are stored as sent.
#[test]
fn non_finite_doubles_are_stored_bit_for_bit() {
    let specials = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0];
    let mut h = hist_point(1, vec![1], vec![]);
    h.sum = Some(f64::NAN);
    h.min = Some(f64::NEG_INFINITY);
    h.max = Some(f64::INFINITY);
    let mut e = exp_point(1, 0, 1, vec![], vec![]);
    e.sum = Some(f64::INFINITY);
    e.min = Some(f64::NAN);
    e.max = Some(f64::NAN);
    let c = convert(vec![
        metric(
            "g",
            gauge(specials.iter().map(|&v| number(T0, 0, v)).collect()),
        ),
        metric("h", histogram(vec![h])),
        metric(
            "e",
            Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![e],
                aggregation_temporality: 2,
            })),
        ),
    ]);
    assert_summary(&c, 6, &[]);
    let column = |table: Table, name: &str| -> Vec<u64> {
        let b = &c.batches.iter().find(|b| b.table == table).unwrap().batch;
        let col = b.column_by_name(name).unwrap();
        let col = col.as_primitive::<Float64Type>();
        assert_eq!(col.null_count(), 0, "{name}");
        col.values().iter().map(|v| v.to_bits()).collect()
    };
    let bits = |vs: &[f64]| vs.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(column(Table::METRICS_GAUGE, "value"), bits(&specials));
    assert_eq!(column(Table::METRICS_HISTOGRAM, "sum"), bits(&[f64::NAN]));
    assert_eq!(
        column(Table::METRICS_HISTOGRAM, "min"),
        bits(&[f64::NEG_INFINITY])
    );
    assert_eq!(
        column(Table::METRICS_HISTOGRAM, "max"),
        bits(&[f64::INFINITY])
    );
    assert_eq!(
        column(Table::METRICS_EXP_HISTOGRAM, "sum"),
        bits(&[f64::INFINITY])
    );
    assert_eq!(
        column(Table::METRICS_EXP_HISTOGRAM, "min"),
        bits(&[f64::NAN])
    );
}
