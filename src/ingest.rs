//! The one-way path from a source's signals through the ledger into the series store.
//!
//! Synchronous and owned by a single task, so the ledger needs no lock.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tracing::{info, warn};

use crate::config::LabelFilters;
use crate::ledger::{Ledger, Outcome, WatchId};
use crate::metrics::SelfStats;
use crate::source::{Delivery, Observation, Signal};
use crate::state;
use crate::store::{KeyScratch, SeriesStore};

pub struct Ingest {
    ledger: Ledger,
    store: Arc<SeriesStore>,
    stats: Arc<SelfStats>,
    filters: LabelFilters,
    scratch: KeyScratch,
    list_started_once: Vec<bool>,
    /// The ledger changed since the last snapshot.
    dirty: bool,
}

impl Ingest {
    pub fn new(
        watches: usize,
        count_existing: bool,
        filters: LabelFilters,
        store: Arc<SeriesStore>,
        stats: Arc<SelfStats>,
    ) -> Self {
        Self {
            ledger: Ledger::new(watches, count_existing),
            store,
            stats,
            filters,
            scratch: KeyScratch::default(),
            list_started_once: vec![false; watches],
            dirty: false,
        }
    }

    /// Restores a `--state-file` snapshot before the first signal; returns the Events restored.
    pub fn restore(&mut self, snapshot: state::Snapshot, fingerprints: &[u64]) -> usize {
        let restored = state::restore(&mut self.ledger, snapshot, fingerprints);
        self.publish_size();
        restored
    }

    /// The ledger encoded for `--state-file` if it changed since the last call.
    pub fn take_snapshot(&mut self, fingerprints: &[u64]) -> Option<Vec<u8>> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        Some(state::encode(&self.ledger, fingerprints))
    }

    pub fn handle(&mut self, signal: Signal) {
        self.dirty |= !matches!(signal, Signal::WatchError { .. });
        let result = match signal {
            Signal::ListStarted(watch) => self.list_started(watch),
            Signal::Object {
                watch,
                delivery,
                event,
            } => {
                self.stats.record_update();
                match event {
                    Ok(observation) => self.object(watch, delivery, observation),
                    Err(malformed) => {
                        self.stats.malformed_objects.fetch_add(1, Ordering::Relaxed);
                        warn!(
                            watch,
                            name = %malformed.name,
                            reason = %malformed.reason,
                            position = malformed.position.as_deref().unwrap_or(""),
                            "skipped a malformed Event"
                        );
                        Ok(())
                    }
                }
            }
            Signal::ListDone(watch) => self.list_done(watch),
            Signal::WatchError { watch, message } => {
                self.stats.watch_errors.fetch_add(1, Ordering::Relaxed);
                warn!(watch, error = %message, "watch error; retrying with backoff");
                Ok(())
            }
        };
        if let Err(error) = result {
            warn!(%error, "signal for an unknown watch ignored");
        }
    }

    fn list_started(&mut self, watch: WatchId) -> Result<(), crate::ledger::LedgerError> {
        self.ledger.list_started(watch)?;
        if let Some(started) = self.list_started_once.get_mut(usize::from(watch)) {
            if *started {
                self.stats.relists.fetch_add(1, Ordering::Relaxed);
            }
            *started = true;
        }
        Ok(())
    }

    fn object(
        &mut self,
        watch: WatchId,
        delivery: Delivery,
        observation: Observation,
    ) -> Result<(), crate::ledger::LedgerError> {
        let labels = &observation.labels;
        if !self
            .filters
            .admits(&labels.namespace, &labels.reason, &labels.event_type)
        {
            return Ok(());
        }
        let values = observation.labels.as_values();
        // An update of a known Event usually keeps its labels: skip interning then.
        let series = match self.ledger.series_of(observation.uid) {
            Some(known) if self.store.has_labels(known, &values) => known,
            _ => self.store.intern(&values, &mut self.scratch),
        };
        let outcome = match delivery {
            Delivery::Listed | Delivery::Applied => {
                self.ledger
                    .observe(watch, observation.uid, series, observation.occurrences)?
            }
            Delivery::Deleted => {
                self.ledger
                    .delete(watch, observation.uid, series, observation.occurrences)?
            }
        };
        match outcome {
            Outcome::Counted(increment) => self.store.add(increment.series, increment.delta),
            Outcome::Decreased => {
                self.stats.count_decreases.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Remembered => {}
        }
        self.publish_size();
        Ok(())
    }

    fn list_done(&mut self, watch: WatchId) -> Result<(), crate::ledger::LedgerError> {
        let completion = self.ledger.list_done(watch)?;
        self.publish_size();
        info!(
            watch,
            first = completion.first,
            forgotten = completion.forgotten,
            tracked = self.ledger.len(),
            "list complete"
        );
        if completion.first && self.ledger.all_synced() {
            self.stats.synced.store(true, Ordering::Release);
            info!("every watch completed its first list; ready");
        }
        Ok(())
    }

    fn publish_size(&self) {
        self.stats
            .tracked_events
            .store(self.ledger.len() as u64, Ordering::Relaxed);
    }
}
