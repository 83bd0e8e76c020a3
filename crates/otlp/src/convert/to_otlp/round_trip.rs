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
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, exemplar, exponential_histogram_data_point, metric, number_data_point,
    summary_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;

use super::{logs_to_otlp, metrics_to_otlp, spans_to_otlp};
use crate::convert::{convert_logs, convert_metrics, convert_traces};
use crate::json;
use crate::synth::Synth;
use tf_application::commands::ShardedCounterStore;
use tf_domain::TenantContext;

/// A small deterministic generator of the values synth leaves at defaults.
struct Fill(u64);

impl Fill {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn text(&mut self, what: &str) -> String {
        format!("{what}-{} \"é\"\n", self.next() % 1000)
    }

    fn double(&mut self) -> f64 {
        match self.next() % 6 {
            0 => -0.0,
            1 => f64::NAN,
            2 => f64::INFINITY,
            3 => 5e-324,
            _ => (self.next() % 1_000_000) as f64 / 7.0 - 50_000.0,
        }
    }

    /// A value of any kind, arrays and kvlists up to `depth` levels deep.
    fn value(&mut self, depth: u32) -> AnyValue {
        use any_value::Value as V;
        let kinds = if depth == 0 { 6 } else { 8 };
        let v = match self.next() % kinds {
            0 => V::StringValue(self.text("s")),
            1 => V::BoolValue(self.next().is_multiple_of(2)),
            2 => V::IntValue(self.next() as i64),
            3 => V::DoubleValue(self.double()),
            4 => V::BytesValue(self.next().to_le_bytes().to_vec()),
            5 => return AnyValue { value: None },
            6 => V::ArrayValue(ArrayValue {
                values: (0..self.next() % 3)
                    .map(|_| self.value(depth - 1))
                    .collect(),
            }),
            _ => V::KvlistValue(KeyValueList {
                values: (0..self.next() % 3)
                    .map(|i| self.kv(i, depth - 1))
                    .collect(),
            }),
        };
        AnyValue { value: Some(v) }
    }

    fn kv(&mut self, i: u64, depth: u32) -> KeyValue {
        KeyValue {
            key: format!("k{i}.{}", self.next() % 100),
            value: Some(self.value(depth)),
            key_strindex: 0,
        }
    }

    /// Attributes with distinct keys.
    fn attrs(&mut self) -> Vec<KeyValue> {
        (0..1 + self.next() % 4).map(|i| self.kv(i, 3)).collect()
    }

    fn resource(&mut self, r: &mut Option<Resource>) {
        let r = r.get_or_insert_with(Resource::default);
        r.attributes.extend(self.attrs());
        r.dropped_attributes_count = 1 + (self.next() % 9) as u32;
        r.entity_refs = vec![EntityRef {
            schema_url: self.text("https://schema"),
            r#type: "service".into(),
            id_keys: vec!["service.name".into(), "service.namespace".into()],
            description_keys: vec![self.text("d")],
        }];
    }

    fn scope(&mut self, s: &mut Option<InstrumentationScope>) {
        let s = s.get_or_insert_with(InstrumentationScope::default);
        s.version = self.text("v");
        s.attributes = self.attrs();
        s.dropped_attributes_count = 1 + (self.next() % 9) as u32;
    }

    fn exemplars(&mut self) -> Vec<Exemplar> {
        (0..self.next() % 3)
            .map(|i| Exemplar {
                filtered_attributes: self.attrs(),
                time_unix_nano: 1_700_000_000_000_000_000 + self.next() % 1_000_000,
                span_id: (self.next() | 1).to_le_bytes().to_vec(),
                trace_id: [(self.next() | 1).to_le_bytes(), self.next().to_le_bytes()].concat(),
                value: Some(if i % 2 == 0 {
                    exemplar::Value::AsInt(self.next() as i64)
                } else {
                    exemplar::Value::AsDouble(self.double())
                }),
            })
            .collect()
    }
}

fn every_field_traces(seed: u64) -> ExportTraceServiceRequest {
    let mut req = Synth::new(seed, 1_700_000_000_000_000_000).traces(24);
    let mut f = Fill(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    for rs in &mut req.resource_spans {
        f.resource(&mut rs.resource);
        rs.schema_url = f.text("https://r");
        for ss in &mut rs.scope_spans {
            f.scope(&mut ss.scope);
            ss.schema_url = f.text("https://s");
            for sp in &mut ss.spans {
                sp.trace_state = f.text("ts");
                sp.flags = (f.next() % 512) as u32;
                sp.attributes.extend(f.attrs());
                sp.dropped_attributes_count = 1 + (f.next() % 9) as u32;
                sp.events
                    .push(opentelemetry_proto::tonic::trace::v1::span::Event {
                        time_unix_nano: sp.start_time_unix_nano + 1,
                        name: f.text("event"),
                        attributes: f.attrs(),
                        dropped_attributes_count: 2,
                    });
                sp.dropped_events_count = 3;
                sp.links
                    .push(opentelemetry_proto::tonic::trace::v1::span::Link {
                        trace_id: sp.trace_id.clone(),
                        span_id: (f.next() | 1).to_le_bytes().to_vec(),
                        trace_state: f.text("lts"),
                        attributes: f.attrs(),
                        dropped_attributes_count: 4,
                        flags: 0x301,
                    });
                sp.dropped_links_count = 5;
                let status = sp.status.get_or_insert_with(Default::default);
                status.message = f.text("status");
            }
        }
    }
    req
}

fn every_field_logs(seed: u64) -> ExportLogsServiceRequest {
    let mut req = Synth::new(seed, 1_700_000_000_000_000_000).logs(24);
    let mut f = Fill(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    for rl in &mut req.resource_logs {
        f.resource(&mut rl.resource);
        rl.schema_url = f.text("https://r");
        for sl in &mut rl.scope_logs {
            f.scope(&mut sl.scope);
            sl.schema_url = f.text("https://s");
            for (i, r) in sl.log_records.iter_mut().enumerate() {
                r.body = Some(f.value(3));
                r.attributes.extend(f.attrs());
                r.dropped_attributes_count = 1 + (f.next() % 9) as u32;
                r.flags = 1;
                r.trace_id = [(f.next() | 1).to_le_bytes(), f.next().to_le_bytes()].concat();
                r.span_id = (f.next() | 1).to_le_bytes().to_vec();
                r.event_name = f.text("event");
                r.severity_text = f.text("sev");
                if i % 3 == 0 {
                    r.time_unix_nano = 0;
                }
            }
        }
    }
    req
}

fn every_field_metrics(seed: u64) -> ExportMetricsServiceRequest {
    let mut req = Synth::new(seed, 1_700_000_000_000_000_000).metrics(40);
    let mut f = Fill(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    for rm in &mut req.resource_metrics {
        f.resource(&mut rm.resource);
        rm.schema_url = f.text("https://r");
        for sm in &mut rm.scope_metrics {
            f.scope(&mut sm.scope);
            sm.schema_url = f.text("https://s");
            for m in &mut sm.metrics {
                m.description = f.text("desc");
                m.unit = "By".into();
                m.metadata = f.attrs();
                let flags = 1;
                match &mut m.data {
                    Some(metric::Data::Gauge(g)) => {
                        for p in &mut g.data_points {
                            p.exemplars = f.exemplars();
                            p.flags = flags;
                        }
                    }
                    Some(metric::Data::Sum(s)) => {
                        for p in &mut s.data_points {
                            p.exemplars = f.exemplars();
                            p.flags = flags;
                            if !s.is_monotonic {
                                p.value = Some(number_data_point::Value::AsDouble(f.double()));
                            }
                        }
                    }
                    Some(metric::Data::Histogram(h)) => {
                        for p in &mut h.data_points {
                            p.exemplars = f.exemplars();
                            p.flags = flags;
                            p.min = Some(-1.5);
                            p.max = Some(f.double());
                        }
                    }
                    Some(metric::Data::ExponentialHistogram(e)) => {
                        for p in &mut e.data_points {
                            p.exemplars = f.exemplars();
                            p.flags = flags;
                            p.zero_threshold = 1e-9;
                            p.negative = Some(exponential_histogram_data_point::Buckets {
                                offset: -3,
                                bucket_counts: vec![1, 0, 7],
                            });
                            p.min = Some(-2.0);
                            p.max = Some(9.5);
                        }
                    }
                    Some(metric::Data::Summary(s)) => {
                        for p in &mut s.data_points {
                            p.flags = flags;
                            p.quantile_values.push(summary_data_point::ValueAtQuantile {
                                quantile: 0.999,
                                value: f.double(),
                            });
                        }
                    }
                    None => {}
                }
            }
        }
    }
    req
}

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
            if r.time_unix_nano == 0 {
                r.time_unix_nano = r.observed_time_unix_nano;
            }
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
        let req = every_field_traces(seed);
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
        let req = every_field_logs(seed);
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
        let req = every_field_metrics(seed);
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
