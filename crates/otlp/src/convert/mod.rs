//! OTLP (prost types) → validated Arrow record batches, and back
//! (`to_otlp`: rows → OTLP for every table).
//!
//! One pass per request: every item goes through its batch aggregate's rules
//! (`domain::telemetry::{SpanBatch, MetricBatch, LogBatch}`) and, when
//! admitted, straight into column builders. Nothing is allocated per item
//! beyond what Arrow's builders grow.

mod columns;
mod logs;
mod metrics;
mod to_otlp;
mod traces;

pub use columns::render_any_value;
pub use logs::{convert_logs, convert_logs_received};
pub use metrics::{convert_metrics, data_points};
pub use to_otlp::{logs_to_otlp, metrics_to_otlp, spans_to_otlp};
pub use traces::convert_traces;

use arrow::array::ArrayRef;
use arrow::record_batch::RecordBatch;

use tf_application::TableBatch;
use tf_domain::Table;
use tf_domain::telemetry::BatchSummary;
use tf_schema::table_schema;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Column construction failed: a bug, not bad input.
    #[error("building Arrow columns: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Rows → OTLP: a column is missing or of a type that cannot be read.
    #[error("column `{column}`: {message}")]
    Column { column: String, message: String },
    /// Rows → OTLP: a row holds a value that does not convert back
    /// (bad hex id, unknown enum name, a value that does not parse as its
    /// recorded attribute type, a negative time).
    #[error("batch {batch}, row {row}, column `{column}`: {message}")]
    MalformedRow {
        batch: usize,
        row: usize,
        column: String,
        message: String,
    },
}

pub type Result<T, E = ConvertError> = std::result::Result<T, E>;

/// A converted request: the aggregate's outcome and the accepted rows.
#[derive(Debug)]
pub struct Converted {
    pub summary: BatchSummary,
    pub batches: Vec<TableBatch>,
}

/// Builds a table's record batch, first handing back what the builders
/// over-allocated (they start at 1024 items and grow by doubling): while
/// buffered, a small request's batch would otherwise hold several times its
/// size. Shrinking reallocates in place; nothing is copied.
pub(crate) fn finish_batch(table: Table, mut columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    for c in &mut columns {
        arrow::array::Array::shrink_to_fit(c);
    }
    Ok(RecordBatch::try_new(table_schema(table), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::Synth;
    use tf_application::commands::ShardedCounterStore;
    use tf_domain::TenantContext;

    /// A value nested `levels` kvlists deep: its deepest `AnyValue` sits at
    /// depth `levels`.
    fn nested_kvlist(levels: u32) -> opentelemetry_proto::tonic::common::v1::AnyValue {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, KeyValueList, any_value};
        let mut v = AnyValue {
            value: Some(any_value::Value::BoolValue(true)),
        };
        for _ in 0..levels {
            v = AnyValue {
                value: Some(any_value::Value::KvlistValue(KeyValueList {
                    values: vec![KeyValue {
                        key: "k".into(),
                        value: Some(v),
                        key_strindex: 0,
                    }],
                })),
            };
        }
        v
    }

    /// One nesting limit: what the converter admits, prost can decode at the
    /// deepest position an `AnyValue` can take (an exemplar's filtered
    /// attribute), the JSON decoder accepts, and the stored form reads back.
    #[test]
    fn one_nesting_limit_for_every_protocol() {
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
        use opentelemetry_proto::tonic::common::v1::KeyValue;
        use opentelemetry_proto::tonic::metrics::v1::{
            Exemplar, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric,
            number_data_point,
        };
        use prost::Message;
        use tf_application::commands::ShardedCounterStore;
        use tf_domain::telemetry::{MAX_ANY_VALUE_DEPTH, Rejection};

        let request = |levels: u32| ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "m".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                time_unix_nano: 1_700_000_000_000_000_000,
                                value: Some(number_data_point::Value::AsInt(1)),
                                exemplars: vec![Exemplar {
                                    filtered_attributes: vec![KeyValue {
                                        key: "deep".into(),
                                        value: Some(nested_kvlist(levels)),
                                        key_strindex: 0,
                                    }],
                                    ..Exemplar::default()
                                }],
                                ..NumberDataPoint::default()
                            }],
                        })),
                        ..Metric::default()
                    }],
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }],
        };
        let ctx = TenantContext::default();
        let counters = ShardedCounterStore::new(1000);

        let deepest_allowed = request(MAX_ANY_VALUE_DEPTH - 1);
        let wire = deepest_allowed.encode_to_vec();
        let decoded = ExportMetricsServiceRequest::decode(wire.as_slice())
            .expect("prost decodes the deepest value we accept");
        assert_eq!(decoded, deepest_allowed);
        let json = crate::json::encode_metrics(&deepest_allowed);
        assert_eq!(crate::json::decode_metrics(&json).unwrap(), deepest_allowed);
        let c = convert_metrics(&decoded, &ctx, &counters).unwrap();
        assert_eq!((c.summary.accepted(), c.summary.rejected()), (1, 0));

        let too_deep = request(MAX_ANY_VALUE_DEPTH);
        let c = convert_metrics(&too_deep, &ctx, &counters).unwrap();
        assert_eq!((c.summary.accepted(), c.summary.rejected()), (0, 1));
        assert_eq!(c.summary.rejections().count(Rejection::ValueTooDeep), 1);
        assert!(c.batches.is_empty());
        let json = crate::json::encode_metrics(&too_deep);
        let err = crate::json::decode_metrics(&json).unwrap_err().to_string();
        assert!(err.contains("maximum depth"), "{err}");
    }

    /// Buffered memory is close to the data, not to the builders' capacity.
    /// Measured: a 512-point, 5-table metrics request took 1,028 KB of Arrow
    /// memory before shrinking and 335 KB after (protobuf: 95 KB; the rest is
    /// resource and scope attributes repeated per row).
    #[test]
    fn converted_batches_do_not_hold_builder_slack() {
        use prost::Message;
        let ctx = TenantContext::default();
        let counters = ShardedCounterStore::new(1000);
        let mut synth = Synth::new(3, 1_795_687_200_000_000_000);
        let req = synth.metrics(512);
        let proto = req.encode_to_vec().len();
        let c = convert_metrics(&req, &ctx, &counters).unwrap();
        assert_eq!(c.batches.len(), 5);
        let arrow: usize = c
            .batches
            .iter()
            .map(|b| b.batch.get_array_memory_size())
            .sum();
        assert!(
            arrow < 4 * proto,
            "metrics: arrow {arrow} B vs protobuf {proto} B"
        );
        let req = synth.traces(512);
        let proto = req.encode_to_vec().len();
        let arrow: usize = convert_traces(&req, &ctx)
            .unwrap()
            .batches
            .iter()
            .map(|b| b.batch.get_array_memory_size())
            .sum();
        assert!(
            arrow < 3 * proto,
            "traces: arrow {arrow} B vs protobuf {proto} B"
        );
    }
}

#[cfg(test)]
mod hostile_tests;
