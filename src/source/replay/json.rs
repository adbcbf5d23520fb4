//! Splits a JSON replay input into the values that matter, holding at most one at a time.
//!
//! A `kubectl get events -o json` dump is one List of about 2 GB per million Events: its `items`
//! are handed out one by one as they are read, never the List. Concatenated values (`-w -o json`)
//! and the elements of a top-level array come out one by one too. The splitter tracks depth and
//! strings itself, because serde's stream deserializer cannot resume after an error: a truncated
//! or broken value costs only itself.

use std::io::{self, BufRead};

use memchr::memchr3;

/// A single value (an Event, a watch event) larger than this is skipped rather than buffered;
/// the API server refuses objects above 1.5 MiB, so only garbage comes near it.
pub const MAX_VALUE_BYTES: usize = 64 * 1024 * 1024;

/// One piece of a JSON stream, `offset` being where it starts in the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Split {
    /// A whole top-level value, or an element of a top-level array.
    Value {
        offset: u64,
        bytes: Vec<u8>,
    },
    /// An element of a List's `items`, read without the List around it.
    Item {
        offset: u64,
        bytes: Vec<u8>,
    },
    Garbage {
        offset: u64,
        reason: String,
    },
}

const INPUT_ENDS: &str = "the input ends inside it";

/// Bytes outside strings the splitter must look at; everything else is skipped in runs.
const STRUCTURAL: [bool; 256] = {
    let mut table = [false; 256];
    table[b'"' as usize] = true;
    table[b'{' as usize] = true;
    table[b'}' as usize] = true;
    table[b'[' as usize] = true;
    table[b']' as usize] = true;
    table[b'\n' as usize] = true;
    table
};

/// Where the splitter stands between values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Context {
    Top,
    /// Inside a top-level array.
    Array,
    /// Inside a List's `items` array.
    Items,
    /// After a List's `items`: the rest of the List, up to its closing brace, is skipped.
    ListTail {
        offset: u64,
    },
}

/// How a scan of one value ended.
enum Scanned {
    Whole(Vec<u8>),
    Oversized,
    /// Cut short: by the end of the input, or by a new value starting.
    Truncated(&'static str),
    /// The top-level object is a List: its `items` array has just been opened.
    ListItems,
}

pub struct JsonValues<R> {
    reader: R,
    /// Of the next unread byte.
    offset: u64,
    at_line_start: bool,
    context: Context,
    max_value_bytes: usize,
    done: bool,
}

impl<R: BufRead> JsonValues<R> {
    pub fn new(reader: R) -> Self {
        Self::with_limit(reader, MAX_VALUE_BYTES)
    }

    fn with_limit(reader: R, max_value_bytes: usize) -> Self {
        Self {
            reader,
            offset: 0,
            at_line_start: true,
            context: Context::Top,
            max_value_bytes,
            done: false,
        }
    }

    fn consume(&mut self, count: usize) {
        self.reader.consume(count);
        self.offset += count as u64;
    }

    fn next_split(&mut self) -> io::Result<Option<Split>> {
        loop {
            match self.context {
                Context::Top => {
                    let Some(opening) = self.skip_to_value()? else {
                        return Ok(None);
                    };
                    let opening = match opening {
                        Ok(byte) => byte,
                        Err(garbage) => return Ok(Some(garbage)),
                    };
                    if opening == b'[' {
                        self.consume(1);
                        self.at_line_start = false;
                        self.context = Context::Array;
                        continue;
                    }
                    let offset = self.offset;
                    return Ok(Some(match self.scan(0, true, true)? {
                        Scanned::ListItems => {
                            self.context = Context::Items;
                            continue;
                        }
                        scanned => value_split(offset, scanned, self.max_value_bytes, false),
                    }));
                }
                Context::Array | Context::Items => {
                    let item = self.context == Context::Items;
                    match self.next_element()? {
                        Element::Opens => {
                            let offset = self.offset;
                            let scanned = self.scan(0, true, false)?;
                            if matches!(scanned, Scanned::Truncated(INPUT_ENDS)) {
                                self.context = Context::Top;
                            }
                            return Ok(Some(value_split(
                                offset,
                                scanned,
                                self.max_value_bytes,
                                item,
                            )));
                        }
                        Element::Closed => {
                            self.context = if item {
                                Context::ListTail {
                                    offset: self.offset,
                                }
                            } else {
                                Context::Top
                            };
                        }
                        Element::InputEnds => {
                            self.context = Context::Top;
                            return Ok(Some(truncated(
                                self.offset,
                                "the input ends inside a list",
                            )));
                        }
                    }
                }
                Context::ListTail { offset } => {
                    self.context = Context::Top;
                    if let Scanned::Truncated(why) = self.scan(1, false, false)? {
                        return Ok(Some(truncated(offset, why)));
                    }
                }
            }
        }
    }

    /// Skips to the next top-level `{` or `[` (not consumed). Anything but whitespace before it
    /// is garbage, reported once; after junk, only a value at the start of a line (or after
    /// nothing but space) is trusted to be whole.
    fn skip_to_value(&mut self) -> io::Result<Option<Result<u8, Split>>> {
        let garbage_at = self.offset;
        let mut skipped = 0usize;
        let mut only_space = true;
        loop {
            let buffer = self.reader.fill_buf()?;
            let Some(&byte) = buffer.first() else {
                return Ok((!only_space).then(|| Err(junk(garbage_at, skipped))));
            };
            if (byte == b'{' || byte == b'[') && (self.at_line_start || only_space) {
                return Ok(Some(if only_space {
                    Ok(byte)
                } else {
                    Err(junk(garbage_at, skipped))
                }));
            }
            only_space &= byte.is_ascii_whitespace();
            self.at_line_start = byte == b'\n';
            self.consume(1);
            skipped += 1;
        }
    }

    /// Moves to the next element of an array (its `{` or `[` not consumed) or past the array's
    /// `]`. Scalars between them are skipped.
    fn next_element(&mut self) -> io::Result<Element> {
        let mut in_string = false;
        let mut escaped = false;
        loop {
            let buffer = self.reader.fill_buf()?;
            let Some(&byte) = buffer.first() else {
                return Ok(Element::InputEnds);
            };
            if in_string {
                match (escaped, byte) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"' | b'\n') => in_string = false,
                    _ => {}
                }
            } else {
                match byte {
                    b'{' | b'[' => return Ok(Element::Opens),
                    b']' => {
                        self.consume(1);
                        self.at_line_start = false;
                        return Ok(Element::Closed);
                    }
                    b'"' => in_string = true,
                    _ => {}
                }
            }
            self.at_line_start = byte == b'\n';
            self.consume(1);
        }
    }

    /// Reads one value from `depth` open brackets until they are all closed: a new value from
    /// its opening bracket (`depth` 0), or the rest of a List (`depth` 1). Collects its bytes if
    /// `collect`; with `find_items`, stops where a top-level object opens an `items` array.
    ///
    /// A `{` or `[` at the start of a line begins a new value (the open one was cut short),
    /// because kubectl prints nested values indented and a string cannot hold a raw line break
    /// -- unless this value already has a line starting at column 0, so it is not printed
    /// indented and the bracket may well be nested.
    fn scan(&mut self, mut depth: usize, collect: bool, find_items: bool) -> io::Result<Scanned> {
        let mut bytes = Vec::new();
        let mut oversized = false;
        let mut in_string = false;
        let mut escaped = false;
        let mut flat = false;
        let mut at_line_start = false;
        loop {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                self.at_line_start = at_line_start;
                return Ok(Scanned::Truncated(INPUT_ENDS));
            }
            let mut index = 0;
            let mut outcome = None;
            while index < buffer.len() {
                if in_string {
                    if escaped {
                        escaped = false;
                        index += 1;
                        continue;
                    }
                    match memchr3(b'"', b'\\', b'\n', &buffer[index..]) {
                        None => index = buffer.len(),
                        Some(found) => {
                            index += found;
                            match buffer[index] {
                                b'\\' => {
                                    escaped = true;
                                    index += 1;
                                }
                                b'"' => {
                                    in_string = false;
                                    index += 1;
                                }
                                // A broken string: resynchronise on the line break.
                                _ => in_string = false,
                            }
                        }
                    }
                    continue;
                }
                if at_line_start {
                    at_line_start = false;
                    let byte = buffer[index];
                    if (byte == b'{' || byte == b'[') && !flat {
                        outcome = Some(Stop::NewValue);
                        break;
                    }
                    flat |= !(byte.is_ascii_whitespace() || byte == b'}' || byte == b']');
                }
                while index < buffer.len() && !STRUCTURAL[buffer[index] as usize] {
                    index += 1;
                }
                let Some(&byte) = buffer.get(index) else {
                    break;
                };
                index += 1;
                match byte {
                    b'"' => in_string = true,
                    b'\n' => at_line_start = true,
                    b'{' | b'[' => {
                        depth += 1;
                        if find_items && depth == 2 && byte == b'[' {
                            bytes.extend_from_slice(&buffer[..index - 1]);
                            if names_items(&bytes) {
                                outcome = Some(Stop::ListItems);
                                break;
                            }
                            bytes.truncate(bytes.len() - (index - 1));
                        }
                    }
                    _ => {
                        // `}` or `]`
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            outcome = Some(Stop::Closed);
                            break;
                        }
                    }
                }
            }
            if collect && !oversized {
                bytes.extend_from_slice(&buffer[..index]);
                if bytes.len() > self.max_value_bytes {
                    oversized = true;
                    bytes = Vec::new();
                }
            }
            self.consume(index);
            if let Some(stop) = outcome {
                self.at_line_start = stop == Stop::NewValue;
                return Ok(match stop {
                    Stop::Closed if oversized => Scanned::Oversized,
                    Stop::Closed => Scanned::Whole(bytes),
                    Stop::NewValue => Scanned::Truncated("a new value starts before it ends"),
                    Stop::ListItems => Scanned::ListItems,
                });
            }
        }
    }
}

/// Why a scan stopped inside a buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Closed,
    NewValue,
    ListItems,
}

enum Element {
    Opens,
    Closed,
    InputEnds,
}

/// Whether the text before an opening `[` ends with the key `"items":`.
fn names_items(before: &[u8]) -> bool {
    let trimmed = before.trim_ascii_end();
    let Some(key) = trimmed.strip_suffix(b":") else {
        return false;
    };
    let key = key.trim_ascii_end();
    key.ends_with(b"\"items\"") && !key[..key.len() - 7].ends_with(b"\\")
}

fn value_split(offset: u64, scanned: Scanned, limit: usize, item: bool) -> Split {
    match scanned {
        Scanned::Whole(bytes) if item => Split::Item { offset, bytes },
        Scanned::Whole(bytes) => Split::Value { offset, bytes },
        Scanned::Oversized => Split::Garbage {
            offset,
            reason: format!("a value larger than {limit} bytes"),
        },
        Scanned::Truncated(why) => truncated(offset, why),
        // Only asked for at the top level, where it is handled before this.
        Scanned::ListItems => truncated(offset, "a List inside a value"),
    }
}

fn junk(offset: u64, skipped: usize) -> Split {
    Split::Garbage {
        offset,
        reason: format!("{skipped} bytes that are not JSON"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn splits(input: &str) -> Vec<Split> {
        splits_with(input, MAX_VALUE_BYTES)
    }

    /// Also checks that the result does not depend on where the reader's buffers end.
    fn splits_with(input: &str, limit: usize) -> Vec<Split> {
        let whole = JsonValues::with_limit(input.as_bytes(), limit)
            .collect::<io::Result<Vec<_>>>()
            .unwrap();
        for capacity in [1, 2, 3, 7] {
            let reader = io::BufReader::with_capacity(capacity, input.as_bytes());
            let cut = JsonValues::with_limit(reader, limit)
                .collect::<io::Result<Vec<_>>>()
                .unwrap();
            assert_eq!(cut, whole, "buffers of {capacity} bytes");
        }
        whole
    }

    fn item(offset: u64, text: &str) -> Split {
        Split::Item {
            offset,
            bytes: text.as_bytes().to_vec(),
        }
    }

    fn garbage(split: &Split) -> (u64, &str) {
        match split {
            Split::Garbage { offset, reason } => (*offset, reason),
            other => panic!("not garbage: {other:?}"),
        }
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

    /// How `kubectl get events -o json` prints a List (four-space indent, keys sorted).
    const KUBECTL_LIST: &str = "{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n        {\n            \"kind\": \"Event\",\n            \"message\": \"a ] and a { in \\\"text\\\"\"\n        },\n        {\n            \"kind\": \"Event\",\n            \"related\": [\n                {\"x\": 1}\n            ]\n        }\n    ],\n    \"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}\n{\"after\": true}\n";

    #[test]
    fn a_list_gives_its_items_one_by_one_and_then_what_follows_it() {
        let got = splits(KUBECTL_LIST);
        let first = KUBECTL_LIST.find("{\n            \"kind").unwrap();
        let second = KUBECTL_LIST[first + 1..]
            .find("{\n            \"kind")
            .unwrap()
            + first
            + 1;
        let first_end = KUBECTL_LIST[first..].find("\n        }").unwrap() + first + 10;
        let second_end = KUBECTL_LIST[second..].find("\n        }").unwrap() + second + 10;
        let after = KUBECTL_LIST.find("{\"after").unwrap();
        assert_eq!(
            got,
            vec![
                item(first as u64, &KUBECTL_LIST[first..first_end]),
                item(second as u64, &KUBECTL_LIST[second..second_end]),
                value(after as u64, "{\"after\": true}"),
            ]
        );
    }

    #[test]
    fn a_list_far_larger_than_the_value_limit_still_streams() {
        let items: Vec<String> = (0..200)
            .map(|n| format!("        {{\"kind\": \"Event\", \"n\": {n}}}"))
            .collect();
        let list = format!(
            "{{\n    \"items\": [\n{}\n    ],\n    \"kind\": \"List\"\n}}\n",
            items.join(",\n")
        );
        assert!(list.len() > 20 * 64);
        let got = splits_with(&list, 64);
        assert_eq!(got.len(), 200, "{:?}", got.last());
        assert!(got.iter().all(|split| matches!(split, Split::Item { .. })));
    }

    #[test]
    fn a_list_whose_items_start_at_column_0_is_not_cut() {
        let list =
            "{\"kind\":\"List\",\"items\":[\n{\"a\":1},\n{\"b\":[\n2]}\n],\"metadata\":{}}\n";
        assert_eq!(
            splits(list),
            vec![item(25, "{\"a\":1}"), item(34, "{\"b\":[\n2]}")]
        );
        assert_eq!(
            splits("{\"items\": []}\n{\"x\": 1}"),
            vec![value(14, "{\"x\": 1}")]
        );
    }

    #[test]
    fn a_value_printed_at_column_0_keeps_its_nested_values() {
        let flat = "{\n\"a\": 1,\n\"b\": [\n{\"c\": 2}\n]\n}\n{\"d\": 3}";
        assert_eq!(
            splits(flat),
            vec![value(0, &flat[..29]), value(30, "{\"d\": 3}")]
        );
    }

    #[test]
    fn after_an_oversized_value_a_new_value_is_still_recognised() {
        let cut_short = "{\"a\": \"0123456789012345678901234567890\",\n{\"ok\": true}\n";
        let got = splits_with(cut_short, 16);
        assert!(garbage(&got[0]).1.contains("truncated"), "{got:?}");
        assert_eq!(got[1], value(41, "{\"ok\": true}"));
        let whole = "{\"a\": \"0123456789012345678901234567890\"}\n{\"ok\": true}\n";
        let got = splits_with(whole, 16);
        assert_eq!(garbage(&got[0]), (0, "a value larger than 16 bytes"));
        assert_eq!(got[1], value(41, "{\"ok\": true}"));
    }

    #[test]
    fn a_top_level_array_gives_its_elements_one_by_one() {
        assert_eq!(
            splits("[\n  {\"a\": 1},\n  \"x]\", 3,\n  {\"b\": [2]}\n]\n{\"c\": 3}"),
            vec![
                value(4, "{\"a\": 1}"),
                value(27, "{\"b\": [2]}"),
                value(40, "{\"c\": 3}")
            ]
        );
    }

    #[test]
    fn a_list_cut_short_keeps_the_items_before_the_cut() {
        let got = splits("{\"items\": [\n  {\"a\": 1},\n  {\"b\": ");
        assert_eq!(got[0], item(14, "{\"a\": 1}"));
        assert_eq!(
            garbage(&got[1]),
            (26, "truncated JSON value: the input ends inside it")
        );
        assert_eq!(got.len(), 2);
    }

    proptest::proptest! {
        /// Whatever the input, the splitter does not panic, does not depend on where buffers end
        /// (checked by `splits_with`), and hands out values exactly as they stand in the input.
        #[test]
        fn any_input_splits_into_pieces_of_itself(
            input in "([{}\\[\\]\",:\\\\\n ]|items|a|1){0,80}",
        ) {
            for split in splits_with(&input, 24) {
                if let Split::Value { offset, bytes } | Split::Item { offset, bytes } = split {
                    let start = offset as usize;
                    proptest::prop_assert_eq!(&input.as_bytes()[start..start + bytes.len()], &bytes[..]);
                }
            }
        }
    }
}
