//! `--state-file`: the ledger's memory across restarts.
//!
//! A snapshot holds, per watch, the occurrences already counted for each Event uid, whether the
//! watch's first list had completed, and fingerprints of what decides which Events it sees and
//! counts; plus the deleted Events remembered by name, and the Lease term it was written in.
//! Nothing else: no counters (they restart at 0, which Prometheus handles as a reset) and no
//! objects. It is written atomically (temporary file, fsync, rename), so a crash mid-write leaves
//! the previous snapshot intact, and it carries a checksum, so a damaged file is refused, never
//! half-trusted.
//!
//! Layout (little-endian): magic, version, written-at (Unix seconds), the Lease term (transitions
//! u32, `u32::MAX` for none; holder length u16 and bytes), watch count, then per watch its two
//! fingerprints, counting flag (u8) and entry count, then the tombstone count, the entries (uid
//! u128, occurrences u32), the tombstones (name u64, occurrences u32, deleted-at u64), then
//! a checksum of everything before it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ledger::{Ledger, NameKey, UidKey, WatchId};

const MAGIC: &[u8; 8] = b"KEMSTATE";
const VERSION: u32 = 2;
const ENTRY_BYTES: usize = 16 + 4;
const TOMBSTONE_BYTES: usize = 8 + 4 + 8;
const NO_LEASE: u32 = u32::MAX;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("no state file at {0}")]
    Missing(PathBuf),
    #[error("cannot read state file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("state file is corrupt: {0}")]
    Corrupt(&'static str),
    #[error("state file is stale: written {age_seconds} s ago, more than --state-file.max-age")]
    Stale { age_seconds: u64 },
}

/// What identifies a watch for a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchPrint {
    /// Which Event objects the API server sends it (namespace, field selector): the snapshot's
    /// memory of a watch is restored only into the same watch.
    pub identity: u64,
    /// What decides which of them are counted (client-side types and regex filters): under
    /// other filters, Events the old ones excluded were never remembered, so the first list is
    /// a baseline again for every Event the snapshot does not know.
    pub filters: u64,
}

impl WatchPrint {
    pub fn new(identity: &str, filters: &str) -> Self {
        Self {
            identity: fingerprint(identity),
            filters: fingerprint(filters),
        }
    }
}

/// What a snapshot remembered for one watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchMemory {
    pub print: WatchPrint,
    /// The watch's first list had completed (or an earlier snapshot stood in for it).
    pub counting: bool,
    pub entries: Vec<(UidKey, u32)>,
}

/// The leader-election term a snapshot was written in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseTerm {
    pub holder: String,
    pub transitions: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub written_at: u64,
    pub lease: Option<LeaseTerm>,
    pub watches: Vec<WatchMemory>,
    /// Deleted Events by name: (name, occurrences, deleted at), oldest first.
    pub tombstones: Vec<(NameKey, u32, u64)>,
}

/// A stable identity for a watch's settings.
pub fn fingerprint(description: &str) -> u64 {
    fnv1a_64(description.as_bytes())
}

/// The file's checksum: FNV-1a's multiply over 8-byte words instead of bytes, so that checking a
/// 20 MB snapshot at every scrape costs a few milliseconds. It detects damage, not forgery.
fn checksum(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    let mut hash = 0xcbf29ce484222325u64;
    for word in &mut words {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        hash = (hash ^ u64::from_le_bytes(eight)).wrapping_mul(0x100000001b3);
        hash ^= hash >> 29;
    }
    fnv1a_64_from(hash, words.remainder())
}

fn fnv1a_64(bytes: &[u8]) -> u64 {
    fnv1a_64_from(0xcbf29ce484222325, bytes)
}

fn fnv1a_64_from(start: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(start, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x100000001b3)
    })
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Encodes the ledger; `prints[w]` identifies watch `w`. Runs on the ingest task at every scrape
/// under `--state-file`, so it writes straight into one buffer: no per-watch copies.
pub fn encode(ledger: &Ledger, prints: &[WatchPrint], lease: Option<&LeaseTerm>) -> Vec<u8> {
    let mut per_watch = vec![0u64; prints.len()];
    if prints.len() == 1 {
        per_watch[0] = ledger.len() as u64;
    } else {
        for (_, _, watch) in ledger.entries() {
            if let Some(count) = per_watch.get_mut(usize::from(watch)) {
                *count += 1;
            }
        }
    }
    let total: u64 = per_watch.iter().sum();
    let tombstones = ledger.tombstone_count();
    let mut out = Vec::with_capacity(
        64 + prints.len() * 25 + total as usize * ENTRY_BYTES + tombstones * TOMBSTONE_BYTES,
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&unix_now().to_le_bytes());
    let (transitions, holder) = lease.map_or((NO_LEASE, ""), |term| {
        (term.transitions.min(NO_LEASE - 1), term.holder.as_str())
    });
    // Kubernetes object names are at most 253 bytes; a longer identity is cut, not refused.
    let holder = &holder.as_bytes()[..holder.len().min(usize::from(u16::MAX))];
    out.extend_from_slice(&transitions.to_le_bytes());
    out.extend_from_slice(&(holder.len() as u16).to_le_bytes());
    out.extend_from_slice(holder);
    out.extend_from_slice(&(prints.len() as u32).to_le_bytes());
    for (watch, (print, count)) in prints.iter().zip(&per_watch).enumerate() {
        out.extend_from_slice(&print.identity.to_le_bytes());
        out.extend_from_slice(&print.filters.to_le_bytes());
        let counting = WatchId::try_from(watch).is_ok_and(|w| ledger.is_counting(w));
        out.push(u8::from(counting));
        out.extend_from_slice(&count.to_le_bytes());
    }
    // Patched once the tombstones are written, so the header cannot disagree with them.
    let tombstone_count_at = out.len();
    out.extend_from_slice(&0u64.to_le_bytes());
    // Entries grouped by watch, one pass per watch (there is usually one).
    for watch in 0..prints.len() {
        for (uid, occurrences, of) in ledger.entries() {
            if usize::from(of) == watch {
                out.extend_from_slice(&uid.0.to_le_bytes());
                out.extend_from_slice(&occurrences.to_le_bytes());
            }
        }
    }
    let mut written = 0u64;
    for (name, occurrences, deleted_at) in ledger.tombstones() {
        out.extend_from_slice(&name.0.to_le_bytes());
        out.extend_from_slice(&occurrences.to_le_bytes());
        out.extend_from_slice(&deleted_at.to_le_bytes());
        written += 1;
    }
    out[tombstone_count_at..tombstone_count_at + 8].copy_from_slice(&written.to_le_bytes());
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Reads fixed-size fields off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], StateError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(StateError::Corrupt("truncated"))?;
        self.0 = rest;
        Ok(*head)
    }
    fn bytes(&mut self, len: usize) -> Result<&[u8], StateError> {
        if self.0.len() < len {
            return Err(StateError::Corrupt("truncated"));
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, StateError> {
        self.take().map(u8::from_le_bytes)
    }
    fn u16(&mut self) -> Result<u16, StateError> {
        self.take().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Result<u32, StateError> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, StateError> {
        self.take().map(u64::from_le_bytes)
    }
    fn count(&mut self) -> Result<usize, StateError> {
        usize::try_from(self.u64()?).map_err(|_| StateError::Corrupt("size"))
    }
}

pub fn decode(bytes: &[u8]) -> Result<Snapshot, StateError> {
    let (body, sum) = bytes
        .split_last_chunk::<8>()
        .ok_or(StateError::Corrupt("truncated"))?;
    if checksum(body) != u64::from_le_bytes(*sum) {
        return Err(StateError::Corrupt("checksum mismatch"));
    }
    let mut reader = Reader(body);
    if &reader.take::<8>()? != MAGIC {
        return Err(StateError::Corrupt("not a kube-event-metrics state file"));
    }
    if reader.u32()? != VERSION {
        return Err(StateError::Corrupt("unknown version"));
    }
    let written_at = reader.u64()?;
    let transitions = reader.u32()?;
    let holder_len = usize::from(reader.u16()?);
    let holder = String::from_utf8(reader.bytes(holder_len)?.to_vec())
        .map_err(|_| StateError::Corrupt("lease holder is not UTF-8"))?;
    let lease = (transitions != NO_LEASE).then_some(LeaseTerm {
        holder,
        transitions,
    });
    let watch_count = reader.u32()? as usize;
    let mut headers = Vec::new();
    for _ in 0..watch_count {
        let print = WatchPrint {
            identity: reader.u64()?,
            filters: reader.u64()?,
        };
        let counting = match reader.u8()? {
            0 => false,
            1 => true,
            _ => return Err(StateError::Corrupt("counting flag")),
        };
        headers.push((print, counting, reader.count()?));
    }
    let tombstone_count = reader.count()?;
    let total: usize = headers.iter().map(|(_, _, count)| *count).sum();
    let expected = total
        .checked_mul(ENTRY_BYTES)
        .zip(tombstone_count.checked_mul(TOMBSTONE_BYTES))
        .and_then(|(entries, tombstones)| entries.checked_add(tombstones));
    if expected != Some(reader.0.len()) {
        return Err(StateError::Corrupt("entry count does not match the size"));
    }
    let mut watches = Vec::with_capacity(watch_count);
    for (print, counting, count) in headers {
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let uid = UidKey(u128::from_le_bytes(reader.take()?));
            entries.push((uid, reader.u32()?));
        }
        watches.push(WatchMemory {
            print,
            counting,
            entries,
        });
    }
    let mut tombstones = Vec::with_capacity(tombstone_count);
    for _ in 0..tombstone_count {
        let name = NameKey(reader.u64()?);
        let occurrences = reader.u32()?;
        tombstones.push((name, occurrences, reader.u64()?));
    }
    Ok(Snapshot {
        written_at,
        lease,
        watches,
        tombstones,
    })
}

/// Writes `bytes` so that `path` holds either the old or the new snapshot, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&temporary, path)?;
    // The rename is durable once the directory is synced; best effort where that is refused.
    if let Some(directory) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(directory) = File::open(directory)
    {
        let _ = directory.sync_all();
    }
    Ok(())
}

/// Reads and checks the snapshot at `path`; older than `max_age` is stale.
pub fn load(path: &Path, max_age: Duration) -> Result<Snapshot, StateError> {
    let bytes = fs::read(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => StateError::Missing(path.to_owned()),
        _ => StateError::Read {
            path: path.to_owned(),
            source,
        },
    })?;
    let snapshot = decode(&bytes)?;
    let age_seconds = unix_now().saturating_sub(snapshot.written_at);
    if age_seconds > max_age.as_secs() {
        return Err(StateError::Stale { age_seconds });
    }
    Ok(snapshot)
}

/// What restoring a snapshot did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    pub events: usize,
    pub tombstones: usize,
    /// Watches whose snapshot replaces their baseline.
    pub counting: usize,
    /// Watches found in the snapshot that take a baseline again for the Events it does not
    /// know: it was written before their first list completed, or under other filters.
    pub rebaselined: usize,
}

/// Restores into `ledger` the watches whose identities match; returns what was restored.
pub fn restore(ledger: &mut Ledger, snapshot: Snapshot, prints: &[WatchPrint]) -> Restored {
    let mut restored = Restored {
        tombstones: snapshot.tombstones.len(),
        ..Restored::default()
    };
    ledger.restore_tombstones(snapshot.tombstones);
    for memory in snapshot.watches {
        let Some((watch, print)) = prints
            .iter()
            .enumerate()
            .find(|(_, print)| print.identity == memory.print.identity)
            .and_then(|(index, print)| Some((WatchId::try_from(index).ok()?, print)))
        else {
            continue;
        };
        let counting = memory.counting && print.filters == memory.print.filters;
        if counting {
            restored.counting += 1;
        } else {
            restored.rebaselined += 1;
        }
        restored.events += ledger.restore(watch, memory.entries, counting).unwrap_or(0);
    }
    restored
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::NamedAt;

    fn print(n: u64) -> WatchPrint {
        WatchPrint {
            identity: n,
            filters: 0,
        }
    }

    fn term() -> LeaseTerm {
        LeaseTerm {
            holder: "replica-a".into(),
            transitions: 4,
        }
    }

    /// Watch 0 completed its first list, watch 1 is still listing.
    fn ledger_with_two_watches() -> Ledger {
        let mut ledger = Ledger::new(2, false);
        for watch in [0, 1] {
            ledger.list_started(watch).unwrap();
        }
        ledger.observe(0, UidKey(1), 0, 5, None).unwrap();
        ledger.observe(0, UidKey(u128::MAX), 0, 7, None).unwrap();
        ledger.observe(1, UidKey(3), 0, 9, None).unwrap();
        ledger.list_done(0).unwrap();
        let named = NamedAt {
            name: NameKey(77),
            now: 1_000,
        };
        ledger.delete(0, UidKey(9), 0, 6, Some(named)).unwrap();
        ledger
    }

    #[test]
    fn round_trips_per_watch() {
        let ledger = ledger_with_two_watches();
        let bytes = encode(&ledger, &[print(11), print(22)], Some(&term()));
        let mut snapshot = decode(&bytes).unwrap();
        snapshot.watches[0].entries.sort();
        assert_eq!(snapshot.watches[0].print, print(11));
        assert!(snapshot.watches[0].counting);
        assert!(
            !snapshot.watches[1].counting,
            "watch 1 had not completed a list"
        );
        assert_eq!(
            snapshot.watches[0].entries,
            vec![(UidKey(1), 5), (UidKey(u128::MAX), 7)]
        );
        assert_eq!(snapshot.watches[1].entries, vec![(UidKey(3), 9)]);
        assert_eq!(snapshot.tombstones, vec![(NameKey(77), 6, 1_000)]);
        assert_eq!(snapshot.lease, Some(term()));
        assert!(snapshot.written_at > 1_700_000_000);
        let without = decode(&encode(&ledger, &[print(11), print(22)], None)).unwrap();
        assert_eq!(without.lease, None);
    }

    #[test]
    fn damage_is_detected_never_trusted() {
        let bytes = encode(
            &ledger_with_two_watches(),
            &[print(11), print(22)],
            Some(&term()),
        );
        for position in [0, 9, 20, bytes.len() / 2, bytes.len() - 1] {
            let mut flipped = bytes.clone();
            flipped[position] ^= 0x40;
            assert!(
                matches!(decode(&flipped), Err(StateError::Corrupt(_))),
                "{position}"
            );
        }
        for cut in [0, 7, 30, bytes.len() - 1] {
            assert!(
                matches!(decode(&bytes[..cut]), Err(StateError::Corrupt(_))),
                "{cut}"
            );
        }
        assert!(matches!(
            decode(b"garbage that is long enough"),
            Err(StateError::Corrupt(_))
        ));
    }

    #[test]
    fn restores_only_matching_watches_and_counts_only_where_sound() {
        let snapshot = decode(&encode(
            &ledger_with_two_watches(),
            &[print(11), print(22)],
            None,
        ))
        .unwrap();
        // Now the exporter runs one watch, the old second one, which was mid-first-list.
        let mut ledger = Ledger::new(1, false);
        let restored = restore(&mut ledger, snapshot.clone(), &[print(22)]);
        assert_eq!(
            restored,
            Restored {
                events: 1,
                tombstones: 1,
                counting: 0,
                rebaselined: 1
            }
        );
        assert!(!ledger.is_counting(0));
        ledger.list_started(0).unwrap();
        let grown = ledger.observe(0, UidKey(3), 4, 10, None).unwrap();
        assert_eq!(grown.increment().map(|i| i.delta), Some(1));
        let unknown = ledger.observe(0, UidKey(5), 4, 10, None).unwrap();
        assert_eq!(unknown.increment(), None, "baseline, not history counted");

        // The first watch under other filters: remembered Events diff, the rest is baseline.
        let mut ledger = Ledger::new(1, false);
        let other_filters = WatchPrint {
            identity: 11,
            filters: 1,
        };
        let restored = restore(&mut ledger, snapshot.clone(), &[other_filters]);
        assert_eq!((restored.counting, restored.rebaselined), (0, 1));
        // Same filters: the snapshot replaces the baseline.
        let mut ledger = Ledger::new(1, false);
        let restored = restore(&mut ledger, snapshot, &[print(11)]);
        assert_eq!((restored.counting, restored.events), (1, 2));
        assert!(ledger.is_counting(0));
    }

    #[test]
    fn load_tells_missing_stale_and_good_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        assert!(matches!(
            load(&path, Duration::from_secs(60)),
            Err(StateError::Missing(_))
        ));
        write_atomic(
            &path,
            &encode(&ledger_with_two_watches(), &[print(1), print(2)], None),
        )
        .unwrap();
        assert!(load(&path, Duration::from_secs(60)).is_ok());
        assert!(!dir.path().join("state.tmp").exists());
        // Rewrite with an old timestamp.
        let mut old = fs::read(&path).unwrap();
        old[12..20].copy_from_slice(&1_000u64.to_le_bytes());
        let body_len = old.len() - 8;
        let sum = checksum(&old[..body_len]);
        old[body_len..].copy_from_slice(&sum.to_le_bytes());
        write_atomic(&path, &old).unwrap();
        assert!(matches!(
            load(&path, Duration::from_secs(3600)),
            Err(StateError::Stale { .. })
        ));
    }
}
