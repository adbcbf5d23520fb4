//! `--demo`: a bundled recording of a small cluster's life, replayed in a loop.
//!
//! The recording (`demo-recording.jsonl`, written by `tools/demo-recording.py`) is ten minutes of
//! watch events shaped like real clusters' (rollout, missing image, crash loop, failing probes, an
//! unschedulable pod, a missing ConfigMap, a node going NotReady with evictions, an OOM kill, a
//! sandbox that cannot be created). Each cycle plays it time-compressed with fresh uids, then
//! deletes its Events as the API server's TTL would, so the counters keep rising and the ledger
//! stays small.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::replay::REPLAY_WATCH;
use super::{Delivery, EventText, Observation, Signal, SlimEvent, unix_seconds};
use crate::ledger::UidKey;

const RECORDING: &str = include_str!("demo-recording.jsonl");

/// Cluster seconds between the end of one cycle and the start of the next.
const CYCLE_PAUSE_SECONDS: f64 = 5.0;

/// Cluster time per wall-clock second by default: the ten-minute recording plays in 30 s.
pub const DEFAULT_SPEED: f64 = 20.0;

#[derive(Clone, Debug)]
struct Entry {
    /// Cluster seconds since the recording's first entry.
    at: f64,
    delivery: Delivery,
    observation: Observation,
}

/// A parsed recording.
#[derive(Clone, Debug)]
pub struct Recording {
    entries: Vec<Entry>,
}

#[derive(Debug, thiserror::Error)]
#[error("demo recording line {line}: {reason}")]
pub struct RecordingError {
    line: usize,
    reason: String,
}

impl Recording {
    /// The recording compiled into the binary.
    pub fn bundled() -> Result<Self, RecordingError> {
        Self::parse(RECORDING)
    }

    /// Watch events, one per line, as `kubectl get events -w -o json --output-watch-events -A`
    /// prints them compacted.
    pub fn parse(text: &str) -> Result<Self, RecordingError> {
        let mut entries = Vec::new();
        for (index, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let error = |reason: String| RecordingError {
                line: index + 1,
                reason,
            };
            let mut event: Value = serde_json::from_str(line).map_err(|e| error(e.to_string()))?;
            let delivery = match event["type"].as_str() {
                Some("ADDED" | "MODIFIED") => Delivery::Applied,
                Some("DELETED") => Delivery::Deleted,
                other => return Err(error(format!("unexpected watch event type {other:?}"))),
            };
            let object = event["object"].take();
            let at = last_seen(&object).ok_or_else(|| error("no timestamp".into()))?;
            let observation = serde_json::from_value::<SlimEvent>(object)
                .map_err(|e| error(e.to_string()))?
                .into_observation()
                .map_err(|m| error(m.reason.into_owned()))?;
            entries.push(Entry {
                at,
                delivery,
                observation,
            });
        }
        let start = entries.iter().map(|e| e.at).fold(f64::INFINITY, f64::min);
        for entry in &mut entries {
            entry.at -= start;
        }
        entries.sort_by(|a, b| a.at.total_cmp(&b.at));
        Ok(Self { entries })
    }

    /// Cluster seconds one cycle takes.
    pub fn cycle_seconds(&self) -> f64 {
        self.entries.last().map_or(0.0, |last| last.at) + CYCLE_PAUSE_SECONDS
    }

    /// Plays the recording forever at `speed` times real time, until `signals` is closed.
    pub async fn play(self, speed: f64, signals: mpsc::Sender<Signal>) {
        if signals
            .send(Signal::ListStarted(REPLAY_WATCH))
            .await
            .is_err()
            || signals.send(Signal::ListDone(REPLAY_WATCH)).await.is_err()
        {
            return;
        }
        let cycle_length = Duration::from_secs_f64(self.cycle_seconds() / speed);
        let mut cycle_start = Instant::now();
        for cycle in 0u64.. {
            let mut live: Vec<Observation> = Vec::new();
            for entry in &self.entries {
                tokio::time::sleep_until(cycle_start + Duration::from_secs_f64(entry.at / speed))
                    .await;
                let played = &entry.observation;
                let text = played.text();
                // A later telling of the story: its Events start later, so they are new Events
                // under old names, not re-creations of the last cycle's (which the ledger would
                // diff against their tombstones). The timestamp is only an identity here.
                let first_timestamp = if cycle > 0 {
                    format!("{}+cycle{cycle}", text.first_timestamp)
                } else {
                    text.first_timestamp.to_owned()
                };
                // The story happens now: an exemplar names the time it was played, so a
                // dashboard over the last hours shows it.
                let last_seen = k8s_openapi::jiff::Timestamp::now().to_string();
                let observation = Observation::new(
                    cycle_uid(played.uid, cycle),
                    played.occurrences,
                    EventText {
                        first_timestamp: &first_timestamp,
                        last_seen: &last_seen,
                        ..text
                    },
                );
                match live.iter_mut().find(|known| known.uid == observation.uid) {
                    Some(known) => *known = observation.clone(),
                    None => live.push(observation.clone()),
                }
                let signal = Signal::Object {
                    watch: REPLAY_WATCH,
                    delivery: entry.delivery,
                    event: Ok(observation),
                };
                if signals.send(signal).await.is_err() {
                    return;
                }
            }
            // The API server's TTL removes a cycle's Events; the ledger forgets them.
            for observation in live {
                let signal = Signal::Object {
                    watch: REPLAY_WATCH,
                    delivery: Delivery::Deleted,
                    event: Ok(observation),
                };
                if signals.send(signal).await.is_err() {
                    return;
                }
            }
            cycle_start += cycle_length;
        }
    }
}

/// Every cycle's Events are new Events: same names, new uids, as when a story repeats.
fn cycle_uid(uid: UidKey, cycle: u64) -> UidKey {
    UidKey(
        uid.0.wrapping_add(
            u128::from(cycle).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835),
        ),
    )
}

/// The latest time the object records: `lastTimestamp`, `series.lastObservedTime` or `eventTime`.
fn last_seen(object: &Value) -> Option<f64> {
    [
        &object["lastTimestamp"],
        &object["series"]["lastObservedTime"],
        &object["eventTime"],
        &object["metadata"]["creationTimestamp"],
    ]
    .into_iter()
    .filter_map(|value| value.as_str().and_then(unix_seconds))
    .reduce(f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_recording_parses_and_spans_ten_minutes() {
        let recording = Recording::bundled().unwrap();
        assert!(recording.entries.len() > 100);
        let cycle = recording.cycle_seconds();
        assert!((500.0..700.0).contains(&cycle), "{cycle}");
        // At the default speed every reason appears within 60 s of wall time.
        assert!(cycle / DEFAULT_SPEED <= 60.0);
    }

    #[test]
    fn cycles_get_distinct_uids() {
        let uid = UidKey::from_uid("8685df9f-42b7-4271-8323-065a8457a6d3");
        assert_eq!(cycle_uid(uid, 0), uid);
        assert_ne!(cycle_uid(uid, 1), uid);
        assert_ne!(cycle_uid(uid, 1), cycle_uid(uid, 2));
    }
}
