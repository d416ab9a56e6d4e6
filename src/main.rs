//! The `chat` binary: `serve`, `migrate`, `token`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use chat::config::{Config, Role};
use chat::domain::UserId;
use chat::http::JwtKeys;
use chat::replay::EventFilter;

/// mimalloc instead of the system allocator: the server allocates a little
/// for every request, event and pushed frame, on two threads or more, and
/// glibc's malloc spent about a fifth of its CPU time on that under the
/// fan-out benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// The event log for analytics: export, schemas.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
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
enum EventsCommand {
    /// Write events as NDJSON (the lines of GET /api/v1/events), in position order.
    Export {
        /// Events after this position.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Up to and including this position.
        #[arg(long)]
        until: Option<u64>,
        /// Only this event type (repeat for several).
        #[arg(long = "type")]
        types: Vec<String>,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Print the JSON Schemas of every event type and version (or write them to a file).
    Schema {
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
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
        Command::Events { command: EventsCommand::Export { after, until, types, output } } => {
            export(&cli.config, EventFilter { after, until, types, stream_id: None }, output).await
        }
        Command::Events { command: EventsCommand::Schema { output } } => {
            let text = format!("{:#}\n", chat::domain::schema::event_schemas());
            match output {
                Some(path) => std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(())
        }
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

/// `chat events export`: NDJSON to stdout or a file, progress on stderr.
async fn export(config: &Config, filter: EventFilter, output: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let known = chat::replay::known_event_types();
    if let Some(unknown) = filter.types.iter().find(|t| !known.contains(t)) {
        anyhow::bail!("unknown event type {unknown}; known: {}", known.join(", "));
    }
    let pool = chat::db::connect(&config.database_url, 2).await.context("connecting")?;
    let head: u64 =
        sqlx::query_scalar("SELECT last_position FROM event_log_head WHERE id = 1").fetch_one(&pool).await.context("reading the head")?;
    let end = filter.until.unwrap_or(head).min(head);
    let bar = indicatif::ProgressBar::with_draw_target(Some(end.saturating_sub(filter.after)), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} positions ({per_sec}, eta {eta})",
    )?);
    let start = filter.after;
    let progress = |position: u64| bar.set_position(position.saturating_sub(start));
    let report = match output {
        Some(path) => {
            let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            chat::replay::export(&pool, &filter, &mut out, progress).await?
        }
        None => {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            chat::replay::export(&pool, &filter, &mut out, progress).await?
        }
    };
    bar.finish_and_clear();
    let seconds = report.elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "exported {} events ({:.1} MB) up to position {} in {:.2} s: {:.0} events/s, {:.1} MB/s",
        report.events,
        report.bytes as f64 / 1e6,
        report.last_position,
        seconds,
        report.events as f64 / seconds,
        report.bytes as f64 / 1e6 / seconds
    );
    Ok(())
}
