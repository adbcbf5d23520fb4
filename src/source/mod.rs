//! Where observations come from: the Kubernetes watch, replay files and the demo.
//!
//! A source decodes objects and reports what it saw; it never counts. Counting is the ledger's.

pub mod demo;
pub mod event;
pub mod line;
pub mod replay;
pub mod watch;

use crate::classify::truncate;
use crate::ledger::{NameKey, UidKey, WatchId};
use crate::store::LabelValues;

pub use event::{Malformed, SlimEvent};

/// Declares [`EventText`] and the conversions to and from its fields in order, from one list.
macro_rules! event_text {
    ($($(#[$doc:meta])* $field:ident,)*) => {
        /// The text of one Event the exporter uses, borrowed: what a decode hands to
        /// [`Observation::new`], and what [`Observation::text`] hands back.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct EventText<'a> {
            $($(#[$doc])* pub $field: &'a str,)*
        }

        impl<'a> EventText<'a> {
            fn fields(&self) -> [&'a str; TEXT_FIELDS] {
                [$(self.$field),*]
            }

            fn from_fields(fields: [&'a str; TEXT_FIELDS]) -> Self {
                let [$($field),*] = fields;
                Self { $($field),* }
            }
        }
    };
}

event_text! {
    /// A label: the involved object's namespace.
    namespace,
    /// A label: the involved object's kind.
    kind,
    /// A label.
    reason,
    /// A label: `type`.
    event_type,
    /// A label: the component that wrote the Event.
    source,
    /// The Event object's own namespace; with its name and `firstTimestamp` (events.k8s.io:
    /// `deprecatedFirstTimestamp`, else `eventTime`) what client-go keeps when it re-creates an
    /// Event the API server deleted.
    object_namespace,
    object_name,
    first_timestamp,
    /// `message` (events.k8s.io: `note`): for the class, never for counting.
    message,
    /// The name of the involved object (`regarding`): for the exemplar.
    involved_name,
    /// `source.host`, else `reportingInstance`: the node, where the writer runs on one.
    node,
    /// When the latest occurrence was seen (RFC 3339): `series.lastObservedTime`, else
    /// `lastTimestamp`, else `eventTime`.
    last_seen,
}

impl<'a> EventText<'a> {
    /// The label values, each cut to [`MAX_LABEL_LEN`] bytes at a character boundary, with the
    /// empty class.
    pub fn label_values(&self) -> LabelValues<'a> {
        fn cut(value: &str) -> &str {
            truncate(value, MAX_LABEL_LEN)
        }
        LabelValues {
            namespace: cut(self.namespace),
            kind: cut(self.kind),
            reason: cut(self.reason),
            event_type: cut(self.event_type),
            source: cut(self.source),
            class: "",
        }
    }

    /// Which Event object this is beyond its uid, for re-creations after the Event TTL.
    pub fn object_key(&self) -> NameKey {
        NameKey::new(
            self.object_namespace,
            self.object_name,
            self.first_timestamp,
        )
    }
}

const TEXT_FIELDS: usize = 12;

/// A field longer than this is cut (at a character boundary), so that twelve of them fit the
/// `u32` offsets; the API server refuses whole objects above 1.5 MiB, so only garbage is cut.
const MAX_FIELD_BYTES: usize = 16 * 1024 * 1024;

/// The longest label value we export, in bytes. events.k8s.io validates reason and the
/// reporting controller at 128 characters, core/v1 validates neither, so a buggy writer can send
/// kilobytes; namespaces and kinds are shorter by validation.
pub const MAX_LABEL_LEN: usize = 128;

/// One Event as the counting rules see it. Its text is packed into one allocation: an update
/// costs one allocation, not one per field, and the value moved along the way stays small.
#[derive(Clone, PartialEq, Eq)]
pub struct Observation {
    pub uid: UidKey,
    /// `max(1, count, series.count)`.
    pub occurrences: u32,
    /// Where each of the [`EventText`] fields ends in `text`.
    ends: [u32; TEXT_FIELDS],
    text: Box<str>,
}

impl Observation {
    pub fn new(uid: UidKey, occurrences: u32, text: EventText<'_>) -> Self {
        let fields = text.fields().map(|field| truncate(field, MAX_FIELD_BYTES));
        let mut packed = String::with_capacity(fields.iter().map(|field| field.len()).sum());
        let mut ends = [0; TEXT_FIELDS];
        for (end, field) in ends.iter_mut().zip(fields) {
            packed.push_str(field);
            // At most 12 × 16 MiB: within u32.
            *end = packed.len() as u32;
        }
        Self {
            uid,
            occurrences,
            ends,
            text: packed.into_boxed_str(),
        }
    }

    pub fn text(&self) -> EventText<'_> {
        let mut start = 0;
        EventText::from_fields(self.ends.map(|end| {
            let end = end as usize;
            // The ends were taken after whole `&str`s were pushed: each is a character boundary.
            let field = &self.text[start..end];
            start = end;
            field
        }))
    }
}

impl std::fmt::Debug for Observation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observation")
            .field("uid", &self.uid)
            .field("occurrences", &self.occurrences)
            .field("text", &self.text())
            .finish()
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
