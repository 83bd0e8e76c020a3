//! The HTTP server on the OTLP/HTTP port: OTLP routes, the query API under
//! `/api/v2`, health and metrics.

pub mod http;
pub mod metrics;
mod otlp_json;
pub mod query;

pub use http::{ApiState, router};
pub use query::TRUNCATED_HEADER;
