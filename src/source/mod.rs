//! Where observations come from: the Kubernetes watch, replay files and the demo.
//!
//! A source decodes objects and reports what it saw; it never counts. Counting is the ledger's.

pub mod demo;
pub mod event;
pub mod replay;
pub mod watch;

use crate::classify::truncate;
use crate::ledger::{NameKey, UidKey, WatchId};
use crate::store::LabelValues;

pub use event::{Malformed, SlimEvent};

/// The label values of one Event, owned because they were decoded from its JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnedLabels {
    pub namespace: String,
    pub kind: String,
    pub reason: String,
    pub event_type: String,
    pub source: String,
}

impl OwnedLabels {
    /// The label values, each cut to [`MAX_LABEL_LEN`] bytes at a character boundary, with the
    /// empty class.
    pub fn as_values(&self) -> LabelValues<'_> {
        fn cut(value: &str) -> &str {
            truncate(value, MAX_LABEL_LEN)
        }
        LabelValues {
            namespace: cut(&self.namespace),
            kind: cut(&self.kind),
            reason: cut(&self.reason),
            event_type: cut(&self.event_type),
            source: cut(&self.source),
            class: "",
        }
    }
}

/// The longest label value we export, in bytes. events.k8s.io validates reason and the
/// reporting controller at 128 characters, core/v1 validates neither, so a buggy writer can send
/// kilobytes; namespaces and kinds are shorter by validation.
pub const MAX_LABEL_LEN: usize = 128;

/// One Event as the counting rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub uid: UidKey,
    pub labels: OwnedLabels,
    /// `max(1, count, series.count)`.
    pub occurrences: u32,
    /// Which Event object this is beyond its uid, for re-creations after the Event TTL.
    pub object: ObjectName,
    /// What the Event says beyond its labels: for its class and its exemplar, never for counting.
    pub detail: Detail,
}

/// The drill-down fields of an Event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Detail {
    /// `message` (events.k8s.io: `note`).
    pub message: String,
    /// The name of the involved object (`regarding`).
    pub involved_name: String,
    /// `source.host`, else `reportingInstance`: the node, where the writer runs on one.
    pub node: String,
    /// When the latest occurrence was seen (RFC 3339): `series.lastObservedTime`, else
    /// `lastTimestamp`, else `eventTime`.
    pub last_seen: String,
}

/// The Event object's own namespace and name, and its `firstTimestamp` (events.k8s.io:
/// `deprecatedFirstTimestamp`, else `eventTime`): what client-go keeps when it re-creates an
/// Event the API server deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectName {
    pub namespace: String,
    pub name: String,
    pub first_timestamp: String,
}

impl ObjectName {
    pub fn key(&self) -> NameKey {
        NameKey::new(&self.namespace, &self.name, &self.first_timestamp)
    }
}

/// How an object reached us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Part of a list (the first one, a retry or a relist).
    Listed,
    /// Added or modified on a live watch.
    Applied,
    /// Deleted on a live watch; the object is its final state.
    Deleted,
}

/// How a watch lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListPlan {
    pub watch: WatchId,
    /// A streaming list (the initial events of a watch), else pages.
    pub streaming: bool,
    /// The objects the API server says the list holds, where it says.
    pub expected: Option<usize>,
}

/// What a source reports, per watch.
// Objects are nearly every signal: boxing them would add an allocation per update to save space
// only on the rare list and error signals.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    /// How the next list of a watch comes, before its `ListStarted`: for the mode metric and to
    /// size the ledger once.
    ListPlan(ListPlan),
    ListStarted(WatchId),
    Object {
        watch: WatchId,
        delivery: Delivery,
        event: Result<Observation, Malformed>,
    },
    ListDone(WatchId),
    /// The watch failed; it retries by itself with backoff.
    WatchError {
        watch: WatchId,
        message: String,
    },
}

/// `2026-11-20T14:00:03Z` or with fractional seconds, as Kubernetes writes times, in Unix seconds.
pub fn unix_seconds(text: &str) -> Option<f64> {
    let at: k8s_openapi::jiff::Timestamp = text.parse().ok()?;
    Some(at.as_microsecond() as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_to_unix_seconds() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(unix_seconds("2021-12-28T19:31:13Z"), Some(1_640_719_873.0));
        assert_eq!(
            unix_seconds("2021-12-28T19:31:13.702987Z"),
            Some(1_640_719_873.702987)
        );
        assert_eq!(unix_seconds("2021-12-28 19:31:13"), None);
        assert_eq!(unix_seconds(""), None);
    }
}
