//! The Kubernetes source: per watch, a list and then a watch that resumes from the last
//! resourceVersion, relisting after 410 Gone.
//!
//! The list is a streaming list (KEP-3157: `sendInitialEvents=true`, the current objects as
//! watch events up to a BOOKMARK annotated `k8s.io/initial-events-end`) where the API server
//! serves one, which it does from its watch cache without reading every Event from etcd, and
//! otherwise a paginated LIST. Either way the objects before the end of the list are the list
//! to the counting rules. kube-runtime's watcher is not used: it asks for the initial events at
//! resourceVersion 0 (any age, so a stale cache after a 410 would count occurrences twice), it
//! retries a refused streaming list forever, and it hides `remainingItemCount`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::ValueEnum;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use http_body_util::BodyExt;
use kube::api::{ListParams, WatchParams};
use kube::core::Status;
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use tokio::sync::OnceCell;
use tokio::time::{Instant, Sleep};
use tracing::{debug, info, warn};

use super::line::{Decoded, WatchLine, decode_line};
use super::{Delivery, ListPlan, Malformed, Observation, Signal, SlimEvent};
use crate::ledger::WatchId;

/// How a watch gets its list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ListMode {
    /// Streaming where the API server serves it, else pages; decided per watch.
    #[default]
    Auto,
    /// Always a streaming list; a server that refuses it gets retried with backoff.
    Streaming,
    /// Always a paginated LIST.
    Paginated,
}

/// What one watch selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchSpec {
    /// Where the Event objects live; `None` watches all namespaces.
    pub namespace: Option<String>,
    /// A field selector passed to the API server as is.
    pub field_selector: Option<String>,
    /// Seconds the API server keeps a watch open; a stream silent for 5 s longer than this is
    /// taken as stalled and reopened.
    pub timeout_seconds: u32,
    pub list_mode: ListMode,
}

/// kube's and client-go's default: just under the API server's 5-minute cap.
pub const DEFAULT_WATCH_TIMEOUT_SECONDS: u32 = 290;

/// Items per page of a paginated list, as client-go's reflector asks.
const PAGE_SIZE: u32 = 500;

/// A stream silent this much longer than its timeout is taken as dead (a lost connection whose
/// close never arrives).
const IDLE_MARGIN: Duration = Duration::from_secs(5);

impl WatchSpec {
    pub fn describe(&self) -> String {
        format!(
            "namespace={} fieldSelector={}",
            self.namespace.as_deref().unwrap_or("<all>"),
            self.field_selector.as_deref().unwrap_or("<none>")
        )
    }
}

/// Every watch's signals, merged; watch ids are the positions in `specs`.
pub fn watch_events(
    client: Client,
    specs: &[WatchSpec],
) -> impl Stream<Item = Signal> + Send + use<> {
    let server_streams = Arc::new(OnceCell::new());
    let streams = specs.iter().enumerate().map(|(index, spec)| {
        // `Config` validation caps the watches at `MAX_WATCHES`, far below u16::MAX.
        let watch = WatchId::try_from(index).unwrap_or(WatchId::MAX);
        let api: Api<SlimEvent> = match &spec.namespace {
            Some(namespace) => Api::namespaced(client.clone(), namespace),
            None => Api::all(client.clone()),
        };
        let driver = Driver {
            api,
            client: client.clone(),
            watch,
            spec: spec.clone(),
            streaming: None,
            server_streams: Arc::clone(&server_streams),
            phase: Phase::Start,
            pending: Vec::new(),
            failed: None,
            listed: false,
        };
        futures::stream::unfold(driver, |mut driver| async move {
            let item = driver.next().await;
            Some((item, driver))
        })
        .default_backoff()
        .map(move |item| match item {
            Ok(signals) => signals,
            Err(failure) => vec![Signal::WatchError {
                watch,
                message: failure.describe(),
            }],
        })
        .boxed()
    });
    futures::stream::select_all(streams).flat_map(futures::stream::iter)
}

type Chunks = BoxStream<'static, kube::Result<Bytes>>;

/// The lines of a watch response. kube's framing copies every line twice (into a line buffer,
/// then into a `String`) and checks its UTF-8 before serde does; here a line that lies within
/// one chunk of the body, as nearly every line does, is decoded where it lies, and only one
/// split across chunks is copied, once, to join it.
struct Lines {
    chunks: Chunks,
    chunk: Bytes,
    /// The start of a line whose end is in a later chunk.
    carry: Vec<u8>,
}

impl Lines {
    fn new(chunks: Chunks) -> Self {
        Self {
            chunks,
            chunk: Bytes::new(),
            carry: Vec::new(),
        }
    }

    /// The next event from what has arrived, without waiting for more.
    fn next_buffered(&mut self) -> Option<Decoded> {
        while let Some(end) = memchr::memchr(b'\n', &self.chunk) {
            let line = self.chunk.split_to(end + 1);
            let decoded = if self.carry.is_empty() {
                decode_line(&line[..end])
            } else {
                self.carry.extend_from_slice(&line[..end]);
                let decoded = decode_line(&self.carry);
                self.carry.clear();
                decoded
            };
            if decoded.is_some() {
                return decoded;
            }
        }
        None
    }

    /// The next event; `None` once the body ends. A body that fails mid-way (a cut connection)
    /// ends too, as kube's own stream does: the watch resumes from its resourceVersion.
    async fn next(&mut self) -> Option<Decoded> {
        loop {
            if let Some(decoded) = self.next_buffered() {
                return Some(decoded);
            }
            // Taken before the await, so a caller that gives up waiting (the stall timer)
            // loses no byte and reads none twice.
            let rest = std::mem::take(&mut self.chunk);
            self.carry.extend_from_slice(&rest);
            match self.chunks.next().await {
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(error)) => {
                    debug!(%error, "watch response ended");
                    return None;
                }
                // What is left is a line cut off with the connection.
                None => return None,
            }
        }
    }
}

/// A watch response with a stall detector that costs a clock read per line, not a timer.
struct WatchStream {
    lines: Lines,
    idle: Duration,
    last_line: Instant,
    deadline: Pin<Box<Sleep>>,
}

impl WatchStream {
    fn new(lines: Lines, timeout_seconds: u32) -> Self {
        let idle = Duration::from_secs(u64::from(timeout_seconds)) + IDLE_MARGIN;
        let now = Instant::now();
        Self {
            lines,
            idle,
            last_line: now,
            deadline: Box::pin(tokio::time::sleep_until(now + idle)),
        }
    }

    /// A line already received, if any: no clock read, no wait.
    fn next_buffered(&mut self) -> Option<Decoded> {
        self.lines.next_buffered()
    }

    /// The next line, or `None` when the stream ended or went silent for too long.
    async fn next(&mut self) -> Option<Decoded> {
        loop {
            tokio::select! {
                biased;
                line = self.lines.next() => {
                    self.last_line = Instant::now();
                    return line;
                }
                () = self.deadline.as_mut() => {
                    let due = self.last_line + self.idle;
                    if Instant::now() >= due {
                        return None;
                    }
                    self.deadline.as_mut().reset(due);
                }
            }
        }
    }
}

enum Phase {
    /// Decide how to list, and begin.
    Start,
    /// A paginated list; `None` before the first page.
    Pages { continue_token: Option<String> },
    /// A streaming list, up to its end bookmark.
    Initial { stream: WatchStream },
    /// Open a watch from here.
    Resume { resource_version: String },
    Watching {
        resource_version: String,
        stream: WatchStream,
    },
}

/// Why a step failed; the stream backs off before the next one.
#[derive(Debug)]
pub enum Failure {
    List(kube::Error),
    WatchStart(kube::Error),
    Stream(kube::Error),
    /// An `ERROR` line of a watch stream.
    Status(Box<Status>),
    /// A list without the resourceVersion to watch from.
    NoResourceVersion,
}

struct Driver {
    api: Api<SlimEvent>,
    client: Client,
    watch: WatchId,
    spec: WatchSpec,
    /// Under `auto`, how this watch lists once decided.
    streaming: Option<bool>,
    /// Whether the API server's version can serve streaming lists, asked once for all watches.
    server_streams: Arc<OnceCell<bool>>,
    phase: Phase,
    pending: Vec<Signal>,
    failed: Option<Failure>,
    /// A list has started before: only the first one is worth sizing the ledger for.
    listed: bool,
}

impl Driver {
    /// The signals of the next step: a page, or what a watch response had ready at once (up to
    /// a chunk of the body, often hundreds of lines), so the streams above are polled once per
    /// batch rather than once per update.
    async fn next(&mut self) -> Result<Vec<Signal>, Failure> {
        loop {
            if !self.pending.is_empty() {
                return Ok(std::mem::take(&mut self.pending));
            }
            if let Some(failure) = self.failed.take() {
                return Err(failure);
            }
            let phase = std::mem::replace(&mut self.phase, Phase::Start);
            self.phase = match phase {
                Phase::Start => self.start().await?,
                Phase::Pages { continue_token } => self.page(continue_token).await?,
                Phase::Initial { stream } => self.initial(stream).await,
                Phase::Resume { resource_version } => {
                    match self.open_watch(&resource_version, false).await {
                        Ok(stream) => Phase::Watching {
                            resource_version,
                            stream,
                        },
                        Err(error) => {
                            self.phase = Phase::Resume { resource_version };
                            return Err(Failure::WatchStart(error));
                        }
                    }
                }
                Phase::Watching {
                    resource_version,
                    stream,
                } => self.watching(resource_version, stream).await,
            };
        }
    }

    /// A failure comes after the signals read before it.
    fn fail(&mut self, failure: Failure, next: Phase) -> Phase {
        self.failed = Some(failure);
        next
    }

    /// An `ERROR` line: 410 Gone means the resourceVersion is compacted away, so list again;
    /// any other error is retried on the same stream.
    fn stream_error(&mut self, status: Box<Status>, same: Phase) -> Phase {
        let next = if status.code == 410 {
            Phase::Start
        } else {
            same
        };
        self.fail(Failure::Status(status), next)
    }

    fn signal(&self, delivery: Delivery, event: Result<Observation, Malformed>) -> Signal {
        Signal::Object {
            watch: self.watch,
            delivery,
            event,
        }
    }

    async fn use_streaming(&mut self) -> bool {
        match self.spec.list_mode {
            ListMode::Streaming => true,
            ListMode::Paginated => false,
            ListMode::Auto => {
                if let Some(decided) = self.streaming {
                    return decided;
                }
                let client = self.client.clone();
                let decided = *self
                    .server_streams
                    .get_or_init(|| async move { server_version_streams(&client).await })
                    .await;
                self.streaming = Some(decided);
                decided
            }
        }
    }

    async fn start(&mut self) -> Result<Phase, Failure> {
        if !self.use_streaming().await {
            return Ok(Phase::Pages {
                continue_token: None,
            });
        }
        match self.open_watch("", true).await {
            Ok(stream) => {
                // Counted while the first initial events wait in the socket.
                let expected = if self.listed {
                    None
                } else {
                    self.count_objects().await
                };
                self.begin_list(true, expected);
                Ok(Phase::Initial { stream })
            }
            Err(error) if self.spec.list_mode == ListMode::Auto && refuses_streaming(&error) => {
                warn!(
                    watch = self.watch,
                    error = %error,
                    "the API server refuses streaming lists; this watch lists in pages"
                );
                self.streaming = Some(false);
                Ok(Phase::Start)
            }
            Err(error) => Err(Failure::WatchStart(error)),
        }
    }

    fn begin_list(&mut self, streaming: bool, expected: Option<usize>) {
        self.listed = true;
        self.pending.push(Signal::ListPlan(ListPlan {
            watch: self.watch,
            streaming,
            expected,
        }));
        self.pending.push(Signal::ListStarted(self.watch));
    }

    /// How many objects the first list will bring, from a one-item page's
    /// `remainingItemCount` (absent under a field selector): enough to size the ledger once
    /// instead of doubling it as the list arrives.
    async fn count_objects(&mut self) -> Option<usize> {
        let params = self.list_params(Some(1), None);
        let page = self.api.list(&params).await.ok()?;
        let remaining = page.metadata.remaining_item_count?;
        usize::try_from(remaining)
            .ok()?
            .checked_add(page.items.len())
    }

    fn list_params(&self, limit: Option<u32>, continue_token: Option<String>) -> ListParams {
        ListParams {
            field_selector: self.spec.field_selector.clone(),
            limit,
            continue_token,
            // Unset: a consistent read. `0` may serve a stale cache after a 410, and an older
            // count would be re-baselined and then counted a second time.
            resource_version: None,
            ..ListParams::default()
        }
    }

    async fn page(&mut self, continue_token: Option<String>) -> Result<Phase, Failure> {
        let first = continue_token.is_none();
        let params = self.list_params(Some(PAGE_SIZE), continue_token);
        // A failed page restarts the list: its continue token may have expired.
        let page = self.api.list(&params).await.map_err(Failure::List)?;
        if first {
            let expected = page
                .metadata
                .remaining_item_count
                .and_then(|remaining| usize::try_from(remaining).ok())
                .map(|remaining| remaining.saturating_add(page.items.len()));
            self.begin_list(false, expected);
        }
        for event in page.items {
            let signal = self.signal(Delivery::Listed, event.into_observation());
            self.pending.push(signal);
        }
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => Ok(Phase::Pages {
                continue_token: Some(token),
            }),
            None => {
                let resource_version = page
                    .metadata
                    .resource_version
                    .filter(|version| !version.is_empty())
                    .ok_or(Failure::NoResourceVersion)?;
                self.pending.push(Signal::ListDone(self.watch));
                Ok(Phase::Resume { resource_version })
            }
        }
    }

    // `&mut`: the driver holds a stream that is `Send` but not `Sync`, so a shared borrow held
    // across an await would make the future not `Send`.
    async fn open_watch(
        &mut self,
        resource_version: &str,
        initial_events: bool,
    ) -> kube::Result<WatchStream> {
        let params = WatchParams {
            field_selector: self.spec.field_selector.clone(),
            timeout: Some(self.spec.timeout_seconds),
            bookmarks: true,
            send_initial_events: initial_events,
            ..WatchParams::default()
        };
        let mut request = kube::core::Request::new(self.api.resource_url())
            .watch(&params, resource_version)
            .map_err(kube::Error::BuildRequest)?;
        // The name kube's own watch gives the request, for its tracing layers.
        request.extensions_mut().insert("watch");
        let response = self
            .client
            .send(request.map(kube::client::Body::from))
            .await?;
        let response = refused(response).await?;
        let chunks = response.into_body().into_data_stream().boxed();
        Ok(WatchStream::new(
            Lines::new(chunks),
            self.spec.timeout_seconds,
        ))
    }

    async fn initial(&mut self, mut stream: WatchStream) -> Phase {
        loop {
            let line = match next_line(&mut stream, self.pending.is_empty()).await {
                Some(Line::Read(line)) => line,
                Some(Line::Later) => return Phase::Initial { stream },
                // Ended before the list did: list again, from the start.
                None => return Phase::Start,
            };
            match line {
                Ok(WatchLine::Object {
                    deleted: false,
                    event,
                    ..
                }) => {
                    let signal = self.signal(Delivery::Listed, event);
                    self.pending.push(signal);
                }
                // The initial events of a streaming list are never deletions.
                Ok(WatchLine::Object { deleted: true, .. }) => {}
                Ok(WatchLine::Bookmark {
                    resource_version,
                    ends_list,
                }) => {
                    if ends_list {
                        self.pending.push(Signal::ListDone(self.watch));
                        return Phase::Watching {
                            resource_version,
                            stream,
                        };
                    }
                    // A server that streams the initial events sends no other bookmark before
                    // their end: this one ignores `sendInitialEvents` (a proxy or an aggregated
                    // server claiming a newer version) and would never end the list.
                    if self.spec.list_mode == ListMode::Auto {
                        warn!(
                            watch = self.watch,
                            "the API server ignores streaming lists (a bookmark came before the end of the initial events); this watch lists in pages"
                        );
                        self.streaming = Some(false);
                        return Phase::Start;
                    }
                }
                Ok(WatchLine::Error(status)) => {
                    return self.stream_error(status, Phase::Initial { stream });
                }
                Err(error) => {
                    return self.fail(Failure::Stream(error), Phase::Initial { stream });
                }
            }
        }
    }

    async fn watching(&mut self, mut resource_version: String, mut stream: WatchStream) -> Phase {
        loop {
            let line = match next_line(&mut stream, self.pending.is_empty()).await {
                Some(Line::Read(line)) => line,
                Some(Line::Later) => {
                    return Phase::Watching {
                        resource_version,
                        stream,
                    };
                }
                None => return Phase::Resume { resource_version },
            };
            let (delivery, event, version) = match line {
                Ok(WatchLine::Object {
                    deleted,
                    event,
                    resource_version,
                }) => {
                    let delivery = if deleted {
                        Delivery::Deleted
                    } else {
                        Delivery::Applied
                    };
                    (delivery, event, resource_version)
                }
                Ok(WatchLine::Bookmark {
                    resource_version: version,
                    ..
                }) => {
                    resource_version = version;
                    continue;
                }
                Ok(WatchLine::Error(status)) => {
                    let same = Phase::Watching {
                        resource_version,
                        stream,
                    };
                    return self.stream_error(status, same);
                }
                Err(error) => {
                    let next = Phase::Watching {
                        resource_version,
                        stream,
                    };
                    return self.fail(Failure::Stream(error), next);
                }
            };
            if let Some(version) = version {
                resource_version = version;
            }
            let signal = self.signal(delivery, event);
            self.pending.push(signal);
        }
    }
}

/// The next line: awaited when nothing was read yet, else only one already received.
async fn next_line(stream: &mut WatchStream, nothing_read: bool) -> Option<Line> {
    if nothing_read {
        stream.next().await.map(Line::Read)
    } else {
        Some(stream.next_buffered().map_or(Line::Later, Line::Read))
    }
}

#[allow(clippy::large_enum_variant)] // moved straight on, as `WatchLine`
enum Line {
    Read(Decoded),
    /// Nothing more has arrived yet: hand on what was read.
    Later,
}

/// A response that is an error becomes `kube::Error::Api` with the server's Status, or one
/// made of its text (a proxy's HTML page), as kube makes it.
async fn refused(
    response: hyper::Response<kube::client::Body>,
) -> kube::Result<hyper::Response<kube::client::Body>> {
    let code = response.status();
    if !(code.is_client_error() || code.is_server_error()) {
        return Ok(response);
    }
    let body = response.into_body().collect_bytes().await?;
    let status = serde_json::from_slice::<Status>(&body).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(&body);
        Status::failure(text.trim(), "Failed to parse error data").with_code(code.as_u16())
    });
    Err(kube::Error::Api(status.boxed()))
}

/// A server without the WatchList feature gate (1.27–1.31 by default, 1.33, aggregated API
/// servers) answers a streaming list with 422 Invalid: "sendInitialEvents is forbidden for watch
/// unless the WatchList feature gate is enabled". 400 is what a proxy or an older validation
/// says to a parameter it does not know.
fn refuses_streaming(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 422 || status.code == 400)
}

/// Servers before 1.27 do not know `sendInitialEvents`, ignore it, and stream the current
/// objects without ever ending the list: they must be listed in pages. A version that cannot be
/// read is given the benefit of the doubt; a refusal still falls back.
async fn server_version_streams(client: &Client) -> bool {
    match client.apiserver_version().await {
        Ok(info) => {
            let streams = version_streams(&info.major, &info.minor);
            info!(
                version = %info.git_version,
                streaming_lists = streams,
                "API server version"
            );
            streams
        }
        Err(error) => {
            warn!(%error, "could not read the API server version; trying streaming lists");
            true
        }
    }
}

/// Whether `major.minor` (as `/version` writes them: "1", "27+" on some distributions) is 1.27
/// or later.
fn version_streams(major: &str, minor: &str) -> bool {
    fn leading_number(text: &str) -> Option<u32> {
        let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    }
    match (leading_number(major), leading_number(minor)) {
        (Some(major), _) if major > 1 => true,
        (Some(1), Some(minor)) => minor >= 27,
        _ => true,
    }
}

impl Failure {
    /// A cause a person can act on: a 403 names the verb and resource the RBAC role lacks.
    pub fn describe(&self) -> String {
        let (verb, error) = match self {
            Failure::List(error) => ("list", error),
            Failure::WatchStart(error) | Failure::Stream(error) => ("watch", error),
            Failure::Status(status) if status.code == 403 => {
                return forbidden("watch", &status.message);
            }
            Failure::Status(status) if status.code == 410 => {
                return format!("watch expired (410 Gone), relisting: {}", status.message);
            }
            Failure::Status(status) => {
                return format!("watch error {}: {}", status.code, status.message);
            }
            Failure::NoResourceVersion => {
                return "the list carried no resourceVersion to watch from; listing again"
                    .to_string();
            }
        };
        match error {
            kube::Error::Api(status) if status.code == 403 => forbidden(verb, &status.message),
            other => format!("{verb} failed: {other}"),
        }
    }
}

fn forbidden(verb: &str, message: &str) -> String {
    format!(
        "forbidden: the service account may not {verb} events (RBAC verb \"{verb}\" on resource \"events\" is missing): {message}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str, message: &str) -> Status {
        Status::failure(message, reason).with_code(code)
    }

    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(status(code, reason, message).boxed())
    }

    #[test]
    fn forbidden_list_names_the_missing_verb_and_resource() {
        let failure = Failure::List(api_error(403, "Forbidden", "events is forbidden"));
        let text = failure.describe();
        assert!(
            text.contains("RBAC verb \"list\" on resource \"events\""),
            "{text}"
        );
    }

    #[test]
    fn forbidden_watch_names_the_missing_verb() {
        let failure = Failure::WatchStart(api_error(403, "Forbidden", "events is forbidden"));
        assert!(failure.describe().contains("RBAC verb \"watch\""));
        let in_stream = Failure::Status(Box::new(status(403, "Forbidden", "no")));
        assert!(in_stream.describe().contains("RBAC verb \"watch\""));
    }

    #[test]
    fn other_errors_keep_their_cause() {
        let gone = Failure::Status(Box::new(status(410, "Expired", "too old resource version")));
        assert!(gone.describe().contains("410 Gone"));
        let server = Failure::List(api_error(500, "InternalError", "etcd timeout"));
        assert!(server.describe().contains("etcd timeout"));
    }

    #[test]
    fn a_server_without_the_watch_list_gate_refuses_and_nothing_else_does() {
        let gate_off = api_error(
            422,
            "Invalid",
            "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
        );
        assert!(refuses_streaming(&gate_off));
        assert!(refuses_streaming(&api_error(400, "BadRequest", "unknown")));
        assert!(!refuses_streaming(&api_error(403, "Forbidden", "no")));
        assert!(!refuses_streaming(&api_error(500, "InternalError", "etcd")));
        assert!(!refuses_streaming(&api_error(
            429,
            "TooManyRequests",
            "slow down"
        )));
    }

    fn line(resource_version: u32) -> String {
        format!(
            "{{\"type\":\"MODIFIED\",\"object\":{{\"metadata\":{{\"uid\":\"u\",\"resourceVersion\":\"{resource_version}\"}},\"reason\":\"BackOff\",\"count\":2}}}}\n"
        )
    }

    /// The resourceVersions of what `chunks` decode to, `E` for an error.
    fn decoded(chunks: Vec<Vec<u8>>) -> Vec<String> {
        let chunks = futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c))));
        let mut lines = Lines::new(chunks.boxed());
        futures::executor::block_on(async {
            let mut out = Vec::new();
            while let Some(event) = lines.next().await {
                out.push(match event {
                    Ok(WatchLine::Object {
                        resource_version, ..
                    }) => resource_version.unwrap_or_default(),
                    Ok(_) => "other".to_string(),
                    Err(kube::Error::Api(status)) => format!("status {}", status.code),
                    Err(_) => "E".to_string(),
                });
            }
            out
        })
    }

    #[test]
    fn lines_are_found_within_and_across_chunks() {
        let text = format!("{}{}\n{}", line(1), line(2), line(3));
        let bytes = text.into_bytes();
        let whole = decoded(vec![bytes.clone()]);
        assert_eq!(whole, ["1", "2", "3"]);
        // Every way of cutting the stream in three decodes the same.
        for first in [1, 40, 150, 151, 200] {
            for second in [first + 1, first + 37, bytes.len() - 1] {
                let chunks = vec![
                    bytes[..first].to_vec(),
                    bytes[first..second].to_vec(),
                    bytes[second..].to_vec(),
                ];
                assert_eq!(decoded(chunks), whole, "cut at {first} and {second}");
            }
        }
        // One byte at a time.
        let bytewise = bytes.iter().map(|b| vec![*b]).collect();
        assert_eq!(decoded(bytewise), whole);
    }

    #[test]
    fn a_status_a_bad_line_and_a_cut_last_line() {
        let status = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old","reason":"Expired","code":410}"#;
        let text = format!("{}not json\n{status}\n{}", line(1), &line(2)[..30]);
        assert_eq!(decoded(vec![text.into_bytes()]), ["1", "E", "status 410"]);
    }

    #[test]
    fn versions_before_1_27_list_in_pages() {
        assert!(!version_streams("1", "26"));
        assert!(!version_streams("1", "19+"));
        assert!(version_streams("1", "27"));
        assert!(version_streams("1", "34+"));
        assert!(version_streams("2", "0"));
        // Unreadable versions try streaming; a refusal still falls back.
        assert!(version_streams("", ""));
    }
}
