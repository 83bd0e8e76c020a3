//! Crash points for the crash-recovery tests.
//!
//! `TFLOW_CRASH_AT=<point>[:<n>]` makes the process abort (as if killed) the
//! n-th time (default: first) it reaches `<point>`. Unset, a crash point is
//! one relaxed atomic load. Points: `after_parquet_write` (file written, not
//! yet committed to the manifest), `during_replay` (WAL replay half done),
//! `after_wal_write` (record written, before fsync and ack),
//! `after_compaction_write` (merged outputs written, not committed),
//! `after_compaction_commit` (outputs in and inputs out of the manifest, the
//! inputs not yet deleted), `after_expiry_commit` (a retention pass removed
//! expired files from the manifest, not yet deleted), `during_gc_delete`
//! (some replaced files deleted, the manifest still records them),
//! `after_forward_ack` (the upstream acknowledged a forwarded batch, the
//! forwarder's cursor not yet moved past it).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

struct Armed {
    point: String,
    nth: u64,
    hits: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var("TFLOW_CRASH_AT").ok()?;
            let (point, nth) = match spec.split_once(':') {
                Some((p, n)) => (p.to_owned(), n.parse().unwrap_or(1)),
                None => (spec, 1),
            };
            Some(Armed {
                point,
                nth,
                hits: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Aborts the process if this crash point is armed and its turn has come.
pub fn crash_point(point: &str) {
    if let Some(a) = armed()
        && a.point == point
        && a.hits.fetch_add(1, Ordering::Relaxed) + 1 == a.nth
    {
        eprintln!("crash point {point} reached: aborting");
        std::process::abort();
    }
}
