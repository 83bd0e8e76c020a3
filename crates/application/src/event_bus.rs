//! The in-process event bus: domain events fan out to subscribed handlers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use tf_domain::DomainEvent;
use tf_domain::ports::EventPublisher;

/// Reacts to domain events. Called synchronously on the publishing thread:
/// a handler must be quick, and queue anything slow.
pub trait EventHandler: Send + Sync {
    fn handle(&self, event: &DomainEvent);
}

impl<F: Fn(&DomainEvent) + Send + Sync> EventHandler for F {
    fn handle(&self, event: &DomainEvent) {
        self(event)
    }
}

#[derive(Default)]
pub struct EventBus {
    handlers: RwLock<Vec<Arc<dyn EventHandler>>>,
    published: AtomicU64,
}

impl EventBus {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn subscribe(&self, handler: Arc<dyn EventHandler>) {
        self.handlers.write().push(handler);
    }

    /// How many events were published since start.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }
}

impl EventPublisher for EventBus {
    fn publish(&self, event: DomainEvent) {
        self.published.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(event = event.name(), tenant = %event.tenant(), "domain event");
        for h in self.handlers.read().iter() {
            h.handle(&event);
        }
    }
}
