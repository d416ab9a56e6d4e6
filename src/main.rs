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
    /// Read-model maintenance.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
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

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Rebuild every read model from the event log into fresh tables and swap
    /// them in; the API stays up meanwhile.
    Rebuild,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    chat::telemetry::init_logs();
    match cli.command {
        Command::Serve { roles } => serve(cli.config, roles).await,
        Command::Projections { command: ProjectionsCommand::Rebuild } => rebuild(&cli.config).await,
        Command::Migrate => {
            chat::db::migrate(&cli.config.database_url).await.context("migrating")?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Token { user, scope, ttl } => {
            let user = UserId::new(user).context("the user id must be from 1 to 2147483647")?;
            let token = JwtKeys::new(&cli.config.jwt_secret).issue(user, scope.as_deref(), ttl).context("signing the token")?;
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
    let server = chat::server::start(config, &roles).await.context("starting the server")?;
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

/// `chat projections rebuild`, with a progress bar and a final events/s figure.
async fn rebuild(config: &Config) -> anyhow::Result<()> {
    chat::db::migrate(&config.database_url).await.context("migrating")?;
    let pool = chat::db::connect(&config.database_url, 4).await.context("connecting")?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} events ({per_sec}, eta {eta})")
            .context("progress style")?,
    );
    let report = chat::projections::rebuild::rebuild(&pool, |applied, head| {
        bar.set_length(head);
        bar.set_position(applied);
    })
    .await
    .context("rebuilding the read models")?;
    bar.finish();
    println!(
        "rebuilt {} events up to position {} in {:.1} s: {:.0} events/s",
        report.events,
        report.position,
        report.elapsed.as_secs_f64(),
        report.events_per_second()
    );
    Ok(())
}
