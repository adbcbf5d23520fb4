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

use super::{EventText, Observation};
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
    pub fn value(&self) -> Option<&T> {
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
        /// Generic over its text: `String` where kube decodes owned objects (list pages), a
        /// [`Text`] borrowed from the line where we decode watch lines ourselves.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct $name<S> {
            $(pub $field: $ty,)*
        }

        impl<'de, S> Deserialize<'de> for Lenient<$name<S>>
        where
            S: Default,
            $($ty: Deserialize<'de>,)*
        {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct ObjectVisitor<S>(std::marker::PhantomData<S>);
                impl<'de, S> Visitor<'de> for ObjectVisitor<S>
                where
                    S: Default,
                    $($ty: Deserialize<'de>,)*
                {
                    type Value = Lenient<$name<S>>;
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
                                $(Some($json) => object.$field = map.next_value::<$ty>()?,)*
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
                deserializer.deserialize_any(ObjectVisitor::<S>(std::marker::PhantomData))
            }
        }
    };
}

lenient_object!(Metadata {
    name: Lenient<S> = "name",
    namespace: Lenient<S> = "namespace",
    uid: Lenient<S> = "uid",
    resource_version: Lenient<S> = "resourceVersion",
});

lenient_object!(ObjectRef {
    kind: Lenient<S> = "kind",
    namespace: Lenient<S> = "namespace",
    name: Lenient<S> = "name",
});

lenient_object!(Source {
    component: Lenient<S> = "component",
    host: Lenient<S> = "host",
});

lenient_object!(Series {
    count: Lenient<u32> = "count",
    last_observed_time: Lenient<S> = "lastObservedTime",
});

lenient_object!(EventFields {
    kind: Lenient<SaysEvent> = "kind",
    metadata: Lenient<Metadata<S>> = "metadata",
    involved_object: Lenient<ObjectRef<S>> = "involvedObject",
    regarding: Lenient<ObjectRef<S>> = "regarding",
    reason: Lenient<S> = "reason",
    event_type: Lenient<S> = "type",
    source: Lenient<Source<S>> = "source",
    deprecated_source: Lenient<Source<S>> = "deprecatedSource",
    reporting_component: Lenient<S> = "reportingComponent",
    reporting_controller: Lenient<S> = "reportingController",
    count: Lenient<u32> = "count",
    deprecated_count: Lenient<u32> = "deprecatedCount",
    series: Lenient<Series<S>> = "series",
    first_timestamp: Lenient<S> = "firstTimestamp",
    deprecated_first_timestamp: Lenient<S> = "deprecatedFirstTimestamp",
    event_time: Lenient<S> = "eventTime",
    // Drill-down only (class, exemplar): a wrong type here never makes the object malformed.
    message: Lenient<S> = "message",
    note: Lenient<S> = "note",
    last_timestamp: Lenient<S> = "lastTimestamp",
    deprecated_last_timestamp: Lenient<S> = "deprecatedLastTimestamp",
    reporting_instance: Lenient<S> = "reportingInstance",
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

/// A core/v1 or events.k8s.io/v1 Event as kube decodes it from a list page: the metadata kube
/// reads (`resourceVersion`) and the fields we count with.
#[derive(Clone, Debug)]
pub struct SlimEvent {
    meta: ObjectMeta,
    fields: Lenient<EventFields<String>>,
}

impl<'de> Deserialize<'de> for SlimEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = Lenient::<EventFields<String>>::deserialize(deserializer)?;
        let resource_version = fields
            .value()
            .and_then(|fields| fields.metadata.value())
            .and_then(|metadata| metadata.resource_version.value())
            .cloned();
        Ok(SlimEvent {
            meta: ObjectMeta {
                resource_version,
                ..ObjectMeta::default()
            },
            fields,
        })
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
    /// Decodes one object from JSON text (replay files, tests).
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn is_event(&self) -> bool {
        is_event(&self.fields)
    }

    pub fn into_observation(self) -> Result<Observation, Malformed> {
        observe(&self.fields)
    }
}

/// Text borrowed from the decoded line where it holds no escapes, as nearly all does; owned
/// where it does.
pub type Text<'a> = Cow<'a, str>;

/// A string field, borrowed from the input where it can be.
impl<'de: 'a, 'a> Deserialize<'de> for Lenient<Text<'a>> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Lenient<Text<'de>>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(Lenient::Value(Cow::Borrowed(value)))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(Lenient::Value(Cow::Owned(value.to_owned())))
            }
            fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
                Ok(Lenient::Value(Cow::Owned(value)))
            }
            text_visits!();
        }
        deserializer.deserialize_any(TextVisitor)
    }
}

fn text<S: AsRef<str>>(field: &Lenient<S>) -> Option<&str> {
    field.value().map(AsRef::as_ref)
}

/// An Event says so in its `kind`; without one (some dumps drop it), an object that names what
/// it is about is taken as one.
pub fn is_event<S>(fields: &Lenient<EventFields<S>>) -> bool {
    let Some(fields) = fields.value() else {
        return false;
    };
    match fields.kind {
        Lenient::Value(SaysEvent(says)) => says,
        Lenient::Absent | Lenient::WrongType => {
            !matches!(fields.involved_object, Lenient::Absent)
                || !matches!(fields.regarding, Lenient::Absent)
        }
    }
}

/// `metadata.name`, for messages about the object.
pub fn name_of<S: AsRef<str>>(fields: &Lenient<EventFields<S>>) -> &str {
    fields
        .value()
        .and_then(|fields| fields.metadata.value())
        .and_then(|metadata| text(&metadata.name))
        .unwrap_or("<unnamed>")
}

/// The counting view of an object, or why it must be skipped (rule 6). Its text is copied
/// once, into the observation's one allocation.
pub fn observe<S: AsRef<str>>(object: &Lenient<EventFields<S>>) -> Result<Observation, Malformed> {
    let malformed = |reason: &'static str| Malformed {
        name: name_of(object).to_owned(),
        reason: Cow::Borrowed(reason),
        position: None,
    };
    let Some(fields) = object.value() else {
        return Err(malformed("the object is not a JSON object"));
    };
    if let Some(reason) = malformation(fields) {
        return Err(malformed(reason));
    }
    let metadata = fields.metadata.value();
    let Some(uid) = metadata.and_then(|metadata| text(&metadata.uid)) else {
        return Err(malformed("metadata.uid is missing"));
    };
    let not_empty = |text: &&str| !text.is_empty();
    let observed = fields
        .series
        .value()
        .and_then(|series| text(&series.last_observed_time));
    let last_seen = [
        observed,
        text(&fields.last_timestamp),
        text(&fields.deprecated_last_timestamp),
        text(&fields.event_time),
    ]
    .into_iter()
    .flatten()
    .find(not_empty);
    let first_timestamp = [
        &fields.first_timestamp,
        &fields.deprecated_first_timestamp,
        &fields.event_time,
    ]
    .into_iter()
    .find_map(text);
    let object = fields
        .involved_object
        .value()
        .or_else(|| fields.regarding.value());
    let about = |field: fn(&ObjectRef<S>) -> &Lenient<S>| object.and_then(|o| text(field(o)));
    fn parts<S: AsRef<str>>(source: &Lenient<Source<S>>) -> (Option<&str>, Option<&str>) {
        source.value().map_or((None, None), |source| {
            (text(&source.component), text(&source.host))
        })
    }
    let (component, host) = parts(&fields.source);
    let (deprecated_component, deprecated_host) = parts(&fields.deprecated_source);
    let source = [
        component,
        deprecated_component,
        text(&fields.reporting_component),
        text(&fields.reporting_controller),
    ]
    .into_iter()
    .flatten()
    .find(not_empty);
    let node = [host, deprecated_host, text(&fields.reporting_instance)]
        .into_iter()
        .flatten()
        .find(not_empty);
    let message = text(&fields.message).or_else(|| text(&fields.note));
    let of_metadata =
        |field: fn(&Metadata<S>) -> &Lenient<S>| metadata.and_then(|m| text(field(m)));
    Ok(Observation::new(
        UidKey::from_uid(uid),
        occurrences(fields),
        EventText {
            namespace: about(|o| &o.namespace).unwrap_or_default(),
            kind: about(|o| &o.kind).unwrap_or_default(),
            reason: text(&fields.reason).unwrap_or_default(),
            event_type: text(&fields.event_type).unwrap_or_default(),
            source: source.unwrap_or_default(),
            object_namespace: of_metadata(|m| &m.namespace).unwrap_or_default(),
            object_name: of_metadata(|m| &m.name).unwrap_or_default(),
            first_timestamp: first_timestamp.unwrap_or_default(),
            message: message.unwrap_or_default(),
            involved_name: about(|o| &o.name).unwrap_or_default(),
            node: node.unwrap_or_default(),
            last_seen: last_seen.unwrap_or_default(),
        },
    ))
}

/// `max(1, count, series.count)`, and their events.k8s.io names.
fn occurrences<S>(fields: &EventFields<S>) -> u32 {
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
fn malformation<S>(fields: &EventFields<S>) -> Option<&'static str> {
    let metadata = match &fields.metadata {
        Lenient::Value(metadata) => metadata,
        Lenient::WrongType => return Some("metadata is not an object"),
        Lenient::Absent => return Some("metadata is missing"),
    };
    let object_wrong = |object: &Lenient<ObjectRef<S>>| {
        object.is_wrong()
            || object
                .value()
                .is_some_and(|o| o.kind.is_wrong() || o.namespace.is_wrong())
    };
    let source_wrong = |source: &Lenient<Source<S>>| {
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
    use crate::ledger::NameKey;

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
        let text = obs.text();
        assert_eq!(
            [
                text.namespace,
                text.kind,
                text.reason,
                text.event_type,
                text.source
            ],
            ["moelove", "Pod", "BackOff", "Normal", "kubelet"]
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
        assert_eq!(obs.text().source, "default-scheduler");
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
        assert_eq!(obs.text().kind, "Pod");
        assert_eq!(obs.text().namespace, "b");
        assert_eq!(obs.text().source, "default-scheduler");
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
        let detail = legacy.text();
        assert_eq!(
            [
                detail.message,
                detail.involved_name,
                detail.node,
                detail.last_seen
            ],
            [
                "Back-off restarting failed container",
                "web-1",
                "node-3",
                "2026-12-01T10:00:05Z"
            ]
        );
        let new = observe(
            r#"{"metadata":{"name":"f","uid":"u5"},"regarding":{"kind":"Pod","name":"trainer-0"},
            "note":"0/3 nodes are available","reportingInstance":"default-scheduler-cp-1",
            "eventTime":"2026-12-01T10:00:00.000001Z","series":{"count":3,"lastObservedTime":"2026-12-01T10:30:00.000000Z"}}"#,
        )
        .unwrap();
        let detail = new.text();
        assert_eq!(detail.message, "0/3 nodes are available");
        assert_eq!(detail.involved_name, "trainer-0");
        assert_eq!(detail.node, "default-scheduler-cp-1");
        assert_eq!(detail.last_seen, "2026-12-01T10:30:00.000000Z");
        // Wrong types in fields used only for drill-down cost the detail, not the count.
        let odd = observe(
            r#"{"metadata":{"name":"o","uid":"u6"},"message":42,"lastTimestamp":{},"source":{"host":[1]},
            "involvedObject":{"kind":"Pod","name":7},"count":2}"#,
        )
        .unwrap();
        assert_eq!(odd.occurrences, 2);
        let detail = odd.text();
        assert_eq!(
            [
                detail.message,
                detail.involved_name,
                detail.node,
                detail.last_seen
            ],
            [""; 4]
        );
    }

    #[test]
    fn borrowed_and_owned_decodes_agree_escapes_included() {
        let json = r#"{"metadata":{"name":"e.1","namespace":"shop","uid":"u7"},"count":3,
            "involvedObject":{"kind":"Pod","namespace":"shop","name":"web-\u00e9"},
            "reason":"Unhealthy","type":"Warning","source":{"component":"kubelet"},
            "message":"Readiness probe failed: \"503\"\n","firstTimestamp":"2026-12-01T10:00:00Z"}"#;
        let borrowed: Lenient<EventFields<Text>> = serde_json::from_str(json).unwrap();
        let borrowed = super::observe(&borrowed).unwrap();
        assert_eq!(borrowed, observe(json).unwrap());
        assert_eq!(borrowed.text().message, "Readiness probe failed: \"503\"\n");
        assert_eq!(borrowed.text().involved_name, "web-é");
        assert_eq!(
            borrowed.text().object_key(),
            NameKey::new("shop", "e.1", "2026-12-01T10:00:00Z")
        );
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
