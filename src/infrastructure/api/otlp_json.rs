//! A stored trace rendered back as OTLP/JSON.

use serde_json::Value;

use crate::application::ports::{QueryError, QueryResult};
use crate::infrastructure::otlp::convert::spans_to_otlp;
use crate::infrastructure::otlp::json_encode::encode_traces;

/// The rows of `otel_traces` as an OTLP/JSON `ExportTraceServiceRequest`.
pub fn trace_as_otlp_json(result: &QueryResult) -> Result<Value, QueryError> {
    let req = spans_to_otlp(&result.batches).map_err(QueryError::internal)?;
    Ok(encode_traces(&req))
}
