//! Replay of a large incident dump: writes what `kubectl get events -A -o json` (or `-o yaml`)
//! prints for a cluster of N live Events, then times `--replay FILE --once` of the exporter binary
//! on one core and samples its peak RSS, and checks the counters add up to every occurrence.
//!
//!     cargo bench --bench replay                       # 1,000,000 Events, JSON (about 1.9 GB)
//!     KEM_EVENTS=100000 KEM_FORMAT=yaml cargo bench --bench replay
//!     KEM_EVENTS=20000 KEM_EXPORTER=/path/to/an/older/binary cargo bench --bench replay
//!
//! The dump is written once under target/replay-bench/ and reused.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// One Event as kubectl prints it (managed fields hidden, as `kubectl get` does by default).
fn event(index: usize) -> Value {
    let namespace = format!("ns-{}", index % 50);
    let pod = format!("web-{index}");
    json!({
        "apiVersion": "v1",
        "count": occurrences(index),
        "eventTime": null,
        "firstTimestamp": "2026-11-20T14:00:02Z",
        "involvedObject": {
            "apiVersion": "v1",
            "fieldPath": "spec.containers{app}",
            "kind": "Pod",
            "name": pod,
            "namespace": namespace,
            "resourceVersion": "48211",
            "uid": format!("e33fb13c-3ef4-427a-8b2d-{index:012x}"),
        },
        "kind": "Event",
        "lastTimestamp": "2026-11-20T14:10:02Z",
        "message": message(index, &pod, &namespace),
        "metadata": {
            "creationTimestamp": "2026-11-20T14:00:02Z",
            "name": format!("{pod}.17a1b2c3d4e5f6a7"),
            "namespace": namespace,
            "resourceVersion": (1_000_000 + index).to_string(),
            "uid": format!("00000000-0000-4000-8000-{index:012x}"),
        },
        "reason": REASONS[index % REASONS.len()],
        "reportingComponent": "kubelet",
        "reportingInstance": format!("worker-{}", index % 500),
        "source": {"component": "kubelet", "host": format!("worker-{}", index % 500)},
        "type": "Warning",
    })
}

/// Each reason's message as its component writes it, FailedScheduling's being the long one.
fn message(index: usize, pod: &str, namespace: &str) -> String {
    match REASONS[index % REASONS.len()] {
        "BackOff" => format!("Back-off restarting failed container app in pod {pod}_{namespace}(e33fb13c-3ef4-427a-8b2d-a4c02725c3ab)"),
        "Unhealthy" => "Readiness probe failed: Get \"http://10.42.3.17:8080/healthz\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)".into(),
        "FailedMount" => format!("MountVolume.SetUp failed for volume \"config\" : configmap \"{pod}-config\" not found"),
        _ => "0/500 nodes are available: 3 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 497 Insufficient memory. preemption: 0/500 nodes are available: 3 Preemption is not helpful for scheduling, 497 No preemption victims found for incoming pod.".into(),
    }
}

const REASONS: [&str; 4] = ["BackOff", "Unhealthy", "FailedMount", "FailedScheduling"];

fn occurrences(index: usize) -> u64 {
    1 + (index % 5) as u64
}

/// kubectl's JSON printer: four-space indent, keys sorted (serde_json's map is ordered).
fn write_json(path: &Path, events: usize) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    out.write_all(b"{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n")?;
    for index in 0..events {
        let mut text = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut serializer = serde_json::Serializer::with_formatter(&mut text, formatter);
        serde::Serialize::serialize(&event(index), &mut serializer)?;
        // Items sit two levels deep.
        let text = String::from_utf8_lossy(&text).replace('\n', "\n        ");
        out.write_all(b"        ")?;
        out.write_all(text.as_bytes())?;
        out.write_all(if index + 1 < events { b",\n" } else { b"\n" })?;
    }
    out.write_all(
        b"    ],\n    \"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}\n",
    )?;
    out.flush()
}

/// kubectl's YAML printer: entries of `items:` at column 0, two-space indent.
fn write_yaml(path: &Path, events: usize) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    out.write_all(b"apiVersion: v1\nitems:\n")?;
    for index in 0..events {
        let text = serde_saphyr::to_string(&event(index)).map_err(std::io::Error::other)?;
        for (number, line) in text.lines().enumerate() {
            out.write_all(if number == 0 { b"- " } else { b"  " })?;
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
    }
    out.write_all(b"kind: List\nmetadata:\n  resourceVersion: \"\"\n")?;
    out.flush()
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|line| line.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() {
    let events: usize = env_or("KEM_EVENTS", "1000000").parse().expect("KEM_EVENTS");
    let format = env_or("KEM_FORMAT", "json");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/replay-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let dump = dir.join(format!("events-{events}.{format}"));
    if !dump.exists() {
        let started = Instant::now();
        let partial = dump.with_extension("partial");
        match format.as_str() {
            "json" => write_json(&partial, events),
            "yaml" => write_yaml(&partial, events),
            other => panic!("KEM_FORMAT={other}: json or yaml"),
        }
        .unwrap();
        std::fs::rename(&partial, &dump).unwrap();
        println!(
            "wrote {} in {:.1} s",
            dump.display(),
            started.elapsed().as_secs_f64()
        );
    }
    let bytes = std::fs::metadata(&dump).unwrap().len();
    let exporter = std::env::var("KEM_EXPORTER")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_kube-event-metrics").to_string());
    // Every run reads from the page cache: read the file once before timing.
    std::io::copy(
        &mut std::fs::File::open(&dump).unwrap(),
        &mut std::io::sink(),
    )
    .unwrap();

    let started = Instant::now();
    let mut child = Command::new("taskset")
        .args(["-c", "1", &exporter, "--replay"])
        .arg(&dump)
        .args(["--once", "--log.level", "warn", "--max-series", "100000"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("taskset and the exporter binary");
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
    let mut peak_kib = 0;
    while child.try_wait().unwrap().is_none() {
        if let Some(kib) = status_kib(pid, "VmHWM:") {
            peak_kib = peak_kib.max(kib);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let metrics = reader.join().unwrap();

    let counted: f64 = metrics
        .lines()
        .filter(|line| line.starts_with("kube_events_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let expected: u64 = (0..events).map(occurrences).sum();
    println!(
        "replay {format}: {events} Events, {:.0} MB in {elapsed:.2} s: {:.0} MB/s, {:.0} Events/s; \
         peak RSS (VmHWM, sampled) {:.1} MiB; counted {counted} of {expected} occurrences",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / elapsed,
        events as f64 / elapsed,
        peak_kib as f64 / 1024.0,
    );
    assert_eq!(
        counted, expected as f64,
        "every occurrence in the dump is counted"
    );
}
