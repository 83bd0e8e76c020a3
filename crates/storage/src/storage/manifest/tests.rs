//! Manifests over in-memory and counting stores: commits, checkpoints,
//! reloads, refreshes, concurrent and stale writers, replaced files.

use object_store::memory::InMemory;

use super::*;

fn file(n: u64) -> FileMeta {
    FileMeta {
        path: format!("t/otel_logs/date=2026-11-26/hour=10/{n}.parquet"),
        size: 10,
        rows: 1,
        hour_start: 0,
        max_seq: n,
        min_ts: 0,
        max_ts: 0,
        node: Some("a".into()),
        // Recorded for some files only, as after an upgrade.
        services: (n % 2 == 1).then(|| Arc::from([format!("svc-{n}"), "web".into()])),
    }
}

/// Every object in `store`, sorted.
pub(crate) async fn names(store: &Arc<dyn ObjectStore>) -> Vec<String> {
    let mut v: Vec<String> = store
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    v.sort();
    v
}

#[tokio::test]
async fn commits_checkpoint_and_reload() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let tenant = TenantId::parse("t").unwrap();
    let m = Manifests::new(Arc::clone(&store)).with_version_grace(Duration::ZERO);
    for n in 1..=45 {
        assert_eq!(
            m.commit(&tenant, Table::LOGS, vec![file(n)], Vec::new())
                .await
                .unwrap(),
            Commit::Done(n)
        );
    }
    // Checkpoints at 20 and 40; versions up to 20 were deleted after the
    // second checkpoint, so a load reads one checkpoint and five versions.
    let listed = names(&store).await;
    assert!(
        listed.contains(&"t/otel_logs/_manifest/00000000000000000040.checkpoint.json".to_string())
    );
    assert!(
        !listed
            .iter()
            .any(|p| p.ends_with("00000000000000000005.json")),
        "{listed:?}"
    );
    assert!(
        listed.len() <= 2 * CHECKPOINT_EVERY as usize + 2,
        "{}",
        listed.len()
    );

    let fresh = Manifests::new(Arc::clone(&store)).with_version_grace(Duration::ZERO);
    let all = fresh.load_all().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].2.version, 45);
    let mut files = all[0].2.files.clone();
    files.sort_by_key(|f| f.max_seq);
    assert_eq!(files, (1..=45).map(file).collect::<Vec<_>>());
}

/// A node whose view is older than two checkpoints of another writer
/// commits after them, not into a version number the checkpoints freed
/// (a put there would succeed and never be read).
#[tokio::test]
async fn a_stale_writer_commits_after_versions_folded_into_checkpoints() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let tenant = TenantId::parse("t").unwrap();
    let stale = Manifests::new(Arc::clone(&store)).with_version_grace(Duration::ZERO);
    let busy = Manifests::new(Arc::clone(&store)).with_version_grace(Duration::ZERO);
    stale
        .commit(&tenant, Table::LOGS, vec![file(1)], Vec::new())
        .await
        .unwrap();
    for n in 2..=45 {
        busy.commit(&tenant, Table::LOGS, vec![file(n)], Vec::new())
            .await
            .unwrap();
    }
    assert!(
        !names(&store)
            .await
            .iter()
            .any(|p| p.ends_with("00000000000000000002.json")),
        "version 2 was folded into a checkpoint and deleted"
    );
    assert_eq!(
        stale
            .commit(&tenant, Table::LOGS, vec![file(46)], Vec::new())
            .await
            .unwrap(),
        Commit::Done(46)
    );
    let all = Manifests::new(store).load_all().await.unwrap();
    assert_eq!(all[0].2.version, 46);
    assert_eq!(all[0].2.files.len(), 46);
}

/// A put that returns late may have landed in a number freed meanwhile: the
/// commit counts only once a fresh load shows it, and is made again if not.
#[tokio::test]
async fn a_slow_put_into_a_freed_version_number_is_made_again() {
    use crate::storage::counting::CountingStore;
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let tenant = TenantId::parse("t").unwrap();
    let slow =
        Arc::new(CountingStore::new(Arc::clone(&store)).with_put_delay(Duration::from_millis(300)));
    let paused =
        Manifests::new(slow as Arc<dyn ObjectStore>).with_version_grace(Duration::from_millis(400));
    let busy = Manifests::new(Arc::clone(&store)).with_version_grace(Duration::ZERO);
    busy.commit(&tenant, Table::LOGS, vec![file(1)], Vec::new())
        .await
        .unwrap();
    // `paused` lists (it knows version 1), then its put of version 2 takes
    // 300 ms, while `busy` commits 2 to 60 and its checkpoints free 2.
    let late = tokio::spawn(async move {
        paused
            .commit(&tenant, Table::LOGS, vec![file(1000)], Vec::new())
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let tenant = TenantId::parse("t").unwrap();
    for n in 2..=60 {
        busy.commit(&tenant, Table::LOGS, vec![file(n)], Vec::new())
            .await
            .unwrap();
    }
    let Commit::Done(v) = late.await.unwrap().unwrap() else {
        panic!("not committed");
    };
    assert!(v > 60, "committed as version {v}");
    let all = Manifests::new(store).load_all().await.unwrap();
    assert!(
        all[0]
            .2
            .holds_all(["t/otel_logs/date=2026-11-26/hour=10/1000.parquet"]),
        "the late commit is visible"
    );
    assert_eq!(all[0].2.files.len(), 61);
}

#[tokio::test]
async fn concurrent_writers_never_lose_a_commit() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let tenant = TenantId::parse("t").unwrap();
    let a = Manifests::new(Arc::clone(&store)).with_version_grace(Duration::ZERO);
    let b = Manifests::new(Arc::clone(&store)).with_version_grace(Duration::ZERO);
    // Interleaved: each writer's cached version goes stale in turn, its
    // conditional put fails, it reloads and commits the next version.
    for n in 0..10 {
        let w = if n % 2 == 0 { &a } else { &b };
        w.commit(&tenant, Table::LOGS, vec![file(n + 1)], Vec::new())
            .await
            .unwrap();
    }
    let all = Manifests::new(store).load_all().await.unwrap();
    assert_eq!(all[0].2.version, 10);
    assert_eq!(all[0].2.files.len(), 10);
}

/// A reader catches up with another writer's commits: one listing when
/// nothing changed, a read per new version, and a fresh load when the
/// versions it missed were folded into a checkpoint and deleted.
#[tokio::test]
async fn a_refresh_costs_one_listing_when_nothing_changed() {
    use crate::storage::counting::{CountingStore, RequestCounts};
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let tenant = TenantId::parse("t").unwrap();
    let writer = Manifests::new(Arc::clone(&store)).with_version_grace(Duration::ZERO);
    let counting = Arc::new(CountingStore::new(Arc::clone(&store)));
    let reader = Manifests::new(Arc::clone(&counting) as Arc<dyn ObjectStore>);
    for n in 1..=3 {
        writer
            .commit(&tenant, Table::LOGS, vec![file(n)], Vec::new())
            .await
            .unwrap();
    }
    let state = reader
        .refresh(&tenant, Table::LOGS, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((state.version, state.files.len()), (3, 3));
    let before = counting.counts();
    assert_eq!(
        reader
            .refresh(&tenant, Table::LOGS, 3)
            .await
            .unwrap()
            .map(|s| s.version),
        None
    );
    assert_eq!(
        counting.counts().since(before),
        RequestCounts {
            list: 1,
            ..RequestCounts::default()
        }
    );
    // Asked with an older `since`, the known state comes back at no cost.
    assert_eq!(
        reader
            .refresh(&tenant, Table::LOGS, 2)
            .await
            .unwrap()
            .map(|s| s.version),
        Some(3)
    );

    // Two new versions: the listing and one read each.
    for n in 4..=5 {
        writer
            .commit(&tenant, Table::LOGS, vec![file(n)], Vec::new())
            .await
            .unwrap();
    }
    let before = counting.counts();
    let state = reader
        .refresh(&tenant, Table::LOGS, 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((state.version, state.files.len()), (5, 5));
    assert_eq!(counting.counts().since(before).get, 2);

    // Far behind: the versions it missed are gone; it loads afresh.
    for n in 6..=50 {
        writer
            .commit(&tenant, Table::LOGS, vec![file(n)], Vec::new())
            .await
            .unwrap();
    }
    let state = reader
        .refresh(&tenant, Table::LOGS, 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((state.version, state.files.len()), (50, 50));
    // And the reader commits on top of what it now knows.
    assert_eq!(
        reader
            .commit(&tenant, Table::LOGS, vec![file(51)], Vec::new())
            .await
            .unwrap(),
        Commit::Done(51)
    );
    assert_eq!(
        reader.list_tables().await.unwrap(),
        vec![(tenant, Table::LOGS)]
    );
}

/// A large table is checkpointed by bytes, not every few commits: the
/// small versions after a checkpoint of thousands of files do not
/// rewrite the whole list, and a load still sees every file.
#[tokio::test]
async fn large_tables_checkpoint_by_bytes() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let tenant = TenantId::parse("t").unwrap();
    let m = Manifests::new(Arc::clone(&store)).with_version_grace(Duration::ZERO);
    let checkpoints = |names: Vec<String>| {
        names
            .iter()
            .filter(|n| n.ends_with(".checkpoint.json"))
            .count()
    };
    m.commit(
        &tenant,
        Table::LOGS,
        (1..=5000).map(file).collect(),
        Vec::new(),
    )
    .await
    .unwrap();
    for n in 5001..5020 {
        m.commit(&tenant, Table::LOGS, vec![file(n)], Vec::new())
            .await
            .unwrap();
    }
    // 20 versions holding more than a tenth of nothing: the first checkpoint.
    assert_eq!(checkpoints(names(&store).await), 1);
    for n in 5020..5100 {
        m.commit(&tenant, Table::LOGS, vec![file(n)], Vec::new())
            .await
            .unwrap();
    }
    // 80 small versions are far from a tenth of 5,000 files' entries.
    assert_eq!(checkpoints(names(&store).await), 1);
    let all = Manifests::new(store).load_all().await.unwrap();
    assert_eq!((all[0].2.version, all[0].2.files.len()), (100, 5099));
}

fn compacted(n: u64) -> FileMeta {
    FileMeta {
        max_seq: 0,
        path: format!("t/otel_logs/date=2026-11-26/hour=10/c{n}.parquet"),
        ..file(n)
    }
}

/// Compaction's commit swaps inputs for the output in one version; the
/// inputs stay recorded as replaced (with when) until forgotten, and the
/// partition's watermark survives its files, through checkpoints too.
#[tokio::test]
async fn replacing_files_keeps_watermarks_and_records_the_replaced() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let tenant = TenantId::parse("t").unwrap();
    let m = Manifests::new(Arc::clone(&store)).with_version_grace(Duration::ZERO);
    for n in 1..=3 {
        m.commit(&tenant, Table::LOGS, vec![file(n)], Vec::new())
            .await
            .unwrap();
    }
    let inputs: Vec<String> = (1..=3).map(|n| file(n).path).collect();
    let v = m
        .commit(&tenant, Table::LOGS, vec![compacted(1)], inputs.clone())
        .await
        .unwrap();
    assert_eq!(v, Commit::Done(4));
    // A second compaction of the same inputs (another node's, say) conflicts.
    assert_eq!(
        m.commit(&tenant, Table::LOGS, vec![compacted(2)], inputs.clone())
            .await
            .unwrap(),
        Commit::Conflict
    );
    // Enough versions for a checkpoint, then a fresh reader.
    for n in 10..30 {
        m.commit(&tenant, Table::LOGS, vec![file(n)], Vec::new())
            .await
            .unwrap();
    }
    let all = Manifests::new(Arc::clone(&store))
        .with_version_grace(Duration::ZERO)
        .load_all()
        .await
        .unwrap();
    let state = &all[0].2;
    assert!(state.version >= CHECKPOINT_EVERY);
    let paths: Vec<&str> = state.files.iter().map(|f| f.path.as_str()).collect();
    assert!(paths.contains(&compacted(1).path.as_str()));
    assert!(inputs.iter().all(|p| !paths.contains(&p.as_str())));
    let mut replaced: Vec<&str> = state.replaced.iter().map(|r| r.path.as_str()).collect();
    replaced.sort_unstable();
    assert_eq!(
        replaced,
        inputs.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(state.replaced.iter().all(|r| r.removed_at_ms > 0));
    assert_eq!(state.watermarks.get(&(0, "a".to_owned())), Some(&29));

    // Forgotten once deleted; the watermark stays.
    let m2 = Manifests::new(Arc::clone(&store)).with_version_grace(Duration::ZERO);
    m2.load_all().await.unwrap();
    m2.forget(&tenant, Table::LOGS, inputs.clone())
        .await
        .unwrap();
    let all = Manifests::new(store).load_all().await.unwrap();
    assert!(all[0].2.replaced.is_empty());
    assert_eq!(all[0].2.watermarks.get(&(0, "a".to_owned())), Some(&29));
}

/// Files from before node ids (no `node` in the manifest) load, and their
/// watermark is kept under the empty node.
#[tokio::test]
async fn manifests_without_node_ids_still_load() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let old = r#"{"version":1,"add":[{"path":"t/otel_logs/date=2026-11-26/hour=10/x.parquet","size":10,"rows":1,"hour_start":0,"max_seq":7,"min_ts":0,"max_ts":0}],"remove":[]}"#;
    store
        .put(
            &Path::from("t/otel_logs/_manifest/00000000000000000001.json"),
            PutPayload::from(old.as_bytes().to_vec()),
        )
        .await
        .unwrap();
    let all = Manifests::new(store).load_all().await.unwrap();
    let state = &all[0].2;
    assert_eq!(state.files[0].node, None);
    assert_eq!(state.watermarks.get(&(0, String::new())), Some(&7));
}
