//! Rows → OTLP: the inverse of the converters, for every table. Forwarding
//! and the OTLP form of query results use it.
//!
//! Rows are grouped by resource (attributes and their types, dropped count,
//! schema URL, entity refs) and, within those, by scope (name, version,
//! attributes, dropped count, schema URL), in order of first appearance;
//! items keep their row order. Metric rows are further grouped into metrics by
//! name, description, unit, metadata, type, temporality and monotonicity. Typed
//! attribute values are rebuilt from the value map and the companion type map
//! (see `columns::render_any_value`). `service_name` and `workspace_id` are
//! not read: `service.name` is kept in the resource attributes.
//!
//! What the rows cannot tell apart comes back in one form:
//!
//! * a resource, scope or span status is always present (`Some`), possibly
//!   empty, as every OTLP SDK sends them;
//! * an attribute whose value is absent comes back as an `AnyValue` holding
//!   no value (both are stored as type `empty`), and so does a kvlist entry's
//!   inside arrays and kvlists;
//! * a `KeyValue`'s `key_strindex` (profiles only) is not stored;
//! * span kinds and status codes outside the enums are stored as
//!   `Unspecified` / `Unset` (timestamps past year 2262 are never stored:
//!   the converters reject them);
//! * identical resources (or scopes) in separate `Resource*` (`Scope*`)
//!   messages of one request come back merged, and empty ones are not stored;
//! * duplicate attribute keys (which OTLP forbids) with both string and
//!   non-string values are ambiguous in the stored form: the type map names
//!   the key, not the position. Such rows can fail as malformed;
//! * a log record's time is always set: a record that had none was stored
//!   under its observed time, and comes back with that as its time;
//! * a number data point or exemplar without a value comes back as the
//!   double 0; an exponential histogram's absent bucket range comes back as
//!   an empty one (`Some`, offset 0);
//! * identical metrics in separate `ScopeMetrics` come back as one metric.
//!
//! Malformed rows (bad hex, unknown enum names, values that do not parse as
//! their recorded type, negative times) are [`ConvertError::MalformedRow`]s;
//! missing columns or columns of an unusable type are
//! [`ConvertError::Column`]s. Nothing here panics on row data.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo
    )
)]

mod logs;
mod metrics;
mod traces;
mod values;

#[cfg(test)]
mod round_trip;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

use super::{ConvertError, Result};
use tf_application::TableBatch;
use tf_domain::Table;
use values::{AttrCols, Bad, Columns, Entries, attributes, entity_refs_from_json, prim, string};

/// Rebuilds an OTLP trace export request from rows of `otel_traces`.
/// Columns are found by name, in any order; every column of the schema
/// except `workspace_id` and `service_name` is required, and one of another
/// type is cast to the schema's type when Arrow can (e.g. `Utf8View`).
pub fn spans_to_otlp(batches: &[RecordBatch]) -> Result<ExportTraceServiceRequest> {
    let tables: Vec<_> = batches.iter().map(|b| (Table::TRACES, b)).collect();
    let groups = read_groups::<traces::SpanRows>(&tables)?;
    Ok(ExportTraceServiceRequest {
        resource_spans: groups
            .into_iter()
            .map(|r| ResourceSpans {
                resource: Some(r.resource),
                scope_spans: r
                    .scopes
                    .into_iter()
                    .map(|s| ScopeSpans {
                        scope: Some(s.scope),
                        spans: s.items,
                        schema_url: s.schema_url,
                    })
                    .collect(),
                schema_url: r.schema_url,
            })
            .collect(),
    })
}

/// Rebuilds an OTLP logs export request from rows of `otel_logs` (see
/// [`spans_to_otlp`] for how columns are found).
pub fn logs_to_otlp(batches: &[RecordBatch]) -> Result<ExportLogsServiceRequest> {
    let tables: Vec<_> = batches.iter().map(|b| (Table::LOGS, b)).collect();
    let groups = read_groups::<logs::LogRows>(&tables)?;
    Ok(ExportLogsServiceRequest {
        resource_logs: groups
            .into_iter()
            .map(|r| ResourceLogs {
                resource: Some(r.resource),
                scope_logs: r
                    .scopes
                    .into_iter()
                    .map(|s| ScopeLogs {
                        scope: Some(s.scope),
                        log_records: s.items,
                        schema_url: s.schema_url,
                    })
                    .collect(),
                schema_url: r.schema_url,
            })
            .collect(),
    })
}

/// Rebuilds an OTLP metrics export request from rows of the five metric
/// tables, in any mix (see [`spans_to_otlp`] for how columns are found).
/// Batches of other tables are an error.
pub fn metrics_to_otlp(batches: &[TableBatch]) -> Result<ExportMetricsServiceRequest> {
    let mut tables = Vec::with_capacity(batches.len());
    for b in batches {
        if matches!(b.table, Table::TRACES | Table::LOGS) {
            return Err(ConvertError::Column {
                column: b.table.name().to_owned(),
                message: "not a metric table".to_owned(),
            });
        }
        tables.push((b.table, &b.batch));
    }
    let groups = read_groups::<metrics::PointRows>(&tables)?;
    Ok(metrics::assemble(groups))
}

// ---------------------------------------------------------------------------
// Resource and scope grouping, shared by every table
// ---------------------------------------------------------------------------

/// The rows of one batch of a table, read item by item.
trait Rows: Sized {
    type Item;
    fn new(c: &Columns<'_>, table: Table) -> Result<Self>;
    fn item(&self, row: usize) -> Result<Self::Item, Bad>;
}

/// Items of one scope.
struct Scoped<I> {
    scope: InstrumentationScope,
    schema_url: String,
    items: Vec<I>,
}

/// Scopes of one resource.
struct Resourced<I> {
    resource: Resource,
    schema_url: String,
    scopes: Vec<Scoped<I>>,
}

/// The resource and scope columns every table has.
struct ContextCols {
    resource_attrs: AttrCols,
    resource_dropped: arrow::array::UInt32Array,
    resource_schema_url: arrow::array::StringArray,
    resource_entity_refs: arrow::array::StringArray,
    scope_name: arrow::array::StringArray,
    scope_version: arrow::array::StringArray,
    scope_attrs: AttrCols,
    scope_dropped: arrow::array::UInt32Array,
    scope_schema_url: arrow::array::StringArray,
}

impl ContextCols {
    fn new(c: &Columns<'_>) -> Result<Self> {
        Ok(Self {
            resource_attrs: c.attrs("resource_")?,
            resource_dropped: c.prims("resource_dropped_attributes_count")?,
            resource_schema_url: c.strings("resource_schema_url")?,
            resource_entity_refs: c.strings("resource_entity_refs")?,
            scope_name: c.strings("scope_name")?,
            scope_version: c.strings("scope_version")?,
            scope_attrs: c.attrs("scope_")?,
            scope_dropped: c.prims("scope_dropped_attributes_count")?,
            scope_schema_url: c.strings("scope_schema_url")?,
        })
    }
}

impl ContextCols {
    /// Whether rows `i` and `j` have the same resource and scope (`false`
    /// when a value is null: the full path reports it).
    fn same_context(&self, i: usize, j: usize) -> bool {
        let eq = |a: &arrow::array::StringArray| matches!((string(a, i, ""), string(a, j, "")), (Ok(x), Ok(y)) if x == y);
        let eq_u32 = |a: &arrow::array::UInt32Array| matches!((prim(a, i, ""), prim(a, j, "")), (Ok(x), Ok(y)) if x == y);
        eq_u32(&self.resource_dropped)
            && eq_u32(&self.scope_dropped)
            && eq(&self.scope_name)
            && eq(&self.scope_version)
            && eq(&self.resource_schema_url)
            && eq(&self.scope_schema_url)
            && eq(&self.resource_entity_refs)
            && self.resource_attrs.same(i, j)
            && self.scope_attrs.same(i, j)
    }
}

/// What identifies a resource: attributes, their types, dropped count,
/// schema URL, entity refs.
type ResourceKey<'a> = (Entries<'a>, Entries<'a>, u32, &'a str, &'a str);

/// What identifies a scope: name, version, attributes, their types, dropped
/// count, schema URL.
type ScopeKey<'a> = (&'a str, &'a str, Entries<'a>, Entries<'a>, u32, &'a str);

struct Grouper<'a, I> {
    /// The previous row's columns, row, resource and scope: consecutive rows
    /// of one request mostly share both, found without building a key.
    last: Option<(&'a ContextCols, usize, usize, usize)>,
    resources: Vec<Resourced<I>>,
    resource_index: HashMap<ResourceKey<'a>, usize>,
    /// Per resource: scope → index in that resource's `scopes`.
    scope_index: Vec<HashMap<ScopeKey<'a>, usize>>,
}

impl<'a, I> Grouper<'a, I> {
    fn new() -> Self {
        Self {
            last: None,
            resources: Vec::new(),
            resource_index: HashMap::new(),
            scope_index: Vec::new(),
        }
    }

    fn push(&mut self, c: &'a ContextCols, row: usize, item: I) -> Result<(), Bad> {
        if let Some((last_c, last_row, r, s)) = self.last
            && std::ptr::eq(last_c, c)
            && c.same_context(last_row, row)
            && let Some(scope) = self.resources.get_mut(r).and_then(|x| x.scopes.get_mut(s))
        {
            scope.items.push(item);
            self.last = Some((c, row, r, s));
            return Ok(());
        }
        let rkey: ResourceKey<'a> = (
            c.resource_attrs.entries(row)?,
            c.resource_attrs.type_entries(row)?,
            prim(
                &c.resource_dropped,
                row,
                "resource_dropped_attributes_count",
            )?,
            string(&c.resource_schema_url, row, "resource_schema_url")?,
            string(&c.resource_entity_refs, row, "resource_entity_refs")?,
        );
        let r = match self.resource_index.get(&rkey) {
            Some(&r) => r,
            None => {
                let (attrs, types, dropped, schema_url, entity_refs) = &rkey;
                self.resources.push(Resourced {
                    resource: Resource {
                        attributes: attributes(attrs, types, "resource_attributes")?,
                        dropped_attributes_count: *dropped,
                        entity_refs: entity_refs_from_json(entity_refs)?,
                    },
                    schema_url: (*schema_url).to_owned(),
                    scopes: Vec::new(),
                });
                self.scope_index.push(HashMap::new());
                let r = self.resources.len() - 1;
                self.resource_index.insert(rkey, r);
                r
            }
        };

        let skey: ScopeKey<'a> = (
            string(&c.scope_name, row, "scope_name")?,
            string(&c.scope_version, row, "scope_version")?,
            c.scope_attrs.entries(row)?,
            c.scope_attrs.type_entries(row)?,
            prim(&c.scope_dropped, row, "scope_dropped_attributes_count")?,
            string(&c.scope_schema_url, row, "scope_schema_url")?,
        );
        let (Some(resource), Some(scope_index)) =
            (self.resources.get_mut(r), self.scope_index.get_mut(r))
        else {
            return Err(values::bad("resource", "grouping index out of step"));
        };
        let scopes = &mut resource.scopes;
        let s = match scope_index.get(&skey) {
            Some(&s) => s,
            None => {
                let (name, version, attrs, types, dropped, schema_url) = &skey;
                scopes.push(Scoped {
                    scope: InstrumentationScope {
                        name: (*name).to_owned(),
                        version: (*version).to_owned(),
                        attributes: attributes(attrs, types, "scope_attributes")?,
                        dropped_attributes_count: *dropped,
                    },
                    schema_url: (*schema_url).to_owned(),
                    items: Vec::new(),
                });
                let s = scopes.len() - 1;
                scope_index.insert(skey, s);
                s
            }
        };
        match scopes.get_mut(s) {
            Some(scope) => scope.items.push(item),
            None => return Err(values::bad("scope", "grouping index out of step")),
        }
        self.last = Some((c, row, r, s));
        Ok(())
    }
}

/// Reads every row of `tables` into items grouped by resource and scope.
fn read_groups<R: Rows>(tables: &[(Table, &RecordBatch)]) -> Result<Vec<Resourced<R::Item>>> {
    let prepared = tables
        .iter()
        .map(|&(table, batch)| {
            let c = Columns::new(batch, table);
            Ok((ContextCols::new(&c)?, R::new(&c, table)?, c.rows()))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut groups = Grouper::new();
    for (b, (ctx, rows, n)) in prepared.iter().enumerate() {
        for row in 0..*n {
            rows.item(row)
                .and_then(|item| groups.push(ctx, row, item))
                .map_err(|Bad { column, message }| ConvertError::MalformedRow {
                    batch: b,
                    row,
                    column,
                    message,
                })?;
        }
    }
    Ok(groups.resources)
}
