//! The one integration-test binary (one link of DataFusion, not one per file).

mod architecture;
mod auth;
mod compaction;
mod crash;

pub(crate) mod faults;
mod fixtures;
pub(crate) mod forward;
mod hardening;
mod hostile;
mod limits;
mod otlp_errors;
mod otlp_grpc;
mod otlp_http;
mod partial_success;
mod power_cut;
pub mod queries;
mod query_memory;
mod records;
mod retention;
mod sdk;
mod series_api;
mod shared_store;
mod shutdown;
mod silent_changes;
mod sql_api;
mod storage;
mod support;
mod tables;
mod tenancy;
mod tls;
mod traces_logs;
