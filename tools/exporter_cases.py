"""Hand-written `promtool test rules` cases: the exporter's own alerts and the Warning burst.

These alerts read the exporter's self-metrics (or a rate), not the recorders, so their series are
written out here. Each alert has a case that fires, one that stays silent, a first occurrence (a
series whose first sample is already non-zero) and a restart (a counter reset).
"""
from alert_scenarios import expected

LABELS = 'job="kube-event-metrics",instance="kem:8080",cluster="prod"'
INSTANCE = {"cluster": "prod", "job": "kube-event-metrics", "instance": "kem:8080"}


def own(metric, labels=LABELS):
    return f"kube_event_metrics_{metric}{{{labels}}}"


def events(namespace, reason):
    return (f'kube_events_total{{{LABELS},namespace="{namespace}",kind="Pod",reason="{reason}",'
            f'type="Warning",source="kubelet"}}')


def scheduling(namespace, cls):
    return (f'kube_events_total{{{LABELS},namespace="{namespace}",kind="Pod",reason="FailedScheduling",'
            f'type="Warning",source="default-scheduler",class="{cls}"}}')


def cases(rules):
    out = []

    def case(alert, name, series, checks):
        out.append({
            "name": f"{name} ({alert})",
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in series],
            "alert_rule_test": [
                {"eval_time": t, "alertname": alert, "exp_alerts": [expected(rules[alert], l) for l in fired]}
                for t, fired in checks
            ],
        })

    up = f"up{{{LABELS}}}"
    up2 = 'up{job="kube-event-metrics",instance="kem-2:8080",cluster="prod"}'
    A = "KubeEventMetricsDown"
    case(A, "fires: one of two instances stays down", [(up, "1x10 0x20"), (up2, "1x30")], [("20m", [dict(INSTANCE)])])
    case(A, "silent: both instances up", [(up, "1x30"), (up2, "1x30")], [("20m", [])])
    case(A, "first occurrence: a new instance that never came up fires", [(up, "_x2 0x20")], [("10m", [dict(INSTANCE)])])
    case(A, "restart: a short restart stays silent", [(up, "1x10 0x2 1x20")], [("13m", []), ("20m", [])])
    A = "KubeEventMetricsAbsent"
    case(A, "fires: the only target vanished", [(up, "1x5 _x20")], [("22m", [{}])])
    case(A, "silent: one of two instances down", [(up, "1x10 0x20"), (up2, "1x30")], [("25m", [])])
    case(A, "first occurrence: a new target that never came up fires", [(up, "_x2 0x20")], [("10m", [{}])])
    case(A, "restart: a short restart stays silent", [(up, "1x10 0x2 1x20")], [("13m", []), ("20m", [])])

    leader = own("leader")
    leader2 = own("leader", 'job="kube-event-metrics",instance="kem-2:8080",cluster="prod"')
    job = {"cluster": "prod", "job": "kube-event-metrics"}
    A = "KubeEventMetricsLeaders"
    case(A, "fires: two leaders", [(leader, "1x30"), (leader2, "0x10 1x20")], [("20m", [job])])
    case(A, "fires: no leader", [(leader, "1x10 0x20"), (leader2, "0x30")], [("20m", [job])])
    case(A, "silent: a hand-over within a minute", [(leader, "1x10 0x20"), (leader2, "0x11 1x19")], [("12m", []), ("25m", [])])
    case(A, "first occurrence: a new pair where nobody leads", [(leader, "_x5 0x20"), (leader2, "_x5 0x20")], [("8m", []), ("15m", [job])])
    case(A, "restart: the leader restarts and leads again", [(leader, "1x10 _ 1x20"), (leader2, "0x30")], [("12m", []), ("25m", [])])

    synced, lead = own("synced"), own("leader")
    A = "KubeEventMetricsNotSynced"
    case(A, "fires: a leader that never syncs", [(synced, "0x30"), (lead, "1x30")], [("20m", [INSTANCE])])
    case(A, "silent: a synced leader", [(synced, "0x3 1x30"), (lead, "1x30")], [("20m", [])])
    case(A, "silent: a standby never pages", [(synced, "0x30"), (lead, "0x30")], [("20m", [])])
    case(A, "first occurrence: a new instance that appears and never syncs",
         [(synced, "_x5 0x30"), (lead, "_x5 1x30")], [("15m", []), ("25m", [INSTANCE])])
    case(A, "restart: a restart that syncs again stays silent",
         [(synced, "1x10 _ 0x2 1x30"), (lead, "1x10 _ 1x32")], [("14m", []), ("30m", [])])

    # Timestamps: the scenario's epoch starts at 0, so last_update is in seconds from there.
    last, errors = own("last_update_timestamp_seconds"), own("watch_errors_total")
    A = "KubeEventMetricsBlind"
    case(A, "fires: RBAC revoked after sync, an error every 30 s and nothing received",
         [(last, "0+60x10 600x40"), (errors, "0x10 0+2x40"), (lead, "1x50")], [("35m", [INSTANCE])])
    case(A, "silent: a quiet cluster with no Events and no errors", [(last, "0+60x10 600x40"), (errors, "0x50"), (lead, "1x50")], [("35m", [])])
    case(A, "silent: errors while updates keep arriving", [(last, "0+60x50"), (errors, "0+2x50"), (lead, "1x50")], [("35m", [])])
    case(A, "silent: a standby", [(last, "0x50"), (errors, "0+2x50"), (lead, "0x50")], [("35m", [])])
    case(A, "first occurrence: the error counter is born non-zero",
         [(last, "0+60x10 600x40"), (errors, "_x10 3+2x40"), (lead, "1x50")], [("35m", [INSTANCE])])
    case(A, "restart: a restarted exporter that receives again stays silent",
         [(last, "0+60x10 600x10 _ 1320+60x30"), (errors, "0x10 0+2x10 _ 0x30"), (lead, "1x50")], [("30m", []), ("45m", [])])

    series, limit = own("series"), own("series_limit")
    A = "KubeEventMetricsSeriesNearLimit"
    case(A, "fires: 95% of the limit", [(series, "9500x30"), (limit, "10000x30")], [("20m", [INSTANCE])])
    case(A, "silent: half of the limit", [(series, "5000x30"), (limit, "10000x30")], [("20m", [])])
    case(A, "first occurrence: a new instance already near its limit", [(series, "_x3 9500x30"), (limit, "_x3 10000x30")], [("20m", [INSTANCE])])
    case(A, "restart: a restart drops the series below the limit", [(series, "9500x10 _ 100x20"), (limit, "10000x31")], [("25m", [])])

    folded = own("folded_total")
    A = "KubeEventMetricsSeriesFolded"
    case(A, "fires: folding", [(folded, "0x5 0+4x30")], [("15m", [INSTANCE])])
    case(A, "silent: no folding", [(folded, "0x40")], [("30m", [])])
    case(A, "first occurrence: a counter that climbs from its first sample", [(folded, "_x3 2+2x30")], [("15m", [INSTANCE])])
    case(A, "restart: a reset stays silent", [(folded, "0x5 50x20 0x40")], [("60m", []), ("80m", [])])

    # Pods that stay Pending (the second occurrence at once, then the 30-minute heartbeat), one
    # per message class: each class its alert, named capacity or configuration; an unknown
    # message (the empty class) still pages, without a cause.
    A = "KubeEventFailedScheduling"
    heartbeat = "1 2x29 3x30 4x30"
    ml = {"cluster": "prod", "namespace": "ml"}
    case(A, "classes: each class its alert, with its cause",
         [(scheduling("ml", "insufficient-cpu"), heartbeat), (scheduling("ml", "node-affinity"), heartbeat),
          (scheduling("ml", ""), heartbeat)],
         [("40m", []), ("80m", [dict(ml, **{"class": "insufficient-cpu", "cause": "capacity"}),
                                dict(ml, **{"class": "node-affinity", "cause": "configuration"}), ml])])

    shop = {"cluster": "prod", "namespace": "shop"}
    A = "KubeEventWarningBurst"
    case(A, "fires: 5/s over a 0.1/min baseline", [(events("shop", "BackOff"), "0+0.1x90 9+300x40")], [("115m", [shop])])
    case(A, "silent: a steady high rate is its own baseline", [(events("shop", "BackOff"), "0+120x150")], [("100m", []), ("140m", [])])
    case(A, "first occurrence: a namespace with no Warnings before bursts from a new series",
         [(events("shop", "BackOff"), "0x90"), (events("shop", "Unhealthy"), "_x90 300+300x40")], [("115m", [shop])])
    case(A, "restart: a reset stays silent", [(events("shop", "BackOff"), "0+1x90 0x40")], [("95m", []), ("110m", [])])
    return out
