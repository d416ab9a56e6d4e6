//! The `chat` binary: `serve`, `migrate`, `token`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use chat::config::{Config, Role};
use chat::domain::UserId;
use chat::http::JwtKeys;

/// Event-sourced real-time chat backend.
#[derive(Parser)]
#[command(name = "chat", version, about)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the event publisher (or only the roles given).
    Serve {
        /// Roles to run; all of them by default.
        #[arg(long = "role", value_enum)]
        roles: Vec<Role>,
    },
    /// Create the database if missing and apply pending migrations.
    Migrate,
    /// Print a bearer token for a user (local use).
    Token {
        /// The user id (`sub`).
        #[arg(long)]
        user: i64,
        /// Space-separated scopes, e.g. "chat:admin events:read".
        #[arg(long)]
        scope: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: i64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    chat::telemetry::init_logs();
    match cli.command {
        Command::Serve { roles } => serve(cli.config, roles).await,
        Command::Migrate => {
            chat::db::migrate(&cli.config.database_url)
                .await
                .context("migrating")?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Token { user, scope, ttl } => {
            let user = UserId::new(user).context("the user id must be from 1 to 2147483647")?;
            let token = JwtKeys::new(&cli.config.jwt_secret)
                .issue(user, scope.as_deref(), ttl)
                .context("signing the token")?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn serve(config: Config, mut roles: Vec<Role>) -> anyhow::Result<()> {
    if roles.is_empty() {
        roles = Role::ALL.to_vec();
    }
    if config.uses_default_secret() {
        tracing::warn!("CHAT_JWT_SECRET is not set: using the development secret");
    }
    chat::telemetry::metrics_handle();
    let server = chat::server::start(config, &roles)
        .await
        .context("starting the server")?;
    let token = server.shutdown_token();
    tokio::spawn(cancel_on_signal(token));
    server.wait().await;
    Ok(())
}

/// Cancels `token` on SIGTERM or Ctrl-C.
async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("signal received");
    token.cancel();
}
