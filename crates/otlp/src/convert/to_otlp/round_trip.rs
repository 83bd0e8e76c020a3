//! The round-trip property: requests with every field set, generated from
//! seeds, survive OTLP/JSON encode → decode → rows → OTLP, for traces, logs
//! and all five metric types. The protobuf path is the same walk: prost
//! gives back the identical request, checked too, and the rows come from it.
//!
//! Compared in the canonical form the stored rows define (see the module
//! docs of `to_otlp`): what [`canonical_traces`] & co. do to the original is
//! exactly the list of forms the rows do not tell apart. Ids compare as bytes
//! (their hex case is gone once decoded), attributes keep their order, and
//! int64 values compare as numbers whichever JSON form carried them.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Exemplar, exemplar, metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;

use super::{logs_to_otlp, metrics_to_otlp, spans_to_otlp};
use crate::convert::{convert_logs, convert_metrics, convert_traces};
use crate::json;
use crate::synth::every_field;
use tf_application::commands::ShardedCounterStore;
use tf_domain::TenantContext;

/// A value holding nothing inside kvlists comes back as an empty value.
fn canonical_value(v: &mut AnyValue) {
    match &mut v.value {
        Some(any_value::Value::KvlistValue(l)) => {
            for kv in &mut l.values {
                canonical_value(kv.value.get_or_insert_with(AnyValue::default));
            }
        }
        Some(any_value::Value::ArrayValue(a)) => a.values.iter_mut().for_each(canonical_value),
        _ => {}
    }
}

fn canonical_attrs(attrs: &mut [KeyValue]) {
    for kv in attrs {
        canonical_value(kv.value.get_or_insert_with(AnyValue::default));
    }
}

fn canonical_context(r: &mut Option<Resource>, scopes: Vec<&mut Option<InstrumentationScope>>) {
    canonical_attrs(&mut r.get_or_insert_with(Resource::default).attributes);
    for s in scopes {
        canonical_attrs(
            &mut s
                .get_or_insert_with(InstrumentationScope::default)
                .attributes,
        );
    }
}

fn canonical_traces(mut req: ExportTraceServiceRequest) -> ExportTraceServiceRequest {
    for rs in &mut req.resource_spans {
        canonical_context(
            &mut rs.resource,
            rs.scope_spans.iter_mut().map(|s| &mut s.scope).collect(),
        );
        for sp in rs.scope_spans.iter_mut().flat_map(|s| &mut s.spans) {
            canonical_attrs(&mut sp.attributes);
            sp.events
                .iter_mut()
                .for_each(|e| canonical_attrs(&mut e.attributes));
            sp.links
                .iter_mut()
                .for_each(|l| canonical_attrs(&mut l.attributes));
            sp.status.get_or_insert_with(Default::default);
        }
    }
    req
}

fn canonical_logs(mut req: ExportLogsServiceRequest) -> ExportLogsServiceRequest {
    for rl in &mut req.resource_logs {
        canonical_context(
            &mut rl.resource,
            rl.scope_logs.iter_mut().map(|s| &mut s.scope).collect(),
        );
        for r in rl.scope_logs.iter_mut().flat_map(|s| &mut s.log_records) {
            canonical_attrs(&mut r.attributes);
            match &mut r.body {
                Some(AnyValue { value: None }) => r.body = None,
                Some(b) => canonical_value(b),
                None => {}
            }
        }
    }
    req
}

fn canonical_exemplars(exemplars: &mut [Exemplar]) {
    for e in exemplars {
        canonical_attrs(&mut e.filtered_attributes);
        e.value.get_or_insert(exemplar::Value::AsDouble(0.0));
    }
}

fn canonical_metrics(mut req: ExportMetricsServiceRequest) -> ExportMetricsServiceRequest {
    for rm in &mut req.resource_metrics {
        canonical_context(
            &mut rm.resource,
            rm.scope_metrics.iter_mut().map(|s| &mut s.scope).collect(),
        );
        for m in rm.scope_metrics.iter_mut().flat_map(|s| &mut s.metrics) {
            canonical_attrs(&mut m.metadata);
            match &mut m.data {
                Some(metric::Data::Gauge(g)) => g.data_points.iter_mut().for_each(|p| {
                    canonical_attrs(&mut p.attributes);
                    canonical_exemplars(&mut p.exemplars);
                    p.value
                        .get_or_insert(number_data_point::Value::AsDouble(0.0));
                }),
                Some(metric::Data::Sum(s)) => s.data_points.iter_mut().for_each(|p| {
                    canonical_attrs(&mut p.attributes);
                    canonical_exemplars(&mut p.exemplars);
                    p.value
                        .get_or_insert(number_data_point::Value::AsDouble(0.0));
                }),
                Some(metric::Data::Histogram(h)) => h.data_points.iter_mut().for_each(|p| {
                    canonical_attrs(&mut p.attributes);
                    canonical_exemplars(&mut p.exemplars);
                }),
                Some(metric::Data::ExponentialHistogram(e)) => {
                    e.data_points.iter_mut().for_each(|p| {
                        canonical_attrs(&mut p.attributes);
                        canonical_exemplars(&mut p.exemplars);
                        p.positive.get_or_insert_with(Default::default);
                        p.negative.get_or_insert_with(Default::default);
                    })
                }
                Some(metric::Data::Summary(s)) => s
                    .data_points
                    .iter_mut()
                    .for_each(|p| canonical_attrs(&mut p.attributes)),
                None => {}
            }
        }
    }
    req
}

/// Equal as protobuf bytes (NaN equals NaN, -0.0 differs from 0.0).
#[track_caller]
fn assert_same<M: prost::Message + std::fmt::Debug>(got: &M, want: &M) {
    if got.encode_to_vec() != want.encode_to_vec() {
        panic!("differs:\n got: {got:?}\nwant: {want:?}");
    }
}

const SEEDS: u64 = 12;

#[test]
fn traces_round_trip_through_json_and_rows() {
    let ctx = TenantContext::default();
    for seed in 1..=SEEDS {
        let req = every_field::traces(seed);
        let from_json = json::decode_traces(&json::encode_traces(&req)).unwrap();
        assert_same(&from_json, &req);
        let from_proto = ExportTraceServiceRequest::decode(&*req.encode_to_vec()).unwrap();
        assert_same(&from_proto, &req);
        let c = convert_traces(&from_json, &ctx).unwrap();
        assert_eq!(c.summary.rejected(), 0, "{}", c.summary.rejection_message());
        let rows: Vec<_> = c.batches.into_iter().map(|b| b.batch).collect();
        assert_same(&spans_to_otlp(&rows).unwrap(), &canonical_traces(req));
    }
}

#[test]
fn logs_round_trip_through_json_and_rows() {
    let ctx = TenantContext::default();
    for seed in 1..=SEEDS {
        let req = every_field::logs(seed);
        let from_json = json::decode_logs(&json::encode_logs(&req)).unwrap();
        assert_same(&from_json, &req);
        let from_proto = ExportLogsServiceRequest::decode(&*req.encode_to_vec()).unwrap();
        assert_same(&from_proto, &req);
        let c = convert_logs(&from_json, &ctx).unwrap();
        assert_eq!(c.summary.rejected(), 0, "{}", c.summary.rejection_message());
        let rows: Vec<_> = c.batches.into_iter().map(|b| b.batch).collect();
        assert_same(&logs_to_otlp(&rows).unwrap(), &canonical_logs(req));
    }
}

#[test]
fn metrics_of_all_five_types_round_trip_through_json_and_rows() {
    let ctx = TenantContext::default();
    let mut kinds = [0usize; 5];
    for seed in 1..=SEEDS {
        let req = every_field::metrics(seed);
        for m in req
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
        {
            let k = match m.data {
                Some(metric::Data::Gauge(_)) => 0,
                Some(metric::Data::Sum(_)) => 1,
                Some(metric::Data::Histogram(_)) => 2,
                Some(metric::Data::ExponentialHistogram(_)) => 3,
                Some(metric::Data::Summary(_)) => 4,
                None => continue,
            };
            kinds[k] += 1;
        }
        let from_json = json::decode_metrics(&json::encode_metrics(&req)).unwrap();
        assert_same(&from_json, &req);
        let from_proto = ExportMetricsServiceRequest::decode(&*req.encode_to_vec()).unwrap();
        assert_same(&from_proto, &req);
        let counters = ShardedCounterStore::new(1000);
        let c = convert_metrics(&from_json, &ctx, &counters).unwrap();
        assert_eq!(c.summary.rejected(), 0, "{}", c.summary.rejection_message());
        assert_same(
            &metrics_to_otlp(&c.batches).unwrap(),
            &canonical_metrics(req),
        );
    }
    assert!(
        kinds.iter().all(|&n| n > 0),
        "every metric type generated: {kinds:?}"
    );
}
