//! Fault injection against the fake API server: every fault leaves the process serving, every
//! count exact, and a trace in a self-metric or a log line.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{
    EventSpec, FakeApi, barrier, http_get, scrape, scrape_until, start_exporter, start_synced,
};

fn watch_requests(api: &FakeApi) -> usize {
    api.count_requests(|r| r.contains("watch=true"))
}

fn list_requests(api: &FakeApi) -> usize {
    api.count_requests(|r| !r.contains("watch=true"))
}

#[tokio::test]
async fn server_errors_and_throttling_are_retried_with_backoff_then_counted_exactly() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "a.1", "BackOff", 2));
    for status in [500, 429] {
        api.change(|state| state.fail_next(status, 3));
    }
    let exporter = start_exporter(&api, &["--count-existing"]).await;
    let addr = exporter.local_addr;
    let started = Instant::now();
    let s = scrape_until(addr, "synced", |s| s.own("synced") == 1.0).await;
    // Six failures, each retried after a backoff, not in a tight loop. kube's client retries a
    // 429 itself (after Retry-After), so at least the three 500s reach the watcher.
    assert!(s.own("watch_errors_total") >= 3.0);
    assert!(list_requests(&api) <= 7, "{:?}", api.requests());
    assert!(
        started.elapsed() > Duration::from_secs(3),
        "backed off between retries"
    );
    assert_eq!(s.warnings("shop", "BackOff"), Some(2.0));
    // A failure mid-watch: the re-watch is refused twice, then the gap is caught up exactly.
    api.change(|state| {
        state.fail_next(500, 2);
        state.close_watches();
        state.set_count("shop", "a.1", 5);
    });
    let s = barrier(&api, addr, "shop", 1).await;
    assert_eq!(s.warnings("shop", "BackOff"), Some(5.0));
    assert!(s.own("watch_errors_total") >= 5.0);
    exporter.stop().await;
}

#[tokio::test]
async fn forbidden_at_start_names_the_verb_keeps_serving_and_recovers_without_restart() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "a.1", "BackOff", 2));
    api.change(|state| state.fail_next(403, 4));
    let addr = support::free_local_addr();
    // Paginated, so the first requests are lists (a streaming list is a watch).
    let mut child = support::exporter_process(&api, addr)
        .arg("--watch.list-mode=paginated")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Four backoffs of 0.8 s doubling, each with up to as much jitter again: up to 24 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut saw_not_ready = false;
    loop {
        let (status, _) = if tokio::net::TcpStream::connect(addr).await.is_ok() {
            http_get(addr, "/readyz").await
        } else {
            (0, String::new())
        };
        saw_not_ready |= status == 503;
        if status == 200 {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("never became ready:\n{}", support::stderr_of(&mut child));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        saw_not_ready,
        "/readyz answered 503 while the list was forbidden"
    );
    let s = scrape(addr).await;
    assert_eq!(s.own("watch_errors_total"), 4.0);
    assert_eq!(s.warnings("shop", "BackOff"), Some(0.0));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success());
    let logs = support::stderr_of(&mut child);
    let forbidden: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("RBAC verb \\\"list\\\" on resource \\\"events\\\""))
        .collect();
    assert_eq!(forbidden.len(), 4, "one clear line per refusal:\n{logs}");
    assert!(forbidden[0].contains("level=warn"), "{}", forbidden[0]);
}

#[tokio::test]
async fn a_stalled_stream_is_detected_by_the_watch_timeout_and_caught_up() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "a.1", "BackOff", 1));
    let exporter = start_synced(&api, &["--watch.timeout", "1s"]).await;
    let addr = exporter.local_addr;
    // The exporter reconnects into a stream that never sends; meanwhile the count grows.
    let stalled = api.change(|state| {
        state.stall_watches(true);
        state.close_watches();
        state.stalled_streams
    });
    let watches = watch_requests(&api);
    support::until_api(&api, "a stalled stream", |state| {
        state.stalled_streams > stalled
    })
    .await;
    let stalled_at = Instant::now();
    api.change(|state| {
        state.set_count("shop", "a.1", 4);
        state.stall_watches(false);
    });
    // Silent for longer than the timeout: reopened, and the update arrives.
    let s = scrape_until(addr, "the stall to be noticed", |s| {
        s.warnings("shop", "BackOff") == Some(3.0)
    })
    .await;
    // The stalled stream was given its 1 s and the 5 s margin, and no less: the update came by
    // the stall detector, not by some other reconnect.
    let noticed = stalled_at.elapsed();
    assert!(
        noticed >= Duration::from_secs(5),
        "reopened {noticed:?} after the stall"
    );
    assert!(watch_requests(&api) > watches);
    assert_eq!(s.own("relists_total"), 0.0, "resumed, not relisted");
    exporter.stop().await;
}

#[tokio::test]
async fn a_stream_cut_mid_object_and_a_line_that_is_not_json_lose_nothing() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "a.1", "BackOff", 1));
    let exporter = start_synced(&api, &[]).await;
    let addr = exporter.local_addr;
    let errors = scrape(addr).await.own("watch_errors_total");

    api.change(|state| {
        state.cut_next_line();
        state.set_count("shop", "a.1", 3);
    });
    let s = barrier(&api, addr, "shop", 1).await;
    assert_eq!(s.warnings("shop", "BackOff"), Some(2.0));

    api.change(|state| state.inject_line("this line is not JSON {"));
    api.set_count("shop", "a.1", 6);
    let s = barrier(&api, addr, "shop", 2).await;
    assert_eq!(s.warnings("shop", "BackOff"), Some(5.0));
    assert!(
        s.own("watch_errors_total") > errors,
        "the faults show in watch errors"
    );
    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    exporter.stop().await;
}

#[tokio::test]
async fn objects_without_uid_or_metadata_and_huge_messages_are_handled() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "a.1", "BackOff", 1));
    let exporter = start_synced(&api, &[]).await;
    let addr = exporter.local_addr;

    api.change(|state| {
        let mut no_uid = EventSpec::new("shop", "nouid.1", "Evicted", 3).to_json();
        no_uid["metadata"]["uid"] = serde_json::Value::Null;
        state.put_raw("shop", "nouid.1", no_uid);
        let mut no_metadata = EventSpec::new("shop", "nometa.1", "Evicted", 4).to_json();
        no_metadata["metadata"] = serde_json::json!("gone");
        state.inject_line(&serde_json::json!({"type": "ADDED", "object": no_metadata}).to_string());
        let mut huge = EventSpec::new("shop", "huge.1", "Unhealthy", 7).to_json();
        huge["message"] = serde_json::json!("m".repeat(1024 * 1024));
        state.put_raw("shop", "huge.1", huge);
    });
    let s = barrier(&api, addr, "shop", 1).await;
    assert_eq!(
        s.warnings("shop", "Unhealthy"),
        Some(7.0),
        "the 1 MiB message counts"
    );
    assert_eq!(s.warnings("shop", "Evicted"), None);
    assert_eq!(
        s.own("malformed_objects_total"),
        2.0,
        "the one without a uid and the one without metadata"
    );
    api.set_count("shop", "a.1", 2);
    let s = barrier(&api, addr, "shop", 2).await;
    assert_eq!(s.warnings("shop", "BackOff"), Some(1.0));
    exporter.stop().await;
}

#[tokio::test]
async fn twenty_consecutive_410s_relist_without_double_counting() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "a.1", "BackOff", 1));
    // In pages: a streaming list's watch goes on from its end bookmark, so only a paginated
    // list's resourceVersion can expire again before the next watch opens.
    let exporter = start_synced(&api, &["--watch.list-mode=paginated"]).await;
    let addr = exporter.local_addr;
    api.change(|state| {
        state.expire_next_watches(20);
        state.close_watches();
        state.set_count("shop", "a.1", 4);
    });
    // Each 410 is followed by a backoff of about a second: allow a minute.
    let deadline = Instant::now() + Duration::from_secs(60);
    let s = loop {
        let s = scrape(addr).await;
        if s.own("relists_total") >= 20.0 {
            break s;
        }
        assert!(Instant::now() < deadline, "{}", s.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(s.own("watch_errors_total") >= 20.0);
    let s = barrier(&api, addr, "shop", 1).await;
    assert_eq!(
        s.warnings("shop", "BackOff"),
        Some(3.0),
        "counted once across 20 relists"
    );
    exporter.stop().await;
}

#[tokio::test]
async fn an_api_server_restored_with_a_new_history_is_relisted_exactly() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "a.1", "BackOff", 1));
    api.create(&EventSpec::new("shop", "b.1", "Unhealthy", 2));
    for n in 0..20 {
        api.set_count("shop", "b.1", 3 + n);
    }
    let exporter = start_synced(&api, &[]).await;
    let addr = exporter.local_addr;
    api.change(|state| {
        state.restart_with_new_history();
        state.set_count("shop", "a.1", 3);
        state.delete("shop", "b.1");
    });
    let s = scrape_until(addr, "the relist", |s| s.own("relists_total") >= 1.0).await;
    let s = if s.warnings("shop", "BackOff") == Some(2.0) {
        s
    } else {
        scrape_until(addr, "the diff", |s| {
            s.warnings("shop", "BackOff") == Some(2.0)
        })
        .await
    };
    assert_eq!(s.warnings("shop", "Unhealthy"), Some(0.0));
    let s = barrier(&api, addr, "shop", 1).await;
    assert_eq!(s.warnings("shop", "BackOff"), Some(2.0));
    assert_eq!(s.own("tracked_events"), 2.0, "a.1 and the barrier");
    exporter.stop().await;
}
