#!/usr/bin/env python3
"""Renders everything the mixin is the source of, and the rule tests of the alert scenarios.

    python3 tools/render.py            # write alerts/, deploy/base/prometheusrule.yaml, dashboards/,
                                       # alerts/tests/ and docs/alert-scenarios.md
    python3 tools/render.py --check    # exit 1 naming every file that differs (CI, tests)
    python3 tools/render.py --mixin my.libsonnet --out DIR   # rules and dashboards of an override

Needs the PyPI package `jsonnet` (0.22) and promtool (to measure when each alert fires).
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import _jsonnet

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import alert_scenarios  # noqa: E402

GENERATED = "# Rendered from mixin/ by tools/render.py: edit the mixin, run it, commit both.\n"


def evaluate(snippet):
    return _jsonnet.evaluate_snippet("render", snippet, jpathdir=[ROOT])


def yaml_of(document):
    return "\n".join(to_yaml(document))


PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-/]*$")
# Field order a reader expects (jsonnet sorts fields); unlisted keys keep jsonnet's order after.
ORDER = ["apiVersion", "kind", "metadata", "spec", "name", "alert", "record", "expr", "for", "labels", "annotations", "summary", "description", "runbook_url", "rules"]


def to_yaml(value, indent=""):
    """Block-style YAML lines: multi-line strings as literal blocks (readable PromQL), other
    strings plain when safe and JSON-quoted otherwise (JSON strings are YAML)."""
    lines = []
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: ORDER.index(k) if k in ORDER else len(ORDER))
        for key, item in ((k, value[k]) for k in keys):
            lines += entry(f"{indent}{key}:", item, indent)
    elif isinstance(value, list):
        for item in value:
            sub = to_yaml(item, indent + "  ")
            if isinstance(item, (dict, list)) and sub:
                lines.append(f"{indent}- " + sub[0][len(indent) + 2:])
                lines += sub[1:]
            else:
                lines += entry(f"{indent}-", item, indent)
    return lines


def entry(head, item, indent):
    if isinstance(item, (dict, list)):
        if not item:
            return [f"{head} {'{}' if isinstance(item, dict) else '[]'}"]
        return [head] + to_yaml(item, indent + "  ")
    if isinstance(item, str) and "\n" in item:
        return [f"{head} |" + ("-" if not item.endswith("\n") else "")] + [
            (indent + "  " + line).rstrip() for line in item.rstrip("\n").split("\n")]
    return [f"{head} {scalar(item)}"]


def scalar(item):
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, (int, float)):
        return json.dumps(item)
    if re.fullmatch(r"\d+[smhdwy]", item):
        return item  # a duration: YAML reads it as a string, and it stays greppable as `for: 5m`
    if PLAIN.match(item) and item not in ("true", "false", "null", "yes", "no", "on", "off"):
        return item
    return json.dumps(item, ensure_ascii=False)


MIXIN = "(import 'mixin/mixin.libsonnet')"
_rendered = {}


def mixin_json(expression):
    """`expression` over `m`, the mixin; the mixin is evaluated once (jsonnet takes seconds)."""
    if MIXIN not in _rendered:
        _rendered[MIXIN] = json.loads(evaluate(
            f"local m = {MIXIN}; {{ alerts: m.prometheusAlerts, rules: m.prometheusRules, dashboards: m.grafanaDashboards }}"))
    whole = _rendered[MIXIN]
    m = {"prometheusAlerts": whole["alerts"], "prometheusRules": whole["rules"], "grafanaDashboards": whole["dashboards"]}
    return eval(expression, {}, {"m": _Attr(m)})


class _Attr(dict):
    def __getattr__(self, name):
        value = self[name]
        return _Attr(value) if isinstance(value, dict) else value


RULES = "m.prometheusRules.groups + m.prometheusAlerts.groups"


def rule_groups():
    return mixin_json(RULES)


def rule_files():
    files = {}
    groups = rule_groups()
    files["alerts/kube-event-metrics.rules.yaml"] = GENERATED + yaml_of({"groups": groups}) + "\n"
    files["deploy/base/prometheusrule.yaml"] = GENERATED + yaml_of({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
        "metadata": {"name": "kube-event-metrics"}, "spec": {"groups": groups}}) + "\n"
    for name, board in mixin_json("m.grafanaDashboards").items():
        files[f"dashboards/{name}"] = json.dumps(board, indent=2) + "\n"
    return files


def alerting_rules(group=None):
    groups = mixin_json("m.prometheusAlerts.groups")
    return {r["alert"]: r for g in groups for r in g["rules"] if group in (None, g["name"])}


def event_rules():
    """The alerts the recorder scenarios are about; the exporter's own have their cases."""
    return alerting_rules("kube-event-metrics.events")


def test_document(cases):
    document = {"rule_files": ["../kube-event-metrics.rules.yaml"], "evaluation_interval": "1m", "tests": cases}
    # JSON is YAML: promtool reads it, and no YAML library is needed.
    return GENERATED + json.dumps(document, indent=1) + "\n"


def test_files(rules):
    events = event_rules()
    incidents, routine = alert_scenarios.incidents(), alert_scenarios.routine()
    files = {}
    files["alerts/tests/incidents.yaml"] = test_document([alert_scenarios.cases(s, events) for s in incidents])
    files["alerts/tests/incidents-restart.yaml"] = test_document([alert_scenarios.cases(s, events, restart=True) for s in incidents])
    files["alerts/tests/routine.yaml"] = test_document(
        [alert_scenarios.cases(s, events) for s in routine] + [alert_scenarios.cases(s, events, restart=True) for s in routine])
    import exporter_cases
    files["alerts/tests/exporter.yaml"] = test_document(exporter_cases.cases(rules))
    return files


def measure(rules, rule_text):
    """When each incident's alert first fires and whether it then stays firing, by promtool."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.mkdir(os.path.join(tmp, "tests"))
        with open(os.path.join(tmp, "kube-event-metrics.rules.yaml"), "w") as f:
            f.write(rule_text)
        for scenario in alert_scenarios.incidents():
            for alert, (labels, start, within, until) in scenario.expect.items():
                probe = alert_scenarios.firing_probe(scenario, alert, rules)
                path = os.path.join(tmp, "tests", "probe.yaml")
                with open(path, "w") as f:
                    f.write(test_document([probe]))
                out = subprocess.run(["promtool", "test", "rules", path], capture_output=True, text=True)
                failed = {int(h or 0) * 60 + int(m or 0) for h, m in re.findall(r"alertname: \w+, time: (?:(\d+)h)?(?:(\d+)m)?", out.stdout + out.stderr)}
                if out.returncode != 0 and not failed:
                    raise SystemExit(f"promtool failed on {scenario.name}:\n{out.stdout}{out.stderr}")
                fired = next((t for t in range(start, until + 1) if all(u not in failed for u in range(t, until + 1))), None)
                rows.append((scenario.name, alert, within, None if fired is None else fired - start, until - start))
    lines = [
        "# When each alert fires: the incident scenarios",
        "",
        "Measured with promtool by tools/render.py (do not edit: run it). Minutes from the start of the",
        "incident (its first Event) in the model of tools/recorder_model.py and tools/cluster_model.py;",
        "`promtool test rules alerts/tests/*.yaml` checks every alert fires by its bound and keeps firing",
        "to the end, on these and with an exporter restart in the middle, and that the routine scenarios",
        "(alerts/tests/routine.yaml) page nobody.",
        "",
        "| incident | alert | fires after | bound | keeps firing for |",
        "|---|---|---|---|---|",
    ]
    for name, alert, within, fired, span in rows:
        lines.append(f"| {name} | {alert} | {'never' if fired is None else f'{fired} min'} | {within} min | {span} min |")
    lines += ["", "Routine scenarios (silent for every alert): " + "; ".join(s.name for s in alert_scenarios.routine()) + "."]
    return "\n".join(lines) + "\n"


def main():
    if "--mixin" in sys.argv:
        global MIXIN
        path = os.path.abspath(sys.argv[sys.argv.index("--mixin") + 1])
        out = sys.argv[sys.argv.index("--out") + 1]
        MIXIN = f"(import {json.dumps(path)})"
        os.makedirs(out, exist_ok=True)
        for name, text in rule_files().items():
            if name.startswith(("alerts/", "dashboards/")):
                with open(os.path.join(out, os.path.basename(name)), "w") as f:
                    f.write(text)
        return
    check = "--check" in sys.argv
    files = rule_files()
    rules = alerting_rules()
    files.update(test_files(rules))
    files["docs/alert-scenarios.md"] = measure(rules, files["alerts/kube-event-metrics.rules.yaml"])
    differ = []
    for path, text in sorted(files.items()):
        full = os.path.join(ROOT, path)
        if check:
            current = open(full).read() if os.path.exists(full) else None
            if current != text:
                differ.append(path)
        else:
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(text)
            print(f"-> {path}")
    if differ:
        print("not what mixin/ renders (run python3 tools/render.py): " + ", ".join(differ))
        sys.exit(1)


if __name__ == "__main__":
    main()
