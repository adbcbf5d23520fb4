#!/usr/bin/env python3
"""Renders everything the mixin is the source of, and the rule tests of the alert scenarios.

    python3 tools/render.py            # write alerts/, deploy/base/prometheusrule.yaml, dashboards/,
                                       # alerts/tests/ and docs/alert-scenarios.md
    python3 tools/render.py --check    # exit 1 naming every file that differs (CI, tests)
    python3 tools/render.py --mixin my.libsonnet --out DIR   # rules and dashboards of an override
    python3 tools/render.py --compare RULES.yaml   # which alerts of a rule file fire on the scenarios

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
import exporter_cases  # noqa: E402

GENERATED = "# Rendered from mixin/ by tools/render.py: edit the mixin, run it, commit both.\n"


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


def render_mixin(path=os.path.join(ROOT, "mixin", "mixin.libsonnet")):
    """The mixin's alert groups, recording-rule groups and dashboards, in one evaluation (jsonnet
    takes about a second)."""
    whole = json.loads(_jsonnet.evaluate_snippet("render", f"""
        local m = import {json.dumps(path)};
        {{ alerts: m.prometheusAlerts.groups, rules: m.prometheusRules.groups, dashboards: m.grafanaDashboards }}
    """, jpathdir=[ROOT]))
    return whole["alerts"], whole["rules"], whole["dashboards"]


def rule_files(alert_groups, rule_groups, dashboards):
    groups = rule_groups + alert_groups
    files = {
        "alerts/kube-event-metrics.rules.yaml": GENERATED + yaml_of({"groups": groups}) + "\n",
        "deploy/base/prometheusrule.yaml": GENERATED + yaml_of({
            "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "kube-event-metrics"}, "spec": {"groups": groups}}) + "\n",
    }
    for name, board in dashboards.items():
        files[f"dashboards/{name}"] = json.dumps(board, indent=2) + "\n"
        # kustomize reads files only under the component, so the Grafana sidecar's copy lives there.
        files[f"deploy/components/kube-prometheus-stack/dashboards/{name}"] = files[f"dashboards/{name}"]
    return files


def alerts_by_name(alert_groups, group=None):
    return {r["alert"]: r for g in alert_groups for r in g["rules"] if group in (None, g["name"])}


def test_document(cases, rule_file="../kube-event-metrics.rules.yaml"):
    document = {"rule_files": [rule_file], "evaluation_interval": "1m", "tests": cases}
    # JSON is YAML: promtool reads it, and no YAML library is needed.
    return GENERATED + json.dumps(document, indent=1) + "\n"


def test_files(alert_groups):
    # The recorder scenarios are about the event alerts; the exporter's own have their cases.
    events = alerts_by_name(alert_groups, "kube-event-metrics.events")
    incidents, routine = alert_scenarios.incidents(), alert_scenarios.routine()

    def document(scenarios, restarts):
        return test_document([alert_scenarios.cases(s, events, restart) for s in scenarios for restart in restarts])

    return {
        "alerts/tests/incidents.yaml": document(incidents, [False]),
        "alerts/tests/incidents-restart.yaml": document(incidents, [True]),
        "alerts/tests/routine.yaml": test_document(
            [alert_scenarios.cases(s, events) for s in routine] + [alert_scenarios.cases(s, events, True) for s in routine]),
        "alerts/tests/exporter.yaml": test_document(exporter_cases.cases(alerts_by_name(alert_groups))),
    }


def failed_checks(case, rule_text):
    """The (alert, minute) checks of one promtool test group that fail against `rule_text`."""
    with tempfile.TemporaryDirectory() as tmp:
        rules = os.path.join(tmp, "rules.yaml")
        tests = os.path.join(tmp, "tests.yaml")
        with open(rules, "w") as f:
            f.write(rule_text)
        with open(tests, "w") as f:
            f.write(test_document([case], rules))
        out = subprocess.run(["promtool", "test", "rules", tests], capture_output=True, text=True)
    said = out.stdout + out.stderr
    failed = {(alert, int(h or 0) * 60 + int(m or 0))
              for alert, h, m in re.findall(r"alertname: (\w+), time: (?:(\d+)h)?(?:(\d+)m)?", said)}
    if out.returncode != 0 and not failed:
        raise SystemExit(f"promtool failed on {case['name']}:\n{said}")
    return failed


def measure(alert_groups, rule_text):
    """When each incident's alert first fires and whether it then stays firing, by promtool."""
    rules = alerts_by_name(alert_groups)
    rows = []
    for scenario in alert_scenarios.incidents():
        for alert, (labels, start, within, until) in scenario.expect.items():
            failed = {t for _, t in failed_checks(alert_scenarios.firing_probe(scenario, alert, rules), rule_text)}
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


def compare(rule_path):
    """Which alerts of another rule file fire on the scenarios, and from when to when (minutes)."""
    rule_text = open(rule_path).read()
    names = re.findall(r"alert: (\w+)", rule_text)
    for scenario in alert_scenarios.incidents() + alert_scenarios.routine():
        case = alert_scenarios.silence_probe(scenario, names)
        fired = {}
        for alert, t in failed_checks(case, rule_text):
            fired.setdefault(alert, []).append(t)
        print(f"{scenario.name}: " + (", ".join(f"{a} {min(ts)}-{max(ts)}m" for a, ts in sorted(fired.items())) or "silent"))


def write_or_check(files, check):
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


def main():
    args = sys.argv[1:]
    if "--compare" in args:
        compare(args[args.index("--compare") + 1])
        return
    if "--mixin" in args:
        out = args[args.index("--out") + 1]
        files = rule_files(*render_mixin(os.path.abspath(args[args.index("--mixin") + 1])))
        os.makedirs(out, exist_ok=True)
        for name, text in files.items():
            if name.startswith(("alerts/", "dashboards/")):
                with open(os.path.join(out, os.path.basename(name)), "w") as f:
                    f.write(text)
        return
    alert_groups, rule_groups, dashboards = render_mixin()
    files = rule_files(alert_groups, rule_groups, dashboards)
    files.update(test_files(alert_groups))
    files["docs/alert-scenarios.md"] = measure(alert_groups, files["alerts/kube-event-metrics.rules.yaml"])
    write_or_check(files, "--check" in args)


if __name__ == "__main__":
    main()
