//! Property tests: whatever the interleaving of creations, count bumps, deletions, re-creations
//! under the same name, watch gaps ending in relists, and restarts with a state snapshot, the
//! counters hold exactly the occurrences the exporter could have seen since its baseline.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube_event_metrics::config::LabelFilters;
use kube_event_metrics::ingest::Ingest;
use kube_event_metrics::ledger::UidKey;
use kube_event_metrics::metrics::SelfStats;
use kube_event_metrics::source::{Delivery, Observation, OwnedLabels, Signal};
use kube_event_metrics::state;
use kube_event_metrics::store::SeriesStore;
use proptest::prelude::*;

const WATCHES: usize = 2;
const LABEL_SETS: usize = 4;
const FINGERPRINTS: [u64; WATCHES] = [101, 202];

#[derive(Clone, Debug)]
enum Op {
    Create {
        watch: usize,
        label: usize,
        count: u32,
    },
    Bump {
        pick: usize,
        by: u32,
    },
    Delete {
        pick: usize,
    },
    /// Deleted and created again with the same name: a new uid, counting from 1.
    Recreate {
        pick: usize,
    },
    /// The watch disconnects; what happens meanwhile it learns only from its relist.
    GapStart {
        watch: usize,
    },
    /// The watch relists (after a 410 or a reconnect).
    GapEnd {
        watch: usize,
    },
    /// The exporter restarts with its state file: every watch relists in a new process.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..WATCHES, 0..LABEL_SETS, 1..5u32)
            .prop_map(|(watch, label, count)| Op::Create { watch, label, count }),
        6 => (any::<usize>(), 1..5u32).prop_map(|(pick, by)| Op::Bump { pick, by }),
        2 => any::<usize>().prop_map(|pick| Op::Delete { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Recreate { pick }),
        1 => (0..WATCHES).prop_map(|watch| Op::GapStart { watch }),
        1 => (0..WATCHES).prop_map(|watch| Op::GapEnd { watch }),
        1 => Just(Op::Restart),
    ]
}

#[derive(Clone, Debug)]
struct Event {
    uid: u128,
    watch: usize,
    label: usize,
    count: u32,
    /// Whether it is still in the API server.
    live: bool,
    /// The count the exporter last received, and the count of its baseline (0 if created later).
    last_seen: Option<u32>,
    baseline: u32,
}

fn labels(label: usize) -> OwnedLabels {
    OwnedLabels {
        namespace: format!("ns{}", label % 2),
        kind: "Pod".into(),
        reason: format!("Reason{label}"),
        event_type: "Warning".into(),
        source: "kubelet".into(),
    }
}

/// The exporter under test: its ingest path and every store it has had (one per process).
struct Exporter {
    ingest: Ingest,
    stats: Arc<SelfStats>,
    stores: Vec<Arc<SeriesStore>>,
    /// The state file: the last snapshot written.
    state_file: Option<Vec<u8>>,
}

fn new_process() -> (Ingest, Arc<SeriesStore>, Arc<SelfStats>) {
    let store = Arc::new(SeriesStore::new(1_000));
    let stats = Arc::new(SelfStats::default());
    let ingest = Ingest::new(
        WATCHES,
        false,
        LabelFilters::default(),
        store.clone(),
        stats.clone(),
    );
    (ingest, store, stats)
}

struct Cluster {
    events: Vec<Event>,
    next_uid: u128,
    in_gap: [bool; WATCHES],
}

impl Cluster {
    fn deliver(&mut self, exporter: &mut Exporter, index: usize, delivery: Delivery) {
        let event = &mut self.events[index];
        if self.in_gap[event.watch] {
            return;
        }
        event.last_seen = Some(event.count);
        exporter.ingest.handle(Signal::Object {
            watch: event.watch as u16,
            delivery,
            event: Ok(Observation {
                uid: UidKey(event.uid),
                labels: labels(event.label),
                occurrences: event.count,
            }),
        });
    }

    fn relist(&mut self, exporter: &mut Exporter, watch: usize) {
        self.in_gap[watch] = false;
        exporter.ingest.handle(Signal::ListStarted(watch as u16));
        for index in 0..self.events.len() {
            if self.events[index].live && self.events[index].watch == watch {
                self.deliver(exporter, index, Delivery::Listed);
            }
        }
        exporter.ingest.handle(Signal::ListDone(watch as u16));
    }

    fn create(&mut self, watch: usize, label: usize, count: u32) -> usize {
        self.next_uid += 1;
        self.events.push(Event {
            uid: self.next_uid,
            watch,
            label,
            count,
            live: true,
            last_seen: None,
            baseline: 0,
        });
        self.events.len() - 1
    }

    fn pick_live(&self, pick: usize) -> Option<usize> {
        let live: Vec<usize> = (0..self.events.len())
            .filter(|&i| self.events[i].live)
            .collect();
        (!live.is_empty()).then(|| live[pick % live.len()])
    }

    /// Per label set: what the exporter could have counted since its baseline.
    fn observable(&self) -> BTreeMap<usize, u64> {
        let mut totals: BTreeMap<usize, u64> = (0..LABEL_SETS).map(|label| (label, 0)).collect();
        for event in &self.events {
            let seen = event.last_seen.unwrap_or(event.baseline);
            *totals.entry(event.label).or_default() += u64::from(seen - event.baseline);
        }
        totals
    }
}

fn counted(exporter: &Exporter) -> BTreeMap<usize, u64> {
    let mut totals = BTreeMap::new();
    for label in 0..LABEL_SETS {
        let owned = labels(label);
        let total: u64 = exporter
            .stores
            .iter()
            .filter_map(|store| store.value_of(&owned.as_values()))
            .sum();
        totals.insert(label, total);
    }
    totals
}

/// Runs `ops`, then relists every watch; returns what was counted, what was observable, and
/// how many Events the ledger tracks against how many are live.
fn run(
    initial: Vec<(usize, usize, u32)>,
    ops: Vec<Op>,
) -> (BTreeMap<usize, u64>, BTreeMap<usize, u64>, (u64, u64)) {
    let mut cluster = Cluster {
        events: Vec::new(),
        next_uid: 0,
        in_gap: [false; WATCHES],
    };
    for (watch, label, count) in initial {
        let index = cluster.create(watch, label, count);
        // History before the exporter starts is the baseline.
        cluster.events[index].baseline = count;
    }
    let (ingest, store, stats) = new_process();
    let mut exporter = Exporter {
        ingest,
        stats,
        stores: vec![store],
        state_file: None,
    };
    for watch in 0..WATCHES {
        cluster.relist(&mut exporter, watch);
    }
    for op in ops {
        match op {
            Op::Create {
                watch,
                label,
                count,
            } => {
                let index = cluster.create(watch, label, count);
                cluster.deliver(&mut exporter, index, Delivery::Applied);
            }
            Op::Bump { pick, by } => {
                if let Some(index) = cluster.pick_live(pick) {
                    cluster.events[index].count += by;
                    cluster.deliver(&mut exporter, index, Delivery::Applied);
                }
            }
            Op::Delete { pick } => {
                if let Some(index) = cluster.pick_live(pick) {
                    cluster.events[index].live = false;
                    cluster.deliver(&mut exporter, index, Delivery::Deleted);
                }
            }
            Op::Recreate { pick } => {
                if let Some(index) = cluster.pick_live(pick) {
                    cluster.events[index].live = false;
                    cluster.deliver(&mut exporter, index, Delivery::Deleted);
                    let (watch, label) = (cluster.events[index].watch, cluster.events[index].label);
                    let again = cluster.create(watch, label, 1);
                    cluster.deliver(&mut exporter, again, Delivery::Applied);
                }
            }
            Op::GapStart { watch } => cluster.in_gap[watch] = true,
            Op::GapEnd { watch } => cluster.relist(&mut exporter, watch),
            Op::Restart => {
                // The shutdown snapshot, written only if the ledger changed since the last.
                if let Some(bytes) = exporter.ingest.take_snapshot(&FINGERPRINTS) {
                    exporter.state_file = Some(bytes);
                }
                let bytes = exporter
                    .state_file
                    .as_deref()
                    .expect("written after the first list");
                let (mut ingest, store, stats) = new_process();
                ingest.restore(
                    state::decode(bytes).expect("own snapshot decodes"),
                    &FINGERPRINTS,
                );
                exporter.ingest = ingest;
                exporter.stats = stats;
                exporter.stores.push(store);
                for watch in 0..WATCHES {
                    cluster.relist(&mut exporter, watch);
                }
            }
        }
    }
    for watch in 0..WATCHES {
        cluster.relist(&mut exporter, watch);
    }
    let tracked = exporter
        .stats
        .tracked_events
        .load(std::sync::atomic::Ordering::Relaxed);
    let live = cluster.events.iter().filter(|event| event.live).count() as u64;
    (counted(&exporter), cluster.observable(), (tracked, live))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn counters_equal_the_observable_occurrences(
        initial in prop::collection::vec((0..WATCHES, 0..LABEL_SETS, 1..20u32), 0..8),
        ops in prop::collection::vec(op(), 0..80),
    ) {
        let (counted, truth, (tracked, live)) = run(initial, ops);
        prop_assert_eq!(counted, truth);
        // Memory follows live Events: what vanished unseen is forgotten by the relist.
        prop_assert_eq!(tracked, live);
    }
}

#[test]
fn a_gap_loses_only_the_last_growth_of_events_deleted_unseen() {
    // Created and bumped while watched, then bumped and deleted inside a gap.
    let (counted, truth, _) = run(
        vec![],
        vec![
            Op::Create {
                watch: 0,
                label: 1,
                count: 2,
            },
            Op::GapStart { watch: 0 },
            Op::Bump { pick: 0, by: 3 },
            Op::Delete { pick: 0 },
            Op::GapEnd { watch: 0 },
        ],
    );
    assert_eq!(counted[&1], 2);
    assert_eq!(truth[&1], 2);
}
