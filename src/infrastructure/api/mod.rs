//! The HTTP server on the OTLP/HTTP port: OTLP routes, `/api/v2/*`, health.

pub mod http;
pub mod metrics;

pub use http::{ApiState, router};
