//! Our own slim Event type: only the fields we count with, decoded without ever failing.
//!
//! kube decodes a whole list page, and each watch line, with the item type's `Deserialize`. One
//! wrong-typed field in one object would otherwise fail the page and stall the watch in a retry
//! loop, so every field here is lenient: a wrong JSON type is recorded, and the object becomes
//! [`Malformed`] instead of an error. The same type reads core/v1 and events.k8s.io/v1 objects.

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::{Detail, ObjectName, Observation, OwnedLabels};
use crate::ledger::UidKey;

/// A JSON value as far as we care: absent or null, the expected type, or something else.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Lenient<T> {
    #[default]
    Absent,
    Value(T),
    WrongType,
}

impl<T> Lenient<T> {
    fn into_value(self) -> Option<T> {
        match self {
            Lenient::Value(value) => Some(value),
            Lenient::Absent | Lenient::WrongType => None,
        }
    }
    fn value(&self) -> Option<&T> {
        match self {
            Lenient::Value(value) => Some(value),
            Lenient::Absent | Lenient::WrongType => None,
        }
    }
    fn is_wrong(&self) -> bool {
        matches!(self, Lenient::WrongType)
    }
}

macro_rules! wrong_type_visits {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Lenient::WrongType)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Lenient::WrongType)
        }
        fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
            Ok(Lenient::WrongType)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Lenient::WrongType)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Lenient::Absent)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Lenient::Absent)
        }
        fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<Self::Value, D::Error> {
            inner.deserialize_any(self)
        }
    };
}

/// For a field whose value is text: anything but a string is the wrong type.
macro_rules! text_visits {
    () => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Lenient::WrongType)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Lenient::WrongType)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            drain_map(map)
        }
        wrong_type_visits!();
    };
}

/// A string field.
impl<'de> Deserialize<'de> for Lenient<String> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringVisitor;
        impl<'de> Visitor<'de> for StringVisitor {
            type Value = Lenient<String>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(Lenient::Value(value.to_owned()))
            }
            fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
                Ok(Lenient::Value(value))
            }
            text_visits!();
        }
        deserializer.deserialize_any(StringVisitor)
    }
}

/// An integer field (`count`, `series.count`), saturated into `u32` (Kubernetes' int32).
impl<'de> Deserialize<'de> for Lenient<u32> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl<'de> Visitor<'de> for CountVisitor {
            type Value = Lenient<u32>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
                Ok(Lenient::Value(value.clamp(0, i64::from(u32::MAX)) as u32))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
                Ok(Lenient::Value(value.min(u64::from(u32::MAX)) as u32))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Lenient::WrongType)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                drain_map(map)
            }
            wrong_type_visits!();
        }
        deserializer.deserialize_any(CountVisitor)
    }
}

/// Whether the object's own `kind` is `Event`; compared, never kept, because every watch line
/// carries it and only replay files mix kinds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SaysEvent(bool);

impl<'de> Deserialize<'de> for Lenient<SaysEvent> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KindVisitor;
        impl<'de> Visitor<'de> for KindVisitor {
            type Value = Lenient<SaysEvent>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a kind")
            }
            fn visit_str<E: de::Error>(self, kind: &str) -> Result<Self::Value, E> {
                Ok(Lenient::Value(SaysEvent(kind == "Event")))
            }
            text_visits!();
        }
        deserializer.deserialize_any(KindVisitor)
    }
}

fn drain_map<'de, A: MapAccess<'de>, T>(mut map: A) -> Result<Lenient<T>, A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(Lenient::WrongType)
}

/// Matches a map key against the field names we read, without allocating for it.
struct KnownKey(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KnownKey {
    type Value = Option<&'static str>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KnownKey {
    type Value = Option<&'static str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().copied().find(|known| *known == key))
    }
}

/// Declares a JSON object of lenient fields: unknown keys are skipped, a non-object value makes
/// the whole object `WrongType`.
macro_rules! lenient_object {
    ($name:ident { $($field:ident : $ty:ty = $json:literal),* $(,)? }) => {
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $(pub $field: $ty,)*
        }

        impl<'de> Deserialize<'de> for Lenient<$name> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct ObjectVisitor;
                impl<'de> Visitor<'de> for ObjectVisitor {
                    type Value = Lenient<$name>;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str(concat!("an object (", stringify!($name), ")"))
                    }
                    fn visit_map<A: MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<Self::Value, A::Error> {
                        const FIELDS: &[&str] = &[$($json),*];
                        let mut object = $name::default();
                        while let Some(key) = map.next_key_seed(KnownKey(FIELDS))? {
                            match key {
                                $(Some($json) => object.$field = map.next_value()?,)*
                                _ => {
                                    map.next_value::<IgnoredAny>()?;
                                }
                            }
                        }
                        Ok(Lenient::Value(object))
                    }
                    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                        Ok(Lenient::WrongType)
                    }
                    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                        Ok(Lenient::WrongType)
                    }
                    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                        Ok(Lenient::WrongType)
                    }
                    wrong_type_visits!();
                }
                deserializer.deserialize_any(ObjectVisitor)
            }
        }
    };
}

lenient_object!(Metadata {
    name: Lenient<String> = "name",
    namespace: Lenient<String> = "namespace",
    uid: Lenient<String> = "uid",
    resource_version: Lenient<String> = "resourceVersion",
});

lenient_object!(ObjectRef {
    kind: Lenient<String> = "kind",
    namespace: Lenient<String> = "namespace",
    name: Lenient<String> = "name",
});

lenient_object!(Source {
    component: Lenient<String> = "component",
    host: Lenient<String> = "host",
});

lenient_object!(Series {
    count: Lenient<u32> = "count",
    last_observed_time: Lenient<String> = "lastObservedTime",
});

lenient_object!(EventFields {
    kind: Lenient<SaysEvent> = "kind",
    metadata: Lenient<Metadata> = "metadata",
    involved_object: Lenient<ObjectRef> = "involvedObject",
    regarding: Lenient<ObjectRef> = "regarding",
    reason: Lenient<String> = "reason",
    event_type: Lenient<String> = "type",
    source: Lenient<Source> = "source",
    deprecated_source: Lenient<Source> = "deprecatedSource",
    reporting_component: Lenient<String> = "reportingComponent",
    reporting_controller: Lenient<String> = "reportingController",
    count: Lenient<u32> = "count",
    deprecated_count: Lenient<u32> = "deprecatedCount",
    series: Lenient<Series> = "series",
    first_timestamp: Lenient<String> = "firstTimestamp",
    deprecated_first_timestamp: Lenient<String> = "deprecatedFirstTimestamp",
    event_time: Lenient<String> = "eventTime",
    // Drill-down only (class, exemplar): a wrong type here never makes the object malformed.
    message: Lenient<String> = "message",
    note: Lenient<String> = "note",
    last_timestamp: Lenient<String> = "lastTimestamp",
    deprecated_last_timestamp: Lenient<String> = "deprecatedLastTimestamp",
    reporting_instance: Lenient<String> = "reportingInstance",
});

/// Why an object was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed {
    /// `metadata.name`, or `<unnamed>`.
    pub name: String,
    pub reason: Cow<'static, str>,
    /// Where in a replay file, when it came from one.
    pub position: Option<String>,
}

/// A core/v1 or events.k8s.io/v1 Event as the watcher hands it over: the metadata kube needs
/// (`resourceVersion` to resume a watch) and the fields we count with, or why they are unusable.
#[derive(Clone, Debug)]
pub struct SlimEvent {
    meta: ObjectMeta,
    uid: Option<UidKey>,
    fields: EventFields,
    malformed: Option<&'static str>,
}

impl<'de> Deserialize<'de> for SlimEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = match Lenient::<EventFields>::deserialize(deserializer)? {
            Lenient::Value(fields) => fields,
            Lenient::Absent | Lenient::WrongType => {
                return Ok(SlimEvent {
                    meta: ObjectMeta::default(),
                    uid: None,
                    fields: EventFields::default(),
                    malformed: Some("the object is not a JSON object"),
                });
            }
        };
        Ok(SlimEvent::from_fields(fields))
    }
}

/// kube's `Resource` requires `Serialize` for some APIs; we only ever read, so the slim form
/// serialises just its metadata.
impl Serialize for SlimEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Slim<'a> {
            metadata: &'a ObjectMeta,
        }
        Slim {
            metadata: &self.meta,
        }
        .serialize(serializer)
    }
}

impl SlimEvent {
    fn from_fields(mut fields: EventFields) -> Self {
        let malformed = malformation(&fields);
        // Moved, not cloned: this runs for every list item and watch event.
        let (meta, uid) = match std::mem::take(&mut fields.metadata).into_value() {
            Some(metadata) => {
                let uid = metadata.uid.value().map(|uid| UidKey::from_uid(uid));
                let meta = ObjectMeta {
                    name: metadata.name.into_value(),
                    namespace: metadata.namespace.into_value(),
                    resource_version: metadata.resource_version.into_value(),
                    ..ObjectMeta::default()
                };
                (meta, uid)
            }
            None => (ObjectMeta::default(), None),
        };
        SlimEvent {
            meta,
            uid,
            fields,
            malformed,
        }
    }

    /// Decodes one object from JSON text (replay files, tests).
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Where a watch resumes after this object, moved out (not copied) before the object
    /// becomes its counting view.
    pub fn take_resource_version(&mut self) -> Option<String> {
        self.meta
            .resource_version
            .take()
            .filter(|version| !version.is_empty())
    }

    /// An Event says so in its `kind`; without one (some dumps drop it), an object that names
    /// what it is about is taken as one.
    pub fn is_event(&self) -> bool {
        match self.fields.kind {
            Lenient::Value(SaysEvent(says)) => says,
            Lenient::Absent | Lenient::WrongType => {
                !matches!(self.fields.involved_object, Lenient::Absent)
                    || !matches!(self.fields.regarding, Lenient::Absent)
            }
        }
    }

    pub fn name(&self) -> &str {
        self.meta.name.as_deref().unwrap_or("<unnamed>")
    }

    /// The counting view of this object, or why it must be skipped (rule 6).
    pub fn into_observation(self) -> Result<Observation, Malformed> {
        let malformed = |event: &SlimEvent, reason: &'static str| Malformed {
            name: event.name().to_owned(),
            reason: Cow::Borrowed(reason),
            position: None,
        };
        if let Some(reason) = self.malformed {
            return Err(malformed(&self, reason));
        }
        let Some(uid) = self.uid else {
            return Err(malformed(&self, "metadata.uid is missing"));
        };
        let mut fields = self.fields;
        let occurrences = occurrences(&fields);
        // Moved, not cloned; `eventTime` is copied only when nothing later names the time, as it
        // is also the first timestamp below.
        let observed = std::mem::take(&mut fields.series)
            .into_value()
            .and_then(|series| series.last_observed_time.into_value());
        let last_seen = [
            observed,
            std::mem::take(&mut fields.last_timestamp).into_value(),
            std::mem::take(&mut fields.deprecated_last_timestamp).into_value(),
        ]
        .into_iter()
        .flatten()
        .find(|time| !time.is_empty())
        .or_else(|| fields.event_time.value().filter(|t| !t.is_empty()).cloned());
        let first_timestamp = [
            std::mem::take(&mut fields.first_timestamp),
            std::mem::take(&mut fields.deprecated_first_timestamp),
            std::mem::take(&mut fields.event_time),
        ]
        .into_iter()
        .find_map(Lenient::into_value)
        .unwrap_or_default();
        let mut meta = self.meta;
        let object_name = ObjectName {
            namespace: meta.namespace.take().unwrap_or_default(),
            name: meta.name.take().unwrap_or_default(),
            first_timestamp,
        };
        let object = match fields.involved_object.into_value() {
            Some(object) => Some(object),
            None => fields.regarding.into_value(),
        };
        let (namespace, kind, involved) = object.map_or((None, None, None), |object| {
            (
                object.namespace.into_value(),
                object.kind.into_value(),
                object.name.into_value(),
            )
        });
        let parts = |source: Lenient<Source>| {
            source.into_value().map_or((None, None), |source| {
                (source.component.into_value(), source.host.into_value())
            })
        };
        let (component, host) = parts(std::mem::take(&mut fields.source));
        let (deprecated_component, deprecated_host) =
            parts(std::mem::take(&mut fields.deprecated_source));
        let source = [
            component,
            deprecated_component,
            fields.reporting_component.into_value(),
            fields.reporting_controller.into_value(),
        ]
        .into_iter()
        .flatten()
        .find(|component| !component.is_empty());
        let host = [
            host,
            deprecated_host,
            fields.reporting_instance.into_value(),
        ]
        .into_iter()
        .flatten()
        .find(|host| !host.is_empty());
        let message = fields
            .message
            .into_value()
            .or_else(|| fields.note.into_value())
            .unwrap_or_default();
        Ok(Observation {
            uid,
            occurrences,
            object: object_name,
            labels: OwnedLabels {
                namespace: namespace.unwrap_or_default(),
                kind: kind.unwrap_or_default(),
                reason: fields.reason.into_value().unwrap_or_default(),
                event_type: fields.event_type.into_value().unwrap_or_default(),
                source: source.unwrap_or_default(),
            },
            detail: Detail {
                message,
                involved_name: involved.unwrap_or_default(),
                node: host.unwrap_or_default(),
                last_seen: last_seen.unwrap_or_default(),
            },
        })
    }
}

/// `max(1, count, series.count)`, and their events.k8s.io names.
fn occurrences(fields: &EventFields) -> u32 {
    let series = fields
        .series
        .value()
        .and_then(|series| series.count.value());
    [
        fields.count.value(),
        fields.deprecated_count.value(),
        series,
    ]
    .into_iter()
    .flatten()
    .copied()
    .fold(1, u32::max)
}

/// The first used field with the wrong JSON type, if any (rule 6).
fn malformation(fields: &EventFields) -> Option<&'static str> {
    let metadata = match &fields.metadata {
        Lenient::Value(metadata) => metadata,
        Lenient::WrongType => return Some("metadata is not an object"),
        Lenient::Absent => return Some("metadata is missing"),
    };
    let object_wrong = |object: &Lenient<ObjectRef>| {
        object.is_wrong()
            || object
                .value()
                .is_some_and(|o| o.kind.is_wrong() || o.namespace.is_wrong())
    };
    let source_wrong = |source: &Lenient<Source>| {
        source.is_wrong() || source.value().is_some_and(|s| s.component.is_wrong())
    };
    let series_wrong =
        fields.series.is_wrong() || fields.series.value().is_some_and(|s| s.count.is_wrong());
    [
        (
            metadata.name.is_wrong(),
            "metadata.name has the wrong JSON type",
        ),
        (
            metadata.namespace.is_wrong(),
            "metadata.namespace has the wrong JSON type",
        ),
        (
            metadata.uid.is_wrong(),
            "metadata.uid has the wrong JSON type",
        ),
        (
            metadata.resource_version.is_wrong(),
            "metadata.resourceVersion has the wrong JSON type",
        ),
        (fields.reason.is_wrong(), "reason has the wrong JSON type"),
        (fields.event_type.is_wrong(), "type has the wrong JSON type"),
        (
            object_wrong(&fields.involved_object),
            "involvedObject has the wrong JSON type",
        ),
        (
            object_wrong(&fields.regarding),
            "regarding has the wrong JSON type",
        ),
        (
            source_wrong(&fields.source),
            "source has the wrong JSON type",
        ),
        (
            source_wrong(&fields.deprecated_source),
            "deprecatedSource has the wrong JSON type",
        ),
        (
            fields.reporting_component.is_wrong(),
            "reportingComponent has the wrong JSON type",
        ),
        (
            fields.reporting_controller.is_wrong(),
            "reportingController has the wrong JSON type",
        ),
        (fields.count.is_wrong(), "count has the wrong JSON type"),
        (
            fields.deprecated_count.is_wrong(),
            "deprecatedCount has the wrong JSON type",
        ),
        (series_wrong, "series.count has the wrong JSON type"),
    ]
    .into_iter()
    .find(|(wrong, _)| *wrong)
    .map(|(_, reason)| reason)
}

impl kube::Resource for SlimEvent {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("Event")
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("events")
    }
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observe(json: &str) -> Result<Observation, Malformed> {
        SlimEvent::from_json(json)
            .expect("valid JSON")
            .into_observation()
    }

    #[test]
    fn core_v1_event_maps_to_labels_and_count() {
        let obs = observe(
            r#"{"apiVersion":"v1","kind":"Event","count":43,
            "metadata":{"name":"p.1","namespace":"moelove","uid":"60708be0-23b9-481b-a290-dd208fed6d47","resourceVersion":"7"},
            "involvedObject":{"kind":"Pod","namespace":"moelove","name":"p"},
            "reason":"BackOff","type":"Normal","source":{"component":"kubelet","host":"n"},
            "reportingComponent":""}"#,
        )
        .unwrap();
        assert_eq!(obs.occurrences, 43);
        assert_eq!(
            obs.labels,
            OwnedLabels {
                namespace: "moelove".into(),
                kind: "Pod".into(),
                reason: "BackOff".into(),
                event_type: "Normal".into(),
                source: "kubelet".into(),
            }
        );
        assert_eq!(
            obs.uid,
            UidKey::from_uid("60708be0-23b9-481b-a290-dd208fed6d47")
        );
    }

    #[test]
    fn empty_source_falls_back_to_reporting_component() {
        let obs = observe(
            r#"{"metadata":{"name":"s","uid":"u1","resourceVersion":"1"},"count":null,
            "source":{},"reportingComponent":"default-scheduler","reason":"Scheduled",
            "involvedObject":{"kind":"Pod","namespace":"a"}}"#,
        )
        .unwrap();
        assert_eq!(obs.labels.source, "default-scheduler");
        assert_eq!(obs.occurrences, 1);
    }

    #[test]
    fn events_k8s_io_fields_are_read() {
        let obs = observe(
            r#"{"apiVersion":"events.k8s.io/v1","metadata":{"name":"f","uid":"u2","resourceVersion":"1"},
            "regarding":{"kind":"Pod","namespace":"b"},"reason":"FailedScheduling","type":"Warning",
            "reportingController":"default-scheduler","deprecatedCount":0,"series":{"count":12}}"#,
        )
        .unwrap();
        assert_eq!(obs.labels.kind, "Pod");
        assert_eq!(obs.labels.namespace, "b");
        assert_eq!(obs.labels.source, "default-scheduler");
        assert_eq!(obs.occurrences, 12);
    }

    #[test]
    fn drill_down_fields_come_from_either_api_and_never_make_an_object_malformed() {
        let legacy = observe(
            r#"{"metadata":{"name":"w","uid":"u4"},"involvedObject":{"kind":"Pod","name":"web-1"},
            "message":"Back-off restarting failed container","source":{"component":"kubelet","host":"node-3"},
            "reportingInstance":"kubelet-x","lastTimestamp":"2026-12-01T10:00:05Z","eventTime":null}"#,
        )
        .unwrap();
        assert_eq!(
            legacy.detail,
            Detail {
                message: "Back-off restarting failed container".into(),
                involved_name: "web-1".into(),
                node: "node-3".into(),
                last_seen: "2026-12-01T10:00:05Z".into(),
            }
        );
        let new = observe(
            r#"{"metadata":{"name":"f","uid":"u5"},"regarding":{"kind":"Pod","name":"trainer-0"},
            "note":"0/3 nodes are available","reportingInstance":"default-scheduler-cp-1",
            "eventTime":"2026-12-01T10:00:00.000001Z","series":{"count":3,"lastObservedTime":"2026-12-01T10:30:00.000000Z"}}"#,
        )
        .unwrap();
        assert_eq!(new.detail.message, "0/3 nodes are available");
        assert_eq!(new.detail.involved_name, "trainer-0");
        assert_eq!(new.detail.node, "default-scheduler-cp-1");
        assert_eq!(new.detail.last_seen, "2026-12-01T10:30:00.000000Z");
        // Wrong types in fields used only for drill-down cost the detail, not the count.
        let odd = observe(
            r#"{"metadata":{"name":"o","uid":"u6"},"message":42,"lastTimestamp":{},"source":{"host":[1]},
            "involvedObject":{"kind":"Pod","name":7},"count":2}"#,
        )
        .unwrap();
        assert_eq!(odd.occurrences, 2);
        assert_eq!(odd.detail, Detail::default());
    }

    #[test]
    fn count_null_or_zero_with_series_takes_the_series_count() {
        for count in ["null", "0"] {
            let obs = observe(&format!(
                r#"{{"metadata":{{"uid":"u3","resourceVersion":"1"}},"count":{count},"series":{{"count":5}}}}"#
            ))
            .unwrap();
            assert_eq!(obs.occurrences, 5, "count {count}");
        }
        let bare = observe(r#"{"metadata":{"uid":"u3"},"count":0}"#).unwrap();
        assert_eq!(bare.occurrences, 1);
        let negative = observe(r#"{"metadata":{"uid":"u3"},"count":-4}"#).unwrap();
        assert_eq!(negative.occurrences, 1);
    }

    #[test]
    fn wrong_types_make_the_object_malformed_not_an_error() {
        for (json, reason) in [
            (
                r#"{"metadata":{"name":"bad","uid":"u"},"count":"seven"}"#,
                "count",
            ),
            (
                r#"{"metadata":{"name":"bad","uid":"u"},"reason":["x"]}"#,
                "reason",
            ),
            (
                r#"{"metadata":{"name":"bad","uid":"u"},"involvedObject":"Pod"}"#,
                "involvedObject",
            ),
            (
                r#"{"metadata":{"name":"bad","uid":"u"},"series":{"count":{"a":1}}}"#,
                "series.count",
            ),
            (r#"{"metadata":{"name":"bad","uid":7}}"#, "metadata.uid"),
            (r#"{"metadata":{"name":"bad"}}"#, "metadata.uid"),
        ] {
            let err = observe(json).expect_err(json);
            assert!(err.reason.starts_with(reason), "{json}: {}", err.reason);
        }
        let not_object = observe("42").expect_err("a number");
        assert_eq!(not_object.name, "<unnamed>");
    }

    #[test]
    fn malformed_item_does_not_fail_its_list_page() {
        let page: kube::core::ObjectList<SlimEvent> = serde_json::from_str(
            r#"{"apiVersion":"v1","kind":"EventList","metadata":{"resourceVersion":"10"},"items":[
              {"metadata":{"name":"good","uid":"a","resourceVersion":"9"},"count":2},
              {"metadata":{"name":"bad","uid":"b","resourceVersion":"9"},"count":"seven"},
              {"metadata":{"name":"good2","uid":"c","resourceVersion":"9"},"count":{"x":[1,2]}}
            ]}"#,
        )
        .unwrap();
        let results: Vec<_> = page
            .items
            .into_iter()
            .map(SlimEvent::into_observation)
            .collect();
        assert!(results[0].is_ok());
        assert_eq!(results[1].as_ref().unwrap_err().name, "bad");
        assert!(results[2].is_err());
    }

    #[test]
    fn resource_version_reaches_kube() {
        let event =
            SlimEvent::from_json(r#"{"metadata":{"uid":"a","resourceVersion":"42"}}"#).unwrap();
        assert_eq!(
            kube::ResourceExt::resource_version(&event).as_deref(),
            Some("42")
        );
    }
}
