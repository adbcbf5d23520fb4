//! kube-event-metrics: Kubernetes Events as exact, bounded Prometheus counters.
//!
//! Data flows one way: source → ingest (ledger) → series store → server.

pub mod app;
pub mod classify;
pub mod config;
pub mod filters;
pub mod ingest;
pub mod leader;
pub mod ledger;
pub mod logging;
pub mod metrics;
pub mod persistence;
pub mod process;
pub mod recent;
pub mod server;
pub mod snapshot;
pub mod source;
pub mod store;
pub mod webconfig;
