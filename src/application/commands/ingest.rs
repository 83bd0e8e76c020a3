//! `IngestCommand`: store the accepted part of one validated export request.

use std::sync::Arc;

use crate::application::ports::{TableBatch, WriteBuffer, WriteError};
use crate::domain::ports::EventPublisher;
use crate::domain::telemetry::BatchSummary;

/// One export request after conversion: the batch aggregate's summary (what
/// was accepted and rejected) and the accepted rows, as columns per table.
#[derive(Debug)]
pub struct IngestCommand {
    pub summary: BatchSummary,
    pub batches: Vec<TableBatch>,
}

/// What the client is told (OTLP partial success).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    pub accepted: u64,
    pub rejected: u64,
    /// Empty when nothing was rejected.
    pub message: String,
}

pub struct IngestHandler {
    buffer: Arc<dyn WriteBuffer>,
    events: Arc<dyn EventPublisher>,
}

impl IngestHandler {
    pub fn new(buffer: Arc<dyn WriteBuffer>, events: Arc<dyn EventPublisher>) -> Self {
        Self { buffer, events }
    }

    /// Writes the accepted rows, then raises the batch's ingested event.
    /// On error nothing of the request was accepted and the client may retry.
    pub async fn handle(&self, cmd: IngestCommand) -> Result<IngestOutcome, WriteError> {
        let IngestCommand { summary, batches } = cmd;
        let batches: Vec<TableBatch> = batches
            .into_iter()
            .filter(|b| b.batch.num_rows() > 0)
            .collect();
        if !batches.is_empty() {
            self.buffer
                .write(summary.context().tenant(), batches)
                .await?;
        }
        if let Some(event) = summary.ingested_event() {
            self.events.publish(event);
        }
        Ok(IngestOutcome {
            accepted: summary.accepted(),
            rejected: summary.rejected(),
            message: summary.rejection_message(),
        })
    }
}
