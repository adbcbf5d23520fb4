//! The manifests: rendered with kubectl's kustomize, validated against the Kubernetes schemas,
//! least-privilege RBAC, the PrometheusRule identical to alerts/, and the kube-prometheus-stack
//! component in every combination with the overlays.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn render(dir: &str) -> Vec<Value> {
    let output = Command::new("kubectl")
        .args(["kustomize", dir])
        .output()
        .expect("kubectl is installed");
    assert!(
        output.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    text.split("\n---\n")
        .map(|doc| serde_saphyr::from_str::<Value>(doc).unwrap())
        .collect()
}

/// A JSON array of strings.
fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|item| item.as_str().expect("a string"))
        .collect()
}

fn sorted(value: &Value) -> Vec<&str> {
    let mut list = strings(value);
    list.sort_unstable();
    list
}

/// The binary accepts the flags a manifest passes it.
fn assert_flags_load(args: &[&str], extra: &[&str]) {
    let all = std::iter::once("kube-event-metrics").chain(args.iter().chain(extra).copied());
    kube_event_metrics::config::Config::load(all).expect("manifest flags are valid");
}

fn find<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// An overlay in `target/` (kustomize refuses absolute paths) of `resources` plus `components`,
/// given relative to the repository, and `extra` lines of kustomization.
fn overlay(resources: &str, components: &[&str], extra: &str) -> tempfile::TempDir {
    std::fs::create_dir_all("target").unwrap();
    let dir = tempfile::tempdir_in("target").unwrap();
    let up = "../../";
    let components: String = components
        .iter()
        .map(|c| format!("  - {up}{c}\n"))
        .collect();
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {up}{resources}\ncomponents:\n{components}{extra}"
        ),
    )
    .unwrap();
    dir
}

const COMPONENT: &str = "deploy/components/kube-prometheus-stack";

/// Every layout a user can apply: the base, the HA overlay, each with the kube-prometheus-stack
/// component (the shipped overlay for the base, a composed one for HA).
fn combinations() -> Vec<(String, Vec<Value>)> {
    let mut all: Vec<(String, Vec<Value>)> =
        ["deploy", "deploy/ha", "deploy/kube-prometheus-stack"]
            .into_iter()
            .map(|dir| (dir.to_owned(), render(dir)))
            .collect();
    let ha = overlay("deploy/ha", &[COMPONENT], "");
    all.push((
        "deploy/ha + component".to_owned(),
        render(ha.path().to_str().unwrap()),
    ));
    all
}

#[test]
#[ignore = "needs kubectl with kustomize (preinstalled) and the PyPI package kubernetes-validate; .ci/run installs it"]
fn rendered_manifests_validate_against_the_kubernetes_schemas() {
    for (name, objects) in combinations() {
        validate(&name, &objects);
    }
}

fn validate(name: &str, objects: &[Value]) {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (index, object) in objects.iter().enumerate() {
        let kind = object["kind"].as_str().unwrap();
        if kind == "ServiceMonitor" || kind == "PrometheusRule" {
            continue; // CRDs: checked by their structure below
        }
        let path = dir.path().join(format!("{index}-{kind}.json"));
        std::fs::write(&path, object.to_string()).unwrap();
        files.push(path);
    }
    let output = Command::new("python3")
        .args([
            "-m",
            "kubernetes_validate",
            "--strict",
            "--kubernetes-version",
            "1.32.0",
        ])
        .args(&files)
        .output()
        .expect("kubernetes-validate is installed");
    assert!(
        output.status.success(),
        "{name}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
#[ignore = "needs kubectl with kustomize (preinstalled on the machine)"]
fn rbac_grants_only_list_and_watch_on_events() {
    let objects = render("deploy");
    let roles = find(&objects, "ClusterRole");
    assert_eq!(roles.len(), 1);
    assert!(find(&objects, "Role").is_empty());
    let rules = roles[0]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    let rule = &rules[0];
    assert_eq!(sorted(&rule["apiGroups"]), vec!["", "events.k8s.io"]);
    assert_eq!(sorted(&rule["resources"]), vec!["events"]);
    assert_eq!(sorted(&rule["verbs"]), vec!["list", "watch"]);
    let binding = find(&objects, "ClusterRoleBinding")[0];
    assert_eq!(binding["roleRef"]["name"], roles[0]["metadata"]["name"]);
    let account = find(&objects, "ServiceAccount")[0];
    assert_eq!(binding["subjects"][0]["name"], account["metadata"]["name"]);
    assert_eq!(
        binding["subjects"][0]["namespace"],
        account["metadata"]["namespace"]
    );
}

#[test]
#[ignore = "needs kubectl with kustomize (preinstalled on the machine)"]
fn the_deployment_is_locked_down_and_scraped_with_our_labels() {
    let objects = render("deploy");
    for (name, all) in combinations() {
        for object in &all {
            let labels = &object["metadata"]["labels"];
            assert_eq!(
                labels["app.kubernetes.io/name"], "kube-event-metrics",
                "{name}: {}",
                object["kind"]
            );
        }
        let deployment = find(&all, "Deployment")[0];
        assert_flags_load(
            &strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"]),
            &["--leader-election.namespace=kube-event-metrics"],
        );
    }
    for object in &objects {
        assert!(object["metadata"]["labels"]["app.kubernetes.io/version"].is_string());
    }
    let deployment = find(&objects, "Deployment")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(pod["securityContext"]["runAsUser"].as_u64().unwrap() > 0);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    let args = strings(&container["args"]);
    let state = args
        .iter()
        .find_map(|a| a.strip_prefix("--state-file="))
        .expect("--state-file");
    let mount = container["volumeMounts"][0]["mountPath"].as_str().unwrap();
    assert!(
        state.starts_with(mount),
        "the state file lives on the mounted volume"
    );
    assert!(pod["volumes"][0]["emptyDir"].is_object());

    assert_flags_load(&args, &[]);

    let service = find(&objects, "Service")[0];
    assert_eq!(
        service["metadata"]["name"], "kube-event-metrics",
        "the job name the rules select"
    );
    assert_eq!(service["spec"]["ports"][0]["name"], "metrics");
    let monitor = find(&objects, "ServiceMonitor")[0];
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], "metrics");
    assert_eq!(endpoint["honorLabels"], true);
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap();
    for (key, value) in selector {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "ServiceMonitor selects the Service"
        );
    }
}

#[test]
#[ignore = "needs kubectl with kustomize (preinstalled on the machine)"]
fn the_prometheus_rule_carries_exactly_the_rule_file() {
    let objects = render("deploy");
    let rule = find(&objects, "PrometheusRule")[0];
    let file: Value = serde_saphyr::from_str(
        &std::fs::read_to_string("alerts/kube-event-metrics.rules.yaml").unwrap(),
    )
    .unwrap();
    assert_eq!(rule["spec"]["groups"], file["groups"]);
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
}

#[test]
#[ignore = "needs kubectl with kustomize (preinstalled on the machine)"]
fn the_ha_overlay_elects_a_leader_with_leases_only_in_its_namespace() {
    let objects = render("deploy/ha");
    let deployment = find(&objects, "Deployment")[0];
    assert_eq!(deployment["spec"]["replicas"], 2);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args = strings(&container["args"]);
    assert!(args.contains(&"--leader-election"));
    let env: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, vec!["POD_NAMESPACE", "POD_NAME"]);
    // POD_NAMESPACE comes from the downward API in the cluster.
    assert_flags_load(&args, &["--leader-election.namespace=kube-event-metrics"]);
    assert!(deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"].is_object());

    // Events as in the base; leases only in the exporter's namespace, only the verbs used.
    let cluster_roles = find(&objects, "ClusterRole");
    assert_eq!(cluster_roles.len(), 1);
    assert_eq!(cluster_roles[0]["rules"][0]["resources"][0], "events");
    let role = find(&objects, "Role")[0];
    assert_eq!(role["metadata"]["namespace"], "kube-event-metrics");
    let rules = role["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["apiGroups"][0], "coordination.k8s.io");
    assert_eq!(rules[0]["resources"][0], "leases");
    assert_eq!(sorted(&rules[0]["verbs"]), vec!["create", "get", "update"]);
    let binding = find(&objects, "RoleBinding")[0];
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    let budget = find(&objects, "PodDisruptionBudget")[0];
    assert_eq!(budget["spec"]["maxUnavailable"], 1);
}

/// The `--max-series` a Deployment passes, or the default.
fn max_series(objects: &[Value]) -> u64 {
    let deployment = find(objects, "Deployment")[0];
    let args = strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"]);
    args.iter()
        .find_map(|a| a.strip_prefix("--max-series="))
        .map_or(10_000, |n| n.parse().unwrap())
}

#[tokio::test]
#[ignore = "needs kubectl with kustomize (preinstalled on the machine)"]
async fn the_kube_prometheus_stack_component_is_picked_up_by_the_charts_defaults() {
    // What a scrape holds besides the event series: self-metrics and process metrics.
    let exporter = support::start_exporter_with(&["--demo", "--demo.speed", "200"]).await;
    let scrape = support::scrape_until(exporter.local_addr, "demo series", |s| {
        !s.event_series().is_empty()
    })
    .await;
    let samples = scrape
        .text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .count();
    let others = (samples - scrape.event_series().len()) as u64;
    exporter.stop().await;

    for (name, objects) in combinations() {
        let with_component = name.contains("kube-prometheus-stack") || name.contains("component");
        let monitor = find(&objects, "ServiceMonitor")[0];
        let rule = find(&objects, "PrometheusRule")[0];
        if !with_component {
            assert!(monitor["metadata"]["labels"]["release"].is_null(), "{name}");
            continue;
        }
        // The chart's Prometheus selects both by the release label.
        for object in [monitor, rule] {
            assert_eq!(
                object["metadata"]["labels"]["release"], "kube-prometheus-stack",
                "{name}: {}",
                object["kind"]
            );
        }
        // A scrape over the limit is dropped whole: the limit covers a full exporter (every
        // series, one overflow series per type, the rest) and is still a bound.
        let limit = monitor["spec"]["endpoints"][0]["sampleLimit"]
            .as_u64()
            .unwrap();
        let series = max_series(&objects);
        assert!(
            limit >= series + 2 + others,
            "{name}: sampleLimit {limit} < {series} series + 2 overflow + {others} others"
        );
        assert!(
            limit <= series + series / 10,
            "{name}: sampleLimit {limit} bounds little"
        );
        // The Grafana sidecar loads both dashboards, exactly as rendered.
        let maps: Vec<&Value> = find(&objects, "ConfigMap")
            .into_iter()
            .filter(|m| m["metadata"]["labels"]["grafana_dashboard"] == "1")
            .collect();
        assert_eq!(maps.len(), 1, "{name}");
        let data = maps[0]["data"].as_object().unwrap();
        assert_eq!(data.len(), 2, "{name}");
        for (file, text) in data {
            let rendered = std::fs::read_to_string(Path::new("dashboards").join(file)).unwrap();
            assert_eq!(text.as_str(), Some(rendered.as_str()), "{name}: {file}");
        }
        assert_eq!(maps[0]["metadata"]["namespace"], "kube-event-metrics");
    }

    // Another release name, as the component's comment says to set it.
    let renamed = overlay(
        "deploy",
        &[COMPONENT],
        "patches:\n  - target: {group: monitoring.coreos.com}\n    patch: '[{\"op\": \"replace\", \"path\": \"/metadata/labels/release\", \"value\": \"prometheus\"}]'\n",
    );
    let objects = render(renamed.path().to_str().unwrap());
    for kind in ["ServiceMonitor", "PrometheusRule"] {
        assert_eq!(
            find(&objects, kind)[0]["metadata"]["labels"]["release"],
            "prometheus",
            "{kind}"
        );
    }
}
