//! Wiring: the Kubernetes client, the watches, the ingest task and the server.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::{Config, LeaderElection, SourceConfig};
use crate::ingest::Ingest;
use crate::metrics::{self, Format, SelfStats};
use crate::server::{self, ServerState};
use crate::source::Signal;
use crate::source::demo::{Recording, RecordingError};
use crate::source::kube::watch_events;
use crate::source::replay::{ReplayError, ReplayInput};
use crate::state;
use crate::store::SeriesStore;
use crate::webconfig::{WebConfig, WebConfigError};
use kube_lease_manager::LeaseManagerBuilder;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("no Kubernetes configuration found (KUBECONFIG, ~/.kube/config or in-cluster): {0}")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error(transparent)]
    WebConfig(#[from] WebConfigError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error("cannot set up leader election: {0}")]
    Lease(#[source] kube_lease_manager::LeaseManagerError),
    #[error("--once needs --replay")]
    OnceWithoutReplay,
    #[error("encoding the metrics failed")]
    Encode,
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        #[source]
        source: std::io::Error,
    },
}

/// A started exporter; dropping it does not stop it, [`Running::stop`] does.
pub struct Running {
    pub local_addr: SocketAddr,
    pub store: Arc<SeriesStore>,
    pub stats: Arc<SelfStats>,
    stop: watch::Sender<bool>,
    /// Why the exporter must stop on its own (a leader that lost its Lease).
    failed: watch::Receiver<Option<String>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops watching and serving, and waits for both to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Runs until `shutdown` completes, or until the exporter fails on its own: then it stops at
    /// once and returns why.
    pub async fn until(self, shutdown: impl Future<Output = ()>) -> Result<(), String> {
        let mut failed = self.failed.clone();
        let failure = async move {
            match failed.wait_for(Option::is_some).await {
                Ok(reason) => reason.clone().unwrap_or_default(),
                Err(_) => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            () = shutdown => Ok(()),
            reason = failure => Err(reason),
        };
        self.stop().await;
        outcome
    }
}

async fn kube_client(config: &Config) -> Result<kube::Client, StartError> {
    let client_config = match &config.kubeconfig {
        Some(path) => {
            let kubeconfig =
                Kubeconfig::read_from(path).map_err(|source| StartError::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|source| StartError::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                })?
        }
        None => kube::Config::infer().await.map_err(StartError::Infer)?,
    };
    kube::Client::try_from(client_config).map_err(StartError::Client)
}

/// The signals of the configured source, as one stream.
async fn signals(
    config: &Config,
    stats: &Arc<SelfStats>,
    failed: watch::Sender<Option<String>>,
) -> Result<BoxStream<'static, Signal>, StartError> {
    match &config.source {
        SourceConfig::Kube { watches } => {
            let client = kube_client(config).await?;
            match &config.leader_election {
                None => Ok(watch_events(client, watches).boxed()),
                Some(election) => {
                    elected(client, watches.clone(), election, stats.clone(), failed).await
                }
            }
        }
        SourceConfig::Replay { path } => {
            // Opened here so a missing or unreadable file fails start-up.
            let input = ReplayInput::open(path)?;
            let (sender, receiver) = mpsc::channel(SIGNAL_BUFFER);
            tokio::task::spawn_blocking(move || {
                let mut emit = |signal| {
                    // The receiver is gone only when the exporter stops.
                    let _ = sender.blocking_send(signal);
                };
                match input.run(&mut emit) {
                    Ok(()) => info!("replay input fully read; serving its counters"),
                    Err(error) => tracing::error!(%error, "replay stopped; serving what was read"),
                }
            });
            Ok(receiver_stream(receiver))
        }
        SourceConfig::Demo { speed } => {
            let recording = Recording::bundled()?;
            let (sender, receiver) = mpsc::channel(SIGNAL_BUFFER);
            tokio::spawn(recording.play(*speed, sender));
            Ok(receiver_stream(receiver))
        }
    }
}

const SIGNAL_BUFFER: usize = 1024;

/// The watches, once this replica holds the Lease. A standby neither watches nor exports Event
/// series, and is ready. A leader that loses the Lease reports it through `failed` and the
/// exporter stops at once, so that Kubernetes restarts it as a standby.
async fn elected(
    client: kube::Client,
    watches: Vec<crate::source::kube::WatchSpec>,
    election: &LeaderElection,
    stats: Arc<SelfStats>,
    failed: watch::Sender<Option<String>>,
) -> Result<BoxStream<'static, Signal>, StartError> {
    let grace = (election.duration_seconds / 3).max(1);
    let manager = LeaseManagerBuilder::new(client.clone(), &election.lease_name)
        .with_namespace(&election.namespace)
        .with_identity(&election.identity)
        .with_duration(election.duration_seconds)
        .with_grace(grace)
        .build()
        .await
        .map_err(StartError::Lease)?;
    let (mut leading, _lease_task) = manager.watch().await;
    stats.set_standby(true);
    info!(
        lease = %election.lease_name,
        namespace = %election.namespace,
        identity = %election.identity,
        "standing by for the Lease"
    );
    let (became_leader, lead) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        while !*leading.borrow_and_update() {
            if leading.changed().await.is_err() {
                let _ = failed.send(Some("the lease manager stopped".into()));
                return;
            }
        }
        info!("acquired the Lease; watching Events");
        stats.set_standby(false);
        let _ = became_leader.send(());
        loop {
            let changed = leading.changed().await;
            if changed.is_err() || !*leading.borrow() {
                tracing::error!(
                    "lost the Lease; stopping so that a restart comes back as a standby"
                );
                let _ = failed.send(Some("lost the leader-election Lease".into()));
                return;
            }
        }
    });
    Ok(futures::stream::once(async move {
        match lead.await {
            Ok(()) => watch_events(client, &watches).boxed(),
            Err(_) => futures::stream::empty().boxed(),
        }
    })
    .flatten()
    .boxed())
}

/// How often the web config and its certificates are checked for changes.
const WEB_CONFIG_POLL: Duration = Duration::from_secs(2);

/// How often the ledger is snapshotted to `--state-file` when it changed.
const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(5);

/// Where and for which watches the ledger is snapshotted.
struct Persistence {
    path: PathBuf,
    fingerprints: Arc<[u64]>,
}

impl Persistence {
    /// Writes a snapshot in the background if the ledger changed.
    fn write(&self, ingest: &mut Ingest) -> Option<JoinHandle<()>> {
        let bytes = ingest.take_snapshot(&self.fingerprints)?;
        let path = self.path.clone();
        Some(tokio::task::spawn_blocking(
            move || match state::write_atomic(&path, &bytes) {
                Ok(()) => {
                    debug!(path = %path.display(), bytes = bytes.len(), "state snapshot written")
                }
                Err(error) => warn!(path = %path.display(), %error, "cannot write the state file"),
            },
        ))
    }
}

/// Restores `--state-file` into `ingest` when it is fresh; a missing, stale or corrupt file falls
/// back to the baseline with a warning.
fn persistence(config: &Config, ingest: &mut Ingest) -> Option<Persistence> {
    let path = config.state_file.clone()?;
    let SourceConfig::Kube { watches } = &config.source else {
        return None;
    };
    let fingerprints: Arc<[u64]> = watches
        .iter()
        .map(|watch| state::fingerprint(&watch.describe()))
        .collect();
    match state::load(&path, config.state_file_max_age) {
        Ok(snapshot) => {
            let restored = ingest.restore(snapshot, &fingerprints);
            info!(path = %path.display(), restored, "state restored; the first list is diffed against it");
        }
        Err(state::StateError::Missing(_)) => {
            info!(path = %path.display(), "no state file yet; the first list is the baseline");
        }
        Err(error) => {
            warn!(path = %path.display(), %error, "state file not used; the first list is the baseline");
        }
    }
    Some(Persistence { path, fingerprints })
}

fn receiver_stream(receiver: mpsc::Receiver<Signal>) -> BoxStream<'static, Signal> {
    futures::stream::unfold(receiver, |mut receiver| async move {
        let signal = receiver.recv().await?;
        Some((signal, receiver))
    })
    .boxed()
}

fn new_ingest(config: &Config, store: &Arc<SeriesStore>, stats: &Arc<SelfStats>) -> Ingest {
    Ingest::new(
        config.source.watch_count(),
        config.count_existing,
        config.filters.clone(),
        store.clone(),
        stats.clone(),
    )
}

/// `--replay … --once`: reads the whole input and returns what `/metrics` would serve with no
/// Accept header.
pub fn replay_once(config: &Config) -> Result<String, StartError> {
    let SourceConfig::Replay { path } = &config.source else {
        return Err(StartError::OnceWithoutReplay);
    };
    let input = ReplayInput::open(path)?;
    let store = Arc::new(SeriesStore::new(config.max_series));
    let stats = Arc::new(SelfStats::default());
    let mut ingest = new_ingest(config, &store, &stats);
    input.run(&mut |signal| ingest.handle(signal))?;
    let registry = metrics::registry(store, stats);
    metrics::encode(&registry, Format::Text).map_err(|_| StartError::Encode)
}

/// Binds the listen address; every-interface `[::]` falls back to `0.0.0.0` on hosts without IPv6.
async fn bind(address: &str) -> Result<TcpListener, StartError> {
    let error = |source| StartError::Listen {
        address: address.to_owned(),
        source,
    };
    match TcpListener::bind(address).await {
        Ok(listener) => Ok(listener),
        Err(first) => match address.strip_prefix("[::]:") {
            Some(port) => TcpListener::bind(format!("0.0.0.0:{port}"))
                .await
                .map_err(|_| error(first)),
            None => Err(error(first)),
        },
    }
}

/// Starts the source and the server in the background.
pub async fn start(config: &Config) -> Result<Running, StartError> {
    // A second install (tests start several exporters in one process) is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Before anything else: a bad web config must stop start-up, not serve unprotected.
    let web = Arc::new(WebConfig::start(config.web_config_file.as_deref())?);
    let stats = Arc::new(SelfStats::default());
    let (failed_sender, failed) = watch::channel(None);
    let signals = signals(config, &stats, failed_sender).await?;
    let listener = bind(&config.listen_address).await?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Listen {
        address: config.listen_address.clone(),
        source,
    })?;

    let store = Arc::new(SeriesStore::new(config.max_series));
    let (stop, stopped) = watch::channel(false);
    let wait_stop = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };

    let mut ingest = new_ingest(config, &store, &stats);
    let persistence = persistence(config, &mut ingest);
    let ingest_stop = wait_stop(stopped.clone());
    let ingest_task = tokio::spawn(async move {
        let mut signals = signals;
        tokio::pin!(ingest_stop);
        let mut tick = tokio::time::interval(SNAPSHOT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut writing: Option<JoinHandle<()>> = None;
        loop {
            tokio::select! {
                signal = signals.next() => match signal {
                    Some(signal) => ingest.handle(signal),
                    None => break,
                },
                _ = tick.tick(), if persistence.is_some() => {
                    // One write at a time; a slow disk skips a round rather than queueing.
                    if writing.as_ref().is_none_or(|w| w.is_finished())
                        && let Some(persistence) = &persistence
                    {
                        writing = persistence.write(&mut ingest);
                    }
                }
                () = &mut ingest_stop => break,
            }
        }
        if let Some(persistence) = &persistence {
            if let Some(pending) = writing {
                let _ = pending.await;
            }
            if let Some(last) = persistence.write(&mut ingest) {
                let _ = last.await;
            }
        }
    });

    let state = Arc::new(ServerState::new(
        metrics::registry(store.clone(), stats.clone()),
        stats.clone(),
        config.telemetry_path.clone(),
        web.clone(),
    ));
    if config.web_config_file.is_some() {
        let reload_stop = wait_stop(stopped.clone());
        tokio::spawn(async move {
            tokio::pin!(reload_stop);
            let mut tick = tokio::time::interval(WEB_CONFIG_POLL);
            loop {
                tokio::select! {
                    _ = tick.tick() => match web.reload_if_changed() {
                        Ok(true) => info!("web config reloaded"),
                        Ok(false) => {}
                        Err(error) => warn!(%error, "web config not reloaded; the previous one stays in force"),
                    },
                    () = &mut reload_stop => break,
                }
            }
        });
    }
    let server_task = tokio::spawn(server::serve(listener, state, wait_stop(stopped)));

    let source = match &config.source {
        SourceConfig::Kube { watches } => watches
            .iter()
            .map(|w| w.describe())
            .collect::<Vec<_>>()
            .join("; "),
        SourceConfig::Replay { path } => format!("replay of {}", path.display()),
        SourceConfig::Demo { speed } => format!("demo recording at {speed}x"),
    };
    info!(
        listen = %local_addr,
        telemetry_path = %config.telemetry_path,
        source,
        filters = ?config.filters,
        count_existing = config.count_existing,
        max_series = config.max_series,
        kubeconfig = ?config.kubeconfig,
        web_config = ?config.web_config_file,
        "kube-event-metrics started"
    );
    if matches!(config.source, SourceConfig::Demo { .. }) {
        let host = match local_addr.ip() {
            ip if ip.is_unspecified() => "localhost".to_string(),
            ip => ip.to_string(),
        };
        info!(
            "demo running: open http://{host}:{}{}",
            local_addr.port(),
            config.telemetry_path
        );
    }
    Ok(Running {
        local_addr,
        store,
        stats,
        stop,
        failed,
        tasks: vec![ingest_task, server_task],
    })
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the default action (exit) still stops the process.
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    info!(signal = name, "shutting down");
}
