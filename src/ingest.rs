//! The one-way path from a source's signals through the ledger into the series store.
//!
//! Synchronous and owned by a single task, so the ledger needs no lock.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tracing::{info, warn};

use crate::classify::{Classifier, MAX_CLASSES_PER_REASON};
use crate::config::LabelFilters;
use crate::ledger::{Ledger, NamedAt, Outcome, TombstoneLimits, WatchId};
use crate::metrics::SelfStats;
use crate::snapshot;
use crate::source::{Delivery, ListPlan, Observation, Signal, unix_seconds};
use crate::store::{KeyScratch, SeriesStore};

pub struct Ingest {
    ledger: Ledger,
    store: Arc<SeriesStore>,
    stats: Arc<SelfStats>,
    filters: LabelFilters,
    classifier: Classifier,
    scratch: KeyScratch,
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
            classifier: Classifier::new(Vec::new(), MAX_CLASSES_PER_REASON),
            scratch: KeyScratch::default(),
        }
    }

    /// Classes from the catalogue and the user's rules (`--config.file`).
    pub fn with_classifier(mut self, classifier: Classifier) -> Self {
        self.classifier = classifier;
        self
    }

    pub fn with_tombstone_limits(mut self, limits: TombstoneLimits) -> Self {
        self.ledger = self.ledger.with_tombstone_limits(limits);
        self
    }

    /// Restores a `--state-file` snapshot before the first signal.
    pub fn restore(
        &mut self,
        snapshot: snapshot::Snapshot,
        prints: &[snapshot::WatchPrint],
    ) -> snapshot::Restored {
        let restored = snapshot::restore(&mut self.ledger, snapshot, prints);
        self.publish_size();
        restored
    }

    /// A consistent cut: the counter values scrapes will serve are published from the store as
    /// they are now, and the ledger that produced exactly them is encoded for `--state-file`. A
    /// restart from this snapshot counts every occurrence after the cut once, and none before.
    pub fn cut(
        &mut self,
        prints: &[snapshot::WatchPrint],
        lease: Option<&snapshot::LeaseTerm>,
    ) -> Vec<u8> {
        self.store.publish();
        self.stats
            .synced_published
            .store(self.stats.is_synced(), Ordering::Release);
        snapshot::encode(&self.ledger, prints, lease)
    }

    pub fn tracked_events(&self) -> usize {
        self.ledger.len()
    }

    pub fn tombstones(&self) -> usize {
        self.ledger.tombstone_count()
    }

    pub fn handle(&mut self, signal: Signal) {
        let result = match signal {
            Signal::ListPlan(plan) => {
                self.plan(plan);
                Ok(())
            }
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

    fn plan(&mut self, plan: ListPlan) {
        if let Some(expected) = plan.expected {
            self.ledger.reserve_for_list(expected);
        }
        self.stats.report_watch(usize::from(plan.watch), |report| {
            if report.streaming != Some(plan.streaming) {
                let list = if plan.streaming {
                    "streaming"
                } else {
                    "paginated"
                };
                info!(
                    watch = plan.watch,
                    list,
                    expected = plan.expected,
                    "listing"
                );
            }
            report.streaming = Some(plan.streaming);
        });
    }

    fn list_started(&mut self, watch: WatchId) -> Result<(), crate::ledger::LedgerError> {
        if self.ledger.list_started(watch)? {
            self.stats.relists.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.report_watch(usize::from(watch), |report| {
            report.lists += 1;
            report.last_list_millis = crate::metrics::unix_millis();
        });
        Ok(())
    }

    fn object(
        &mut self,
        watch: WatchId,
        delivery: Delivery,
        observation: Observation,
    ) -> Result<(), crate::ledger::LedgerError> {
        let text = observation.text();
        if !self
            .filters
            .admits(text.namespace, text.reason, text.event_type)
        {
            return Ok(());
        }
        let mut values = text.label_values();
        let known = self.ledger.series_of(observation.uid);
        // An update of a known Event usually keeps its labels: skip classifying and interning
        // then. Its class is the one it got when first seen.
        let verdict;
        let series = match known {
            Some(known) if self.store.has_labels_but_class(known, &values) => known,
            _ => {
                verdict = self.classifier.classify(text.reason, text.message);
                if verdict.capped {
                    self.stats.classes_capped.fetch_add(1, Ordering::Relaxed);
                }
                values.class = &verdict.class;
                self.store.intern(&values, &mut self.scratch)
            }
        };
        // Only creations and deletions need the object's name (tombstones), so updates of known
        // Events pay for neither the hash nor the clock.
        let named = (known.is_none() || delivery == Delivery::Deleted).then(|| NamedAt {
            name: text.object_key(),
            now: snapshot::unix_now(),
        });
        let (uid, occurrences) = (observation.uid, observation.occurrences);
        let outcome = match delivery {
            Delivery::Listed | Delivery::Applied => {
                self.ledger
                    .observe(watch, uid, series, occurrences, named)?
            }
            Delivery::Deleted => self.ledger.delete(watch, uid, series, occurrences, named)?,
        };
        match outcome {
            Outcome::Counted(increment) => {
                self.store.add(increment.series, increment.delta);
                let timestamp = unix_seconds(text.last_seen);
                self.store.record_exemplar(increment.series, |exemplar| {
                    exemplar.set(
                        values.kind,
                        text.involved_name,
                        text.node,
                        increment.delta,
                        timestamp,
                    )
                });
            }
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
        self.stats
            .tombstones
            .store(self.ledger.tombstone_count() as u64, Ordering::Relaxed);
    }
}
