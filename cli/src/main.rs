//! `auditx`: one binary for every role and tool. Thin: parse the command
//! line and hand over to `auditx::commands`.

use auditx::commands::{demo, serve, tools};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "auditx", version, about = "Audit-trail exports at scale")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the main job on the embedded default: start everything, load
    /// sample data, export it and show where the files are.
    Demo(demo::DemoArgs),
    /// Serve the API on the embedded default (no external services).
    Standalone(serve::StandaloneArgs),
    /// Run a scheduler (API + scheduling) against RabbitMQ, Redis and S3.
    Scheduler(serve::RoleArgs),
    /// Run a worker against RabbitMQ and S3.
    Worker(serve::RoleArgs),
    /// Write deterministic synthetic audit data into the lake.
    Generate(tools::GenerateArgs),
    /// Mint a bearer token for a tenant.
    Token(tools::TokenArgs),
    /// Create an export, follow it and download its files.
    Export(tools::ExportArgs),
    /// Serve only the embedded S3 endpoint (for a distributed set-up on one
    /// machine).
    S3(serve::S3Args),
}

fn main() -> std::process::ExitCode {
    tune_malloc();
    // One rustls crypto provider for every TLS client of the process
    // (Redis, RabbitMQ, S3, JWKS), chosen before any of them is built.
    auditx_common::tls::crypto_provider();
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(cli.command)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The error and its causes on one line each, never a backtrace: a
        // user reads what went wrong and what to do, not where in the code.
        Err(error) => {
            eprintln!("auditx: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Two glibc allocator settings, each unless its environment variable is
/// set (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`), measured on the 5 M-row
/// export of the bench (`scripts/bench.sh`, docs/performance.md):
///
/// - **Two arenas.** glibc gives threads that contend for the allocator
///   arenas of their own (up to eight per core) and does not reuse the
///   memory one arena frees for another's requests: the `standalone`
///   process peaked at 455–520 MiB with the default, 276–284 MiB with two.
/// - **A fixed 1 MiB mmap threshold.** By default the threshold rises to the
///   size of the largest block freed (up to 32 MiB), so after the first
///   chunk the multi-megabyte buffers of every chunk (decoded columns,
///   rendered bytes, parts) come from the arenas, where they fragment and
///   stay resident. Fixed at 1 MiB they are mapped and returned whole:
///   peak 227 MiB instead of 284 MiB.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    const M_MMAP_THRESHOLD: i32 = -3;
    const M_ARENA_MAX: i32 = -8;
    extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    // SAFETY: mallopt only sets an allocator tunable; it runs before any
    // other thread of the process exists.
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        unsafe {
            mallopt(M_ARENA_MAX, 2);
        }
    }
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 1 << 20);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo(args) => demo::run(args).await,
        Command::Standalone(args) => serve::standalone(args).await,
        Command::Scheduler(args) => serve::scheduler(args).await,
        Command::Worker(args) => serve::worker(args).await,
        Command::Generate(args) => tools::generate(args).await,
        Command::Token(args) => tools::token(args),
        Command::Export(args) => tools::export(args).await,
        Command::S3(args) => serve::s3(args).await,
    }
}
