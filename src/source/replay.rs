//! Replay: Events from a file or stdin, through the same signals as the watch.
//!
//! Reads what kubectl writes: `get events -o json` (a List), `-o yaml` (a List, or several
//! documents), and `get events -w -o json` (concatenated, pretty-printed objects, with or without
//! `--output-watch-events` wrappers), gzip-compressed or not, core/v1 and events.k8s.io/v1 alike.
//! A malformed object or an unparsable document is reported with its position and skipped;
//! reading resumes at the next object.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use serde::Deserialize;
use serde_json::Value;
use tracing::debug;

use super::{Delivery, Malformed, Signal, SlimEvent};
use crate::ledger::WatchId;

/// Replay feeds the ledger as one watch.
pub const REPLAY_WATCH: WatchId = 0;

/// A single JSON value larger than this is skipped rather than buffered.
const MAX_VALUE_BYTES: usize = 256 * 1024 * 1024;

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
                for value in JsonValues::new(self.reader) {
                    match value.map_err(read_error)? {
                        Split::Value { offset, bytes } => match serde_json::from_slice(&bytes) {
                            Ok(value) => emit_value(value, &format!("byte {offset}"), emit),
                            Err(error) => {
                                emit(unreadable(format!("byte {offset}"), error.to_string()))
                            }
                        },
                        Split::Garbage { offset, reason } => {
                            emit(unreadable(format!("byte {offset}"), reason))
                        }
                    }
                }
                Ok(())
            }
            InputFormat::Yaml => {
                let mut text = String::new();
                let mut reader = self.reader;
                reader.read_to_string(&mut text).map_err(read_error)?;
                for document in yaml_documents(&text) {
                    let position = format!("line {}", document.line);
                    match parse_yaml(document.text) {
                        Ok(Some(value)) => emit_value(value, &position, emit),
                        Ok(None) => {}
                        Err(reason) => emit(unreadable(position, reason)),
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
    let kind = object.get("kind").and_then(Value::as_str);
    let is_event = match kind {
        Some(kind) => kind == "Event",
        // Without a kind, an object that looks like an Event is taken as one.
        None => object.get("involvedObject").is_some() || object.get("regarding").is_some(),
    };
    if !is_event {
        debug!(
            position,
            kind = kind.unwrap_or("<none>"),
            "skipped an object that is not an Event"
        );
        return;
    }
    let event = SlimEvent::deserialize(object)
        .map_err(|error| Malformed {
            name: "<unparsable>".into(),
            reason: Cow::Owned(error.to_string()),
            position: None,
        })
        .and_then(SlimEvent::into_observation)
        .map_err(|mut malformed| {
            malformed.position = Some(position.to_owned());
            malformed
        });
    emit(Signal::Object {
        watch: REPLAY_WATCH,
        delivery,
        event,
    });
}

/// One top-level piece of a JSON stream.
#[derive(Debug, PartialEq, Eq)]
enum Split {
    Value { offset: u64, bytes: Vec<u8> },
    Garbage { offset: u64, reason: String },
}

/// Splits concatenated JSON values by tracking depth and strings, so a truncated or broken value
/// costs only itself: serde's stream deserializer cannot resume after an error. A `{` or `[` at
/// the start of a line while a value is open begins a new value, because kubectl prints nested
/// values indented and a string cannot contain a raw line break.
struct JsonValues<R> {
    reader: R,
    offset: u64,
    at_line_start: bool,
    done: bool,
}

impl<R: BufRead> JsonValues<R> {
    fn new(reader: R) -> Self {
        Self {
            reader,
            offset: 0,
            at_line_start: true,
            done: false,
        }
    }

    fn next_split(&mut self) -> io::Result<Option<Split>> {
        // Skip to the start of the next value.
        let start = loop {
            let buffer = self.reader.fill_buf()?;
            let Some(&byte) = buffer.first() else {
                return Ok(None);
            };
            if byte == b'{' || byte == b'[' {
                break self.offset;
            }
            let garbage_at = self.offset;
            let mut skipped = 0usize;
            let mut only_space = true;
            loop {
                let buffer = self.reader.fill_buf()?;
                let Some(&byte) = buffer.first() else { break };
                // After junk, only a value at the start of a line is trusted to be whole.
                if (byte == b'{' || byte == b'[') && (self.at_line_start || only_space) {
                    break;
                }
                only_space &= byte.is_ascii_whitespace();
                self.at_line_start = byte == b'\n';
                self.reader.consume(1);
                self.offset += 1;
                skipped += 1;
            }
            if !only_space {
                return Ok(Some(Split::Garbage {
                    offset: garbage_at,
                    reason: format!("{skipped} bytes that are not JSON"),
                }));
            }
        };
        let mut bytes = Vec::new();
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        let mut oversized = false;
        loop {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                return Ok(Some(truncated(start, "the input ends inside it")));
            }
            let mut used = 0;
            let mut finished = false;
            for &byte in buffer {
                if self.at_line_start && (byte == b'{' || byte == b'[') && !bytes.is_empty() {
                    // A new top-level value starts: the open one was cut short.
                    self.reader.consume(used);
                    self.offset += used as u64;
                    return Ok(Some(truncated(start, "a new value starts before it ends")));
                }
                used += 1;
                self.at_line_start = byte == b'\n';
                if !oversized {
                    bytes.push(byte);
                }
                if in_string {
                    match (escaped, byte) {
                        (true, _) => escaped = false,
                        (false, b'\\') => escaped = true,
                        (false, b'"') => in_string = false,
                        (false, b'\n') => in_string = false, // broken; resync on the next line
                        _ => {}
                    }
                    continue;
                }
                match byte {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            finished = true;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            self.reader.consume(used);
            self.offset += used as u64;
            if bytes.len() > MAX_VALUE_BYTES {
                oversized = true;
                bytes = Vec::new();
            }
            if finished {
                return Ok(Some(if oversized {
                    Split::Garbage {
                        offset: start,
                        reason: format!("a value larger than {MAX_VALUE_BYTES} bytes"),
                    }
                } else {
                    Split::Value {
                        offset: start,
                        bytes,
                    }
                }));
            }
        }
    }
}

fn truncated(offset: u64, why: &str) -> Split {
    Split::Garbage {
        offset,
        reason: format!("truncated JSON value: {why}"),
    }
}

impl<R: BufRead> Iterator for JsonValues<R> {
    type Item = io::Result<Split>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_split() {
            Ok(Some(split)) => Some(Ok(split)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}

struct YamlDocument<'a> {
    /// 1-based line where the document starts.
    line: usize,
    text: &'a str,
}

/// Splits a multi-document YAML text on `---` lines, so one bad document costs only itself.
fn yaml_documents(text: &str) -> Vec<YamlDocument<'_>> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut position = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") || trimmed == "..." {
            documents.push(YamlDocument {
                line: start_line,
                text: &text[start..position],
            });
            start = position + line.len();
            start_line = index + 2;
        }
        position += line.len();
    }
    documents.push(YamlDocument {
        line: start_line,
        text: &text[start..],
    });
    documents.retain(|document| {
        document
            .text
            .lines()
            .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
    });
    documents
}

/// Event dumps are large: serde-saphyr's default budget (250k nodes, 64 MiB of scalars) stops
/// well short of a busy cluster's `kubectl get events -A -o yaml`.
fn parse_yaml(text: &str) -> Result<Option<Value>, String> {
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
    serde_saphyr::from_str_with_options::<Option<Value>>(text, options).map_err(|error| {
        let message = error.to_string();
        message.lines().next().unwrap_or(&message).to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn splits(input: &str) -> Vec<Split> {
        JsonValues::new(input.as_bytes())
            .collect::<io::Result<Vec<_>>>()
            .unwrap()
    }

    fn value(offset: u64, text: &str) -> Split {
        Split::Value {
            offset,
            bytes: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn splits_concatenated_pretty_values() {
        let input = "{\n  \"a\": \"}{\\\"\",\n  \"b\": [1, {\"c\": 2}]\n}\n{\"d\": 3}\n";
        let got = splits(input);
        assert_eq!(
            got,
            vec![
                value(0, "{\n  \"a\": \"}{\\\"\",\n  \"b\": [1, {\"c\": 2}]\n}"),
                value(40, "{\"d\": 3}"),
            ]
        );
    }

    #[test]
    fn values_on_one_line_split_too() {
        assert_eq!(
            splits("{\"a\":1} {\"b\":2}{\"c\":3}"),
            vec![
                value(0, "{\"a\":1}"),
                value(8, "{\"b\":2}"),
                value(15, "{\"c\":3}")
            ]
        );
    }

    #[test]
    fn a_truncated_value_costs_only_itself() {
        let input = "{\"a\": {\"b\": 1\n{\"ok\": true}\n";
        let got = splits(input);
        assert!(
            matches!(&got[0], Split::Garbage { offset: 0, reason } if reason.contains("truncated"))
        );
        assert_eq!(got[1], value(14, "{\"ok\": true}"));
        let at_end = splits("{\"ok\": 1}\n{\"cut\": ");
        assert!(matches!(&at_end[1], Split::Garbage { offset: 10, .. }));
    }

    #[test]
    fn garbage_between_values_is_reported_and_skipped() {
        let got = splits("{\"a\":1}\n\u{1}\u{2}binary junk\n{\"b\":2}");
        assert_eq!(got.len(), 3);
        assert!(matches!(&got[1], Split::Garbage { offset: 7, .. }));
        assert_eq!(got[2], value(22, "{\"b\":2}"));
    }

    #[test]
    fn yaml_documents_split_on_separators_with_lines() {
        let docs = yaml_documents("# c\na: 1\n---\nb: 2\n--- \n\n---\nc: 3\n");
        let found: Vec<(usize, &str)> = docs.iter().map(|d| (d.line, d.text)).collect();
        assert_eq!(
            found,
            vec![(1, "# c\na: 1\n"), (4, "b: 2\n"), (8, "c: 3\n")]
        );
    }

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
