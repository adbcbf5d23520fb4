//! Wiring: the Kubernetes client, the watches, the ingest task and the server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::classify::{Classifier, MAX_CLASSES_PER_REASON};
use crate::config::{Config, SourceConfig};
use crate::filters::LabelFilters;
use crate::ingest::Ingest;
use crate::leader::{self, Election, Leadership, Term};
use crate::metrics::{self, Format, SelfStats};
use crate::persistence::Persistence;
use crate::recent::Recent;
use crate::server::StatusSource;
use crate::server::{self, CutRequester, ServerState};
use crate::source::Signal;
use crate::source::demo::{Recording, RecordingError};
use crate::source::replay::{ReplayError, ReplayInput};
use crate::source::watch::watch_events;
use crate::store::SeriesStore;
use crate::webconfig::{WebConfig, WebConfigError};

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
    ingest_task: JoinHandle<()>,
    election: Option<Election>,
    server_task: JoinHandle<()>,
}

impl Running {
    /// Stops watching and serving, and waits for both to finish: the last snapshot is written,
    /// then the Lease released, so a standby takes over at once and finds nothing left to do.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.ingest_task.await;
        if let Some(election) = self.election {
            election.release().await;
        }
        let _ = self.server_task.await;
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

/// Where observations come from. A cluster's watches open only once counting begins (under
/// leader election: once this replica leads), a replay or the demo at once.
enum Feed {
    Kube {
        client: kube::Client,
        watches: Vec<crate::source::watch::WatchSpec>,
    },
    Ready(BoxStream<'static, Signal>),
}

impl Feed {
    async fn open(config: &Config) -> Result<Feed, StartError> {
        match &config.source {
            SourceConfig::Kube { watches } => Ok(Feed::Kube {
                client: kube_client(config).await?,
                watches: watches.clone(),
            }),
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
                        Err(error) => {
                            tracing::error!(%error, "replay stopped; serving what was read")
                        }
                    }
                });
                Ok(Feed::Ready(receiver_stream(receiver)))
            }
            SourceConfig::Demo { speed } => {
                let recording = Recording::bundled()?;
                let (sender, receiver) = mpsc::channel(SIGNAL_BUFFER);
                tokio::spawn(recording.play(*speed, sender));
                Ok(Feed::Ready(receiver_stream(receiver)))
            }
        }
    }

    fn client(&self) -> Option<&kube::Client> {
        match self {
            Feed::Kube { client, .. } => Some(client),
            Feed::Ready(_) => None,
        }
    }

    fn signals(self) -> BoxStream<'static, Signal> {
        match self {
            Feed::Kube { client, watches } => watch_events(client, &watches).boxed(),
            Feed::Ready(stream) => stream,
        }
    }
}

const SIGNAL_BUFFER: usize = 1024;

/// How often the web config and its certificates are checked for changes.
const WEB_CONFIG_POLL: Duration = Duration::from_secs(2);

type CutRequests = mpsc::Receiver<tokio::sync::oneshot::Sender<()>>;

/// The ingest task's inputs: become leader → restore or baseline → count → fence or stop.
struct Counting {
    feed: Feed,
    ingest: Ingest,
    stats: Arc<SelfStats>,
    persistence: Option<Persistence>,
    leadership: Option<watch::Receiver<Leadership>>,
    cuts: Option<CutRequests>,
    stopped: watch::Receiver<bool>,
    failed: watch::Sender<Option<String>>,
}

/// Answers cut requests while nothing is counted: there is nothing to publish or persist.
async fn answer_cuts(cuts: &mut Option<CutRequests>) {
    match cuts {
        Some(cuts) => {
            while let Some(reply) = cuts.recv().await {
                let _ = reply.send(());
            }
            std::future::pending().await
        }
        None => std::future::pending().await,
    }
}

/// The next scrape's request for a cut. Never completes once the server is gone: a cut then would
/// persist what no scrape served, and the next start would not count it.
async fn next_cut(cuts: &mut Option<CutRequests>) -> tokio::sync::oneshot::Sender<()> {
    if let Some(requests) = cuts {
        if let Some(reply) = requests.recv().await {
            return reply;
        }
        *cuts = None;
    }
    std::future::pending().await
}

/// Completes when this replica is fenced, with why; never without leader election.
async fn fenced(leadership: &mut Option<watch::Receiver<Leadership>>) -> String {
    let Some(leadership) = leadership else {
        return std::future::pending().await;
    };
    match leadership
        .wait_for(|now| matches!(now, Leadership::Fenced(_)))
        .await
    {
        Ok(now) => match &*now {
            Leadership::Fenced(why) => why.clone(),
            _ => String::new(),
        },
        Err(_) => "the leader election stopped".into(),
    }
}

impl Counting {
    /// Waits for the Lease (without election: at once); `None` if the exporter stops first.
    async fn lead(&mut self) -> Option<Option<Term>> {
        let Some(leadership) = self.leadership.as_mut() else {
            return Some(None);
        };
        let stats = self.stats.clone();
        let wait = async {
            loop {
                match &*leadership.borrow_and_update() {
                    Leadership::Pending => {}
                    Leadership::Standby => stats.set_standby(true),
                    Leadership::Leading(term) => return Ok(term.clone()),
                    Leadership::Fenced(why) => return Err(why.clone()),
                }
                if leadership.changed().await.is_err() {
                    return Err("the leader election stopped".to_string());
                }
            }
        };
        tokio::select! {
            outcome = wait => match outcome {
                Ok(term) => Some(Some(term)),
                Err(why) => {
                    let _ = self.failed.send(Some(why));
                    None
                }
            },
            () = answer_cuts(&mut self.cuts) => None,
            _ = self.stopped.wait_for(|stop| *stop) => None,
        }
    }

    async fn run(mut self) {
        let Some(term) = self.lead().await else {
            return;
        };
        if let Some(persistence) = &self.persistence {
            persistence.restore_into(&mut self.ingest, term.as_ref());
        }
        if term.is_some() {
            info!("leading: watching Events");
            self.stats.set_standby(false);
        }
        let writer = self.persistence.as_ref().map(Persistence::writer);
        let lease = self
            .persistence
            .as_ref()
            .and_then(|persistence| persistence.lease_term(term.as_ref()));
        let mut signals = self.feed.signals();
        loop {
            let cut = tokio::select! {
                biased;
                _ = self.stopped.wait_for(|stop| *stop) => break,
                why = fenced(&mut self.leadership) => {
                    // Before anything else: no Event series from a replica that is not leader.
                    self.stats.standby.store(true, std::sync::atomic::Ordering::Release);
                    let _ = self.failed.send(Some(format!("lost leadership: {why}")));
                    break;
                }
                reply = next_cut(&mut self.cuts) => Some(reply),
                signal = signals.next() => match signal {
                    Some(signal) => {
                        self.ingest.handle(signal);
                        if drain(&mut signals, &mut self.ingest) {
                            continue;
                        }
                        break;
                    }
                    None => break,
                },
            };
            match (&self.persistence, &writer) {
                (Some(persistence), Some(writer)) => {
                    let bytes = self.ingest.cut(persistence.prints(), lease.as_ref());
                    writer.submit(bytes, cut).await;
                }
                _ => {
                    if let Some(reply) = cut {
                        let _ = reply.send(());
                    }
                }
            }
        }
        // The last cut a scrape served is what persists; what was counted after it no scrape
        // saw, so the next start counts it again.
        if let Some(writer) = writer {
            writer.finish().await;
        }
    }
}

/// Signals handled in one go once one has arrived, before a stop, a fence or a cut is looked for
/// again: setting up those three waits per signal cost more than handling it, and a few
/// thousand signals take a few milliseconds.
const DRAIN: usize = 1024;

/// Handles what has already arrived, up to [`DRAIN`] signals; false once the signals ended.
fn drain(signals: &mut BoxStream<'static, Signal>, ingest: &mut Ingest) -> bool {
    for _ in 0..DRAIN {
        match signals.next().now_or_never() {
            Some(Some(signal)) => ingest.handle(signal),
            Some(None) => return false,
            None => break,
        }
    }
    true
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
    .with_tombstone_limits(config.tombstones)
    .with_classifier(Classifier::new(
        config.class_rules.clone(),
        MAX_CLASSES_PER_REASON,
    ))
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
    let feed = Feed::open(config).await?;
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

    let election = match (&config.leader_election, feed.client()) {
        (Some(settings), Some(client)) => {
            // Neither exporting nor ready until the first attempt says where we stand.
            stats
                .standby
                .store(true, std::sync::atomic::Ordering::Release);
            Some(leader::start(client.clone(), settings))
        }
        _ => None,
    };
    let persistence = Persistence::new(config);
    let (cut_requester, cut_requests) = match &persistence {
        Some(_) => {
            stats
                .serve_published
                .store(true, std::sync::atomic::Ordering::Release);
            let (sender, receiver) = mpsc::channel(4);
            (Some(CutRequester(sender)), Some(receiver))
        }
        None => (None, None),
    };
    let counting = Counting {
        feed,
        ingest: new_ingest(config, &store, &stats),
        stats: stats.clone(),
        persistence,
        leadership: election.as_ref().map(|e| e.leadership.clone()),
        cuts: cut_requests,
        stopped: stopped.clone(),
        failed: failed_sender,
    };
    let ingest_task = tokio::spawn(counting.run());

    let watches: Vec<String> = match &config.source {
        SourceConfig::Kube { watches } => watches.iter().map(|w| w.describe()).collect(),
        SourceConfig::Replay { .. } | SourceConfig::Demo { .. } => Vec::new(),
    };
    let source = match &config.source {
        SourceConfig::Kube { .. } => watches.join("; "),
        SourceConfig::Replay { path } => format!("replay of {}", path.display()),
        SourceConfig::Demo { speed } => format!("demo recording at {speed}x"),
    };
    let recent = Arc::new(std::sync::Mutex::new(Recent::default()));
    spawn_recent_sampler(store.clone(), recent.clone(), wait_stop(stopped.clone()));
    let state = Arc::new(
        ServerState::new(
            metrics::registry(store.clone(), stats.clone()),
            stats.clone(),
            config.telemetry_path.clone(),
            web.clone(),
        )
        .with_cuts(cut_requester)
        .with_status(StatusSource {
            store: store.clone(),
            recent,
            source: source.clone(),
            watches,
        }),
    );
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
                        Err(error) => warn!(error = %crate::logging::one_line(&error), "web config not reloaded; the previous one stays in force"),
                    },
                    () = &mut reload_stop => break,
                }
            }
        });
    }
    let server_task = tokio::spawn(server::serve(listener, state, wait_stop(stopped)));

    info!(
        listen = %local_addr,
        telemetry_path = %config.telemetry_path,
        source,
        types = config
            .filters
            .types
            .as_ref()
            .map_or_else(|| "all".to_owned(), |types| types.join(",")),
        include_reason = %LabelFilters::shown(&config.filters.include_reason),
        exclude_reason = %LabelFilters::shown(&config.filters.exclude_reason),
        exclude_namespace = %LabelFilters::shown(&config.filters.exclude_namespace),
        class_rules = config.class_rules.len(),
        count_existing = config.count_existing,
        max_series = config.max_series,
        kubeconfig = %shown_path(config.kubeconfig.as_deref(), "KUBECONFIG, ~/.kube/config or in-cluster"),
        web_config = %shown_path(config.web_config_file.as_deref(), "none"),
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
        ingest_task,
        election,
        server_task,
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

fn shown_path(path: Option<&std::path::Path>, otherwise: &str) -> String {
    path.map_or_else(|| otherwise.to_owned(), |path| path.display().to_string())
}

/// Once a minute, the series' values for the status page's recent activity.
fn spawn_recent_sampler(
    store: Arc<SeriesStore>,
    recent: Arc<std::sync::Mutex<Recent>>,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    tokio::spawn(async move {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        let mut values = Vec::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    store.live_values(&mut values);
                    recent.lock().unwrap_or_else(|e| e.into_inner()).sample(&values);
                }
                () = &mut stop => break,
            }
        }
    });
}
