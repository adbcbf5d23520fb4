//! The manifests: rendered with kubectl's kustomize, validated against the Kubernetes schemas,
//! least-privilege RBAC, and the PrometheusRule identical to alerts/.

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

#[test]
#[ignore = "needs kubectl with kustomize (preinstalled) and the PyPI package kubernetes-validate; .ci/run installs it"]
fn rendered_manifests_validate_against_the_kubernetes_schemas() {
    for overlay in ["deploy", "deploy/ha"] {
        validate(overlay);
    }
}

fn validate(overlay: &str) {
    let dir = tempfile::tempdir().unwrap();
    let objects = render(overlay);
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
        "{}{}",
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
    for object in render("deploy/ha").iter().chain(&objects) {
        let labels = &object["metadata"]["labels"];
        assert_eq!(
            labels["app.kubernetes.io/name"], "kube-event-metrics",
            "{}",
            object["kind"]
        );
        assert!(labels["app.kubernetes.io/version"].is_string());
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
