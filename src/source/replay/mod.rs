//! Replay: Events from a file or stdin, through the same signals as the watch.
//!
//! Reads what kubectl writes: `get events -o json` (a List), `-o yaml` (a List, or several
//! documents), and `get events -w -o json` (concatenated, pretty-printed objects, with or without
//! `--output-watch-events` wrappers), gzip-compressed or not, core/v1 and events.k8s.io/v1 alike.
//! A malformed object or an unparsable document is reported with its position and skipped;
//! reading resumes at the next object. A List is read one item at a time (`json`, `yaml`), so
//! a dump of a million Events replays in the memory the counters need.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use serde::Deserialize;
use serde_json::Value;
use tracing::debug;

use super::event::{EventFields, Lenient, Text, is_event, observe};
use super::{Delivery, Malformed, Signal};
use crate::ledger::WatchId;
use json::{JsonValues, Split};
use yaml::{Piece, YamlPieces};

mod json;
mod yaml;

/// Replay feeds the ledger as one watch.
pub const REPLAY_WATCH: WatchId = 0;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} is neither JSON nor YAML ({reason})")]
    NotJsonOrYaml { path: String, reason: String },
    #[error("reading {path} failed: {source}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// An opened replay input, its format already recognised.
pub struct ReplayInput {
    name: String,
    reader: Box<dyn BufRead + Send>,
    format: InputFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InputFormat {
    Json,
    Yaml,
    Empty,
}

impl ReplayInput {
    /// Opens `path` (`-` is stdin), unwraps gzip and recognises the format, so a bad file fails
    /// before anything starts.
    pub fn open(path: &Path) -> Result<Self, ReplayError> {
        let name = path.display().to_string();
        let raw: Box<dyn Read + Send> = if name == "-" {
            Box::new(io::stdin())
        } else {
            Box::new(File::open(path).map_err(|source| ReplayError::Open {
                path: name.clone(),
                source,
            })?)
        };
        Self::from_reader(name, raw)
    }

    pub fn from_reader(name: String, raw: Box<dyn Read + Send>) -> Result<Self, ReplayError> {
        let read_error = |source| ReplayError::Read {
            path: name.clone(),
            source,
        };
        let mut buffered = BufReader::with_capacity(64 * 1024, raw);
        let gzip = buffered
            .fill_buf()
            .map_err(read_error)?
            .starts_with(&[0x1f, 0x8b]);
        let mut reader: Box<dyn BufRead + Send> = if gzip {
            Box::new(BufReader::with_capacity(
                64 * 1024,
                MultiGzDecoder::new(buffered),
            ))
        } else {
            Box::new(buffered)
        };
        let format = sniff(&mut reader).map_err(|error| match error {
            Sniffed::Io(source) => ReplayError::Read {
                path: name.clone(),
                source,
            },
            Sniffed::Neither(reason) => ReplayError::NotJsonOrYaml {
                path: name.clone(),
                reason,
            },
        })?;
        Ok(Self {
            name,
            reader,
            format,
        })
    }

    /// Reads the whole input, reporting every signal to `emit`. The replay counts as one watch
    /// whose list is complete from the start: what follows is history to count, and a later copy
    /// of the same Event (two dumps, a watch stream) is diffed like any update.
    pub fn run(self, emit: &mut dyn FnMut(Signal)) -> Result<(), ReplayError> {
        emit(Signal::ListStarted(REPLAY_WATCH));
        emit(Signal::ListDone(REPLAY_WATCH));
        let name = self.name;
        let read_error = |source| ReplayError::Read {
            path: name.clone(),
            source,
        };
        match self.format {
            InputFormat::Empty => Ok(()),
            InputFormat::Json => {
                for split in JsonValues::new(self.reader) {
                    match split.map_err(read_error)? {
                        Split::Value { offset, bytes } => {
                            let position = format!("byte {offset}");
                            match serde_json::from_slice(&bytes) {
                                Ok(value) => emit_value(value, &position, emit),
                                Err(error) => emit(unreadable(position, error.to_string())),
                            }
                        }
                        Split::Item { offset, bytes } => {
                            let position = format!("byte {offset}");
                            match serde_json::from_slice::<Lenient<EventFields<Text>>>(&bytes) {
                                Ok(event) => emit_event(&event, Delivery::Applied, &position, emit),
                                Err(error) => emit(unreadable(position, error.to_string())),
                            }
                        }
                        Split::Garbage { offset, reason } => {
                            emit(unreadable(format!("byte {offset}"), reason))
                        }
                    }
                }
                Ok(())
            }
            InputFormat::Yaml => {
                for piece in YamlPieces::new(self.reader) {
                    match piece.map_err(read_error)? {
                        Piece::Document { line, text } => {
                            let position = format!("line {line}");
                            match parse_yaml::<Option<Value>>(&text) {
                                Ok(Some(value)) => emit_value(value, &position, emit),
                                Ok(None) => {}
                                Err(reason) => emit(unreadable(position, reason)),
                            }
                        }
                        Piece::Item { line, text } => {
                            let position = format!("line {line}");
                            match parse_yaml::<Vec<Lenient<EventFields<String>>>>(&text) {
                                Ok(events) => {
                                    for event in &events {
                                        emit_event(event, Delivery::Applied, &position, emit);
                                    }
                                }
                                Err(reason) => emit(unreadable(position, reason)),
                            }
                        }
                        Piece::Garbage { line, reason } => {
                            emit(unreadable(format!("line {line}"), reason))
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

fn unreadable(position: String, reason: String) -> Signal {
    Signal::Object {
        watch: REPLAY_WATCH,
        delivery: Delivery::Applied,
        event: Err(Malformed {
            name: "<unparsable>".into(),
            reason: Cow::Owned(reason),
            position: Some(position),
        }),
    }
}

enum Sniffed {
    Io(io::Error),
    Neither(String),
}

/// JSON starts with `{` or `[`; anything else must look like YAML text.
fn sniff(reader: &mut Box<dyn BufRead + Send>) -> Result<InputFormat, Sniffed> {
    loop {
        let buffer = reader.fill_buf().map_err(Sniffed::Io)?;
        let Some(&first) = buffer.first() else {
            return Ok(InputFormat::Empty);
        };
        if first.is_ascii_whitespace() {
            let skip = buffer
                .iter()
                .take_while(|byte| byte.is_ascii_whitespace())
                .count();
            reader.consume(skip);
            continue;
        }
        return match first {
            b'{' | b'[' => Ok(InputFormat::Json),
            _ => {
                let head = &buffer[..buffer.len().min(4096)];
                let text = match std::str::from_utf8(head) {
                    Ok(text) => text,
                    // The 4 KiB cut may split a character; what precedes it must be valid.
                    Err(error) if error.error_len().is_none() => {
                        std::str::from_utf8(&head[..error.valid_up_to()]).unwrap_or_default()
                    }
                    Err(_) => return Err(Sniffed::Neither("binary data".into())),
                };
                if text.contains('\0') {
                    return Err(Sniffed::Neither("binary data".into()));
                }
                let first_line = text
                    .lines()
                    .map(str::trim)
                    .find(|line| !line.is_empty() && !line.starts_with('#'))
                    .unwrap_or("");
                let yaml_like = first_line == "---"
                    || first_line.starts_with("- ")
                    || first_line
                        .split_once(':')
                        .is_some_and(|(key, _)| !key.is_empty() && !key.contains(' '));
                if yaml_like {
                    Ok(InputFormat::Yaml)
                } else {
                    Err(Sniffed::Neither(format!(
                        "it starts with {:?}",
                        first_line.chars().take(40).collect::<String>()
                    )))
                }
            }
        };
    }
}

/// What the object found at `position` means for the counters.
fn emit_value(value: Value, position: &str, emit: &mut dyn FnMut(Signal)) {
    match value {
        Value::Array(items) => {
            for item in items {
                emit_value(item, position, emit);
            }
        }
        Value::Object(mut object) => {
            if let Some(Value::Array(items)) = object.remove("items") {
                for item in items {
                    emit_object(item, Delivery::Applied, position, emit);
                }
                return;
            }
            let wrapper_type = object
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let (Some(kind), true) = (wrapper_type.as_deref(), object.contains_key("object")) {
                let delivery = match kind {
                    "ADDED" | "MODIFIED" => Delivery::Applied,
                    "DELETED" => Delivery::Deleted,
                    other => {
                        debug!(
                            position,
                            watch_event = other,
                            "skipped a watch event without an Event"
                        );
                        return;
                    }
                };
                let inner = object.remove("object").unwrap_or(Value::Null);
                emit_object(inner, delivery, position, emit);
                return;
            }
            emit_object(Value::Object(object), Delivery::Applied, position, emit);
        }
        other => debug!(position, value = %other, "skipped a value that is not an object"),
    }
}

fn emit_object(object: Value, delivery: Delivery, position: &str, emit: &mut dyn FnMut(Signal)) {
    match Lenient::<EventFields<String>>::deserialize(object) {
        Ok(event) => emit_event(&event, delivery, position, emit),
        Err(error) => emit(unreadable(position.to_owned(), error.to_string())),
    }
}

fn emit_event<S: AsRef<str>>(
    event: &Lenient<EventFields<S>>,
    delivery: Delivery,
    position: &str,
    emit: &mut dyn FnMut(Signal),
) {
    if !is_event(event) {
        debug!(position, "skipped an object that is not an Event");
        return;
    }
    let event = observe(event).map_err(|mut malformed| {
        malformed.position = Some(position.to_owned());
        malformed
    });
    emit(Signal::Object {
        watch: REPLAY_WATCH,
        delivery,
        event,
    });
}

/// Event dumps are large: serde-saphyr's default budget (250k nodes, 64 MiB of scalars) stops
/// well short of a busy cluster's `kubectl get events -A -o yaml`.
fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    // Sized by the input itself; the alias and anchor limits that stop "billion laughs" stay.
    const HUGE: usize = 1 << 40;
    let mut budget = serde_saphyr::Budget::default();
    budget.max_reader_input_bytes = None;
    budget.max_events = HUGE;
    budget.max_nodes = HUGE;
    budget.max_total_scalar_bytes = HUGE;
    budget.max_documents = HUGE;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    serde_saphyr::from_str_with_options::<T>(text, options).map_err(|error| {
        let message = error.to_string();
        message.lines().next().unwrap_or(&message).to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_recognises_json_yaml_empty_and_neither() {
        let format = |text: &'static [u8]| {
            ReplayInput::from_reader("t".into(), Box::new(text)).map(|input| input.format)
        };
        assert_eq!(format(b"  \n{\"a\":1}").unwrap(), InputFormat::Json);
        assert_eq!(format(b"[]").unwrap(), InputFormat::Json);
        assert_eq!(
            format(b"apiVersion: v1\nkind: List\n").unwrap(),
            InputFormat::Yaml
        );
        assert_eq!(
            format(b"# dump\n---\nkind: Event\n").unwrap(),
            InputFormat::Yaml
        );
        assert_eq!(format(b"").unwrap(), InputFormat::Empty);
        assert_eq!(format(b"\n\n").unwrap(), InputFormat::Empty);
        let neither = format(b"\x00\x01\x02\xff\xfe").err().unwrap().to_string();
        assert!(neither.contains("neither JSON nor YAML"), "{neither}");
        assert!(format(b"hello world, not a dump").is_err());
    }
}
