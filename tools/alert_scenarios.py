"""Incident and routine scenarios, run through the recorder model into `promtool test rules` cases.

Each incident names the alert that must catch it, the minute by which it must fire (counted from
the start of the incident) and until when it must keep firing; every other alert must stay silent
unless the scenario lists it as a side effect. Routine scenarios must page nobody. Each scenario
also runs with an exporter restart in the middle (no state file: counters start again from 0).
"""
import re

import cluster_model as m
import recorder_model

PROD = "prod"
SERIES_LABELS = 'job="kube-event-metrics",instance="kem:8080",cluster="prod"'


class Scenario:
    def __init__(self, name, minutes, build, expect=None, side_effects=()):
        self.name, self.minutes, self.build = name, minutes, build
        # alert -> (labels, incident start minute, fires within minutes, firing until minute)
        self.expect = expect or {}
        self.side_effects = set(side_effects)
        self._exporter = None

    def run(self, restart_at=None):
        """The scraped series; the cluster is simulated once, each view sampled from it."""
        if self._exporter is None:
            cluster = m.Cluster(until=self.minutes * 60)
            self.build(cluster)
            cluster.run()
            self._exporter = cluster.exporter
        return recorder_model.sample(self._exporter, self.minutes, restart_at)


def ns(namespace):
    return {"cluster": PROD, "namespace": namespace}


CLUSTER = {"cluster": PROD}


def incidents():
    s = []
    s.append(Scenario("a container crash-loops for two hours", 150,
                      lambda c: m.crash_loop(c, "shop", "web-7f9c-1", "node-3", 600, 600 + 7200),
                      {"KubeEventCrashLoopBackOff": (ns("shop"), 10, 25, 130)}))
    s.append(Scenario("an image tag that does not exist", 120,
                      lambda c: m.image_pull_failure(c, "shop", "api-5d8-1", "node-4", 600, 600 + 6000),
                      {"KubeEventImagePullBackOff": (ns("shop"), 10, 20, 110)}))
    s.append(Scenario("a missing ConfigMap key in env (CreateContainerConfigError) is not an image pull", 120,
                      lambda c: m.config_error(c, "shop", "api-5d8-2", "node-4", 600, 600 + 6000)))
    s.append(Scenario("a pod waits for a ConfigMap volume that does not exist", 150,
                      lambda c: m.mount_failure(c, "batch", "etl-0", "node-5", 600, 600 + 7200),
                      {"KubeEventFailedMount": (ns("batch"), 10, 25, 130)}))
    s.append(Scenario("a readiness probe fails for three hours", 200,
                      lambda c: m.probe_failure(c, "shop", "cart-1", "node-6", 600, 600 + 3 * 3600),
                      {"KubeEventProbeFailures": (ns("shop"), 10, 65, 190)}))

    def pressure(c):
        for k, t in enumerate((600, 2400, 4200)):
            m.kubelet_evictions(c, "shop", [f"w{k}-{i}" for i in range(6)], "node-7", t)
    s.append(Scenario("a node under memory pressure evicts pods every 30 minutes", 120, pressure,
                      {"KubeEventEvictions": (ns("shop"), 10, 2, 95)}))
    s.append(Scenario("a pod stays unschedulable in a busy cluster", 200,
                      lambda c: m.pending_pod(c, "ml", "trainer-0", 600, 200 * 60, retry_every=15),
                      {"KubeEventFailedScheduling": (ns("ml"), 10, 60, 200)}))
    s.append(Scenario("a pod stays unschedulable in a quiet cluster, with Karpenter", 200,
                      lambda c: m.pending_pod(c, "ml", "trainer-0", 600, 200 * 60, retry_every=300, karpenter=True),
                      {"KubeEventFailedScheduling": (ns("ml"), 10, 60, 200)}))
    s.append(Scenario("the cluster autoscaler cannot fit pending pods", 150,
                      lambda c: [m.pending_pod(c, "ml", f"big-{i}", 600 + i, 150 * 60, retry_every=20, autoscaler="cannot") for i in range(3)],
                      {"KubeEventNotTriggerScaleUp": (ns("ml"), 10, 25, 150),
                       "KubeEventFailedScheduling": (ns("ml"), 10, 60, 150)}))
    s.append(Scenario("a ResourceQuota blocks a ReplicaSet", 150,
                      lambda c: m.controller_failed_create(c, "shop", "web-7f9c", 600, 600 + 7200),
                      {"KubeEventFailedCreate": (ns("shop"), 10, 30, 130)}))
    s.append(Scenario("metrics-server is down for the autoscalers of a namespace", 120,
                      lambda c: [m.hpa_metrics_failure(c, "shop", f"hpa-{i}", 600 + i, 6600) for i in range(3)],
                      {"KubeEventHPAMetricsUnavailable": (ns("shop"), 10, 25, 110)}))
    s.append(Scenario("volumes cannot be provisioned", 150,
                      lambda c: m.provisioning_failure(c, "data", "pg-data-0", 600, 600 + 7200),
                      {"KubeEventProvisioningFailed": (ns("data"), 10, 25, 130)}))
    s.append(Scenario("a load balancer cannot be created", 150,
                      lambda c: m.load_balancer_failure(c, "edge", "ingress", 600, 600 + 7200),
                      {"KubeEventLoadBalancerSyncFailed": (ns("edge"), 10, 25, 130)}))
    s.append(Scenario("the CNI is broken on a node", 120,
                      lambda c: [m.sandbox_failure(c, "shop", f"web-{i}", "node-8", 600 + 7 * i, 6600) for i in range(4)],
                      {"KubeEventFailedCreatePodSandBox": (ns("shop"), 10, 25, 110)}))

    def zone(c):
        for i in range(12):
            m.node_not_ready(c, f"zone-b-{i}", 1800 + 3 * i, [("kube-system", f"kube-proxy-b{i}"), ("shop", f"web-b{i}")])
    s.append(Scenario("a zone goes down: twelve nodes NotReady within a minute", 60, zone,
                      {"KubeEventNodesNotReady": (CLUSTER, 30, 2, 35)}))
    s.append(Scenario("a node runs out of memory again and again", 90,
                      lambda c: [m.system_oom(c, "node-9", t) for t in (1200, 2100, 3000)],
                      {"KubeEventSystemOOM": (CLUSTER, 20, 2, 60)}))
    return s


def rolling_update(c, namespace, deployment, pods, start, wave=25, every=40):
    """A Deployment replacing `pods` pods, `wave` at a time (maxSurge 25%)."""
    rs = m.Obj("ReplicaSet", namespace, f"{deployment}-new")
    old = m.Obj("ReplicaSet", namespace, f"{deployment}-old")
    controller = c.legacy("replicaset-controller")
    c.legacy("deployment-controller").emit(start, m.Obj("Deployment", namespace, deployment), "Normal", "ScalingReplicaSet", f"Scaled up replica set {deployment}-new to {wave}")
    for i in range(pods):
        t = start + (i // wave) * every + (i % wave) * 0.2
        pod = f"{deployment}-new-{i}"
        c.at(t, lambda t, pod=pod: (controller.emit(t, rs, "Normal", "SuccessfulCreate", f"Created pod: {pod}"), m.starts(c, namespace, pod, f"node-{hash(pod) % 50}", t + 1)))
        c.at(t + 30, lambda t, i=i: (controller.emit(t, old, "Normal", "SuccessfulDelete", f"Deleted pod: {deployment}-old-{i}"), m.stops(c, namespace, f"{deployment}-old-{i}", f"node-{i % 50}", t)))


def routine():
    s = []

    def scale_up(c, start=600, namespace="batch", pods=40):
        for i in range(pods):
            # Most wait 90 s for the new nodes; the last ones 4 minutes.
            m.pending_pod(c, namespace, f"job-{start}-{i}", start + i * 0.5, start + (240 if i >= 35 else 90) + i * 0.5, retry_every=18, autoscaler="helps")
    s.append(Scenario("an autoscaler scale-up: 40 pods pending 90 s to 4 min", 180, scale_up))

    def scale_down(c):
        for k in range(4):
            m.autoscaler_scale_down(c, f"node-{20 + k}", {"shop": [f"web-{k}-{i}" for i in range(5)], "batch": [f"etl-{k}-{i}" for i in range(3)]}, 600 + k * 360)
    s.append(Scenario("a scale-down of four nodes, one every 6 minutes", 90, scale_down))

    def consolidation(c):
        for k in range(3):
            m.karpenter_consolidation(c, {"shop": [f"web-{k}-{i}" for i in range(10)], "batch": [f"etl-{k}-{i}" for i in range(5)]}, f"node-{30 + k}", 600 + 120 * k)
    s.append(Scenario("Karpenter consolidates three nodes", 90, consolidation))

    def rollout(c):
        for d in range(4):
            rolling_update(c, "shop", f"svc{d}", 100, 600 + d * 420)
    s.append(Scenario("a rolling update of four Deployments of 100 pods", 90, rollout))
    s.append(Scenario("a day of a healthy busy cluster", 24 * 60, busy_day))
    return s


def busy_day(c):
    day = 24 * 3600
    for t in range(300, day, 300):
        job = m.Obj("Job", "batch", f"report-{t}")
        c.legacy("job-controller").emit(t, job, "Normal", "SuccessfulCreate", f"Created pod: report-{t}-x")
        m.starts(c, "batch", f"report-{t}-x", f"node-{t % 40}", t + 1, ready_after=0)
        c.legacy("job-controller").emit(t + 60, job, "Normal", "Completed", "Job completed")
    for hour in range(24):
        rolling_update(c, ["shop", "web", "api", "search"][hour % 4], f"app{hour}", 50, hour * 3600 + 1200)
    for k, t in enumerate(range(1800, day, 3 * 3600)):
        for i in range(20):
            m.pending_pod(c, "batch", f"burst-{k}-{i}", t + i, t + 90 + i, retry_every=18, autoscaler="helps")
        for j in range(2):
            m.autoscaler_scale_down(c, f"node-b{k}-{j}", {"batch": [f"burst-{k}-{i}-r" for i in range(3)]}, t + 3600 + j * 600)
    for t in range(2400, day, 2 * 3600):
        m.container_oom(c, "search", f"indexer-{t}", f"node-{t % 40}", t)
    for t in range(1000, day, 45 * 60):
        m.probe_failure(c, "web", f"front-{t % 7}", f"node-{t % 40}", t, t + 25)
    for t in range(3000, day, 4 * 3600):
        mount = m.Obj("Pod", "api", f"gateway-{t}")
        c.kubelet("node-11").emit(t, mount, "Warning", "FailedMount", 'MountVolume.SetUp failed for volume "tls" : secret "gateway-tls" not found')
        c.kubelet("node-11").emit(t + 2, mount, "Warning", "FailedMount", 'MountVolume.SetUp failed for volume "tls" : secret "gateway-tls" not found')
    for t in range(5000, day, 6 * 3600):
        m.hpa_metrics_failure(c, "api", f"new-hpa-{t}", t, t + 60)
    for t in (4 * 3600, 16 * 3600):
        m.node_not_ready(c, f"node-reboot-{t}", t, [("kube-system", f"kube-proxy-{t}")])
    for t in range(6000, day, 2 * 3600):
        pvc = m.Obj("PersistentVolumeClaim", "data", f"cache-{t}")
        provisioner = c.legacy("ebs.csi.aws.com_ebs-csi-controller-0")
        provisioner.emit(t, pvc, "Normal", "Provisioning", f'External provisioner is provisioning volume for claim "data/cache-{t}"')
        provisioner.emit(t + 5, pvc, "Normal", "ProvisioningSucceeded", "Successfully provisioned volume pvc-1234")
    for t in range(7000, day, 6 * 3600):
        service = m.Obj("Service", "edge", f"lb-{t}")
        c.legacy("service-controller").emit(t, service, "Normal", "EnsuringLoadBalancer", "Ensuring load balancer")
        c.legacy("service-controller").emit(t + 40, service, "Normal", "EnsuredLoadBalancer", "Ensured load balancer")
    for t in range(8000, day, 8 * 3600):
        m.kubelet_evictions(c, "batch", [f"scratch-{t}"], "node-12", t, resource="ephemeral-storage")


def input_series(series):
    return [{"series": series_name(labels), "values": recorder_model.notation(values)}
            for labels, values in sorted(series.items())]


def series_name(labels):
    namespace, kind, reason, etype, source = labels
    return (f'kube_events_total{{{SERIES_LABELS},namespace="{namespace}",kind="{kind}",'
            f'reason="{reason}",type="{etype}",source="{source}"}}')


def render_template(text, labels):
    """The Go-template subset our annotations use, as Prometheus renders it."""
    def with_block(match):
        value = labels.get(match.group(1), "")
        if value:
            return match.group(2).replace("{{ . }}", value)
        return match.group(4) or ""
    text = re.sub(r"\{\{ with \$labels\.(\w+) \}\}(.*?)(\{\{ else \}\}(.*?))?\{\{ end \}\}", with_block, text)
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m_: labels.get(m_.group(1), ""), text)


def expected(rule, labels):
    return {
        "exp_labels": dict(labels, severity=rule["labels"]["severity"]),
        "exp_annotations": {k: render_template(v, labels) for k, v in rule["annotations"].items()},
    }


def minutes(n):
    return f"{n}m"


def cases(scenario, rules, restart=False):
    """promtool test groups for one scenario: the expected alerts firing, every other one silent."""
    restart_at = scenario.minutes // 2 if restart else None
    series = scenario.run(restart_at)
    kind = "restart" if restart else ("incident" if scenario.expect else "routine")
    name = f"{kind}: {scenario.name}" + (f" (exporter restarts at {restart_at}m)" if restart else "")
    checks = []
    # Every 5 minutes, long scenarios too: a coarser grid hid a page between two checks.
    step = 5
    for alert, rule in rules.items():
        if alert in scenario.side_effects:
            continue
        if alert in scenario.expect:
            labels, start, within, until = scenario.expect[alert]
            times = list(range(start + within, until + 1, step))
            if times[-1] != until:
                times.append(until)
            checks += [(t, alert, [expected(rule, labels)]) for t in times]
            checks += [(t, alert, []) for t in range(0, start, step)]
        else:
            times = list(range(0, scenario.minutes + 1, step))
            checks += [(t, alert, []) for t in times]
    checks.sort(key=lambda c: (c[0], c[1]))
    return {
        "name": name,
        "interval": "1m",
        "input_series": input_series(series),
        "alert_rule_test": [{"eval_time": minutes(t), "alertname": a, "exp_alerts": e} for t, a, e in checks],
    }


def firing_probe(scenario, alert, rules):
    """One test group asserting the alert fires at every minute of the scenario: the minutes
    promtool reports as failed tell when it really fired."""
    labels, start, within, until = scenario.expect[alert]
    return {
        "name": f"probe {alert}: {scenario.name}",
        "interval": "1m",
        "input_series": input_series(scenario.run()),
        "alert_rule_test": [{"eval_time": minutes(t), "alertname": alert, "exp_alerts": [expected(rules[alert], labels)]}
                            for t in range(start, until + 1)],
    }


def silence_probe(scenario, alerts):
    """One test group asserting that none of `alerts` fires at any 5th minute, with the exporter
    up: the failed checks say which would page (to compare another rule file on the scenarios)."""
    up = {"series": f"up{{{SERIES_LABELS}}}", "values": f"1x{scenario.minutes}"}
    return {
        "name": f"silence: {scenario.name}",
        "interval": "1m",
        "input_series": input_series(scenario.run()) + [up],
        "alert_rule_test": [{"eval_time": minutes(t), "alertname": a, "exp_alerts": []}
                            for a in alerts for t in range(0, scenario.minutes + 1, 5)],
    }
