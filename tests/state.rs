//! `--state-file`: a restart counts what happened while the exporter was down exactly once.

mod support;

use support::{EventSpec, FakeApi, barrier, scrape_until, start_exporter};

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
        kube_event_metrics::state::load(&state, std::time::Duration::from_secs(60)).is_ok(),
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
