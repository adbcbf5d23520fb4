//! Static checks of the alert rules and dashboards; the promtool runs need Debian's prometheus.

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

const RULES: &str = "alerts/kube-event-metrics.rules.yaml";
const DASHBOARDS: [&str; 2] = [
    "dashboards/kube-events-overview.json",
    "dashboards/kube-event-metrics-health.json",
];

/// Every rule of the file: recording rules and alerts.
fn all_rules() -> Vec<Value> {
    let file: Value = serde_saphyr::from_str(&std::fs::read_to_string(RULES).unwrap()).unwrap();
    file["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap().clone())
        .collect()
}

fn rules() -> Vec<Value> {
    all_rules()
        .into_iter()
        .filter(|rule| rule.get("alert").is_some())
        .collect()
}

#[test]
fn every_alert_is_documented_labelled_and_tested() {
    let runbooks = std::fs::read_to_string("docs/runbooks.md").unwrap();
    let tests: Value = {
        let cases: Vec<Value> = std::fs::read_dir("alerts/tests")
            .unwrap()
            .flat_map(|entry| {
                let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
                let file: Value = serde_saphyr::from_str(&text).unwrap();
                file["tests"].as_array().unwrap().clone()
            })
            .collect();
        Value::Array(cases)
    };
    let all = rules();
    assert!(all.len() >= 20);
    for rule in &all {
        let name = rule["alert"].as_str().expect("only alerting rules");
        assert!(
            ["critical", "warning", "info"]
                .contains(&rule["labels"]["severity"].as_str().unwrap_or("")),
            "{name}: severity"
        );
        assert!(rule["for"].as_str().is_some(), "{name}: a deliberate for");
        let annotations = &rule["annotations"];
        assert!(
            annotations["summary"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{name}"
        );
        let description = annotations["description"].as_str().unwrap_or("");
        if !["KubeEventMetricsAbsent"].contains(&name) {
            assert!(
                description.contains("$labels."),
                "{name}: description uses $labels"
            );
        }
        let url = annotations["runbook_url"].as_str().unwrap_or("");
        let anchor = url
            .rsplit_once("docs/runbooks.md#")
            .map(|(_, a)| a)
            .unwrap_or("");
        assert_eq!(anchor, name.to_lowercase(), "{name}: runbook_url");
        assert!(
            runbooks.contains(&format!("\n## {name}\n")),
            "{name}: no runbook section"
        );

        let cases: Vec<&Value> = tests
            .as_array()
            .unwrap()
            .iter()
            .filter(|case| {
                case["alert_rule_test"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t["alertname"] == name)
            })
            .collect();
        let fires =
            cases.iter().any(|case| {
                case["alert_rule_test"].as_array().unwrap().iter().any(|t| {
                    t["alertname"] == name && !t["exp_alerts"].as_array().unwrap().is_empty()
                })
            });
        let silent =
            cases.iter().any(|case| {
                case["alert_rule_test"].as_array().unwrap().iter().any(|t| {
                    t["alertname"] == name && t["exp_alerts"].as_array().unwrap().is_empty()
                })
            });
        let named = |word: &str| {
            cases
                .iter()
                .any(|case| case["name"].as_str().unwrap_or("").starts_with(word))
        };
        assert!(
            fires && silent,
            "{name}: needs a case that fires and one that stays silent"
        );
        // A series born during the case with its first sample already counted: increase() alone
        // would miss it.
        let born_firing = cases.iter().any(|case| {
            case["input_series"]
                .as_array()
                .unwrap()
                .iter()
                .any(|series| series["values"].as_str().unwrap_or("").starts_with('_'))
                && case["alert_rule_test"].as_array().unwrap().iter().any(|t| {
                    t["alertname"] == name && !t["exp_alerts"].as_array().unwrap().is_empty()
                })
        });
        assert!(born_firing, "{name}: no first-occurrence case that fires");
        assert!(named("restart"), "{name}: no restart case");
    }
}

#[test]
fn event_alerts_select_our_job_and_health_alerts_respect_the_leader() {
    for rule in all_rules() {
        let name = rule["alert"]
            .as_str()
            .or(rule["record"].as_str())
            .unwrap()
            .to_owned();
        let expr = rule["expr"].as_str().unwrap();
        // A ruler over many clusters must not merge them.
        for by in expr.match_indices("sum by (").map(|(at, _)| &expr[at..]) {
            let labels = &by[8..by.find(')').unwrap()];
            assert!(
                labels.split(", ").any(|label| label == "cluster"),
                "{name}: an aggregation without the cluster label: {by}"
            );
        }
        if rule.get("record").is_some() {
            continue;
        }
        let expr = rule["expr"].as_str().unwrap();
        assert!(
            expr.contains(r#"job="kube-event-metrics""#),
            "{name}: selects the job"
        );
        if expr.contains("kube_event_metrics_synced") {
            assert!(
                expr.contains("kube_event_metrics_leader"),
                "{name}: joins on the leader"
            );
        }
    }
}

/// Runs the command and fails the test with everything it said unless it succeeds.
fn succeeds(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
#[ignore = "needs the PyPI package jsonnet and promtool; .ci/run installs them"]
fn rendered_files_are_what_the_mixin_renders() {
    succeeds(Command::new("python3").args(["tools/render.py", "--check"]));
}

#[test]
#[ignore = "needs the PyPI package jsonnet and promtool; .ci/run installs them"]
fn a_config_override_changes_every_rule_and_passes_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let custom = dir.path().join("custom.libsonnet");
    let mixin = std::fs::canonicalize("mixin/mixin.libsonnet").unwrap();
    std::fs::write(
        &custom,
        format!(
            "(import '{}') + {{ _config+:: {{ jobSelector: 'job=\"events\"', clusterLabel: 'k8s_cluster', \
             alerts+: {{ KubeEventProbeFailures+: {{ enabled: false }}, KubeEventEvictions+: {{ threshold: 7 }} }} }} }}",
            mixin.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    succeeds(
        Command::new("python3")
            .arg("tools/render.py")
            .arg("--mixin")
            .arg(&custom)
            .arg("--out")
            .arg(&out),
    );
    let path = out.join("kube-event-metrics.rules.yaml");
    succeeds(Command::new("promtool").args(["check", "rules"]).arg(&path));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains(r#"job="kube-event-metrics""#)
            && !text.contains(r#"job=\"kube-event-metrics\""#),
        "the default job selector is gone"
    );
    assert!(
        !text.contains("KubeEventProbeFailures"),
        "the disabled alert is gone"
    );
    let file: Value = serde_saphyr::from_str(&text).unwrap();
    let rules: Vec<&Value> = file["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    for rule in &rules {
        let expr = rule["expr"].as_str().unwrap();
        if expr.contains("kube_event") || expr.contains("up{") {
            assert!(
                expr.contains(r#"job="events""#) || expr.contains("(k8s_cluster_"),
                "{expr}"
            );
        }
        for by in expr.match_indices("sum by (").map(|(at, _)| &expr[at..]) {
            assert!(by[..by.find(')').unwrap()].contains("k8s_cluster"), "{by}");
        }
    }
    let evictions = rules
        .iter()
        .find(|r| r["alert"] == "KubeEventEvictions")
        .unwrap();
    assert!(evictions["expr"].as_str().unwrap().ends_with(">= 7"));
    assert!(
        evictions["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("at least 7 pods")
    );
}

#[test]
#[ignore = "needs promtool (Debian package prometheus); .ci/run installs it"]
fn promtool_checks_and_tests_the_rules() {
    succeeds(Command::new("promtool").args(["check", "rules", RULES]));
    let files: Vec<String> = std::fs::read_dir("alerts/tests")
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    assert!(!files.is_empty());
    succeeds(
        Command::new("promtool")
            .args(["test", "rules"])
            .args(&files),
    );
}

fn dashboard(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every `datasource` object in the dashboard.
fn datasources(value: &Value, found: &mut Vec<Value>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if key == "datasource" {
                    found.push(inner.clone());
                }
                datasources(inner, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| datasources(item, found)),
        _ => {}
    }
}

fn exprs(board: &Value) -> Vec<String> {
    board["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().unwrap().clone())
        .map(|target| target["expr"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn dashboards_are_portable_and_consistent() {
    let mut uids = BTreeSet::new();
    for path in DASHBOARDS {
        let board = dashboard(path);
        assert!(
            uids.insert(board["uid"].as_str().unwrap().to_owned()),
            "{path}: uid"
        );
        assert!(board["schemaVersion"].as_u64().unwrap() >= 39);
        assert!(!board["tags"].as_array().unwrap().is_empty());
        let ids: Vec<u64> = board["panels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_u64().unwrap())
            .collect();
        assert_eq!(
            ids.len(),
            ids.iter().collect::<BTreeSet<_>>().len(),
            "{path}: panel ids"
        );

        let mut found = Vec::new();
        datasources(&board, &mut found);
        for datasource in found {
            let uid = datasource["uid"].as_str().unwrap_or("");
            assert!(
                uid == "${datasource}" || uid == "-- Grafana --",
                "{path}: hard-coded datasource {datasource}"
            );
        }

        let variables = board["templating"]["list"].as_array().unwrap();
        assert_eq!(variables[0]["type"], "datasource");
        assert_eq!(variables[0]["query"], "prometheus");
        let text = board.to_string();
        let queries = exprs(&board).join("\n")
            + &variables
                .iter()
                .filter_map(|v| v["definition"].as_str())
                .collect::<Vec<_>>()
                .join("\n");
        for variable in variables {
            let name = variable["name"].as_str().unwrap();
            let used = if name == "datasource" {
                text.contains("${datasource}")
            } else {
                queries.contains(&format!("${name}\""))
            };
            assert!(used, "{path}: variable {name} is never used");
        }
        if path.ends_with("overview.json") {
            for name in ["job", "namespace", "kind", "reason", "type"] {
                let variable = variables.iter().find(|v| v["name"] == name).expect(name);
                if name != "job" {
                    assert_eq!(variable["multi"], true, "{name}");
                }
                assert_eq!(variable["includeAll"], true, "{name}");
            }
        }
    }
}

#[tokio::test]
async fn dashboard_queries_name_only_metrics_the_exporter_serves() {
    let exporter = support::start_exporter_with(&["--demo", "--demo.speed", "200"]).await;
    let scrape = support::scrape_until(exporter.local_addr, "demo series", |s| {
        !s.event_series().is_empty()
    })
    .await;
    let served: BTreeSet<String> = scrape
        .text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line.split(['{', ' ']).next().unwrap().to_owned())
        .collect();
    // Prometheus adds these to every target.
    let from_prometheus = ["up", "scrape_duration_seconds"];
    let metric = regex::Regex::new(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{").unwrap();
    for path in DASHBOARDS {
        let board = dashboard(path);
        let definitions: Vec<String> = board["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["definition"].as_str().map(str::to_owned))
            .collect();
        for expr in exprs(&board).into_iter().chain(definitions) {
            for name in metric.captures_iter(&expr).map(|c| c[1].to_owned()) {
                assert!(
                    served.contains(&name) || from_prometheus.contains(&name.as_str()),
                    "{path}: {name} in {expr} is not served"
                );
            }
            if let Some(rest) = expr.strip_prefix("label_values(") {
                let name = rest.split(['{', ',']).next().unwrap();
                assert!(served.contains(name), "{path}: {name}");
            }
        }
    }
    for rule in rules() {
        let expr = rule["expr"].as_str().unwrap();
        for name in metric.captures_iter(expr).map(|c| c[1].to_owned()) {
            assert!(
                served.contains(&name) || from_prometheus.contains(&name.as_str()),
                "{}: {name} is not served",
                rule["alert"]
            );
        }
    }
    exporter.stop().await;
}
