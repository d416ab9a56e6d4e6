//! Wires the parts of `chat serve` together and shuts them down in order:
//! stop accepting requests and finish those in flight, then drain the
//! appender, then publish what is left.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::app::idempotency::IdempotencyStore;
use crate::app::{AggregateCache, Executor};
use crate::config::{Config, Role};
use crate::database_watch::DatabaseWatch;
use crate::db::{self, DbError};
use crate::event_store::{Appender, EventReader};
use crate::health::Health;
use crate::http::{self, CommandRateLimiter, JwtKeys, Services};
use crate::projections::worker::{Connections, ProjectionWorker, WorkerConfig};
use crate::publisher::{Publisher, PublisherConfig};
use crate::queries::{ProjectionProgress, ReadCache};
use crate::realtime::{Hub, HubConfig};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("invalid NATS configuration: {0}")]
    Nats(String),
    #[error(transparent)]
    Cors(#[from] http::InvalidOrigin),
    #[error("cannot start the appender thread: {0}")]
    Thread(std::io::Error),
}

/// A started server: its address, and the handle to stop it.
pub struct RunningServer {
    pub addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// Asks every part to stop (as SIGTERM does).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops gracefully and waits until everything in flight is done.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Waits for the server to stop (after the shutdown token is cancelled).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Migrates, connects and starts the given roles.
pub async fn start(config: Config, roles: &[Role]) -> Result<RunningServer, StartError> {
    db::migrate(&config.database_url).await?;
    let pool = db::connect(&config.database_url, config.db_max_connections).await?;
    let nats = crate::nats::connect(config.nats_url.as_str()).await.map_err(|e| StartError::Nats(e.to_string()))?;

    let (appender, appender_task) = Appender::start(&pool).map_err(StartError::Thread)?;
    let shutdown = CancellationToken::new();
    let publisher_stop = CancellationToken::new();
    let publisher_task = roles.contains(&Role::Publisher).then(|| {
        let config = PublisherConfig {
            stream: config.nats_stream.clone(),
            subject_prefix: config.nats_subject_prefix.clone(),
            replicas: config.nats_replicas,
        };
        let publisher = Publisher::new(pool.clone(), nats.clone(), config, appender.head());
        tokio::spawn(publisher.run(publisher_stop.clone()))
    });

    let (applied_tx, applied) = tokio::sync::watch::channel(0u64);
    let projector_task = if roles.contains(&Role::Projector) {
        let connections = Connections { database_url: config.database_url.clone(), nats_url: config.nats_url.clone() };
        let worker_config = WorkerConfig { stream: config.nats_stream.clone() };
        Some(ProjectionWorker::start_on_own_thread(connections, worker_config, applied_tx, shutdown.clone()).map_err(StartError::Thread)?)
    } else {
        None
    };

    let idempotency = IdempotencyStore::new(pool.clone());
    let sweeper = tokio::spawn(sweep_idempotency_keys(idempotency.clone(), shutdown.clone()));

    let (addr, http_task) = if roles.contains(&Role::Api) {
        let progress = ProjectionProgress::new(pool.clone(), applied.clone());
        let read_cache = ReadCache::new(config.read_cache_mb.saturating_mul(1024 * 1024));
        tokio::spawn(crate::queries::cache::follow(
            read_cache.clone(),
            EventReader::new(pool.clone()),
            progress.clone(),
            applied.clone(),
            shutdown.clone(),
        ));
        let hub = Hub::start(
            pool.clone(),
            progress.clone(),
            applied.clone(),
            read_cache.clone(),
            HubConfig {
                queue_capacity: config.ws_queue.max(1),
                connections_per_user: config.limits.realtime_connections_per_user.max(1),
                ..HubConfig::default()
            },
            shutdown.clone(),
        )
        .await
        .map_err(|e| StartError::Database(DbError::Connect(sqlx::Error::Protocol(e.to_string()))))?;
        let live =
            crate::realtime::LiveSignals::start(nats.clone(), &config.nats_subject_prefix, hub.clone(), pool.clone(), shutdown.clone())
                .await
                .map_err(|e| StartError::Nats(e.to_string()))?;
        let in_process = http::InProcessRouter::default();
        let rate_limiter = CommandRateLimiter::new(&config.limits);
        tokio::spawn(rate_limiter.clone().forget_idle_users(shutdown.clone()));
        let services = Arc::new(Services {
            pool: pool.clone(),
            jwt: JwtKeys::new(&config.jwt_secret),
            executor: Executor::new(appender.clone(), EventReader::new(pool.clone())),
            idempotency,
            conversations: AggregateCache::new(config.aggregate_cache, config.aggregate_cache_events),
            users: AggregateCache::new(config.aggregate_cache, config.aggregate_cache_events),
            postings: AggregateCache::new(config.aggregate_cache, config.aggregate_cache_events),
            health: Health::new(pool.clone(), Some(nats.clone())),
            database: DatabaseWatch::start(&config.database_url, shutdown.clone())
                .map_err(|e| StartError::Database(DbError::Connect(e)))?,
            progress,
            read_cache,
            read_wait: Duration::from_millis(config.read_wait_ms),
            shutdown: shutdown.clone(),
            hub: Some(hub.clone()),
            live: Some(live),
            in_process: in_process.clone(),
            metrics: crate::telemetry::metrics_handle(),
            limits: config.limits,
            rate_limiter: rate_limiter.clone(),
        });
        // After `metrics_handle()` above has installed the recorder.
        crate::telemetry::describe_limits(&config.limits, config.ws_queue);
        let listener = TcpListener::bind(config.listen).await.map_err(|e| StartError::Listen(config.listen, e))?;
        let addr = listener.local_addr().map_err(|e| StartError::Listen(config.listen, e))?;
        let api = http::router(services);
        in_process.set(api.clone());
        let in_process_router = in_process.clone();
        let socket_io = http::socketio::layer(hub.clone(), JwtKeys::new(&config.jwt_secret), in_process, shutdown.clone());
        let router = http::with_cors(api.layer(socket_io), &config.cors_origins).map_err(StartError::Cors)?;
        let (stop, limits) = (shutdown.clone(), config.limits);
        let task = tokio::spawn(
            async move {
                http::serve(listener, router, limits, stop).await;
            }
            .instrument(tracing::info_span!("http", %addr)),
        );
        tracing::info!(%addr, "listening");
        (Some(addr), Some((task, in_process_router)))
    } else {
        (None, None)
    };
    drop(appender);

    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        stop.cancelled().await;
        tracing::info!("shutting down: finishing requests in flight");
        if let Some((http, in_process)) = http_task {
            let _ = http.await;
            // The router's own handle on itself (for socket commands) goes last.
            in_process.clear();
        }
        // Every command handle is gone with the router: the appender drains its queue and ends.
        let _ = appender_task.await;
        tracing::info!("appender drained; publishing what is left");
        publisher_stop.cancel();
        if let Some(publisher) = publisher_task {
            if tokio::time::timeout(Duration::from_secs(10), publisher).await.is_err() {
                tracing::warn!("publisher did not finish within 10 s; the rest is published at next start");
            }
        }
        let _ = sweeper.await;
        if let Some(projector) = projector_task {
            let _ = projector.await;
        }
        pool.close().await;
        tracing::info!("stopped");
    });
    Ok(RunningServer { addr, shutdown, task })
}

/// Deletes expired idempotency keys every ten minutes.
async fn sweep_idempotency_keys(store: IdempotencyStore, shutdown: CancellationToken) {
    loop {
        match store.sweep().await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "expired idempotency keys deleted"),
            Err(error) => tracing::warn!(%error, "idempotency key sweep failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
