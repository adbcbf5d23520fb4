//! `--leader-election`: one replica at a time holds a coordination.k8s.io Lease and counts.
//!
//! The algorithm is client-go's: every retry period the candidate reads the Lease and, if it is
//! free, expired (no change observed for the lease duration, measured on our own clock so that
//! clock skew between nodes cannot matter) or already ours, writes it with the resourceVersion it
//! read, so two writers cannot both win. What client-go adds and we keep: **fencing**. A leader
//! that has not renewed within its renew deadline, shorter than the lease duration, gives up
//! leadership at once, before any standby can see the Lease expire; an error writing the Lease
//! therefore never leaves two replicas exporting. On shutdown a leader releases the Lease so that
//! a standby takes over within a retry period instead of a lease duration.
//!
//! Lifecycle, as [`Leadership`] reports it: `Pending` → `Standby` ⇄ … → `Leading(term)` →
//! `Fenced` (final: the process stops; a restart comes back as a candidate).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::config::LeaderElection;
use crate::snapshot::LeaseTerm;

/// Where this replica stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leadership {
    /// No attempt has finished yet: neither ready nor exporting.
    Pending,
    /// Another replica holds the Lease.
    Standby,
    /// This replica holds the Lease.
    Leading(Term),
    /// This replica held the Lease and could not keep it (renew deadline passed, or another
    /// holder took it). Final.
    Fenced(String),
}

/// How this replica came to hold the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    /// The Lease as this replica found it before taking it (`None`: it did not exist).
    pub previous: Option<LeaseTerm>,
    /// `leaseTransitions` while this replica holds it.
    pub transitions: u32,
}

impl Term {
    /// What a snapshot written during this term records.
    pub fn lease_term(&self, identity: &str) -> LeaseTerm {
        LeaseTerm {
            holder: identity.to_owned(),
            transitions: self.transitions,
        }
    }

    /// Whether a snapshot written during `written` by `identity` may be restored now: nobody
    /// else held the Lease since. Only this replica's own hold (still named in the Lease, or
    /// released by it, which keeps `leaseTransitions`) at the same transition count proves it.
    pub fn continues(&self, written: &LeaseTerm, identity: &str) -> bool {
        written.holder == identity
            && self.previous.as_ref().is_some_and(|previous| {
                previous.transitions == written.transitions
                    && (previous.holder == identity || previous.holder.is_empty())
            })
    }
}

/// The timings of the election, client-go's defaults in proportion to the lease duration
/// (15 s, 10 s, 2 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timings {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Timings {
    pub fn of(election: &LeaderElection) -> Self {
        let lease_duration = Duration::from_secs(election.duration_seconds);
        Self {
            lease_duration,
            renew_deadline: election.renew_deadline,
            retry_period: (lease_duration * 2 / 15).max(Duration::from_millis(100)),
        }
    }
}

/// What one read of the Lease tells a candidate to do.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    /// Nobody holds a valid Lease, or we do: write it as ours.
    Take,
    /// Another replica holds it and renewed within the lease duration.
    Wait,
}

/// client-go's rule. `observed_for` is how long the Lease has been seen unchanged by us.
fn step(spec: &LeaseSpec, identity: &str, observed_for: Duration, ours: Duration) -> Step {
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    let duration = spec
        .lease_duration_seconds
        .and_then(|seconds| u64::try_from(seconds).ok())
        .map_or(ours, Duration::from_secs);
    if holder.is_empty() || holder == identity || observed_for >= duration {
        Step::Take
    } else {
        Step::Wait
    }
}

fn now_micro() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// One replica's candidacy.
struct Candidate {
    api: Api<Lease>,
    name: String,
    identity: String,
    timings: Timings,
    /// The Lease's resourceVersion as last read, and when we first saw it.
    observed: Option<(String, Instant)>,
}

/// The outcome of one attempt.
enum Attempt {
    Holding(Term),
    HeldByOther(String),
}

impl Candidate {
    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let now = Instant::now();
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec_for(None, 0)),
            };
            self.api.create(&PostParams::default(), &lease).await?;
            return Ok(Attempt::Holding(Term {
                previous: None,
                transitions: 0,
            }));
        };
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let observed_since = match &self.observed {
            Some((seen, since)) if *seen == version => *since,
            _ => {
                self.observed = Some((version, now));
                now
            }
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        if step(
            &spec,
            &self.identity,
            now.duration_since(observed_since),
            self.timings.lease_duration,
        ) == Step::Wait
        {
            return Ok(Attempt::HeldByOther(holder));
        }
        let transitions = u32::try_from(spec.lease_transitions.unwrap_or(0)).unwrap_or(0);
        let (new_transitions, acquired) = if holder == self.identity {
            (transitions, spec.acquire_time.clone())
        } else {
            (transitions.saturating_add(1), None)
        };
        let mut taken = lease;
        taken.spec = Some(self.spec_for(acquired, new_transitions));
        self.api
            .replace(&self.name, &PostParams::default(), &taken)
            .await?;
        Ok(Attempt::Holding(Term {
            previous: Some(LeaseTerm {
                holder,
                transitions,
            }),
            transitions: new_transitions,
        }))
    }

    fn spec_for(&self, acquired: Option<MicroTime>, transitions: u32) -> LeaseSpec {
        let now = now_micro();
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: i32::try_from(self.timings.lease_duration.as_secs()).ok(),
            acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: i32::try_from(transitions).ok(),
            ..LeaseSpec::default()
        }
    }

    /// Gives the Lease up if it is still ours: holder cleared, transitions kept, duration 1 s,
    /// as client-go's ReleaseOnCancel does.
    async fn release(&mut self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(false);
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(false);
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(false);
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now_micro());
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await?;
        Ok(true)
    }
}

/// A running candidacy: its reports, and the task that ends it.
pub struct Election {
    pub leadership: watch::Receiver<Leadership>,
    release: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Election {
    /// Stops competing; a leader releases the Lease first. Call it after the last snapshot.
    pub async fn release(self) {
        let _ = self.release.send(true);
        let _ = self.task.await;
    }
}

/// Starts competing for the Lease named in `election`.
pub fn start(client: kube::Client, election: &LeaderElection) -> Election {
    let candidate = Candidate {
        api: Api::namespaced(client, &election.namespace),
        name: election.lease_name.clone(),
        identity: election.identity.clone(),
        timings: Timings::of(election),
        observed: None,
    };
    info!(
        lease = %election.lease_name,
        namespace = %election.namespace,
        identity = %election.identity,
        renew_deadline = ?candidate.timings.renew_deadline,
        "competing for the Lease"
    );
    let (report, leadership) = watch::channel(Leadership::Pending);
    let (release, released) = watch::channel(false);
    let task = tokio::spawn(compete(candidate, report, released));
    Election {
        leadership,
        release,
        task,
    }
}

async fn compete(
    mut candidate: Candidate,
    report: watch::Sender<Leadership>,
    mut released: watch::Receiver<bool>,
) {
    let timings = candidate.timings;
    // While leading: when the last successful renewal happened.
    let mut renewed: Option<Instant> = None;
    loop {
        // A leader's attempt may not outlast its deadline: a hanging API call fences like a
        // failed one.
        let budget = match renewed {
            Some(at) => (at + timings.renew_deadline).saturating_duration_since(Instant::now()),
            None => timings.lease_duration,
        };
        let attempt = tokio::select! {
            attempt = tokio::time::timeout(budget, candidate.try_acquire_or_renew()) => attempt,
            _ = released.wait_for(|release| *release) => break,
        };
        match attempt {
            Ok(Ok(Attempt::Holding(term))) => {
                if renewed.is_none() {
                    info!(transitions = term.transitions, previous = ?term.previous, "acquired the Lease");
                    report.send_replace(Leadership::Leading(term));
                }
                renewed = Some(Instant::now());
            }
            Ok(Ok(Attempt::HeldByOther(holder))) => {
                if renewed.is_some() {
                    fence(&report, format!("the Lease is held by {holder}"));
                    return;
                }
                if *report.borrow() != Leadership::Standby {
                    info!(%holder, "standing by: another replica holds the Lease");
                    report.send_replace(Leadership::Standby);
                }
            }
            Ok(Err(error)) => {
                warn!(%error, "cannot read or write the Lease; retrying");
            }
            Err(_) => warn!(
                ?budget,
                "the Lease request did not answer in time; retrying"
            ),
        }
        if let Some(at) = renewed
            && at.elapsed() >= timings.renew_deadline
        {
            fence(
                &report,
                format!(
                    "no renewal of the Lease within {:?}",
                    timings.renew_deadline
                ),
            );
            return;
        }
        let pause = match renewed {
            Some(at) => timings
                .retry_period
                .min((at + timings.renew_deadline).saturating_duration_since(Instant::now())),
            None => timings.retry_period,
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = released.wait_for(|release| *release) => break,
        }
    }
    if renewed.is_some() {
        match candidate.release().await {
            Ok(true) => info!("released the Lease"),
            Ok(false) => {}
            Err(error) => warn!(%error, "cannot release the Lease; it expires by itself"),
        }
    }
}

fn fence(report: &watch::Sender<Leadership>, why: String) {
    tracing::error!(reason = %why, "lost leadership; stopping at once");
    report.send_replace(Leadership::Fenced(why));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: Some(seconds),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_valid_lease_of_another_holder_is_left_alone_until_it_expires() {
        let ours = Duration::from_secs(15);
        let held = spec(Some("b"), 15);
        assert_eq!(step(&held, "a", Duration::from_secs(14), ours), Step::Wait);
        assert_eq!(step(&held, "a", Duration::from_secs(15), ours), Step::Take);
        assert_eq!(
            step(&held, "b", Duration::ZERO, ours),
            Step::Take,
            "ours: renew"
        );
        assert_eq!(
            step(&spec(None, 1), "a", Duration::ZERO, ours),
            Step::Take,
            "released"
        );
        assert_eq!(
            step(&spec(Some(""), 15), "a", Duration::ZERO, ours),
            Step::Take
        );
    }

    #[test]
    fn a_snapshot_continues_only_a_term_nobody_else_held_since() {
        let written = LeaseTerm {
            holder: "a".into(),
            transitions: 3,
        };
        let term = |holder: &str, transitions| Term {
            previous: Some(LeaseTerm {
                holder: holder.into(),
                transitions,
            }),
            transitions: 0,
        };
        assert!(term("a", 3).continues(&written, "a"), "still ours");
        assert!(term("", 3).continues(&written, "a"), "released by us");
        assert!(!term("b", 4).continues(&written, "a"), "b took it");
        assert!(
            !term("", 4).continues(&written, "a"),
            "b took and released it"
        );
        assert!(
            !term("a", 5).continues(&written, "a"),
            "we lost it and took it back"
        );
        assert!(!term("a", 3).continues(&written, "b"), "another pod's file");
        let created = Term {
            previous: None,
            transitions: 0,
        };
        assert!(!created.continues(&written, "a"), "the Lease was deleted");
    }
}
