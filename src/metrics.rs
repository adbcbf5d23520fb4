//! Exposition: a prometheus-client `Collector` that reads the series store and the self-metrics
//! at scrape time, so ingestion never waits on a scrape.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::store::SeriesStore;

/// The exporter's own counters and gauges, written by the ingest loop.
#[derive(Debug, Default)]
pub struct SelfStats {
    pub watch_updates: AtomicU64,
    pub watch_errors: AtomicU64,
    pub relists: AtomicU64,
    pub count_decreases: AtomicU64,
    pub malformed_objects: AtomicU64,
    pub tracked_events: AtomicU64,
    /// Milliseconds since the epoch of the last watch update; 0 until the first.
    pub last_update_millis: AtomicU64,
    pub synced: AtomicBool,
}

impl SelfStats {
    pub fn record_update(&self) {
        self.watch_updates.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        self.last_update_millis.store(now, Ordering::Relaxed);
    }

    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }
}

/// Reads the store and the self-metrics on each scrape.
#[derive(Debug)]
pub struct ExporterCollector {
    store: Arc<SeriesStore>,
    stats: Arc<SelfStats>,
}

const EVENTS_HELP: &str = "Occurrences of Kubernetes Events, counted from each Event's count.";

impl Collector for ExporterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        {
            let mut family =
                encoder.encode_descriptor("kube_events", EVENTS_HELP, None, MetricType::Counter)?;
            self.store.for_each_series(|sample| {
                family
                    .encode_family(&sample.labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&sample.value, None)
            })?;
        }
        let load = |value: &AtomicU64| value.load(Ordering::Relaxed);
        let stats = &self.stats;
        let counters: [(&str, &str, u64); 6] = [
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
        ];
        for (name, help, value) in counters {
            encoder
                .encode_descriptor(name, help, None, MetricType::Counter)?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }
        let gauges: [(&str, &str, u64); 5] = [
            (
                "kube_event_metrics_tracked_events",
                "Events remembered by the ledger (live Events seen by the watches).",
                load(&stats.tracked_events),
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
                u64::from(stats.is_synced()),
            ),
            (
                "kube_event_metrics_leader",
                "1 while this replica watches and exports Events (always 1 without leader election).",
                1,
            ),
        ];
        for (name, help, value) in gauges {
            encoder
                .encode_descriptor(name, help, None, MetricType::Gauge)?
                .encode_gauge(&value)?;
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
        Ok(())
    }
}

/// The registry served on the telemetry path.
pub fn registry(store: Arc<SeriesStore>, stats: Arc<SelfStats>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ExporterCollector { store, stats }));
    registry
}

/// Prometheus text format 0.0.4.
pub fn encode_text(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?;
    Ok(out)
}

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE as TEXT_CONTENT_TYPE;
