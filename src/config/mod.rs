//! Command-line flags and their validation. A bad value fails start-up with one line naming it.

use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use regex::Regex;

mod file;

use crate::classify;
pub use crate::filters::LabelFilters;
use crate::ledger::TombstoneLimits;
use crate::source::watch::{ListMode, WatchSpec};
use file::{FileSettings, class_rules};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

/// Kubernetes Events as exact, bounded Prometheus counters.
#[derive(Clone, Debug, Parser)]
#[command(name = "kube-event-metrics", version, about)]
pub struct Flags {
    /// YAML file of settings; its keys are these flags' names without `--`. Flags win.
    #[arg(long = "config.file", value_name = "PATH")]
    pub config_file: Option<PathBuf>,

    /// Path to a kubeconfig file; default: KUBECONFIG, ~/.kube/config, then in-cluster.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Address to listen on for the web interface and telemetry.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = ":8080"
    )]
    pub listen_address: String,

    /// TLS and basic auth, in the Prometheus exporter-toolkit format; re-read when it changes.
    #[arg(long = "web.config.file", value_name = "PATH")]
    pub web_config_file: Option<PathBuf>,

    /// Path under which to expose metrics.
    #[arg(
        long = "web.telemetry-path",
        value_name = "PATH",
        default_value = "/metrics"
    )]
    pub telemetry_path: String,

    /// Watch Events stored in this namespace (repeatable: one watch each); default all namespaces.
    #[arg(long = "namespace", value_name = "NAME")]
    pub namespaces: Vec<String>,

    /// Count only Events of these types (repeatable or comma-separated, e.g. Warning).
    #[arg(long = "types", value_name = "TYPE", value_delimiter = ',')]
    pub types: Vec<String>,

    /// Field selector passed to the API server as is (ANDed with --types when it has one value).
    #[arg(long = "field-selector", value_name = "SELECTOR")]
    pub field_selector: Option<String>,

    /// Watch requests last this long; a watch silent for 5 s more is taken as stalled and reopened.
    #[arg(
        long = "watch.timeout",
        value_name = "DURATION",
        default_value = "290s"
    )]
    pub watch_timeout: String,

    /// How each watch lists: a streaming list where the API server serves one (from its watch
    /// cache, Kubernetes 1.32 and 1.34+), else pages (auto); or always one of them.
    #[arg(
        long = "watch.list-mode",
        value_name = "MODE",
        value_enum,
        default_value = "auto"
    )]
    pub watch_list_mode: ListMode,

    /// Count only Events whose reason matches this regex (anchored; repeatable: any may match).
    #[arg(long = "include-reason", value_name = "REGEX")]
    pub include_reason: Vec<String>,

    /// Skip Events whose reason matches this regex (anchored; repeatable).
    #[arg(long = "exclude-reason", value_name = "REGEX")]
    pub exclude_reason: Vec<String>,

    /// Skip Events about objects in namespaces matching this regex (anchored; repeatable).
    #[arg(long = "exclude-namespace", value_name = "REGEX")]
    pub exclude_namespace: Vec<String>,

    /// Count the occurrences of Events that exist at start instead of taking them as the baseline.
    #[arg(long = "count-existing")]
    pub count_existing: bool,

    /// Upper bound on kube_events_total series (1 to 1000000); beyond 90% of it, new label sets are
    /// folded. Up to 8 per-type overflow series come on top.
    #[arg(long = "max-series", value_name = "N", default_value_t = 10_000)]
    pub max_series: usize,

    /// Log level.
    #[arg(
        long = "log.level",
        value_name = "LEVEL",
        value_enum,
        default_value = "info"
    )]
    pub log_level: LogLevel,

    /// Log format.
    #[arg(
        long = "log.format",
        value_name = "FORMAT",
        value_enum,
        default_value = "logfmt"
    )]
    pub log_format: LogFormat,

    /// Only the holder of a coordination.k8s.io Lease watches and exports Events (for replicas > 1).
    #[arg(long = "leader-election")]
    pub leader_election: bool,

    /// The Lease's name.
    #[arg(
        long = "leader-election.lease-name",
        value_name = "NAME",
        default_value = "kube-event-metrics"
    )]
    pub lease_name: String,

    /// The Lease's namespace; default: the POD_NAMESPACE environment variable (downward API).
    #[arg(long = "leader-election.namespace", value_name = "NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// How long a Lease lasts without renewal; a new leader takes over within it.
    #[arg(
        long = "leader-election.lease-duration",
        value_name = "DURATION",
        default_value = "15s"
    )]
    pub lease_duration: String,

    /// A leader that has not renewed the Lease for this long stops counting and exporting at
    /// once, before a standby can take over; default: two thirds of the lease duration.
    #[arg(long = "leader-election.renew-deadline", value_name = "DURATION")]
    pub renew_deadline: Option<String>,

    /// Snapshot the counting memory here so a restart counts what happened meanwhile exactly once.
    #[arg(long = "state-file", value_name = "PATH")]
    pub state_file: Option<PathBuf>,

    /// Ignore a state file older than this (the API server keeps Events about an hour).
    #[arg(
        long = "state-file.max-age",
        value_name = "DURATION",
        default_value = "1h"
    )]
    pub state_file_max_age: String,

    /// Remember deleted Events this long, so that one client-go re-creates under the same name
    /// after the Event TTL counts only its new occurrence.
    #[arg(
        long = "tombstones.max-age",
        value_name = "DURATION",
        default_value = "2h"
    )]
    pub tombstones_max_age: String,

    /// Remember at most this many deleted Events (about 40 bytes each); the oldest go first.
    #[arg(long = "tombstones.max", value_name = "N", default_value_t = 250_000)]
    pub tombstones_max: usize,

    /// Count Events from a file (or - for stdin) instead of a cluster: `kubectl get events -o json`
    /// or `-o yaml`, or a `-w -o json` watch stream, gzip or not. Counts history (implies
    /// --count-existing) and keeps serving after the end of the input.
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,

    /// With --replay: print what /metrics would serve at the end of the input, and exit.
    #[arg(long)]
    pub once: bool,

    /// Serve live metrics from a bundled recording of a small cluster, looping; no cluster needed.
    #[arg(long)]
    pub demo: bool,

    /// With --demo: cluster seconds played per second (the ten-minute recording loops every 30 s
    /// at the default).
    #[arg(long = "demo.speed", value_name = "FACTOR", default_value_t = crate::source::demo::DEFAULT_SPEED)]
    pub demo_speed: f64,
}

/// Why the command line could not become a [`Config`].
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Includes `--help` and `--version`, which are not failures: see [`clap::Error::use_stderr`].
    #[error("{0}")]
    Clap(clap::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid --web.listen-address {0:?}: expected [host]:port, e.g. :8080")]
    ListenAddress(String),
    #[error(
        "invalid --web.telemetry-path {0:?}: must start with / and not be /, /healthz or /readyz"
    )]
    TelemetryPath(String),
    #[error(
        "invalid --namespace {0:?}: not a Kubernetes namespace name (lowercase letters, digits and '-', at most 63)"
    )]
    Namespace(String),
    #[error("invalid --namespace {0:?}: given twice")]
    DuplicateNamespace(String),
    #[error(
        "invalid --namespace: {0} namespaces, at most 1000 (each is a watch on the API server)"
    )]
    Watches(usize),
    #[error("invalid --types {0:?}: a type is a non-empty word such as Normal or Warning")]
    Type(String),
    #[error(
        "invalid --max-series {0}: from 1 to 1000000 (a counter slot per series is allocated at start)"
    )]
    MaxSeries(usize),
    #[error("invalid --field-selector: must not be empty")]
    FieldSelector,
    #[error("invalid {0}")]
    Combination(&'static str),
    #[error("invalid --demo.speed {0}: must be a number above 0")]
    DemoSpeed(f64),
    #[error("invalid --state-file.max-age {0:?}: a duration such as 1h, 30m or 90s")]
    MaxAge(String),
    #[error("invalid --watch.timeout {0:?}: whole seconds from 1s to 1h, such as 290s or 5m")]
    WatchTimeout(String),
    #[error("invalid --leader-election.lease-duration {0:?}: whole seconds from 3s to 1h")]
    LeaseDuration(String),
    #[error(
        "invalid --leader-election.renew-deadline {0:?}: a duration shorter than the lease duration"
    )]
    RenewDeadline(String),
    #[error("invalid --tombstones.max-age {0:?}: a duration such as 2h")]
    TombstonesMaxAge(String),
    #[error("invalid --leader-election.lease-name {0:?}: not a Kubernetes object name")]
    LeaseName(String),
    #[error(
        "--leader-election needs --leader-election.namespace or the POD_NAMESPACE environment variable"
    )]
    LeaseNamespace,
    #[error("invalid --{flag} {pattern:?}: {reason}")]
    Regex {
        flag: &'static str,
        pattern: String,
        reason: String,
    },
    #[error("cannot read --config.file {path}")]
    ReadFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid --config.file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("invalid classes[{index}] in --config.file: {reason}")]
    ClassRule { index: usize, reason: String },
}

/// The most `--namespace` values: each is a watch (and a connection) on the API server, and
/// watch ids are `u16`; beyond a few hundred, watching all namespaces with `--exclude-namespace`
/// costs the API server less.
pub const MAX_WATCHES: usize = 1000;

/// The most `--max-series` allows: slots are allocated up front, so a typo with extra zeros
/// would otherwise take gigabytes at start; a million series is beyond what one scrape serves
/// comfortably anyway.
pub const MAX_SERIES: usize = 1_000_000;

/// The validated settings the exporter runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub kubeconfig: Option<PathBuf>,
    /// A `host:port` that `TcpListener::bind` accepts.
    pub listen_address: String,
    pub telemetry_path: String,
    pub web_config_file: Option<PathBuf>,
    pub source: SourceConfig,
    /// `--once`: print the metrics at the end of the replay and exit.
    pub once: bool,
    pub state_file: Option<PathBuf>,
    pub state_file_max_age: Duration,
    pub tombstones: TombstoneLimits,
    pub leader_election: Option<LeaderElection>,
    pub count_existing: bool,
    pub max_series: usize,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    pub filters: LabelFilters,
    /// `classes:` of `--config.file`: the user's message classes, before the catalogue's.
    pub class_rules: Vec<classify::Rule>,
}

/// `--leader-election`: who we are and which Lease we compete for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElection {
    pub lease_name: String,
    pub namespace: String,
    /// The pod's name (POD_NAME, else HOSTNAME, which Kubernetes sets to it).
    pub identity: String,
    pub duration_seconds: u64,
    /// Shorter than the lease duration: a leader fences itself before anyone can take over.
    pub renew_deadline: Duration,
}

/// Where Events come from.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceConfig {
    /// Watches on the API server.
    Kube { watches: Vec<WatchSpec> },
    /// A file or stdin.
    Replay { path: PathBuf },
    /// The bundled recording, played `speed` times faster than it happened.
    Demo { speed: f64 },
}

impl SourceConfig {
    /// Independent watches the ledger keeps apart (replay and demo are one).
    pub fn watch_count(&self) -> usize {
        match self {
            SourceConfig::Kube { watches } => watches.len(),
            SourceConfig::Replay { .. } | SourceConfig::Demo { .. } => 1,
        }
    }
}

/// The regex crate draws a caret under the error over several lines; its last says what.
fn regex_error(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines().last().unwrap_or("invalid").trim().to_owned()
}

/// Anchored like Prometheus' regex matchers: `Back.*` matches all of `BackOff`, not `XBackOff`.
fn compile_all(flag: &'static str, patterns: &[String]) -> Result<Vec<Regex>, ConfigError> {
    patterns
        .iter()
        .map(|pattern| {
            Regex::new(&format!("^(?:{pattern})$")).map_err(|error| ConfigError::Regex {
                flag,
                pattern: pattern.clone(),
                reason: regex_error(&error),
            })
        })
        .collect()
}

impl Config {
    /// Parses the command line and `--config.file`, whose settings apply where no flag was given.
    pub fn load<I, T>(args: I) -> Result<Self, LoadError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        let command = Flags::command();
        let matches = command
            .clone()
            .try_get_matches_from(&args)
            .map_err(LoadError::Clap)?;
        let mut flags = Flags::from_arg_matches(&matches).map_err(LoadError::Clap)?;
        let mut classes = Vec::new();
        if let Some(path) = flags.config_file.clone() {
            let mut file = FileSettings::read(&path)?;
            classes = std::mem::take(&mut file.classes);
            let from_file = file.arguments(&path, &command, |id| {
                matches.value_source(id.as_str()) == Some(ValueSource::CommandLine)
            })?;
            // The program name stays first; the file's flags go before the command line's, which
            // never repeat them.
            let rest = args.split_off(args.len().min(1));
            args.extend(from_file);
            args.extend(rest);
            let matches = command
                .try_get_matches_from(&args)
                .map_err(LoadError::Clap)?;
            flags = Flags::from_arg_matches(&matches).map_err(LoadError::Clap)?;
        }
        let mut config = Config::from_flags(flags)?;
        config.class_rules = class_rules(classes)?;
        Ok(config)
    }

    pub fn from_flags(flags: Flags) -> Result<Self, ConfigError> {
        let listen_address = normalize_listen_address(&flags.listen_address)?;
        let path = &flags.telemetry_path;
        if !path.starts_with('/') || ["/", "/healthz", "/readyz"].contains(&path.as_str()) {
            return Err(ConfigError::TelemetryPath(path.clone()));
        }
        if flags.namespaces.len() > MAX_WATCHES {
            return Err(ConfigError::Watches(flags.namespaces.len()));
        }
        let mut namespaces: Vec<String> = Vec::new();
        for namespace in &flags.namespaces {
            if !is_dns_label(namespace) {
                return Err(ConfigError::Namespace(namespace.clone()));
            }
            if namespaces.contains(namespace) {
                return Err(ConfigError::DuplicateNamespace(namespace.clone()));
            }
            namespaces.push(namespace.clone());
        }
        let mut types: Vec<String> = Vec::new();
        for event_type in &flags.types {
            let valid =
                !event_type.is_empty() && event_type.chars().all(|c| c.is_ascii_alphanumeric());
            if !valid {
                return Err(ConfigError::Type(event_type.clone()));
            }
            if !types.contains(event_type) {
                types.push(event_type.clone());
            }
        }
        if !(1..=MAX_SERIES).contains(&flags.max_series) {
            return Err(ConfigError::MaxSeries(flags.max_series));
        }
        if flags
            .field_selector
            .as_deref()
            .is_some_and(|s| s.trim().is_empty())
        {
            return Err(ConfigError::FieldSelector);
        }
        let offline = flags.replay.is_some() || flags.demo;
        if flags.replay.is_some() && flags.demo {
            return Err(ConfigError::Combination("--replay with --demo: choose one"));
        }
        if flags.once && flags.replay.is_none() {
            return Err(ConfigError::Combination("--once without --replay"));
        }
        if offline && !namespaces.is_empty() {
            return Err(ConfigError::Combination(
                "--namespace with --replay or --demo: it selects watches on the API server",
            ));
        }
        if offline && flags.field_selector.is_some() {
            return Err(ConfigError::Combination(
                "--field-selector with --replay or --demo: it is applied by the API server",
            ));
        }
        if offline && flags.state_file.is_some() {
            return Err(ConfigError::Combination(
                "--state-file with --replay or --demo: only watches keep state",
            ));
        }
        let timeout_seconds = parse_duration(&flags.watch_timeout)
            .map(|timeout| timeout.as_secs())
            .filter(|seconds| (1..=3600).contains(seconds))
            .ok_or_else(|| ConfigError::WatchTimeout(flags.watch_timeout.clone()))?
            as u32;
        if offline && flags.leader_election {
            return Err(ConfigError::Combination(
                "--leader-election with --replay or --demo: only watches are elected",
            ));
        }
        let leader_election = if flags.leader_election {
            let duration_seconds = parse_duration(&flags.lease_duration)
                .map(|d| d.as_secs())
                .filter(|seconds| (3..=3600).contains(seconds))
                .ok_or_else(|| ConfigError::LeaseDuration(flags.lease_duration.clone()))?;
            let valid_name =
                flags.lease_name.len() <= 253 && flags.lease_name.split('.').all(is_dns_label);
            if !valid_name {
                return Err(ConfigError::LeaseName(flags.lease_name.clone()));
            }
            let namespace = flags
                .lease_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .filter(|namespace| !namespace.is_empty())
                .ok_or(ConfigError::LeaseNamespace)?;
            if !is_dns_label(&namespace) {
                return Err(ConfigError::Namespace(namespace));
            }
            let identity = ["POD_NAME", "HOSTNAME"]
                .into_iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
                .unwrap_or_else(|| format!("kube-event-metrics-{}", std::process::id()));
            let lease = Duration::from_secs(duration_seconds);
            let renew_deadline = match &flags.renew_deadline {
                None => lease * 2 / 3,
                Some(text) => parse_duration(text)
                    .filter(|deadline| !deadline.is_zero() && *deadline < lease)
                    .ok_or_else(|| ConfigError::RenewDeadline(text.clone()))?,
            };
            Some(LeaderElection {
                lease_name: flags.lease_name.clone(),
                namespace,
                identity,
                duration_seconds,
                renew_deadline,
            })
        } else {
            None
        };
        let state_file_max_age = parse_duration(&flags.state_file_max_age)
            .ok_or_else(|| ConfigError::MaxAge(flags.state_file_max_age.clone()))?;
        let tombstones = TombstoneLimits {
            max_age_seconds: parse_duration(&flags.tombstones_max_age)
                .ok_or_else(|| ConfigError::TombstonesMaxAge(flags.tombstones_max_age.clone()))?
                .as_secs(),
            max_entries: flags.tombstones_max,
        };
        if !(flags.demo_speed.is_finite() && flags.demo_speed > 0.0) {
            return Err(ConfigError::DemoSpeed(flags.demo_speed));
        }
        // One type goes to the API server; several cannot (field-selector terms are ANDed), and
        // offline sources have no server to ask.
        let type_selector = match types.as_slice() {
            [only] if !offline => Some(format!("type={only}")),
            _ => None,
        };
        let field_selector = match (type_selector, flags.field_selector) {
            (Some(a), Some(b)) => Some(format!("{a},{b}")),
            (a, b) => a.or(b),
        };
        let filters = LabelFilters {
            types: (types.len() > 1 || (offline && !types.is_empty())).then_some(types),
            include_reason: compile_all("include-reason", &flags.include_reason)?,
            exclude_reason: compile_all("exclude-reason", &flags.exclude_reason)?,
            exclude_namespace: compile_all("exclude-namespace", &flags.exclude_namespace)?,
        };
        let watches = if namespaces.is_empty() {
            vec![WatchSpec {
                namespace: None,
                field_selector,
                timeout_seconds,
                list_mode: flags.watch_list_mode,
            }]
        } else {
            namespaces
                .into_iter()
                .map(|namespace| WatchSpec {
                    namespace: Some(namespace),
                    field_selector: field_selector.clone(),
                    timeout_seconds,
                    list_mode: flags.watch_list_mode,
                })
                .collect()
        };
        Ok(Config {
            kubeconfig: flags.kubeconfig,
            listen_address,
            telemetry_path: flags.telemetry_path,
            web_config_file: flags.web_config_file,
            source: match (flags.replay, flags.demo) {
                (Some(path), _) => SourceConfig::Replay { path },
                (None, true) => SourceConfig::Demo {
                    speed: flags.demo_speed,
                },
                (None, false) => SourceConfig::Kube { watches },
            },
            once: flags.once,
            state_file: flags.state_file,
            state_file_max_age,
            tombstones,
            leader_election,
            filters,
            class_rules: Vec::new(),
            // A dump or a recording is history the user asks to count.
            count_existing: flags.count_existing || offline,
            max_series: flags.max_series,
            log_level: flags.log_level,
            log_format: flags.log_format,
        })
    }
}

/// Prometheus-style durations: `1h`, `30m`, `90s`, `1h30m`, `500ms`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let amount: u64 = rest[..digits].parse().ok()?;
        let after = &rest[digits..];
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let unit = match &after[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            _ => return None,
        };
        total += unit.checked_mul(u32::try_from(amount).ok()?)?;
        rest = &after[unit_len..];
    }
    Some(total)
}

/// `:8080` means every interface, IPv6 and IPv4 (`[::]` is dual-stack on Linux; the server falls
/// back to IPv4 alone where IPv6 is disabled), as in the Prometheus exporters.
fn normalize_listen_address(address: &str) -> Result<String, ConfigError> {
    let invalid = || ConfigError::ListenAddress(address.to_owned());
    let (host, port) = address.rsplit_once(':').ok_or_else(invalid)?;
    port.parse::<u16>().map_err(|_| invalid())?;
    let host = if host.is_empty() { "[::]" } else { host };
    Ok(format!("{host}:{port}"))
}

fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watches(config: &Config) -> &[WatchSpec] {
        match &config.source {
            SourceConfig::Kube { watches } => watches,
            other => panic!("not watching: {other:?}"),
        }
    }

    #[test]
    fn replay_and_demo_count_history_and_filter_types_here() {
        let replay = parse(&["--replay", "dump.json", "--once", "--types", "Warning"]).unwrap();
        assert_eq!(
            replay.source,
            SourceConfig::Replay {
                path: "dump.json".into()
            }
        );
        assert!(replay.count_existing && replay.once);
        assert_eq!(replay.filters.types, Some(vec!["Warning".to_string()]));
        let demo = parse(&["--demo"]).unwrap();
        assert!(matches!(demo.source, SourceConfig::Demo { speed } if speed == 20.0));
        assert!(demo.count_existing);
    }

    #[test]
    fn offline_combinations_that_make_no_sense_are_rejected() {
        for args in [
            &["--once"][..],
            &["--demo", "--replay", "x"][..],
            &["--demo", "--namespace", "a"][..],
            &["--replay", "x", "--field-selector", "type=Warning"][..],
            &["--demo", "--demo.speed", "0"][..],
        ] {
            let error = parse(args).unwrap_err().to_string();
            assert!(error.starts_with("invalid --"), "{args:?}: {error}");
        }
    }

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let flags = Flags::try_parse_from(
            std::iter::once("kube-event-metrics").chain(args.iter().copied()),
        )
        .expect("flags parse");
        Config::from_flags(flags)
    }

    #[test]
    fn defaults_watch_all_namespaces_on_8080() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.listen_address, "[::]:8080");
        assert_eq!(config.telemetry_path, "/metrics");
        assert_eq!(
            config.source,
            SourceConfig::Kube {
                watches: vec![WatchSpec {
                    namespace: None,
                    field_selector: None,
                    timeout_seconds: 290,
                    list_mode: ListMode::Auto,
                }]
            }
        );
        assert_eq!(config.max_series, 10_000);
        assert!(!config.count_existing);
    }

    #[test]
    fn one_type_is_a_server_side_selector_several_are_client_side() {
        let one = parse(&["--types", "Warning", "--field-selector", "reason=BackOff"]).unwrap();
        assert_eq!(
            watches(&one)[0].field_selector.as_deref(),
            Some("type=Warning,reason=BackOff")
        );
        assert_eq!(one.filters.types, None);
        let two = parse(&["--types", "Warning,Normal"]).unwrap();
        assert_eq!(watches(&two)[0].field_selector, None);
        assert_eq!(
            two.filters.types,
            Some(vec!["Warning".to_string(), "Normal".to_string()])
        );
    }

    #[test]
    fn namespaces_get_one_watch_each() {
        let config = parse(&["--namespace", "a", "--namespace", "b"]).unwrap();
        let namespaces: Vec<_> = watches(&config)
            .iter()
            .map(|w| w.namespace.as_deref())
            .collect();
        assert_eq!(namespaces, vec![Some("a"), Some("b")]);
    }

    #[test]
    fn durations_parse_like_prometheus() {
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        for bad in ["", "1", "h", "1x", "-1h", "1.5h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (args, flag) in [
            (
                &["--web.listen-address", "8080"][..],
                "--web.listen-address",
            ),
            (
                &["--web.telemetry-path", "metrics"][..],
                "--web.telemetry-path",
            ),
            (&["--namespace", "Bad_NS"][..], "--namespace"),
            (&["--namespace", "a", "--namespace", "a"][..], "--namespace"),
            (&["--types", "Warn ing"][..], "--types"),
            (&["--max-series", "0"][..], "--max-series"),
            (&["--max-series", "1000001"][..], "--max-series"),
            (&["--max-series", "100000000000"][..], "--max-series"),
            (
                &["--state-file.max-age", "soon"][..],
                "--state-file.max-age",
            ),
        ] {
            let error = parse(args).unwrap_err().to_string();
            assert!(error.contains(flag), "{args:?}: {error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
    }

    #[test]
    fn unparseable_flags_are_rejected_by_the_parser() {
        let error =
            Flags::try_parse_from(["kube-event-metrics", "--max-series", "many"]).unwrap_err();
        assert!(error.to_string().contains("--max-series"));
        let error =
            Flags::try_parse_from(["kube-event-metrics", "--log.level", "loud"]).unwrap_err();
        assert!(error.to_string().contains("--log.level"));
    }

    #[test]
    fn class_rules_come_from_the_file_and_bad_ones_fail_at_start() {
        let config = load_with_file(
            "classes:\n  - reason: SyncFailed\n    regex: '^sync of (?P<app>[a-z]+)'\n    class: 'app-${app}'\n  - reason: Unhealthy\n    regex: 'statuscode: 503'\n    class: unavailable\n",
            &[],
        )
        .unwrap();
        assert_eq!(config.class_rules.len(), 2);
        assert_eq!(config.class_rules[0].reason, "SyncFailed");
        assert_eq!(config.class_rules[1].class, "unavailable");
        for (yaml, named) in [
            (
                "classes:\n  - reason: X\n    regex: '('\n    class: c\n",
                "classes[0]",
            ),
            (
                "classes:\n  - reason: X\n    regex: a\n    class: ''\n",
                "classes[0]",
            ),
            (
                "classes:\n  - reason: X\n    regex: a\n    class: c\n    colour: red\n",
                "colour",
            ),
        ] {
            let error = load_with_file(yaml, &[]).unwrap_err().to_string();
            assert!(error.contains(named), "{error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
        // The catalogue has 20 classes for FailedScheduling: five more literal ones are too many.
        let many: String = (0..5)
            .map(|i| {
                format!("  - reason: FailedScheduling\n    regex: x{i}\n    class: mine-{i}\n")
            })
            .collect();
        let error = load_with_file(&format!("classes:\n{many}"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("classes[4]") && error.contains("at most 24"),
            "{error}"
        );
    }

    #[test]
    fn more_namespaces_than_watches_allowed_fail_at_start() {
        let many: Vec<String> = (0..=MAX_WATCHES)
            .map(|n| format!("--namespace=ns{n}"))
            .collect();
        let args: Vec<&str> = std::iter::once("kube-event-metrics")
            .chain(many.iter().map(String::as_str))
            .collect();
        let error = Config::load(args).unwrap_err().to_string();
        assert!(
            error.contains("--namespace") && error.contains("at most 1000"),
            "{error}"
        );
        let fine: Vec<&str> = std::iter::once("kube-event-metrics")
            .chain(many[..MAX_WATCHES].iter().map(String::as_str))
            .collect();
        assert!(Config::load(fine).is_ok());
    }

    fn load_with_file(yaml: &str, args: &[&str]) -> Result<Config, LoadError> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, yaml.as_bytes()).unwrap();
        let path = file.path().display().to_string();
        let mut all = vec!["kube-event-metrics", "--config.file", &path];
        all.extend_from_slice(args);
        Config::load(all)
    }

    /// Every flag but `--config.file`: its key and value in the file, the same as flags, and the
    /// flags it needs beside it to mean something.
    const EVERY_FLAG: &[(&str, &str, &[&str], &[&str])] = &[
        (
            "kubeconfig",
            "/etc/kube/config",
            &["--kubeconfig=/etc/kube/config"],
            &[],
        ),
        (
            "web.listen-address",
            "127.0.0.1:9999",
            &["--web.listen-address=127.0.0.1:9999"],
            &[],
        ),
        (
            "web.config.file",
            "/etc/kem/web.yml",
            &["--web.config.file=/etc/kem/web.yml"],
            &[],
        ),
        (
            "web.telemetry-path",
            "/m",
            &["--web.telemetry-path=/m"],
            &[],
        ),
        (
            "namespace",
            "[a, b]",
            &["--namespace=a", "--namespace=b"],
            &[],
        ),
        (
            "types",
            "[Warning, Normal]",
            &["--types=Warning,Normal"],
            &[],
        ),
        (
            "field-selector",
            "reason!=Pulled",
            &["--field-selector=reason!=Pulled"],
            &[],
        ),
        ("watch.timeout", "2m", &["--watch.timeout=2m"], &[]),
        (
            "watch.list-mode",
            "paginated",
            &["--watch.list-mode=paginated"],
            &[],
        ),
        (
            "include-reason",
            "[Back.*, Failed.*]",
            &["--include-reason=Back.*", "--include-reason=Failed.*"],
            &[],
        ),
        (
            "exclude-reason",
            "BackOff",
            &["--exclude-reason=BackOff"],
            &[],
        ),
        (
            "exclude-namespace",
            "[kube-.*]",
            &["--exclude-namespace=kube-.*"],
            &[],
        ),
        ("count-existing", "true", &["--count-existing"], &[]),
        ("max-series", "500", &["--max-series=500"], &[]),
        ("log.level", "debug", &["--log.level=debug"], &[]),
        ("log.format", "json", &["--log.format=json"], &[]),
        (
            "leader-election",
            "true",
            &["--leader-election"],
            &[LEASE_NAMESPACE],
        ),
        (
            "leader-election.lease-name",
            "kem",
            &["--leader-election.lease-name=kem"],
            &[LEADER, LEASE_NAMESPACE],
        ),
        (
            "leader-election.namespace",
            "monitoring",
            &["--leader-election.namespace=monitoring"],
            &[LEADER],
        ),
        (
            "leader-election.lease-duration",
            "30s",
            &["--leader-election.lease-duration=30s"],
            &[LEADER, LEASE_NAMESPACE],
        ),
        (
            "leader-election.renew-deadline",
            "5s",
            &["--leader-election.renew-deadline=5s"],
            &[LEADER, LEASE_NAMESPACE],
        ),
        (
            "state-file",
            "/var/lib/kem/state",
            &["--state-file=/var/lib/kem/state"],
            &[],
        ),
        (
            "state-file.max-age",
            "30m",
            &["--state-file.max-age=30m"],
            &[],
        ),
        (
            "tombstones.max-age",
            "90m",
            &["--tombstones.max-age=90m"],
            &[],
        ),
        ("tombstones.max", "1000", &["--tombstones.max=1000"], &[]),
        ("replay", "dump.json", &["--replay=dump.json"], &[]),
        ("once", "true", &["--once"], &["--replay=dump.json"]),
        ("demo", "true", &["--demo"], &[]),
        ("demo.speed", "5", &["--demo.speed=5"], &["--demo"]),
    ];
    const LEADER: &str = "--leader-election";
    const LEASE_NAMESPACE: &str = "--leader-election.namespace=elsewhere";

    #[test]
    fn every_flag_is_a_file_key_that_means_what_the_flag_means() {
        let mut untested: Vec<String> = Flags::command()
            .get_arguments()
            .filter_map(|arg| arg.get_long().map(str::to_owned))
            .filter(|long| long != "config.file")
            .filter(|long| !EVERY_FLAG.iter().any(|(key, ..)| key == long))
            .collect();
        untested.sort();
        assert!(
            untested.is_empty(),
            "flags without a row here: {untested:?}"
        );
        for (key, value, flags, context) in EVERY_FLAG {
            let from_file = load_with_file(&format!("{key}: {value}\n"), context)
                .unwrap_or_else(|error| panic!("{key}: {error}"));
            let from_flags = parse(&[*context, *flags].concat()).unwrap();
            assert_eq!(from_file, from_flags, "{key}");
            assert_ne!(
                parse(context).ok(),
                Some(from_flags),
                "{key} changes nothing"
            );
        }
    }

    #[test]
    fn file_values_a_flag_cannot_take_fail_naming_the_key_and_line() {
        for (yaml, needle) in [
            (
                "max-series: 5\ncount-existing: maybe\n",
                "key count-existing (line 2): expected true or false",
            ),
            (
                "kubeconfig: [a, b]\n",
                "key kubeconfig (line 1): takes one value, not a list",
            ),
            (
                "config.file: other.yml\n",
                "key config.file (line 1): a config file cannot name another",
            ),
            (
                "demo.speed: fast\n",
                "key demo.speed (line 1): invalid value 'fast'",
            ),
            ("namespace: a\nnamespace: b\n", "namespace"),
        ] {
            let error = load_with_file(yaml, &[]).unwrap_err().to_string();
            assert!(error.contains(needle), "{yaml}: {error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
        let nothing = load_with_file("kubeconfig:\nmax-series: 7\n", &[]).unwrap();
        assert_eq!(
            nothing,
            parse(&["--max-series=7"]).unwrap(),
            "an empty key is absent"
        );
    }

    #[test]
    fn the_renew_deadline_defaults_to_two_thirds_and_stays_below_the_lease() {
        let from_flags = parse(&[
            "--leader-election",
            "--leader-election.namespace=monitoring",
            "--leader-election.lease-duration=30s",
            "--leader-election.renew-deadline=20s",
            "--leader-election.lease-name=kem",
        ])
        .unwrap();
        let election = from_flags.leader_election.unwrap();
        assert_eq!(election.renew_deadline, Duration::from_secs(20));
        let default = parse(&[
            "--leader-election",
            "--leader-election.namespace=monitoring",
        ])
        .unwrap();
        assert_eq!(
            default.leader_election.unwrap().renew_deadline,
            Duration::from_secs(10),
            "client-go's 10 s of 15 s"
        );
        for bad in ["15s", "20s", "0s", "soon"] {
            let error = parse(&[
                "--leader-election",
                "--leader-election.namespace=monitoring",
                &format!("--leader-election.renew-deadline={bad}"),
            ])
            .unwrap_err()
            .to_string();
            assert!(
                error.contains("--leader-election.renew-deadline"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn flags_win_over_the_file() {
        let config = load_with_file(
            "namespace: [a, b]\nmax-series: 500\nweb.listen-address: 127.0.0.1:9999\n\
             web.telemetry-path: /m\ncount-existing: true\n",
            &[
                "--namespace",
                "c",
                "--max-series",
                "7",
                "--web.listen-address",
                ":1234",
            ],
        )
        .unwrap();
        assert_eq!(watches(&config).len(), 1);
        assert_eq!(watches(&config)[0].namespace.as_deref(), Some("c"));
        assert_eq!(config.max_series, 7);
        assert_eq!(config.listen_address, "[::]:1234");
        // What the flags left alone still comes from the file.
        assert_eq!(config.telemetry_path, "/m");
        assert!(config.count_existing);
    }

    #[test]
    fn unknown_key_fails_naming_it_and_its_line() {
        let error = load_with_file("max-series: 5\nnamespaces: [a]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("namespaces"), "{error}");
        assert!(error.contains("line 2"), "{error}");
        assert!(!error.contains("-->"), "no snippet: {error}");
        assert!(!error.contains('\n'), "one line: {error}");
    }

    #[test]
    fn mistyped_value_fails_naming_the_key() {
        for (yaml, key) in [
            ("max-series: many\n", "max-series"),
            ("log.level: loud\n", "loud"),
            ("count-existing: [1]\n", "count-existing"),
            ("namespace:\n  - a\n  - [b]\n", "key namespace"),
        ] {
            let error = load_with_file(yaml, &[]).unwrap_err().to_string();
            assert!(error.contains(key), "{yaml}: {error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
        // Values from the file get the same validation as flags.
        let error = load_with_file("namespace: Bad_NS\n", &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--namespace"), "{error}");
    }

    #[test]
    fn missing_or_empty_file() {
        let error = Config::load(["kube-event-metrics", "--config.file", "/nonexistent/k.yaml"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nonexistent/k.yaml"), "{error}");
        assert_eq!(load_with_file("", &[]).unwrap(), parse(&[]).unwrap());
    }

    #[test]
    fn invalid_regex_names_the_flag() {
        let error = parse(&["--exclude-reason", "Back(Off"])
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("invalid --exclude-reason \"Back(Off\""),
            "{error}"
        );
        assert!(!error.contains('\n'), "{error}");
    }

    #[test]
    fn filters_are_anchored_and_combine() {
        let config = parse(&[
            "--include-reason",
            "Back.*|Failed.*",
            "--exclude-reason",
            "FailedMount",
            "--exclude-namespace",
            "kube-.*",
        ])
        .unwrap();
        let filters = &config.filters;
        assert!(filters.admits("shop", "BackOff", "Warning"));
        assert!(filters.admits("shop", "FailedScheduling", "Warning"));
        assert!(!filters.admits("shop", "XBackOff", "Warning"), "anchored");
        assert!(!filters.admits("shop", "FailedMount", "Warning"));
        assert!(!filters.admits("kube-system", "BackOff", "Warning"));
        assert!(
            filters.admits("my-kube-ns", "BackOff", "Warning"),
            "anchored"
        );
    }
}
