//! Arrow schemas of the stored tables (see `docs/schema.md`).
//!
//! Names follow the OpenTelemetry ClickHouse exporter, in snake_case.
//! Attribute maps are `Map<Utf8, Utf8>` so that `span_attributes['http.method']`
//! works in SQL; each has a companion `*_attribute_types` map that records the
//! OTLP type of every non-string value (`int`, `double`, `bool`, `bytes`,
//! `array`, `kvlist`, `empty`), so no type information is lost.

pub mod evolution;
pub mod trace_filter;

use std::sync::{Arc, OnceLock, RwLock};

use arrow::array::{Array, MapBuilder, StringBuilder};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use tf_domain::Table;
use tf_domain::telemetry::TableError;

/// `Timestamp(Nanosecond, "UTC")`.
pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// The attribute map type, exactly as `MapBuilder<StringBuilder, StringBuilder>` builds it.
pub fn attr_map_type() -> DataType {
    static T: OnceLock<DataType> = OnceLock::new();
    T.get_or_init(|| {
        MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
            .finish()
            .data_type()
            .clone()
    })
    .clone()
}

fn f(name: &str, dt: DataType, nullable: bool) -> Field {
    Field::new(name, dt, nullable)
}

fn s(name: &str) -> Field {
    f(name, DataType::Utf8, false)
}

fn list_of(fields: Vec<Field>) -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(Fields::from(fields)),
        false,
    )))
}

fn attr_fields(prefix: &str) -> [Field; 2] {
    [
        f(&format!("{prefix}attributes"), attr_map_type(), false),
        f(&format!("{prefix}attribute_types"), attr_map_type(), false),
    ]
}

/// Columns shared by every table: context, resource and scope.
fn context_fields() -> Vec<Field> {
    let mut v = vec![s("workspace_id"), s("service_name")];
    v.extend(attr_fields("resource_"));
    v.push(f(
        "resource_dropped_attributes_count",
        DataType::UInt32,
        false,
    ));
    v.push(s("resource_schema_url"));
    v.push(s("resource_entity_refs"));
    v.push(s("scope_name"));
    v.push(s("scope_version"));
    v.extend(attr_fields("scope_"));
    v.push(f("scope_dropped_attributes_count", DataType::UInt32, false));
    v.push(s("scope_schema_url"));
    v
}

/// The element fields of `events`.
pub fn event_fields() -> Vec<Field> {
    let mut v = vec![f("timestamp", ts_type(), false), s("name")];
    v.extend(attr_fields(""));
    v.push(f("dropped_attributes_count", DataType::UInt32, false));
    v
}

/// The element fields of `links`.
pub fn link_fields() -> Vec<Field> {
    let mut v = vec![s("trace_id"), s("span_id"), s("trace_state")];
    v.extend(attr_fields(""));
    v.push(f("dropped_attributes_count", DataType::UInt32, false));
    v.push(f("flags", DataType::UInt32, false));
    v
}

/// The element fields of `exemplars`.
pub fn exemplar_fields() -> Vec<Field> {
    let mut v = vec![
        f("timestamp", ts_type(), false),
        f("value", DataType::Float64, false),
        f("value_int", DataType::Int64, true),
        s("span_id"),
        s("trace_id"),
    ];
    v.extend(attr_fields("filtered_"));
    v
}

/// The element fields of summary `quantiles`.
pub fn quantile_fields() -> Vec<Field> {
    vec![
        f("quantile", DataType::Float64, false),
        f("value", DataType::Float64, false),
    ]
}

fn u64_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::UInt64, false)))
}

fn f64_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Float64, false)))
}

fn traces() -> Schema {
    let mut v = vec![
        f("timestamp", ts_type(), false),
        s("trace_id"),
        s("span_id"),
        s("parent_span_id"),
        s("trace_state"),
        s("span_name"),
        s("span_kind"),
        f("duration_ns", DataType::Int64, false),
        s("status_code"),
        s("status_message"),
        f("flags", DataType::UInt32, false),
    ];
    v.extend(context_fields());
    v.extend(attr_fields("span_"));
    v.push(f("dropped_attributes_count", DataType::UInt32, false));
    v.push(f("events", list_of(event_fields()), false));
    v.push(f("dropped_events_count", DataType::UInt32, false));
    v.push(f("links", list_of(link_fields()), false));
    v.push(f("dropped_links_count", DataType::UInt32, false));
    Schema::new(v)
}

fn logs() -> Schema {
    let mut v = vec![
        f("timestamp", ts_type(), false),
        f("observed_timestamp", ts_type(), false),
        f("timestamp_derived", DataType::Boolean, true),
        s("trace_id"),
        s("span_id"),
        f("trace_flags", DataType::UInt32, false),
        s("severity_text"),
        f("severity_number", DataType::Int32, false),
        s("body"),
        s("body_type"),
        s("event_name"),
    ];
    v.extend(context_fields());
    v.extend(attr_fields("log_"));
    v.push(f("dropped_attributes_count", DataType::UInt32, false));
    Schema::new(v)
}

/// Columns every metric table starts with.
fn metric_fields() -> Vec<Field> {
    let mut v = vec![
        f("timestamp", ts_type(), false),
        f("start_timestamp", ts_type(), false),
        s("metric_name"),
        s("metric_description"),
        s("metric_unit"),
    ];
    v.extend(context_fields());
    v.extend(attr_fields("metric_metadata_"));
    v.extend(attr_fields(""));
    v.push(f("flags", DataType::UInt32, false));
    v.push(f("exemplars", list_of(exemplar_fields()), false));
    v
}

fn metrics(table: Table) -> Schema {
    let mut v = metric_fields();
    let temporality = || f("aggregation_temporality", DataType::Int32, false);
    match table {
        Table::METRICS_GAUGE => {
            v.push(f("value", DataType::Float64, false));
            v.push(f("value_int", DataType::Int64, true));
        }
        Table::METRICS_SUM => {
            v.push(f("value", DataType::Float64, false));
            v.push(f("value_int", DataType::Int64, true));
            v.push(temporality());
            v.push(f("is_monotonic", DataType::Boolean, false));
        }
        Table::METRICS_HISTOGRAM => {
            v.push(f("count", DataType::UInt64, false));
            v.push(f("sum", DataType::Float64, true));
            v.push(f("bucket_counts", u64_list(), false));
            v.push(f("explicit_bounds", f64_list(), false));
            v.push(f("min", DataType::Float64, true));
            v.push(f("max", DataType::Float64, true));
            v.push(temporality());
        }
        Table::METRICS_EXP_HISTOGRAM => {
            v.push(f("count", DataType::UInt64, false));
            v.push(f("sum", DataType::Float64, true));
            v.push(f("scale", DataType::Int32, false));
            v.push(f("zero_count", DataType::UInt64, false));
            v.push(f("zero_threshold", DataType::Float64, false));
            v.push(f("positive_offset", DataType::Int32, false));
            v.push(f("positive_bucket_counts", u64_list(), false));
            v.push(f("negative_offset", DataType::Int32, false));
            v.push(f("negative_bucket_counts", u64_list(), false));
            v.push(f("min", DataType::Float64, true));
            v.push(f("max", DataType::Float64, true));
            v.push(temporality());
        }
        Table::METRICS_SUMMARY => {
            v.push(f("count", DataType::UInt64, false));
            v.push(f("sum", DataType::Float64, false));
            v.push(f("quantiles", list_of(quantile_fields()), false));
        }
        _ => unreachable!("not a metric table"),
    }
    Schema::new(v)
}

/// A declared table's schema and sort order.
struct Declared {
    table: Table,
    schema: SchemaRef,
    sort: &'static [&'static str],
}

/// The tables declared beside the OTLP ones, with their schemas.
static DECLARED: RwLock<Vec<Declared>> = RwLock::new(Vec::new());

/// Why a table cannot be declared.
#[derive(Debug, thiserror::Error)]
pub enum DeclareError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("table {table}: {why}")]
    Schema { table: Table, why: String },
}

/// Declares a derived table (see [`Table::derived`]) with its schema and
/// the columns its files are sorted by. Its rows are then buffered,
/// flushed, compacted, expired, replayed and queried like any other
/// table's. Declare every table at start-up, before storage opens (the WAL
/// may hold its rows). Declaring it again with the same schema returns it.
pub fn declare_table(
    name: &'static str,
    schema: SchemaRef,
    sort: &'static [&'static str],
) -> Result<Table, DeclareError> {
    let table = Table::derived(name)?;
    let bad = |why: String| DeclareError::Schema { table, why };
    match schema.field_with_name(Table::TIMESTAMP_COLUMN) {
        Ok(f) if f.data_type() == &ts_type() && !f.is_nullable() => {}
        _ => {
            return Err(bad(format!(
                "needs a non-null `{}` column of {}",
                Table::TIMESTAMP_COLUMN,
                ts_type()
            )));
        }
    }
    if let Some(c) = sort.iter().find(|c| schema.field_with_name(c).is_err()) {
        return Err(bad(format!("sort column {c:?} is not in the schema")));
    }
    let mut declared = DECLARED.write().unwrap_or_else(|e| e.into_inner());
    match declared.iter().find(|d| d.table == table) {
        Some(d) if d.schema == schema && d.sort == sort => {}
        Some(_) => return Err(bad("already declared with another schema".into())),
        None => declared.push(Declared {
            table,
            schema,
            sort,
        }),
    }
    // Known by name only once its schema is: a query never meets a table
    // without one.
    Table::register(table);
    Ok(table)
}

/// The schema of a table.
///
/// # Panics
/// For a table declared in the domain without [`declare_table`], which
/// gives every declared table its schema.
pub fn table_schema(table: Table) -> SchemaRef {
    static SCHEMAS: OnceLock<Vec<SchemaRef>> = OnceLock::new();
    let otlp = SCHEMAS.get_or_init(|| {
        Table::ALL
            .iter()
            .map(|&t| {
                Arc::new(match t {
                    Table::TRACES => traces(),
                    Table::LOGS => logs(),
                    m => metrics(m),
                })
            })
            .collect()
    });
    if let Some(code) = table.otlp_code() {
        return Arc::clone(&otlp[usize::from(code)]);
    }
    let declared = DECLARED.read().unwrap_or_else(|e| e.into_inner());
    let d = declared
        .iter()
        .find(|d| d.table == table)
        .unwrap_or_else(|| panic!("table {table} was declared without a schema"));
    Arc::clone(&d.schema)
}

/// Sort order of the rows in a stored file.
///
/// Spans are sorted by trace: a trace's spans (from every service) are
/// contiguous, so a lookup by id is pruned by the row groups' and pages'
/// `trace_id` min/max to one page per column, and the file compresses better
/// (neighbouring spans share resources and attributes). Filters on service
/// or time are evaluated on their (cheap, dictionary-encoded) columns first.
/// Logs and metrics keep their common filters first; a declared table sorts
/// as it was declared.
pub fn sort_columns(table: Table) -> &'static [&'static str] {
    match table {
        Table::TRACES => &["trace_id", "timestamp"],
        Table::LOGS => &["service_name", "severity_number", "timestamp"],
        t if t.otlp_code().is_some() => &["metric_name", "service_name", "timestamp"],
        t => {
            let declared = DECLARED.read().unwrap_or_else(|e| e.into_inner());
            declared
                .iter()
                .find(|d| d.table == t)
                .map_or(&[Table::TIMESTAMP_COLUMN][..], |d| d.sort)
        }
    }
}

/// The tables and their columns as Markdown (kept in `docs/schema.md`; a
/// test fails when the two disagree — regenerate with `UPDATE_DOCS=1`).
pub fn markdown() -> String {
    let mut out = String::from(
        "# Table schemas\n\n\
         Generated from `crates/schema/src/lib.rs` (`UPDATE_DOCS=1 cargo test -p tf-schema` \
         rewrites this file). Every table has the context columns (`workspace_id`, `service_name`, \
         `resource_*`, `scope_*`). Timestamps are `Timestamp(ns, UTC)`; ids are lowercase hex strings \
         (empty when absent). Attribute maps are `Map<Utf8, Utf8>` (`span_attributes['http.method']`); \
         their `*_attribute_types` companion maps give the OTLP type of each non-string value \
         (`int`, `double`, `bool`, `bytes`, `array`, `kvlist`, `empty`). Arrays and kvlists are \
         stored as OTLP/JSON. Metric `value` is Float64; integer points also keep `value_int` exactly. \
         `span_kind` is `Unspecified|Internal|Server|Client|Producer|Consumer`, `status_code` \
         `Unset|Ok|Error`, `aggregation_temporality` 1 = delta, 2 = cumulative. \
         `metric_name` follows the OpenTelemetry instrument-name syntax \
         `^[A-Za-z][A-Za-z0-9_./-]{0,254}$`. A log's `timestamp` is its event time as sent; when \
         the record had none it is the observed time, and when it had neither both are the time \
         the store received it: `timestamp_derived` says which (false: sent; true: derived; null \
         in rows stored before the column existed).\n",
    );
    for t in Table::ALL {
        out.push_str(&format!(
            "\n## `{}`\n\n| column | type | nullable |\n|---|---|---|\n",
            t.name()
        ));
        for f in table_schema(t).fields() {
            let ty = match f.data_type() {
                DataType::Map(..) => "Map<Utf8, Utf8>".to_string(),
                DataType::List(item) => match item.data_type() {
                    DataType::Struct(fields) => format!(
                        "List<Struct<{}>>",
                        fields
                            .iter()
                            .map(|f| f.name().as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    other => format!("List<{other}>"),
                },
                other => other.to_string(),
            };
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                f.name(),
                ty,
                if f.is_nullable() { "yes" } else { "no" }
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_schema_md_is_current() {
        // The workspace root is two levels above this crate.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema.md");
        let want = markdown();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/schema.md is stale: run UPDATE_DOCS=1 cargo test -p tf-schema"
        );
    }

    #[test]
    fn every_table_has_the_partitioning_timestamp() {
        for t in Table::ALL {
            let s = table_schema(t);
            let f = s.field_with_name(Table::TIMESTAMP_COLUMN).unwrap();
            assert_eq!(f.data_type(), &ts_type(), "{t}");
            for c in sort_columns(t) {
                assert!(s.index_of(c).is_ok(), "{t}: sort column {c}");
            }
        }
    }
}
