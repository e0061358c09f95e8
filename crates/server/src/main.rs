//! The `switchboard` binary: `serve` runs the runtime, `migrate` prepares the
//! database.

mod admin;
mod app;
mod cli;
mod config;
mod demo_shop;
mod edge;
mod gate;
mod handlers;
mod http;
mod identity;
mod limits;
mod outbound;
mod realtime;
mod routes;
mod state;
mod telemetry;
mod tenancy;
mod tokens;
mod web;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "switchboard", version, about = "Self-hosted multi-tenant AI chat runtime")]
struct Cli {
    /// Without a subcommand: `serve` on the embedded defaults.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded defaults without a file: SQLite under ./data, the demo model).
    Serve {
        /// A TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Create, list, show, update or delete tenants (a running server picks changes up).
    Tenant(Box<cli::tenant::TenantArgs>),
    /// Development user JWTs: `token mint --tenant ID --sub ID [--name N] [--role user|admin] [--ttl SECS]`.
    Token {
        #[command(subcommand)]
        command: cli::token::TokenCommand,
    },
    /// Content keys: `keys generate` prints a new one; `keys rotate [--batch N]` re-encrypts stored content under the first.
    Keys {
        #[command(subcommand)]
        command: cli::keys::KeysCommand,
    },
}

fn main() -> ExitCode {
    // Before any thread exists: it sets an environment variable.
    demo_shop::ensure_secret();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("switchboard: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve { config: None }) {
            Command::Serve { config } => {
                let config = config::Config::load(config.as_deref()).map_err(|e| e.to_string())?;
                app::serve(config).await.map_err(|e| e.to_string())
            }
            Command::Migrate { config } => {
                let config = config::Config::load(config.as_deref()).map_err(|e| e.to_string())?;
                app::open_store(&config, true).await.map_err(|e| e.to_string())?;
                println!("switchboard: database is up to date");
                Ok(())
            }
            Command::Tenant(args) => cli::tenant::run(*args).await,
            Command::Token { command } => cli::token::run(command).await,
            Command::Keys { command } => cli::keys::run(command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard: {e}");
            ExitCode::FAILURE
        }
    }
}
