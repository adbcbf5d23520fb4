//! One line of a watch response, decoded where it lies: an Event's text is borrowed from the
//! line (a string with escapes excepted) and copied once, into its [`Observation`].

use std::collections::BTreeMap;
use std::fmt;

use kube::core::Status;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::event::{EventFields, Lenient, Text, observe};
use super::{Malformed, Observation};

pub type Decoded = kube::Result<WatchLine>;

/// A watch line as the driver needs it.
pub enum WatchLine {
    Object {
        deleted: bool,
        event: Result<Observation, Malformed>,
        resource_version: Option<String>,
    },
    Bookmark {
        resource_version: String,
        ends_list: bool,
    },
    Error(Box<Status>),
}

/// The annotation on the BOOKMARK that ends a streaming list's initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// One watch line: an event, a Status (a server that fails a watch after its headers), or a
/// line that is not a watch event; `None` for a blank line.
pub fn decode_line(line: &[u8]) -> Option<Decoded> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    // One check of the whole line, then serde reads it as text: from bytes it would check each
    // string on its own, which profiled three times as slow.
    let line = match std::str::from_utf8(line) {
        Ok(line) => line,
        Err(_) => {
            let error = de::Error::custom("a watch line that is not UTF-8");
            return Some(Err(kube::Error::SerdeError(error)));
        }
    };
    Some(match serde_json::from_str::<Envelope>(line) {
        Ok(Envelope(line)) => Ok(line),
        Err(error) => match serde_json::from_str::<Status>(line) {
            Ok(status) => Err(kube::Error::Api(status.boxed())),
            Err(_) => Err(kube::Error::SerdeError(error)),
        },
    })
}

/// The counting view of an object and where the watch resumes after it, read from the fields
/// while they still borrow from the line.
fn object_line<S: AsRef<str>>(deleted: bool, fields: &Lenient<EventFields<S>>) -> WatchLine {
    let resource_version = fields
        .value()
        .and_then(|fields| fields.metadata.value())
        .and_then(|metadata| metadata.resource_version.value())
        .map(AsRef::as_ref)
        .filter(|version| !version.is_empty())
        .map(str::to_owned);
    WatchLine::Object {
        deleted,
        event: observe(fields),
        resource_version,
    }
}

impl From<Bookmark> for WatchLine {
    fn from(bookmark: Bookmark) -> Self {
        WatchLine::Bookmark {
            ends_list: bookmark
                .metadata
                .annotations
                .get(INITIAL_EVENTS_END)
                .is_some_and(|value| value == "true"),
            resource_version: bookmark.metadata.resource_version,
        }
    }
}

/// `{"type": …, "object": …}`, the object read as its type says and turned into its
/// [`WatchLine`] at once, so the decoded fields are never moved.
struct Envelope(WatchLine);

#[derive(Deserialize)]
struct Bookmark {
    metadata: BookmarkMetadata,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BookmarkMetadata {
    resource_version: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Clone, Copy)]
enum Kind {
    Applied,
    Deleted,
    Bookmark,
    Error,
}

impl Kind {
    fn parse<E: de::Error>(text: &str) -> Result<Self, E> {
        Ok(match text {
            "ADDED" | "MODIFIED" => Kind::Applied,
            "DELETED" => Kind::Deleted,
            "BOOKMARK" => Kind::Bookmark,
            "ERROR" => Kind::Error,
            other => {
                return Err(E::unknown_variant(
                    other,
                    &["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"],
                ));
            }
        })
    }

    fn read<'de, D: Deserializer<'de>>(self, object: D) -> Result<WatchLine, D::Error> {
        Ok(match self {
            Kind::Applied | Kind::Deleted => object_line(
                matches!(self, Kind::Deleted),
                &Lenient::<EventFields<Text<'de>>>::deserialize(object)?,
            ),
            Kind::Bookmark => Bookmark::deserialize(object)?.into(),
            Kind::Error => WatchLine::Error(Box::new(Status::deserialize(object)?)),
        })
    }
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EnvelopeVisitor;
        impl<'de> Visitor<'de> for EnvelopeVisitor {
            type Value = Envelope;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a watch event")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut kind = None;
                let mut line = None;
                // An object before its type (no API server writes one) is kept whole until
                // the type says how to read it.
                let mut early_object = None;
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    match key.as_ref() {
                        "type" => kind = Some(Kind::parse(&map.next_value::<Text<'de>>()?)?),
                        "object" => match kind {
                            Some(kind) => line = Some(map.next_value_seed(ReadAs(kind))?),
                            None => early_object = Some(map.next_value::<serde_json::Value>()?),
                        },
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let kind = kind.ok_or_else(|| de::Error::missing_field("type"))?;
                match (line, early_object) {
                    (Some(line), _) => Ok(Envelope(line)),
                    (None, Some(object)) => {
                        kind.read(object).map(Envelope).map_err(de::Error::custom)
                    }
                    (None, None) => Err(de::Error::missing_field("object")),
                }
            }
        }
        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

struct ReadAs(Kind);

impl<'de> de::DeserializeSeed<'de> for ReadAs {
    type Value = WatchLine;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.0.read(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(line: &str) -> Decoded {
        decode_line(line.as_bytes()).expect("not blank")
    }

    const OBJECT: &str = r#"{"kind":"Event","metadata":{"name":"a.1","namespace":"shop","uid":"u1","resourceVersion":"17"},"involvedObject":{"kind":"Pod","namespace":"shop"},"reason":"BackOff","count":3}"#;

    fn object(line: Decoded) -> (bool, Observation, Option<String>) {
        match line {
            Ok(WatchLine::Object {
                deleted,
                event,
                resource_version,
            }) => (deleted, event.unwrap(), resource_version),
            Ok(_) => panic!("not an object"),
            Err(error) => panic!("{error}"),
        }
    }

    #[test]
    fn an_object_reads_the_same_whichever_key_comes_first() {
        let (deleted, first, version) = object(decode(&format!(
            r#"{{"type":"MODIFIED","object":{OBJECT}}}"#
        )));
        assert!(!deleted);
        assert_eq!(version.as_deref(), Some("17"));
        assert_eq!((first.occurrences, first.text().reason), (3, "BackOff"));
        let (deleted, later, version) = object(decode(&format!(
            r#"{{"object":{OBJECT},"type":"DELETED"}}"#
        )));
        assert!(deleted);
        assert_eq!(version.as_deref(), Some("17"));
        assert_eq!(later, first);
    }

    #[test]
    fn bookmarks_errors_and_what_is_not_a_watch_event() {
        let end = decode(
            r#"{"type":"BOOKMARK","object":{"kind":"Event","metadata":{"resourceVersion":"99","annotations":{"k8s.io/initial-events-end":"true"}}}}"#,
        );
        assert!(
            matches!(end, Ok(WatchLine::Bookmark { ref resource_version, ends_list: true }) if resource_version == "99")
        );
        let plain =
            decode(r#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"100"}}}"#);
        assert!(matches!(
            plain,
            Ok(WatchLine::Bookmark {
                ends_list: false,
                ..
            })
        ));
        let gone = decode(
            r#"{"type":"ERROR","object":{"kind":"Status","status":"Failure","reason":"Expired","code":410}}"#,
        );
        assert!(matches!(gone, Ok(WatchLine::Error(status)) if status.code == 410));
        // An unknown type is an error (kube reads such a line as a Status, as before).
        assert!(decode(r#"{"type":"SOMETHING","object":{}}"#).is_err());
        assert!(matches!(
            decode("not json"),
            Err(kube::Error::SerdeError(_))
        ));
        assert!(matches!(
            decode(r#"{"kind":"Status","code":500,"message":"boom"}"#),
            Err(kube::Error::Api(_))
        ));
        assert!(decode_line(b"  \r").is_none());
    }
}
