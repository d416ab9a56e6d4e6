//! Shared helpers of the integration tests: spawn the real app on a free port
//! against the real MariaDB and NATS, each test with its own database and its
//! own JetStream stream, and talk to it over HTTP.

#![allow(dead_code)]

pub mod js_client;
pub mod load;
pub mod mariadb_process;
pub mod nats_cluster;
pub mod nats_process;
pub mod server_process;
pub mod ws;

use std::time::Duration;

use chat::config::{Config, Limits, Role};
use chat::domain::UserId;
use chat::http::JwtKeys;
use chat::server::RunningServer;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::MySqlPool;

pub const MYSQL: &str = "mysql://root@127.0.0.1:3306";
pub const NATS: &str = "nats://127.0.0.1:4222";
pub const SECRET: &str = "test-secret";

/// A running app and what a test needs to talk to it.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub jwt: JwtKeys,
    pub database: String,
    pub database_url: String,
    pub pool: MySqlPool,
    pub stream: String,
    pub subject_prefix: String,
    pub nats_url: String,
    /// The MySQL server's URL, without a database.
    pub mysql_url: String,
    server: Option<RunningServer>,
    owns_resources: bool,
}

/// An answer: status and JSON body (Null when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    /// The problem document's `code`.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

/// Starts the app against the shared NATS.
pub async fn spawn_app() -> TestApp {
    spawn_app_with_nats(NATS).await
}

/// Starts the app against the given NATS server.
pub async fn spawn_app_with_nats(nats_url: &str) -> TestApp {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (database, stream, prefix) = (format!("chat_test_{suffix}"), format!("TEST_{suffix}"), format!("test_{suffix}.events"));
    start(database, nats_url, stream, prefix, &Role::ALL).await
}

/// Starts the app with only some roles (e.g. no projector).
pub async fn spawn_app_with_roles(roles: &[Role]) -> TestApp {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (database, stream, prefix) = (format!("chat_test_{suffix}"), format!("TEST_{suffix}"), format!("test_{suffix}.events"));
    start(database, NATS, stream, prefix, roles).await
}

/// Starts a second app on the same database, NATS and stream as `other`
/// (a restart, or another process of the same deployment). It does not
/// clean up: `other` does.
pub async fn spawn_app_sharing(other: &TestApp) -> TestApp {
    spawn_app_sharing_with_roles(other, &Role::ALL).await
}

/// Like `spawn_app_sharing`, with only some roles.
pub async fn spawn_app_sharing_with_roles(other: &TestApp, roles: &[Role]) -> TestApp {
    let (database, stream, prefix) = (other.database.clone(), other.stream.clone(), other.subject_prefix.clone());
    let mut app = start(database, &other.nats_url, stream, prefix, roles).await;
    app.owns_resources = false;
    app
}

/// Starts an API-only process on the same database, NATS and stream as
/// `other`, with its read cache `read_cache_mb` large (0: none); its queries
/// follow a projector in another process. It does not clean up: `other` does.
pub async fn spawn_api_sharing(other: &TestApp, read_cache_mb: usize) -> TestApp {
    let (database, stream, prefix) = (other.database.clone(), other.stream.clone(), other.subject_prefix.clone());
    let mut app = start_configured(&other.mysql_url, database, &other.nats_url, stream, prefix, &[Role::Api], |config| {
        config.read_cache_mb = read_cache_mb
    })
    .await;
    app.owns_resources = false;
    app
}

/// Starts the app with the given abuse limits (other tests run without rate limits).
pub async fn spawn_app_with_limits(limits: Limits) -> TestApp {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (database, stream, prefix) = (format!("chat_test_{suffix}"), format!("TEST_{suffix}"), format!("test_{suffix}.events"));
    start_configured(MYSQL, database, NATS, stream, prefix, &Role::ALL, |config| config.limits = limits).await
}

/// Starts the app allowing browser calls from `origins` (CORS).
pub async fn spawn_app_with_cors(origins: &[&str]) -> TestApp {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (database, stream, prefix) = (format!("chat_test_{suffix}"), format!("TEST_{suffix}"), format!("test_{suffix}.events"));
    let origins = origins.iter().map(|o| o.to_string()).collect();
    start_configured(MYSQL, database, NATS, stream, prefix, &Role::ALL, |config| config.cors_origins = origins).await
}

/// Starts the app against the given MySQL server (URL without a database) and NATS.
pub async fn spawn_app_on(mysql_url: &str, nats_url: &str) -> TestApp {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (database, stream, prefix) = (format!("chat_test_{suffix}"), format!("TEST_{suffix}"), format!("test_{suffix}.events"));
    start_configured(mysql_url, database, nats_url, stream, prefix, &Role::ALL, |_| ()).await
}

async fn start(database: String, nats_url: &str, stream: String, subject_prefix: String, roles: &[Role]) -> TestApp {
    start_configured(MYSQL, database, nats_url, stream, subject_prefix, roles, |_| ()).await
}

async fn start_configured(
    mysql_url: &str,
    database: String,
    nats_url: &str,
    stream: String,
    subject_prefix: String,
    roles: &[Role],
    configure: impl FnOnce(&mut Config),
) -> TestApp {
    if std::env::var_os("RUST_LOG").is_some() {
        chat::telemetry::init_logs();
    }
    let database_url = format!("{mysql_url}/{database}");
    let mut config = Config {
        database_url: database_url.clone(),
        nats_url: nats_url.to_owned(),
        jwt_secret: SECRET.to_owned(),
        listen: "127.0.0.1:0".parse().expect("address"),
        nats_stream: stream.clone(),
        nats_subject_prefix: subject_prefix.clone(),
        nats_replicas: 1,
        db_max_connections: 8,
        aggregate_cache: 1000,
        aggregate_cache_events: 2_000_000,
        read_cache_mb: 64,
        read_wait_ms: 2000,
        ws_queue: 64,
        cors_origins: Vec::new(),
        limits: Limits::UNLIMITED_RATE,
    };
    configure(&mut config);
    let server = chat::server::start(config, roles).await.expect("app starts");
    // A process without the API role has no address; its `base` is unusable.
    let base = server.addr.map(|addr| format!("http://{addr}")).unwrap_or_default();
    let pool = chat::db::connect(&database_url, 4).await.expect("test pool");
    TestApp {
        base,
        client: reqwest::Client::new(),
        jwt: JwtKeys::new(SECRET),
        database,
        database_url,
        pool,
        stream,
        subject_prefix,
        nats_url: nats_url.to_owned(),
        mysql_url: mysql_url.to_owned(),
        server: Some(server),
        owns_resources: true,
    }
}

pub fn user(id: i64) -> UserId {
    UserId::new(id).expect("test user id")
}

impl TestApp {
    pub fn token(&self, id: i64) -> String {
        self.jwt.issue(user(id), None, 3600).expect("token")
    }

    pub fn admin_token(&self) -> String {
        self.jwt.issue(user(1), Some("chat:admin"), 3600).expect("token")
    }

    /// Sends a request with an optional token, JSON body and extra headers.
    /// The request is built before the future is returned, so the arguments
    /// may be temporaries.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> impl std::future::Future<Output = Answer> + Send + 'static {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        async move {
            let response = request.send().await.expect("request sent");
            let status = response.status();
            let headers = response.headers().clone();
            let text = response.text().await.expect("body");
            let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
            Answer { status, body, headers }
        }
    }

    /// A request as user `as_user` to `/api/v1{path}`.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        as_user: i64,
        body: Option<Value>,
    ) -> impl std::future::Future<Output = Answer> + Send + 'static {
        let token = self.token(as_user);
        self.request(method, &format!("/api/v1{path}"), Some(&token), body, &[])
    }

    /// Registers users in the directory.
    pub async fn register_users(&self, ids: impl IntoIterator<Item = i64>) {
        let admin = self.admin_token();
        for id in ids {
            let body = json!({"first_name": format!("First{id}"), "last_name": format!("Last{id}")});
            let answer = self.request(Method::PUT, &format!("/api/v1/users/{id}"), Some(&admin), Some(body), &[]).await;
            assert_eq!(answer.status, StatusCode::OK, "registering user {id}: {:?}", answer.body);
        }
    }

    /// Registers a posting and answers its id.
    pub async fn register_posting(&self, title: &str) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        let answer = self
            .request(Method::PUT, &format!("/api/v1/postings/{id}"), Some(&self.admin_token()), Some(json!({"title": title})), &[])
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        id
    }

    /// Creates a GROUP owned by `owner` with `members`; answers its id.
    pub async fn create_group(&self, owner: i64, members: &[i64]) -> String {
        let body = json!({"type": "GROUP", "name": "team", "participant_ids": members});
        let answer = self.call(Method::POST, "/conversations", owner, Some(body)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        answer.body["conversation_id"].as_str().expect("conversation_id").to_owned()
    }

    /// Creates a DIRECT between `a` and `b`; answers its id.
    pub async fn create_direct(&self, a: i64, b: i64) -> String {
        let answer = self.call(Method::POST, "/conversations", a, Some(json!({"type": "DIRECT", "participant_ids": [b]}))).await;
        assert!(answer.status.is_success(), "{:?}", answer.body);
        answer.body["conversation_id"].as_str().expect("conversation_id").to_owned()
    }

    /// Sends a text message; answers its id.
    pub async fn send(&self, as_user: i64, conversation: &str, content: &str) -> String {
        let answer =
            self.call(Method::POST, &format!("/conversations/{conversation}/messages"), as_user, Some(json!({"content": content}))).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        answer.body["message_id"].as_str().expect("message_id").to_owned()
    }

    /// Number of events in the log.
    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM event_log").fetch_one(&self.pool).await.expect("count")
    }

    /// The event types of one stream, in version order.
    pub async fn stream_types(&self, stream_id: &str) -> Vec<String> {
        sqlx::query_scalar("SELECT event_type FROM event_log WHERE stream_id = ? ORDER BY stream_version")
            .bind(stream_id)
            .fetch_all(&self.pool)
            .await
            .expect("stream")
    }

    /// Waits until the publisher has published everything appended.
    pub async fn wait_published(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (head, cursor): (u64, Option<u64>) = sqlx::query_as(
                "SELECT h.last_position, (SELECT last_position FROM publication_cursor WHERE name = 'jetstream') FROM event_log_head h",
            )
            .fetch_one(&self.pool)
            .await
            .expect("cursor");
            if cursor.unwrap_or(0) >= head {
                return true;
            }
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the app gracefully.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }
}

impl Drop for TestApp {
    /// Drops the test's database and stream, whatever the test's outcome.
    fn drop(&mut self) {
        if !self.owns_resources {
            return;
        }
        let database = self.database.clone();
        let stream = self.stream.clone();
        let nats_url = self.nats_url.clone();
        let mysql_url = self.mysql_url.clone();
        let server = self.server.take();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                drop(server);
                if let Ok(pool) = chat::db::connect(&mysql_url, 2).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{database}`")).execute(&pool).await;
                }
                let connect = async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_secs(1))
                    .connect(nats_url.split(',').collect::<Vec<_>>());
                if let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(2), connect).await {
                    let _ = async_nats::jetstream::new(client).delete_stream(&stream).await;
                }
            });
        })
        .join();
    }
}

/// One message read back from the test's JetStream stream.
#[derive(Debug, Clone)]
pub struct Published {
    pub subject: String,
    pub msg_id: String,
    pub position: u64,
    pub event_type: String,
    pub schema_version: String,
    pub payload: Value,
    /// When JetStream stored it.
    pub stored_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl TestApp {
    /// Reads every message of the test's stream with a pull consumer, from
    /// the start, until none arrives for `quiet`.
    pub async fn consume_all(&self, quiet: Duration) -> Vec<Published> {
        use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
        use futures::StreamExt;
        let client = async_nats::connect(self.nats_url.split(',').collect::<Vec<_>>()).await.expect("nats");
        let js = async_nats::jetstream::new(client);
        // A cluster that just lost a node may time out a request while it elects leaders: retry.
        let mut attempts = 0;
        let mut messages = loop {
            attempts += 1;
            let made = async {
                let stream = js.get_stream(&self.stream).await.map_err(|e| e.to_string())?;
                let config = pull::Config { deliver_policy: DeliverPolicy::All, ack_policy: AckPolicy::None, ..Default::default() };
                let consumer = stream.create_consumer(config).await.map_err(|e| e.to_string())?;
                consumer.messages().await.map_err(|e| e.to_string())
            };
            match made.await {
                Ok(messages) => break messages,
                Err(error) if attempts >= 20 => panic!("no consumer on the stream after {attempts} attempts: {error}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        };
        let mut out = Vec::new();
        while let Ok(Some(Ok(message))) = tokio::time::timeout(quiet, messages.next()).await {
            let headers = message.headers.clone().unwrap_or_default();
            let header = |name: &str| headers.get(name).map(|v| v.as_str().to_owned()).unwrap_or_default();
            out.push(Published {
                subject: message.subject.to_string(),
                msg_id: headers.get(async_nats::header::NATS_MESSAGE_ID).map(|v| v.as_str().to_owned()).unwrap_or_default(),
                position: header("Chat-Position").parse().unwrap_or(0),
                event_type: header("Chat-Event-Type"),
                schema_version: header("Chat-Schema-Version"),
                payload: serde_json::from_slice(&message.payload).unwrap_or(Value::Null),
                stored_at: message
                    .info()
                    .ok()
                    .and_then(|info| chrono::DateTime::from_timestamp_nanos(info.published.unix_timestamp_nanos() as i64).into()),
            });
        }
        out
    }

    /// The event log as (position, event_id, stream_type, stream_id, event_type).
    pub async fn log(&self) -> Vec<(u64, String, String, String, String)> {
        sqlx::query_as("SELECT position, event_id, stream_type, stream_id, event_type FROM event_log ORDER BY position")
            .fetch_all(&self.pool)
            .await
            .expect("log")
    }

    /// Checks that `published` is exactly the event log, once each, in order,
    /// with the documented subject, headers and payload.
    pub async fn assert_published_exactly_once(&self, published: &[Published]) {
        let log = self.log().await;
        assert_eq!(published.len(), log.len(), "one message per event");
        for (message, (position, event_id, stream_type, stream_id, event_type)) in published.iter().zip(&log) {
            assert_eq!(message.position, *position, "in position order");
            assert_eq!(message.msg_id, *event_id);
            assert_eq!(message.subject, format!("{}.{stream_type}.{stream_id}.{event_type}", self.subject_prefix));
            assert_eq!(message.event_type, *event_type);
            assert_eq!(message.schema_version, chat::domain::upcasting::current_version(event_type).to_string());
            assert_eq!(message.payload["position"], *position);
            assert_eq!(message.payload["event_id"], event_id.as_str());
            assert_eq!(message.payload["stream_id"], stream_id.as_str());
            assert_eq!(message.payload["type"], event_type.as_str());
            assert!(message.payload["data"].is_object() && message.payload["metadata"].is_object());
            assert!(message.payload["recorded_at"].as_str().is_some_and(|t| t.ends_with('Z')));
        }
    }
}

/// The read-model tables, in dependency order.
pub const READ_MODELS: [&str; 6] = ["app_users", "POSTINGS", "CONVERSATIONS", "CONVERSATION_PARTICIPANTS", "MESSAGES", "MESSAGE_REACTIONS"];

impl TestApp {
    /// Every row of every read-model table, each as one string of all its columns.
    pub async fn read_model_rows(&self) -> Vec<(String, Vec<String>)> {
        let mut all = Vec::new();
        for table in READ_MODELS {
            let columns: Vec<String> = sqlx::query_scalar(
                "SELECT CAST(column_name AS CHAR) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(&self.pool)
            .await
            .expect("columns");
            let cells = columns.iter().map(|c| format!("IFNULL(CAST(`{c}` AS CHAR), 'NULL')")).collect::<Vec<_>>().join(", ");
            let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT CONCAT_WS('|', {cells}) FROM `{table}` ORDER BY id"))
                .fetch_all(&self.pool)
                .await
                .expect("rows");
            all.push((table.to_owned(), rows));
        }
        all
    }

    /// Waits until the read models have applied everything in the log.
    pub async fn wait_projected(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (head, applied): (u64, Option<u64>) = sqlx::query_as(
                "SELECT h.last_position, (SELECT position FROM projection_checkpoints WHERE name = 'read_models') FROM event_log_head h",
            )
            .fetch_one(&self.pool)
            .await
            .expect("checkpoint");
            if applied.unwrap_or(0) >= head {
                return true;
            }
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
