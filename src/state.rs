//! `--state-file`: the ledger's memory across restarts.
//!
//! A snapshot holds, per watch, the occurrences already counted for each Event uid — nothing
//! else: no counters (they restart at 0, which Prometheus handles as a reset) and no objects. It
//! is written atomically (temporary file, fsync, rename), so a crash mid-write leaves the previous
//! snapshot intact, and it carries a checksum, so a damaged file is refused, never half-trusted.
//!
//! Layout (little-endian): magic, version, written-at (Unix seconds), watch count, then per watch
//! its fingerprint and entry count, then the entries (uid u128, occurrences u32), then FNV-1a 64
//! of everything before it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ledger::{Ledger, UidKey, WatchId};

const MAGIC: &[u8; 8] = b"KEMSTATE";
const VERSION: u32 = 1;
const ENTRY_BYTES: usize = 16 + 4;

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

/// What a snapshot remembered for one watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchMemory {
    /// [`fingerprint`] of the watch's settings: a snapshot only restores the same watch.
    pub fingerprint: u64,
    pub entries: Vec<(UidKey, u32)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub written_at: u64,
    pub watches: Vec<WatchMemory>,
}

/// A stable identity for a watch's settings (namespace and selectors).
pub fn fingerprint(description: &str) -> u64 {
    fnv1a_64(description.as_bytes())
}

fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x100000001b3)
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Encodes the ledger; `fingerprints[w]` identifies watch `w`.
pub fn encode(ledger: &Ledger, fingerprints: &[u64]) -> Vec<u8> {
    let mut per_watch: Vec<Vec<(UidKey, u32)>> = vec![Vec::new(); fingerprints.len()];
    for (uid, occurrences, watch) in ledger.entries() {
        if let Some(entries) = per_watch.get_mut(usize::from(watch)) {
            entries.push((uid, occurrences));
        }
    }
    let total: usize = per_watch.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(32 + fingerprints.len() * 16 + total * ENTRY_BYTES + 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&unix_now().to_le_bytes());
    out.extend_from_slice(&(fingerprints.len() as u32).to_le_bytes());
    for (fingerprint, entries) in fingerprints.iter().zip(&per_watch) {
        out.extend_from_slice(&fingerprint.to_le_bytes());
        out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    }
    for entries in &per_watch {
        for (uid, occurrences) in entries {
            out.extend_from_slice(&uid.0.to_le_bytes());
            out.extend_from_slice(&occurrences.to_le_bytes());
        }
    }
    let checksum = fnv1a_64(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
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
    fn u32(&mut self) -> Result<u32, StateError> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, StateError> {
        self.take().map(u64::from_le_bytes)
    }
}

pub fn decode(bytes: &[u8]) -> Result<Snapshot, StateError> {
    let (body, checksum) = bytes
        .split_last_chunk::<8>()
        .ok_or(StateError::Corrupt("truncated"))?;
    if fnv1a_64(body) != u64::from_le_bytes(*checksum) {
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
    let watch_count = reader.u32()? as usize;
    let mut headers = Vec::new();
    for _ in 0..watch_count {
        let fingerprint = reader.u64()?;
        let count = usize::try_from(reader.u64()?).map_err(|_| StateError::Corrupt("size"))?;
        headers.push((fingerprint, count));
    }
    let total: usize = headers.iter().map(|(_, count)| *count).sum();
    if reader.0.len() != total.saturating_mul(ENTRY_BYTES) {
        return Err(StateError::Corrupt("entry count does not match the size"));
    }
    let mut watches = Vec::with_capacity(watch_count);
    for (fingerprint, count) in headers {
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let uid = UidKey(u128::from_le_bytes(reader.take()?));
            entries.push((uid, reader.u32()?));
        }
        watches.push(WatchMemory {
            fingerprint,
            entries,
        });
    }
    Ok(Snapshot {
        written_at,
        watches,
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

/// Restores into `ledger` the watches whose fingerprints match; returns the Events restored.
pub fn restore(ledger: &mut Ledger, snapshot: Snapshot, fingerprints: &[u64]) -> usize {
    let mut restored = 0;
    for memory in snapshot.watches {
        let watch = fingerprints
            .iter()
            .position(|fingerprint| *fingerprint == memory.fingerprint)
            .and_then(|index| WatchId::try_from(index).ok());
        if let Some(watch) = watch {
            restored += ledger.restore(watch, memory.entries).unwrap_or(0);
        }
    }
    restored
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger_with_two_watches() -> Ledger {
        let mut ledger = Ledger::new(2, true);
        for watch in [0, 1] {
            ledger.list_started(watch).unwrap();
        }
        ledger.observe(0, UidKey(1), 0, 5).unwrap();
        ledger.observe(0, UidKey(u128::MAX), 0, 7).unwrap();
        ledger.observe(1, UidKey(3), 0, 9).unwrap();
        ledger
    }

    #[test]
    fn round_trips_per_watch() {
        let ledger = ledger_with_two_watches();
        let bytes = encode(&ledger, &[11, 22]);
        let mut snapshot = decode(&bytes).unwrap();
        snapshot.watches[0].entries.sort();
        assert_eq!(snapshot.watches[0].fingerprint, 11);
        assert_eq!(
            snapshot.watches[0].entries,
            vec![(UidKey(1), 5), (UidKey(u128::MAX), 7)]
        );
        assert_eq!(snapshot.watches[1].entries, vec![(UidKey(3), 9)]);
        assert!(snapshot.written_at > 1_700_000_000);
    }

    #[test]
    fn damage_is_detected_never_trusted() {
        let bytes = encode(&ledger_with_two_watches(), &[11, 22]);
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
    fn restores_only_matching_watches() {
        let snapshot = decode(&encode(&ledger_with_two_watches(), &[11, 22])).unwrap();
        // Now the exporter runs one watch, the old second one.
        let mut ledger = Ledger::new(1, false);
        assert_eq!(restore(&mut ledger, snapshot, &[22]), 1);
        ledger.list_started(0).unwrap();
        let grown = ledger.observe(0, UidKey(3), 4, 10).unwrap();
        assert_eq!(grown.increment().map(|i| i.delta), Some(1));
    }

    #[test]
    fn load_tells_missing_stale_and_good_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        assert!(matches!(
            load(&path, Duration::from_secs(60)),
            Err(StateError::Missing(_))
        ));
        write_atomic(&path, &encode(&ledger_with_two_watches(), &[1, 2])).unwrap();
        assert!(load(&path, Duration::from_secs(60)).is_ok());
        assert!(!dir.path().join("state.tmp").exists());
        // Rewrite with an old timestamp.
        let mut old = fs::read(&path).unwrap();
        old[12..20].copy_from_slice(&1_000u64.to_le_bytes());
        let body_len = old.len() - 8;
        let checksum = fnv1a_64(&old[..body_len]);
        old[body_len..].copy_from_slice(&checksum.to_le_bytes());
        write_atomic(&path, &old).unwrap();
        assert!(matches!(
            load(&path, Duration::from_secs(3600)),
            Err(StateError::Stale { .. })
        ));
    }
}
