//! TelemetryFlow: an OpenTelemetry-native OTLP collector and columnar store.
//!
//! Layers, inner to outer (see ARCHITECTURE.md):
//! - [`domain`]: value objects, batch aggregates, rules, events, ports. Pure.
//! - [`application`]: commands, queries, handlers, the write pipeline.
//! - [`infrastructure`]: OTLP receivers, HTTP API, Parquet/object_store, DataFusion.
//! - [`bootstrap`]: the composition root that wires them; [`config`] feeds it.

pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod infrastructure;
pub mod keys;
pub mod replay;

pub use tf_application as application;
pub use tf_domain as domain;
pub use tf_otlp::synth;
pub use tf_storage::failpoint;

pub use bootstrap::{Server, start};
pub use config::Config;
