//! A MariaDB server of the test's own, on a free port with its own data
//! directory, that the test may kill and restart (never the shared one).
//!
//! The data directory is made once by `mariadb-install-db` (about a second:
//! no test database, small InnoDB files); root has an empty password.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A test-owned `mariadbd`.
pub struct MariaDbProcess {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// The first of `candidates` that exists, or the bare name (found on PATH).
fn binary(candidates: &[&str], name: &str) -> PathBuf {
    candidates.iter().map(PathBuf::from).find(|p| p.exists()).unwrap_or_else(|| PathBuf::from(name))
}

/// Settings shared by the installation and the server: small InnoDB files,
/// the shared server's character set, nothing read from /etc/mysql.
fn common_args(data: &Path) -> Vec<String> {
    vec![
        "--no-defaults".into(),
        "--user=root".into(),
        format!("--datadir={}", data.display()),
        "--innodb-buffer-pool-size=32M".into(),
        "--innodb-log-file-size=8M".into(),
        "--character-set-server=utf8mb4".into(),
        "--collation-server=utf8mb4_general_ci".into(),
        "--skip-name-resolve".into(),
    ]
}

impl MariaDbProcess {
    /// Installs a fresh data directory, starts the server on a free port and
    /// waits until it accepts queries.
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
        let dir = tempfile::tempdir().expect("mariadb dir");
        let data = dir.path().join("data");
        let install =
            tokio::process::Command::new(binary(&["/usr/bin/mariadb-install-db", "/usr/sbin/mariadb-install-db"], "mariadb-install-db"))
                .args(common_args(&data))
                .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
                .output()
                .await
                .expect("mariadb-install-db runs (is MariaDB installed?)");
        assert!(
            install.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&install.stdout),
            String::from_utf8_lossy(&install.stderr)
        );
        let mut process = Self { port, dir, child: None };
        process.restart().await;
        process
    }

    /// The server's URL, without a database.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on the same port and data directory and waits
    /// until it answers a query (InnoDB crash recovery included).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let dir = self.dir.path();
        let child = Command::new(binary(&["/usr/sbin/mariadbd", "/usr/bin/mariadbd"], "mariadbd"))
            .args(common_args(&dir.join("data")))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", dir.join("mariadb.sock").display()))
            .arg(format!("--pid-file={}", dir.join("mariadb.pid").display()))
            .arg(format!("--log-error={}", dir.join("error.log").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd starts");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::time::Instant::now() < deadline {
            let probe = async {
                let pool = chat::db::connect(&self.url(), 1).await.ok()?;
                let one: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await.ok()?;
                pool.close().await;
                Some(one)
            };
            if tokio::time::timeout(Duration::from_secs(5), probe).await.ok().flatten() == Some(1) {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("mariadbd exited with {status}: {}", self.error_log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("mariadbd did not start on port {}: {}", self.port, self.error_log());
    }

    /// Kills the server at once (SIGKILL): a crash, as far as clients and
    /// InnoDB can tell.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The end of the server's error log, for failure messages.
    pub fn error_log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for MariaDbProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
