//! Queries (read use cases) and their handlers. Each handler turns a query
//! object into read-only SQL over the tenant's tables (values bound as
//! parameters, never spliced) and asks the [`ReadModel`] port to run it.
//!
//! [`ReadModel`]: crate::ports::ReadModel

pub mod metric_queries;
pub mod params;
mod rows;
pub(crate) mod sql;
pub mod traces;

pub use metric_queries::{MetricCatalogQuery, MetricQueries, TimeSeriesQuery};
pub use sql::{SqlHandler, SqlQuery};
pub use traces::{
    GetTraceQuery, OperationsQuery, SearchLogsQuery, SearchTracesQuery, ServicesQuery, TraceQueries,
};
