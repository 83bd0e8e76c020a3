//! Traces, services, operations and logs in SQL.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::Array;
use async_trait::async_trait;

use super::{Where, rows};
use crate::engine::{DataFusionEngine, SqlParam};
use tf_application::ports::{QueryError, QueryLimits, QueryResult, TableSnapshot};
use tf_application::queries::TraceReadModel;
use tf_application::queries::params::TimeWindow;
use tf_application::queries::traces::{
    GetTraceQuery, Operation, OperationsQuery, SearchLogsQuery, SearchTracesQuery, ServicesQuery,
    TraceSummary,
};
use tf_domain::{Signal, Table};

/// Takes out of `tables` every file that lies wholly inside `window` and
/// records its service names, and returns those names with the file's
/// signal. What is left — files at the window's edges, files without
/// recorded names, rows not yet flushed — is for the statement to read.
/// So a service list over a long window reads a few files whatever the
/// store's age.
fn services_from_manifest(
    tables: &mut [(Table, TableSnapshot)],
    window: TimeWindow,
) -> Vec<(String, Signal)> {
    let mut known: BTreeMap<Signal, BTreeSet<String>> = BTreeMap::new();
    for (table, snapshot) in tables {
        let Some(signal) = table.signal() else {
            continue;
        };
        let names_of = known.entry(signal).or_default();
        snapshot.files.retain(|f| {
            let inside = f.min_ts >= window.start_ns && f.max_ts < window.end_ns;
            let Some(names) = f.services.as_ref().filter(|_| inside) else {
                return true;
            };
            for name in names.iter() {
                if !names_of.contains(name.as_str()) {
                    names_of.insert(name.clone());
                }
            }
            false
        });
    }
    known
        .into_iter()
        .flat_map(|(signal, names)| names.into_iter().map(move |name| (name, signal)))
        .collect()
}

#[async_trait]
impl TraceReadModel for DataFusionEngine {
    async fn trace_spans(
        &self,
        q: &GetTraceQuery,
        limits: &QueryLimits,
    ) -> Result<QueryResult, QueryError> {
        let mut params = vec![SqlParam::Utf8(q.trace_id.clone())];
        let mut sql = "SELECT * FROM otel_traces WHERE trace_id = $1".to_owned();
        if let Some(w) = &q.window {
            sql.push_str(" AND timestamp >= $2 AND timestamp < $3");
            params.push(SqlParam::TimestampNs(w.start_ns));
            params.push(SqlParam::TimestampNs(w.end_ns));
        }
        sql.push_str(" ORDER BY timestamp, span_id");
        self.query_with(q.ctx.tenant(), &sql, &params, limits).await
    }

    async fn search_traces(
        &self,
        q: &SearchTracesQuery,
        limits: &QueryLimits,
    ) -> Result<Vec<TraceSummary>, QueryError> {
        let mut w = Where::window(&q.window);
        if let Some(s) = &q.service {
            w.and("service_name = ?", SqlParam::Utf8(s.clone()));
        }
        if let Some(s) = &q.span_name {
            w.and("span_name = ?", SqlParam::Utf8(s.clone()));
        }
        if let Some(d) = q.min_duration_ns {
            w.and("duration_ns >= ?", SqlParam::Int64(d));
        }
        if let Some(s) = q.status {
            w.and("status_code = ?", SqlParam::Utf8(s.name().into()));
        }
        w.matchers(&q.filters, "span_attributes");
        let sql = format!(
            "WITH hits AS (\
               SELECT trace_id, max(timestamp) AS last_seen FROM otel_traces WHERE {filter} \
               GROUP BY trace_id ORDER BY last_seen DESC LIMIT {limit}) \
             SELECT t.trace_id AS trace_id, \
               first_value(t.service_name ORDER BY t.parent_span_id <> '', t.timestamp) AS root_service, \
               first_value(t.span_name ORDER BY t.parent_span_id <> '', t.timestamp) AS root_span, \
               min(CAST(t.timestamp AS BIGINT)) AS start_ns, \
               max(CAST(t.timestamp AS BIGINT) + t.duration_ns) AS end_ns, \
               CAST(count(*) AS BIGINT) AS span_count, \
               bool_or(t.status_code = 'Error') AS error, \
               array_to_string(array_sort(array_agg(DISTINCT t.service_name)), '\u{1f}') AS services \
             FROM otel_traces t JOIN hits h ON t.trace_id = h.trace_id \
             WHERE t.timestamp >= $1 AND t.timestamp < $2 \
             GROUP BY t.trace_id ORDER BY start_ns DESC, trace_id",
            filter = w.sql,
            limit = q.limit,
        );
        let result = self
            .query_with(q.ctx.tenant(), &sql, &w.params, limits)
            .await?;
        let mut out = Vec::new();
        for b in &result.batches {
            let id = rows::strings(b, "trace_id")?;
            let svc = rows::strings(b, "root_service")?;
            let span = rows::strings(b, "root_span")?;
            let start = rows::int64s(b, "start_ns")?;
            let end = rows::int64s(b, "end_ns")?;
            let count = rows::int64s(b, "span_count")?;
            let error = rows::bools(b, "error")?;
            let services = rows::strings(b, "services")?;
            for r in 0..b.num_rows() {
                out.push(TraceSummary {
                    trace_id: id.value(r).to_owned(),
                    root_service: rows::opt_str(&svc, r).unwrap_or("").to_owned(),
                    root_span: rows::opt_str(&span, r).unwrap_or("").to_owned(),
                    start_time_unix_nano: start.value(r),
                    duration_ms: (end.value(r) - start.value(r)) as f64 / 1e6,
                    span_count: count.value(r).max(0) as u64,
                    error: error.is_valid(r) && error.value(r),
                    services: rows::opt_str(&services, r)
                        .filter(|s| !s.is_empty())
                        .map(|s| s.split('\u{1f}').map(str::to_owned).collect())
                        .unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    async fn service_signals(
        &self,
        q: &ServicesQuery,
        limits: &QueryLimits,
    ) -> Result<Vec<(String, Signal)>, QueryError> {
        let w = Where::window(&q.window);
        let sql = Table::all()
            .into_iter()
            .filter_map(|table| {
                let signal = table.signal()?;
                Some(format!(
                    "SELECT DISTINCT service_name, '{signal}' AS signal FROM {table} WHERE {}",
                    w.sql,
                    signal = signal.name(),
                    table = table.name(),
                ))
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let window = q.window;
        let (result, mut out) = self
            .query_narrowed(q.ctx.tenant(), &sql, &w.params, limits, move |tables| {
                services_from_manifest(tables, window)
            })
            .await?;
        for b in &result.batches {
            let name = rows::strings(b, "service_name")?;
            let signal = rows::strings(b, "signal")?;
            for r in 0..b.num_rows() {
                let s = Signal::parse(signal.value(r)).map_err(QueryError::internal)?;
                out.push((name.value(r).to_owned(), s));
            }
        }
        Ok(out)
    }

    async fn operations(
        &self,
        q: &OperationsQuery,
        limits: &QueryLimits,
    ) -> Result<Vec<Operation>, QueryError> {
        let mut w = Where::window(&q.window);
        w.and("service_name = ?", SqlParam::Utf8(q.service.clone()));
        let sql = format!(
            "SELECT span_name, span_kind, CAST(count(*) AS BIGINT) AS spans, \
               CAST(sum(CASE WHEN status_code = 'Error' THEN 1 ELSE 0 END) AS BIGINT) AS errors, \
               avg(CAST(duration_ns AS DOUBLE)) / 1e6 AS avg_ms, \
               CAST(max(duration_ns) AS DOUBLE) / 1e6 AS max_ms \
             FROM otel_traces WHERE {} GROUP BY span_name, span_kind \
             ORDER BY span_name, span_kind",
            w.sql
        );
        let result = self
            .query_with(q.ctx.tenant(), &sql, &w.params, limits)
            .await?;
        let mut out = Vec::new();
        for b in &result.batches {
            let name = rows::strings(b, "span_name")?;
            let kind = rows::strings(b, "span_kind")?;
            let spans = rows::int64s(b, "spans")?;
            let errors = rows::int64s(b, "errors")?;
            let avg = rows::float64s(b, "avg_ms")?;
            let max = rows::float64s(b, "max_ms")?;
            for r in 0..b.num_rows() {
                out.push(Operation {
                    name: name.value(r).to_owned(),
                    span_kind: kind.value(r).to_owned(),
                    spans: spans.value(r).max(0) as u64,
                    errors: errors.value(r).max(0) as u64,
                    avg_duration_ms: avg.value(r),
                    max_duration_ms: max.value(r),
                });
            }
        }
        Ok(out)
    }

    async fn search_logs(
        &self,
        q: &SearchLogsQuery,
        limits: &QueryLimits,
    ) -> Result<QueryResult, QueryError> {
        let mut w = Where::window(&q.window);
        if let Some(s) = &q.service {
            w.and("service_name = ?", SqlParam::Utf8(s.clone()));
        }
        if let Some(n) = q.min_severity {
            w.and("severity_number >= ?", SqlParam::Int64(i64::from(n)));
        }
        if let Some(t) = &q.trace_id {
            w.and("trace_id = ?", SqlParam::Utf8(t.clone()));
        }
        if let Some(text) = &q.text {
            w.and(
                "strpos(lower(body), ?) > 0",
                SqlParam::Utf8(text.to_lowercase()),
            );
        }
        w.matchers(&q.filters, "log_attributes");
        let sql = format!(
            "SELECT * FROM otel_logs WHERE {} ORDER BY timestamp DESC LIMIT {}",
            w.sql, q.limit
        );
        self.query_with(q.ctx.tenant(), &sql, &w.params, limits)
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tf_application::ports::FileMeta;

    use super::*;

    fn file(path: &str, min_ts: i64, max_ts: i64, services: Option<&[&str]>) -> FileMeta {
        FileMeta {
            path: path.into(),
            size: 1,
            rows: 1,
            hour_start: 0,
            max_seq: 1,
            min_ts,
            max_ts,
            node: None,
            services: services.map(|s| s.iter().map(|&n| n.to_owned()).collect::<Arc<[String]>>()),
        }
    }

    #[test]
    fn files_inside_the_window_with_recorded_services_are_answered_from_the_manifest() {
        let window = TimeWindow {
            start_ns: 100,
            end_ns: 200,
        };
        let traces = TableSnapshot {
            files: vec![
                file("inside", 100, 199, Some(&["web", "api"])),
                file("past-the-end", 150, 200, Some(&["late"])),
                file("before-the-start", 99, 150, Some(&["early"])),
                file("unrecorded", 120, 130, None),
            ],
            batches: Vec::new(),
        };
        let logs = TableSnapshot {
            files: vec![
                file("logs-inside", 110, 120, Some(&["web"])),
                file("logs-outside", 300, 400, Some(&["gone"])),
            ],
            batches: Vec::new(),
        };
        let mut tables = vec![(Table::TRACES, traces), (Table::LOGS, logs)];
        let known = services_from_manifest(&mut tables, window);
        assert_eq!(
            known,
            vec![
                ("api".to_owned(), Signal::Traces),
                ("web".to_owned(), Signal::Traces),
                ("web".to_owned(), Signal::Logs),
            ]
        );
        let left: Vec<Vec<&str>> = tables
            .iter()
            .map(|(_, s)| s.files.iter().map(|f| f.path.as_str()).collect())
            .collect();
        assert_eq!(
            left,
            vec![
                vec!["past-the-end", "before-the-start", "unrecorded"],
                vec!["logs-outside"],
            ]
        );
    }
}
