//! The exporter end to end against the fake API server, through a kubeconfig, scraped over HTTP.

mod support;

use support::{
    EventSpec, FakeApi, barrier, http_get, scrape, scrape_until, start_exporter, start_synced,
};

#[tokio::test]
async fn baseline_then_live_increments() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "web-1.a", "BackOff", 5));
    api.create(&EventSpec::new("shop", "web-2.b", "FailedMount", 3));
    let exporter = start_exporter(&api, &[]).await;
    let addr = exporter.local_addr;

    let s = scrape_until(addr, "synced", |s| s.own("synced") == 1.0).await;
    // History is the baseline: the series exist at 0.
    assert_eq!(s.warnings("shop", "BackOff"), Some(0.0));
    assert_eq!(s.warnings("shop", "FailedMount"), Some(0.0));
    assert_eq!(s.own("tracked_events"), 2.0);

    api.set_count("shop", "web-1.a", 8);
    api.set_count("shop", "web-1.a", 9);
    api.create(&EventSpec::new("shop", "web-3.c", "BackOff", 1));
    let s = barrier(&api, addr, "shop", 1).await;
    assert_eq!(s.warnings("shop", "BackOff"), Some(5.0)); // 8-5 + 9-8 + 1
    assert_eq!(s.warnings("shop", "FailedMount"), Some(0.0));
    assert_eq!(s.own("tracked_events"), 4.0);
    assert!(s.own("watch_updates_total") >= 6.0);
    assert!(s.own("last_update_timestamp_seconds") > 1.7e9);
    exporter.stop().await;
}

#[tokio::test]
async fn readyz_is_503_until_the_first_list_then_200() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "web-1.a", "BackOff", 5));
    api.change(|state| state.fail_next(500, 1000));
    let exporter = start_exporter(&api, &[]).await;
    let addr = exporter.local_addr;

    let s = scrape_until(addr, "a watch error", |s| {
        s.own("watch_errors_total") >= 1.0
    })
    .await;
    assert_eq!(s.own("synced"), 0.0);
    assert_eq!(http_get(addr, "/readyz").await.0, 503);
    assert_eq!(http_get(addr, "/healthz").await.0, 200);

    api.change(|state| state.clear_failures());
    scrape_until(addr, "synced", |s| s.own("synced") == 1.0).await;
    assert_eq!(http_get(addr, "/readyz").await.0, 200);
    // Ready stays ready through a later watch failure.
    api.change(|state| {
        state.fail_next(500, 3);
        state.close_watches();
    });
    barrier(&api, addr, "shop", 1).await;
    assert_eq!(http_get(addr, "/readyz").await.0, 200);
    exporter.stop().await;
}

#[tokio::test]
async fn relist_counts_what_the_watch_never_saw_exactly_once() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "grow.a", "BackOff", 5));
    api.create(&EventSpec::new("shop", "gone.b", "FailedMount", 3));
    api.create(&EventSpec::new("shop", "same.c", "Unhealthy", 7));
    let exporter = start_synced(&api, &[]).await;
    let addr = exporter.local_addr;

    // While no watch is connected: growth, a deletion and a creation, then compaction.
    api.gap(|state| {
        state.set_count("shop", "grow.a", 9);
        state.delete("shop", "gone.b");
        state.create(&EventSpec::new("shop", "new.d", "Evicted", 2));
    });
    let s = scrape_until(addr, "the relist", |s| {
        s.warnings("shop", "Evicted") == Some(2.0)
    })
    .await;
    assert_eq!(s.warnings("shop", "BackOff"), Some(4.0));
    assert_eq!(s.warnings("shop", "Unhealthy"), Some(0.0));
    // One gap, one relist.
    assert_eq!(s.own("relists_total"), 1.0);

    // A second expiry with nothing changed counts nothing again.
    api.change(|state| {
        state.expire_watches();
        state.compact();
    });
    let relists = s.own("relists_total");
    scrape_until(addr, "a second relist", |s| {
        s.own("relists_total") > relists
    })
    .await;
    let s = barrier(&api, addr, "shop", 1).await;
    assert_eq!(s.warnings("shop", "BackOff"), Some(4.0));
    assert_eq!(s.warnings("shop", "Evicted"), Some(2.0));
    assert_eq!(s.warnings("shop", "FailedMount"), Some(0.0));
    // grow.a, same.c, new.d and the barrier; gone.b was forgotten.
    assert_eq!(s.own("tracked_events"), 4.0);
    exporter.stop().await;
}

#[tokio::test]
async fn dropped_connection_resumes_without_relist_or_loss() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "a.1", "BackOff", 1));
    let exporter = start_synced(&api, &[]).await;
    let addr = exporter.local_addr;

    // The stream is closed and changes happen before the exporter re-watches; no compaction,
    // so the re-watch from its last resourceVersion replays them.
    api.change(|state| {
        state.close_watches();
        state.set_count("shop", "a.1", 4);
        state.create(&EventSpec::new("shop", "b.2", "BackOff", 2));
    });
    let s = barrier(&api, addr, "shop", 1).await;
    assert_eq!(s.warnings("shop", "BackOff"), Some(5.0));
    assert_eq!(s.own("relists_total"), 0.0);
    let watches = api
        .requests()
        .iter()
        .filter(|r| r.contains("watch=true"))
        .count();
    assert!(watches >= 2, "re-watched: {:?}", api.requests());
    exporter.stop().await;
}

#[tokio::test]
async fn deletes_and_recreations_count_once() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "pod.a", "BackOff", 2));
    let exporter = start_synced(&api, &[]).await;
    let addr = exporter.local_addr;

    // The final object of a deletion carries one more occurrence.
    api.change(|state| {
        state.update("shop", "pod.a", |o| o["count"] = serde_json::json!(3));
    });
    api.delete("shop", "pod.a");
    // Re-created with the same name: a new uid, a new Event.
    api.create(&EventSpec::new("shop", "pod.a", "BackOff", 1));
    api.set_count("shop", "pod.a", 2);
    let s = barrier(&api, addr, "shop", 1).await;
    assert_eq!(s.warnings("shop", "BackOff"), Some(3.0)); // 1 + 1 + 1
    assert_eq!(s.own("tracked_events"), 2.0);
    exporter.stop().await;
}

#[tokio::test]
async fn malformed_object_in_a_list_page_is_skipped_and_counted() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "good.1", "BackOff", 4));
    api.change(|state| {
        let mut bad = EventSpec::new("shop", "bad.2", "Evicted", 1).to_json();
        bad["count"] = serde_json::json!("seven");
        state.put_raw("shop", "bad.2", bad);
    });
    api.create(&EventSpec::new("shop", "good.3", "Unhealthy", 2));
    let exporter = start_exporter(&api, &["--count-existing"]).await;
    let addr = exporter.local_addr;

    let s = scrape_until(addr, "synced", |s| s.own("synced") == 1.0).await;
    assert_eq!(s.own("malformed_objects_total"), 1.0);
    assert_eq!(s.warnings("shop", "BackOff"), Some(4.0));
    assert_eq!(s.warnings("shop", "Unhealthy"), Some(2.0));
    assert_eq!(s.warnings("shop", "Evicted"), None);

    // A malformed object on the watch is skipped too, and the watch goes on.
    api.change(|state| {
        let mut bad = EventSpec::new("shop", "bad.4", "Evicted", 1).to_json();
        bad["involvedObject"] = serde_json::json!(17);
        state.put_raw("shop", "bad.4", bad);
    });
    let s = barrier(&api, addr, "shop", 1).await;
    assert_eq!(s.own("malformed_objects_total"), 2.0);
    assert_eq!(s.warnings("shop", "Evicted"), None);
    exporter.stop().await;
}

#[tokio::test]
async fn one_type_is_selected_by_the_api_server() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "w.1", "BackOff", 4));
    api.create(&EventSpec::new("shop", "n.2", "Pulled", 3).normal());
    let exporter = start_exporter(&api, &["--types", "Warning", "--count-existing"]).await;
    let addr = exporter.local_addr;
    let s = scrape_until(addr, "synced", |s| s.own("synced") == 1.0).await;
    assert_eq!(s.warnings("shop", "BackOff"), Some(4.0));
    assert_eq!(s.events("shop", "Pulled", "Normal"), None);
    assert!(
        api.requests()
            .iter()
            .all(|r| r.contains("fieldSelector=type%3DWarning")),
        "{:?}",
        api.requests()
    );
    exporter.stop().await;
}

#[tokio::test]
async fn several_types_are_filtered_client_side() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "w.1", "BackOff", 4));
    api.create(&EventSpec::new("shop", "n.2", "Pulled", 3).normal());
    let mut odd = EventSpec::new("shop", "o.3", "Odd", 2);
    odd.event_type = "Unusual".into();
    api.create(&odd);
    let exporter = start_exporter(&api, &["--types", "Warning,Normal", "--count-existing"]).await;
    let addr = exporter.local_addr;
    let s = scrape_until(addr, "synced", |s| s.own("synced") == 1.0).await;
    assert_eq!(s.warnings("shop", "BackOff"), Some(4.0));
    assert_eq!(s.events("shop", "Pulled", "Normal"), Some(3.0));
    assert_eq!(s.events("shop", "Odd", "Unusual"), None);
    assert!(api.requests().iter().all(|r| !r.contains("fieldSelector")));
    exporter.stop().await;
}

#[tokio::test]
async fn two_namespace_watches_baseline_independently() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("a", "x.1", "BackOff", 4));
    api.create(&EventSpec::new("b", "y.1", "BackOff", 3));
    api.create(&EventSpec::new("c", "z.1", "BackOff", 9));
    let exporter = start_exporter(&api, &["--namespace", "a", "--namespace", "b"]).await;
    let addr = exporter.local_addr;
    let s = scrape_until(addr, "synced", |s| s.own("synced") == 1.0).await;
    assert_eq!(s.warnings("a", "BackOff"), Some(0.0));
    assert_eq!(s.warnings("b", "BackOff"), Some(0.0));
    assert_eq!(s.warnings("c", "BackOff"), None);

    // Only b's watch expires; it relists and finds y.1 grown and b's other Event gone, while a's
    // watch goes on and keeps its Events.
    api.create(&EventSpec::new("b", "y.2", "Evicted", 1));
    let s = barrier(&api, addr, "b", 1).await;
    assert_eq!(s.own("tracked_events"), 4.0);
    api.change(|state| {
        state.expire_watches_in("b");
        state.set_count("a", "x.1", 6);
        state.set_count("c", "z.1", 10);
        state.set_count("b", "y.1", 5);
        state.delete("b", "y.2");
    });
    let s = scrape_until(addr, "b's relist", |s| s.own("relists_total") == 1.0).await;
    let s = if s.warnings("b", "BackOff") == Some(2.0) {
        s
    } else {
        scrape_until(addr, "b's diff", |s| {
            s.warnings("b", "BackOff") == Some(2.0)
        })
        .await
    };
    assert_eq!(s.warnings("a", "BackOff"), Some(2.0));
    assert_eq!(s.warnings("c", "BackOff"), None);
    let s = barrier(&api, addr, "a", 2).await;
    // x.1, y.1 and the two barriers: y.2 was forgotten by b's relist alone.
    assert_eq!(s.own("tracked_events"), 4.0);
    assert_eq!(s.own("relists_total"), 1.0);
    assert_eq!(s.warnings("a", "BackOff"), Some(2.0));
    assert_eq!(s.warnings("b", "BackOff"), Some(2.0));
    let paths: Vec<String> = api.requests();
    assert!(
        paths
            .iter()
            .any(|r| r.contains("/api/v1/namespaces/a/events"))
    );
    assert!(
        paths
            .iter()
            .any(|r| r.contains("/api/v1/namespaces/b/events"))
    );
    assert!(!paths.iter().any(|r| r.contains("/api/v1/events")));
    exporter.stop().await;
}

#[tokio::test]
async fn max_series_folds_new_label_sets() {
    let api = FakeApi::start().await;
    for n in 0..12 {
        api.create(&EventSpec::new(&format!("ns{n:02}"), "p.1", "BackOff", 2));
    }
    api.create(&EventSpec::new("ns99", "p.2", "Evicted", 3));
    let exporter = start_exporter(&api, &["--max-series", "10", "--count-existing"]).await;
    let addr = exporter.local_addr;
    let s = scrape_until(addr, "synced", |s| s.own("synced") == 1.0).await;
    let exact: Vec<_> = (0..12)
        .filter_map(|n| s.warnings(&format!("ns{n:02}"), "BackOff"))
        .collect();
    assert_eq!(exact, vec![2.0; 9]);
    assert_eq!(s.warnings("_other_", "BackOff"), Some(6.0));
    let last_fold = s.value(
        "kube_events_total",
        &[
            ("namespace", "_other_"),
            ("kind", "_other_"),
            ("reason", "_other_"),
            ("type", "Warning"),
            ("source", "_other_"),
            ("class", "_other_"),
        ],
    );
    assert_eq!(last_fold, Some(3.0));
    assert_eq!(s.own("folded_total"), 9.0);
    assert_eq!(s.own("series"), 11.0);
    assert_eq!(s.own("series_limit"), 10.0);
    let total: f64 = s.event_series().iter().map(|(_, v)| v).sum();
    assert_eq!(total, 12.0 * 2.0 + 3.0, "folding loses nothing");
    exporter.stop().await;
}

#[tokio::test]
async fn paginated_lists_are_read_whole() {
    let api = FakeApi::start().await;
    api.change(|state| {
        state.refuse_streaming_lists();
        for n in 0..1234 {
            state.create(&EventSpec::new("big", &format!("p{n}.x"), "BackOff", 1));
        }
    });
    let exporter = start_exporter(&api, &["--count-existing"]).await;
    let addr = exporter.local_addr;
    let s = scrape_until(addr, "synced", |s| s.own("synced") == 1.0).await;
    assert_eq!(s.warnings("big", "BackOff"), Some(1234.0));
    assert_eq!(s.own("tracked_events"), 1234.0);
    let pages = api
        .requests()
        .iter()
        .filter(|r| !r.contains("watch=true"))
        .count();
    assert!(pages >= 3, "{:?}", api.requests());
    exporter.stop().await;
}

#[tokio::test]
async fn exposition_has_every_self_metric_and_help() {
    let api = FakeApi::start().await;
    let exporter = start_exporter(&api, &[]).await;
    let addr = exporter.local_addr;
    let s = scrape(addr).await;
    for name in [
        "watch_updates_total",
        "watch_errors_total",
        "relists_total",
        "tracked_events",
        "series",
        "series_limit",
        "folded_total",
        "count_decreases_total",
        "malformed_objects_total",
        "last_update_timestamp_seconds",
        "synced",
        "leader",
    ] {
        s.own(name);
    }
    assert!(s.text.contains("# TYPE kube_events_total counter"));
    assert!(s.text.contains("# TYPE kube_event_metrics_watches gauge"));
    for list in ["streaming", "paginated"] {
        assert!(
            s.value("kube_event_metrics_watches", &[("list", list)])
                .is_some(),
            "{list}"
        );
    }
    assert_eq!(s.own("leader"), 1.0);
    assert_eq!(
        s.value(
            "kube_event_metrics_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert_eq!(s.own("last_update_timestamp_seconds"), 0.0);
    let (status, page) = http_get(addr, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("href=\"/metrics\""));
    assert_eq!(http_get(addr, "/nope").await.0, 404);
    exporter.stop().await;
}

#[tokio::test]
async fn bookmarks_move_the_resume_point() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("a", "x.1", "BackOff", 1));
    let exporter = start_synced(&api, &["--namespace", "a"]).await;
    let addr = exporter.local_addr;
    let s = barrier(&api, addr, "a", 1).await;
    let updates = s.own("watch_updates_total");

    // Changes this watch cannot see advance the resourceVersion; a BOOKMARK tells the exporter.
    let delivered = api.change(|state| state.bookmarks_delivered);
    let bookmark = api.change(|state| {
        for n in 0..5 {
            state.create(&EventSpec::new(
                "elsewhere",
                &format!("e{n}.x"),
                "BackOff",
                1,
            ));
        }
        state.bookmark();
        state.resource_version()
    });
    // The bookmark is on the exporter's connection before it drops.
    support::until_api(&api, "the bookmark", |state| {
        state.bookmarks_delivered > delivered
    })
    .await;
    api.change(|state| {
        state.close_watches();
        state.set_count("a", "x.1", 3);
    });
    let s = barrier(&api, addr, "a", 2).await;
    assert_eq!(s.warnings("a", "BackOff"), Some(2.0));
    assert_eq!(
        s.own("watch_updates_total"),
        updates + 2.0,
        "bookmarks are not updates"
    );
    let resumed = format!("resourceVersion={bookmark}");
    assert!(
        api.requests()
            .iter()
            .any(|r| r.contains("watch=true") && r.split(['?', '&']).any(|param| param == resumed)),
        "no watch resumed from the bookmark ({resumed}): {:#?}",
        api.requests()
    );
    exporter.stop().await;
}

#[tokio::test]
async fn forbidden_list_is_an_error_that_is_retried() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "a.1", "BackOff", 1));
    api.change(|state| state.fail_next(403, 2));
    let exporter = start_exporter(&api, &[]).await;
    let addr = exporter.local_addr;
    let s = scrape_until(addr, "synced", |s| s.own("synced") == 1.0).await;
    assert_eq!(s.own("watch_errors_total"), 2.0);
    assert_eq!(s.warnings("shop", "BackOff"), Some(0.0));
    exporter.stop().await;
}
