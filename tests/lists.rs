//! How a watch gets its list: a streaming list (KEP-3157) where the API server serves one, pages
//! where it refuses or ignores one, and the same counters either way.

mod support;

use support::fake_api::WatchList;
use support::{EventSpec, FakeApi, Scrape, barrier, scrape_until, start_exporter};

fn streaming_requests(api: &FakeApi) -> usize {
    api.count_requests(|r| r.contains("sendInitialEvents=true"))
}

/// Lists that are not the one-item count of a streaming list's size.
fn page_requests(api: &FakeApi) -> usize {
    api.count_requests(|r| {
        !r.contains("watch=true") && !r.contains("limit=1&") && !r.ends_with("limit=1")
    })
}

fn mode(s: &Scrape, list: &str) -> Option<f64> {
    s.value("kube_event_metrics_watches", &[("list", list)])
}

/// Baseline, live growth, a relist after a gap with growth, a deletion and a creation: what a
/// watch lives through, whatever its list mode.
async fn live_through_a_relist(api: &FakeApi, extra: &[&str]) -> Scrape {
    api.change(|state| {
        state.create(&EventSpec::new("shop", "grow.a", "BackOff", 5));
        state.create(&EventSpec::new("shop", "gone.b", "FailedMount", 3));
        state.create(&EventSpec::new("shop", "same.c", "Unhealthy", 7));
    });
    let exporter = start_exporter(api, extra).await;
    let addr = exporter.local_addr;
    scrape_until(addr, "synced", |s| {
        // A server that ignores streaming lists shows it by its next bookmark.
        api.change(|state| state.bookmark());
        s.own("synced") == 1.0
    })
    .await;
    api.set_count("shop", "grow.a", 6);
    barrier(api, addr, "shop", 1).await;
    api.gap(|state| {
        state.set_count("shop", "grow.a", 9);
        state.delete("shop", "gone.b");
        state.create(&EventSpec::new("shop", "new.d", "Evicted", 2));
    });
    scrape_until(addr, "the relist", |s| s.own("relists_total") == 1.0).await;
    let s = barrier(api, addr, "shop", 2).await;
    exporter.stop().await;
    s
}

fn expect_counted_exactly(s: &Scrape) {
    assert_eq!(s.warnings("shop", "BackOff"), Some(4.0), "{}", s.text);
    assert_eq!(s.warnings("shop", "Evicted"), Some(2.0));
    assert_eq!(s.warnings("shop", "Unhealthy"), Some(0.0));
    assert_eq!(s.warnings("shop", "FailedMount"), Some(0.0));
    assert_eq!(s.own("relists_total"), 1.0);
}

#[tokio::test]
async fn a_server_that_serves_streaming_lists_is_listed_by_them() {
    let api = FakeApi::start().await;
    let s = live_through_a_relist(&api, &[]).await;
    expect_counted_exactly(&s);
    assert_eq!(mode(&s, "streaming"), Some(1.0));
    assert_eq!(mode(&s, "paginated"), Some(0.0));
    // The first list and the relist, both from the watch cache; no page was read.
    assert_eq!(api.change(|state| state.streaming_lists), 2);
    assert_eq!(page_requests(&api), 0, "{:#?}", api.requests());
    // The consistent form: no resourceVersion, so nothing older than etcd's current state.
    let first = api
        .requests()
        .into_iter()
        .find(|r| r.contains("sendInitialEvents=true"))
        .unwrap();
    assert!(
        first.contains("resourceVersionMatch=NotOlderThan"),
        "{first}"
    );
    let resource_version = first
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("resourceVersion="));
    assert!(resource_version.is_none_or(str::is_empty), "{first}");
}

#[tokio::test]
async fn a_server_that_refuses_streaming_lists_is_listed_in_pages_after_one_try() {
    let api = FakeApi::start().await;
    api.change(|state| state.refuse_streaming_lists());
    let s = live_through_a_relist(&api, &[]).await;
    expect_counted_exactly(&s);
    assert_eq!(mode(&s, "paginated"), Some(1.0));
    assert_eq!(mode(&s, "streaming"), Some(0.0));
    assert_eq!(streaming_requests(&api), 1, "the relist did not ask again");
    assert_eq!(page_requests(&api), 2);
    assert_eq!(s.own("watch_errors_total"), 1.0, "only the relist's 410");
}

#[tokio::test]
async fn a_server_older_than_streaming_lists_is_never_asked_for_one() {
    let api = FakeApi::start().await;
    api.change(|state| {
        state.watch_list = WatchList::Ignored;
        state.version = ("1".into(), "26".into());
    });
    let s = live_through_a_relist(&api, &[]).await;
    expect_counted_exactly(&s);
    assert_eq!(mode(&s, "paginated"), Some(1.0));
    assert_eq!(streaming_requests(&api), 0);
}

#[tokio::test]
async fn a_server_that_ignores_streaming_lists_despite_its_version_falls_back_to_pages() {
    let api = FakeApi::start().await;
    api.change(|state| state.watch_list = WatchList::Ignored);
    let s = live_through_a_relist(&api, &[]).await;
    expect_counted_exactly(&s);
    assert_eq!(mode(&s, "paginated"), Some(1.0));
    assert_eq!(streaming_requests(&api), 1);
}

#[tokio::test]
async fn forced_pages_never_ask_for_a_streaming_list() {
    let api = FakeApi::start().await;
    let s = live_through_a_relist(&api, &["--watch.list-mode=paginated"]).await;
    expect_counted_exactly(&s);
    assert_eq!(mode(&s, "paginated"), Some(1.0));
    assert_eq!(streaming_requests(&api), 0);
    assert_eq!(api.change(|state| state.streaming_lists), 0);
}

#[tokio::test]
async fn forced_streaming_against_a_refusing_server_keeps_retrying_and_never_syncs() {
    let api = FakeApi::start().await;
    api.change(|state| state.refuse_streaming_lists());
    let exporter = start_exporter(&api, &["--watch.list-mode=streaming"]).await;
    let addr = exporter.local_addr;
    let s = scrape_until(addr, "two refusals", |s| s.own("watch_errors_total") >= 2.0).await;
    assert_eq!(s.own("synced"), 0.0);
    assert_eq!(page_requests(&api), 0, "{:#?}", api.requests());
    assert!(streaming_requests(&api) >= 2);
    exporter.stop().await;
}

#[tokio::test]
async fn repeated_expiry_of_a_streamed_watch_relists_exactly() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "a.1", "BackOff", 1));
    let exporter = start_exporter(&api, &[]).await;
    let addr = exporter.local_addr;
    scrape_until(addr, "synced", |s| s.own("synced") == 1.0).await;
    for round in 1..=5u32 {
        api.gap(|state| state.set_count("shop", "a.1", u64::from(1 + round)));
        scrape_until(addr, "the relist", |s| {
            s.own("relists_total") == f64::from(round)
        })
        .await;
    }
    let s = barrier(&api, addr, "shop", 1).await;
    assert_eq!(s.warnings("shop", "BackOff"), Some(5.0));
    assert_eq!(api.change(|state| state.streaming_lists), 6);
    exporter.stop().await;
}
