//! Our alerts and dashboards against a real Prometheus and a real Alertmanager.
//!
//! The exporter (fed by the fake API server) is scraped every second by Debian's Prometheus, which
//! evaluates `alerts/kube-event-metrics.rules.yaml` with every duration divided by [`SCALE`]
//! (`promtool test rules` checks the real values) and sends to Debian's Alertmanager, which
//! delivers to a webhook inside this test.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use support::{EventSpec, FakeApi, http_get, start_exporter};

/// Rule windows and `for:` durations are divided by this: 1h becomes 60 s, 10m becomes 10 s.
const SCALE: u64 = 60;

/// Kills the process when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    support::free_local_addr().port()
}

/// Every `[5m]`, `[1h:5m]`, `offset 1d` and `for: 10m` of a rule file or query, divided by
/// `SCALE`, in seconds.
fn scaled(text: &str) -> String {
    let scale = |amount: u64, unit: &str| {
        let seconds = match unit {
            "s" => amount,
            "m" => amount * 60,
            "h" => amount * 3600,
            "d" => amount * 86400,
            other => panic!("unexpected unit {other}"),
        };
        format!("{}s", (seconds / SCALE).max(1))
    };
    let duration = regex::Regex::new(r"(\[|:|offset |for: )(\d+)([smhd])\b").unwrap();
    duration
        .replace_all(text, |c: &regex::Captures| {
            format!("{}{}", &c[1], scale(c[2].parse().unwrap(), &c[3]))
        })
        .into_owned()
}

/// A webhook receiver: every POSTed Alertmanager notification, parsed.
async fn webhook() -> (SocketAddr, Arc<Mutex<Vec<Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let sink = sink.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let sink = sink.clone();
                    async move {
                        let body = request.into_body().collect().await?.to_bytes();
                        if let Ok(notification) = serde_json::from_slice::<Value>(&body) {
                            sink.lock().unwrap().push(notification);
                        }
                        Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from_static(
                            b"ok",
                        ))))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, received)
}

fn firing(received: &Mutex<Vec<Value>>) -> Vec<Value> {
    received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|n| n["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|alert| alert["status"] == "firing")
        .collect()
}

async fn wait_http_ok(addr: SocketAddr, path: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() && http_get(addr, path).await.0 == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{what} did not become ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One instant query through Prometheus' HTTP API.
async fn query(prometheus: SocketAddr, expr: &str) -> Value {
    prometheus_api(prometheus, "query", expr, "").await
}

/// A call of Prometheus' HTTP API with `query` (URL-encoded) and `extra` parameters.
async fn prometheus_api(prometheus: SocketAddr, endpoint: &str, expr: &str, extra: &str) -> Value {
    let encoded: String = expr
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, body) = http_get(
        prometheus,
        &format!("/api/v1/{endpoint}?query={encoded}{extra}"),
    )
    .await;
    let response: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_eq!(status, 200, "query {expr} failed: {body}");
    assert_eq!(response["status"], "success", "query {expr}: {body}");
    response
}

/// Grafana's variables as the dashboards would send them (every picker on All, the one cluster
/// of the scrape), and the durations scaled as the rules are.
fn grafana_expr(expr: &str) -> String {
    // Grafana's own intervals fit the 1 s scrapes already.
    let mut expr = scaled(expr);
    for (variable, value) in [
        ("$__rate_interval", "10s"),
        ("$__range", "10m"),
        ("$cluster", "test"),
        ("$instance", ".*"),
        ("$job", ".*"),
        ("$namespace", ".*"),
        ("$kind", ".*"),
        ("$reason", ".*"),
        ("$type", ".*"),
        ("$source", ".*"),
    ] {
        expr = expr.replace(variable, value);
    }
    assert!(!expr.contains('$'), "unhandled variable in {expr}");
    expr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Debian's prometheus and prometheus-alertmanager; .ci/run installs them"]
async fn alerts_fire_into_alertmanager_and_every_panel_has_data() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();

    // The exporter, with history in several namespaces so every panel has series.
    let api = FakeApi::start().await;
    for (namespace, reason, normal) in [
        ("shop", "Pulled", true),
        ("shop", "Unhealthy", false),
        ("payments", "BackOff", false),
    ] {
        let spec = EventSpec::new(namespace, &format!("{reason}.seed"), reason, 3);
        api.create(&if normal { spec.normal() } else { spec });
    }
    let exporter = start_exporter(&api, &[]).await;
    let exporter_addr = exporter.local_addr;

    // Alertmanager, routing everything to our webhook at once.
    let (hook, received) = webhook().await;
    let am_port = free_port();
    let am_config = dir.join("alertmanager.yml");
    std::fs::write(
        &am_config,
        format!(
            "route:\n  receiver: test\n  group_by: [alertname, namespace]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: test\n    webhook_configs:\n      - url: http://{hook}/\n        send_resolved: false\n"
        ),
    )
    .unwrap();
    let _alertmanager = Running(
        Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", am_config.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager is installed"),
    );
    let am_addr: SocketAddr = format!("127.0.0.1:{am_port}").parse().unwrap();
    wait_http_ok(am_addr, "/-/ready", "Alertmanager").await;

    // Prometheus: 1 s scrapes and evaluations of the scaled rules.
    let rules = std::fs::read_to_string("alerts/kube-event-metrics.rules.yaml").unwrap();
    std::fs::write(dir.join("rules.yaml"), scaled(&rules)).unwrap();
    let prom_port = free_port();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: [{rules}]\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am_addr}']\n\
             scrape_configs:\n  - job_name: kube-event-metrics\n    honor_labels: true\n    static_configs:\n      - targets: ['{exporter_addr}']\n        labels: {{cluster: test}}\n",
            rules = dir.join("rules.yaml").display()
        ),
    )
    .unwrap();
    let _prometheus = Running(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--rules.alert.resend-delay=1s")
            .arg("--enable-feature=exemplar-storage")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed"),
    );
    let prometheus: SocketAddr = format!("127.0.0.1:{prom_port}").parse().unwrap();
    wait_http_ok(prometheus, "/-/ready", "Prometheus").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let up = query(prometheus, r#"up{job="kube-event-metrics"} == 1"#).await;
        if up["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped the exporter"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Prometheus evaluates the rules from its start, so on a slow start KubeEventMetricsAbsent may
    // rightly go pending, and fire, before the first scrape; only what starts once the target is
    // seen up counts in the quiet period.
    let up_at = k8s_openapi::jiff::Timestamp::now();
    // Our namespace label survives: honor_labels keeps it from becoming exported_namespace.
    let seeded = query(prometheus, r#"kube_events_total{namespace="payments"}"#).await;
    assert_eq!(
        seeded["data"]["result"].as_array().map(Vec::len),
        Some(1),
        "{seeded}"
    );

    // A quiet period: steady counters page nobody (20 s is 20 minutes of rule time).
    tokio::time::sleep(Duration::from_secs(20)).await;
    let down_before_the_first_scrape = |alert: &Value| {
        ["KubeEventMetricsDown", "KubeEventMetricsAbsent"]
            .contains(&alert["labels"]["alertname"].as_str().unwrap_or(""))
            && alert["startsAt"]
                .as_str()
                .and_then(|at| at.parse::<k8s_openapi::jiff::Timestamp>().ok())
                .is_some_and(|at| at < up_at)
    };
    let quiet: Vec<Value> = firing(&received)
        .into_iter()
        .filter(|alert| !down_before_the_first_scrape(alert))
        .collect();
    assert_eq!(quiet, Vec::<Value>::new(), "alerts during the quiet period");

    // Drive the causes: an unschedulable pod whose event repeats on the (scaled) 30-minute
    // heartbeat, and a container crash-looping with one BackOff every (scaled) 3 minutes: slow
    // enough in real seconds to stay under KubeEventWarningBurst's absolute 0.5/s floor.
    let mut scheduling = EventSpec::new("ml", "trainer-0.fs", "FailedScheduling", 1);
    scheduling.component = "default-scheduler".into();
    api.create(&scheduling);
    api.create(&EventSpec::new("shop", "web-1.crash", "BackOff", 1));
    let started = Instant::now();
    let mut crash_count = 1;
    let mut heartbeats = 1;
    let expected = [
        ("KubeEventFailedScheduling", "ml"),
        ("KubeEventCrashLoopBackOff", "shop"),
    ];
    loop {
        let alerts = firing(&received);
        let arrived = |name: &str, namespace: &str| {
            alerts.iter().any(|a| {
                a["labels"]["alertname"] == name
                    && a["labels"]["namespace"] == namespace
                    && a["labels"]["severity"] == "warning"
                    && a["annotations"]["runbook_url"]
                        .as_str()
                        .is_some_and(|url| url.ends_with(&format!("#{}", name.to_lowercase())))
            })
        };
        if expected
            .iter()
            .all(|(name, namespace)| arrived(name, namespace))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "alerts did not arrive; webhook got {:#?}",
            received.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        crash_count += 1;
        api.set_count("shop", "web-1.crash", crash_count);
        if started.elapsed() > Duration::from_secs(30 * 60 / SCALE * heartbeats) {
            heartbeats += 1;
            api.change(|state| {
                state.update("ml", "trainer-0.fs", |o| {
                    o["series"] = serde_json::json!({"count": heartbeats, "lastObservedTime": "2026-11-25T10:00:00.000000Z"})
                })
            });
        }
    }
    let names: Vec<String> = firing(&received)
        .iter()
        .filter(|alert| !down_before_the_first_scrape(alert))
        .map(|a| a["labels"]["alertname"].as_str().unwrap_or("").to_owned())
        .collect();
    for name in &names {
        assert!(
            expected.iter().any(|(e, _)| e == name),
            "unexpected alert {name}: {names:?}"
        );
    }

    // Prometheus kept the exemplars of the OpenMetrics scrapes: the crash loop names its pod
    // and node. Each carries the time of its latest occurrence, which the fake API server's
    // Events give as a fixed day in the past, so the query starts at the epoch.
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let exemplars = prometheus_api(
        prometheus,
        "query_exemplars",
        r#"kube_events_total{namespace="shop",reason="BackOff"}"#,
        &format!("&start=0&end={}", now + 60),
    )
    .await;
    let found: Vec<&Value> = exemplars["data"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|series| series["exemplars"].as_array().into_iter().flatten())
        .collect();
    assert!(
        found
            .iter()
            .any(|e| e["labels"]["object"] == "Pod/web-1" && e["labels"]["node"] == "node-1"),
        "{exemplars}"
    );

    // Every dashboard panel and variable returns data with every picker on All. A label set
    // seen for the first time feeds "New in the last hour"; a query that compares with the day
    // before has nothing to compare with in a Prometheus minutes old, so it only has to be valid.
    api.create(&EventSpec::new("fresh", "web-9.mount", "FailedMount", 1));
    let mut queries = Vec::new();
    for path in [
        "dashboards/kube-events-overview.json",
        "dashboards/kube-event-metrics-health.json",
    ] {
        let board: Value =
            serde_json::from_str(&std::fs::read_to_string(Path::new(path)).unwrap()).unwrap();
        for panel in board["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                let needs_history = expr.contains("offset 1d");
                queries.push((
                    format!("{path}: panel {}", panel["title"]),
                    grafana_expr(expr),
                    !needs_history,
                ));
            }
        }
        for annotation in board["annotations"]["list"].as_array().unwrap() {
            if let Some(expr) = annotation["expr"].as_str() {
                // Restarts and alerts come and go: an annotation only has to be a valid query.
                queries.push((
                    format!("{path}: annotation {}", annotation["name"]),
                    grafana_expr(expr),
                    false,
                ));
            }
        }
        for variable in board["templating"]["list"].as_array().unwrap() {
            let Some(definition) = variable["definition"].as_str() else {
                continue;
            };
            let inner = definition
                .strip_prefix("label_values(")
                .and_then(|rest| rest.strip_suffix(')'))
                .expect("label_values(...)");
            let (selector, label) = inner.rsplit_once(", ").unwrap();
            let expr = format!("count by ({label}) ({})", grafana_expr(selector));
            queries.push((format!("{path}: variable {}", variable["name"]), expr, true));
        }
    }
    // The recording rule and the subqueries over it need a few evaluations of the new label set;
    // each query has to return data once (the alerts of the table resolve as the causes stop).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut empty = Vec::new();
        for (what, expr, needs_data) in &mut queries {
            let result = query(prometheus, expr).await;
            let series = result["data"]["result"].as_array().map_or(0, Vec::len);
            if series > 0 {
                *needs_data = false;
            } else if *needs_data {
                empty.push(format!("{what} returned nothing for {expr}"));
            }
        }
        if empty.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{empty:#?}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // "New in the last hour" gets the new label set, and not one seeded before the hour.
    let (_, new_in_the_hour, _) = queries
        .iter()
        .find(|(what, ..)| what.ends_with("\"New in the last hour\""))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let new: Vec<String> = query(prometheus, new_in_the_hour).await["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                format!(
                    "{}/{}",
                    row["metric"]["namespace"].as_str().unwrap(),
                    row["metric"]["reason"].as_str().unwrap()
                )
            })
            .collect();
        assert!(!new.contains(&"payments/BackOff".to_owned()), "{new:?}");
        if new.contains(&"fresh/FailedMount".to_owned()) {
            break;
        }
        assert!(Instant::now() < deadline, "{new:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    exporter.stop().await;
}
