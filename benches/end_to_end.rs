//! End-to-end load benchmark: a load-mode API server streams Events over loopback HTTP to the
//! exporter binary (pinned to one core with `taskset`), and the bench measures sync time, update
//! throughput, memory, and scrape latency alone and under ingestion, beside the rate at which
//! serde_json alone parses the same watch lines.
//!
//!     cargo bench --bench end_to_end
//!     KEM_EVENTS=100000 KEM_UPDATES=500000 KEM_SERIES=100000 cargo bench --bench end_to_end
//!     KEM_LIST=paginated cargo bench --bench end_to_end
//!     KEM_TLS=1 cargo bench --bench end_to_end           # the API server over TLS
//!     KEM_BURST=100 cargo bench --bench end_to_end       # paced updates written 100 at a time
//!
//! Prints one line per figure; BENCHMARKS.md records them.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The shape of the synthetic cluster.
#[derive(Clone, Copy)]
struct Load {
    events: usize,
    updates: usize,
    series: usize,
    /// Updates per write in the paced phases: 1 is an API server flushing each event alone.
    burst: u64,
}

/// One Event as the API server would write it: a realistic size, with the fields we ignore.
fn event_json(out: &mut String, load: Load, index: usize, count: u64, resource_version: u64) {
    let label_set = index % load.series;
    let _ = write!(
        out,
        r#"{{"apiVersion":"v1","kind":"Event","metadata":{{"name":"pod-{index}.17a1b2c3d4e5f6a7","namespace":"ns-{ns}","uid":"00000000-0000-4000-8000-{index:012x}","resourceVersion":"{resource_version}","creationTimestamp":"2026-11-20T14:00:02Z","managedFields":[{{"manager":"kubelet","operation":"Update","apiVersion":"v1","time":"2026-11-20T14:00:02Z","fieldsType":"FieldsV1"}}]}},"involvedObject":{{"apiVersion":"v1","kind":"Pod","name":"pod-{index}","namespace":"ns-{ns}","uid":"e33fb13c-3ef4-427a-8b2d-{index:012x}","fieldPath":"spec.containers{{app}}"}},"reason":"Reason{reason}","message":"Back-off restarting failed container app in pod pod-{index}_ns-{ns}(e33fb13c-3ef4-427a-8b2d-a4c02725c3ab)","source":{{"component":"kubelet","host":"worker-{host}"}},"firstTimestamp":"2026-11-20T14:00:02Z","lastTimestamp":"2026-11-20T14:10:02Z","count":{count},"type":"Warning","eventTime":null,"reportingComponent":"kubelet","reportingInstance":"worker-{host}"}}"#,
        ns = label_set / 40,
        reason = label_set % 40,
        host = index % 500,
    );
}

fn watch_line(out: &mut String, load: Load, update: usize) {
    out.push_str(r#"{"type":"MODIFIED","object":"#);
    let index = update % load.events;
    let count = 2 + (update / load.events) as u64;
    event_json(out, load, index, count, 2 + update as u64);
    out.push_str("}\n");
}

/// Updates per second of the paced phases, each for `PACED_SECONDS`.
const PACED_RATES: [u64; 2] = [100, 1000];
const PACED_SECONDS: u64 = 20;

struct Server {
    load: Load,
    go: Notify,
    /// How many halves of the updates the watch may stream (0, 1 or 2).
    released: AtomicU64,
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(status: u16, text: String) -> hyper::Response<Body> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(text)).boxed());
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    response
}

fn handle(
    server: Arc<Server>,
    request: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Body> {
    let query = request.uri().query().unwrap_or("").to_owned();
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .map(str::to_owned)
    };
    let load = server.load;
    if request.uri().path() == "/version" {
        return full(
            200,
            r#"{"major":"1","minor":"34","gitVersion":"v1.34.0","platform":"linux/amd64"}"#.into(),
        );
    }
    if param("watch").is_some() {
        let streaming = param("sendInitialEvents").as_deref() == Some("true");
        // A streaming list's initial events, then the updates once released, then idles until
        // the client leaves.
        let (sender, receiver) = mpsc::channel::<Bytes>(16);
        tokio::spawn(async move {
            if streaming {
                let mut chunk = String::with_capacity(256 * 1024);
                for index in 0..load.events {
                    chunk.push_str(r#"{"type":"ADDED","object":"#);
                    event_json(&mut chunk, load, index, 1, 1);
                    chunk.push_str("}\n");
                    if chunk.len() > 200 * 1024 {
                        let full = std::mem::replace(&mut chunk, String::with_capacity(256 * 1024));
                        if sender.send(Bytes::from(full)).await.is_err() {
                            return;
                        }
                    }
                }
                chunk.push_str(r#"{"type":"BOOKMARK","object":{"kind":"Event","apiVersion":"v1","metadata":{"resourceVersion":"1","annotations":{"k8s.io/initial-events-end":"true"}}}}"#);
                chunk.push('\n');
                if sender.send(Bytes::from(chunk)).await.is_err() {
                    return;
                }
            }
            let half = load.updates / 2;
            for phase in 1..=2u64 {
                loop {
                    let notified = server.go.notified();
                    if server.released.load(Ordering::Acquire) >= phase {
                        break;
                    }
                    notified.await;
                }
                let mut chunk = String::with_capacity(256 * 1024);
                for update in (phase as usize - 1) * half..phase as usize * half {
                    watch_line(&mut chunk, load, update);
                    if chunk.len() > 200 * 1024 {
                        if sender
                            .send(Bytes::from(std::mem::take(&mut chunk)))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        chunk.reserve(256 * 1024);
                    }
                }
                if !chunk.is_empty() && sender.send(Bytes::from(chunk)).await.is_err() {
                    return;
                }
            }
            // Then paced, each line on its own as an API server flushes a watch event: the
            // rate of a real cluster, where per-wake-up costs count rather than decoding.
            let mut next_update = load.updates;
            for (index, rate) in PACED_RATES.iter().enumerate() {
                let phase = 3 + index as u64;
                loop {
                    let notified = server.go.notified();
                    if server.released.load(Ordering::Acquire) >= phase {
                        break;
                    }
                    notified.await;
                }
                let burst = load.burst.clamp(1, *rate);
                let mut ticks =
                    tokio::time::interval(Duration::from_secs(1) * burst as u32 / *rate as u32);
                for _ in 0..rate * PACED_SECONDS / burst {
                    ticks.tick().await;
                    let mut lines = String::with_capacity(1200 * burst as usize);
                    for _ in 0..burst {
                        watch_line(&mut lines, load, next_update);
                        next_update += 1;
                    }
                    if sender.send(Bytes::from(lines)).await.is_err() {
                        return;
                    }
                }
            }
            sender.closed().await;
        });
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            let data = receiver.recv().await?;
            Some((Ok::<_, Infallible>(Frame::data(data)), receiver))
        });
        return hyper::Response::new(BodyExt::boxed(StreamBody::new(stream)));
    }
    let limit: usize = param("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(load.events);
    let start: usize = param("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
    let end = (start + limit).min(load.events);
    let mut body = String::with_capacity((end - start) * 1100 + 200);
    body.push_str(r#"{"apiVersion":"v1","kind":"EventList","metadata":{"resourceVersion":"1""#);
    if end < load.events {
        let _ = write!(
            body,
            r#","continue":"{end}","remainingItemCount":{}"#,
            load.events - end
        );
    }
    body.push_str(r#"},"items":["#);
    for index in start..end {
        if index > start {
            body.push(',');
        }
        event_json(&mut body, load, index, 1, 1);
    }
    body.push_str("]}");
    full(200, body)
}

/// A self-signed certificate for 127.0.0.1: the acceptor, and the PEM a kubeconfig trusts.
fn tls_for_loopback() -> (tokio_rustls::TlsAcceptor, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        cert.pem(),
    )
}

async fn serve(load: Load, tls: Option<tokio_rustls::TlsAcceptor>) -> (SocketAddr, Arc<Server>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Arc::new(Server {
        load,
        go: Notify::new(),
        released: AtomicU64::new(0),
    });
    let shared = server.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let shared = shared.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let shared = shared.clone();
                    async move { Ok::<_, Infallible>(handle(shared, request)) }
                });
                let http = http1::Builder::new();
                let _ = match tls {
                    Some(tls) => match tls.accept(stream).await {
                        Ok(stream) => http.serve_connection(TokioIo::new(stream), service).await,
                        Err(_) => return,
                    },
                    None => http.serve_connection(TokioIo::new(stream), service).await,
                };
            });
        }
    });
    (addr, server)
}

struct Exporter(Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU time the process has used, user and system, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the name; USER_HZ is 100.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

async fn get(addr: SocketAddr, path: &str, gzip: bool) -> (u16, Vec<u8>) {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return (0, Vec::new());
    };
    let encoding = if gzip {
        "Accept-Encoding: gzip\r\n"
    } else {
        ""
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{encoding}Connection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return (0, Vec::new());
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let status = response
        .get(9..12)
        .and_then(|code| std::str::from_utf8(code).ok())
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, response)
}

async fn watch_updates(addr: SocketAddr) -> u64 {
    let (_, body) = get(addr, "/metrics", false).await;
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .find_map(|line| line.strip_prefix("kube_event_metrics_watch_updates_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn scrape_latencies(addr: SocketAddr, count: usize) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(count);
    let mut bytes = 0;
    for _ in 0..count {
        let start = Instant::now();
        let (_, body) = get(addr, "/metrics", true).await;
        times.push(start.elapsed());
        bytes = body.len();
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99), bytes)
}

/// Lines per second decoded on this thread, alone: into kube's `WatchEvent<SlimEvent>` (the
/// baseline the targets were set against), and by the exporter's own decode (the text borrowed
/// from the line, then packed into an Observation), which is the floor of what it can do.
fn serde_baselines(load: Load) -> (f64, f64) {
    use kube_event_metrics::source::line::{WatchLine, decode_line};
    let lines = load.updates.min(500_000);
    let mut text = String::new();
    for update in 0..lines {
        watch_line(&mut text, load, update);
    }
    let start = Instant::now();
    let mut parsed = 0usize;
    for line in text.lines() {
        let event: kube::core::WatchEvent<kube_event_metrics::source::SlimEvent> =
            serde_json::from_str(line).unwrap();
        parsed += matches!(event, kube::core::WatchEvent::Modified(_)) as usize;
    }
    assert_eq!(parsed, lines);
    let kube_rate = lines as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut decoded = 0usize;
    for line in text.lines() {
        let line = decode_line(line.as_bytes());
        decoded += matches!(line, Some(Ok(WatchLine::Object { event: Ok(_), .. }))) as usize;
    }
    assert_eq!(decoded, lines);
    (kube_rate, lines as f64 / start.elapsed().as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` probes bench binaries with these
    }
    let load = Load {
        events: env("KEM_EVENTS", 1_000_000),
        updates: env("KEM_UPDATES", 2_000_000),
        series: env("KEM_SERIES", 10_000),
        burst: env("KEM_BURST", 1) as u64,
    };
    // Unset: the exporter's default (auto), and a flag an older binary (KEM_EXPORTER) lacks.
    let list_mode = std::env::var("KEM_LIST").ok();
    // A program to run the exporter under, e.g. `valgrind --tool=callgrind` for instruction
    // counts that do not depend on what else the machine is doing.
    let wrap = std::env::var("KEM_WRAP").unwrap_or_default();
    println!(
        "load: {} live Events, {} updates, {} label sets, --watch.list-mode={} (streaming served; pages of 500)",
        load.events,
        load.updates,
        load.series,
        list_mode.as_deref().unwrap_or("auto")
    );
    // KEM_TLS=1: the API server speaks TLS, as a real one does, so a trickle pays for records.
    let (tls, cluster) = if std::env::var("KEM_TLS").is_ok_and(|v| v == "1") {
        let (acceptor, pem) = tls_for_loopback();
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD.encode(pem);
        (
            Some(acceptor),
            ("https", format!("\n    certificate-authority-data: {ca}")),
        )
    } else {
        (None, ("http", String::new()))
    };
    println!("api server: {}", cluster.0);
    let (api, server) = serve(load, tls).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let (scheme, ca) = cluster;
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: l\n  cluster:\n    server: {scheme}://{api}{ca}\ncontexts:\n- name: l\n  context:\n    cluster: l\n    user: l\ncurrent-context: l\nusers:\n- name: l\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let exporter = std::env::var("KEM_EXPORTER")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_kube-event-metrics").to_string());
    let child = Command::new("taskset")
        .args(["-c", "1"])
        .args(wrap.split_whitespace())
        .arg(exporter)
        .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
        .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
        .args(["--max-series", &(load.series + 100).to_string()])
        .args(["--log.level", "warn"])
        .args(list_mode.map(|mode| format!("--watch.list-mode={mode}")))
        .stdout(Stdio::null())
        .spawn()
        .expect("taskset and the exporter binary");
    let pid = child.id();
    let _exporter = Exporter(child);

    // Sync: the whole initial list.
    let started = Instant::now();
    let mut idle_rss = 0;
    loop {
        let (status, _) = get(addr, "/readyz", false).await;
        if idle_rss == 0 && status != 0 {
            idle_rss = status_kib(pid, "VmRSS:");
        }
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sync = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let synced_rss = status_kib(pid, "VmRSS:");
    println!(
        "sync: {} Events listed in {:.2} s ({:.0} Events/s)",
        load.events,
        sync.as_secs_f64(),
        load.events as f64 / sync.as_secs_f64()
    );
    println!(
        "memory: idle RSS {:.1} MiB, after sync {:.1} MiB, {:.0} bytes of RSS per tracked Event (series: {})",
        idle_rss as f64 / 1024.0,
        synced_rss as f64 / 1024.0,
        (synced_rss.saturating_sub(idle_rss) * 1024) as f64 / load.events as f64,
        load.series
    );

    // Idle: synced, nothing changing, nobody scraping.
    let idle_seconds = 20.0;
    let cpu_before = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs_f64(idle_seconds)).await;
    println!(
        "idle: {:.3}% of a core over {idle_seconds:.0} s with no updates and no scrapes",
        100.0 * (cpu_seconds(pid) - cpu_before) / idle_seconds
    );

    let (p50, p99, bytes) = scrape_latencies(addr, 30).await;
    println!(
        "scrape alone (gzip, {} series, {} bytes): p50 {:.1} ms, p99 {:.1} ms",
        load.series,
        bytes,
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );

    // Throughput: release the first half of the watch stream; time until every update counts.
    let half = (load.updates / 2) as u64;
    let before = watch_updates(addr).await;
    server.released.store(1, Ordering::Release);
    server.go.notify_waiters();
    let started = Instant::now();
    let cpu_before = cpu_seconds(pid);
    while watch_updates(addr).await < before + half {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let solo_time = started.elapsed();
    let cpu = cpu_seconds(pid) - cpu_before;
    let solo = half as f64 / solo_time.as_secs_f64();
    println!(
        "ingestion: {half} updates in {:.2} s: {solo:.0} updates/s on one core; {:.2} µs of exporter CPU per update",
        solo_time.as_secs_f64(),
        cpu * 1e6 / half as f64
    );

    let (parse_rate, own_rate) = serde_baselines(load);
    println!(
        "serde_json alone parses the same watch lines into the Event type at {parse_rate:.0} lines/s; exporter/serde = {:.0}%",
        100.0 * solo / parse_rate
    );
    println!(
        "the exporter's own decode alone (borrowed, packed) does {own_rate:.0} lines/s; exporter/decode = {:.0}%",
        100.0 * solo / own_rate
    );

    // The second half while ten scrapers loop.
    let stop = Arc::new(AtomicBool::new(false));
    let mut scrapers = Vec::new();
    for _ in 0..10 {
        let stop = stop.clone();
        scrapers.push(tokio::spawn(async move {
            let mut times = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                get(addr, "/metrics", true).await;
                times.push(start.elapsed());
            }
            times
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = watch_updates(addr).await;
    server.released.store(2, Ordering::Release);
    server.go.notify_waiters();
    let started = Instant::now();
    while watch_updates(addr).await < before + half {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let loaded = half as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for scraper in scrapers {
        all.extend(scraper.await.unwrap());
    }
    all.sort();
    println!(
        "ingestion with 10 scrapers looping: {loaded:.0} updates/s ({:.0}% of solo); {} scrapes, p50 {:.1} ms, p99 {:.1} ms",
        100.0 * loaded / solo,
        all.len(),
        percentile(&all, 0.5).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3
    );
    let mut expected = watch_updates(addr).await;
    for (index, rate) in PACED_RATES.iter().enumerate() {
        let cpu_before = cpu_seconds(pid);
        server.released.store(3 + index as u64, Ordering::Release);
        server.go.notify_waiters();
        // No scrapes while paced: they would be most of the exporter's work at this rate.
        tokio::time::sleep(Duration::from_secs(PACED_SECONDS)).await;
        expected += rate * PACED_SECONDS;
        let cpu = cpu_seconds(pid) - cpu_before;
        let counted = watch_updates(addr).await;
        println!(
            "paced at {rate} updates/s for {PACED_SECONDS} s, {} per write ({} counted of {}): {:.2} CPU-s per 10,000 updates, {:.1} µs per update, {:.2}% of a core",
            load.burst.clamp(1, *rate),
            counted,
            expected,
            cpu * 10_000.0 / (rate * PACED_SECONDS) as f64,
            cpu * 1e6 / (rate * PACED_SECONDS) as f64,
            100.0 * cpu / PACED_SECONDS as f64
        );
    }
    let hwm = status_kib(pid, "VmHWM:");
    println!(
        "memory: peak RSS (VmHWM) {:.1} MiB; idle {:.1} MiB",
        hwm as f64 / 1024.0,
        idle_rss as f64 / 1024.0
    );
    let _ = std::io::stdout().flush();
}
