//! The `switchboard` binary: `serve` runs the runtime, `migrate` prepares the
//! database. The runtime itself is the `switchboard_server` library.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use switchboard_server::{app, cli, config, demo_shop, logging};

/// mimalloc rather than the C library's malloc: a turn allocates hundreds
/// of small buffers on threads that hand them to each other, which glibc's
/// arenas serve slowly (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let command = cli.command.unwrap_or(Command::Serve { config: None });
    // The configuration first: it says how to log. Loading it logs nothing.
    let config = match &command {
        Command::Serve { config } | Command::Migrate { config } => {
            Some(config::Config::load(config.as_deref()))
        }
        _ => None,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("switchboard: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let loaded_ok = config.as_ref().and_then(|c| c.as_ref().ok());
    let format = loaded_ok.map_or_else(Default::default, |c| c.log_format);
    // Only a serving process exports spans; its exporter runs on the runtime.
    let otlp = loaded_ok.filter(|_| matches!(command, Command::Serve { .. })).and_then(|c| c.otlp.as_ref());
    let entered = runtime.enter();
    if let Err(e) = logging::init(format, otlp) {
        eprintln!("switchboard: {e}");
        return ExitCode::FAILURE;
    }
    drop(entered);
    let result = runtime.block_on(async {
        match command {
            Command::Serve { .. } => app::serve(loaded(config)?).await.map_err(|e| e.to_string()),
            Command::Migrate { .. } => {
                app::open_store(&loaded(config)?, true).await.map_err(|e| e.to_string())?;
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

/// The configuration `main` loaded for `serve` and `migrate`.
fn loaded<E: std::fmt::Display>(config: Option<Result<config::Config, E>>) -> Result<config::Config, String> {
    config.ok_or("no configuration was loaded")?.map_err(|e| e.to_string())
}
