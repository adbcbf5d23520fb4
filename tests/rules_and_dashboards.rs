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

    // The dashboards follow: the other job, the other cluster label, no disabled alert.
    let default_cluster = regex::Regex::new(r"[^_]cluster=~").unwrap();
    for name in [
        "kube-events-overview.json",
        "kube-event-metrics-health.json",
    ] {
        let board = dashboard(out.join(name).to_str().unwrap());
        let definitions = board["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["definition"].as_str().map(str::to_owned));
        for expr in exprs(&board)
            .into_iter()
            .chain(annotation_exprs(&board))
            .chain(definitions)
        {
            if expr.contains("kube_event") || expr.contains("up{") {
                assert!(
                    expr.contains(r#"job="events""#) || expr.contains("k8s_cluster_"),
                    "{name}: {expr}"
                );
            }
            assert!(!default_cluster.is_match(&expr), "{name}: {expr}");
            assert!(!expr.contains("KubeEventProbeFailures"), "{name}: {expr}");
        }
        let cluster = variable(&board, "cluster")["definition"].as_str().unwrap();
        assert!(cluster.ends_with(", k8s_cluster)"), "{name}: {cluster}");
    }
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

fn annotation_exprs(board: &Value) -> Vec<String> {
    board["annotations"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["expr"].as_str().map(str::to_owned))
        .collect()
}

fn variable<'a>(board: &'a Value, name: &str) -> &'a Value {
    board["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("variable {name}"))
}

fn panel<'a>(board: &'a Value, title: &str) -> &'a Value {
    board["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == title)
        .unwrap_or_else(|| panic!("panel {title}"))
}

/// The data links of a table column, by its field override.
fn column_links(panel: &Value, column: &str) -> Vec<String> {
    panel["fieldConfig"]["overrides"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["matcher"]["options"] == column)
        .flat_map(|o| o["properties"].as_array().unwrap().clone())
        .filter(|p| p["id"] == "links")
        .flat_map(|p| p["value"].as_array().unwrap().clone())
        .map(|link| link["url"].as_str().unwrap().to_owned())
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
        // One cluster at a time, as in kubernetes-mixin: with no cluster label at all the empty
        // value matches every series.
        let cluster = variable(&board, "cluster");
        assert_eq!(cluster["multi"], false, "{path}");
        assert!(
            cluster["definition"]
                .as_str()
                .unwrap()
                .starts_with("label_values(kube_event_metrics_build_info{"),
            "{path}"
        );
        // The two dashboards link to each other, keeping time and variables.
        let links = board["links"].as_array().unwrap();
        assert!(
            links.iter().any(|l| l["type"] == "dashboards"
                && l["keepTime"] == true
                && l["includeVars"] == true
                && board["tags"].as_array().unwrap().contains(&l["tags"][0])),
            "{path}: links {links:?}"
        );
        assert!(
            annotation_exprs(&board)
                .iter()
                .any(|e| e.contains("process_start_time_seconds")),
            "{path}: no restart annotation"
        );
    }
}

#[test]
fn the_overview_reads_the_recording_rule_ranks_once_and_links_to_where() {
    let board = dashboard("dashboards/kube-events-overview.json");
    let records: BTreeSet<String> = all_rules()
        .iter()
        .filter_map(|r| r["record"].as_str().map(str::to_owned))
        .collect();
    // Chained pickers: each offers only the values the ones before it leave.
    let chain = ["cluster", "namespace", "kind", "reason", "type", "source"];
    for (i, name) in chain.iter().enumerate().skip(1) {
        let picker = variable(&board, name);
        assert_eq!(picker["multi"], true, "{name}");
        assert_eq!(picker["includeAll"], true, "{name}");
        let definition = picker["definition"].as_str().unwrap();
        for before in &chain[..i] {
            assert!(
                definition.contains(&format!("=~\"${before}\"")),
                "{name} is not chained on {before}: {definition}"
            );
        }
    }
    let mut exemplar_panels = Vec::new();
    for panel in board["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            // Over 30 days a panel reads the recorded rates, never the raw counters: except the
            // one that shows exemplars, which only raw series carry.
            if target["exemplar"] == true {
                exemplar_panels.push(panel["title"].clone());
                assert!(expr.contains("rate(kube_events_total{"), "{expr}");
            } else {
                assert!(
                    !expr.contains("kube_events_total"),
                    "{}: raw counters in {expr}",
                    panel["title"]
                );
            }
            let reads_rule = records.iter().any(|r| expr.contains(r.as_str()));
            assert!(
                reads_rule
                    || target["exemplar"] == true
                    || expr.contains("ALERTS{")
                    || expr.contains("kube_event_metrics_"),
                "{}: {expr}",
                panel["title"]
            );
            // A top k of a time series is ranked once, over the range, at its end.
            if expr.contains("topk(") && panel["type"] == "timeseries" {
                assert!(expr.contains("@ end()"), "{}: {expr}", panel["title"]);
            }
        }
        if panel["type"] == "timeseries" {
            assert_eq!(
                panel["fieldConfig"]["defaults"]["unit"], "opm",
                "{}: sparse events read per minute",
                panel["title"]
            );
        }
    }
    assert_eq!(exemplar_panels.len(), 1, "{exemplar_panels:?}");
    let why = &panel(&board, "Why: classes of the selected reasons")["targets"][0]["expr"];
    assert!(
        why.as_str().unwrap().starts_with("sum by (reason, class)"),
        "{why}"
    );
    let by_type = panel(&board, "Occurrences by type");
    assert_eq!(
        by_type["fieldConfig"]["defaults"]["custom"]["drawStyle"],
        "bars"
    );
    let yesterday = panel(&board, "Warnings by reason: now and yesterday");
    assert!(
        exprs(&serde_json::json!({"panels": [yesterday]}))
            .iter()
            .any(|e| e.contains("offset 1d"))
    );
    let new = &panel(&board, "New in the last hour")["targets"][0]["expr"];
    assert!(
        new.as_str().unwrap().contains("unless on"),
        "{new}: label sets of the day before are left out"
    );
    // From a row to the same dashboard filtered on it, and from an alert to its runbook.
    for title in ["Top label sets over the range", "New in the last hour"] {
        for column in ["namespace", "reason"] {
            let links = column_links(panel(&board, title), column);
            assert!(
                links
                    .iter()
                    .any(|url| url.starts_with("/d/kube-events-overview?")
                        && url.contains(&format!("var-{column}=${{__data.fields.{column}}}"))
                        && url.contains("${__url_time_range}")
                        && url.contains("${cluster:queryparam}")),
                "{title}: {column}: {links:?}"
            );
        }
    }
    let firing = panel(&board, "Our alerts firing");
    assert_eq!(
        column_links(firing, "runbook_url"),
        vec!["${__value.raw}".to_owned()]
    );
    let firing_expr = firing["targets"][0]["expr"].as_str().unwrap();
    for rule in rules() {
        let url = rule["annotations"]["runbook_url"].as_str().unwrap();
        assert!(
            firing_expr.contains(&format!(
                "ALERTS{{alertname=\"{}\",alertstate=\"firing\",cluster=~\"$cluster\"}}, \"runbook_url\", \"{url}\"",
                rule["alert"].as_str().unwrap()
            )),
            "{}: no runbook link",
            rule["alert"]
        );
    }
    assert!(
        annotation_exprs(&board)
            .iter()
            .any(|e| e.starts_with("ALERTS{") && e.contains("alertstate=\"firing\"")),
        "no annotation of our alerts"
    );
}

#[test]
fn the_health_dashboard_names_states_and_shows_the_limit() {
    let board = dashboard("dashboards/kube-event-metrics-health.json");
    for (title, texts) in [
        ("Up", ["down", "up"]),
        ("Synced", ["syncing", "synced"]),
        ("Leader", ["standby", "leader"]),
    ] {
        let stat = panel(&board, title);
        let options = &stat["fieldConfig"]["defaults"]["mappings"][0]["options"];
        assert_eq!(options["0"]["text"], texts[0], "{title}");
        assert_eq!(options["1"]["text"], texts[1], "{title}");
    }
    let up = &panel(&board, "Up")["targets"][0]["expr"];
    assert!(
        up.as_str().unwrap().starts_with("up{"),
        "{up}: up per instance"
    );
    let gauge = panel(&board, "Series of the limit");
    assert_eq!(gauge["type"], "gauge");
    assert_eq!(gauge["fieldConfig"]["defaults"]["max"], 1);
    let expr = gauge["targets"][0]["expr"].as_str().unwrap();
    assert!(
        expr.contains("kube_event_metrics_series{")
            && expr.contains("/ kube_event_metrics_series_limit{"),
        "{expr}"
    );
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
    // Prometheus adds up and scrape_duration_seconds to every target, ALERTS for every alert, and
    // our recording rules' series.
    let records: Vec<String> = all_rules()
        .iter()
        .filter_map(|r| r["record"].as_str().map(str::to_owned))
        .collect();
    let from_prometheus: Vec<&str> = ["up", "scrape_duration_seconds", "ALERTS"]
        .into_iter()
        .chain(records.iter().map(String::as_str))
        .collect();
    let metric = regex::Regex::new(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{").unwrap();
    for path in DASHBOARDS {
        let board = dashboard(path);
        let definitions: Vec<String> = board["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["definition"].as_str().map(str::to_owned))
            .collect();
        let queries = exprs(&board)
            .into_iter()
            .chain(annotation_exprs(&board))
            .chain(definitions);
        for expr in queries {
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

#[test]
fn the_scheduling_alerts_name_the_cause_of_every_class_the_exporter_gives() {
    use kube_event_metrics::classify;
    let catalogue = classify::catalogue();
    let (_, classes) = catalogue
        .iter()
        .find(|(reason, _)| *reason == "FailedScheduling")
        .unwrap();
    let split = |capacity: bool| -> BTreeSet<String> {
        classes
            .iter()
            .filter(|c| classify::is_capacity(c) == capacity)
            .map(|c| c.to_string())
            .collect()
    };
    for name in ["KubeEventFailedScheduling", "KubeEventNotTriggerScaleUp"] {
        let rule = rules().into_iter().find(|r| r["alert"] == name).unwrap();
        let expr = rule["expr"].as_str().unwrap().to_owned();
        assert!(expr.contains("class)"), "{name} keeps the class: {expr}");
        for (cause, capacity) in [("capacity", true), ("configuration", false)] {
            let marker = format!("\"cause\", \"{cause}\", \"class\", \"");
            let at = expr
                .find(&marker)
                .unwrap_or_else(|| panic!("{name}: {cause}"))
                + marker.len();
            let listed: BTreeSet<String> = expr[at..expr[at..].find('"').unwrap() + at]
                .split('|')
                .map(str::to_owned)
                .collect();
            assert_eq!(listed, split(capacity), "{name}: {cause}");
        }
    }
}
