//! The cost of `--state-file` at scale: one cut (publish + encode) of a 1,000,000-Event ledger,
//! writing it, and the memory of tombstones. Run with `cargo bench --bench state`.

use std::sync::Arc;
use std::time::Instant;

use kube_event_metrics::config::LabelFilters;
use kube_event_metrics::ingest::Ingest;
use kube_event_metrics::ledger::{Ledger, NameKey, NamedAt, TombstoneLimits, UidKey};
use kube_event_metrics::metrics::SelfStats;
use kube_event_metrics::snapshot::{self, WatchPrint};
use kube_event_metrics::source::{Delivery, EventText, Observation, Signal};
use kube_event_metrics::store::SeriesStore;

const EVENTS: usize = 1_000_000;

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn observation(n: usize) -> Observation {
    let namespace = format!("ns-{}", n % 200);
    let name = format!("pod-{n}.17a2b3c4d5e6f708");
    Observation::new(
        UidKey(n as u128 * 0x9E37_79B9_7F4A_7C15 + 1),
        1 + (n % 50) as u32,
        EventText {
            namespace: &namespace,
            kind: "Pod",
            reason: ["BackOff", "Unhealthy", "FailedMount", "Pulled"][n % 4],
            event_type: "Warning",
            source: "kubelet",
            object_namespace: &namespace,
            object_name: &name,
            first_timestamp: "2026-12-01T10:00:00Z",
            ..EventText::default()
        },
    )
}

fn main() {
    let store = Arc::new(SeriesStore::new(10_000));
    let mut ingest = Ingest::new(
        1,
        false,
        LabelFilters::default(),
        store,
        Arc::new(SelfStats::default()),
    );
    ingest.handle(Signal::ListStarted(0));
    for n in 0..EVENTS {
        ingest.handle(Signal::Object {
            watch: 0,
            delivery: Delivery::Listed,
            event: Ok(observation(n)),
        });
    }
    ingest.handle(Signal::ListDone(0));
    let prints = [WatchPrint::new("namespace=<all> fieldSelector=<none>", "")];
    let mut bytes = Vec::new();
    let runs = 10;
    let started = Instant::now();
    for _ in 0..runs {
        bytes = ingest.cut(&prints, None);
    }
    let cut = started.elapsed() / runs;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state");
    let started = Instant::now();
    for _ in 0..runs {
        snapshot::write_atomic(&path, &bytes).expect("write");
    }
    let write = started.elapsed() / runs;
    let started = Instant::now();
    let decoded = snapshot::decode(&bytes).expect("decode");
    let decode = started.elapsed();
    println!(
        "cut of {EVENTS} Events (publish 10,000 series + encode): {cut:?}, {} bytes ({} per Event)",
        bytes.len(),
        bytes.len() / EVENTS
    );
    println!("write_atomic (write + fsync + rename) of it: {write:?}; decode: {decode:?}");
    drop(decoded);

    let tombstones = 1_000_000u64;
    let before = resident_bytes();
    let mut ledger = Ledger::new(1, false).with_tombstone_limits(TombstoneLimits {
        max_age_seconds: u64::MAX,
        max_entries: tombstones as usize,
    });
    ledger.list_started(0).expect("watch 0");
    ledger.list_done(0).expect("watch 0");
    for n in 0..tombstones {
        let named = NamedAt {
            name: NameKey::new("shop", &format!("pod-{n}.17a"), "2026-12-01T10:00:00Z"),
            now: 1_000 + n,
        };
        ledger
            .delete(0, UidKey(u128::from(n)), 0, 3, Some(named))
            .expect("watch 0");
    }
    let after = resident_bytes();
    println!(
        "{} tombstones: {:.1} bytes each (RSS {} → {} MiB)",
        ledger.tombstone_count(),
        (after.saturating_sub(before)) as f64 / tombstones as f64,
        before / (1 << 20),
        after / (1 << 20)
    );
}
