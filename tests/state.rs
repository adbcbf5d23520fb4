//! `--state-file`: a restart counts what happened while the exporter was down exactly once.

mod support;

use support::{EventSpec, FakeApi, barrier, scrape_until, start_exporter};

/// A state file in a temporary directory, and exporters started on it.
struct StateFile {
    dir: tempfile::TempDir,
}

impl StateFile {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    /// An exporter on this state file, once synced, with that first scrape.
    async fn start(
        &self,
        api: &FakeApi,
        extra: &[&str],
    ) -> (kube_event_metrics::app::Running, support::Scrape) {
        let path = self.path();
        let mut args = vec!["--state-file", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        let exporter = start_exporter(api, &args).await;
        let s = scrape_until(exporter.local_addr, "synced", |s| s.own("synced") == 1.0).await;
        (exporter, s)
    }
}

fn seed(api: &FakeApi) {
    api.create(&EventSpec::new("shop", "a.1", "BackOff", 5));
    api.create(&EventSpec::new("shop", "b.1", "Unhealthy", 3));
    api.create(&EventSpec::new("shop", "c.1", "FailedMount", 2));
}

#[tokio::test]
async fn a_restart_counts_the_gap_once() {
    let api = FakeApi::start().await;
    seed(&api);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state_arg = state.to_str().unwrap();

    let first = start_exporter(&api, &["--state-file", state_arg]).await;
    scrape_until(first.local_addr, "synced", |s| s.own("synced") == 1.0).await;
    api.set_count("shop", "a.1", 6);
    let s = barrier(&api, first.local_addr, "shop", 1).await;
    assert_eq!(s.warnings("shop", "BackOff"), Some(1.0));
    first.stop().await;
    assert!(state.exists(), "a snapshot is written at shutdown");

    // While no exporter runs: growth, a new Event, a deletion; history compacted.
    api.change(|state| {
        state.set_count("shop", "a.1", 9);
        state.create(&EventSpec::new("shop", "d.1", "Evicted", 2));
        state.delete("shop", "c.1");
        state.compact();
    });

    let second = start_exporter(&api, &["--state-file", state_arg]).await;
    let s = scrape_until(second.local_addr, "synced", |s| s.own("synced") == 1.0).await;
    // The new process' counters start at 0 (a reset to Prometheus) and hold the gap alone.
    assert_eq!(s.warnings("shop", "BackOff"), Some(3.0));
    assert_eq!(s.warnings("shop", "Evicted"), Some(2.0));
    assert_eq!(s.warnings("shop", "Unhealthy"), Some(0.0));
    assert_eq!(
        s.warnings("shop", "FailedMount"),
        None,
        "deleted while down"
    );
    // a.1, b.1, d.1 and the barrier.
    assert_eq!(s.own("tracked_events"), 4.0);
    // And it keeps counting live.
    api.set_count("shop", "b.1", 4);
    let s = barrier(&api, second.local_addr, "shop", 2).await;
    assert_eq!(s.warnings("shop", "Unhealthy"), Some(1.0));
    second.stop().await;
}

#[tokio::test]
async fn corrupt_or_stale_state_falls_back_to_the_baseline() {
    let api = FakeApi::start().await;
    seed(&api);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state_arg = state.to_str().unwrap();

    std::fs::write(&state, b"KEMSTATE but not really").unwrap();
    let exporter = start_exporter(&api, &["--state-file", state_arg]).await;
    let s = scrape_until(exporter.local_addr, "synced", |s| s.own("synced") == 1.0).await;
    assert_eq!(
        s.warnings("shop", "BackOff"),
        Some(0.0),
        "baseline, not a crash"
    );
    exporter.stop().await;
    assert!(
        kube_event_metrics::snapshot::load(&state, std::time::Duration::from_secs(60)).is_ok(),
        "the corrupt file was replaced by a good snapshot"
    );

    // A snapshot older than --state-file.max-age is not trusted either.
    api.set_count("shop", "a.1", 50);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let exporter = start_exporter(
        &api,
        &["--state-file", state_arg, "--state-file.max-age", "1s"],
    )
    .await;
    let s = scrape_until(exporter.local_addr, "synced", |s| s.own("synced") == 1.0).await;
    assert_eq!(s.warnings("shop", "BackOff"), Some(0.0));
    exporter.stop().await;
}

fn labels<'a>(reason: &'a str) -> kube_event_metrics::store::LabelValues<'a> {
    kube_event_metrics::store::LabelValues {
        namespace: "shop",
        kind: "Pod",
        reason,
        event_type: "Warning",
        source: "kubelet",
        class: "",
    }
}

/// Waits until the exporter's live counter (what no scrape has published yet) reaches `value`.
async fn counted_live(exporter: &kube_event_metrics::app::Running, reason: &str, value: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while exporter.store.value_of(&labels(reason)) != Some(value) {
        assert!(
            std::time::Instant::now() < deadline,
            "{reason} never reached {value}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_graceful_stop_persists_what_was_scraped_so_the_unscraped_growth_counts_next_time() {
    let api = FakeApi::start().await;
    seed(&api);
    let state = StateFile::new();
    let (first, _) = state.start(&api, &[]).await;
    api.set_count("shop", "a.1", 6);
    scrape_until(first.local_addr, "a.1 at 6", |s| {
        s.warnings("shop", "BackOff") == Some(1.0)
    })
    .await;
    // Counted, but no scrape shows it before the exporter stops.
    api.set_count("shop", "a.1", 9);
    counted_live(&first, "BackOff", 4).await;
    first.stop().await;

    let (second, s) = state.start(&api, &[]).await;
    // Prometheus saw 1 from the first process; the 3 it never saw come from the second.
    assert_eq!(s.warnings("shop", "BackOff"), Some(3.0));
    second.stop().await;
}

#[tokio::test]
async fn a_snapshot_taken_before_the_first_list_completed_does_not_count_history() {
    let api = FakeApi::start().await;
    seed(&api);
    let state = StateFile::new();
    let path = state.path();

    // Every list fails (RBAC not applied yet, an overloaded API server): no first list completes.
    api.change(|state| state.fail_next(500, 100_000));
    let first = start_exporter(&api, &["--state-file", path.to_str().unwrap()]).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while api.requests().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "no list attempts");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let s = support::scrape(first.local_addr).await;
    assert_eq!(s.own("synced"), 0.0);
    first.stop().await;
    assert!(path.exists(), "the scrape's cut was persisted");

    api.change(|state| state.clear_failures());
    let (second, s) = state.start(&api, &[]).await;
    assert_eq!(
        s.warnings("shop", "BackOff"),
        Some(0.0),
        "history is the baseline"
    );
    assert_eq!(s.warnings("shop", "Unhealthy"), Some(0.0));
    second.stop().await;
}

#[tokio::test]
async fn a_wider_filter_after_a_restart_takes_a_baseline_for_what_it_newly_admits() {
    let api = FakeApi::start().await;
    seed(&api);
    let state = StateFile::new();
    let (first, _) = state.start(&api, &["--exclude-reason", "Unhealthy"]).await;
    api.set_count("shop", "a.1", 6);
    scrape_until(first.local_addr, "a.1 at 6", |s| {
        s.warnings("shop", "BackOff") == Some(1.0)
    })
    .await;
    first.stop().await;

    api.gap(|state| {
        state.set_count("shop", "a.1", 8);
        state.set_count("shop", "b.1", 4);
    });
    let (second, s) = state.start(&api, &[]).await;
    assert_eq!(
        s.warnings("shop", "BackOff"),
        Some(2.0),
        "remembered: diffed"
    );
    assert_eq!(
        s.warnings("shop", "Unhealthy"),
        Some(0.0),
        "newly admitted: its 4 occurrences are history, not news"
    );
    api.set_count("shop", "b.1", 5);
    let s = scrape_until(second.local_addr, "b.1 at 5", |s| {
        s.warnings("shop", "Unhealthy") == Some(1.0)
    })
    .await;
    assert_eq!(s.warnings("shop", "BackOff"), Some(2.0));
    second.stop().await;
}

#[tokio::test]
async fn an_event_recreated_after_its_ttl_counts_one_occurrence_also_across_a_restart() {
    let api = FakeApi::start().await;
    let state = StateFile::new();
    let hpa = |count| EventSpec::new("shop", "web.17a", "FailedGetScale", count);

    let (first, _) = state.start(&api, &[]).await;
    api.create(&hpa(3));
    scrape_until(first.local_addr, "3 counted", |s| {
        s.warnings("shop", "FailedGetScale") == Some(3.0)
    })
    .await;
    // The API server deletes it after its TTL; client-go creates it again: new uid, same name
    // and firstTimestamp, count + 1.
    api.delete("shop", "web.17a");
    api.create(&hpa(4));
    let s = scrape_until(first.local_addr, "the re-creation", |s| {
        s.own("tracked_events") == 1.0 && s.warnings("shop", "FailedGetScale") != Some(3.0)
    })
    .await;
    assert_eq!(s.warnings("shop", "FailedGetScale"), Some(4.0));

    // Deleted again; the exporter restarts before the recorder re-creates it.
    api.delete("shop", "web.17a");
    let s = scrape_until(first.local_addr, "the deletion", |s| {
        s.own("tracked_events") == 0.0
    })
    .await;
    assert_eq!(
        s.own("tombstones"),
        1.0,
        "the first was used by the re-creation"
    );
    first.stop().await;
    let (second, _) = state.start(&api, &[]).await;
    api.create(&hpa(5));
    let s = scrape_until(second.local_addr, "the re-creation", |s| {
        s.own("tracked_events") == 1.0
    })
    .await;
    assert_eq!(s.warnings("shop", "FailedGetScale"), Some(1.0));
    second.stop().await;
}

struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An exporter process on `state`, once it serves a synced scrape.
async fn process_on(api: &FakeApi, state: &std::path::Path) -> (Process, std::net::SocketAddr) {
    let addr = support::free_local_addr();
    let child = support::exporter_process(api, addr)
        .args(["--state-file", state.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the exporter never listened"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    scrape_until(addr, "synced", |s| s.own("synced") == 1.0).await;
    (Process(child), addr)
}

#[tokio::test]
async fn a_kill_counts_what_no_scrape_saw_once_and_what_a_scrape_saw_never_again() {
    let api = FakeApi::start().await;
    seed(&api);
    let state = StateFile::new();
    let (mut first, addr) = process_on(&api, &state.path()).await;
    api.set_count("shop", "a.1", 8);
    scrape_until(addr, "a.1 at 8", |s| {
        s.warnings("shop", "BackOff") == Some(3.0)
    })
    .await;
    // SIGKILL the moment Prometheus has seen the 3: the next process must not count them again.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let (mut second, addr) = process_on(&api, &state.path()).await;
    let s = support::scrape(addr).await;
    assert_eq!(
        s.warnings("shop", "BackOff"),
        Some(0.0),
        "seen, so not counted twice"
    );

    // Growth no scrape shows, longer than any snapshot timer, then SIGKILL.
    api.set_count("shop", "a.1", 9);
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    second.0.kill().unwrap();
    second.0.wait().unwrap();
    let (_third, addr) = process_on(&api, &state.path()).await;
    let s = support::scrape(addr).await;
    assert_eq!(
        s.warnings("shop", "BackOff"),
        Some(1.0),
        "unseen, so counted by the next process"
    );
}
