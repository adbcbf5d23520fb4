// kube-event-metrics monitoring mixin: alerts, recording rules and dashboards from one _config.
(import 'config.libsonnet') +
(import 'alerts/alerts.libsonnet') +
(import 'rules/rules.libsonnet') +
(import 'dashboards/dashboards.libsonnet')
