//! Replay and demo: counters from files and from the bundled recording, through the same ledger.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use kube_event_metrics::app;
use kube_event_metrics::config::Config;
use serde_json::{Value, json};
use support::{Scrape, http_get, scrape_until, start_exporter_with};

const SEED: &str = include_str!("data/seed-events.yaml");
const EVENTS_K8S_IO: &str = include_str!("data/events-k8s-io.json");

fn once(path: &Path, extra: &[&str]) -> Scrape {
    let mut args = vec![
        "kube-event-metrics".to_string(),
        "--replay".into(),
        path.display().to_string(),
        "--once".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let config = Config::load(args).expect("config");
    Scrape::parse(app::replay_once(&config).expect("replay"))
}

fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(bytes).unwrap();
    file
}

fn seed_items() -> Vec<Value> {
    let list: Value = serde_saphyr::from_str(SEED).unwrap();
    list["items"].as_array().unwrap().clone()
}

/// The three increments ../shared/fixtures/README.md works out for the seed objects; the
/// BackOff is "Back-off pulling image", which its class says.
fn assert_seed_counts(s: &Scrape) {
    let series = |namespace: &str, kind: &str, reason: &str, source: &str| {
        let class = if reason == "BackOff" {
            "pulling-image"
        } else {
            ""
        };
        s.value(
            "kube_events_total",
            &[
                ("namespace", namespace),
                ("kind", kind),
                ("reason", reason),
                ("type", "Normal"),
                ("source", source),
                ("class", class),
            ],
        )
    };
    assert_eq!(
        series("moelove", "Pod", "Scheduled", "default-scheduler"),
        Some(1.0)
    );
    assert_eq!(series("moelove", "Pod", "BackOff", "kubelet"), Some(43.0));
    assert_eq!(
        series(
            "moelove",
            "ReplicaSet",
            "SuccessfulCreate",
            "replicaset-controller"
        ),
        Some(1.0)
    );
    assert_eq!(s.event_series().len(), 3, "{}", s.text);
}

#[test]
fn once_prints_the_seed_counters_exactly() {
    let output = Command::new(env!("CARGO_BIN_EXE_kube-event-metrics"))
        .args(["--replay", "tests/data/seed-events.yaml", "--once"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("kube_events_total"))
        .collect();
    assert_eq!(
        events,
        vec![
            r#"kube_events_total{namespace="moelove",kind="Pod",reason="Scheduled",type="Normal",source="default-scheduler"} 1"#,
            r#"kube_events_total{namespace="moelove",kind="Pod",reason="BackOff",type="Normal",source="kubelet",class="pulling-image"} 43"#,
            r#"kube_events_total{namespace="moelove",kind="ReplicaSet",reason="SuccessfulCreate",type="Normal",source="replicaset-controller"} 1"#,
        ]
    );
    let s = Scrape::parse(text);
    assert_eq!(s.own("watch_updates_total"), 3.0);
    assert_eq!(s.own("malformed_objects_total"), 0.0);
    assert_eq!(s.own("synced"), 1.0);
    assert!(s.value("process_start_time_seconds", &[]).is_some());
}

#[test]
fn every_format_gives_the_same_counts() {
    let items = seed_items();
    let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items});
    let pretty_stream: String = items
        .iter()
        .map(|item| serde_json::to_string_pretty(item).unwrap() + "\n")
        .collect();
    let wrapped_stream: String = items
        .iter()
        .map(|item| json!({"type": "ADDED", "object": item}).to_string() + "\n")
        .collect();
    let multi_doc: String = items
        .iter()
        .map(|item| format!("---\n{}", serde_saphyr::to_string(item).unwrap()))
        .collect();
    let at_column_0 = format!(
        "{{\"kind\":\"List\",\"items\":[\n{}\n],\"metadata\":{{}}}}\n",
        items
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(",\n")
    );
    let mut gzipped = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzipped.write_all(pretty_stream.as_bytes()).unwrap();
    let gzipped = gzipped.finish().unwrap();

    for (what, bytes) in [
        ("yaml list", SEED.as_bytes().to_vec()),
        ("json list", serde_json::to_vec_pretty(&list).unwrap()),
        ("one-line json list", serde_json::to_vec(&list).unwrap()),
        ("json list, items at column 0", at_column_0.into_bytes()),
        (
            "array of items (jq .items)",
            serde_json::to_vec_pretty(&items).unwrap(),
        ),
        (
            "yaml list, indented items",
            serde_saphyr::to_string(&list).unwrap().into_bytes(),
        ),
        ("watch stream", pretty_stream.into_bytes()),
        ("watch events", wrapped_stream.into_bytes()),
        ("multi-document yaml", multi_doc.into_bytes()),
        ("gzip", gzipped),
    ] {
        let file = file_with(&bytes);
        let s = once(file.path(), &[]);
        assert_seed_counts(&s);
        assert_eq!(s.own("malformed_objects_total"), 0.0, "{what}");
    }
}

#[test]
fn events_k8s_io_objects_count_by_series_and_deprecated_fields() {
    let file = file_with(EVENTS_K8S_IO.as_bytes());
    let s = once(file.path(), &[]);
    // The class comes from events.k8s.io's `note`.
    let value = |namespace: &str, reason: &str, source: &str, class: &str| {
        s.value(
            "kube_events_total",
            &[
                ("namespace", namespace),
                ("kind", "Pod"),
                ("reason", reason),
                ("type", "Warning"),
                ("source", source),
                ("class", class),
            ],
        )
    };
    assert_eq!(
        value(
            "ml",
            "FailedScheduling",
            "default-scheduler",
            "node-affinity"
        ),
        Some(14.0)
    );
    assert_eq!(
        value("batch", "FailedMount", "kubelet", "configmap-not-found"),
        Some(7.0)
    );
}

#[test]
fn a_watch_stream_counts_updates_and_deletions_once() {
    let mut event = seed_items()[2].clone();
    let mut lines = String::new();
    for (kind, count) in [
        ("ADDED", 1),
        ("MODIFIED", 5),
        ("MODIFIED", 5),
        ("DELETED", 6),
    ] {
        event["count"] = json!(count);
        lines += &(json!({"type": kind, "object": event}).to_string() + "\n");
    }
    // A BOOKMARK carries no Event.
    lines += "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Event\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"9\"}}}\n";
    let file = file_with(lines.as_bytes());
    let s = once(file.path(), &[]);
    let total: f64 = s.event_series().iter().map(|(_, v)| v).sum();
    assert_eq!(total, 6.0);
    assert_eq!(s.own("tracked_events"), 0.0, "the deletion was forgotten");
}

#[test]
fn bad_input_is_skipped_with_good_objects_counted_exactly() {
    let items = seed_items();
    let good = |n: usize| serde_json::to_string_pretty(&items[n]).unwrap() + "\n";
    let mut malformed = items[0].clone();
    malformed["count"] = json!("seven");
    let mut huge = items[2].clone();
    huge["message"] = json!("x".repeat(10 * 1024 * 1024));
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "uid": "u"}});
    let mut input = Vec::new();
    input.extend_from_slice(good(0).as_bytes());
    input.extend_from_slice(
        b"{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Event\",\n  \"metadata\": {\"na",
    );
    input.extend_from_slice(b"\n");
    input.extend_from_slice(good(1).as_bytes());
    input.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, b'\n']);
    input.extend_from_slice((pod.to_string() + "\n").as_bytes());
    input.extend_from_slice((serde_json::to_string(&malformed).unwrap() + "\n").as_bytes());
    input.extend_from_slice((serde_json::to_string(&huge).unwrap() + "\n").as_bytes());
    let file = file_with(&input);
    let s = once(file.path(), &[]);
    assert_seed_counts(&s);
    // The truncated object, the binary junk and the wrongly typed count; the Pod is no Event.
    assert_eq!(s.own("malformed_objects_total"), 3.0, "{}", s.text);
}

#[test]
fn a_bad_yaml_document_costs_only_itself() {
    let text = format!("{SEED}---\nitems: [unclosed\n---\nkind: Event\nmetadata: {{name: lone}}\n");
    let file = file_with(text.as_bytes());
    let s = once(file.path(), &[]);
    assert_seed_counts(&s);
    // The unparsable document and the Event without a uid.
    assert_eq!(s.own("malformed_objects_total"), 2.0);
}

#[test]
fn empty_input_is_not_an_error_and_neither_json_nor_yaml_is() {
    let empty = file_with(b"");
    let s = once(empty.path(), &[]);
    assert_eq!(s.event_series().len(), 0);
    assert_eq!(s.own("synced"), 1.0);

    let garbage = file_with(&[0x00, 0xff, 0x13, 0x37, 0x00]);
    let output = Command::new(env!("CARGO_BIN_EXE_kube-event-metrics"))
        .args(["--replay", garbage.path().to_str().unwrap(), "--once"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let errors = support::error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("neither JSON nor YAML"), "{stderr}");
}

#[test]
fn replay_reads_stdin_and_filters_like_the_watch() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-event-metrics"))
        .args(["--replay", "-", "--once", "--exclude-reason", "BackOff"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(SEED.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let s = Scrape::parse(String::from_utf8(output.stdout).unwrap());
    assert_eq!(s.event_series().len(), 2);
}

#[tokio::test]
async fn serving_a_replay_matches_once_and_keeps_serving() {
    let path = PathBuf::from("tests/data/seed-events.yaml");
    let expected = once(&path, &[]);
    let exporter = start_exporter_with(&["--replay", "tests/data/seed-events.yaml"]).await;
    let s = scrape_until(exporter.local_addr, "the replay", |s| {
        s.event_series().len() == 3
    })
    .await;
    assert_eq!(s.event_series(), expected.event_series());
    for name in ["watch_updates_total", "tracked_events", "series", "synced"] {
        assert_eq!(s.own(name), expected.own(name), "{name}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(http_get(exporter.local_addr, "/readyz").await.0, 200);
    exporter.stop().await;
}

/// Every reason the demo must show, with the type and source real clusters use.
const DEMO_SERIES: &[(&str, &str, &str, &str)] = &[
    (
        "Deployment",
        "ScalingReplicaSet",
        "Normal",
        "deployment-controller",
    ),
    (
        "ReplicaSet",
        "SuccessfulCreate",
        "Normal",
        "replicaset-controller",
    ),
    ("Pod", "Scheduled", "Normal", "default-scheduler"),
    ("Pod", "Pulling", "Normal", "kubelet"),
    ("Pod", "Pulled", "Normal", "kubelet"),
    ("Pod", "Created", "Normal", "kubelet"),
    ("Pod", "Started", "Normal", "kubelet"),
    ("Pod", "Failed", "Warning", "kubelet"),
    ("Pod", "BackOff", "Normal", "kubelet"),
    ("Pod", "BackOff", "Warning", "kubelet"),
    ("Pod", "Unhealthy", "Warning", "kubelet"),
    ("Pod", "FailedScheduling", "Warning", "default-scheduler"),
    ("Pod", "FailedMount", "Warning", "kubelet"),
    ("Node", "NodeNotReady", "Normal", "node-controller"),
    ("Pod", "NodeNotReady", "Warning", "node-controller"),
    ("Pod", "Evicted", "Warning", "kubelet"),
    ("Node", "OOMKilling", "Warning", "kernel-monitor"),
    ("Node", "SystemOOM", "Warning", "kubelet"),
    ("Pod", "FailedCreatePodSandBox", "Warning", "kubelet"),
];

fn demo_total(s: &Scrape, kind: &str, reason: &str, event_type: &str, source: &str) -> f64 {
    s.event_series()
        .iter()
        .filter(|(labels, _)| {
            let get = |name: &str| {
                labels
                    .iter()
                    .find(|(k, _)| k == name)
                    .map_or("", |(_, v)| v.as_str())
            };
            get("kind") == kind
                && get("reason") == reason
                && get("type") == event_type
                && get("source") == source
        })
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test]
async fn demo_shows_every_reason_within_a_cycle_and_keeps_rising() {
    // 100x: the ten-minute recording cycles every ~6 s (the default, 20x, every ~30 s).
    let exporter = start_exporter_with(&["--demo", "--demo.speed", "100"]).await;
    let addr = exporter.local_addr;
    let first = scrape_until(addr, "every demo reason", |s| {
        DEMO_SERIES
            .iter()
            .all(|(k, r, t, src)| demo_total(s, k, r, t, src) > 0.0)
    })
    .await;
    assert_eq!(first.own("malformed_objects_total"), 0.0);
    let second = scrape_until(addr, "the next cycle", |s| {
        DEMO_SERIES
            .iter()
            .all(|(k, r, t, src)| demo_total(s, k, r, t, src) > demo_total(&first, k, r, t, src))
    })
    .await;
    // The ledger forgets each cycle's Events at its end: it stays small.
    assert!(second.own("tracked_events") < 100.0);
    exporter.stop().await;
}
