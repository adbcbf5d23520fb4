//! An in-process Kubernetes API server for core/v1 Events, over real HTTP.
//!
//! It speaks the list/watch protocol the way the real one does, so the exporter talks to it through
//! a kubeconfig exactly as it would to a cluster: resourceVersion on every object and list,
//! `limit`/`continue` pagination over a consistent snapshot, a chunked watch stream of ADDED /
//! MODIFIED / DELETED / BOOKMARK lines, `ERROR` 410 Expired for a resourceVersion older than the
//! last compaction, server-side closes, error statuses on demand, and field selectors.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

type Body = BoxBody<Bytes, Infallible>;

#[derive(Clone, Debug)]
struct Change {
    resource_version: u64,
    kind: &'static str,
    object: Value,
}

/// The cluster's Events and their history. Tests change it through [`FakeApi`] or, to make
/// several changes no watch sees, inside [`FakeApi::gap`].
#[derive(Default)]
pub struct State {
    resource_version: u64,
    objects: BTreeMap<(String, String), Value>,
    history: Vec<Change>,
    /// Watches from a resourceVersion older than this get 410 Expired.
    compacted: u64,
    /// Bumped to close every open watch (server-side close).
    close_epoch: u64,
    /// Bumped to end every open watch with ERROR 410.
    expire_epoch: u64,
    /// Bumped per namespace to end that namespace's watches with ERROR 410.
    namespace_expiry: HashMap<String, u64>,
    /// Bumped to send a BOOKMARK on every open watch that asked for them.
    bookmark_epoch: u64,
    snapshots: HashMap<u64, (u64, Vec<Value>)>,
    next_snapshot: u64,
    failures: VecDeque<u16>,
    requests: Vec<String>,
    next_uid: u64,
    /// New watches answer their headers and then never send a byte.
    stall_watches: bool,
    /// Watches that began stalled: what a test waits on to know the stall path was taken.
    pub stalled_streams: u64,
    /// BOOKMARK lines handed to a client's connection (it reads them before the stream ends).
    pub bookmarks_delivered: u64,
    /// The next watch line is cut in half and its stream ends.
    cut_next_line: bool,
    /// Raw lines the open watches send before their next change (not JSON, for instance).
    injected: Vec<(u64, String)>,
    next_injection: u64,
    /// The next N watch requests get ERROR 410 at once.
    expire_next_watches: usize,
    /// Leases by (namespace, name), with the field manager owning each spec field.
    leases: HashMap<(String, String), (Value, HashMap<String, String>)>,
    /// Bearer tokens whose Lease requests fail, as in a partition between one replica and the
    /// API server's Lease writes while its watch cache stays reachable.
    lease_partitioned: Vec<String>,
    /// Lease writes (POST, PUT, PATCH) per bearer token.
    lease_writes: HashMap<String, u64>,
    /// How a watch with `sendInitialEvents=true` is answered.
    pub watch_list: WatchList,
    /// `/version`'s major and minor.
    pub version: (String, String),
    /// Streaming lists answered: the current objects, then the end bookmark.
    pub streaming_lists: u64,
}

/// What the server does with a streaming list request (KEP-3157).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WatchList {
    /// The initial events, then a BOOKMARK annotated `k8s.io/initial-events-end`, as from 1.34.
    #[default]
    Served,
    /// 422 Invalid, as a server with the WatchList feature gate off (1.33, say).
    Refused,
    /// The parameter is unknown and ignored, as before 1.27: the current objects as ADDED and no
    /// end bookmark.
    Ignored,
}

impl State {
    /// Answers streaming lists as a Kubernetes 1.33 server does: refused (its gate is off).
    pub fn refuse_streaming_lists(&mut self) {
        self.watch_list = WatchList::Refused;
        self.version = ("1".into(), "33".into());
    }

    fn bump(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    fn record(&mut self, kind: &'static str, object: Value) {
        self.history.push(Change {
            resource_version: self.resource_version,
            kind,
            object,
        });
    }

    fn new_uid(&mut self) -> String {
        self.next_uid += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.next_uid)
    }

    /// Stores `object` (any JSON, even malformed) as `namespace/name` and returns its uid.
    pub fn put_raw(&mut self, namespace: &str, name: &str, mut object: Value) -> String {
        let rv = self.bump();
        let uid = self.new_uid();
        let metadata = object
            .as_object_mut()
            .expect("an object")
            .entry("metadata")
            .or_insert_with(|| json!({}));
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.insert("name".into(), json!(name));
            metadata.insert("namespace".into(), json!(namespace));
            metadata.entry("uid").or_insert(json!(uid));
            metadata.insert("resourceVersion".into(), json!(rv.to_string()));
            metadata.insert("creationTimestamp".into(), json!("2026-11-25T10:00:00Z"));
        }
        let uid = object["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.objects
            .insert((namespace.into(), name.into()), object.clone());
        self.record("ADDED", object);
        uid
    }

    /// Creates a core/v1 Event about a Pod; returns its uid.
    pub fn create(&mut self, event: &EventSpec) -> String {
        self.put_raw(&event.namespace, &event.name, event.to_json())
    }

    /// Changes an existing Event (MODIFIED).
    pub fn update(&mut self, namespace: &str, name: &str, change: impl FnOnce(&mut Value)) {
        let rv = self.bump();
        let key = (namespace.to_owned(), name.to_owned());
        let object = self
            .objects
            .get_mut(&key)
            .expect("update of an existing Event");
        change(object);
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let object = object.clone();
        self.record("MODIFIED", object);
    }

    pub fn set_count(&mut self, namespace: &str, name: &str, count: u64) {
        self.update(namespace, name, |object| object["count"] = json!(count));
    }

    /// Deletes an Event (DELETED carries its final state).
    pub fn delete(&mut self, namespace: &str, name: &str) {
        let rv = self.bump();
        let key = (namespace.to_owned(), name.to_owned());
        let mut object = self
            .objects
            .remove(&key)
            .expect("delete of an existing Event");
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.record("DELETED", object);
    }

    /// Forgets the history up to now: a watch or a continue token from before answers 410.
    pub fn compact(&mut self) {
        self.compacted = self.resource_version;
        self.history.clear();
        let compacted = self.compacted;
        self.snapshots.retain(|_, (rv, _)| *rv >= compacted);
    }

    /// Closes every open watch stream, as an API server restart or a load balancer would.
    pub fn close_watches(&mut self) {
        self.close_epoch += 1;
    }

    /// Ends every open watch with `ERROR` 410 Expired, as after an etcd compaction.
    pub fn expire_watches(&mut self) {
        self.expire_epoch += 1;
    }

    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    /// Lease requests carrying `token` fail with 503 until [`State::heal_lease`].
    pub fn partition_lease(&mut self, token: &str) {
        self.lease_partitioned.push(token.to_owned());
    }

    pub fn heal_lease(&mut self) {
        self.lease_partitioned.clear();
    }

    /// Another replica takes the Lease, as after a network partition.
    pub fn steal_lease(&mut self, namespace: &str, name: &str, thief: &str) {
        let rv = self.bump();
        if let Some((object, owners)) = self
            .leases
            .get_mut(&(namespace.to_owned(), name.to_owned()))
        {
            object["spec"]["holderIdentity"] = json!(thief);
            object["spec"]["renewTime"] = json!("2099-01-01T00:00:00.000000Z");
            object["spec"]["acquireTime"] = json!("2099-01-01T00:00:00.000000Z");
            object["metadata"]["resourceVersion"] = json!(rv.to_string());
            for field in ["holderIdentity", "renewTime", "acquireTime"] {
                owners.insert(field.into(), format!("thief-{thief}"));
            }
        }
    }

    /// Ends with `ERROR` 410 only the watches scoped to `namespace`.
    pub fn expire_watches_in(&mut self, namespace: &str) {
        *self
            .namespace_expiry
            .entry(namespace.to_owned())
            .or_default() += 1;
    }

    fn expiry_of(&self, namespace: Option<&str>) -> u64 {
        namespace
            .and_then(|namespace| self.namespace_expiry.get(namespace))
            .copied()
            .unwrap_or(0)
    }

    pub fn bookmark(&mut self) {
        self.bookmark_epoch += 1;
    }

    /// The next `times` requests answer `status` with a Status body.
    pub fn fail_next(&mut self, status: u16, times: usize) {
        self.failures.extend(std::iter::repeat_n(status, times));
    }

    pub fn clear_failures(&mut self) {
        self.failures.clear();
    }

    pub fn stall_watches(&mut self, stall: bool) {
        self.stall_watches = stall;
    }

    pub fn cut_next_line(&mut self) {
        self.cut_next_line = true;
    }

    /// Sends `line` (plus a newline) on every open watch.
    pub fn inject_line(&mut self, line: &str) {
        self.next_injection += 1;
        self.injected.push((self.next_injection, line.to_owned()));
    }

    pub fn expire_next_watches(&mut self, count: usize) {
        self.expire_next_watches = count;
    }

    /// An API server restored from a backup: every watch closes, the history starts again from a
    /// new, lower resourceVersion, and resuming from an old one answers 410.
    pub fn restart_with_new_history(&mut self) {
        self.close_watches();
        self.history.clear();
        self.snapshots.clear();
        self.resource_version = 10;
        let keys: Vec<(String, String)> = self.objects.keys().cloned().collect();
        for key in keys {
            self.resource_version += 1;
            let rv = self.resource_version.to_string();
            if let Some(object) = self.objects.get_mut(&key) {
                object["metadata"]["resourceVersion"] = json!(rv);
            }
        }
        self.compacted = self.resource_version;
    }
}

/// A core/v1 Event to create.
#[derive(Clone, Debug)]
pub struct EventSpec {
    pub namespace: String,
    pub name: String,
    pub kind: String,
    pub reason: String,
    pub event_type: String,
    pub component: String,
    pub count: u64,
    pub message: String,
}

impl EventSpec {
    pub fn new(namespace: &str, name: &str, reason: &str, count: u64) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            kind: "Pod".into(),
            reason: reason.into(),
            event_type: "Warning".into(),
            component: "kubelet".into(),
            count,
            message: format!("{reason} happened"),
        }
    }

    pub fn normal(mut self) -> Self {
        self.event_type = "Normal".into();
        self
    }

    pub fn to_json(&self) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": self.kind,
                "name": self.name.split('.').next().unwrap_or_default(),
                "namespace": self.namespace,
            },
            "reason": self.reason,
            "message": self.message,
            "type": self.event_type,
            "source": {"component": self.component, "host": "node-1"},
            "count": self.count,
            "firstTimestamp": "2026-11-25T10:00:00Z",
            "lastTimestamp": "2026-11-25T10:00:00Z",
            "reportingComponent": "",
            "reportingInstance": "",
        })
    }
}

struct Shared {
    state: Mutex<State>,
    changed: Notify,
}

/// A running fake API server.
pub struct FakeApi {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    kubeconfig: tempfile::NamedTempFile,
}

impl FakeApi {
    pub async fn start() -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                version: ("1".into(), "34".into()),
                ..State::default()
            }),
            changed: Notify::new(),
        });
        let server = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(shared, request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let mut kubeconfig = tempfile::NamedTempFile::new().expect("temp kubeconfig");
        std::io::Write::write_all(
            &mut kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\n\
                 contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
                 current-context: fake\nusers:\n- name: fake\n  user:\n    token: fake-token\n"
            )
            .as_bytes(),
        )
        .expect("write kubeconfig");
        FakeApi {
            addr,
            shared,
            kubeconfig,
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.kubeconfig.path().to_path_buf()
    }

    /// A kubeconfig like [`FakeApi::kubeconfig`] whose bearer token is `token`, so that one
    /// replica's requests can be told apart (and partitioned). It lives as long as `dir`.
    pub fn kubeconfig_with_token(&self, dir: &std::path::Path, token: &str) -> PathBuf {
        let text = std::fs::read_to_string(self.kubeconfig()).expect("kubeconfig");
        let path = dir.join(format!("kubeconfig-{token}"));
        std::fs::write(
            &path,
            text.replace("token: fake-token", &format!("token: {token}")),
        )
        .expect("write kubeconfig");
        path
    }

    /// Lease writes the fake accepted or refused from requests with this bearer token.
    pub fn lease_writes(&self, token: &str) -> u64 {
        self.lock().lease_writes.get(token).copied().unwrap_or(0)
    }

    /// The Lease's `leaseTransitions`.
    pub fn lease_transitions(&self, namespace: &str, name: &str) -> Option<i64> {
        let state = self.lock();
        let (object, _) = state.leases.get(&(namespace.to_owned(), name.to_owned()))?;
        object["spec"]["leaseTransitions"].as_i64()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies changes atomically, then wakes the watches.
    pub fn change<T>(&self, change: impl FnOnce(&mut State) -> T) -> T {
        let result = change(&mut self.lock());
        self.shared.changed.notify_waiters();
        result
    }

    /// Closes every watch, makes `changes` while no watch is connected, and compacts, so the
    /// exporter must relist to learn of them: the gap of a watch expiry.
    pub fn gap<T>(&self, changes: impl FnOnce(&mut State) -> T) -> T {
        self.change(|state| {
            state.close_watches();
            let result = changes(state);
            state.compact();
            result
        })
    }

    pub fn create(&self, event: &EventSpec) -> String {
        self.change(|state| state.create(event))
    }

    pub fn set_count(&self, namespace: &str, name: &str, count: u64) {
        self.change(|state| state.set_count(namespace, name, count));
    }

    pub fn delete(&self, namespace: &str, name: &str) {
        self.change(|state| state.delete(namespace, name));
    }

    /// The holder of a Lease, if any.
    pub fn lease_holder(&self, namespace: &str, name: &str) -> Option<String> {
        let state = self.lock();
        let (object, _) = state.leases.get(&(namespace.to_owned(), name.to_owned()))?;
        object["spec"]["holderIdentity"].as_str().map(str::to_owned)
    }

    /// Request lines (`GET /path?query`) received so far.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// How many requests so far (`METHOD path?query`) match.
    pub fn count_requests(&self, matching: impl Fn(&str) -> bool) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|request| matching(request))
            .count()
    }
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Query parameters of a list or watch request.
#[derive(Debug, Default)]
struct Query {
    watch: bool,
    resource_version: Option<String>,
    limit: Option<usize>,
    continue_token: Option<String>,
    field_selector: Vec<(String, bool, String)>,
    bookmarks: bool,
    timeout: Option<Duration>,
    send_initial_events: bool,
    resource_version_match: Option<String>,
}

fn parse_query(query: &str) -> Result<Query, String> {
    let mut parsed = Query::default();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match key {
            "watch" => parsed.watch = value == "true" || value == "1",
            "resourceVersion" => parsed.resource_version = Some(value),
            "limit" => parsed.limit = Some(value.parse().map_err(|_| "bad limit".to_string())?),
            "continue" => parsed.continue_token = Some(value),
            "allowWatchBookmarks" => parsed.bookmarks = value == "true",
            "sendInitialEvents" => parsed.send_initial_events = value == "true",
            "resourceVersionMatch" => parsed.resource_version_match = Some(value),
            "timeoutSeconds" => {
                parsed.timeout = Some(Duration::from_secs(
                    value
                        .parse()
                        .map_err(|_| "bad timeoutSeconds".to_string())?,
                ))
            }
            "fieldSelector" => {
                for term in value.split(',').filter(|term| !term.is_empty()) {
                    let (field, negated, wanted) = if let Some((f, v)) = term.split_once("!=") {
                        (f, true, v)
                    } else if let Some((f, v)) = term.split_once("==") {
                        (f, false, v)
                    } else if let Some((f, v)) = term.split_once('=') {
                        (f, false, v)
                    } else {
                        return Err(format!("invalid field selector term {term:?}"));
                    };
                    const SUPPORTED: &[&str] = &[
                        "type",
                        "reason",
                        "metadata.name",
                        "metadata.namespace",
                        "involvedObject.kind",
                        "involvedObject.namespace",
                        "involvedObject.name",
                        "source",
                        "reportingComponent",
                    ];
                    if !SUPPORTED.contains(&field) {
                        return Err(format!("field label not supported: {field}"));
                    }
                    parsed
                        .field_selector
                        .push((field.to_owned(), negated, wanted.to_owned()));
                }
            }
            _ => {}
        }
    }
    Ok(parsed)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn field_value<'a>(object: &'a Value, field: &str) -> &'a str {
    let path: &[&str] = match field {
        "source" => &["source", "component"],
        other => return dotted(object, other),
    };
    path.iter()
        .try_fold(object, |value, key| value.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn dotted<'a>(object: &'a Value, field: &str) -> &'a str {
    field
        .split('.')
        .try_fold(object, |value, key| value.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn selected(object: &Value, namespace: Option<&str>, query: &Query) -> bool {
    if let Some(namespace) = namespace
        && dotted(object, "metadata.namespace") != namespace
    {
        return false;
    }
    query
        .field_selector
        .iter()
        .all(|(field, negated, wanted)| (field_value(object, field) == wanted) != *negated)
}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let query_text = request.uri().query().unwrap_or("").to_owned();
    let method = request.method().clone();
    let token = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    let content_type = request
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    // Readable by everyone (system:public-info-viewer), so injected failures spare it.
    if path == "/version" {
        let (major, minor) = state.version.clone();
        return json_response(
            StatusCode::OK,
            &json!({
                "major": major,
                "minor": minor,
                "gitVersion": format!("v{major}.{minor}.0"),
                "platform": "linux/amd64",
            }),
        );
    }
    state.requests.push(format!("{method} {path}?{query_text}"));
    if let Some(code) = state.failures.pop_front() {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let reason = match code {
            403 => "Forbidden",
            404 => "NotFound",
            410 => "Expired",
            429 => "TooManyRequests",
            _ => "InternalError",
        };
        let message = if code == 403 {
            "events is forbidden: User \"system:serviceaccount:monitoring:kube-event-metrics\" cannot list resource \"events\" in API group \"\" at the cluster scope".to_string()
        } else {
            format!("injected failure {code}")
        };
        let mut response = json_response(status, &status_body(code, reason, &message));
        if code == 429 {
            response.headers_mut().insert(
                hyper::header::RETRY_AFTER,
                hyper::header::HeaderValue::from_static("1"),
            );
        }
        return response;
    }
    if let [
        "",
        "apis",
        "coordination.k8s.io",
        "v1",
        "namespaces",
        namespace,
        "leases",
        rest @ ..,
    ] = path.split('/').collect::<Vec<_>>().as_slice()
    {
        if state.lease_partitioned.contains(&token) {
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &status_body(503, "ServiceUnavailable", "partitioned from the Lease"),
            );
        }
        if method != hyper::Method::GET {
            *state.lease_writes.entry(token.clone()).or_default() += 1;
        }
        let manager = query_text
            .split('&')
            .find_map(|pair| pair.strip_prefix("fieldManager="))
            .map(percent_decode)
            .unwrap_or_default();
        return lease(
            &mut state,
            namespace,
            rest.first().copied(),
            &method,
            &content_type,
            &manager,
            &body,
        );
    }
    let namespace = match path.split('/').collect::<Vec<_>>().as_slice() {
        ["", "api", "v1", "events"] => None,
        ["", "api", "v1", "namespaces", namespace, "events"] => Some((*namespace).to_owned()),
        _ => {
            return json_response(
                StatusCode::NOT_FOUND,
                &status_body(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ),
            );
        }
    };
    let query = match parse_query(&query_text) {
        Ok(query) => query,
        Err(message) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &status_body(400, "BadRequest", &message),
            );
        }
    };
    if let Some(refusal) = refuse_list_options(state.watch_list, &query) {
        return json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &status_body(422, "Invalid", &refusal),
        );
    }
    if query.watch {
        let streaming = query.send_initial_events && state.watch_list == WatchList::Served;
        if streaming {
            state.streaming_lists += 1;
        }
        drop(state);
        watch(shared, namespace, query, streaming)
    } else {
        list(&mut state, namespace.as_deref(), &query)
    }
}

/// coordination.k8s.io Leases, as far as leader election uses them: GET, POST, server-side apply
/// (a field another manager owns with another value is a 409 Conflict) and merge patches.
fn lease(
    state: &mut State,
    namespace: &str,
    name: Option<&str>,
    method: &hyper::Method,
    content_type: &str,
    manager: &str,
    body: &[u8],
) -> Response<Body> {
    let not_found = || {
        json_response(
            StatusCode::NOT_FOUND,
            &status_body(404, "NotFound", "leases.coordination.k8s.io not found"),
        )
    };
    let patch: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let key = |name: &str| (namespace.to_owned(), name.to_owned());
    match (method.as_str(), name) {
        ("GET", Some(name)) => match state.leases.get(&key(name)) {
            Some((object, _)) => json_response(StatusCode::OK, object),
            None => not_found(),
        },
        ("POST", None) => {
            let name = patch["metadata"]["name"].as_str().unwrap_or("").to_owned();
            if state.leases.contains_key(&key(&name)) {
                return json_response(
                    StatusCode::CONFLICT,
                    &status_body(
                        409,
                        "AlreadyExists",
                        "leases.coordination.k8s.io already exists",
                    ),
                );
            }
            let mut object = patch.clone();
            let rv = state.bump();
            object["metadata"]["namespace"] = json!(namespace);
            object["metadata"]["resourceVersion"] = json!(rv.to_string());
            object["metadata"]["uid"] = json!(state.new_uid());
            object["metadata"]["creationTimestamp"] = json!("2026-11-25T10:00:00Z");
            if object.get("spec").is_none() {
                object["spec"] = json!({});
            }
            let owners = object["spec"]
                .as_object()
                .map(|spec| {
                    spec.keys()
                        .map(|k| (k.clone(), manager.to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            state.leases.insert(key(&name), (object.clone(), owners));
            json_response(StatusCode::CREATED, &object)
        }
        // Update with optimistic concurrency, as client-go's leader election writes.
        ("PUT", Some(name)) => {
            let Some((object, owners)) = state.leases.get(&key(name)).cloned() else {
                return not_found();
            };
            if patch["metadata"]["resourceVersion"] != object["metadata"]["resourceVersion"] {
                return json_response(
                    StatusCode::CONFLICT,
                    &status_body(
                        409,
                        "Conflict",
                        "Operation cannot be fulfilled on leases.coordination.k8s.io: the object has been modified; please apply your changes to the latest version and try again",
                    ),
                );
            }
            let rv = state.bump();
            let mut replaced = patch.clone();
            replaced["metadata"]["uid"] = object["metadata"]["uid"].clone();
            replaced["metadata"]["namespace"] = json!(namespace);
            replaced["metadata"]["resourceVersion"] = json!(rv.to_string());
            state.leases.insert(key(name), (replaced.clone(), owners));
            json_response(StatusCode::OK, &replaced)
        }
        ("PATCH", Some(name)) => {
            let apply = content_type.starts_with("application/apply-patch");
            let rv = state.bump();
            let entry = match state.leases.get_mut(&key(name)) {
                Some(entry) => entry,
                None if apply => {
                    let object = json!({
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {"name": name, "namespace": namespace, "uid": format!("lease-{rv}")},
                        "spec": {},
                    });
                    state
                        .leases
                        .entry(key(name))
                        .or_insert((object, HashMap::new()))
                }
                None => return not_found(),
            };
            let (object, owners) = entry;
            let fields = patch["spec"].as_object().cloned().unwrap_or_default();
            if apply {
                for (field, value) in &fields {
                    let current = &object["spec"][field];
                    let owner = owners.get(field).map(String::as_str);
                    if !current.is_null() && current != value && owner.is_some_and(|o| o != manager)
                    {
                        return json_response(
                            StatusCode::CONFLICT,
                            &status_body(
                                409,
                                "Conflict",
                                &format!(
                                    "Apply failed with 1 conflict: conflict with \"{}\": .spec.{field}",
                                    owner.unwrap_or("")
                                ),
                            ),
                        );
                    }
                }
            }
            for (field, value) in fields {
                if value.is_null() {
                    if let Some(spec) = object["spec"].as_object_mut() {
                        spec.remove(&field);
                    }
                    owners.remove(&field);
                } else {
                    object["spec"][&field] = value;
                    owners.insert(field, manager.to_owned());
                }
            }
            object["metadata"]["resourceVersion"] = json!(rv.to_string());
            json_response(StatusCode::OK, object)
        }
        _ => json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &status_body(
                405,
                "MethodNotAllowed",
                "not supported by the fake API server",
            ),
        ),
    }
}

/// The API server's validation of the streaming-list options (apimachinery's
/// `ValidateListOptions`), with the gate on or off.
fn refuse_list_options(watch_list: WatchList, query: &Query) -> Option<String> {
    let invalid = |field: &str, why: &str| {
        format!("ListOptions.meta.k8s.io \"\" is invalid: {field}: Forbidden: {why}")
    };
    if watch_list == WatchList::Ignored {
        return None;
    }
    let not_older = query.resource_version_match.as_deref() == Some("NotOlderThan");
    if query.send_initial_events {
        if !query.watch {
            return Some(invalid(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
        if watch_list == WatchList::Refused {
            return Some(invalid(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
            ));
        }
        if !not_older {
            return Some(invalid(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if !query.bookmarks {
            return Some(invalid(
                "allowWatchBookmarks",
                "allowWatchBookmarks must be true when sendInitialEvents is set",
            ));
        }
    } else if query.watch && query.resource_version_match.is_some() {
        return Some(invalid(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ));
    }
    None
}

fn list(state: &mut State, namespace: Option<&str>, query: &Query) -> Response<Body> {
    let (snapshot_id, offset) = match &query.continue_token {
        Some(token) => {
            let parsed = token
                .split_once(':')
                .and_then(|(id, offset)| Some((id.parse::<u64>().ok()?, offset.parse().ok()?)));
            match parsed {
                Some((id, offset)) if state.snapshots.contains_key(&id) => (id, offset),
                _ => {
                    return json_response(
                        StatusCode::GONE,
                        &status_body(
                            410,
                            "Expired",
                            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                        ),
                    );
                }
            }
        }
        None => {
            let items: Vec<Value> = state
                .objects
                .values()
                .filter(|object| selected(object, namespace, query))
                .cloned()
                .collect();
            state.next_snapshot += 1;
            let id = state.next_snapshot;
            let rv = state.resource_version;
            state.snapshots.insert(id, (rv, items));
            (id, 0)
        }
    };
    let (rv, items) = &state.snapshots[&snapshot_id];
    let rv = *rv;
    let end = query
        .limit
        .filter(|limit| *limit > 0)
        .map_or(items.len(), |limit| (offset + limit).min(items.len()));
    let page: Vec<Value> = items[offset.min(end)..end].to_vec();
    let remaining = items.len() - end;
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if remaining > 0 {
        metadata["continue"] = json!(format!("{snapshot_id}:{end}"));
        metadata["remainingItemCount"] = json!(remaining);
    } else {
        state.snapshots.remove(&snapshot_id);
    }
    json_response(
        StatusCode::OK,
        &json!({"apiVersion": "v1", "kind": "EventList", "metadata": metadata, "items": page}),
    )
}

fn watch_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn watch(
    shared: Arc<Shared>,
    namespace: Option<String>,
    query: Query,
    streaming: bool,
) -> Response<Body> {
    let (sender, receiver) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let deadline = query
            .timeout
            .map(|timeout| tokio::time::Instant::now() + timeout);
        let (mut cursor, close_epoch, expire_epoch, mut bookmark_epoch, mut pending, expiry) = {
            let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            let requested = query
                .resource_version
                .as_deref()
                .filter(|rv| !rv.is_empty() && *rv != "0")
                .map(|rv| rv.parse::<u64>().unwrap_or(0));
            let mut pending = Vec::new();
            // A streaming list asks for no resourceVersion, which never expires.
            let expire_now = state.expire_next_watches > 0 && !streaming;
            if expire_now {
                state.expire_next_watches -= 1;
            }
            let cursor = match requested {
                _ if expire_now => {
                    let status = status_body(410, "Expired", "too old resource version");
                    pending.push(watch_line("ERROR", &status));
                    None
                }
                // NotOlderThan: the current objects are at least as new as any version asked for.
                _ if streaming => {
                    for object in state.objects.values() {
                        if selected(object, namespace.as_deref(), &query) {
                            pending.push(watch_line("ADDED", object));
                        }
                    }
                    let end = json!({
                        "kind": "Event",
                        "apiVersion": "v1",
                        "metadata": {
                            "resourceVersion": state.resource_version.to_string(),
                            "annotations": {"k8s.io/initial-events-end": "true"},
                        },
                    });
                    pending.push(watch_line("BOOKMARK", &end));
                    Some(state.resource_version)
                }
                Some(rv) if rv < state.compacted || rv > state.resource_version => {
                    let status = status_body(
                        410,
                        "Expired",
                        &format!("too old resource version: {rv} ({})", state.compacted),
                    );
                    pending.push(watch_line("ERROR", &status));
                    None
                }
                Some(rv) => Some(rv),
                None => {
                    // "Any" start: the current objects as ADDED, then the changes.
                    for object in state.objects.values() {
                        if selected(object, namespace.as_deref(), &query) {
                            pending.push(watch_line("ADDED", object));
                        }
                    }
                    Some(state.resource_version)
                }
            };
            (
                cursor,
                state.close_epoch,
                state.expire_epoch,
                state.bookmark_epoch,
                pending,
                state.expiry_of(namespace.as_deref()),
            )
        };
        let (stalled, mut injected_seen) = {
            let state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            (state.stall_watches, state.next_injection)
        };
        if stalled {
            shared
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .stalled_streams += 1;
            // Headers are out; the body never comes, until the server closes it.
            loop {
                let notified = shared.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if shared
                    .state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .close_epoch
                    != close_epoch
                    || sender.is_closed()
                {
                    return;
                }
                tokio::select! {
                    () = &mut notified => {}
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
        loop {
            for line in pending.drain(..) {
                const BOOKMARK: &[u8] = b"\"type\":\"BOOKMARK\"";
                let bookmark = line.windows(BOOKMARK.len()).any(|w| w == BOOKMARK);
                if sender.send(line).await.is_err() {
                    return;
                }
                if bookmark {
                    shared
                        .state
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .bookmarks_delivered += 1;
                }
            }
            let Some(position) = cursor else { return };
            let notified = shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                if state.close_epoch != close_epoch {
                    return;
                }
                if state.expire_epoch != expire_epoch
                    || state.expiry_of(namespace.as_deref()) != expiry
                    || position < state.compacted
                {
                    let status = status_body(410, "Expired", "too old resource version");
                    pending.push(watch_line("ERROR", &status));
                    cursor = None;
                    continue;
                }
                for (id, line) in &state.injected {
                    if *id > injected_seen {
                        injected_seen = *id;
                        pending.push(Bytes::from(format!("{line}\n")));
                    }
                }
                let mut newest = position;
                for change in state
                    .history
                    .iter()
                    .filter(|change| change.resource_version > position)
                {
                    newest = change.resource_version;
                    if selected(&change.object, namespace.as_deref(), &query) {
                        pending.push(watch_line(change.kind, &change.object));
                    }
                }
                cursor = Some(newest);
                if state.bookmark_epoch != bookmark_epoch {
                    bookmark_epoch = state.bookmark_epoch;
                    if query.bookmarks {
                        let bookmark = json!({
                            "kind": "Event",
                            "apiVersion": "v1",
                            "metadata": {"resourceVersion": state.resource_version.to_string()},
                        });
                        pending.push(watch_line("BOOKMARK", &bookmark));
                        cursor = Some(state.resource_version.max(newest));
                    }
                }
            }
            if !pending.is_empty() {
                let cut = {
                    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                    std::mem::take(&mut state.cut_next_line)
                };
                if cut {
                    let line = pending.remove(0);
                    let _ = sender.send(line.slice(..line.len() / 2)).await;
                    return;
                }
                continue;
            }
            match deadline {
                Some(deadline) => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(deadline) => return,
                    }
                }
                None => notified.await,
            }
        }
    });
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        let line = receiver.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(line)), receiver))
    });
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
