#!/usr/bin/env python3
"""Writes alerts/kube-event-metrics.rules.yaml, the single source of our alerting rules.

The first-occurrence-aware "occurrences in the last W" expression is long; spelling it out by hand in
every rule invites typos, so this script assembles the file. Edit here, run it, commit both.
"""

JOB = 'job="kube-event-metrics"'
RUNBOOKS = "https://github.com/kube-event-metrics/kube-event-metrics/blob/main/docs/runbooks.md"


def occurrences(selector, window):
    """Occurrences per series in the last `window`, including a series' first sample.

    increase() cannot see the value a series was born with (no earlier sample), so a series younger
    than the window (`x unless x offset W`) contributes its whole value; older ones their increase,
    which also absorbs counter resets. The exporter starts every series at 0 after a restart, so a
    reappearing series never counts history twice.
    """
    series = f"kube_events_total{{{JOB},{selector}}}"
    new = f"({series} unless {series} offset {window})"
    return f"(increase({series}[{window}]) unless {new})\nor\n{new}"


def summed(by, *parts):
    body = "\nor\n".join(parts)
    indented = "\n".join("  " + line for line in body.splitlines())
    return f"sum by ({by}) (\n{indented}\n)"


RULES = [
    # name, expression, for, severity, summary, description
    ("KubeEventFailedScheduling",
     summed("namespace", occurrences('reason="FailedScheduling"', "1h")) + " >= 2",
     "10m", "warning",
     "Pods in {{ $labels.namespace }} cannot be scheduled.",
     "The scheduler recorded FailedScheduling at least twice in the last hour for pods in namespace "
     "{{ $labels.namespace }}: pods stay Pending. It repeats the event on a 30-minute heartbeat "
     "(events.k8s.io series.count), so two occurrences mean a pod has waited half an hour or several "
     "pods cannot be placed."),
    ("KubeEventCrashLoopBackOff",
     summed("namespace", occurrences('reason="BackOff",type="Warning",kind="Pod"', "30m")) + " >= 3",
     "10m", "warning",
     "Containers in {{ $labels.namespace }} are crash-looping.",
     'The kubelet reported "Back-off restarting failed container" (BackOff, type Warning) at least '
     "3 times in the last 30 minutes in namespace {{ $labels.namespace }}."),
    ("KubeEventImagePullBackOff",
     summed("namespace",
            occurrences('reason="BackOff",type="Normal",kind="Pod",source="kubelet"', "15m"),
            occurrences('reason=~"Failed|ErrImagePull|ImagePullBackOff",type="Warning",kind="Pod",'
                        'source="kubelet"', "15m")) + " >= 3",
     "10m", "warning",
     "Images cannot be pulled in {{ $labels.namespace }}.",
     'The kubelet reported image pull failures and "Back-off pulling image" at least 3 times in the '
     "last 15 minutes in namespace {{ $labels.namespace }}. The pulling-image BackOff has type Normal; "
     "the crash-loop BackOff (type Warning) is KubeEventCrashLoopBackOff."),
    ("KubeEventFailedMount",
     summed("namespace", occurrences('reason=~"FailedMount|FailedAttachVolume"', "10m")) + " >= 5",
     "10m", "warning",
     "Volumes cannot be mounted in {{ $labels.namespace }}.",
     "FailedMount or FailedAttachVolume occurred at least 5 times in the last 10 minutes in namespace "
     "{{ $labels.namespace }}: pods wait in ContainerCreating."),
    ("KubeEventProbeFailures",
     summed("namespace", occurrences('reason="Unhealthy"', "10m")) + " >= 20",
     "15m", "warning",
     "Probes keep failing in {{ $labels.namespace }}.",
     "Liveness, readiness or startup probes failed (Unhealthy) at least 20 times per 10 minutes for "
     "15 minutes in namespace {{ $labels.namespace }}."),
    ("KubeEventEvictions",
     summed("namespace", occurrences('reason="Evicted"', "30m")) + " >= 3",
     "5m", "warning",
     "Pods are being evicted in {{ $labels.namespace }}.",
     "At least 3 pods of namespace {{ $labels.namespace }} were evicted in the last 30 minutes, "
     "usually because a node ran short of memory or disk."),
    ("KubeEventNodeNotReady",
     summed("source", occurrences('reason="NodeNotReady",kind="Node"', "15m")) + " > 0",
     "1m", "critical",
     "A node became NotReady.",
     "{{ $labels.source }} reported NodeNotReady on a node in the last 15 minutes (these events have "
     "type Normal). The node runs no new pods until it is Ready again."),
    ("KubeEventOOMKilling",
     summed("namespace, kind, reason, source", occurrences('reason=~"OOMKilling|SystemOOM"', "15m"))
     + " > 0",
     "1m", "warning",
     "Processes were killed for lack of memory ({{ $labels.reason }}).",
     "{{ $labels.source }} reported {{ $labels.reason }} on a {{ $labels.kind }} in the last 15 "
     "minutes: the kernel OOM killer ended processes."),
    ("KubeEventFailedCreatePodSandBox",
     summed("namespace", occurrences('reason="FailedCreatePodSandBox"', "10m")) + " >= 5",
     "10m", "warning",
     "Pod sandboxes cannot be created in {{ $labels.namespace }}.",
     "FailedCreatePodSandBox occurred at least 5 times in the last 10 minutes in namespace "
     "{{ $labels.namespace }}, usually a CNI or container runtime problem on the node."),
    ("KubeEventWarningBurst",
     f"(\n  sum by (namespace) (rate(kube_events_total{{{JOB},type=\"Warning\"}}[5m])) > 0.5\n)\n"
     f"unless\n(\n  sum by (namespace) (rate(kube_events_total{{{JOB},type=\"Warning\"}}[5m]))\n  <=\n"
     f"  10 * sum by (namespace) (rate(kube_events_total{{{JOB},type=\"Warning\"}}[1h] offset 30m))\n)",
     "5m", "warning",
     "Burst of Warning events in {{ $labels.namespace }}.",
     "Namespace {{ $labels.namespace }} records more than 0.5 Warning events per second over 5 "
     "minutes, over ten times its rate in the hour that ended 30 minutes ago."),
]

EXPORTER_RULES = [
    ("KubeEventMetricsDown",
     f"absent(up{{{JOB}}} == 1)",
     "5m", "critical",
     "kube-event-metrics is down.",
     "No kube-event-metrics target has been scraped successfully for 5 minutes: the Event counters "
     "and every alert built on them are blind."),
    ("KubeEventMetricsWatchErrors",
     f"sum by (job, instance) (increase(kube_event_metrics_watch_errors_total{{{JOB}}}[10m])) > 20",
     "10m", "warning",
     "kube-event-metrics keeps failing to watch Events.",
     "Instance {{ $labels.instance }} had more than 20 watch errors per 10 minutes for 10 minutes; "
     "its logs say why (RBAC, API server overload, network)."),
    ("KubeEventMetricsNotSynced",
     f"(kube_event_metrics_synced{{{JOB}}} == 0)\nand on (job, instance)\n"
     f"(kube_event_metrics_leader{{{JOB}}} == 1)",
     "15m", "warning",
     "kube-event-metrics has not completed its first list of Events.",
     "Instance {{ $labels.instance }} leads but has not completed the first list of every watch for "
     "15 minutes, so it counts nothing yet."),
    ("KubeEventMetricsSeriesFolded",
     f"sum by (job, instance) (increase(kube_event_metrics_folded_total{{{JOB}}}[30m])) > 0",
     "5m", "info",
     "kube-event-metrics reached --max-series and folds new label sets.",
     'Instance {{ $labels.instance }} counted occurrences into folded series (namespace="_other_") '
     "in the last 30 minutes: raise --max-series or filter noisy reasons."),
]


def render(rules):
    lines = []
    for name, expr, for_, severity, summary, description in rules:
        lines += [f"      - alert: {name}", "        expr: |"]
        lines += ["          " + line for line in expr.splitlines()]
        lines += [
            f"        for: {for_}",
            "        labels:",
            f"          severity: {severity}",
            "        annotations:",
            f"          summary: {quote(summary)}",
            f"          description: {quote(description)}",
            f"          runbook_url: {RUNBOOKS}#{name.lower()}",
        ]
    return lines


def quote(text):
    return "'" + text.replace("'", "''") + "'"


HEADER = """\
# kube-event-metrics alerting rules: the single source (deploy/ wraps them in a PrometheusRule).
# Event alerts count occurrences in a window with a first-occurrence-aware expression: increase()
# misses a series whose first sample is already 1, so a series younger than the window
# (x unless x offset W) counts its whole value instead; counter resets are left to increase().
# Generated by tools/alert-rules.py: edit that script, run it, commit both."""

output = [HEADER, "groups:", "  - name: kube-event-metrics.events", "    rules:"]
output += render(RULES)
output += ["  - name: kube-event-metrics.exporter", "    rules:"]
output += render(EXPORTER_RULES)
with open("alerts/kube-event-metrics.rules.yaml", "w") as f:
    f.write("\n".join(output) + "\n")
print(f"{len(RULES) + len(EXPORTER_RULES)} alerts -> alerts/kube-event-metrics.rules.yaml")

# The same groups for the Prometheus Operator; a test proves the two files carry identical rules.
wrapped = [
    "# The rules of alerts/kube-event-metrics.rules.yaml for the Prometheus Operator.",
    "# Generated by tools/alert-rules.py: edit that script, run it, commit both.",
    "apiVersion: monitoring.coreos.com/v1",
    "kind: PrometheusRule",
    "metadata:",
    "  name: kube-event-metrics",
    "spec:",
]
wrapped += ["  " + line for line in output[1:]]
with open("deploy/base/prometheusrule.yaml", "w") as f:
    f.write("\n".join(wrapped) + "\n")
print("-> deploy/base/prometheusrule.yaml")
