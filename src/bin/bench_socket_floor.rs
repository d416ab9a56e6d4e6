//! The floor under `bench_fanout` (not a test): what this machine spends
//! only to carry WebSocket frames from a server process to 10,000 client
//! connections over loopback, with no command, database, NATS or
//! projection behind them.
//!
//! It starts itself as a child server (`--serve`) that holds the
//! connections the way the chat server does (axum WebSockets with the same
//! buffer sizes, a bounded queue per connection, a split sink and a send
//! under a timeout), and pushes one `message:new`-sized frame per event to
//! the 10 connections of a group, at each of `--rates` deliveries/s in turn.
//! The clients only count the frames they read (no JSON parsing), so the
//! figures are a lower bound for any real client. For each rate it prints
//! the deliveries/s reached and the CPU time of both processes per delivery.
//!
//! ```text
//! cargo run --release --bin bench_socket_floor
//! cargo run --release --bin bench_socket_floor -- --rates 50000 --seconds 20
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::routing::get;
use clap::Parser;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[path = "shared/cpu.rs"]
mod cpu;
#[path = "shared/open_files.rs"]
mod open_files;

/// Connections per group: each event goes to one group.
const GROUP_SIZE: usize = 10;
/// Frames a connection may have queued (as the chat server's default).
const QUEUE_CAPACITY: usize = 1024;
/// The chat server's WebSocket buffers (src/http/routes/websocket.rs).
const READ_BUFFER: usize = 4 * 1024;
const WRITE_BUFFER: usize = 4 * 1024;
const MAX_WRITE_BUFFER: usize = 256 * 1024;
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the pacer pushes the events that are due.
const PACER_TICK: Duration = Duration::from_millis(5);
const CONNECT_CONCURRENCY: usize = 200;
const WARM_UP: Duration = Duration::from_secs(2);
/// The realtime target of issue 5, to print where it falls.
const TARGET_DELIVERIES: f64 = 50_000.0;

/// Socket-only fan-out floor of this machine.
#[derive(Debug, Parser)]
#[command(name = "bench_socket_floor")]
struct Args {
    /// WebSocket connections; a multiple of 10.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Deliveries per second to try, in turn.
    #[arg(long, value_delimiter = ',', default_value = "10000,25000,50000,80000,120000")]
    rates: Vec<u64>,
    /// Seconds measured at each rate (after a 2 s warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Internal: run as the child server on this port.
    #[arg(long, hide = true)]
    serve: Option<u16>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.connections < GROUP_SIZE || args.connections % GROUP_SIZE != 0 || args.seconds == 0 {
        bail!("--connections must be a positive multiple of {GROUP_SIZE}, --seconds at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("building the tokio runtime")?;
    match args.serve {
        Some(port) => runtime.block_on(serve(port)),
        None => {
            open_files::raise_open_file_limit()?;
            runtime.block_on(drive(args))
        }
    }
}

// ---------------------------------------------------------------------------
// The child server

/// The child's connections and the rate it pushes at.
#[derive(Clone, Default)]
struct Fanout {
    queues: Arc<Mutex<Vec<mpsc::Sender<Utf8Bytes>>>>,
    events_per_second: Arc<AtomicU64>,
}

async fn serve(port: u16) -> Result<()> {
    let fanout = Fanout::default();
    let router =
        axum::Router::new().route("/ws", get(upgrade)).route("/rate/{events_per_second}", get(set_rate)).with_state(fanout.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await.context("binding")?;
    tokio::spawn(pace(fanout));
    axum::serve(listener, router).await.context("serving")
}

async fn upgrade(State(fanout): State<Fanout>, ws: WebSocketUpgrade) -> axum::response::Response {
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| hold(socket, fanout))
}

async fn set_rate(State(fanout): State<Fanout>, Path(events_per_second): Path<u64>) -> &'static str {
    fanout.events_per_second.store(events_per_second, Ordering::Relaxed);
    "ok"
}

/// One connection: its queued frames out, anything it sends read and dropped.
async fn hold(socket: WebSocket, fanout: Fanout) {
    let (tx, mut frames) = mpsc::channel::<Utf8Bytes>(QUEUE_CAPACITY);
    fanout.queues.lock().unwrap_or_else(PoisonError::into_inner).push(tx);
    let (mut sink, mut incoming) = socket.split();
    loop {
        tokio::select! {
            frame = frames.recv() => {
                let Some(frame) = frame else { return };
                if !matches!(tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Text(frame))).await, Ok(Ok(()))) {
                    return;
                }
            }
            message = incoming.next() => if !matches!(message, Some(Ok(_))) { return },
        }
    }
}

/// Pushes the events due at the current rate, each to the 10 connections of
/// the next group, every `PACER_TICK`.
async fn pace(fanout: Fanout) {
    let frame: Utf8Bytes = sample_frame().into();
    let mut tick = tokio::time::interval(PACER_TICK);
    let (mut rate, mut since, mut pushed) = (0, Instant::now(), 0_u64);
    let mut next_group = 0;
    loop {
        tick.tick().await;
        let wanted = fanout.events_per_second.load(Ordering::Relaxed);
        if wanted != rate {
            (rate, since, pushed) = (wanted, Instant::now(), 0);
        }
        let due = (since.elapsed().as_secs_f64() * rate as f64) as u64;
        let queues = fanout.queues.lock().unwrap_or_else(PoisonError::into_inner);
        let groups = queues.len() / GROUP_SIZE;
        if groups == 0 {
            continue;
        }
        while pushed < due {
            next_group = (next_group + 1) % groups;
            for queue in &queues[next_group * GROUP_SIZE..(next_group + 1) * GROUP_SIZE] {
                let _ = queue.try_send(frame.clone());
            }
            pushed += 1;
        }
    }
}

/// A frame the size of a short text message's `message:new`.
fn sample_frame() -> String {
    json!({
        "event": "message:new",
        "data": {
            "id": "01a2169e-3a19-7619-b830-224a0c7e8469", "conversation_id": "01a2169d-fb63-73fc-8a11-66c2e19e7275",
            "sender_id": 17, "sender_name": "Ada Lovelace", "content": "fanout 1 123456", "message_type": "TEXT",
            "media_url": null, "media_metadata": null, "reply_to_id": null, "is_edited": false, "is_deleted": false,
            "created_at": "2026-11-26T07:00:00.000Z", "reactions": []
        },
        "position": 1234567
    })
    .to_string()
}

// ---------------------------------------------------------------------------
// The driver: clients, rates, figures

async fn drive(args: Args) -> Result<()> {
    let port = free_port()?;
    let mut server = start_server(port).await?;
    let outcome = measure(&args, port, &server).await;
    let _ = server.kill().await;
    outcome
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn start_server(port: u16) -> Result<Child> {
    let child = Command::new(std::env::current_exe().context("locating this binary")?)
        .args(["--serve", &port.to_string()])
        .kill_on_drop(true)
        .spawn()
        .context("starting the child server")?;
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            bail!("the child server did not listen within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(child)
}

async fn measure(args: &Args, port: u16, server: &Child) -> Result<()> {
    let server_pid = server.id().context("the child server has exited")?;
    let received = Arc::new(AtomicU64::new(0));
    connect_all(args.connections, port, &received).await?;
    println!("{} connections open; the clients only count frames", args.connections);
    let http = reqwest::Client::new();
    let mut at_target = None;
    for &rate in &args.rates {
        http.get(format!("http://127.0.0.1:{port}/rate/{}", rate / GROUP_SIZE as u64)).send().await.context("setting the rate")?;
        tokio::time::sleep(WARM_UP).await;
        let before = Sample::take(server_pid, &received)?;
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        let after = Sample::take(server_pid, &received)?;
        let figures = Figures::between(&before, &after);
        figures.print(rate);
        if rate as f64 == TARGET_DELIVERIES {
            at_target = Some(figures);
        }
    }
    http.get(format!("http://127.0.0.1:{port}/rate/0")).send().await.context("stopping the pushes")?;
    if let Some(figures) = at_target {
        println!(
            "at {TARGET_DELIVERIES:.0} deliveries/s the sockets alone take {:.0}% of one core ({:.0}% of this machine's {} cores)",
            figures.server_cores_percent + figures.clients_cores_percent,
            (figures.server_cores_percent + figures.clients_cores_percent) / cores() as f64,
            cores()
        );
    }
    Ok(())
}

async fn connect_all(connections: usize, port: u16, received: &Arc<AtomicU64>) -> Result<()> {
    let url = format!("ws://127.0.0.1:{port}/ws");
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut handshakes = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (url, gate, received) = (url.clone(), gate.clone(), received.clone());
        handshakes.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.context("connection gate")?;
            let config = WebSocketConfig::default().read_buffer_size(4 * 1024).write_buffer_size(0);
            let (mut socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true).await.context("handshake")?;
            tokio::spawn(async move {
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            anyhow::Ok(())
        }));
    }
    for handshake in handshakes {
        handshake.await.context("connecting task")??;
    }
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Frames received and CPU ticks of both processes at one instant.
struct Sample {
    at: Instant,
    received: u64,
    server_ticks: u64,
    client_ticks: u64,
}

impl Sample {
    fn take(server_pid: u32, received: &AtomicU64) -> Result<Self> {
        Ok(Self {
            at: Instant::now(),
            received: received.load(Ordering::Relaxed),
            server_ticks: cpu::cpu_ticks(&format!("/proc/{server_pid}/stat")).context("reading the server's CPU time")?,
            client_ticks: cpu::cpu_ticks("/proc/self/stat").context("reading the clients' CPU time")?,
        })
    }
}

/// One rate's outcome.
struct Figures {
    deliveries_per_second: f64,
    server_cores_percent: f64,
    clients_cores_percent: f64,
}

impl Figures {
    fn between(before: &Sample, after: &Sample) -> Self {
        let seconds = after.at.duration_since(before.at).as_secs_f64().max(1e-9);
        let percent = |ticks: u64| 100.0 * ticks as f64 / cpu::ticks_per_second() / seconds;
        Self {
            deliveries_per_second: after.received.saturating_sub(before.received) as f64 / seconds,
            server_cores_percent: percent(after.server_ticks.saturating_sub(before.server_ticks)),
            clients_cores_percent: percent(after.client_ticks.saturating_sub(before.client_ticks)),
        }
    }

    fn print(&self, rate: u64) {
        let per_delivery = |percent: f64| percent / 100.0 / self.deliveries_per_second.max(1e-9) * 1e6;
        println!(
            "{rate} deliveries/s targeted: {:.0} delivered/s; CPU server {:.0}%, clients {:.0}% of one core; \
             {:.1} µs server + {:.1} µs clients per delivery",
            self.deliveries_per_second,
            self.server_cores_percent,
            self.clients_cores_percent,
            per_delivery(self.server_cores_percent),
            per_delivery(self.clients_cores_percent),
        );
    }
}
