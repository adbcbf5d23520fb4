//! Client-side filters on label values (`--types`, `--include-reason`, `--exclude-reason`,
//! `--exclude-namespace`), applied before counting. config.rs builds them; the ingest applies them.

use regex::Regex;

/// Client-side filters on label values, applied before counting.
#[derive(Clone, Debug, Default)]
pub struct LabelFilters {
    /// Several `--types` (one goes to the API server instead).
    pub types: Option<Vec<String>>,
    pub include_reason: Vec<Regex>,
    pub exclude_reason: Vec<Regex>,
    pub exclude_namespace: Vec<Regex>,
}

impl PartialEq for LabelFilters {
    fn eq(&self, other: &Self) -> bool {
        let patterns = |list: &[Regex]| {
            list.iter()
                .map(|r| r.as_str().to_owned())
                .collect::<Vec<_>>()
        };
        self.types == other.types
            && patterns(&self.include_reason) == patterns(&other.include_reason)
            && patterns(&self.exclude_reason) == patterns(&other.exclude_reason)
            && patterns(&self.exclude_namespace) == patterns(&other.exclude_namespace)
    }
}

impl Eq for LabelFilters {}

impl LabelFilters {
    /// A canonical description of what the filters admit, for the state file's fingerprint.
    pub fn describe(&self) -> String {
        let patterns = |list: &[Regex]| {
            list.iter()
                .map(|r| format!("{:?}", r.as_str()))
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "types={:?} include-reason=[{}] exclude-reason=[{}] exclude-namespace=[{}]",
            self.types,
            patterns(&self.include_reason),
            patterns(&self.exclude_reason),
            patterns(&self.exclude_namespace)
        )
    }

    /// The patterns of a list as given (without the anchors they were compiled with), for logs.
    pub fn shown(list: &[Regex]) -> String {
        list.iter()
            .map(|r| {
                let pattern = r.as_str();
                pattern
                    .strip_prefix("^(?:")
                    .and_then(|p| p.strip_suffix(")$"))
                    .unwrap_or(pattern)
                    .to_owned()
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether an Event with these label values is counted.
    pub fn admits(&self, namespace: &str, reason: &str, event_type: &str) -> bool {
        let matches_any = |list: &[Regex], value: &str| list.iter().any(|r| r.is_match(value));
        self.types
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == event_type))
            && (self.include_reason.is_empty() || matches_any(&self.include_reason, reason))
            && !matches_any(&self.exclude_reason, reason)
            && !matches_any(&self.exclude_namespace, namespace)
    }
}
