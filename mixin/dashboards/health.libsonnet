// "kube-event-metrics health": is the exporter seeing and exporting everything, per instance.
local g = import '../lib/grafana.libsonnet';

{
  local config = $._config,
  local cluster = config.clusterLabel,
  local instances = '%s,%s=~"$cluster",instance=~"$instance"' % [config.jobSelector, cluster],
  local metric(name) = '%s{%s}' % [name, instances],
  local perSecond(name) = 'sum by (instance) (rate(%s[$__rate_interval]))' % metric(name),

  local variables = [
    g.datasourceVariable(),
    g.queryVariable('cluster', 'Cluster', 'label_values(kube_event_metrics_build_info{%s}, %s)' % [config.jobSelector, cluster], multi=false, hide=!config.showMultiCluster),
    g.queryVariable('instance', 'Instance', 'label_values(kube_event_metrics_build_info{%s,%s=~"$cluster"}, instance)' % [config.jobSelector, cluster]),
  ],

  local annotations = [
    g.annotation('Exporter restarts', 'changes(%s[5m]) > 0' % metric('process_start_time_seconds'), 'exporter restart', '{{instance}}', 'orange'),
  ],

  local panels = g.layout([
    [g.stat('Up', 'Whether Prometheus scraped the instance.', [g.target(metric('up'), '{{instance}}')], mappings=g.valueMapping({ '0': ['down', 'red'], '1': ['up', 'green'] })), 6, 4],
    [g.stat('Synced', 'Whether every watch of the instance completed its first list.', [g.target(metric('kube_event_metrics_synced'), '{{instance}}')], mappings=g.valueMapping({ '0': ['syncing', 'orange'], '1': ['synced', 'green'] })), 6, 4],
    [g.stat('Leader', 'The instance that watches and exports Events; the others stand by.', [g.target(metric('kube_event_metrics_leader'), '{{instance}}')], mappings=g.valueMapping({ '0': ['standby', 'blue'], '1': ['leader', 'green'] })), 6, 4],
    [g.stat('Version', "The exporter's version.", [g.target('count by (version) (%s)' % metric('kube_event_metrics_build_info'), '{{version}}')]), 6, 4],

    [g.gauge('Series of the limit', 'Exported event series as a share of --max-series; beyond it new label sets fold into one series.', [g.target('max by (instance) (%s / %s)' % [metric('kube_event_metrics_series'), metric('kube_event_metrics_series_limit')], '{{instance}}')], 'percentunit', 1, [[0.9, 'orange'], [1, 'red']]), 6, 6],
    [g.stat('Since last update', 'Seconds since the last object from the API server.', [g.target('time() - %s and %s > 0' % [metric('kube_event_metrics_last_update_timestamp_seconds'), metric('kube_event_metrics_last_update_timestamp_seconds')], '{{instance}}')], 's'), 6, 6],
    [g.timeseries('Series vs limit', 'Exported event series and the --max-series limit.', [
      g.target(metric('kube_event_metrics_series'), 'series {{instance}}'),
      g.target(metric('kube_event_metrics_series_limit'), 'limit {{instance}}', ref='B'),
    ]), 12, 6],

    [g.timeseries('Watch updates', 'Objects received per second (list items and watch events).', [g.target(perSecond('kube_event_metrics_watch_updates_total'), '{{instance}}')], 'ops'), 12, 8],
    [g.timeseries('Watch errors and relists', 'Watch errors and relists per second.', [
      g.target(perSecond('kube_event_metrics_watch_errors_total'), 'errors {{instance}}'),
      g.target(perSecond('kube_event_metrics_relists_total'), 'relists {{instance}}', ref='B'),
    ], 'ops'), 12, 8],
    [g.timeseries('Folded occurrences', 'Occurrences counted into folded series per second.', [g.target(perSecond('kube_event_metrics_folded_total'), '{{instance}}')], 'ops'), 12, 8],
    [g.timeseries('Tracked events', 'Live Events the ledger remembers.', [g.target(metric('kube_event_metrics_tracked_events'), '{{instance}}')]), 12, 8],
    [g.timeseries('Malformed objects and count decreases', 'Objects skipped as malformed, and updates whose count went down, per second.', [
      g.target(perSecond('kube_event_metrics_malformed_objects_total'), 'malformed {{instance}}'),
      g.target(perSecond('kube_event_metrics_count_decreases_total'), 'decreases {{instance}}', ref='B'),
    ], 'ops'), 12, 8],
    [g.timeseries('Scrape duration', 'How long Prometheus takes to scrape the exporter.', [g.target(metric('scrape_duration_seconds'), '{{instance}}')], 's'), 12, 8],
    [g.timeseries('CPU', 'CPU seconds used per second.', [g.target('rate(%s[$__rate_interval])' % metric('process_cpu_seconds_total'), '{{instance}}')], 'percentunit'), 12, 8],
    [g.timeseries('Memory', 'Resident memory.', [g.target(metric('process_resident_memory_bytes'), '{{instance}}')], 'bytes'), 12, 8],
  ]),

  grafanaDashboards+:: {
    'kube-event-metrics-health.json': g.dashboard('kube-event-metrics-health', 'kube-event-metrics health', 'The exporter itself: watches, cardinality, resources.', config, variables, annotations, panels),
  },
}
