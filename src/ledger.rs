//! The counting rules (README.md, "How counting works"), and nothing else.
//!
//! The ledger remembers, per Event uid, how many occurrences were already counted, so every
//! occurrence reaches a counter exactly once across updates, relists and deletions. It is pure and
//! synchronous: callers feed it observations and apply the increments it returns.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};

/// Index of a counter in the series store.
pub type SeriesId = u32;
/// Index of a watch (one per `--namespace`, or one for all namespaces).
pub type WatchId = u16;

/// A fixed-size stand-in for an Event uid: the UUID's 128 bits, or a stable hash of any other
/// string, so a uid that is not a UUID is still tracked and the ledger never stores a String.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UidKey(pub u128);

impl UidKey {
    pub fn from_uid(uid: &str) -> Self {
        parse_uuid(uid).map_or_else(|| Self(fnv1a_128(uid.as_bytes())), Self)
    }
}

fn parse_uuid(text: &str) -> Option<u128> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 || [8, 13, 18, 23].iter().any(|&dash| bytes[dash] != b'-') {
        return None;
    }
    // Two halves of 16 digits each, in u64s: this runs for every update.
    let digits = |range: std::ops::Range<usize>, mut value: u64| {
        for &byte in &bytes[range] {
            let digit = HEX_DIGIT[usize::from(byte)];
            if digit > 15 {
                return None;
            }
            value = (value << 4) | u64::from(digit);
        }
        Some(value)
    };
    let high = digits(14..18, digits(9..13, digits(0..8, 0)?)?)?;
    let low = digits(24..36, digits(19..23, 0)?)?;
    Some((u128::from(high) << 64) | u128::from(low))
}

/// Each byte's value as a hexadecimal digit, or 255.
const HEX_DIGIT: [u8; 256] = {
    let mut table = [255u8; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = match byte as u8 {
            digit @ b'0'..=b'9' => digit - b'0',
            letter @ b'a'..=b'f' => letter - b'a' + 10,
            letter @ b'A'..=b'F' => letter - b'A' + 10,
            _ => 255,
        };
        byte += 1;
    }
    table
};

/// FNV-1a, 128-bit: stable across builds and releases, unlike `DefaultHasher`, so a key computed
/// today matches one in a state file written by an older binary.
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    bytes.iter().fold(OFFSET, |hash, &byte| {
        (hash ^ u128::from(byte)).wrapping_mul(PRIME)
    })
}

/// Keys are already uniformly distributed (random UUIDs or a hash), so hashing them again with
/// SipHash would only cost time on the hot path.
#[derive(Clone, Copy, Default)]
pub struct UidKeyHasher(u64);

impl Hasher for UidKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x100000001b3);
        }
    }
    fn write_u128(&mut self, value: u128) {
        // Mixing both halves keeps UUID v4's fixed version nibble from biasing buckets.
        let folded = (value as u64) ^ ((value >> 64) as u64);
        self.0 = folded.wrapping_mul(0x9E3779B97F4A7C15);
    }
}

impl BuildHasher for UidKeyHasher {
    type Hasher = UidKeyHasher;
    fn build_hasher(&self) -> UidKeyHasher {
        UidKeyHasher(0)
    }
}

/// What the ledger keeps per Event: 12 bytes beside the 16-byte key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    occurrences: u32,
    series: SeriesId,
    watch: WatchId,
    /// The list generation of `watch` in which this uid was last seen; entries of older
    /// generations are gone from the API server when a relist completes.
    generation: u16,
}

#[derive(Clone, Copy, Debug, Default)]
struct WatchState {
    /// Rule 1 no longer applies: the first list completed, or a snapshot replaced it.
    counting: bool,
    /// The watch has completed a list (readiness).
    synced: bool,
    listing: bool,
    generation: u16,
}

/// A hash of an Event object's namespace, name and `firstTimestamp`: what survives when the API
/// server deletes an Event after its TTL and client-go's recorder creates it again under the
/// same name, with a new uid and the running count plus one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameKey(pub u64);

impl NameKey {
    pub fn new(namespace: &str, name: &str, first_timestamp: &str) -> Self {
        // Length-prefixed parts, so ("a/b", "c") and ("a", "b/c") differ.
        let mut hash = FNV64_OFFSET;
        for part in [namespace, name, first_timestamp] {
            hash = fnv1a_64_from(hash, &(part.len() as u32).to_le_bytes());
            hash = fnv1a_64_from(hash, part.as_bytes());
        }
        Self(hash)
    }
}

const FNV64_OFFSET: u64 = 0xcbf29ce484222325;

fn fnv1a_64_from(start: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(start, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x100000001b3)
    })
}

/// The name of an object being created or deleted, and the time (Unix seconds) it happens: all
/// the ledger needs to remember a deleted Event, and to recognise it when it is re-created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamedAt {
    pub name: NameKey,
    pub now: u64,
}

/// How long, and how many, deleted Events are remembered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TombstoneLimits {
    pub max_age_seconds: u64,
    pub max_entries: usize,
}

impl Default for TombstoneLimits {
    fn default() -> Self {
        Self {
            max_age_seconds: 2 * 3600,
            max_entries: 250_000,
        }
    }
}

/// Deleted Events by name: final occurrences and when they were deleted, oldest first, bounded
/// in age and number.
#[derive(Default)]
struct Tombstones {
    by_name: HashMap<NameKey, Tombstone, UidKeyHasher>,
    /// Deletion order. A name deleted again, or taken by a re-creation, leaves a stale entry
    /// here, told apart by its sequence number and dropped when it reaches the front.
    order: VecDeque<(NameKey, u32)>,
    next_sequence: u32,
    limits: TombstoneLimits,
}

#[derive(Clone, Copy, Debug)]
struct Tombstone {
    occurrences: u32,
    sequence: u32,
    deleted_at: u64,
}

impl Tombstones {
    fn insert(&mut self, name: NameKey, occurrences: u32, deleted_at: u64) {
        let sequence = self.next_sequence;
        self.next_sequence = sequence.wrapping_add(1);
        self.by_name.insert(
            name,
            Tombstone {
                occurrences,
                sequence,
                deleted_at,
            },
        );
        self.order.push_back((name, sequence));
        self.expire(deleted_at);
    }

    /// The occurrences of a deleted Event of this name, forgotten as it is re-created.
    fn take(&mut self, name: NameKey, now: u64) -> Option<u32> {
        self.expire(now);
        self.by_name
            .remove(&name)
            .map(|tombstone| tombstone.occurrences)
    }

    fn current(&self, name: NameKey, sequence: u32) -> Option<Tombstone> {
        self.by_name
            .get(&name)
            .filter(|tombstone| tombstone.sequence == sequence)
            .copied()
    }

    fn expire(&mut self, now: u64) {
        let oldest_kept = now.saturating_sub(self.limits.max_age_seconds);
        while let Some(&(name, sequence)) = self.order.front() {
            if let Some(tombstone) = self.current(name, sequence) {
                let too_many = self.by_name.len() > self.limits.max_entries;
                if tombstone.deleted_at >= oldest_kept && !too_many {
                    break;
                }
                self.by_name.remove(&name);
            }
            self.order.pop_front();
        }
    }

    /// (name, occurrences, deleted at), oldest first, each remembered name once.
    fn iter(&self) -> impl Iterator<Item = (NameKey, u32, u64)> + '_ {
        self.order.iter().filter_map(|&(name, sequence)| {
            let tombstone = self.current(name, sequence)?;
            Some((name, tombstone.occurrences, tombstone.deleted_at))
        })
    }
}

/// An amount to add to one counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Increment {
    pub series: SeriesId,
    pub delta: u64,
}

/// What one observation did to the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// New occurrences to count.
    Counted(Increment),
    /// Remembered without counting: a baseline object, or a repeat with no new occurrences.
    Remembered,
    /// The count went down (rule 2): re-baselined at the lower value, nothing counted.
    Decreased,
}

impl Outcome {
    pub fn increment(self) -> Option<Increment> {
        match self {
            Outcome::Counted(increment) => Some(increment),
            Outcome::Remembered | Outcome::Decreased => None,
        }
    }
}

/// What completing a list did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListCompletion {
    /// This was the watch's first completed list (the end of its baseline).
    pub first: bool,
    /// Uids of this watch that were not in the list, now forgotten.
    pub forgotten: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LedgerError {
    #[error("watch {0} is unknown to the ledger")]
    UnknownWatch(WatchId),
}

/// Twice the live Events of a 15,000-node cluster (BENCHMARKS.md's sizing), small enough that a
/// wrong `remainingItemCount` reserves at most 2^23 slots of 33 bytes: 277 MB.
const MAX_RESERVED_EVENTS: usize = 7_000_000;

pub struct Ledger {
    entries: HashMap<UidKey, Entry, UidKeyHasher>,
    watches: Vec<WatchState>,
    count_existing: bool,
    tombstones: Tombstones,
}

impl Ledger {
    /// A ledger for `watches` independent watches. With `count_existing`, the objects of each
    /// watch's first list are counted instead of being taken as the baseline.
    pub fn new(watches: usize, count_existing: bool) -> Self {
        Self {
            entries: HashMap::with_hasher(UidKeyHasher::default()),
            watches: vec![WatchState::default(); watches],
            count_existing,
            tombstones: Tombstones::default(),
        }
    }

    pub fn with_tombstone_limits(mut self, limits: TombstoneLimits) -> Self {
        self.tombstones.limits = limits;
        self
    }

    /// Whether `watch` counts (rule 1 is over for it): what a snapshot records per watch.
    pub fn is_counting(&self, watch: WatchId) -> bool {
        self.watches
            .get(usize::from(watch))
            .is_some_and(|state| state.counting)
    }

    /// Deleted Events remembered, for a snapshot: (name, occurrences, deleted at), oldest first.
    pub fn tombstones(&self) -> impl Iterator<Item = (NameKey, u32, u64)> + '_ {
        self.tombstones.iter()
    }

    pub fn tombstone_count(&self) -> usize {
        self.tombstones.by_name.len()
    }

    /// Restores deleted Events a snapshot remembered (oldest first).
    pub fn restore_tombstones(
        &mut self,
        remembered: impl IntoIterator<Item = (NameKey, u32, u64)>,
    ) {
        for (name, occurrences, deleted_at) in remembered {
            self.tombstones.insert(name, occurrences, deleted_at);
        }
    }

    /// Makes room for a list of `expected` objects before it arrives, so a large first list
    /// does not double the table at its end and hold both copies at once. Bounded, because the
    /// number comes from the API server; memory that cannot be had is left to normal growth.
    pub fn reserve_for_list(&mut self, expected: usize) {
        let additional = expected
            .min(MAX_RESERVED_EVENTS)
            .saturating_sub(self.entries.len());
        let _ = self.entries.try_reserve(additional);
    }

    /// Number of Events remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every watch has completed its first list.
    pub fn all_synced(&self) -> bool {
        self.watches.iter().all(|watch| watch.synced)
    }

    /// The series an Event was last counted in.
    pub fn series_of(&self, uid: UidKey) -> Option<SeriesId> {
        self.entries.get(&uid).map(|entry| entry.series)
    }

    /// Occurrences remembered per Event, for a snapshot: (uid, occurrences, watch).
    pub fn entries(&self) -> impl Iterator<Item = (UidKey, u32, WatchId)> + '_ {
        self.entries
            .iter()
            .map(|(uid, entry)| (*uid, entry.occurrences, entry.watch))
    }

    /// Restores what a snapshot remembered for `watch` before its first list, which is then
    /// diffed against it: occurrences during a restart count once. With `counting`, the
    /// snapshot replaces rule 1 (Events it does not know are new); without (it was taken before
    /// the watch's first list completed, or under other filters) the first list is still the
    /// baseline for unknown Events, and only the remembered ones are diffed. Series ids are not
    /// kept across restarts; the next observation of each Event brings its series.
    pub fn restore(
        &mut self,
        watch: WatchId,
        remembered: impl IntoIterator<Item = (UidKey, u32)>,
        counting: bool,
    ) -> Result<usize, LedgerError> {
        let state = self.watch_mut(watch)?;
        state.counting = counting;
        let generation = state.generation;
        let before = self.entries.len();
        for (uid, occurrences) in remembered {
            self.entries.insert(
                uid,
                Entry {
                    occurrences,
                    series: SeriesId::MAX,
                    watch,
                    generation,
                },
            );
        }
        Ok(self.entries.len() - before)
    }

    fn watch_mut(&mut self, watch: WatchId) -> Result<&mut WatchState, LedgerError> {
        self.watches
            .get_mut(usize::from(watch))
            .ok_or(LedgerError::UnknownWatch(watch))
    }

    /// A list of `watch` begins (the first one, a retry, or a relist after the watch expired).
    /// Returns whether it is a relist: the watch had completed a list, and this is not a retry
    /// of a list that failed part-way.
    pub fn list_started(&mut self, watch: WatchId) -> Result<bool, LedgerError> {
        let state = self.watch_mut(watch)?;
        let relist = state.synced && !state.listing;
        state.listing = true;
        state.generation = state.generation.wrapping_add(1);
        Ok(relist)
    }

    /// An object listed or applied by `watch` (rules 1–4). `named` is needed only for a uid the
    /// ledger does not know: a re-creation of a deleted Event of the same name and
    /// `firstTimestamp` is diffed against what the deleted one had counted.
    pub fn observe(
        &mut self,
        watch: WatchId,
        uid: UidKey,
        series: SeriesId,
        occurrences: u32,
        named: Option<NamedAt>,
    ) -> Result<Outcome, LedgerError> {
        let count_existing = self.count_existing;
        let state = *self.watch_mut(watch)?;
        let in_baseline = !state.counting && !count_existing;
        let entry = Entry {
            occurrences,
            series,
            watch,
            generation: state.generation,
        };
        let previous = self.entries.insert(uid, entry);
        Ok(match previous {
            // Rule 1: what the baseline finds is history, unless it was seen before (a snapshot,
            // an earlier attempt at the same first list): then only its growth is new.
            None if in_baseline => Outcome::Remembered,
            None => {
                let before = named.and_then(|named| self.tombstones.take(named.name, named.now));
                match before {
                    Some(old) if occurrences >= old => {
                        counted(series, u64::from(occurrences - old))
                    }
                    // Same name, fewer occurrences: a new series of occurrences (events.k8s.io
                    // re-creates without its series), all of them new.
                    Some(_) | None => counted(series, u64::from(occurrences)),
                }
            }
            Some(old) if occurrences >= old.occurrences => {
                counted(series, u64::from(occurrences - old.occurrences))
            }
            Some(_) => Outcome::Decreased,
        })
    }

    /// An object deleted (rule 5): count what its final state carries, then forget it, keeping
    /// its name for a while in case its recorder creates it again.
    pub fn delete(
        &mut self,
        watch: WatchId,
        uid: UidKey,
        series: SeriesId,
        occurrences: u32,
        named: Option<NamedAt>,
    ) -> Result<Outcome, LedgerError> {
        self.watch_mut(watch)?;
        if let Some(named) = named {
            self.tombstones.insert(named.name, occurrences, named.now);
        }
        Ok(match self.entries.remove(&uid) {
            // Never seen (it was filtered, or state was lost): every occurrence is new to us.
            None => counted(series, u64::from(occurrences)),
            Some(old) if occurrences >= old.occurrences => {
                counted(series, u64::from(occurrences - old.occurrences))
            }
            Some(_) => Outcome::Decreased,
        })
    }

    /// A list of `watch` completed: uids of this watch that it did not contain were deleted
    /// while we were not watching, so they are forgotten (rule 4).
    pub fn list_done(&mut self, watch: WatchId) -> Result<ListCompletion, LedgerError> {
        let state = self.watch_mut(watch)?;
        let first = !state.synced;
        let was_listing = state.listing;
        state.synced = true;
        state.counting = true;
        state.listing = false;
        let generation = state.generation;
        let mut forgotten = 0;
        if was_listing {
            let before = self.entries.len();
            self.entries
                .retain(|_, entry| entry.watch != watch || entry.generation == generation);
            forgotten = before - self.entries.len();
        }
        Ok(ListCompletion { first, forgotten })
    }
}

fn counted(series: SeriesId, delta: u64) -> Outcome {
    if delta == 0 {
        Outcome::Remembered
    } else {
        Outcome::Counted(Increment { series, delta })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W0: WatchId = 0;
    const W1: WatchId = 1;
    const S: SeriesId = 7;

    fn uid(n: u8) -> UidKey {
        UidKey::from_uid(&format!("00000000-0000-0000-0000-0000000000{n:02x}"))
    }

    fn inc(series: SeriesId, delta: u64) -> Outcome {
        Outcome::Counted(Increment { series, delta })
    }

    /// A ledger whose single watch has completed an empty first list.
    fn live() -> Ledger {
        let mut ledger = Ledger::new(1, false);
        ledger.list_started(W0).unwrap();
        ledger.list_done(W0).unwrap();
        ledger
    }

    #[test]
    fn uuid_uids_parse_and_others_hash_stably() {
        let parsed = UidKey::from_uid("e5c03126-33b9-4559-9585-5e82adcd96b0");
        assert_eq!(parsed.0, 0xe5c0312633b9455995855e82adcd96b0);
        let odd = UidKey::from_uid("not-a-uuid");
        assert_eq!(odd, UidKey::from_uid("not-a-uuid"));
        assert_ne!(odd, UidKey::from_uid("not-a-uuie"));
        assert_ne!(UidKey::from_uid(""), UidKey::from_uid("x"));
        // 36 characters but not hex: hashed, not rejected.
        let long = "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz";
        assert_eq!(UidKey::from_uid(long), UidKey(fnv1a_128(long.as_bytes())));
        let dash_moved = "e5c0312633-b9-4559-9585-5e82adcd96b0";
        assert_eq!(
            UidKey::from_uid(dash_moved),
            UidKey(fnv1a_128(dash_moved.as_bytes()))
        );
    }

    proptest::proptest! {
        /// State files written by older binaries hold these keys: a UUID, in either case, is its
        /// 128 bits exactly.
        #[test]
        fn a_uuid_is_its_128_bits(value: u128, upper: bool) {
            let hex = format!("{value:032x}");
            let text = format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]);
            let text = if upper { text.to_uppercase() } else { text };
            proptest::prop_assert_eq!(UidKey::from_uid(&text), UidKey(value));
        }
    }

    #[test]
    fn a_list_of_known_size_fills_the_table_without_growing_it() {
        let expected = 100_000;
        let mut ledger = Ledger::new(1, false);
        ledger.reserve_for_list(expected);
        let reserved = ledger.entries.capacity();
        assert!(reserved >= expected, "{reserved}");
        ledger.list_started(W0).unwrap();
        for n in 0..expected {
            let uid = UidKey::from_uid(&format!("uid-{n}"));
            ledger.observe(W0, uid, S, 1, None).unwrap();
        }
        assert_eq!(ledger.entries.capacity(), reserved, "no doubling mid-list");
        // What the API server says is bounded: a wrong count reserves no more than the cap.
        let mut wrong = Ledger::new(1, false);
        wrong.reserve_for_list(4 * MAX_RESERVED_EVENTS);
        assert!(wrong.entries.capacity() < 2 * MAX_RESERVED_EVENTS);
    }

    #[test]
    fn rule1_first_list_is_the_baseline() {
        let mut ledger = Ledger::new(1, false);
        ledger.list_started(W0).unwrap();
        assert_eq!(
            ledger.observe(W0, uid(1), S, 43, None).unwrap(),
            Outcome::Remembered
        );
        let done = ledger.list_done(W0).unwrap();
        assert_eq!(
            done,
            ListCompletion {
                first: true,
                forgotten: 0
            }
        );
        assert_eq!(ledger.len(), 1);
        // The next update counts only what is new.
        assert_eq!(ledger.observe(W0, uid(1), S, 45, None).unwrap(), inc(S, 2));
    }

    #[test]
    fn rule1_list_retry_before_first_done_is_still_baseline() {
        let mut ledger = Ledger::new(1, false);
        ledger.list_started(W0).unwrap();
        ledger.observe(W0, uid(1), S, 3, None).unwrap();
        // The list failed mid-way; Init fires again and the retry sees a higher count: the
        // Event is known, so its growth since is counted, and nothing before it.
        assert!(!ledger.list_started(W0).unwrap(), "a retry is not a relist");
        assert_eq!(ledger.observe(W0, uid(1), S, 5, None).unwrap(), inc(S, 2));
        assert_eq!(
            ledger.observe(W0, uid(2), S, 9, None).unwrap(),
            Outcome::Remembered
        );
        assert!(ledger.list_done(W0).unwrap().first);
        assert_eq!(ledger.observe(W0, uid(1), S, 6, None).unwrap(), inc(S, 1));
        assert!(
            ledger.list_started(W0).unwrap(),
            "after a completed list: a relist"
        );
    }

    #[test]
    fn rule1_count_existing_counts_the_first_list() {
        let mut ledger = Ledger::new(1, true);
        ledger.list_started(W0).unwrap();
        assert_eq!(ledger.observe(W0, uid(1), S, 43, None).unwrap(), inc(S, 43));
        ledger.list_done(W0).unwrap();
        assert_eq!(
            ledger.observe(W0, uid(1), S, 43, None).unwrap(),
            Outcome::Remembered
        );
    }

    #[test]
    fn rule2_known_uid_adds_the_positive_diff() {
        let mut ledger = live();
        assert_eq!(ledger.observe(W0, uid(1), S, 1, None).unwrap(), inc(S, 1));
        assert_eq!(ledger.observe(W0, uid(1), S, 4, None).unwrap(), inc(S, 3));
        assert_eq!(
            ledger.observe(W0, uid(1), S, 4, None).unwrap(),
            Outcome::Remembered
        );
    }

    #[test]
    fn rule2_lower_count_rebaselines_without_decrement() {
        let mut ledger = live();
        ledger.observe(W0, uid(1), S, 10, None).unwrap();
        assert_eq!(
            ledger.observe(W0, uid(1), S, 4, None).unwrap(),
            Outcome::Decreased
        );
        // Counting resumes from the lower value.
        assert_eq!(ledger.observe(W0, uid(1), S, 6, None).unwrap(), inc(S, 2));
    }

    #[test]
    fn rule3_unknown_uid_after_first_list_counts_all_occurrences() {
        let mut ledger = live();
        assert_eq!(ledger.observe(W0, uid(9), S, 12, None).unwrap(), inc(S, 12));
    }

    #[test]
    fn rule4_relist_diffs_and_forgets_what_vanished() {
        let mut ledger = Ledger::new(1, false);
        ledger.list_started(W0).unwrap();
        ledger.observe(W0, uid(1), S, 5, None).unwrap(); // grows during the gap
        ledger.observe(W0, uid(2), S, 2, None).unwrap(); // deleted during the gap
        ledger.observe(W0, uid(3), S, 7, None).unwrap(); // unchanged
        ledger.list_done(W0).unwrap();

        ledger.list_started(W0).unwrap();
        assert_eq!(ledger.observe(W0, uid(1), S, 8, None).unwrap(), inc(S, 3));
        assert_eq!(
            ledger.observe(W0, uid(3), S, 7, None).unwrap(),
            Outcome::Remembered
        );
        assert_eq!(ledger.observe(W0, uid(4), 8, 2, None).unwrap(), inc(8, 2)); // created in the gap
        let done = ledger.list_done(W0).unwrap();
        assert_eq!(
            done,
            ListCompletion {
                first: false,
                forgotten: 1
            }
        );
        assert_eq!(ledger.len(), 3);
        // A second identical relist counts nothing: never twice.
        ledger.list_started(W0).unwrap();
        for (n, count) in [(1, 8), (3, 7), (4, 2)] {
            let series = if n == 4 { 8 } else { S };
            assert_eq!(
                ledger.observe(W0, uid(n), series, count, None).unwrap(),
                Outcome::Remembered
            );
        }
        assert_eq!(ledger.list_done(W0).unwrap().forgotten, 0);
    }

    #[test]
    fn rule4_two_watches_baseline_and_forget_independently() {
        let mut ledger = Ledger::new(2, false);
        ledger.list_started(W0).unwrap();
        ledger.list_started(W1).unwrap();
        ledger.observe(W0, uid(1), S, 3, None).unwrap();
        ledger.list_done(W0).unwrap();
        assert!(!ledger.all_synced());
        // W1 is still in its baseline while W0 is live.
        assert_eq!(
            ledger.observe(W1, uid(2), S, 4, None).unwrap(),
            Outcome::Remembered
        );
        assert_eq!(ledger.observe(W0, uid(3), S, 2, None).unwrap(), inc(S, 2));
        ledger.list_done(W1).unwrap();
        assert!(ledger.all_synced());

        // W1 relists and its Event is gone; W0's Events must survive.
        ledger.list_started(W1).unwrap();
        assert_eq!(ledger.list_done(W1).unwrap().forgotten, 1);
        assert_eq!(ledger.len(), 2);
        assert_eq!(ledger.observe(W0, uid(1), S, 4, None).unwrap(), inc(S, 1));
    }

    #[test]
    fn rule5_delete_counts_the_final_diff_and_forgets() {
        let mut ledger = live();
        ledger.observe(W0, uid(1), S, 2, None).unwrap();
        assert_eq!(ledger.delete(W0, uid(1), S, 5, None).unwrap(), inc(S, 3));
        assert!(ledger.is_empty());
        assert_eq!(ledger.delete(W0, uid(2), S, 1, None).unwrap(), inc(S, 1));
    }

    #[test]
    fn delete_then_recreate_with_the_same_name_is_a_new_event() {
        let mut ledger = live();
        ledger.observe(W0, uid(1), S, 4, None).unwrap();
        assert_eq!(
            ledger.delete(W0, uid(1), S, 4, None).unwrap(),
            Outcome::Remembered
        );
        // Same object name, new uid: all of its occurrences are new.
        assert_eq!(ledger.observe(W0, uid(2), S, 1, None).unwrap(), inc(S, 1));
    }

    #[test]
    fn unknown_watch_is_an_error_not_a_panic() {
        let mut ledger = Ledger::new(1, false);
        assert_eq!(ledger.list_started(3), Err(LedgerError::UnknownWatch(3)));
        assert_eq!(
            ledger.observe(3, uid(1), S, 1, None),
            Err(LedgerError::UnknownWatch(3))
        );
    }

    #[test]
    fn a_restored_snapshot_replaces_the_baseline() {
        let mut ledger = Ledger::new(2, false);
        // Watch 0 was restored; watch 1 had no snapshot.
        assert_eq!(
            ledger
                .restore(W0, [(uid(1), 5), (uid(2), 3)], true)
                .unwrap(),
            2
        );
        assert!(!ledger.all_synced(), "restoring is not listing");
        ledger.list_started(W0).unwrap();
        ledger.list_started(W1).unwrap();
        // Grew while the exporter was down: counted once.
        assert_eq!(ledger.observe(W0, uid(1), S, 8, None).unwrap(), inc(S, 3));
        // Created while it was down.
        assert_eq!(ledger.observe(W0, uid(3), S, 2, None).unwrap(), inc(S, 2));
        // Watch 1 still takes its first list as the baseline.
        assert_eq!(
            ledger.observe(W1, uid(4), S, 9, None).unwrap(),
            Outcome::Remembered
        );
        // uid(2) was deleted while it was down: forgotten when the list completes.
        assert_eq!(
            ledger.list_done(W0).unwrap(),
            ListCompletion {
                first: true,
                forgotten: 1
            }
        );
        ledger.list_done(W1).unwrap();
        assert!(ledger.all_synced());
        let mut remembered: Vec<_> = ledger.entries().collect();
        remembered.sort();
        assert_eq!(
            remembered,
            vec![(uid(1), 8, W0), (uid(3), 2, W0), (uid(4), 9, W1)]
        );
    }

    #[test]
    fn ledger_entries_stay_small() {
        // Rule 7: a fixed-size entry per Event, 12 bytes beside the 16-byte key.
        assert_eq!(std::mem::size_of::<Entry>(), 12);
        assert_eq!(std::mem::size_of::<(UidKey, Entry)>(), 32);
    }

    #[test]
    fn label_change_moves_the_increment_to_the_new_series() {
        let mut ledger = live();
        ledger.observe(W0, uid(1), S, 1, None).unwrap();
        assert_eq!(ledger.observe(W0, uid(1), 9, 3, None).unwrap(), inc(9, 2));
    }

    fn named(name: &str, now: u64) -> Option<NamedAt> {
        Some(NamedAt {
            name: NameKey::new("shop", name, "2026-12-01T10:00:00Z"),
            now,
        })
    }

    #[test]
    fn an_event_recreated_after_its_ttl_counts_only_its_new_occurrence() {
        let mut ledger = live();
        ledger.observe(W0, uid(1), S, 7, named("hpa.1", 0)).unwrap();
        // The API server deletes it an hour after its last update...
        assert_eq!(
            ledger
                .delete(W0, uid(1), S, 7, named("hpa.1", 3_600))
                .unwrap(),
            Outcome::Remembered
        );
        assert_eq!(ledger.tombstone_count(), 1);
        // ...and the recorder creates it again: new uid, same name and firstTimestamp, count + 1.
        assert_eq!(
            ledger
                .observe(W0, uid(2), S, 8, named("hpa.1", 5_000))
                .unwrap(),
            inc(S, 1)
        );
        assert_eq!(ledger.tombstone_count(), 0, "a tombstone is used once");
    }

    #[test]
    fn another_first_timestamp_or_a_lower_count_is_a_new_event() {
        let mut ledger = live();
        ledger.delete(W0, uid(1), S, 7, named("a.1", 100)).unwrap();
        let other_first = Some(NamedAt {
            name: NameKey::new("shop", "a.1", "2026-12-01T11:00:00Z"),
            now: 200,
        });
        assert_eq!(
            ledger.observe(W0, uid(2), S, 3, other_first).unwrap(),
            inc(S, 3)
        );
        // events.k8s.io re-creates without its series: count 1 under the same name.
        assert_eq!(
            ledger.observe(W0, uid(3), S, 1, named("a.1", 300)).unwrap(),
            inc(S, 1)
        );
        assert_eq!(NameKey::new("a/b", "c", ""), NameKey::new("a/b", "c", ""));
        assert_ne!(NameKey::new("a/b", "c", ""), NameKey::new("a", "b/c", ""));
    }

    #[test]
    fn tombstones_are_bounded_in_age_and_number() {
        let mut ledger = live().with_tombstone_limits(TombstoneLimits {
            max_age_seconds: 1_000,
            max_entries: 2,
        });
        ledger.delete(W0, uid(1), S, 5, named("old", 0)).unwrap();
        // Expired by age: the re-creation counts whole.
        assert_eq!(
            ledger
                .observe(W0, uid(2), S, 6, named("old", 1_001))
                .unwrap(),
            inc(S, 6)
        );
        for (n, name) in [(3, "x"), (4, "y"), (5, "z")] {
            ledger.delete(W0, uid(n), S, 5, named(name, 2_000)).unwrap();
        }
        assert_eq!(ledger.tombstone_count(), 2, "the oldest made room");
        assert_eq!(
            ledger.observe(W0, uid(6), S, 6, named("x", 2_001)).unwrap(),
            inc(S, 6)
        );
        assert_eq!(
            ledger.observe(W0, uid(7), S, 6, named("z", 2_001)).unwrap(),
            inc(S, 1)
        );
        // A name deleted twice keeps its last deletion only.
        ledger
            .delete(W0, uid(8), S, 2, named("twice", 2_100))
            .unwrap();
        ledger
            .delete(W0, uid(9), S, 4, named("twice", 2_200))
            .unwrap();
        let kept: Vec<_> = ledger
            .tombstones()
            .map(|(_, occurrences, at)| (occurrences, at))
            .collect();
        assert!(
            kept.contains(&(4, 2_200)) && !kept.contains(&(2, 2_100)),
            "{kept:?}"
        );
    }

    #[test]
    fn a_name_deleted_again_in_the_same_second_is_remembered_once() {
        let mut ledger = live();
        ledger.delete(W0, uid(1), S, 3, named("a.1", 50)).unwrap();
        // Re-created (takes the tombstone) and deleted again, all within one second.
        ledger.observe(W0, uid(2), S, 4, named("a.1", 50)).unwrap();
        ledger.delete(W0, uid(2), S, 4, named("a.1", 50)).unwrap();
        let kept: Vec<_> = ledger.tombstones().collect();
        assert_eq!(kept.len(), ledger.tombstone_count());
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(kept[0].1, 4);
    }

    #[test]
    fn a_snapshot_that_was_not_counting_diffs_what_it_knows_and_baselines_the_rest() {
        let mut ledger = Ledger::new(1, false);
        ledger.restore(W0, [(uid(1), 5)], false).unwrap();
        assert!(!ledger.is_counting(W0));
        ledger.list_started(W0).unwrap();
        assert_eq!(ledger.observe(W0, uid(1), S, 8, None).unwrap(), inc(S, 3));
        // Not in the snapshot: its history is the baseline, never counted.
        assert_eq!(
            ledger.observe(W0, uid(2), S, 40, None).unwrap(),
            Outcome::Remembered
        );
        ledger.list_done(W0).unwrap();
        assert!(ledger.is_counting(W0));
        assert_eq!(ledger.observe(W0, uid(2), S, 41, None).unwrap(), inc(S, 1));
    }
}
