#!/usr/bin/env python3
"""Writes dashboards/*.json: the Grafana dashboards, from one description per panel.

Every panel uses the `datasource` variable (no hard-coded uid); uids are stable. Edit, run, commit.
"""
import json

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job=~"$job",namespace=~"$namespace",kind=~"$kind",reason=~"$reason",type=~"$type"'


def variable_datasource():
    return {"name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0, "refresh": 1, "regex": "",
            "options": []}


def variable_query(name, label, query, multi=True):
    var = {"name": name, "label": label, "type": "query", "datasource": DS,
           "query": {"query": query, "refId": f"{name}-values"}, "definition": query,
           "refresh": 2, "sort": 1, "hide": 0, "regex": "", "current": {}, "options": []}
    if multi:
        var.update({"multi": True, "includeAll": True, "allValue": ".*"})
    else:
        var.update({"multi": False, "includeAll": False})
    return var


def target(expr, legend="", instant=False, ref="A"):
    t = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}
    if instant:
        t.update({"instant": True, "range": False, "format": "table"})
    else:
        t.update({"range": True, "instant": False})
    return t


class Layout:
    def __init__(self):
        self.panels = []
        self.y = 0
        self.x = 0
        self.row_h = 0

    def add(self, panel, w, h):
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel["id"] = len(self.panels) + 1
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        panel["datasource"] = DS
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def timeseries(title, description, targets, unit="short", stack=False):
    return {"type": "timeseries", "title": title, "description": description, "targets": targets,
            "fieldConfig": {"defaults": {"unit": unit, "custom": {
                "drawStyle": "line", "lineWidth": 1, "fillOpacity": 20 if stack else 10,
                "stacking": {"mode": "normal" if stack else "none", "group": "A"}}},
                "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "right",
                                   "calcs": ["mean", "max"], "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def stat(title, description, targets, unit="short"):
    return {"type": "stat", "title": title, "description": description, "targets": targets,
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "area", "textMode": "auto"}}


def dashboard(uid, title, description, tags, variables, layout):
    return {
        "uid": uid, "title": title, "description": description, "tags": tags,
        "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1,
        "time": {"from": "now-6h", "to": "now"}, "timezone": "browser", "refresh": "1m",
        "templating": {"list": variables},
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": [], "panels": layout.panels, "fiscalYearStartMonth": 0, "liveNow": False,
        "weekStart": "",
    }


def rate(by, extra=""):
    return f"sum by ({by}) (rate(kube_events_total{{{SEL}{extra}}}[$__rate_interval]))"


overview = Layout()
overview.add(stat("Occurrences in range", "All Event occurrences counted in the time range.",
                  [target(f"sum(increase(kube_events_total{{{SEL}}}[$__range]))", instant=True)]), 6, 5)
overview.add(stat("Warning occurrences in range", "Warning Event occurrences in the time range.",
                  [target(f'sum(increase(kube_events_total{{{SEL},type="Warning"}}[$__range]))',
                          instant=True)]), 6, 5)
overview.add({"type": "piechart", "title": "Warning vs Normal",
              "description": "Share of occurrences by type over the time range.",
              "targets": [target(f"sum by (type) (increase(kube_events_total{{{SEL}}}[$__range]))",
                                 "{{type}}", instant=True)],
              "fieldConfig": {"defaults": {"unit": "short"}, "overrides": []},
              "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                          "pieType": "donut", "legend": {"displayMode": "list", "placement": "right",
                                                          "showLegend": True}}}, 6, 5)
overview.add(stat("Series", "kube_events_total series the exporter serves.",
                  [target('sum(kube_event_metrics_series{job=~"$job"})', instant=True)]), 6, 5)
overview.add(timeseries("Event rate by type", "Occurrences per second, by type.",
                        [target(rate("type"), "{{type}}")], "ops", stack=True), 24, 8)
overview.add(timeseries("Top Warning reasons", "The ten Warning reasons with the highest rate.",
                        [target("topk(10, " + rate("reason", ',type="Warning"') + ")", "{{reason}}")],
                        "ops"), 12, 9)
overview.add(timeseries("By namespace", "The ten namespaces with the highest rate.",
                        [target(f"topk(10, {rate('namespace')})", "{{namespace}}")], "ops"), 12, 9)
overview.add(timeseries("By kind", "Occurrences per second by kind of object.",
                        [target(rate("kind"), "{{kind}}")], "ops"), 12, 9)
overview.add(timeseries("By source", "Occurrences per second by reporting component.",
                        [target(f"topk(10, {rate('source')})", "{{source}}")], "ops"), 12, 9)
overview.add({"type": "table", "title": "Top label sets over the range",
              "description": "The label sets with the most occurrences in the time range.",
              "targets": [target("topk(25, sum by (namespace, kind, reason, type, source) "
                                 f"(increase(kube_events_total{{{SEL}}}[$__range])))", instant=True)],
              "fieldConfig": {"defaults": {"unit": "short"}, "overrides": []},
              "options": {"showHeader": True, "sortBy": [{"displayName": "Value", "desc": True}]},
              "transformations": [{"id": "organize", "options": {
                  "excludeByName": {"Time": True},
                  "renameByName": {"Value": "Occurrences"}}}]}, 24, 10)

overview_variables = [
    variable_datasource(),
    variable_query("job", "Job", "label_values(kube_event_metrics_build_info, job)"),
    variable_query("namespace", "Namespace", 'label_values(kube_events_total{job=~"$job"}, namespace)'),
    variable_query("kind", "Kind", 'label_values(kube_events_total{job=~"$job"}, kind)'),
    variable_query("reason", "Reason", 'label_values(kube_events_total{job=~"$job"}, reason)'),
    variable_query("type", "Type", 'label_values(kube_events_total{job=~"$job"}, type)'),
]

H = 'job=~"$job"'
health = Layout()
health.add(stat("Synced", "1 once every watch of the instance completed its first list.",
                [target(f"kube_event_metrics_synced{{{H}}}", "{{instance}}")]), 6, 5)
health.add(stat("Leader", "1 on the instance that watches and exports Events.",
                [target(f"kube_event_metrics_leader{{{H}}}", "{{instance}}")]), 6, 5)
health.add(stat("Since last update", "Seconds since the last object from the API server.",
                [target(f"time() - kube_event_metrics_last_update_timestamp_seconds{{{H}}} "
                        f"and kube_event_metrics_last_update_timestamp_seconds{{{H}}} > 0",
                        "{{instance}}")], "s"), 6, 5)
health.add(stat("Version", "The exporter's version.",
                [target(f"count by (version) (kube_event_metrics_build_info{{{H}}})", "{{version}}")]),
           6, 5)
health.add(timeseries("Watch updates", "Objects received per second (list items and watch events).",
                      [target(f"sum by (instance) (rate(kube_event_metrics_watch_updates_total{{{H}}}"
                              f"[$__rate_interval]))", "{{instance}}")], "ops"), 12, 8)
health.add(timeseries("Watch errors and relists", "Watch errors and relists per second.",
                      [target(f"sum by (instance) (rate(kube_event_metrics_watch_errors_total{{{H}}}"
                              f"[$__rate_interval]))", "errors {{instance}}"),
                       target(f"sum by (instance) (rate(kube_event_metrics_relists_total{{{H}}}"
                              f"[$__rate_interval]))", "relists {{instance}}", ref="B")], "ops"), 12, 8)
health.add(timeseries("Series vs limit", "Exported event series and the --max-series limit.",
                      [target(f"kube_event_metrics_series{{{H}}}", "series {{instance}}"),
                       target(f"kube_event_metrics_series_limit{{{H}}}", "limit {{instance}}", ref="B")]),
           12, 8)
health.add(timeseries("Folded occurrences", "Occurrences counted into folded series per second.",
                      [target(f"sum by (instance) (rate(kube_event_metrics_folded_total{{{H}}}"
                              f"[$__rate_interval]))", "{{instance}}")], "ops"), 12, 8)
health.add(timeseries("Tracked events", "Live Events the ledger remembers.",
                      [target(f"kube_event_metrics_tracked_events{{{H}}}", "{{instance}}")]), 12, 8)
health.add(timeseries("Malformed objects and count decreases",
                      "Objects skipped as malformed, and updates whose count went down, per second.",
                      [target(f"sum by (instance) (rate(kube_event_metrics_malformed_objects_total{{{H}}}"
                              f"[$__rate_interval]))", "malformed {{instance}}"),
                       target(f"sum by (instance) (rate(kube_event_metrics_count_decreases_total{{{H}}}"
                              f"[$__rate_interval]))", "decreases {{instance}}", ref="B")], "ops"),
           12, 8)
health.add(timeseries("CPU", "CPU seconds used per second.",
                      [target(f"rate(process_cpu_seconds_total{{{H}}}[$__rate_interval])",
                              "{{instance}}")], "percentunit"), 8, 8)
health.add(timeseries("Memory", "Resident memory.",
                      [target(f"process_resident_memory_bytes{{{H}}}", "{{instance}}")], "bytes"), 8, 8)
health.add(timeseries("Scrape duration", "How long Prometheus takes to scrape the exporter.",
                      [target(f"scrape_duration_seconds{{{H}}}", "{{instance}}")], "s"), 8, 8)

health_variables = [
    variable_datasource(),
    variable_query("job", "Job", "label_values(kube_event_metrics_build_info, job)"),
]

for path, board in [
    ("dashboards/kube-events-overview.json",
     dashboard("kube-events-overview", "Kubernetes Events", "Kubernetes Event occurrences counted "
               "by kube-event-metrics.", ["kubernetes", "events", "kube-event-metrics"],
               overview_variables, overview)),
    ("dashboards/kube-event-metrics-health.json",
     dashboard("kube-event-metrics-health", "kube-event-metrics health", "The exporter itself: "
               "watches, cardinality, resources.", ["kubernetes", "events", "kube-event-metrics"],
               health_variables, health)),
]:
    with open(path, "w") as f:
        json.dump(board, f, indent=2)
        f.write("\n")
    print(f"{len(board['panels'])} panels -> {path}")
