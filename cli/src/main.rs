//! `auditx`: one binary for every role and tool. Thin: parse the command
//! line and hand over to `auditx::commands`.

use auditx::commands::{bench, demo, serve, tools};
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
    /// Measure a large export end to end beside DuckDB on the same files.
    Bench(bench::BenchArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo(args) => demo::run(args).await,
        Command::Standalone(args) => serve::standalone(args).await,
        Command::Scheduler(args) => serve::scheduler(args).await,
        Command::Worker(args) => serve::worker(args).await,
        Command::Generate(args) => tools::generate(args).await,
        Command::Token(args) => tools::token(args),
        Command::Export(args) => tools::export(args).await,
        Command::S3(args) => serve::s3(args).await,
        Command::Bench(args) => bench::run(args).await,
    }
}
