//! Exposition: a prometheus-client `Collector` that reads the series store and the self-metrics
//! at scrape time, so ingestion never waits on a scrape.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::exemplar::CounterWithExemplar;
use prometheus_client::registry::Registry;

use crate::classify::MAX_CLASSES_PER_REASON;
use crate::process::ProcessSnapshot;
use crate::store::{Exemplar, Reading, SeriesStore};

/// The exporter's own counters and gauges, written by the ingest loop.
#[derive(Debug, Default)]
pub struct SelfStats {
    pub watch_updates: AtomicU64,
    pub watch_errors: AtomicU64,
    pub relists: AtomicU64,
    pub count_decreases: AtomicU64,
    pub malformed_objects: AtomicU64,
    /// Events given the empty class because their reason had its most classes.
    pub classes_capped: AtomicU64,
    pub tracked_events: AtomicU64,
    /// Deleted Events remembered by name, to recognise their re-creation.
    pub tombstones: AtomicU64,
    /// Milliseconds since the epoch of the last watch update; 0 until the first.
    pub last_update_millis: AtomicU64,
    pub synced: AtomicBool,
    /// Under leader election, while another replica holds the Lease.
    pub standby: AtomicBool,
    /// Set once this replica has been a standby: a standby is ready, and ready stays ready.
    pub was_standby: AtomicBool,
    /// Scrapes serve the values of the last consistent cut (`--state-file`), not live ones.
    pub serve_published: AtomicBool,
    /// `synced` as of the last cut, so that a scrape never shows synced with counters from
    /// before the list completed.
    pub synced_published: AtomicBool,
    /// Per watch, for the status page; written at each list, not per update.
    pub watches: std::sync::Mutex<Vec<WatchReport>>,
}

/// How one watch has listed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchReport {
    /// Whether its latest list streamed; `None` before the first.
    pub streaming: Option<bool>,
    /// Lists started, the first included.
    pub lists: u64,
    /// Milliseconds since the epoch when the latest list started.
    pub last_list_millis: u64,
}

/// Milliseconds since the epoch; 0 on a clock before 1970.
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

impl SelfStats {
    pub fn record_update(&self) {
        self.watch_updates.fetch_add(1, Ordering::Relaxed);
        self.last_update_millis
            .store(unix_millis(), Ordering::Relaxed);
    }

    /// Changes what the status page and `kube_event_metrics_watches` show of `watch`.
    pub fn report_watch(&self, watch: usize, change: impl FnOnce(&mut WatchReport)) {
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        if watches.len() <= watch {
            watches.resize(watch + 1, WatchReport::default());
        }
        change(&mut watches[watch]);
    }

    pub fn watch_reports(&self) -> Vec<WatchReport> {
        self.watches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// `/readyz`: every watch completed its first list, or this replica is (or was) a standby.
    pub fn is_ready(&self) -> bool {
        self.is_synced() || self.was_standby.load(Ordering::Acquire)
    }

    pub fn set_standby(&self, standby: bool) {
        if standby {
            self.was_standby.store(true, Ordering::Release);
        }
        self.standby.store(standby, Ordering::Release);
    }
}

/// Reads the store and the self-metrics on each scrape.
#[derive(Debug)]
pub struct ExporterCollector {
    store: Arc<SeriesStore>,
    stats: Arc<SelfStats>,
}

/// prometheus-client builds an exemplar only through a counter that carries one, so each scrape
/// makes a throwaway counter holding the series' latest occurrence, its labels borrowed.
fn exemplar_holder<'a>(
    exemplar: &Exemplar,
    labels: &'a [(&'static str, &'a str)],
) -> CounterWithExemplar<&'a [(&'static str, &'a str)]> {
    let holder = CounterWithExemplar::default();
    let timestamp = exemplar
        .timestamp
        .filter(|seconds| *seconds >= 0.0)
        .map(|seconds| UNIX_EPOCH + std::time::Duration::from_secs_f64(seconds));
    holder.inc_by(exemplar.value, Some(labels), timestamp);
    holder
}

const EVENTS_HELP: &str = "Occurrences of Kubernetes Events, counted from each Event's count.";

impl Collector for ExporterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Read before the counters: a scrape that says synced then holds every count of the
        // list, even when the ingest runs on another thread while this one encodes.
        let synced = if self.stats.serve_published.load(Ordering::Acquire) {
            self.stats.synced_published.load(Ordering::Acquire)
        } else {
            self.stats.is_synced()
        };
        {
            let mut family =
                encoder.encode_descriptor("kube_events", EVENTS_HELP, None, MetricType::Counter)?;
            // A standby, or a leader that has fenced itself, exports no Event series: never two
            // replicas at once.
            if !self.stats.standby.load(Ordering::Acquire) {
                let reading = if self.stats.serve_published.load(Ordering::Acquire) {
                    Reading::Published
                } else {
                    Reading::Live
                };
                self.store.for_each_series_as(reading, |sample| {
                    let labels = sample.exposed_labels();
                    let mut metric = family.encode_family(&labels)?;
                    match sample.exemplar {
                        // Text 0.0.4 drops exemplars; OpenMetrics writes them.
                        Some(exemplar) => {
                            let labels = [
                                (Exemplar::OBJECT, exemplar.object.as_str()),
                                (Exemplar::NODE, exemplar.node.as_str()),
                            ];
                            let present = if exemplar.node.is_empty() {
                                &labels[..1]
                            } else {
                                &labels[..]
                            };
                            let holder = exemplar_holder(exemplar, present);
                            let (_, exemplar) = holder.get();
                            metric.encode_counter(&sample.value, exemplar.as_ref())
                        }
                        None => metric.encode_counter::<NoLabelSet, _, u64>(&sample.value, None),
                    }
                })?;
            }
        }
        let load = |value: &AtomicU64| value.load(Ordering::Relaxed);
        let stats = &self.stats;
        let capped_help = format!(
            "Events given the empty class because their reason already had its most classes ({MAX_CLASSES_PER_REASON})."
        );
        let counters: [(&str, &str, u64); 7] = [
            (
                "kube_event_metrics_watch_updates",
                "Objects received from the API server (list items and watch events).",
                load(&stats.watch_updates),
            ),
            (
                "kube_event_metrics_watch_errors",
                "Errors of the Event watches; each is retried with backoff.",
                load(&stats.watch_errors),
            ),
            (
                "kube_event_metrics_relists",
                "Lists started after a watch's first one (watch expired, 410 Gone, reconnects).",
                load(&stats.relists),
            ),
            (
                "kube_event_metrics_folded",
                "Occurrences counted into folded series because --max-series was reached.",
                self.store.folded_occurrences(),
            ),
            (
                "kube_event_metrics_count_decreases",
                "Updates whose count went down; the Event was re-baselined, nothing subtracted.",
                load(&stats.count_decreases),
            ),
            (
                "kube_event_metrics_malformed_objects",
                "Objects skipped because a used field had the wrong JSON type or metadata.uid was missing.",
                load(&stats.malformed_objects),
            ),
            (
                "kube_event_metrics_classes_capped",
                &capped_help,
                load(&stats.classes_capped),
            ),
        ];
        for (name, help, value) in counters {
            encoder
                .encode_descriptor(name, help, None, MetricType::Counter)?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }
        let gauges: [(&str, &str, u64); 6] = [
            (
                "kube_event_metrics_tracked_events",
                "Events remembered by the ledger (live Events seen by the watches).",
                load(&stats.tracked_events),
            ),
            (
                "kube_event_metrics_tombstones",
                "Deleted Events remembered by name, so that a re-creation after the Event TTL counts once.",
                load(&stats.tombstones),
            ),
            (
                "kube_event_metrics_series",
                "kube_events_total series currently exported.",
                self.store.series() as u64,
            ),
            (
                "kube_event_metrics_series_limit",
                "The --max-series limit.",
                self.store.max_series() as u64,
            ),
            (
                "kube_event_metrics_synced",
                "1 once every watch completed its first list.",
                u64::from(synced),
            ),
            (
                "kube_event_metrics_leader",
                "1 while this replica watches and exports Events (always 1 without leader election).",
                u64::from(!stats.standby.load(Ordering::Acquire)),
            ),
        ];
        for (name, help, value) in gauges {
            encoder
                .encode_descriptor(name, help, None, MetricType::Gauge)?
                .encode_gauge(&value)?;
        }
        {
            let mut family = encoder.encode_descriptor(
                "kube_event_metrics_watches",
                "Watches by how their latest list came: streaming (the initial events of a watch) or paginated.",
                None,
                MetricType::Gauge,
            )?;
            let reports = stats.watch_reports();
            for (list, streaming) in [("streaming", true), ("paginated", false)] {
                let watches = reports
                    .iter()
                    .filter(|report| report.streaming == Some(streaming))
                    .count() as u64;
                family
                    .encode_family(&[("list", list)])?
                    .encode_gauge(&watches)?;
            }
        }
        encoder
            .encode_descriptor(
                "kube_event_metrics_last_update_timestamp_seconds",
                "Unix time of the last object received; 0 until the first.",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&(load(&stats.last_update_millis) as f64 / 1000.0))?;
        encoder
            .encode_descriptor(
                "kube_event_metrics_build",
                "The exporter's version.",
                None,
                MetricType::Info,
            )?
            .encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
        encode_process(&mut encoder, &ProcessSnapshot::read())?;
        Ok(())
    }
}

fn encode_process(
    encoder: &mut DescriptorEncoder,
    process: &ProcessSnapshot,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            MetricType::Counter,
        )?
        .encode_counter::<NoLabelSet, _, u64>(&process.cpu_seconds, None)?;
    let gauges: [(&str, &str, f64); 5] = [
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            process.resident_memory_bytes as f64,
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            process.virtual_memory_bytes as f64,
        ),
        (
            "process_open_fds",
            "Number of open file descriptors.",
            process.open_fds as f64,
        ),
        (
            "process_max_fds",
            "Maximum number of open file descriptors.",
            process.max_fds as f64,
        ),
        (
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            process.start_time_seconds,
        ),
    ];
    for (name, help, value) in gauges {
        encoder
            .encode_descriptor(name, help, None, MetricType::Gauge)?
            .encode_gauge(&value)?;
    }
    Ok(())
}

/// The registry served on the telemetry path.
pub fn registry(store: Arc<SeriesStore>, stats: Arc<SelfStats>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ExporterCollector { store, stats }));
    registry
}

/// The exposition formats `/metrics` speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4, the default.
    Text,
    /// OpenMetrics 1.0 text, ending in `# EOF`.
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// OpenMetrics only when `Accept` prefers it to text; no header or `*/*` gets text.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let (mut openmetrics, mut text) = (0.0_f32, 0.0_f32);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let mut quality = 1.0_f32;
            let mut version_ok = true;
            for parameter in parts {
                match parameter.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                    Some(("q", value)) => quality = value.parse().unwrap_or(0.0),
                    Some(("version", value)) if media == "application/openmetrics-text" => {
                        version_ok = value == "1.0.0" || value == "0.0.1";
                    }
                    _ => {}
                }
            }
            match media.as_str() {
                "application/openmetrics-text" if version_ok => {
                    openmetrics = openmetrics.max(quality)
                }
                "text/plain" | "text/*" | "*/*" => text = text.max(quality),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics > text {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

/// Encodes every metric of `registry` in `format`.
pub fn encode(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    match format {
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?,
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry)?,
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_scrape_header_gets_openmetrics() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
    }

    #[test]
    fn text_unless_openmetrics_is_preferred() {
        for accept in [
            None,
            Some("*/*"),
            Some("text/plain"),
            Some("text/plain;version=0.0.4, application/openmetrics-text;q=0.5"),
            Some("application/openmetrics-text;q=0.5, */*;q=0.5"),
            Some("application/openmetrics-text;version=2.0.0"),
            Some("application/json"),
            Some("application/openmetrics-text;q=0"),
        ] {
            assert_eq!(Format::negotiate(accept), Format::Text, "{accept:?}");
        }
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text")),
            Format::OpenMetrics
        );
    }
}
