//! The status page at `/`: what an operator sees through `kubectl port-forward`.

mod support;

use std::process::Command;

use support::{EventSpec, FakeApi, barrier, http_get, start_synced};

#[tokio::test]
async fn the_page_shows_state_and_the_busiest_label_sets() {
    let api = FakeApi::start().await;
    let exporter = start_synced(&api, &["--max-series", "500"]).await;
    let addr = exporter.local_addr;
    api.create(&EventSpec::new("shop", "web-1.crash", "BackOff", 1));
    api.set_count("shop", "web-1.crash", 9);
    api.create(&EventSpec::new("ml", "trainer-0.fs", "FailedMount", 2));
    barrier(&api, addr, "shop", 1).await;
    let (status, page) = http_get(addr, "/").await;
    assert_eq!(status, 200);
    for shown in [
        "<tr><th>Role</th><td>leader: watching and exporting</td></tr>",
        "<tr><th>Synced</th><td>yes</td></tr>",
        "of 500 (",
        "http-equiv=\"refresh\"",
        "<a href=\"/metrics\">Metrics</a>",
    ] {
        assert!(page.contains(shown), "{shown} missing:\n{page}");
    }
    // The busiest label set first, with what it counted since the page's baseline.
    let last_five = page
        .split("<table id=\"last-5\">")
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .unwrap();
    let rows: Vec<&str> = last_five
        .lines()
        .filter(|l| l.starts_with("<tr><td>"))
        .collect();
    assert!(
        rows[0].contains("<td>shop</td>")
            && rows[0].contains("<td>BackOff</td>")
            && rows[0].ends_with("<td>9</td></tr>"),
        "{last_five}"
    );
    assert!(
        rows.iter()
            .any(|r| r.contains("<td>FailedMount</td>") && r.ends_with("<td>2</td></tr>"))
    );
    assert!(!page.contains("<script"), "no JavaScript");
    exporter.stop().await;
}

/// The rows of the table with this id.
fn table_rows(page: &str, id: &str) -> Vec<String> {
    page.split(&format!("<table id=\"{id}\">"))
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .unwrap_or_else(|| panic!("no table {id}:\n{page}"))
        .lines()
        .filter(|l| l.starts_with("<tr><td>"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn each_watch_shows_how_and_when_it_last_listed() {
    let api = FakeApi::start().await;
    api.change(|state| state.refuse_streaming_lists());
    let exporter = start_synced(&api, &["--namespace", "shop", "--namespace", "ml"]).await;
    let addr = exporter.local_addr;
    let (_, page) = http_get(addr, "/").await;
    let rows = table_rows(&page, "watches");
    assert_eq!(rows.len(), 2, "{page}");
    assert!(
        rows[0].starts_with("<tr><td>namespace=shop fieldSelector=&lt;none&gt;</td>"),
        "{}",
        rows[0]
    );
    assert!(
        rows[0].contains("<td>paginated</td><td>1</td>"),
        "{}",
        rows[0]
    );
    assert!(rows[1].contains("namespace=ml"), "{}", rows[1]);
    // The shop watch expires and lists again; the ml watch does not.
    api.change(|state| state.expire_watches_in("shop"));
    support::scrape_until(addr, "the relist", |s| s.own("relists_total") == 1.0).await;
    let (_, page) = http_get(addr, "/").await;
    let rows = table_rows(&page, "watches");
    assert!(
        rows[0].contains("<td>paginated</td><td>2</td>"),
        "{}",
        rows[0]
    );
    assert!(rows[0].ends_with(" s ago</td></tr>"), "{}", rows[0]);
    assert!(
        rows[1].contains("<td>paginated</td><td>1</td>"),
        "{}",
        rows[1]
    );
    exporter.stop().await;
}

#[tokio::test]
#[ignore = "needs Debian's chromium; .ci/run installs it"]
async fn a_person_sees_the_demo_in_a_real_browser() {
    let exporter = support::start_exporter_with(&["--demo", "--demo.speed", "100"]).await;
    let addr = exporter.local_addr;
    support::scrape_until(addr, "demo series", |s| s.event_series().len() > 5).await;
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--virtual-time-budget=2000", "--dump-dom", &url])
            .output()
            .expect("chromium is installed")
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // What a person reads: the version, the role, the demo as the source, and the busiest
    // label sets of the demo's story.
    for seen in [
        "kube-event-metrics 0.1.0",
        "leader: watching and exporting",
        "demo recording at 100x",
        "Most occurrences, last 5 minutes",
        "<td>Unhealthy</td>",
        "<td>FailedScheduling</td>",
    ] {
        assert!(
            dom.contains(seen),
            "{seen} missing from what Chromium rendered:\n{dom}"
        );
    }
    exporter.stop().await;
}
