//! The series store: interned label sets, one atomic counter each, and the cardinality limit.
//!
//! Counters live in a slot array sized once at start, so an increment is a single atomic add by
//! series id and a scrape reads the slots without touching the intern map: scrapes never block
//! ingestion. Knows nothing about Kubernetes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use dashmap::DashMap;

use crate::ledger::SeriesId;

/// The label values of one series, in the order of [`LABEL_NAMES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelValues<'a> {
    pub namespace: &'a str,
    pub kind: &'a str,
    pub reason: &'a str,
    pub event_type: &'a str,
    pub source: &'a str,
    /// Why, from the message (classify.rs); "" when the catalogue does not know.
    pub class: &'a str,
}

pub const LABEL_NAMES: [&str; 6] = ["namespace", "kind", "reason", "type", "source", "class"];

/// Prometheus' limit on an exemplar's label names and values together, in characters.
pub const EXEMPLAR_RUNES: usize = 128;

/// The value that replaces a label folded away by the cardinality limit.
pub const OTHER: &str = "_other_";

/// Series kept beyond `--max-series` for the last fold, one per Event type. Kubernetes only
/// writes `Normal` and `Warning`; the spare room absorbs odd values, and when even that is full the
/// type is folded too (the last slot).
const OVERFLOW_SLOTS: usize = 8;

impl<'a> LabelValues<'a> {
    fn values(&self) -> [&'a str; 6] {
        [
            self.namespace,
            self.kind,
            self.reason,
            self.event_type,
            self.source,
            self.class,
        ]
    }

    /// Length-prefixed, so no label value can forge another label set's key.
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.clear();
        for value in self.values() {
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value.as_bytes());
        }
    }

    fn namespace_folded(self) -> Self {
        Self {
            namespace: OTHER,
            ..self
        }
    }

    fn all_folded(event_type: &'a str) -> Self {
        Self {
            namespace: OTHER,
            kind: OTHER,
            reason: OTHER,
            event_type,
            source: OTHER,
            class: OTHER,
        }
    }
}

/// Decodes a key written by [`LabelValues::encode_key`].
fn decode_key(key: &[u8]) -> [&str; 6] {
    let mut values = [""; 6];
    let mut rest = key;
    for value in &mut values {
        let (len, tail) = rest.split_at(4);
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let (bytes, tail) = tail.split_at(len);
        // Keys are only ever built from `&str` values by `encode_key`, so each part is UTF-8.
        *value = std::str::from_utf8(bytes).unwrap_or_default();
        rest = tail;
    }
    values
}

#[derive(Debug, Default)]
struct Slot {
    value: AtomicU64,
    /// `value` at the last [`SeriesStore::publish`]: what scrapes serve under `--state-file`.
    published: AtomicU64,
    /// Set once, before the slot's id is handed out; a scrape skips a slot still being created.
    key: OnceLock<Arc<[u8]>>,
    folded: std::sync::atomic::AtomicBool,
    /// Boxed so a slot never used for one costs a pointer, not the exemplar.
    exemplar: Mutex<Option<Box<Exemplar>>>,
}

/// The latest counted occurrence of a series: the object it was about, the node where there is
/// one, how many occurrences that update counted, and when the last of them happened.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exemplar {
    /// `kind/name`.
    pub object: String,
    pub node: String,
    pub value: u64,
    /// Seconds since the epoch.
    pub timestamp: Option<f64>,
}

impl Exemplar {
    pub const OBJECT: &'static str = "object";
    pub const NODE: &'static str = "node";

    /// Refills in place (no allocation once the strings have grown) within [`EXEMPLAR_RUNES`]:
    /// the node keeps at most a third of the room, the object the rest, each cut at a character.
    pub fn set(&mut self, kind: &str, name: &str, node: &str, value: u64, timestamp: Option<f64>) {
        let room = EXEMPLAR_RUNES - Self::OBJECT.len() - Self::NODE.len();
        self.node.clear();
        self.node.extend(node.chars().take(room / 3));
        let object_room = room - self.node.chars().count();
        self.object.clear();
        self.object.extend(
            kind.chars()
                .chain(std::iter::once('/'))
                .chain(name.chars())
                .take(object_room),
        );
        self.value = value;
        self.timestamp = timestamp;
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tier {
    Exact,
    NamespaceFolded,
    Overflow,
}

/// Which value of a series a scrape reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// As it is now.
    Live,
    /// As of the last [`SeriesStore::publish`].
    Published,
}

/// A snapshot of one series for exposition.
#[derive(Debug, PartialEq)]
pub struct SeriesSample<'a> {
    pub labels: [(&'static str, &'a str); 6],
    pub value: u64,
    pub exemplar: Option<&'a Exemplar>,
}

impl SeriesSample<'_> {
    /// The labels to expose: an empty class is left out (Prometheus reads a missing label and an
    /// empty one alike, and most series have none).
    pub fn exposed_labels(&self) -> &[(&'static str, &str)] {
        // The class is the last label.
        match self.labels {
            [head @ .., (_, "")] => &self.labels[..head.len()],
            _ => &self.labels,
        }
    }
}

#[derive(Debug)]
pub struct SeriesStore {
    index: DashMap<Arc<[u8]>, SeriesId>,
    slots: Box<[Slot]>,
    next_slot: AtomicU32,
    max_series: usize,
    exact_limit: usize,
    exact: AtomicU32,
    namespace_folded: AtomicU32,
    overflow: AtomicU32,
    folded_occurrences: AtomicU64,
}

/// Reusable buffer for building lookup keys, so looking up an existing label set allocates nothing.
#[derive(Debug, Default)]
pub struct KeyScratch(Vec<u8>);

impl SeriesStore {
    /// A store bounded to `max_series` (at least 1) event series, plus the per-type overflow series.
    pub fn new(max_series: usize) -> Self {
        let max_series = max_series.max(1);
        let exact_limit = max_series * 9 / 10;
        let slots = (0..max_series + OVERFLOW_SLOTS)
            .map(|_| Slot::default())
            .collect();
        Self {
            index: DashMap::new(),
            slots,
            next_slot: AtomicU32::new(0),
            max_series,
            exact_limit,
            exact: AtomicU32::new(0),
            namespace_folded: AtomicU32::new(0),
            overflow: AtomicU32::new(0),
            folded_occurrences: AtomicU64::new(0),
        }
    }

    pub fn max_series(&self) -> usize {
        self.max_series
    }

    /// Series created so far (exact, folded and overflow).
    pub fn series(&self) -> usize {
        self.next_slot.load(Ordering::Acquire) as usize
    }

    /// Occurrences added to folded series.
    pub fn folded_occurrences(&self) -> u64 {
        self.folded_occurrences.load(Ordering::Relaxed)
    }

    /// The series for `labels`, created at 0 if new; folded when the limit is reached.
    pub fn intern(&self, labels: &LabelValues<'_>, scratch: &mut KeyScratch) -> SeriesId {
        if let Some(id) = self.lookup_or_create(labels, Tier::Exact, scratch) {
            return id;
        }
        let folded = labels.namespace_folded();
        if let Some(id) = self.lookup_or_create(&folded, Tier::NamespaceFolded, scratch) {
            return id;
        }
        let last_fold = LabelValues::all_folded(labels.event_type);
        if let Some(id) = self.lookup_or_create(&last_fold, Tier::Overflow, scratch) {
            return id;
        }
        let catch_all = LabelValues::all_folded(OTHER);
        self.lookup_or_create(&catch_all, Tier::Overflow, scratch)
            // The catch-all takes the last overflow slot, which nothing else may use (see
            // `reserve`), so it always exists once the other overflow slots are spent.
            .unwrap_or_default()
    }

    fn lookup(&self, labels: &LabelValues<'_>, scratch: &mut KeyScratch) -> Option<SeriesId> {
        labels.encode_key(&mut scratch.0);
        self.index.get(scratch.0.as_slice()).map(|id| *id)
    }

    fn lookup_or_create(
        &self,
        labels: &LabelValues<'_>,
        tier: Tier,
        scratch: &mut KeyScratch,
    ) -> Option<SeriesId> {
        if let Some(id) = self.lookup(labels, scratch) {
            return Some(id);
        }
        let key: Arc<[u8]> = Arc::from(scratch.0.as_slice());
        match self.index.entry(key.clone()) {
            dashmap::Entry::Occupied(existing) => Some(*existing.get()),
            dashmap::Entry::Vacant(vacant) => {
                let is_catch_all = labels.event_type == OTHER && labels.kind == OTHER;
                let id = self.reserve(tier, is_catch_all)?;
                let slot = &self.slots[id as usize];
                slot.folded.store(tier != Tier::Exact, Ordering::Relaxed);
                let _ = slot.key.set(key);
                vacant.insert(id);
                Some(id)
            }
        }
    }

    /// Claims room in `tier` and a slot, or `None` when the tier is full.
    fn reserve(&self, tier: Tier, is_catch_all: bool) -> Option<SeriesId> {
        let (counter, limit) = match tier {
            Tier::Exact => (&self.exact, self.exact_limit),
            Tier::NamespaceFolded => (&self.namespace_folded, self.max_series - self.exact_limit),
            Tier::Overflow if is_catch_all => (&self.overflow, OVERFLOW_SLOTS),
            Tier::Overflow => (&self.overflow, OVERFLOW_SLOTS - 1),
        };
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                ((used as usize) < limit).then_some(used + 1)
            })
            .ok()?;
        Some(self.next_slot.fetch_add(1, Ordering::AcqRel))
    }

    /// Whether `series` has the labels of `labels` apart from the class: an update of a known
    /// Event keeps the class it was given when first seen (classify once per Event).
    pub fn has_labels_but_class(&self, series: SeriesId, labels: &LabelValues<'_>) -> bool {
        self.slots
            .get(series as usize)
            .and_then(|slot| slot.key.get())
            .is_some_and(|key| decode_key(key)[..5] == labels.values()[..5])
    }

    /// Records the latest occurrence of a series.
    pub fn record_exemplar(&self, series: SeriesId, fill: impl FnOnce(&mut Exemplar)) {
        let Some(slot) = self.slots.get(series as usize) else {
            return;
        };
        // A poisoned lock only means a panic elsewhere mid-fill; the exemplar is still whole
        // enough to overwrite.
        let mut exemplar = slot.exemplar.lock().unwrap_or_else(|e| e.into_inner());
        fill(exemplar.get_or_insert_with(Box::default));
    }

    /// Adds `delta` occurrences to a series.
    pub fn add(&self, series: SeriesId, delta: u64) {
        let Some(slot) = self.slots.get(series as usize) else {
            return;
        };
        // Release: pairs with the scrape's newest-first Acquire reads.
        slot.value.fetch_add(delta, Ordering::Release);
        if slot.folded.load(Ordering::Relaxed) {
            self.folded_occurrences.fetch_add(delta, Ordering::Relaxed);
        }
    }

    /// Makes every series' current value the one [`Reading::Published`] serves. The ingest
    /// task calls it between two updates, so what is published matches one state of the ledger.
    pub fn publish(&self) {
        let created = self.series().min(self.slots.len());
        for slot in &self.slots[..created] {
            slot.published
                .store(slot.value.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// Visits every series with its current value, in creation order.
    pub fn for_each_series<E>(
        &self,
        visit: impl FnMut(SeriesSample<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.for_each_series_as(Reading::Live, visit)
    }

    /// Visits every series with its live or its published value, in creation order.
    pub fn for_each_series_as<E>(
        &self,
        reading: Reading,
        mut visit: impl FnMut(SeriesSample<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let created = self.series().min(self.slots.len());
        // Newest first: the ingest counts in order, so whatever a scrape shows of a later update
        // (a barrier, the last item of a list), it shows of every earlier one, even while the
        // ingest runs on another thread. Then exposed in creation order.
        let mut values = vec![0; created];
        for (value, slot) in values.iter_mut().zip(&self.slots[..created]).rev() {
            *value = match reading {
                Reading::Live => slot.value.load(Ordering::Acquire),
                Reading::Published => slot.published.load(Ordering::Acquire),
            };
        }
        for (slot, value) in self.slots[..created].iter().zip(values) {
            let Some(key) = slot.key.get() else { continue };
            let values = decode_key(key);
            let mut labels = [("", ""); 6];
            for (label, (name, value)) in labels.iter_mut().zip(LABEL_NAMES.iter().zip(values)) {
                *label = (name, value);
            }
            let exemplar = slot.exemplar.lock().unwrap_or_else(|e| e.into_inner());
            visit(SeriesSample {
                labels,
                value,
                exemplar: exemplar.as_deref(),
            })?;
        }
        Ok(())
    }

    /// Every series' current value, by series id (0 for a slot still being created).
    pub fn live_values(&self, out: &mut Vec<u64>) {
        let created = self.series().min(self.slots.len());
        out.clear();
        out.extend(
            self.slots[..created]
                .iter()
                .map(|slot| slot.value.load(Ordering::Relaxed)),
        );
    }

    /// The label values of a series, in the order of [`LABEL_NAMES`].
    pub fn labels_of(&self, series: SeriesId) -> Option<[&str; 6]> {
        let key = self.slots.get(series as usize)?.key.get()?;
        Some(decode_key(key))
    }

    /// The published value of the series with exactly these labels, if it exists.
    pub fn published_value_of(&self, labels: &LabelValues<'_>) -> Option<u64> {
        let id = self.lookup(labels, &mut KeyScratch::default())?;
        Some(self.slots[id as usize].published.load(Ordering::Relaxed))
    }

    /// The value of the series with exactly these labels, if it exists.
    pub fn value_of(&self, labels: &LabelValues<'_>) -> Option<u64> {
        let id = self.lookup(labels, &mut KeyScratch::default())?;
        Some(self.slots[id as usize].value.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels<'a>(namespace: &'a str, reason: &'a str) -> LabelValues<'a> {
        LabelValues {
            namespace,
            kind: "Pod",
            reason,
            event_type: "Warning",
            source: "kubelet",
            class: "",
        }
    }

    #[test]
    fn same_labels_share_a_series_created_at_zero() {
        let store = SeriesStore::new(100);
        let mut scratch = KeyScratch::default();
        let a = store.intern(&labels("shop", "BackOff"), &mut scratch);
        let b = store.intern(&labels("shop", "BackOff"), &mut scratch);
        assert_eq!(a, b);
        assert_eq!(store.value_of(&labels("shop", "BackOff")), Some(0));
        store.add(a, 3);
        assert_eq!(store.value_of(&labels("shop", "BackOff")), Some(3));
        assert_eq!(store.series(), 1);
    }

    #[test]
    fn has_labels_matches_only_the_exact_series() {
        let store = SeriesStore::new(10);
        let mut scratch = KeyScratch::default();
        let id = store.intern(&labels("shop", "BackOff"), &mut scratch);
        assert!(store.has_labels_but_class(id, &labels("shop", "BackOff")));
        assert!(!store.has_labels_but_class(id, &labels("shop", "Evicted")));
        assert!(!store.has_labels_but_class(id + 1, &labels("shop", "BackOff")));
        assert!(!store.has_labels_but_class(SeriesId::MAX, &labels("shop", "BackOff")));
    }

    #[test]
    fn keys_cannot_collide_through_separators() {
        let store = SeriesStore::new(100);
        let mut scratch = KeyScratch::default();
        let a = LabelValues {
            namespace: "a\0b",
            kind: "",
            ..labels("", "r")
        };
        let b = LabelValues {
            namespace: "a",
            kind: "b",
            ..labels("", "r")
        };
        assert_ne!(
            store.intern(&a, &mut scratch),
            store.intern(&b, &mut scratch)
        );
    }

    #[test]
    fn folds_namespace_then_everything_but_type() {
        // 10 series: 9 exact, 1 namespace-folded, then the per-type overflow.
        let store = SeriesStore::new(10);
        let mut scratch = KeyScratch::default();
        let namespaces: Vec<String> = (0..12).map(|n| format!("ns{n}")).collect();
        for namespace in &namespaces[..9] {
            let id = store.intern(&labels(namespace, "BackOff"), &mut scratch);
            store.add(id, 1);
        }
        assert_eq!(store.folded_occurrences(), 0);

        // The tenth label set keeps its reason but loses its namespace.
        let folded = store.intern(&labels(&namespaces[9], "BackOff"), &mut scratch);
        store.add(folded, 2);
        assert_eq!(store.value_of(&labels(OTHER, "BackOff")), Some(2));
        // Same reason, another namespace: the same folded series.
        assert_eq!(
            store.intern(&labels(&namespaces[10], "BackOff"), &mut scratch),
            folded
        );

        // A new reason finds the namespace tier full: everything but type folds.
        let overflow = store.intern(&labels(&namespaces[11], "Evicted"), &mut scratch);
        store.add(overflow, 5);
        let last = LabelValues::all_folded("Warning");
        assert_eq!(store.value_of(&last), Some(5));
        assert_eq!(store.folded_occurrences(), 7);
        // Normal events get their own overflow series: type survives every fold.
        let normal = LabelValues {
            event_type: "Normal",
            ..labels("ns-new", "Pulled")
        };
        let normal_id = store.intern(&normal, &mut scratch);
        assert_ne!(normal_id, overflow);
        assert_eq!(store.series(), 12);
        // Existing exact series still count exactly.
        let first = store.intern(&labels("ns0", "BackOff"), &mut scratch);
        store.add(first, 1);
        assert_eq!(store.value_of(&labels("ns0", "BackOff")), Some(2));
    }

    #[test]
    fn odd_types_end_in_a_catch_all_when_overflow_room_is_spent() {
        let store = SeriesStore::new(1);
        let mut scratch = KeyScratch::default();
        let types: Vec<String> = (0..20).map(|n| format!("T{n}")).collect();
        let mut ids = Vec::new();
        for event_type in &types {
            let id = store.intern(
                &LabelValues {
                    event_type,
                    ..labels("ns", event_type)
                },
                &mut scratch,
            );
            store.add(id, 1);
            ids.push(id);
        }
        assert!(store.series() <= 1 + OVERFLOW_SLOTS);
        let total: u64 = {
            let mut sum = 0;
            store
                .for_each_series(|sample| {
                    sum += sample.value;
                    Ok::<_, ()>(())
                })
                .unwrap();
            sum
        };
        assert_eq!(total, 20, "no occurrence is lost to folding");
    }

    #[test]
    fn concurrent_increments_are_exact() {
        let store = Arc::new(SeriesStore::new(1000));
        let threads: Vec<_> = (0..4u64)
            .map(|thread| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut scratch = KeyScratch::default();
                    for n in 0..10_000u32 {
                        let reason = format!("R{}", n % 50);
                        let id = store.intern(&labels("ns", &reason), &mut scratch);
                        store.add(id, thread + 1);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(store.series(), 50);
        let mut total = 0;
        store
            .for_each_series(|sample| {
                assert_eq!(sample.value, 200 * (1 + 2 + 3 + 4));
                total += sample.value;
                Ok::<_, ()>(())
            })
            .unwrap();
        assert_eq!(total, 10_000 * 10);
    }

    #[test]
    fn samples_carry_label_names_and_values() {
        let store = SeriesStore::new(10);
        let mut scratch = KeyScratch::default();
        let id = store.intern(&labels("", "NodeNotReady"), &mut scratch);
        store.add(id, 4);
        let mut seen = Vec::new();
        store
            .for_each_series(|sample| {
                seen.push((sample.labels.map(|(n, v)| format!("{n}={v}")), sample.value));
                Ok::<_, ()>(())
            })
            .unwrap();
        assert_eq!(
            seen,
            vec![(
                [
                    "namespace=".to_string(),
                    "kind=Pod".into(),
                    "reason=NodeNotReady".into(),
                    "type=Warning".into(),
                    "source=kubelet".into(),
                    "class=".into()
                ],
                4
            )]
        );
    }

    #[test]
    fn an_empty_class_is_not_exposed_and_exemplars_follow_their_series() {
        let store = SeriesStore::new(10);
        let mut scratch = KeyScratch::default();
        let plain = store.intern(&labels("shop", "BackOff"), &mut scratch);
        let classed = LabelValues {
            class: "restarting-container",
            ..labels("shop", "BackOff")
        };
        let classed = store.intern(&classed, &mut scratch);
        assert_ne!(plain, classed);
        assert!(store.has_labels_but_class(classed, &labels("shop", "BackOff")));
        assert!(!store.has_labels_but_class(classed, &labels("shop", "Evicted")));
        store.record_exemplar(classed, |e| e.set("Pod", "web-1", "node-1", 2, Some(1.5)));
        let mut seen = Vec::new();
        store
            .for_each_series(|sample| {
                seen.push((sample.exposed_labels().len(), sample.exemplar.cloned()));
                Ok::<_, ()>(())
            })
            .unwrap();
        let exemplar = Exemplar {
            object: "Pod/web-1".into(),
            node: "node-1".into(),
            value: 2,
            timestamp: Some(1.5),
        };
        assert_eq!(seen, vec![(5, None), (6, Some(exemplar))]);
    }

    #[test]
    fn exemplar_labels_stay_within_prometheus_limit_at_a_character() {
        let mut exemplar = Exemplar::default();
        let (name, node) = ("é".repeat(253), "ñ".repeat(253));
        exemplar.set("Pod", &name, &node, 1, None);
        let runes = Exemplar::OBJECT.len()
            + Exemplar::NODE.len()
            + exemplar.object.chars().count()
            + exemplar.node.chars().count();
        assert_eq!(runes, EXEMPLAR_RUNES);
        assert!(exemplar.object.starts_with("Pod/é"));
        // A short node leaves the object the rest of the room.
        exemplar.set("Pod", &name, "n1", 1, None);
        assert_eq!(exemplar.node, "n1");
        assert_eq!(exemplar.object.chars().count(), EXEMPLAR_RUNES - 10 - 2);
    }
}
