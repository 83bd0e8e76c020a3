//! `querybench catalog`: what the table manifests cost as they grow. For a
//! table of 1k, 10k and 100k files (and for 1,000 tables of 100 files): the
//! latency of one flush's commit (median, p99 and mean — the mean carries
//! the checkpoints' share), the newest checkpoint's size, the start-up load
//! of every manifest (time and requests), and the requests of a refresh that
//! finds nothing new. The store is the server's durable local store (every
//! object fsync'd); commits name files that are never written (a commit
//! does not read its files), so the numbers are the manifest's alone.

use super::*;

use telemetryflow::application::ports::{FileMeta, FileStore};
use telemetryflow::infrastructure::storage::counting::{CountingStore, RequestCounts};
use telemetryflow::infrastructure::storage::{ObjectFileStore, StorageLocation};

#[derive(Debug, Args)]
pub(crate) struct CatalogArgs {
    /// Scratch directory (deleted and recreated).
    #[arg(long, default_value = "./catalog-data")]
    data_dir: PathBuf,
    /// Files in the one table, per case.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    files: Vec<usize>,
    /// Timed single-file commits per case.
    #[arg(long, default_value_t = 200)]
    commits: usize,
    /// Tables (tenants x 5 tables) for the many-tables case; 0 skips it.
    #[arg(long, default_value_t = 1000)]
    tables: usize,
    /// Files per table in the many-tables case.
    #[arg(long, default_value_t = 100)]
    files_per_table: usize,
}

const TABLES: [Table; 5] = [
    Table::TRACES,
    Table::LOGS,
    Table::METRICS_GAUGE,
    Table::METRICS_SUM,
    Table::METRICS_HISTOGRAM,
];

fn file(tenant: &TenantId, table: Table, n: usize) -> FileMeta {
    let hour = (n / 100) as u64;
    let hour_start = 1_793_491_200_000_000_000 + hour * HOUR_NS;
    FileMeta {
        path: format!(
            "{tenant}/{}/date=2026-11-01/hour={:02}/{:020}.parquet",
            table.name(),
            hour % 24,
            n
        ),
        size: 4 << 20,
        rows: 50_000,
        hour_start,
        max_seq: n as u64 + 1,
        min_ts: hour_start as i64,
        max_ts: (hour_start + HOUR_NS - 1) as i64,
        node: Some("catalogbench".into()),
        services: None,
    }
}

fn store(dir: &Path) -> anyhow::Result<Arc<dyn object_store::ObjectStore>> {
    std::fs::create_dir_all(dir)?;
    Ok(StorageLocation::Local(dir.to_owned()).build()?)
}

/// Commits `files` files to `(tenant, table)`, 1,000 per commit.
async fn fill(
    fs: &ObjectFileStore,
    tenant: &TenantId,
    table: Table,
    files: usize,
    from: usize,
) -> anyhow::Result<()> {
    let mut n = from;
    while n < from + files {
        let to = (n + 1000).min(from + files);
        let batch = (n..to).map(|i| file(tenant, table, i)).collect();
        fs.commit(tenant, table, batch, Vec::new()).await?;
        n = to;
    }
    Ok(())
}

/// Bytes of the newest checkpoint and of the whole manifest directory, and
/// the number of objects there.
fn manifest_sizes(root: &Path, tenant: &TenantId, table: Table) -> (u64, u64, usize) {
    let dir = root
        .join(tenant.as_str())
        .join(table.name())
        .join("_manifest");
    let mut newest = (String::new(), 0);
    let (mut total, mut objects) = (0, 0);
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let len = e.metadata().map_or(0, |m| m.len());
        let name = e.file_name().to_string_lossy().into_owned();
        total += len;
        objects += 1;
        if name.ends_with(".checkpoint.json") && name > newest.0 {
            newest = (name, len);
        }
    }
    (newest.1, total, objects)
}

fn requests(c: RequestCounts) -> String {
    format!("{} ({} list, {} get)", c.total(), c.list, c.get)
}

/// Loads every manifest as a starting server does: (median ms of 3, requests).
async fn startup(
    inner: &Arc<dyn object_store::ObjectStore>,
) -> anyhow::Result<(f64, RequestCounts, usize)> {
    let mut ms = Vec::new();
    let mut last = (RequestCounts::default(), 0);
    for _ in 0..3 {
        let counting = Arc::new(CountingStore::new(Arc::clone(inner)));
        let fs = ObjectFileStore::new(Arc::clone(&counting) as _, "reader");
        let t = Instant::now();
        let catalog = fs.load_catalog().await?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        last = (
            counting.counts(),
            catalog.iter().map(|c| c.files.len()).sum(),
        );
    }
    ms.sort_by(f64::total_cmp);
    Ok((ms[1], last.0, last.1))
}

pub(crate) async fn catalog(args: CatalogArgs) -> anyhow::Result<()> {
    if args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("deleting {}", args.data_dir.display()))?;
    }
    let tenant = TenantId::parse("default")?;
    println!(
        "| files in the table | commit median / p99 / mean ms | checkpoint KiB | manifest objects (KiB) | start-up ms | start-up requests | refresh requests (nothing new) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &args.files {
        let root = args.data_dir.join(format!("files-{n}"));
        let inner = store(&root)?;
        let fs = ObjectFileStore::new(Arc::clone(&inner), "writer");
        fill(&fs, &tenant, Table::TRACES, n, 0).await?;
        let mut ms = Vec::with_capacity(args.commits);
        for i in 0..args.commits {
            let f = file(&tenant, Table::TRACES, n + i);
            let t = Instant::now();
            fs.commit(&tenant, Table::TRACES, vec![f], Vec::new())
                .await?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
        ms.sort_by(f64::total_cmp);
        let pct = |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        let (checkpoint, total, objects) = manifest_sizes(&root, &tenant, Table::TRACES);
        let (startup_ms, startup_req, loaded) = startup(&inner).await?;
        if loaded != n + args.commits {
            bail!("loaded {loaded} files, committed {}", n + args.commits);
        }
        let counting = Arc::new(CountingStore::new(Arc::clone(&inner)));
        let reader = ObjectFileStore::new(Arc::clone(&counting) as _, "reader");
        let known = reader.load_catalog().await?;
        let version = known.first().map_or(0, |c| c.version);
        let before = counting.counts();
        let changed = reader.refresh(&tenant, Table::TRACES, version).await?;
        if changed.is_some() {
            bail!("an unchanged manifest refreshed as changed");
        }
        let refresh = counting.counts().since(before);
        println!(
            "| {} | {:.2} / {:.2} / {:.2} | {:.0} | {} ({:.0}) | {:.1} | {} | {} |",
            thousands(n as u64),
            pct(0.5),
            pct(0.99),
            mean,
            checkpoint as f64 / 1024.0,
            objects,
            total as f64 / 1024.0,
            startup_ms,
            requests(startup_req),
            requests(refresh),
        );
    }
    if args.tables > 0 {
        let root = args.data_dir.join("tables");
        let inner = store(&root)?;
        let fs = ObjectFileStore::new(Arc::clone(&inner), "writer");
        let tenants = args.tables.div_ceil(TABLES.len());
        for t in 0..tenants {
            let tenant = TenantId::parse(&format!("tenant-{t:04}"))?;
            for table in TABLES.iter().take(args.tables - t * TABLES.len()) {
                fill(&fs, &tenant, *table, args.files_per_table, 0).await?;
            }
        }
        let (startup_ms, startup_req, loaded) = startup(&inner).await?;
        println!(
            "\n{} tables of {} files ({} files): start-up {:.0} ms, {} requests",
            args.tables,
            args.files_per_table,
            thousands(loaded as u64),
            startup_ms,
            requests(startup_req)
        );
    }
    Ok(())
}
