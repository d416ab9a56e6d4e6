//! The real `chat serve` binary as a child process of the test, on the test's
//! own database and stream, so that a test can kill it (SIGKILL: no graceful
//! shutdown, nothing flushed) and start it again on the same state.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{TestApp, MYSQL, NATS, SECRET};

/// How long a (re)started process may take to answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

impl TestApp {
    /// A handle on a fresh database (created and migrated) and stream names
    /// for an app that runs as a separate process (see `ServerProcess`): no
    /// server in this process, `base` is a free port's address. Dropping it
    /// drops the database and the stream, like any `TestApp`.
    pub async fn for_process(name: &str) -> TestApp {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("chat_{name}_{suffix}");
        let database_url = format!("{MYSQL}/{database}");
        chat::db::migrate(&database_url).await.expect("database created and migrated");
        let pool = chat::db::connect(&database_url, 4).await.expect("test pool");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
        TestApp {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            jwt: chat::http::JwtKeys::new(SECRET),
            database,
            database_url,
            pool,
            stream: format!("{}_{suffix}", name.to_uppercase()),
            subject_prefix: format!("{name}_{suffix}.events"),
            nats_url: NATS.to_owned(),
            mysql_url: MYSQL.to_owned(),
            server: None,
            owns_resources: true,
        }
    }
}

/// `chat serve` (all roles) for a `TestApp::for_process` handle, listening on
/// the handle's `base`. Dropping it kills the process.
pub struct ServerProcess {
    env: Vec<(&'static str, String)>,
    /// `--role` arguments (none: every role).
    roles: Vec<&'static str>,
    log: tempfile::NamedTempFile,
    child: Option<Child>,
    /// How many times the process was started.
    pub starts: u32,
}

impl ServerProcess {
    /// Starts the server and waits until it is ready.
    pub async fn start(app: &TestApp) -> Self {
        let mut process = Self::configured(app, &app.base, &[], &app.nats_url, &[]);
        process.restart(&app.base).await;
        process
    }

    /// Starts `chat serve` with only `roles` (none: all), listening on `base`
    /// (unused without the API role), connected to `nats_url`, with `env` on
    /// top of the usual; waits until `/readyz` answers if it runs the API.
    pub async fn start_with(app: &TestApp, base: &str, roles: &[&'static str], nats_url: &str, env: &[(&'static str, String)]) -> Self {
        let mut process = Self::configured(app, base, roles, nats_url, env);
        process.restart(base).await;
        process
    }

    fn configured(app: &TestApp, base: &str, roles: &[&'static str], nats_url: &str, extra: &[(&'static str, String)]) -> Self {
        let listen = base.strip_prefix("http://").expect("http base").to_owned();
        let mut env = vec![
            ("DATABASE_URL", app.database_url.clone()),
            ("NATS_URL", nats_url.to_owned()),
            ("CHAT_JWT_SECRET", SECRET.to_owned()),
            ("CHAT_LISTEN", listen),
            ("CHAT_NATS_STREAM", app.stream.clone()),
            ("CHAT_NATS_SUBJECT_PREFIX", app.subject_prefix.clone()),
            ("CHAT_DB_MAX_CONNECTIONS", "16".to_owned()),
            // Setup registers every user as one admin, and clients retry in bursts after a restart.
            ("CHAT_RATE_LIMIT_PER_SECOND", "1000000".to_owned()),
            ("CHAT_RATE_LIMIT_BURST", "1000000".to_owned()),
            ("RUST_LOG", std::env::var("CHAT_SERVER_LOG").unwrap_or_else(|_| "warn".to_owned())),
            ("NO_COLOR", "1".to_owned()),
        ];
        env.extend(extra.iter().cloned());
        let log = tempfile::NamedTempFile::new().expect("server log file");
        Self { env, roles: roles.to_vec(), log, child: None, starts: 0 }
    }

    /// Starts the process again (it must not be running) and waits until `/readyz` answers 200.
    pub async fn restart(&mut self, base: &str) {
        assert!(self.child.is_none(), "the server is still running");
        let log = self.log.as_file().try_clone().expect("log handle");
        let child = Command::new(env!("CARGO_BIN_EXE_chat"))
            .arg("serve")
            .args(self.roles.iter().flat_map(|role| ["--role", role]))
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("chat serve starts");
        self.child = Some(child);
        self.starts += 1;
        if !self.roles.is_empty() && !self.roles.contains(&"api") {
            // No HTTP to ask: the process is up once it has connected.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return;
        }
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("client");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("chat serve exited with {status}; log:\n{}", self.log_tail(40));
            }
            if let Ok(answer) = client.get(format!("{base}/readyz")).send().await {
                if answer.status() == reqwest::StatusCode::OK {
                    return;
                }
            }
            assert!(started.elapsed() < READY_TIMEOUT, "chat serve not ready within {READY_TIMEOUT:?}; log:\n{}", self.log_tail(40));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: the process dies at once, whatever it was doing.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (graceful shutdown), then waits; kills it after `timeout`.
    pub async fn stop(&mut self, timeout: Duration) {
        let Some(mut child) = self.child.take() else { return };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: sends a signal to our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + timeout;
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chat serve did not stop within {timeout:?} of SIGTERM; log:\n{}", self.log_tail(40));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last `lines` lines of the process's output (every start).
    pub fn log_tail(&self, lines: usize) -> String {
        let mut text = String::new();
        let _ = std::fs::File::open(self.log_path()).and_then(|mut f| f.read_to_string(&mut text));
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Where the process's output goes.
    pub fn log_path(&self) -> PathBuf {
        self.log.path().to_owned()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
