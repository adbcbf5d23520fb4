//! The HTTP server: the telemetry path, `/healthz`, `/readyz` and a landing page.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue,
    VARY, WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::{debug, error, warn};

use crate::metrics::{self, Format, SelfStats, WatchReport};
use crate::recent::Recent;
use crate::store::SeriesStore;
use crate::webconfig::{WebConfig, WebSettings};

/// A client must send its request head within this, so idle or slow clients cannot hold sockets.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections at most; more wait to be accepted. Prometheus needs one per scraper.
const MAX_CONNECTIONS: usize = 512;
/// Request heads larger than this are refused (hyper answers 431).
const MAX_HEADER_BYTES: usize = 16 * 1024;

fn connection_builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
}

/// In-flight requests get this long to finish after shutdown begins; Kubernetes' default grace
/// period is 30 s, our promise is 10.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// How long an encoded exposition is served again. Scrapers that arrive together (HA Prometheus
/// pairs, federation, people with curl) share one encoding, so scraping cannot starve ingestion of
/// CPU; a quarter second is far below any scrape interval.
const EXPOSITION_REUSE: Duration = Duration::from_millis(250);

/// What the routes read.
pub struct ServerState {
    pub registry: Registry,
    pub stats: Arc<SelfStats>,
    pub telemetry_path: String,
    pub expositions: ExpositionCache,
    pub web: Arc<WebConfig>,
    /// Under `--state-file`: asks the ingest task for a cut before each encoding.
    pub cuts: Option<CutRequester>,
    scrape_order: tokio::sync::Mutex<()>,
    /// For the status page: the series, their recent growth, and what is watched.
    pub status: Option<StatusSource>,
}

/// What the status page at `/` reads.
pub struct StatusSource {
    pub store: Arc<SeriesStore>,
    pub recent: Arc<std::sync::Mutex<Recent>>,
    /// The watches (or the replay or the demo), as the start-up line describes them.
    pub source: String,
    /// Each watch's selection, by watch id; none for a replay or the demo.
    pub watches: Vec<String>,
}

/// Asks the ingest task to publish the store's values and persist the ledger that produced them.
#[derive(Clone)]
pub struct CutRequester(pub tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<()>>);

/// How long a scrape waits for a cut before serving the last published values.
const CUT_WAIT: Duration = Duration::from_secs(5);

impl CutRequester {
    /// Returns once the cut is taken, or when the ingest task cannot take one (it stopped, or is
    /// stuck): the scrape then serves the values of the last cut, which is what was persisted.
    async fn take(&self) {
        let (reply, taken) = tokio::sync::oneshot::channel();
        if self.0.send(reply).await.is_err() {
            return;
        }
        if tokio::time::timeout(CUT_WAIT, taken).await.is_err() {
            warn!("no cut within {CUT_WAIT:?}; serving the last one");
        }
    }
}

impl ServerState {
    pub fn new(
        registry: Registry,
        stats: Arc<SelfStats>,
        telemetry_path: String,
        web: Arc<WebConfig>,
    ) -> Self {
        Self {
            registry,
            stats,
            telemetry_path,
            expositions: ExpositionCache::default(),
            web,
            cuts: None,
            scrape_order: tokio::sync::Mutex::new(()),
            status: None,
        }
    }

    pub fn with_status(mut self, status: StatusSource) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_cuts(mut self, cuts: Option<CutRequester>) -> Self {
        self.cuts = cuts;
        self
    }
}

/// The latest encoding per format and compression. Only scrapes take its lock.
#[derive(Default)]
pub struct ExpositionCache {
    entries: tokio::sync::Mutex<Vec<(Format, bool, std::time::Instant, Bytes)>>,
}

impl ExpositionCache {
    /// A body encoded less than [`EXPOSITION_REUSE`] ago, if any.
    async fn fresh(&self, format: Format, gzip: bool) -> Option<Bytes> {
        let entries = self.entries.lock().await;
        Self::find_fresh(&entries, format, gzip, std::time::Instant::now())
    }

    fn find_fresh(
        entries: &[(Format, bool, std::time::Instant, Bytes)],
        format: Format,
        gzip: bool,
        now: std::time::Instant,
    ) -> Option<Bytes> {
        entries
            .iter()
            .find(|(f, g, at, _)| {
                *f == format && *g == gzip && now.duration_since(*at) < EXPOSITION_REUSE
            })
            .map(|(_, _, _, body)| body.clone())
    }

    /// A fresh enough body, or a new one from `encode`; one encoding at a time, so scrapers
    /// arriving during an encoding wait for it instead of starting their own. Encoding and gzip
    /// take tens of milliseconds at 100,000 series, so they run on the blocking pool: the
    /// runtime's workers (one under a 1-CPU limit) stay free for ingestion meanwhile.
    async fn get_or_encode(
        &self,
        format: Format,
        gzip: bool,
        encode: impl FnOnce() -> Option<Bytes> + Send + 'static,
    ) -> Option<Bytes> {
        let mut entries = self.entries.lock().await;
        let now = std::time::Instant::now();
        if let Some(body) = Self::find_fresh(&entries, format, gzip, now) {
            return Some(body);
        }
        let body = tokio::task::spawn_blocking(encode).await.ok()??;
        entries.retain(|(f, g, _, _)| !(*f == format && *g == gzip));
        entries.push((format, gzip, now, body.clone()));
        Some(body)
    }
}

/// Serves until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ServerState>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        // At the limit, new connections wait in the kernel's backlog until one closes; the
        // header-read timeout bounds how long an idle one can hold its place.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit,
            () = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(connection) => connection,
            Err(error) => {
                // Out of file descriptors and similar: keep serving the connections we have.
                error!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // TLS and auth come from one version of the web config for the whole connection.
        let settings = state.web.current();
        let state = state.clone();
        let request_settings = settings.clone();
        let service = service_fn(move |request| {
            let state = state.clone();
            let settings = request_settings.clone();
            async move { Ok::<_, Infallible>(route(&state, &settings, &request).await) }
        });
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let builder = connection_builder();
            let result = match &settings.tls {
                None => {
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(stream), service))
                        .await
                }
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls.clone());
                    let handshake =
                        tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream)).await;
                    match handshake {
                        Ok(Ok(stream)) => {
                            watcher
                                .watch(builder.serve_connection(TokioIo::new(stream), service))
                                .await
                        }
                        Ok(Err(error)) => {
                            debug!(%peer, %error, "TLS handshake refused");
                            return;
                        }
                        Err(_) => {
                            debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(error) = result {
                debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => debug!("all connections closed"),
        () = tokio::time::sleep(SHUTDOWN_GRACE) => warn!("connections still open after the grace period"),
    }
}

async fn route(
    state: &Arc<ServerState>,
    settings: &WebSettings,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    let path = request.uri().path();
    // Probes need no secret; everything else does when basic_auth_users is set.
    let probe = path == "/healthz" || path == "/readyz";
    if !probe {
        let authorization = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        if !settings.authorized(authorization).await {
            let mut response = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"kube-event-metrics\""),
            );
            return response;
        }
    }
    if path == state.telemetry_path {
        return metrics_response(state, request.headers()).await;
    }
    match path {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if state.stats.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: a watch has not completed its first list\n",
        ),
        "/" => html(status_page(state)),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

async fn metrics_response(state: &Arc<ServerState>, headers: &HeaderMap) -> Response<Full<Bytes>> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|value: &HeaderValue| value.to_str().ok())
    };
    let format = Format::negotiate(header(ACCEPT));
    let gzip = header(ACCEPT_ENCODING).is_some_and(accepts_gzip);
    // Under --state-file a scrape serves a consistent cut that the ingest task takes and persists
    // first, so that what the state file holds is what Prometheus has seen. One cut at a time,
    // and scrapers arriving together share one, like they share an encoding.
    let _cutting = match &state.cuts {
        Some(cuts) if state.expositions.fresh(format, gzip).await.is_none() => {
            let guard = state.scrape_order.lock().await;
            if state.expositions.fresh(format, gzip).await.is_none() {
                cuts.take().await;
            }
            Some(guard)
        }
        _ => None,
    };
    let encoding = state.clone();
    let encoded = state
        .expositions
        .get_or_encode(format, gzip, move || {
            let body = metrics::encode(&encoding.registry, format).ok()?;
            if !gzip {
                return Some(Bytes::from(body));
            }
            let mut encoder =
                GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
            encoder.write_all(body.as_bytes()).ok()?;
            encoder.finish().ok().map(Bytes::from)
        })
        .await;
    let Some(body) = encoded else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n");
    };
    let mut response = Response::new(Full::new(body));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
    if gzip {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// `gzip` listed with a non-zero quality.
fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let quality = parts
            .find_map(|p| p.strip_prefix("q="))
            .map_or(1.0, |q| q.trim().parse::<f32>().unwrap_or(0.0));
        (name.eq_ignore_ascii_case("gzip") || name == "*") && quality > 0.0
    })
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// The page an operator opens through `kubectl port-forward`: plain HTML, no JavaScript,
/// refreshing itself every 10 s.
/// Each watch: what it selects, how its latest list came and when.
fn watches_table(page: &mut String, watches: &[String], reports: &[WatchReport]) {
    page.push_str(
        "<h2>Watches</h2>\n<table id=\"watches\"><tr><th>selects</th><th>latest list</th>\
         <th>lists</th><th>latest list started</th></tr>\n",
    );
    let now = metrics::unix_millis();
    for (index, selects) in watches.iter().enumerate() {
        let report = reports.get(index).copied().unwrap_or_default();
        let mode = match report.streaming {
            Some(true) => "streaming",
            Some(false) => "paginated",
            None => "not yet",
        };
        let started = if report.lists == 0 {
            "never".to_owned()
        } else {
            format!(
                "{} s ago",
                now.saturating_sub(report.last_list_millis) / 1000
            )
        };
        page.push_str(&format!(
            "<tr><td>{}</td><td>{mode}</td><td>{}</td><td>{started}</td></tr>\n",
            escape(selects),
            report.lists
        ));
    }
    page.push_str("</table>\n");
}

fn status_page(state: &ServerState) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let stats = &state.stats;
    let load = |value: &std::sync::atomic::AtomicU64| value.load(Ordering::Relaxed);
    let yes = |b: bool| if b { "yes" } else { "no" };
    let mut rows: Vec<(&str, String)> = vec![
        (
            "Role",
            if stats.standby.load(Ordering::Acquire) {
                "standby (another replica holds the Lease)".into()
            } else {
                "leader: watching and exporting".into()
            },
        ),
        ("Synced", yes(stats.is_synced()).into()),
    ];
    if let Some(status) = &state.status {
        rows.push(("Watching", status.source.clone()));
        let (series, limit) = (status.store.series(), status.store.max_series());
        rows.push((
            "Series",
            format!(
                "{series} of {limit} ({:.0}%)",
                100.0 * series as f64 / limit.max(1) as f64
            ),
        ));
        rows.push((
            "Folded occurrences",
            status.store.folded_occurrences().to_string(),
        ));
    }
    let last = load(&stats.last_update_millis);
    let since = if last == 0 {
        "none yet".to_owned()
    } else {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        format!("{} s ago", now.saturating_sub(last) / 1000)
    };
    rows.extend([
        ("Tracked Events", load(&stats.tracked_events).to_string()),
        ("Watch updates", load(&stats.watch_updates).to_string()),
        ("Last update", since),
        ("Watch errors", load(&stats.watch_errors).to_string()),
        ("Relists", load(&stats.relists).to_string()),
        (
            "Malformed objects",
            load(&stats.malformed_objects).to_string(),
        ),
        ("Classes capped", load(&stats.classes_capped).to_string()),
    ]);
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"10\"><title>kube-event-metrics</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}}</style></head><body>\n\
         <h1>kube-event-metrics {version}</h1>\n<p><a href=\"{path}\">Metrics</a> · \
         <a href=\"/healthz\">Health</a> · <a href=\"/readyz\">Readiness</a></p>\n\
         <h2>State</h2>\n<table id=\"state\">\n",
        path = escape(&state.telemetry_path)
    );
    for (name, value) in rows {
        page.push_str(&format!(
            "<tr><th>{name}</th><td>{}</td></tr>\n",
            escape(&value)
        ));
    }
    page.push_str("</table>\n");
    if let Some(status) = state.status.as_ref().filter(|s| !s.watches.is_empty()) {
        watches_table(&mut page, &status.watches, &stats.watch_reports());
    }
    if let Some(status) = &state.status {
        let mut values = Vec::new();
        status.store.live_values(&mut values);
        let recent = status.recent.lock().unwrap_or_else(|e| e.into_inner());
        for (minutes, id) in [(5, "last-5"), (60, "last-60")] {
            let top = recent.top(&values, minutes, 15);
            page.push_str(&format!(
                "<h2>Most occurrences, last {minutes} minutes</h2>\n<p>The last {} whole minutes and the current one{}.</p>\n\
                 <table id=\"{id}\"><tr><th>namespace</th><th>kind</th><th>reason</th><th>type</th>\
                 <th>source</th><th>class</th><th>occurrences</th></tr>\n",
                top.minutes,
                if top.exact { "" } else { "; approximate: a minute had more growing series than kept" }
            ));
            for (series, occurrences) in top.series {
                let Some(labels) = status.store.labels_of(series) else {
                    continue;
                };
                page.push_str("<tr>");
                for value in labels {
                    page.push_str(&format!("<td>{}</td>", escape(value)));
                }
                page.push_str(&format!("<td>{occurrences}</td></tr>\n"));
            }
            page.push_str("</table>\n");
        }
    }
    page.push_str("</body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;

    #[test]
    fn gzip_only_when_asked_for() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, gzip;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip("br, deflate"));
    }
}
