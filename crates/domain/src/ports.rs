//! Ports the domain needs from the outside world. Ports that carry columnar
//! data live in `application::ports`, since the domain knows no Arrow.

use crate::events::DomainEvent;

pub use crate::telemetry::CounterStore;

/// Publishes domain events to whoever subscribed (alerting, caches, rollups).
/// Must not block: handlers that do I/O queue work for later.
pub trait EventPublisher: Send + Sync {
    fn publish(&self, event: DomainEvent);
}
