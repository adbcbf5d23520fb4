#!/usr/bin/env python3
"""Writes alerts/tests/*.yaml, the `promtool test rules` cases of every alert.

The cases (series, times, expected alerts) are written out below; the script only renders each
expected alert's annotations from tools/alert-rules.py, since promtool compares them verbatim.
Every alert gets: a case that fires (at the sensitivity the runbook promises), one that stays silent,
the first-occurrence case (a series whose first sample is already non-zero) and the restart case
(a counter reset). Edit, run, commit both.
"""
import importlib.util
import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("rules", os.path.join(HERE, "alert-rules.py"))
rules_module = importlib.util.module_from_spec(spec)
os.chdir(os.path.dirname(HERE))
spec.loader.exec_module(rules_module)
RULES = {r[0]: r for r in rules_module.RULES + rules_module.EXPORTER_RULES}
RUNBOOKS = rules_module.RUNBOOKS

JOB = 'job="kube-event-metrics",instance="kem:8080"'


def events(namespace, kind, reason, etype, source):
    return (f'kube_events_total{{{JOB},namespace="{namespace}",kind="{kind}",reason="{reason}",'
            f'type="{etype}",source="{source}"}}')


def render(text, labels):
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), text)


def expected(alert, labels):
    _, _, _, severity, summary, description = RULES[alert]
    return {
        "exp_labels": dict(labels, severity=severity),
        "exp_annotations": {
            "summary": render(summary, labels),
            "description": render(description, labels),
            "runbook_url": f"{RUNBOOKS}#{alert.lower()}",
        },
    }


def case(alert, name, series, checks, interval="1m"):
    """checks: [(eval_time, [alert label sets])]; an empty list asserts silence."""
    return {
        "name": name,
        "interval": interval,
        "input_series": [{"series": s, "values": v} for s, v in series],
        "alert_rule_test": [
            {"eval_time": t, "alertname": alert, "exp_alerts": [expected(alert, l) for l in fired]}
            for t, fired in checks
        ],
    }


FILES = {}


def add(file, *cases):
    FILES.setdefault(file, []).extend(cases)


# --- FailedScheduling: the scheduler's 30-minute series.count heartbeat. ---
fs = events("ml", "Pod", "FailedScheduling", "Warning", "default-scheduler")
A = "KubeEventFailedScheduling"
add("scheduling",
    case(A, "a new series with its 30-minute heartbeat fires within the hour",
         [(fs, "_x5 1x30 2x30 3x30")],
         [("30m", []), ("50m", [{"namespace": "ml"}]), ("80m", [{"namespace": "ml"}])]),
    case(A, "a pod that waited once and was then scheduled stays silent",
         [(fs, "_x5 1x120")], [("30m", []), ("70m", []), ("120m", [])]),
    case(A, "first occurrence: several pods pending at once, born at 3",
         [(fs, "_x5 3x40")], [("10m", []), ("20m", [{"namespace": "ml"}])]),
    case(A, "restart: a counter reset and an unrelated Warning every 20 minutes stay silent",
         [(fs, "0x10 1x100 _x3 0x100"),
          (events("ml", "Pod", "BackOff", "Warning", "kubelet"), "0+1x200")],
         [("130m", []), ("160m", []), ("200m", [])],
         interval="1m"),
    )

# --- Crash-looping containers: BackOff of type Warning. ---
cl = events("shop", "Pod", "BackOff", "Warning", "kubelet")
A = "KubeEventCrashLoopBackOff"
add("pods",
    case(A, "one crash-loop BackOff every 2 minutes fires within 30 minutes",
         [(cl, "0+1x30")], [("20m", [{"namespace": "shop"}])], interval="2m"),
    case(A, "one BackOff every 20 minutes stays silent",
         [(cl, "0x19 1x19 2x19 3x19 4x19 5x19 6x19")], [("50m", []), ("90m", []), ("130m", [])]),
    case(A, "first occurrence: a series born at 1 that reaches 3",
         [(cl, "_x5 1 2 3x20")], [("20m", [{"namespace": "shop"}])]),
    case(A, "restart: steady counters and a reset stay silent",
         [(cl, "0x5 5x30 0x60")], [("60m", []), ("80m", [])]),
    case(A, "the pulling-image BackOff (type Normal) is not a crash loop",
         [(events("shop", "Pod", "BackOff", "Normal", "kubelet"), "0+1x30")], [("30m", [])],
         interval="2m"),
    )

# --- Image pulls: Failed (Warning) and the pulling-image BackOff (Normal). ---
pull_failed = events("shop", "Pod", "Failed", "Warning", "kubelet")
pull_backoff = events("shop", "Pod", "BackOff", "Normal", "kubelet")
A = "KubeEventImagePullBackOff"
add("pods",
    case(A, "failed pulls and pulling-image back-offs fire",
         [(pull_failed, "0+2x30"), (pull_backoff, "0+1x30")], [("20m", [{"namespace": "shop"}])],
         interval="5m"),
    case(A, "one failure every 20 minutes stays silent",
         [(pull_failed, "0x19 1x19 2x19 3x19")], [("30m", []), ("50m", [])]),
    case(A, "first occurrence: a new pod's first back-offs",
         [(pull_backoff, "_x3 2x20"), (pull_failed, "_x3 1x20")], [("15m", [{"namespace": "shop"}])]),
    case(A, "restart: a reset stays silent",
         [(pull_backoff, "0x5 9x30 0x60")], [("60m", []), ("80m", [])]),
    )

# --- Volumes. ---
fm = events("batch", "Pod", "FailedMount", "Warning", "kubelet")
A = "KubeEventFailedMount"
add("pods",
    case(A, "two FailedMount a minute fire within 30 minutes",
         [(fm, "0+2x60")], [("25m", [{"namespace": "batch"}])]),
    case(A, "one every 20 minutes stays silent",
         [(fm, "0x19 1x19 2x19 3x19")], [("30m", []), ("70m", [])]),
    case(A, "first occurrence: FailedAttachVolume born at 2, then two a minute",
         [(events("batch", "Pod", "FailedAttachVolume", "Warning", "attachdetach-controller"),
           "_x3 2+2x30")], [("20m", [{"namespace": "batch"}])]),
    case(A, "restart: a reset stays silent",
         [(fm, "0x5 40x30 0x60")], [("60m", []), ("80m", [])]),
    )

# --- Probes. ---
uh = events("shop", "Pod", "Unhealthy", "Warning", "kubelet")
A = "KubeEventProbeFailures"
add("pods",
    case(A, "ten Unhealthy a minute fire within 30 minutes",
         [(uh, "0+10x60")], [("10m", []), ("25m", [{"namespace": "shop"}])]),
    case(A, "one every 20 minutes, and one a minute, stay silent",
         [(uh, "0x19 1x19 2x19 3x19"), (events("web", "Pod", "Unhealthy", "Warning", "kubelet"),
                                        "0+1x80")],
         [("40m", []), ("75m", [])]),
    case(A, "first occurrence: a series born at 10 that keeps failing",
         [(uh, "_x3 10+10x40")], [("25m", [{"namespace": "shop"}])]),
    case(A, "restart: a reset stays silent",
         [(uh, "0x5 500x30 0x60")], [("60m", []), ("80m", [])]),
    )

# --- Evictions. ---
ev = events("batch", "Pod", "Evicted", "Warning", "kubelet")
A = "KubeEventEvictions"
add("nodes",
    case(A, "one Evicted every 10 minutes fires within 30 minutes",
         # The first at 10m, the third at 30m: firing by 36m.
         [(ev, "0+1x20")], [("28m", []), ("36m", [{"namespace": "batch"}])], interval="10m"),
    case(A, "one every 20 minutes stays silent",
         [(ev, "0+1x20")], [("60m", []), ("120m", [])], interval="20m"),
    case(A, "first occurrence: three pods evicted at once",
         [(ev, "_x3 3x40")], [("10m", [{"namespace": "batch"}])]),
    case(A, "restart: a reset stays silent",
         [(ev, "0x5 7x40 _x2 0x60")], [("80m", []), ("100m", [])]),
    )

# --- Nodes: NodeNotReady is type Normal on the Node. ---
nnr = events("", "Node", "NodeNotReady", "Normal", "node-controller")
A = "KubeEventNodeNotReady"
add("nodes",
    case(A, "a lone NodeNotReady on an existing series fires within 20 minutes",
         [(nnr, "0x10 1x40")], [("14m", [{"source": "node-controller"}]), ("40m", [])]),
    case(A, "steady counters stay silent",
         [(nnr, "0x60")], [("30m", []), ("60m", [])]),
    case(A, "first occurrence: a new series born at 1",
         [(nnr, "_x10 1x40")], [("14m", [{"source": "node-controller"}])]),
    case(A, "restart: a reset and the Pods' NodeNotReady Warnings do not fire it",
         [(nnr, "0x5 2x40 0x40"),
          (events("shop", "Pod", "NodeNotReady", "Warning", "node-controller"), "0+1x90")],
         [("70m", []), ("85m", [])]),
    )

# --- OOM kills. ---
oom = events("", "Node", "OOMKilling", "Warning", "kernel-monitor")
A = "KubeEventOOMKilling"
oom_labels = {"kind": "Node", "reason": "OOMKilling", "source": "kernel-monitor"}
add("nodes",
    case(A, "a single OOMKilling on an existing series fires",
         [(oom, "0x10 1x40")], [("14m", [oom_labels]), ("40m", [])]),
    case(A, "steady counters stay silent",
         [(oom, "3x60")], [("30m", []), ("60m", [])]),
    case(A, "first occurrence: SystemOOM born at 1",
         [(events("", "Node", "SystemOOM", "Warning", "kubelet"), "_x10 1x40")],
         [("14m", [{"kind": "Node", "reason": "SystemOOM", "source": "kubelet"}])]),
    case(A, "restart: a reset stays silent",
         [(oom, "0x5 4x40 _x3 0x40")], [("70m", []), ("85m", [])]),
    )

# --- Pod sandboxes. ---
sb = events("payments", "Pod", "FailedCreatePodSandBox", "Warning", "kubelet")
A = "KubeEventFailedCreatePodSandBox"
add("pods",
    case(A, "two a minute fire within 30 minutes",
         [(sb, "0+2x60")], [("25m", [{"namespace": "payments"}])]),
    case(A, "one every 20 minutes stays silent",
         [(sb, "0x19 1x19 2x19 3x19")], [("30m", []), ("70m", [])]),
    case(A, "first occurrence: born at 2, then two a minute",
         [(sb, "_x3 2+2x30")], [("20m", [{"namespace": "payments"}])]),
    case(A, "restart: a reset stays silent",
         [(sb, "0x5 40x30 0x60")], [("60m", []), ("80m", [])]),
    )

# --- Warning bursts: well above the namespace's own baseline and an absolute floor. ---
wb = events("shop", "Pod", "BackOff", "Warning", "kubelet")
wb2 = events("shop", "Pod", "Unhealthy", "Warning", "kubelet")
A = "KubeEventWarningBurst"
add("burst",
    case(A, "5/s over a 0.1/min baseline fires",
         # 0.1/min for an hour and a half, then 300/min (5/s).
         [(wb, "0+0.1x90 9+300x40")], [("100m", [{"namespace": "shop"}])]),
    case(A, "a steady high rate is its own baseline; one Warning every 20 minutes stays silent",
         [(wb, "0+60x150"), (events("web", "Pod", "Unhealthy", "Warning", "kubelet"),
                             "0x19 1x19 2x19 3x19 4x19 5x19 6x19 7x19")],
         [("100m", []), ("140m", [])]),
    case(A, "first occurrence: a namespace with no Warnings before bursts from a new series",
         [(wb, "0x90"), (wb2, "_x90 300+300x40")], [("100m", [{"namespace": "shop"}])]),
    case(A, "restart: a reset stays silent",
         [(wb, "0+1x90 0x40")], [("95m", []), ("110m", [])]),
    )

# --- The exporter itself. ---
up = f'up{{{JOB}}}'
synced = f'kube_event_metrics_synced{{{JOB}}}'
leader = f'kube_event_metrics_leader{{{JOB}}}'
errors = f'kube_event_metrics_watch_errors_total{{{JOB}}}'
folded = f'kube_event_metrics_folded_total{{{JOB}}}'
inst = {"job": "kube-event-metrics", "instance": "kem:8080"}
A = "KubeEventMetricsDown"
add("exporter",
    case(A, "a target that stays down fires", [(up, "1x10 0x20")], [("20m", [{}])]),
    case(A, "an up target stays silent", [(up, "1x30")], [("20m", [])]),
    case(A, "first occurrence: a target that never came up fires", [(up, "0x20")], [("10m", [{}])]),
    case(A, "restart: a short restart stays silent", [(up, "1x10 0x2 1x20")], [("13m", []), ("20m", [])]),
    case(A, "a vanished target fires", [(up, "1x5 _x20")], [("22m", [{}])]),
    )
A = "KubeEventMetricsWatchErrors"
add("exporter",
    case(A, "ten watch errors a minute fire", [(errors, "0+10x40")], [("25m", [inst])]),
    case(A, "an error every few minutes stays silent", [(errors, "0+0.3x60")], [("40m", [])]),
    case(A, "first occurrence: a counter that climbs from its first sample",
         [(errors, "_x3 5+10x40")], [("25m", [inst])]),
    case(A, "restart: a reset stays silent", [(errors, "0x5 300x20 0x30")], [("40m", []), ("50m", [])]),
    )
A = "KubeEventMetricsNotSynced"
add("exporter",
    case(A, "a leader that never syncs fires", [(synced, "0x30"), (leader, "1x30")],
         [("20m", [inst])]),
    case(A, "a synced leader stays silent", [(synced, "0x3 1x30"), (leader, "1x30")], [("20m", [])]),
    case(A, "a standby never pages", [(synced, "0x30"), (leader, "0x30")], [("20m", [])]),
    case(A, "first occurrence: a new instance that appears and never syncs",
         [(synced, "_x5 0x30"), (leader, "_x5 1x30")], [("15m", []), ("25m", [inst])]),
    case(A, "restart: a restart that syncs again stays silent",
         [(synced, "1x10 _ 0x2 1x30"), (leader, "1x10 _ 1x32")], [("14m", []), ("30m", [])]),
    )
A = "KubeEventMetricsSeriesFolded"
add("exporter",
    case(A, "folding fires", [(folded, "0x5 0+4x30")], [("15m", [inst])]),
    case(A, "no folding stays silent", [(folded, "0x40")], [("30m", [])]),
    case(A, "first occurrence: a counter that climbs from its first sample",
         [(folded, "_x3 2+2x30")], [("15m", [inst])]),
    case(A, "restart: a reset stays silent", [(folded, "0x5 50x20 0x40")], [("50m", []), ("60m", [])]),
    )

os.makedirs("alerts/tests", exist_ok=True)
for name, cases in FILES.items():
    document = {
        "rule_files": ["../kube-event-metrics.rules.yaml"],
        "evaluation_interval": "1m",
        "tests": cases,
    }
    path = f"alerts/tests/{name}.yaml"
    with open(path, "w") as f:
        f.write("# promtool test rules cases; generated by tools/alert-tests.py (edit there).\n")
        # JSON is YAML: promtool reads it, and no YAML library is needed here.
        json.dump(document, f, indent=2)
        f.write("\n")
    print(f"{len(cases)} cases -> {path}")
