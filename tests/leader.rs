//! `--leader-election`: two exporter processes against the fake API server's Leases.

mod support;

use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::{EventSpec, FakeApi, Scrape, http_get};

struct Replica {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn replica(api: &FakeApi, name: &str) -> Replica {
    replica_with(api, name, None, &[])
}

/// A replica whose requests carry its own bearer token (its name) when `tokens` is a directory
/// for its kubeconfig, so that the fake API server can partition it.
fn replica_with(
    api: &FakeApi,
    name: &str,
    tokens: Option<&std::path::Path>,
    extra: &[&str],
) -> Replica {
    let addr = support::free_local_addr();
    let kubeconfig = match tokens {
        Some(dir) => api.kubeconfig_with_token(dir, name),
        None => api.kubeconfig(),
    };
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kube-event-metrics"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--web.listen-address", &addr.to_string()])
        .args([
            "--leader-election",
            "--leader-election.lease-duration",
            "3s",
        ])
        .args(extra)
        .env("POD_NAMESPACE", "monitoring")
        .env("POD_NAME", name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Replica { child, addr }
}

impl Replica {
    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "still running");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The replica's `kube_event_metrics_leader`, 0 when it does not answer.
async fn leader_gauge(addr: SocketAddr) -> f64 {
    let Ok(Ok(_)) = tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    else {
        return 0.0;
    };
    match tokio::time::timeout(Duration::from_secs(2), http_get(addr, "/metrics")).await {
        Ok((200, text)) => Scrape::parse(text)
            .value("kube_event_metrics_leader", &[])
            .unwrap_or(0.0),
        _ => 0.0,
    }
}

async fn scrape_when(
    addr: SocketAddr,
    what: &str,
    within: Duration,
    ready: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let deadline = Instant::now() + within;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            let (status, text) = http_get(addr, "/metrics").await;
            if status == 200 {
                let scrape = Scrape::parse(text);
                if ready(&scrape) {
                    return scrape;
                }
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_counts_and_the_standby_takes_over() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "a.1", "BackOff", 2));
    let mut first = replica(&api, "replica-a");
    let s = scrape_when(first.addr, "a leader", Duration::from_secs(20), |s| {
        s.own("leader") == 1.0 && s.own("synced") == 1.0
    })
    .await;
    assert_eq!(s.warnings("shop", "BackOff"), Some(0.0));
    assert_eq!(
        api.lease_holder("monitoring", "kube-event-metrics")
            .as_deref(),
        Some("replica-a")
    );

    let second = replica(&api, "replica-b");
    scrape_when(second.addr, "a standby", Duration::from_secs(20), |s| {
        s.value("kube_event_metrics_leader", &[]).is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let standby = scrape_when(second.addr, "a standby", Duration::from_secs(5), |s| {
        s.own("leader") == 0.0
    })
    .await;
    assert_eq!(standby.own("synced"), 0.0);
    assert!(
        standby.event_series().is_empty(),
        "a standby exports no event series"
    );
    assert_eq!(
        http_get(second.addr, "/readyz").await.0,
        200,
        "a standby is ready"
    );

    api.set_count("shop", "a.1", 5);
    scrape_when(
        first.addr,
        "the leader to count",
        Duration::from_secs(10),
        |s| s.warnings("shop", "BackOff") == Some(3.0),
    )
    .await;

    // The leader dies without releasing; the standby takes over once the Lease expires.
    let _ = first.child.kill();
    let _ = first.child.wait();
    let killed = Instant::now();
    let s = scrape_when(second.addr, "the take-over", Duration::from_secs(20), |s| {
        s.own("leader") == 1.0 && s.own("synced") == 1.0
    })
    .await;
    assert!(
        killed.elapsed() < Duration::from_secs(12),
        "took over in {:?}",
        killed.elapsed()
    );
    assert_eq!(s.warnings("shop", "BackOff"), Some(0.0), "its own baseline");
    api.set_count("shop", "a.1", 9);
    scrape_when(
        second.addr,
        "the new leader to count",
        Duration::from_secs(10),
        |s| s.warnings("shop", "BackOff") == Some(4.0),
    )
    .await;
    assert_eq!(
        api.lease_holder("monitoring", "kube-event-metrics")
            .as_deref(),
        Some("replica-b")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_its_lease_exits_non_zero() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "a.1", "BackOff", 2));
    let mut leader = replica(&api, "replica-a");
    scrape_when(leader.addr, "a leader", Duration::from_secs(20), |s| {
        s.own("leader") == 1.0
    })
    .await;
    api.change(|state| state.steal_lease("monitoring", "kube-event-metrics", "intruder"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = leader.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running after losing the Lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "{status:?}");
}

async fn leader_and_standby(api: &FakeApi, tokens: Option<&std::path::Path>) -> (Replica, Replica) {
    let first = replica_with(api, "replica-a", tokens, &[]);
    scrape_when(first.addr, "a leader", Duration::from_secs(20), |s| {
        s.own("leader") == 1.0 && s.own("synced") == 1.0
    })
    .await;
    let second = replica_with(api, "replica-b", tokens, &[]);
    scrape_when(second.addr, "a standby", Duration::from_secs(20), |s| {
        s.value("kube_event_metrics_leader", &[]) == Some(0.0)
    })
    .await;
    (first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_the_lease_so_the_standby_takes_over_at_once() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "a.1", "BackOff", 2));
    let (mut first, second) = leader_and_standby(&api, None).await;
    first.signal("-TERM");
    let stopped = Instant::now();
    assert!(first.wait_exit(Duration::from_secs(10)).success());
    scrape_when(second.addr, "the take-over", Duration::from_secs(10), |s| {
        s.own("leader") == 1.0
    })
    .await;
    let took = stopped.elapsed();
    eprintln!("graceful hand-over: {took:?} from SIGTERM to the standby leading");
    // Without the release the standby waits out the 3 s lease duration.
    assert!(took < Duration::from_secs(2), "took over after {took:?}");
    assert_eq!(
        api.lease_holder("monitoring", "kube-event-metrics")
            .as_deref(),
        Some("replica-b")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_partitioned_from_its_lease_fences_before_the_standby_leads() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "a.1", "BackOff", 2));
    let tokens = tempfile::tempdir().unwrap();
    let (mut first, second) = leader_and_standby(&api, Some(tokens.path())).await;
    // Its watch still works; only its Lease requests fail.
    api.change(|state| state.partition_lease("replica-a"));
    let partitioned = Instant::now();
    let mut samples = Vec::new();
    let mut took_over = None;
    while partitioned.elapsed() < Duration::from_secs(20) {
        let pair = (
            leader_gauge(first.addr).await,
            leader_gauge(second.addr).await,
        );
        samples.push(pair);
        if pair.1 == 1.0 && took_over.is_none() {
            took_over = Some(partitioned.elapsed());
        }
        if took_over.is_some_and(|at| partitioned.elapsed() > at + Duration::from_secs(1)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took_over = took_over.expect("the standby never took over");
    eprintln!(
        "partition: standby leads {took_over:?} after the partition; {} samples",
        samples.len()
    );
    assert!(
        samples.iter().all(|(a, b)| *a + *b <= 1.0),
        "two leaders at once: {samples:?}"
    );
    assert!(
        samples.iter().any(|(a, _)| *a == 1.0),
        "sampled the old leader leading"
    );
    assert!(
        !first.wait_exit(Duration::from_secs(10)).success(),
        "a fenced leader exits non-zero"
    );
    assert!(api.lease_writes("replica-a") > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_before_the_first_election_outcome() {
    let api = FakeApi::start().await;
    let tokens = tempfile::tempdir().unwrap();
    api.change(|state| state.partition_lease("replica-c"));
    let replica = replica_with(&api, "replica-c", Some(tokens.path()), &[]);
    scrape_when(replica.addr, "serving", Duration::from_secs(20), |_| true).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(http_get(replica.addr, "/readyz").await.0, 503);
    assert_eq!(leader_gauge(replica.addr).await, 0.0);
    api.change(|state| state.heal_lease());
    scrape_when(replica.addr, "leading", Duration::from_secs(20), |s| {
        s.own("leader") == 1.0 && s.own("synced") == 1.0
    })
    .await;
    assert_eq!(http_get(replica.addr, "/readyz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_from_before_another_replica_led_is_not_restored() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "a.1", "BackOff", 2));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("a-state");
    let state_args = ["--state-file", state.to_str().unwrap()];
    let mut first = replica_with(&api, "replica-a", None, &state_args);
    scrape_when(first.addr, "a leader", Duration::from_secs(20), |s| {
        s.own("leader") == 1.0 && s.own("synced") == 1.0
    })
    .await;
    // The scrape's cut is written in the background.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !state.exists() {
        assert!(Instant::now() < deadline, "no state file written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut second = replica(&api, "replica-b");
    scrape_when(second.addr, "a standby", Duration::from_secs(20), |s| {
        s.value("kube_event_metrics_leader", &[]) == Some(0.0)
    })
    .await;
    // replica-a crashes; replica-b leads and counts 5 occurrences.
    first.signal("-KILL");
    first.wait_exit(Duration::from_secs(5));
    scrape_when(second.addr, "b leading", Duration::from_secs(20), |s| {
        s.own("leader") == 1.0 && s.own("synced") == 1.0
    })
    .await;
    api.set_count("shop", "a.1", 7);
    scrape_when(second.addr, "b counting", Duration::from_secs(10), |s| {
        s.warnings("shop", "BackOff") == Some(5.0)
    })
    .await;
    // replica-a restarts in the same pod (same name, same state file) as a standby, and leads
    // again when replica-b dies: its snapshot predates replica-b's term.
    let first = replica_with(&api, "replica-a", None, &state_args);
    scrape_when(first.addr, "a standby", Duration::from_secs(20), |s| {
        s.value("kube_event_metrics_leader", &[]) == Some(0.0)
    })
    .await;
    second.signal("-KILL");
    second.wait_exit(Duration::from_secs(5));
    let s = scrape_when(
        first.addr,
        "a leading again",
        Duration::from_secs(20),
        |s| s.own("leader") == 1.0 && s.own("synced") == 1.0,
    )
    .await;
    assert_eq!(
        s.warnings("shop", "BackOff"),
        Some(0.0),
        "a baseline: the 5 occurrences replica-b counted are not counted again"
    );
    api.set_count("shop", "a.1", 8);
    scrape_when(first.addr, "a counting", Duration::from_secs(10), |s| {
        s.warnings("shop", "BackOff") == Some(1.0)
    })
    .await;
}
