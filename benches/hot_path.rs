//! Criterion benches of the per-update hot path and of exposition.
//!
//!     cargo bench --bench hot_path

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use kube_event_metrics::classify;
use kube_event_metrics::config::LabelFilters;
use kube_event_metrics::ingest::Ingest;
use kube_event_metrics::ledger::{Ledger, UidKey};
use kube_event_metrics::metrics::{self, Format, SelfStats};
use kube_event_metrics::source::line::{WatchLine, decode_line};
use kube_event_metrics::source::{Delivery, EventText, Observation, Signal, SlimEvent};
use kube_event_metrics::store::{KeyScratch, LabelValues, SeriesStore};

fn observation(n: usize, occurrences: u32) -> Observation {
    let namespace = format!("namespace-{}", n % 100);
    let (name, involved, node) = (
        format!("pod-{n}.17a2b3c4d5e6f708"),
        format!("pod-{n}"),
        format!("worker-{}", n % 50),
    );
    Observation::new(
        UidKey(n as u128 * 0x9E37_79B9_7F4A_7C15),
        occurrences,
        EventText {
            namespace: &namespace,
            kind: "Pod",
            reason: ["BackOff", "Unhealthy", "FailedMount", "Pulled"][n % 4],
            event_type: if n % 4 == 3 { "Normal" } else { "Warning" },
            source: "kubelet",
            object_namespace: "shop",
            object_name: &name,
            first_timestamp: "2026-12-01T10:00:00Z",
            // What the kubelet writes: every counted update refills its series' exemplar, and a
            // new Event is classified from its message.
            message: MESSAGES[n % 4],
            involved_name: &involved,
            node: &node,
            last_seen: "2026-12-01T10:00:05Z",
        },
    )
}

/// Label set `n`, as an Observation carries it.
fn labels(n: usize) -> Observation {
    observation(n, 1)
}

const MESSAGES: [&str; 4] = [
    "Back-off restarting failed container app in pod web-1_shop(3f1c2a9e-26a1-4462-8323-065a8457a6d3)",
    "Readiness probe failed: HTTP probe failed with statuscode: 503",
    "MountVolume.SetUp failed for volume \"config\" : configmap \"app-config\" not found",
    "Successfully pulled image \"ghcr.io/acme/web:1.14.2\" in 6.812s (6.812s including waiting)",
];

/// The longest message of the catalogue's busiest reason, as kube-scheduler writes it.
const SCHEDULING: &str = "0/120 nodes are available: 3 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 9 node(s) didn't match Pod's node affinity/selector, 108 Insufficient memory. preemption: 0/120 nodes are available: 12 Preemption is not helpful for scheduling, 108 No preemption victims found for incoming pod.";

fn classify_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("classify");
    group.bench_function("failed_scheduling", |b| {
        b.iter(|| classify::builtin("FailedScheduling", std::hint::black_box(SCHEDULING)))
    });
    group.bench_function("kubelet_backoff", |b| {
        b.iter(|| classify::builtin("BackOff", std::hint::black_box(MESSAGES[0])))
    });
    group.bench_function("reason_outside_the_catalogue", |b| {
        b.iter(|| classify::builtin("Pulled", std::hint::black_box(MESSAGES[3])))
    });
    group.finish();
}

/// Resident memory the exemplars of `series` series take, from /proc (Linux): printed, not timed.
fn exemplar_memory(_: &mut Criterion) {
    let resident = || -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
    };
    let series = 200_000;
    let (store, _) = store_with_series(series);
    let ids: Vec<u32> = (0..series as u32).collect();
    let names: Vec<String> = (0..series)
        .map(|n| format!("checkout-84c6d9f5b7-{n:05}"))
        .collect();
    let before = resident();
    for (id, name) in ids.iter().zip(&names) {
        store.record_exemplar(*id, |e| {
            e.set(
                "Pod",
                name,
                "ip-10-0-12-34.eu-west-1.compute.internal",
                1,
                Some(1.0),
            )
        });
    }
    if let (Some(before), Some(after)) = (before, resident()) {
        println!(
            "exemplar memory: {:.0} bytes each over {series} series (pod name {} chars, node 41)",
            after.saturating_sub(before) as f64 / series as f64,
            names[0].len()
        );
    }
}

fn live_ingest(series_limit: usize) -> Ingest {
    let mut ingest = Ingest::new(
        1,
        false,
        LabelFilters::default(),
        Arc::new(SeriesStore::new(series_limit)),
        Arc::new(SelfStats::default()),
    );
    ingest.handle(Signal::ListStarted(0));
    ingest.handle(Signal::ListDone(0));
    ingest
}

fn applied(observation: Observation) -> Signal {
    Signal::Object {
        watch: 0,
        delivery: Delivery::Applied,
        event: Ok(observation),
    }
}

fn ingest_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest");
    // An update of a known Event whose label set exists: the steady state of a busy cluster.
    group.bench_function("known_uid", |b| {
        let mut ingest = live_ingest(10_000);
        let known = 10_000;
        for n in 0..known {
            ingest.handle(applied(observation(n, 1)));
        }
        let mut round = 1u32;
        let mut n = 0usize;
        b.iter_batched(
            || {
                n = (n + 1) % known;
                if n == 0 {
                    round += 1;
                }
                applied(observation(n, round + 1))
            },
            |signal| ingest.handle(signal),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("new_uid", |b| {
        let mut ingest = live_ingest(10_000);
        let mut n = 0usize;
        b.iter_batched(
            || {
                n += 1;
                applied(observation(n, 1))
            },
            |signal| ingest.handle(signal),
            BatchSize::SmallInput,
        );
    });
    group.finish();

    // The counting core alone: a known Event's diff and its counter's increment.
    c.bench_function("ledger_apply_and_store_increment", |b| {
        let mut ledger = Ledger::new(1, false);
        ledger.list_started(0).unwrap();
        ledger.list_done(0).unwrap();
        let store = SeriesStore::new(1_000);
        let mut scratch = KeyScratch::default();
        let series: Vec<u32> = (0..400)
            .map(|n| store.intern(&labels(n).text().label_values(), &mut scratch))
            .collect();
        let uids: Vec<UidKey> = (0..10_000).map(|n| observation(n, 1).uid).collect();
        let mut count = 1u32;
        let mut n = 0usize;
        b.iter(|| {
            n = (n + 1) % uids.len();
            if n == 0 {
                count += 1;
            }
            let outcome = ledger
                .observe(0, uids[n], series[n % 400], count, None)
                .unwrap();
            if let Some(increment) = outcome.increment() {
                store.add(increment.series, increment.delta);
            }
        });
    });

    c.bench_function("ledger/relist_10k", |b| {
        let mut ledger = Ledger::new(1, false);
        ledger.list_started(0).unwrap();
        for n in 0..10_000 {
            ledger
                .observe(0, observation(n, 1).uid, 0, 1, None)
                .unwrap();
        }
        ledger.list_done(0).unwrap();
        let uids: Vec<UidKey> = (0..10_000).map(|n| observation(n, 1).uid).collect();
        b.iter(|| {
            ledger.list_started(0).unwrap();
            for uid in &uids {
                ledger.observe(0, *uid, 0, 2, None).unwrap();
            }
            ledger.list_done(0).unwrap()
        });
    });

    c.bench_function("store/intern_existing", |b| {
        let store = SeriesStore::new(10_000);
        let mut scratch = KeyScratch::default();
        let owned: Vec<Observation> = (0..400).map(labels).collect();
        for l in &owned {
            store.intern(&l.text().label_values(), &mut scratch);
        }
        let mut n = 0;
        b.iter(|| {
            n = (n + 1) % owned.len();
            store.intern(&owned[n].text().label_values(), &mut scratch)
        });
    });

    let mut group = c.benchmark_group("store/increment");
    for threads in [1usize, 4] {
        group.bench_function(format!("{threads}_threads"), |b| {
            let store = Arc::new(SeriesStore::new(1_000));
            let mut scratch = KeyScratch::default();
            let ids: Vec<u32> = (0..400)
                .map(|n| store.intern(&labels(n).text().label_values(), &mut scratch))
                .collect();
            let ids = Arc::new(ids);
            // Time per increment, each thread doing its share.
            b.iter_custom(|iterations| {
                let per_thread = iterations / threads as u64 + 1;
                let start = Instant::now();
                let workers: Vec<_> = (0..threads)
                    .map(|t| {
                        let store = store.clone();
                        let ids = ids.clone();
                        std::thread::spawn(move || {
                            for i in 0..per_thread {
                                store.add(ids[(i as usize * 7 + t) % ids.len()], 1);
                            }
                        })
                    })
                    .collect();
                for worker in workers {
                    worker.join().unwrap();
                }
                start.elapsed()
            });
        });
    }
    group.finish();
}

fn store_with_series(count: usize) -> (Arc<SeriesStore>, Arc<SelfStats>) {
    let store = Arc::new(SeriesStore::new(count + 10));
    let mut scratch = KeyScratch::default();
    for n in 0..count {
        let namespace = format!("namespace-{}", n / 40);
        let reason = format!("Reason{}", n % 40);
        let id = store.intern(
            &LabelValues {
                namespace: &namespace,
                kind: "Pod",
                reason: &reason,
                event_type: "Warning",
                source: "kubelet",
                class: "",
            },
            &mut scratch,
        );
        store.add(id, n as u64);
    }
    (store, Arc::new(SelfStats::default()))
}

fn encoding_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.measurement_time(Duration::from_secs(8));
    for series in [1_000usize, 10_000, 100_000] {
        let (store, stats) = store_with_series(series);
        let registry = metrics::registry(store, stats);
        group.bench_function(format!("text_{series}"), |b| {
            b.iter(|| metrics::encode(&registry, Format::Text).unwrap().len())
        });
        group.bench_function(format!("openmetrics_{series}"), |b| {
            b.iter(|| {
                metrics::encode(&registry, Format::OpenMetrics)
                    .unwrap()
                    .len()
            })
        });
        group.bench_function(format!("text_gzip_{series}"), |b| {
            b.iter(|| {
                let text = metrics::encode(&registry, Format::Text).unwrap();
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::Write::write_all(&mut encoder, text.as_bytes()).unwrap();
                encoder.finish().unwrap().len()
            })
        });
    }
    // Every series with an exemplar, as after a busy hour.
    for series in [10_000usize, 100_000] {
        let (store, stats) = store_with_series(series);
        for id in 0..series as u32 {
            store.record_exemplar(id, |e| {
                e.set(
                    "Pod",
                    "checkout-84c6d9f5b7-7tq2m",
                    "worker-3",
                    1,
                    Some(1.7e9),
                )
            });
        }
        let registry = metrics::registry(store, stats);
        group.bench_function(format!("openmetrics_exemplars_{series}"), |b| {
            b.iter(|| {
                metrics::encode(&registry, Format::OpenMetrics)
                    .unwrap()
                    .len()
            })
        });
    }
    group.finish();
}

fn decode_benches(c: &mut Criterion) {
    let line = br#"{"type":"MODIFIED","object":{"apiVersion":"v1","kind":"Event","metadata":{"name":"web-7d9c5b6f8-x2k4q.17a1b2c3d4e5f6a7","namespace":"shop","uid":"8685df9f-42b7-4271-8323-065a8457a6d3","resourceVersion":"812341","creationTimestamp":"2026-11-20T14:00:02Z","managedFields":[{"manager":"kubelet","operation":"Update","apiVersion":"v1","time":"2026-11-20T14:00:02Z"}]},"involvedObject":{"apiVersion":"v1","kind":"Pod","name":"web-7d9c5b6f8-x2k4q","namespace":"shop","uid":"e33fb13c-3ef4-427a-8b2d-a4c02725c3ab","fieldPath":"spec.containers{web}"},"reason":"BackOff","message":"Back-off restarting failed container web in pod web-7d9c5b6f8-x2k4q_shop(e33fb13c-3ef4-427a-8b2d-a4c02725c3ab)","source":{"component":"kubelet","host":"worker-1"},"firstTimestamp":"2026-11-20T14:00:02Z","lastTimestamp":"2026-11-20T14:10:02Z","count":17,"type":"Warning","eventTime":null,"reportingComponent":"kubelet","reportingInstance":"worker-1"}}"#;
    c.bench_function("decode/watch_line_to_observation", |b| {
        b.iter(|| {
            let event: kube::core::WatchEvent<SlimEvent> = serde_json::from_slice(line).unwrap();
            match event {
                kube::core::WatchEvent::Modified(object) => object.into_observation().ok(),
                _ => None,
            }
        })
    });
    // What the watch does with each line: its text borrowed, then packed once.
    c.bench_function("decode/watch_line_borrowed", |b| {
        b.iter(|| match decode_line(line) {
            Some(Ok(WatchLine::Object { event, .. })) => event.ok(),
            _ => None,
        })
    });
}

criterion_group!(
    benches,
    ingest_benches,
    classify_benches,
    exemplar_memory,
    encoding_benches,
    decode_benches
);
criterion_main!(benches);
