//! Test support: the fake API server and an exporter started against it through a kubeconfig.
#![allow(dead_code)]

pub mod fake_api;

use std::net::SocketAddr;
use std::time::Duration;

use kube_event_metrics::app::{self, Running};
use kube_event_metrics::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use fake_api::{EventSpec, FakeApi};

/// The exporter under test, configured with the given extra flags, on an ephemeral port.
pub async fn start_exporter(api: &FakeApi, extra: &[&str]) -> Running {
    let kubeconfig = api.kubeconfig();
    let mut args = vec![
        "kube-event-metrics".to_string(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
        "--web.listen-address".into(),
        "127.0.0.1:0".into(),
    ];
    args.extend(extra.iter().map(|arg| arg.to_string()));
    let config = Config::load(args).expect("config");
    app::start(&config).await.expect("exporter starts")
}

/// The exporter under test, once every watch has completed its first list.
pub async fn start_synced(api: &FakeApi, extra: &[&str]) -> Running {
    let exporter = start_exporter(api, extra).await;
    scrape_until(exporter.local_addr, "synced", |s| s.own("synced") == 1.0).await;
    exporter
}

/// A loopback address whose port was free a moment ago, for an exporter process.
pub fn free_local_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
}

/// The exporter binary, pointed at `api` through its kubeconfig, listening on `addr`.
pub fn exporter_process(api: &FakeApi, addr: SocketAddr) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kube-event-metrics"));
    command
        .arg("--kubeconfig")
        .arg(api.kubeconfig())
        .args(["--web.listen-address", &addr.to_string()]);
    command
}

/// What a stopped exporter process logged on stderr.
pub fn stderr_of(child: &mut std::process::Child) -> String {
    let mut logs = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        std::io::Read::read_to_string(&mut stderr, &mut logs).expect("stderr is text");
    }
    logs
}

/// The logfmt lines logged at level error.
pub fn error_lines(logs: &str) -> Vec<&str> {
    logs.lines()
        .filter(|line| line.contains("level=error"))
        .collect()
}

/// The exporter started with exactly these flags (plus an ephemeral port), no cluster.
pub async fn start_exporter_with(flags: &[&str]) -> Running {
    let mut args = vec![
        "kube-event-metrics".to_string(),
        "--web.listen-address".into(),
        "127.0.0.1:0".into(),
    ];
    args.extend(flags.iter().map(|arg| arg.to_string()));
    let config = Config::load(args).expect("config");
    app::start(&config).await.expect("exporter starts")
}

/// A response read off the wire.
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A plain HTTP/1.1 GET with extra headers, over a fresh connection.
pub async fn http_request(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    parse_response(&response)
}

pub fn parse_response(response: &[u8]) -> HttpResponse {
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a full response head");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .expect("status code");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: response[split + 4..].to_vec(),
    }
}

/// A plain HTTP/1.1 GET; returns the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let response = http_request(addr, path, &[]).await;
    let body = String::from_utf8(response.body).expect("utf-8 body");
    (response.status, body)
}

/// One scrape, parsed by a Prometheus text-format parser.
pub struct Scrape {
    pub text: String,
    parsed: prometheus_parse::Scrape,
}

impl Scrape {
    /// The value of `name` with exactly these labels.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.parsed
            .samples
            .iter()
            .find(|sample| {
                sample.metric == name
                    && sample.labels.len() == labels.iter().filter(|(_, v)| !v.is_empty()).count()
                    && labels
                        .iter()
                        .all(|(key, value)| sample.labels.get(key).unwrap_or("") == *value)
            })
            .map(|sample| match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    }

    /// `kube_events_total` for an event about a Pod from the kubelet.
    pub fn events(&self, namespace: &str, reason: &str, event_type: &str) -> Option<f64> {
        self.value(
            "kube_events_total",
            &[
                ("namespace", namespace),
                ("kind", "Pod"),
                ("reason", reason),
                ("type", event_type),
                ("source", "kubelet"),
            ],
        )
    }

    pub fn warnings(&self, namespace: &str, reason: &str) -> Option<f64> {
        self.events(namespace, reason, "Warning")
    }

    pub fn own(&self, name: &str) -> f64 {
        self.value(&format!("kube_event_metrics_{name}"), &[])
            .unwrap_or_else(|| panic!("self-metric {name} missing:\n{}", self.text))
    }

    /// Every `kube_events_total` sample as (labels, value).
    pub fn event_series(&self) -> Vec<(Vec<(String, String)>, f64)> {
        self.parsed
            .samples
            .iter()
            .filter(|sample| sample.metric == "kube_events_total")
            .map(|sample| {
                let mut labels: Vec<(String, String)> = sample
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                labels.sort();
                let value = match sample.value {
                    prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                    _ => f64::NAN,
                };
                (labels, value)
            })
            .collect()
    }
}

pub async fn scrape(addr: SocketAddr) -> Scrape {
    let (status, text) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    Scrape::parse(text)
}

impl Scrape {
    pub fn parse(text: String) -> Scrape {
        let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .expect("the exposition parses");
        Scrape { text, parsed }
    }
}

/// Scrapes until `ready` holds (at most 15 s), then returns that scrape.
pub async fn scrape_until(addr: SocketAddr, what: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let scrape = scrape(addr).await;
        if ready(&scrape) {
            return scrape;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}; last scrape:\n{}",
                scrape.text
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates a sentinel Event and waits until it is counted. Watch events arrive in order, so
/// everything changed before the barrier has been processed when it returns.
pub async fn barrier(api: &FakeApi, addr: SocketAddr, namespace: &str, n: u32) -> Scrape {
    let reason = format!("Barrier{n}");
    api.create(&EventSpec::new(
        namespace,
        &format!("barrier-{n}.x"),
        &reason,
        1,
    ));
    scrape_until(addr, &reason, |s| {
        s.warnings(namespace, &reason) == Some(1.0)
    })
    .await
}

/// Waits (at most 20 s) until `done` holds of the fake API server's state.
pub async fn until_api(api: &FakeApi, what: &str, done: impl Fn(&fake_api::State) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !api.change(|state| done(state)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
