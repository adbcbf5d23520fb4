//! `--state-file` over a process' life: whether to restore a snapshot when counting begins, and
//! the writer that persists each cut a scrape served.
//!
//! Counting begins at start, or under leader election when this replica acquires the Lease: only
//! then is the file read, and its age and Lease term checked, so a standby that waited hours never
//! diffs against what it wrote before another replica led. Each cut is the ledger exactly as it
//! was when the store's values a scrape serves were published; persisting cuts, and nothing in
//! between, makes a restart count what Prometheus had not seen, and nothing it had.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::{Config, SourceConfig};
use crate::ingest::Ingest;
use crate::leader::Term;
use crate::snapshot::{self, LeaseTerm, StateError, WatchPrint};

/// Where the snapshots go and what identifies them.
pub struct Persistence {
    path: PathBuf,
    max_age: Duration,
    prints: Arc<[WatchPrint]>,
    /// Under leader election: this replica's identity.
    identity: Option<String>,
}

/// Why a snapshot was not restored.
#[derive(Debug, thiserror::Error)]
pub enum NotRestored {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "written while {written} held the Lease (transitions {transitions}); another replica has held it since"
    )]
    OtherTerm { written: String, transitions: u32 },
    #[error(
        "written without leader election; under election only a snapshot of this replica's own term is trusted"
    )]
    NoTerm,
}

impl Persistence {
    pub fn new(config: &Config) -> Option<Self> {
        let path = config.state_file.clone()?;
        let SourceConfig::Kube { watches } = &config.source else {
            return None;
        };
        let filters = config.filters.describe();
        let prints = watches
            .iter()
            .map(|watch| WatchPrint::new(&watch.describe(), &filters))
            .collect();
        Some(Self {
            path,
            max_age: config.state_file_max_age,
            prints,
            identity: config
                .leader_election
                .as_ref()
                .map(|election| election.identity.clone()),
        })
    }

    pub fn prints(&self) -> &[WatchPrint] {
        &self.prints
    }

    /// What snapshots written in `term` record.
    pub fn lease_term(&self, term: Option<&Term>) -> Option<LeaseTerm> {
        Some(term?.lease_term(self.identity.as_deref()?))
    }

    /// As counting begins: restores the snapshot if it is sound, else leaves the ledger to take
    /// its baseline, saying why.
    pub fn restore_into(&self, ingest: &mut Ingest, term: Option<&Term>) {
        let path = self.path.display();
        match self.sound_snapshot(term) {
            Ok(snapshot) => {
                let restored = ingest.restore(snapshot, &self.prints);
                info!(
                    %path,
                    events = restored.events,
                    tombstones = restored.tombstones,
                    counting_watches = restored.counting,
                    rebaselined_watches = restored.rebaselined,
                    "state restored; the first list is diffed against it"
                );
                if restored.rebaselined > 0 {
                    warn!(
                        %path,
                        watches = restored.rebaselined,
                        "the snapshot was taken before a watch's first list completed, or under other filters: Events it does not know take a baseline"
                    );
                }
            }
            Err(NotRestored::State(StateError::Missing(_))) => {
                info!(%path, "no state file yet; the first list is the baseline");
            }
            Err(error) => {
                warn!(%path, %error, "state file not used; the first list is the baseline");
            }
        }
    }

    fn sound_snapshot(&self, term: Option<&Term>) -> Result<snapshot::Snapshot, NotRestored> {
        let snapshot = snapshot::load(&self.path, self.max_age)?;
        if let (Some(term), Some(identity)) = (term, &self.identity) {
            let Some(written) = &snapshot.lease else {
                return Err(NotRestored::NoTerm);
            };
            if !term.continues(written, identity) {
                return Err(NotRestored::OtherTerm {
                    written: written.holder.clone(),
                    transitions: written.transitions,
                });
            }
        }
        Ok(snapshot)
    }

    /// A writer for this file.
    pub fn writer(&self) -> Writer {
        Writer::start(self.path.clone())
    }
}

/// Writes each cut in the background and then answers the scrape that asked for it, so that a
/// scrape never shows values the state file does not hold yet. Scrapes take one cut at a time,
/// so cuts never queue.
pub struct Writer {
    cuts: mpsc::Sender<(Vec<u8>, Option<oneshot::Sender<()>>)>,
    task: JoinHandle<()>,
}

impl Writer {
    fn start(path: PathBuf) -> Self {
        let (cuts, mut submitted) = mpsc::channel::<(Vec<u8>, Option<oneshot::Sender<()>>)>(2);
        let task = tokio::spawn(async move {
            while let Some((bytes, written)) = submitted.recv().await {
                let path = path.clone();
                let outcome = tokio::task::spawn_blocking(move || {
                    snapshot::write_atomic(&path, &bytes).map(|()| bytes.len())
                })
                .await;
                match outcome {
                    Ok(Ok(bytes)) => debug!(bytes, "state snapshot written"),
                    // The scrape is served all the same: a full disk must not stop monitoring.
                    Ok(Err(error)) => warn!(%error, "cannot write the state file"),
                    Err(error) => warn!(%error, "the state file writer failed"),
                }
                if let Some(written) = written {
                    let _ = written.send(());
                }
            }
        });
        Self { cuts, task }
    }

    /// Writes `bytes`, then answers `written`.
    pub async fn submit(&self, bytes: Vec<u8>, written: Option<oneshot::Sender<()>>) {
        // The task ends only after `finish` drops the sender.
        let _ = self.cuts.send((bytes, written)).await;
    }

    /// Writes what is pending and stops.
    pub async fn finish(self) {
        drop(self.cuts);
        let _ = self.task.await;
    }
}
