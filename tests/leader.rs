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
    let addr = support::free_local_addr();
    let child = support::exporter_process(api, addr)
        .args([
            "--leader-election",
            "--leader-election.lease-duration",
            "3s",
        ])
        .env("POD_NAMESPACE", "monitoring")
        .env("POD_NAME", name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Replica { child, addr }
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
