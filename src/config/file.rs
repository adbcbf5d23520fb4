//! `--config.file`: a YAML map whose keys are the flags' long names. The keys are not declared
//! here: each one is looked up among the clap command's arguments and becomes the flag it names,
//! so a new flag is settable from the file the moment it exists, with the same parsing.

use std::ffi::OsString;
use std::fmt;
use std::path::Path;

use clap::{ArgAction, Command};
use regex::Regex;
use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::{ConfigError, regex_error};
use crate::classify;

/// The file's settings in the order written, and its `classes:`.
#[derive(Debug, Default)]
pub(super) struct FileSettings {
    settings: Vec<Setting>,
    pub classes: Vec<ClassRuleSetting>,
}

#[derive(Debug)]
struct Setting {
    key: String,
    line: u64,
    value: Value,
}

/// What YAML can say for a flag: a switch, one value or several.
#[derive(Debug)]
enum Value {
    Switch(bool),
    One(String),
    Many(Vec<String>),
    /// `key:` with nothing after it: as if the key were absent.
    Nothing,
}

/// One entry of `classes:`: Events of `reason` whose message matches `regex` get `class`
/// (`$1` or `${name}` take a group of the match).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClassRuleSetting {
    reason: String,
    regex: String,
    class: String,
}

/// The one key that is not a flag: rules are lists of three fields.
const CLASSES: &str = "classes";

impl FileSettings {
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.display().to_string(),
            source,
        })?;
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_saphyr::from_str(&text).map_err(|error| {
            let line = error.location().map(|location| location.line());
            ConfigError::File {
                path: path.display().to_string(),
                reason: explain(&error.to_string(), &text, line),
            }
        })
    }

    /// The command-line arguments the file stands for, leaving out every flag `given` says the
    /// command line already has (flags win). Each setting is parsed on its own first, so a bad
    /// value is reported with its key and line rather than as clap's multi-line usage error.
    pub fn arguments(
        &self,
        path: &Path,
        command: &Command,
        given: impl Fn(&clap::Id) -> bool,
    ) -> Result<Vec<OsString>, ConfigError> {
        let mut arguments = Vec::new();
        for setting in &self.settings {
            let refuse = |reason: String| ConfigError::File {
                path: path.display().to_string(),
                reason: format!("key {} (line {}): {reason}", setting.key, setting.line),
            };
            let arg = command
                .get_arguments()
                .find(|arg| arg.get_long() == Some(setting.key.as_str()))
                .ok_or_else(|| refuse("unknown key: not a flag of kube-event-metrics".into()))?;
            if arg.get_id() == "config_file" {
                return Err(refuse("a config file cannot name another".into()));
            }
            let flag = format!("--{}", setting.key);
            let these: Vec<OsString> = match (arg.get_action(), &setting.value) {
                (_, Value::Nothing) => continue,
                (ArgAction::SetTrue, Value::Switch(on)) => {
                    if *on {
                        vec![flag.into()]
                    } else {
                        Vec::new()
                    }
                }
                (ArgAction::SetTrue, _) => return Err(refuse("expected true or false".into())),
                (ArgAction::Append, Value::Many(values)) => values
                    .iter()
                    .map(|value| format!("{flag}={value}").into())
                    .collect(),
                (_, Value::Many(_)) => return Err(refuse("takes one value, not a list".into())),
                (_, Value::One(value)) => vec![format!("{flag}={value}").into()],
                (_, Value::Switch(on)) => vec![format!("{flag}={on}").into()],
            };
            let alone = std::iter::once(OsString::from(command.get_name())).chain(these.clone());
            if let Err(error) = command.clone().try_get_matches_from(alone) {
                return Err(refuse(clap_reason(&error)));
            }
            if !given(arg.get_id()) {
                arguments.extend(these);
            }
        }
        Ok(arguments)
    }
}

/// clap's first line without its `error: ` (the rest is usage and a pointer to `--help`).
fn clap_reason(error: &clap::Error) -> String {
    let text = error.to_string();
    let first = text.lines().next().unwrap_or("invalid value");
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

impl<'de> Deserialize<'de> for FileSettings {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Settings;
        impl<'de> Visitor<'de> for Settings {
            type Value = FileSettings;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of flag names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileSettings, A::Error> {
                let mut file = FileSettings::default();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    if key.value == CLASSES {
                        file.classes = map.next_value()?;
                        continue;
                    }
                    // serde-saphyr refuses a key given twice before we see it.
                    file.settings.push(Setting {
                        line: key.referenced.line(),
                        key: key.value,
                        value: map.next_value()?,
                    });
                }
                Ok(file)
            }
        }
        deserializer.deserialize_map(Settings)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AnyValue;
        impl<'de> Visitor<'de> for AnyValue {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_bool<E>(self, on: bool) -> Result<Value, E> {
                Ok(Value::Switch(on))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
                Ok(Value::One(n.to_string()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
                Ok(Value::One(n.to_string()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
                Ok(Value::One(n.to_string()))
            }
            fn visit_str<E>(self, text: &str) -> Result<Value, E> {
                Ok(Value::One(text.to_owned()))
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::Nothing)
            }
            fn visit_none<E>(self) -> Result<Value, E> {
                Ok(Value::Nothing)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let mut values = Vec::new();
                while let Some(Scalar(value)) = seq.next_element()? {
                    values.push(value);
                }
                Ok(Value::Many(values))
            }
        }
        deserializer.deserialize_any(AnyValue)
    }
}

/// An element of a list: anything YAML writes as one scalar, as text.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::One(text) => Ok(Scalar(text)),
            Value::Switch(on) => Ok(Scalar(on.to_string())),
            Value::Many(_) | Value::Nothing => Err(de::Error::custom("expected a single value")),
        }
    }
}

/// serde-saphyr's first line says where and what ("line 1 column 13: invalid u64") but not which
/// key; we add the top-level key that owns that line and drop the multi-line snippet.
fn explain(message: &str, text: &str, line: Option<u64>) -> String {
    let first = message.lines().next().unwrap_or(message);
    let first = first.strip_prefix("error: ").unwrap_or(first).trim();
    let owning_key = line.and_then(|line| {
        let lines: Vec<&str> = text.lines().collect();
        let last = usize::try_from(line)
            .ok()?
            .checked_sub(1)?
            .min(lines.len().checked_sub(1)?);
        lines[..=last].iter().rev().find_map(|candidate| {
            let key = candidate.split_once(':')?.0;
            let top_level = !key.is_empty() && !key.starts_with([' ', '\t', '-', '#']);
            top_level.then(|| key.trim().to_owned())
        })
    });
    match owning_key {
        Some(key) if !first.contains(&format!("`{key}`")) => format!("key {key}: {first}"),
        _ => first.to_owned(),
    }
}

/// Compiles `classes:` and refuses what could never work: an empty field, a regex that does not
/// compile, a literal class that is not a label value we keep, or more literal classes for a
/// reason than [`classify::MAX_CLASSES_PER_REASON`] with the catalogue's.
pub(super) fn class_rules(
    settings: Vec<ClassRuleSetting>,
) -> Result<Vec<classify::Rule>, ConfigError> {
    let mut rules = Vec::new();
    let mut literal: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for (index, setting) in settings.into_iter().enumerate() {
        let refuse = |reason: String| ConfigError::ClassRule { index, reason };
        if setting.reason.is_empty() || setting.class.is_empty() {
            return Err(refuse("reason and class must not be empty".into()));
        }
        if setting.class.len() > classify::MAX_CLASS_LEN {
            return Err(refuse(format!(
                "class {:?} is longer than {} bytes",
                setting.class,
                classify::MAX_CLASS_LEN
            )));
        }
        let pattern = Regex::new(&setting.regex).map_err(|error| {
            refuse(format!(
                "regex {:?}: {}",
                setting.regex,
                regex_error(&error)
            ))
        })?;
        if !setting.class.contains('$') {
            let classes = literal.entry(setting.reason.clone()).or_insert_with(|| {
                classify::catalogue()
                    .into_iter()
                    .filter(|(reason, _)| *reason == setting.reason)
                    .flat_map(|(_, classes)| classes.into_iter().map(str::to_owned))
                    .collect()
            });
            classes.insert(setting.class.clone());
            if classes.len() > classify::MAX_CLASSES_PER_REASON {
                return Err(refuse(format!(
                    "reason {:?} would have {} classes with the catalogue's, at most {}",
                    setting.reason,
                    classes.len(),
                    classify::MAX_CLASSES_PER_REASON
                )));
            }
        }
        rules.push(classify::Rule {
            reason: setting.reason,
            pattern,
            class: setting.class,
        });
    }
    Ok(rules)
}
