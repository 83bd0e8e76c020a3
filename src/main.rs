use clap::Parser;
use telemetryflow::bootstrap::disable_transparent_huge_pages;
use telemetryflow::cli::{self, Cli, Command, ServeArgs};
use telemetryflow::config::LogFormat;

/// mimalloc instead of glibc malloc: decoding OTLP allocates a string per
/// attribute, and under load glibc's malloc/free took ~27% of the server's
/// CPU and kept freed memory in per-thread arenas (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sets the file mode creation mask to 077: new files 0600, new
/// directories 0700.
fn restrict_new_files() {
    #[cfg(unix)]
    // SAFETY: umask takes a plain integer, cannot fail, and reads or writes
    // no memory of this process.
    unsafe {
        libc::umask(0o077);
    }
}

fn init_tracing(level: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    // Files and directories this process makes are its user's alone: the
    // data directory's permissions are the offline commands' trust boundary.
    restrict_new_files();
    let thp = disable_transparent_huge_pages();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => {
            let config = args.load_config()?;
            init_tracing(&config.log.level, config.log.format == LogFormat::Json);
            if let Err(e) = thp {
                tracing::warn!(error = %e, "could not turn transparent huge pages off");
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(cli::serve(config))
        }
        Command::Sql(args) => {
            init_tracing("warn", false);
            cli::sql(&args)
        }
        Command::Compact(args) => {
            init_tracing("info", false);
            cli::compact(&args)
        }
        Command::Retention(args) => {
            init_tracing("info", false);
            cli::retention(&args)
        }
        Command::Replay(args) => {
            init_tracing("warn", false);
            telemetryflow::replay::replay(&args)
        }
        Command::Keys(args) => {
            init_tracing("warn", false);
            telemetryflow::keys::keys(&args)
        }
    }
}
