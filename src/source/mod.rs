//! Where observations come from: the Kubernetes watch (and, later, replay files and the demo).
//!
//! A source decodes objects and reports what it saw; it never counts. Counting is the ledger's.

pub mod demo;
pub mod event;
pub mod kube;
pub mod replay;

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
    pub fn as_values(&self) -> LabelValues<'_> {
        LabelValues {
            namespace: &self.namespace,
            kind: &self.kind,
            reason: &self.reason,
            event_type: &self.event_type,
            source: &self.source,
        }
    }
}

/// One Event as the counting rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub uid: UidKey,
    pub labels: OwnedLabels,
    /// `max(1, count, series.count)`.
    pub occurrences: u32,
    /// Which Event object this is beyond its uid, for re-creations after the Event TTL.
    pub object: ObjectName,
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

/// What a source reports, per watch.
// Objects are nearly every signal: boxing them would add an allocation per update to save space
// only on the rare list and error signals.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
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
