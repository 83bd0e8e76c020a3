//! A commit survives a power cut: the object store is a fake that keeps only
//! what was synced (`PowerCutStore`), under the server's `DurableStore`.
//! Rows are acknowledged, flushed and committed (which releases their WAL
//! segments), the power is cut, and the restarted server must still answer
//! every one of them. The same run without `DurableStore` shows what a
//! store that never syncs loses.

use std::num::NonZero;
use std::sync::Arc;

use object_store::ObjectStore;
use prost::Message;
use telemetryflow::infrastructure::storage::durable::DurableStore;
use telemetryflow::infrastructure::storage::power_cut::PowerCutStore;

use crate::fixtures::*;
use crate::queries::send;
use crate::support::{TestServer, first_value, test_config};

const ROUNDS: u32 = 25;
const SPANS: u32 = 8;

fn wal_segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("wal"))
        .map(|d| d.flatten().count())
        .unwrap_or(0)
}

/// Acknowledges and commits `ROUNDS` requests, cuts the power, restarts;
/// returns the spans the restarted server holds.
async fn spans_after_power_cut(durable: bool) -> u64 {
    let fake = Arc::new(PowerCutStore::new());
    let store: Arc<dyn ObjectStore> = if durable {
        Arc::new(DurableStore::new(
            Arc::clone(&fake) as _,
            Arc::clone(&fake) as _,
        ))
    } else {
        Arc::clone(&fake) as _
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.wal.segment_bytes = NonZero::new(4096).unwrap();
    config.buffer.flush_interval_ms = NonZero::new(600_000).unwrap();
    let mut s = TestServer::from_config(config.clone(), dir, Some(Arc::clone(&store))).await;
    for round in 0..ROUNDS {
        let spans = (0..SPANS)
            .map(|i| {
                span(
                    round as u8 + 1,
                    i as u8 + 1,
                    &format!("r{round}-{i}"),
                    T0 + u64::from(i) * SEC,
                )
            })
            .collect();
        send(
            &s,
            "traces",
            traces("svc", spans).encode_to_vec(),
            "default",
        )
        .await;
        // One commit per round: 25 manifest versions, a checkpoint among them.
        s.flush().await;
    }
    // The commits released the WAL segments that held the rows.
    assert!(
        wal_segments(s.dir.path()) <= 2,
        "{} WAL segments left",
        wal_segments(s.dir.path())
    );
    s.shutdown().await;
    let TestServer { dir, .. } = s;
    fake.power_cut().await;

    let s = TestServer::from_config(config, dir, Some(store)).await;
    let b = s.sql("SELECT count(*) FROM otel_traces").await;
    first_value(&b).parse().unwrap()
}

#[tokio::test]
async fn committed_rows_survive_a_power_cut() {
    assert_eq!(
        spans_after_power_cut(true).await,
        u64::from(ROUNDS * SPANS),
        "a committed row was lost at the power cut"
    );
}

#[tokio::test]
async fn a_store_that_never_syncs_loses_committed_rows() {
    // The fake does model the hazard: without syncing, commits are lost
    // while their WAL records are already gone.
    let left = spans_after_power_cut(false).await;
    assert!(left < u64::from(ROUNDS * SPANS), "{left} spans survived");
}
