//! Splits a YAML replay input into documents and List entries, reading line by line and
//! holding at most one of them at a time.
//!
//! `kubectl get events -o yaml` writes one List whose `items:` entries start with `- ` at
//! column 0 (other printers indent them); each entry is handed out as it is read. Several
//! documents (`---`, as `-w -o yaml` writes them) are split too, so one bad document costs only
//! itself.

use std::collections::VecDeque;
use std::io::{self, BufRead};

use super::json::MAX_VALUE_BYTES;

/// One piece of a YAML input; `line` (1-based) is where it starts.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// A whole document other than a List's entries.
    Document {
        line: usize,
        text: String,
    },
    /// One entry of a List's `items` (or of a top-level sequence), as a sequence of one.
    Item {
        line: usize,
        text: String,
    },
    Garbage {
        line: usize,
        reason: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Document,
    /// Inside a sequence of entries: `indent` is where their `- ` stands, once seen.
    Entries {
        indent: Option<usize>,
    },
}

/// Lines gathered for one piece.
#[derive(Default)]
struct Gathered {
    line: usize,
    text: String,
    has_content: bool,
    oversized: bool,
}

impl Gathered {
    fn starting_at(line: usize) -> Self {
        Self {
            line,
            ..Self::default()
        }
    }

    fn push(&mut self, line: &str, limit: usize) {
        let trimmed = line.trim();
        self.has_content |= !trimmed.is_empty() && !trimmed.starts_with('#');
        if self.oversized {
            return;
        }
        if self.text.len() + line.len() > limit {
            self.oversized = true;
            self.text = String::new();
        } else {
            self.text.push_str(line);
        }
    }
}

pub struct YamlPieces<R> {
    reader: R,
    line_buffer: Vec<u8>,
    lines_read: usize,
    mode: Mode,
    document: Gathered,
    entry: Option<Gathered>,
    ready: VecDeque<Piece>,
    max_bytes: usize,
    done: bool,
}

impl<R: BufRead> YamlPieces<R> {
    pub fn new(reader: R) -> Self {
        Self::with_limit(reader, MAX_VALUE_BYTES)
    }

    fn with_limit(reader: R, max_bytes: usize) -> Self {
        Self {
            reader,
            line_buffer: Vec::new(),
            lines_read: 0,
            mode: Mode::Document,
            document: Gathered::starting_at(1),
            entry: None,
            ready: VecDeque::new(),
            max_bytes,
            done: false,
        }
    }

    fn take_line(&mut self) -> io::Result<Option<(usize, String)>> {
        self.line_buffer.clear();
        if self.reader.read_until(b'\n', &mut self.line_buffer)? == 0 {
            return Ok(None);
        }
        self.lines_read += 1;
        let text = String::from_utf8_lossy(&self.line_buffer).into_owned();
        Ok(Some((self.lines_read, text)))
    }

    fn finish_entry(&mut self) {
        let Some(entry) = self.entry.take() else {
            return;
        };
        self.ready.push_back(if entry.oversized {
            too_large(entry.line, "an entry", self.max_bytes)
        } else {
            Piece::Item {
                line: entry.line,
                text: entry.text,
            }
        });
    }

    fn finish_document(&mut self, next_line: usize) {
        let document = std::mem::replace(&mut self.document, Gathered::starting_at(next_line));
        if !document.has_content {
            return;
        }
        self.ready.push_back(if document.oversized {
            too_large(document.line, "a document", self.max_bytes)
        } else {
            Piece::Document {
                line: document.line,
                text: document.text,
            }
        });
    }

    fn start_entry(&mut self, number: usize, line: &str, indent: usize) {
        let mut entry = Gathered::starting_at(number);
        entry.push(&line[indent..], self.max_bytes);
        self.entry = Some(entry);
    }

    fn take(&mut self, number: usize, line: &str) {
        let trimmed_end = line.trim_end();
        if trimmed_end == "---" || trimmed_end.starts_with("--- ") || trimmed_end == "..." {
            self.finish_entry();
            self.finish_document(number + 1);
            self.mode = Mode::Document;
            return;
        }
        let content = line.trim_start_matches(' ');
        let indent = line.len() - content.len();
        let starts_entry = content.trim_end() == "-" || content.starts_with("- ");
        if let Mode::Entries { indent: entries } = self.mode {
            // A comment deeper than the entries' dash may be a block scalar's text.
            let comment = content.starts_with('#') && entries.is_none_or(|at| indent <= at);
            match entries {
                _ if content.trim().is_empty() || comment => {
                    if let Some(entry) = &mut self.entry {
                        entry.push("\n", self.max_bytes);
                    }
                    return;
                }
                None if starts_entry => {
                    self.mode = Mode::Entries {
                        indent: Some(indent),
                    };
                    self.start_entry(number, line, indent);
                    return;
                }
                Some(at) if indent == at && starts_entry => {
                    self.finish_entry();
                    self.start_entry(number, line, indent);
                    return;
                }
                Some(at) if indent > at => {
                    if let Some(entry) = &mut self.entry {
                        entry.push(&line[at..], self.max_bytes);
                    }
                    return;
                }
                // Anything else ends the entries; the line belongs to the rest of the document.
                _ => {
                    self.finish_entry();
                    self.mode = Mode::Document;
                }
            }
        }
        let opens_items = indent == 0
            && content
                .strip_prefix("items:")
                .is_some_and(|rest| rest.trim().is_empty() || rest.trim_start().starts_with('#'));
        if opens_items {
            // What the List says besides its items (kind, metadata) does not count.
            self.document = Gathered::starting_at(number + 1);
            self.mode = Mode::Entries { indent: None };
        } else if indent == 0 && starts_entry && !self.document.has_content {
            self.mode = Mode::Entries { indent: Some(0) };
            self.start_entry(number, line, 0);
        } else {
            self.document.push(line, self.max_bytes);
        }
    }
}

fn too_large(line: usize, what: &str, limit: usize) -> Piece {
    Piece::Garbage {
        line,
        reason: format!("{what} larger than {limit} bytes"),
    }
}

impl<R: BufRead> Iterator for YamlPieces<R> {
    type Item = io::Result<Piece>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(piece) = self.ready.pop_front() {
                return Some(Ok(piece));
            }
            if self.done {
                return None;
            }
            match self.take_line() {
                Ok(Some((number, line))) => self.take(number, &line),
                Ok(None) => {
                    self.done = true;
                    self.finish_entry();
                    self.finish_document(self.lines_read + 1);
                }
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces_with(text: &str, limit: usize) -> Vec<Piece> {
        YamlPieces::with_limit(text.as_bytes(), limit)
            .collect::<io::Result<Vec<_>>>()
            .unwrap()
    }

    fn pieces(text: &str) -> Vec<Piece> {
        pieces_with(text, MAX_VALUE_BYTES)
    }

    fn item(line: usize, text: &str) -> Piece {
        Piece::Item {
            line,
            text: text.into(),
        }
    }

    fn document(line: usize, text: &str) -> Piece {
        Piece::Document {
            line,
            text: text.into(),
        }
    }

    /// How `kubectl get events -o yaml` prints a List: entries at column 0.
    const KUBECTL_LIST: &str = "\
apiVersion: v1
items:
- apiVersion: v1
  kind: Event
  message: |
    # not a comment: the message's text

    its second paragraph
  metadata:
    name: a
# a comment between entries
- kind: Event
  metadata:
    name: b
kind: List
metadata:
  resourceVersion: \"\"
";

    #[test]
    fn a_kubectl_list_gives_its_entries_one_by_one() {
        assert_eq!(
            pieces(KUBECTL_LIST),
            vec![
                item(
                    3,
                    "- apiVersion: v1\n  kind: Event\n  message: |\n    # not a comment: the message's text\n\n    its second paragraph\n  metadata:\n    name: a\n\n"
                ),
                item(12, "- kind: Event\n  metadata:\n    name: b\n"),
                document(3, "kind: List\nmetadata:\n  resourceVersion: \"\"\n"),
            ]
        );
    }

    #[test]
    fn indented_entries_and_a_top_level_sequence_are_entries_too() {
        assert_eq!(
            pieces("kind: List\nitems:\n  - a: 1\n    b: 2\n  - a: 3\n"),
            vec![item(3, "- a: 1\n  b: 2\n"), item(5, "- a: 3\n")]
        );
        assert_eq!(
            pieces("# dump\n- a: 1\n- a: 2\n"),
            vec![item(2, "- a: 1\n"), item(3, "- a: 2\n")]
        );
    }

    #[test]
    fn documents_split_on_separators_with_their_lines() {
        assert_eq!(
            pieces("# c\na: 1\n---\nb: 2\n--- \n\n---\nitems:\n- c: 3\n...\nd: 4\n"),
            vec![
                document(1, "# c\na: 1\n"),
                document(4, "b: 2\n"),
                item(9, "- c: 3\n"),
                document(11, "d: 4\n"),
            ]
        );
    }

    #[test]
    fn an_entry_too_large_costs_only_itself() {
        let text = "items:\n- a: 1\n  b: 0123456789012345678901234567890123456789\n- a: 2\n";
        assert_eq!(
            pieces_with(text, 32),
            vec![
                Piece::Garbage {
                    line: 2,
                    reason: "an entry larger than 32 bytes".into()
                },
                item(4, "- a: 2\n"),
            ]
        );
    }

    proptest::proptest! {
        /// Whatever the input, no panic, and every piece starts on a line the input has.
        #[test]
        fn any_input_splits_without_panic(input in "(- |  |items:|---|#|a: 1|\n){0,60}") {
            let lines = input.lines().count() + 1;
            for piece in pieces_with(&input, 16) {
                let (Piece::Document { line, .. } | Piece::Item { line, .. } | Piece::Garbage { line, .. }) = piece;
                proptest::prop_assert!((1..=lines).contains(&line), "line {} of {}", line, lines);
            }
        }
    }
}
