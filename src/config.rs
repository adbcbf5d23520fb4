//! Command-line flags and their validation. A bad value fails start-up with one line naming it.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::source::kube::WatchSpec;

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

/// Kubernetes Events as exact, bounded Prometheus counters.
#[derive(Clone, Debug, Parser)]
#[command(name = "kube-event-metrics", version, about)]
pub struct Flags {
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

    /// Count the occurrences of Events that exist at start instead of taking them as the baseline.
    #[arg(long = "count-existing")]
    pub count_existing: bool,

    /// Upper bound on kube_events_total series; beyond 90% of it, new label sets are folded.
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
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
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
    #[error("invalid --types {0:?}: a type is a non-empty word such as Normal or Warning")]
    Type(String),
    #[error("invalid --max-series {0}: must be at least 1")]
    MaxSeries(usize),
    #[error("invalid --field-selector: must not be empty")]
    FieldSelector,
}

/// The validated settings the exporter runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub kubeconfig: Option<PathBuf>,
    /// A `host:port` that `TcpListener::bind` accepts.
    pub listen_address: String,
    pub telemetry_path: String,
    pub watches: Vec<WatchSpec>,
    /// Types filtered client-side (only when several were given).
    pub client_side_types: Option<Vec<String>>,
    pub count_existing: bool,
    pub max_series: usize,
    pub log_level: LogLevel,
}

impl Config {
    pub fn from_flags(flags: Flags) -> Result<Self, ConfigError> {
        let listen_address = normalize_listen_address(&flags.listen_address)?;
        let path = &flags.telemetry_path;
        if !path.starts_with('/') || ["/", "/healthz", "/readyz"].contains(&path.as_str()) {
            return Err(ConfigError::TelemetryPath(path.clone()));
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
        if flags.max_series == 0 {
            return Err(ConfigError::MaxSeries(flags.max_series));
        }
        if flags
            .field_selector
            .as_deref()
            .is_some_and(|s| s.trim().is_empty())
        {
            return Err(ConfigError::FieldSelector);
        }
        // One type goes to the API server; several cannot (field-selector terms are ANDed).
        let type_selector = match types.as_slice() {
            [only] => Some(format!("type={only}")),
            _ => None,
        };
        let field_selector = match (type_selector, flags.field_selector) {
            (Some(a), Some(b)) => Some(format!("{a},{b}")),
            (a, b) => a.or(b),
        };
        let client_side_types = (types.len() > 1).then_some(types);
        let watches = if namespaces.is_empty() {
            vec![WatchSpec {
                namespace: None,
                field_selector,
            }]
        } else {
            namespaces
                .into_iter()
                .map(|namespace| WatchSpec {
                    namespace: Some(namespace),
                    field_selector: field_selector.clone(),
                })
                .collect()
        };
        Ok(Config {
            kubeconfig: flags.kubeconfig,
            listen_address,
            telemetry_path: flags.telemetry_path,
            watches,
            client_side_types,
            count_existing: flags.count_existing,
            max_series: flags.max_series,
            log_level: flags.log_level,
        })
    }
}

/// `:8080` means every interface, as in the Prometheus exporters.
fn normalize_listen_address(address: &str) -> Result<String, ConfigError> {
    let invalid = || ConfigError::ListenAddress(address.to_owned());
    let (host, port) = address.rsplit_once(':').ok_or_else(invalid)?;
    port.parse::<u16>().map_err(|_| invalid())?;
    let host = if host.is_empty() { "0.0.0.0" } else { host };
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
        assert_eq!(config.listen_address, "0.0.0.0:8080");
        assert_eq!(config.telemetry_path, "/metrics");
        assert_eq!(config.watches, vec![WatchSpec::default()]);
        assert_eq!(config.max_series, 10_000);
        assert!(!config.count_existing);
    }

    #[test]
    fn one_type_is_a_server_side_selector_several_are_client_side() {
        let one = parse(&["--types", "Warning", "--field-selector", "reason=BackOff"]).unwrap();
        assert_eq!(
            one.watches[0].field_selector.as_deref(),
            Some("type=Warning,reason=BackOff")
        );
        assert_eq!(one.client_side_types, None);
        let two = parse(&["--types", "Warning,Normal"]).unwrap();
        assert_eq!(two.watches[0].field_selector, None);
        assert_eq!(
            two.client_side_types,
            Some(vec!["Warning".to_string(), "Normal".to_string()])
        );
    }

    #[test]
    fn namespaces_get_one_watch_each() {
        let config = parse(&["--namespace", "a", "--namespace", "b"]).unwrap();
        let namespaces: Vec<_> = config
            .watches
            .iter()
            .map(|w| w.namespace.as_deref())
            .collect();
        assert_eq!(namespaces, vec![Some("a"), Some("b")]);
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
}
