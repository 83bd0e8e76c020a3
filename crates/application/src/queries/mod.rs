//! Queries (read use cases) and their handlers. A handler validates its
//! query object, asks a read-model port ([`TraceReadModel`],
//! [`MetricReadModel`]) the typed questions it needs answered, and applies
//! the rules that belong to the use case (not found, counter resets and
//! rates, histogram percentiles, caching). The query language of the engine
//! behind the ports never appears here; ad-hoc SQL from API callers passes
//! through [`ReadModel`] as text.
//!
//! [`TraceReadModel`]: crate::queries::TraceReadModel
//! [`MetricReadModel`]: crate::queries::MetricReadModel
//! [`ReadModel`]: crate::queries::ReadModel

pub mod matcher;
pub mod metric_queries;
pub mod params;
pub(crate) mod sql;
pub mod traces;

#[cfg(test)]
mod tests;

pub use matcher::{LabelMatcher, MatchOp, MatcherError};
pub use metric_queries::{MetricCatalogQuery, MetricQueries, MetricReadModel, TimeSeriesQuery};
pub use sql::{ReadModel, SqlHandler, SqlQuery};
pub use traces::{
    GetTraceQuery, OperationsQuery, SearchLogsQuery, SearchTracesQuery, ServicesQuery,
    TraceQueries, TraceReadModel,
};
