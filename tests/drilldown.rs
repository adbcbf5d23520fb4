//! Which object and what went wrong: the `class` label and the exemplars, end to end through the
//! fake API server.

mod support;

use serde_json::json;
use support::{EventSpec, FakeApi, Scrape, barrier, http_request, scrape_until, start_synced};

const OPENMETRICS: &str = "application/openmetrics-text;version=1.0.0";

fn scheduling(namespace: &str, name: &str, message: &str) -> EventSpec {
    let mut spec = EventSpec::new(namespace, name, "FailedScheduling", 1);
    spec.component = "default-scheduler".into();
    spec.message = message.into();
    spec
}

/// The `kube_events_total` samples whose labels include all of `labels`, as (labels, value).
fn series_with(scrape: &Scrape, labels: &[(&str, &str)]) -> Vec<(Vec<(String, String)>, f64)> {
    scrape
        .event_series()
        .into_iter()
        .filter(|(have, _)| {
            labels
                .iter()
                .all(|(k, v)| have.iter().any(|(hk, hv)| hk == k && hv == v))
        })
        .collect()
}

async fn openmetrics(addr: std::net::SocketAddr) -> String {
    let response = http_request(addr, "/metrics", &[("Accept", OPENMETRICS)]).await;
    assert_eq!(response.status, 200);
    String::from_utf8(response.body).unwrap()
}

#[tokio::test]
async fn an_event_is_classified_once_from_its_message() {
    let api = FakeApi::start().await;
    let exporter = start_synced(&api, &[]).await;
    let addr = exporter.local_addr;
    api.create(&scheduling(
        "ml",
        "trainer-0.fs",
        "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
    ));
    let mut config_error = EventSpec::new("shop", "web-1.f", "Failed", 1);
    config_error.message = "Error: configmap \"web\" not found".into();
    api.create(&config_error);
    let mut pull = EventSpec::new("shop", "web-2.f", "Failed", 1);
    pull.message = "Failed to pull image \"web:2\": not found".into();
    api.create(&pull);
    let mut unknown = EventSpec::new("shop", "web-3.f", "Failed", 1);
    unknown.message = "Error: something no catalogue knows".into();
    api.create(&unknown);
    let scrape = barrier(&api, addr, "shop", 1).await;
    let class = |reason: &str, class: &str| {
        series_with(&scrape, &[("reason", reason), ("class", class)])
            .iter()
            .map(|(_, v)| v)
            .sum::<f64>()
    };
    assert_eq!(
        class("FailedScheduling", "insufficient-cpu"),
        1.0,
        "{}",
        scrape.text
    );
    assert_eq!(class("Failed", "config-error"), 1.0, "{}", scrape.text);
    assert_eq!(class("Failed", "image-pull"), 1.0, "{}", scrape.text);
    // An unknown message has no class label at all.
    let unclassified: Vec<_> = series_with(&scrape, &[("reason", "Failed")])
        .into_iter()
        .filter(|(labels, _)| labels.iter().all(|(k, _)| k != "class"))
        .collect();
    assert_eq!(unclassified.len(), 1, "{}", scrape.text);

    // The scheduler's next attempt counts more nodes for another reason: the Event keeps the
    // class it was first given, and its occurrences stay in one series.
    api.change(|state| {
        state.update("ml", "trainer-0.fs", |o| {
            o["count"] = json!(2);
            o["message"] = json!(
                "0/5 nodes are available: 5 node(s) didn't match Pod's node affinity/selector."
            );
        })
    });
    let scrape = barrier(&api, addr, "shop", 2).await;
    let scheduling = series_with(&scrape, &[("reason", "FailedScheduling")]);
    assert_eq!(scheduling.len(), 1, "{}", scrape.text);
    assert!(
        scheduling[0]
            .0
            .contains(&("class".into(), "insufficient-cpu".into()))
    );
    assert_eq!(scheduling[0].1, 2.0);
    exporter.stop().await;
}

#[tokio::test]
async fn openmetrics_samples_carry_the_latest_occurrence_and_text_none() {
    let api = FakeApi::start().await;
    let exporter = start_synced(&api, &[]).await;
    let addr = exporter.local_addr;
    api.create(&EventSpec::new("shop", "web-1.crash", "BackOff", 1));
    api.change(|state| {
        state.update("shop", "web-1.crash", |o| {
            o["count"] = json!(4);
            o["lastTimestamp"] = json!("2026-11-25T10:07:30Z");
            o["source"]["host"] = json!("node-7");
        })
    });
    barrier(&api, addr, "shop", 1).await;
    let text = openmetrics(addr).await;
    let line = text
        .lines()
        .find(|l| l.starts_with("kube_events_total{") && l.contains("reason=\"BackOff\""))
        .unwrap_or_else(|| panic!("{text}"));
    // 2026-11-25T10:07:30Z; the update that counted 3 occurrences (1 to 4).
    let at = "2026-11-25T10:07:30Z"
        .parse::<k8s_openapi::jiff::Timestamp>()
        .unwrap()
        .as_second();
    let (_, exemplar) = line.split_once(" # ").unwrap_or_else(|| panic!("{line}"));
    let (labels, numbers) = exemplar.split_once("} ").unwrap();
    assert_eq!(labels, r#"{object="Pod/web-1",node="node-7""#);
    let numbers: Vec<f64> = numbers.split(' ').map(|n| n.parse().unwrap()).collect();
    assert_eq!(numbers, vec![3.0, at as f64], "{line}");
    assert!(text.ends_with("# EOF\n"));
    // Text 0.0.4 has no exemplars.
    let (_, plain) = support::http_get(addr, "/metrics").await;
    assert!(!plain.contains(" # {"), "{plain}");
    exporter.stop().await;
}

#[tokio::test]
async fn long_values_are_cut_at_a_character_within_the_documented_limits() {
    let api = FakeApi::start().await;
    let exporter = start_synced(&api, &[]).await;
    let addr = exporter.local_addr;
    // 300 two-byte characters: 600 bytes of reason; a 253-character pod and node name.
    let reason: String = "É".repeat(300);
    let pod = format!("{}.x", "p".repeat(253));
    let mut spec = EventSpec::new("shop", &pod, &reason, 1);
    spec.message = "whatever".into();
    api.create(&spec);
    api.change(|state| {
        state.update("shop", &pod, |o| {
            o["count"] = json!(2);
            o["source"]["host"] = json!("ñ".repeat(253));
        })
    });
    let scrape = scrape_until(addr, "the long reason", |s| {
        s.event_series().iter().any(|(labels, v)| {
            *v == 2.0
                && labels
                    .iter()
                    .any(|(k, v)| k == "reason" && v.starts_with('É'))
        })
    })
    .await;
    let (labels, _) = scrape
        .event_series()
        .into_iter()
        .find(|(labels, _)| {
            labels
                .iter()
                .any(|(k, v)| k == "reason" && v.starts_with('É'))
        })
        .unwrap();
    let exported = &labels.iter().find(|(k, _)| k == "reason").unwrap().1;
    assert_eq!(exported.len(), 128, "64 whole characters");
    assert_eq!(exported.as_str(), "É".repeat(64));

    let text = openmetrics(addr).await;
    let line = text
        .lines()
        .find(|l| l.starts_with("kube_events_total{") && l.contains("reason=\"É"))
        .unwrap();
    let exemplar = line
        .split(" # {")
        .nth(1)
        .unwrap()
        .split('}')
        .next()
        .unwrap();
    // Label names and values together, in characters, as Prometheus counts them.
    let runes: usize = exemplar
        .split(',')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap();
            name.chars().count() + value.trim_matches('"').chars().count()
        })
        .sum();
    assert!(runes <= 128, "{runes}: {exemplar}");
    assert!(
        exemplar.contains("node=\"ñ") && exemplar.contains("object=\"Pod/ppp"),
        "{exemplar}"
    );
    exporter.stop().await;
}

#[tokio::test]
async fn rules_from_the_config_file_come_first_and_are_capped_per_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(
        &file,
        "classes:\n  - reason: SyncFailed\n    regex: '^sync of (?P<app>[a-z0-9]+) failed'\n    class: 'app-${app}'\n",
    )
    .unwrap();
    let api = FakeApi::start().await;
    let exporter = start_synced(&api, &["--config.file", file.to_str().unwrap()]).await;
    let addr = exporter.local_addr;
    // 26 apps: 24 classes, then the cap; the empty class is not one of them.
    for app in 0..26 {
        let mut spec = EventSpec::new("shop", &format!("sync-{app}.x"), "SyncFailed", 1);
        spec.message = format!("sync of app{app} failed: 500");
        api.create(&spec);
    }
    let scrape = barrier(&api, addr, "shop", 1).await;
    let synced = series_with(&scrape, &[("reason", "SyncFailed")]);
    let classes: Vec<&String> = synced
        .iter()
        .filter_map(|(labels, _)| labels.iter().find(|(k, _)| k == "class").map(|(_, v)| v))
        .collect();
    assert_eq!(classes.len(), 24, "{}", scrape.text);
    assert!(classes.contains(&&"app-app0".to_owned()));
    assert_eq!(synced.len(), 25, "24 classes and the empty one");
    assert_eq!(scrape.own("classes_capped_total"), 2.0);
    exporter.stop().await;
}
