//! A three-node NATS JetStream cluster of the test's own (free ports, own
//! stores), whose nodes the test may kill and restart (never the shared NATS).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One node of the cluster.
struct Node {
    name: String,
    client_port: u16,
    cluster_port: u16,
    store: tempfile::TempDir,
    log: tempfile::NamedTempFile,
    child: Option<Child>,
}

/// A JetStream cluster of three nodes on 127.0.0.1.
pub struct NatsCluster {
    nodes: Vec<Node>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

impl NatsCluster {
    /// Starts three nodes and waits until JetStream has a meta leader.
    pub async fn start() -> Self {
        let nodes = (1..=3)
            .map(|n| Node {
                name: format!("n{n}"),
                client_port: free_port(),
                cluster_port: free_port(),
                store: tempfile::tempdir().expect("store dir"),
                log: tempfile::NamedTempFile::new().expect("log file"),
                child: None,
            })
            .collect();
        let mut cluster = Self { nodes };
        for n in 0..3 {
            cluster.start_node(n);
        }
        for n in 0..3 {
            cluster.wait_listening(n).await;
        }
        cluster.wait_for_jetstream().await;
        cluster
    }

    /// Every node's client URL, starting with node `first`'s (a client connects to the
    /// first it can and learns of the others).
    pub fn urls_from(&self, first: usize) -> String {
        (0..3).map(|i| format!("nats://127.0.0.1:{}", self.nodes[(first + i) % 3].client_port)).collect::<Vec<_>>().join(",")
    }

    fn start_node(&mut self, n: usize) {
        let routes: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != n)
            .map(|(_, node)| format!("nats://127.0.0.1:{}", node.cluster_port))
            .collect();
        let node = &mut self.nodes[n];
        let binary = if std::path::Path::new("/usr/sbin/nats-server").exists() { "/usr/sbin/nats-server" } else { "nats-server" };
        let log = node.log.as_file().try_clone().expect("log handle");
        let child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &node.client_port.to_string(), "-js", "-n", &node.name, "--cluster_name", "chat-test"])
            .args(["--cluster", &format!("nats://127.0.0.1:{}", node.cluster_port), "--routes", &routes.join(",")])
            .arg("-sd")
            .arg(node.store.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts (is it on PATH?)");
        node.child = Some(child);
    }

    async fn wait_listening(&self, n: usize) {
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.nodes[n].client_port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nats node {} did not start; log:\n{}", self.nodes[n].name, self.log(n));
    }

    /// Waits until a replicated stream can be made (the cluster has elected its JetStream leader).
    async fn wait_for_jetstream(&self) {
        let client = async_nats::connect(self.urls_from(0).split(',').collect::<Vec<_>>()).await.expect("connects to the cluster");
        let js = async_nats::jetstream::new(client);
        for _ in 0..150 {
            let probe = async_nats::jetstream::stream::Config {
                name: format!("PROBE_{}", uuid::Uuid::new_v4().simple()),
                subjects: vec![format!("probe.{}", uuid::Uuid::new_v4().simple())],
                num_replicas: 3,
                ..Default::default()
            };
            if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(2), js.create_stream(probe)).await {
                let _ = js.delete_stream(&stream.cached_info().config.name).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the NATS cluster never elected a JetStream leader; log:\n{}", self.log(0));
    }

    /// SIGKILL of node `n`.
    pub fn kill(&mut self, n: usize) {
        if let Some(mut child) = self.nodes[n].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `n` again on its ports and store.
    pub async fn restart(&mut self, n: usize) {
        assert!(self.nodes[n].child.is_none(), "node {n} is running");
        self.start_node(n);
        self.wait_listening(n).await;
    }

    /// Node `n`'s log.
    pub fn log(&self, n: usize) -> String {
        std::fs::read_to_string(self.nodes[n].log.path()).unwrap_or_default()
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for n in 0..3 {
            self.kill(n);
        }
    }
}
