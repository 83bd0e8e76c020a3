//! Requests with every OTLP field set: [`Synth`]'s realistic requests, with
//! everything it leaves at defaults filled in (ids on logs, trace state,
//! flags, events, links, dropped counts, entity refs, schema URLs, metric
//! metadata, exemplars, min/max, negative buckets, nested AnyValues with
//! special doubles and non-ASCII text). For round-trip tests and fuzz seeds;
//! the same seed gives the same request.

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

use super::{Rng, Synth};

/// Fills in the values synth leaves at defaults.
struct Fill(Rng);

impl Fill {
    fn next(&mut self) -> u64 {
        self.0.next()
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

pub fn traces(seed: u64) -> ExportTraceServiceRequest {
    let mut req = Synth::new(seed, 1_700_000_000_000_000_000).traces(24);
    let mut f = Fill(Rng::new(seed ^ 0xF111));
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

pub fn logs(seed: u64) -> ExportLogsServiceRequest {
    let mut req = Synth::new(seed, 1_700_000_000_000_000_000).logs(24);
    let mut f = Fill(Rng::new(seed ^ 0xF111));
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

pub fn metrics(seed: u64) -> ExportMetricsServiceRequest {
    let mut req = Synth::new(seed, 1_700_000_000_000_000_000).metrics(40);
    let mut f = Fill(Rng::new(seed ^ 0xF111));
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
                            // The count covers every bucket, the new ones too.
                            p.count = p.zero_count
                                + [&p.positive, &p.negative]
                                    .into_iter()
                                    .flatten()
                                    .flat_map(|b| &b.bucket_counts)
                                    .sum::<u64>();
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
