// "Kubernetes Events": from "something is wrong" to where, read from the recording rule (cheap
// over 30 days, and counting what the alerts count, first occurrences included).
local g = import '../lib/grafana.libsonnet';

{
  local config = $._config,
  local cluster = config.clusterLabel,
  local labels = ['namespace', 'kind', 'reason', 'type', 'source', 'class'],
  local byLabels = std.join(', ', labels),
  local record = $.eventRateRecord(labels),
  local window = config.recordingWindow,
  local windowSeconds = (import '../lib/promql.libsonnet').seconds(window),

  local pickers = '%s=~"$cluster",namespace=~"$namespace",kind=~"$kind",reason=~"$reason",type=~"$type",source=~"$source"' % cluster,
  local rates(extra='') = '%s{%s%s}' % [record, pickers, extra],

  // Occurrences in `range`: the recorded rate sampled once per window tiles the time, so each
  // occurrence is counted once (whatever the evaluation interval) and a sparse reason is not
  // lost between samples as it would be by reading the rate at each step.
  local occurrences(by, range, extra='', offset='') =
    '%s (sum_over_time(%s[%s:%s]%s)) * %d' % [if by == '' then 'sum' else 'sum by (%s)' % by, rates(extra), range, window, offset, windowSeconds],

  // Occurrences per minute at each step: the average over the step, so a step longer than the
  // window still counts every occurrence in it.
  local perMinute(by, extra='') = 'sum by (%s) (avg_over_time(%s[$__rate_interval])) * 60' % [by, rates(extra)],

  // The top `k` of the whole range, ranked once at its end: a top 10 re-picked at every step
  // draws a different ten lines at each point.
  local topOverRange(k, by, extra='') =
    '%s\nand on (%s)\ntopk(%d, sum by (%s) (sum_over_time(%s[$__range:%s] @ end())))' % [perMinute(by, extra), by, k, by, rates(extra), window],

  local dashboardURL = '/d/%s?${__url_time_range}&${datasource:queryparam}&${cluster:queryparam}' % $.overviewUID,
  local filterLink(column) = [{
    title: 'Only this %s' % column,
    url: dashboardURL + '&var-%s=${__data.fields.%s}' % [column, column],
  }],

  // ALERTS carries no annotations, so each alert's runbook becomes a label of its own series.
  local ourAlerts = [rule for group in $.prometheusAlerts.groups for rule in group.rules],
  local firingWithRunbooks = std.join('\nor\n', [
    'label_replace(ALERTS{alertname="%s",alertstate="firing",%s=~"$cluster"}, "runbook_url", "%s", "", "")' % [rule.alert, cluster, rule.annotations.runbook_url]
    for rule in ourAlerts
  ]),
  local ourFiringAlerts = 'ALERTS{alertname=~"%s",alertstate="firing",%s=~"$cluster"}' % [std.join('|', [rule.alert for rule in ourAlerts]), cluster],

  overviewUID:: 'kube-events-overview',

  local events = 'kube_events_total{%s,%s=~"$cluster"' % [config.jobSelector, cluster],
  local variables = [
    g.datasourceVariable(),
    g.queryVariable('cluster', 'Cluster', 'label_values(kube_event_metrics_build_info{%s}, %s)' % [config.jobSelector, cluster], multi=false, hide=!config.showMultiCluster),
    // Each picker offers only what the ones before it leave.
    g.queryVariable('namespace', 'Namespace', 'label_values(%s}, namespace)' % events),
    g.queryVariable('kind', 'Kind', 'label_values(%s,namespace=~"$namespace"}, kind)' % events),
    g.queryVariable('reason', 'Reason', 'label_values(%s,namespace=~"$namespace",kind=~"$kind"}, reason)' % events),
    g.queryVariable('type', 'Type', 'label_values(%s,namespace=~"$namespace",kind=~"$kind",reason=~"$reason"}, type)' % events),
    g.queryVariable('source', 'Source', 'label_values(%s,namespace=~"$namespace",kind=~"$kind",reason=~"$reason",type=~"$type"}, source)' % events),
  ],

  local annotations = [
    g.annotation('Our alerts', ourFiringAlerts, '{{alertname}}', '{{namespace}}', 'red'),
    g.annotation('Exporter restarts', 'changes(process_start_time_seconds{%s,%s=~"$cluster"}[5m]) > 0' % [config.jobSelector, cluster], 'exporter restart', '{{instance}}', 'orange'),
  ],

  local panels = g.layout([
    [g.stat('Occurrences in range', 'Event occurrences in the time range (first occurrences included).', [g.target(occurrences('', '$__range'), instant=true)]), 6, 4],
    [g.stat('Warnings in range', 'Warning occurrences in the time range.', [g.target(occurrences('', '$__range', ',type="Warning"'), instant=true)]), 6, 4],
    [g.stat('Alerts firing', 'Alerts of the kube-event-metrics mixin firing now.', [g.target('count(%s) or vector(0)' % ourFiringAlerts, instant=true)]), 6, 4],
    [g.stat('Series', 'kube_events_total series the exporter serves.', [g.target('sum(kube_event_metrics_series{%s,%s=~"$cluster"})' % [config.jobSelector, cluster], instant=true)]), 6, 4],

    [g.timeseries('Occurrences by type', 'Occurrences per minute, by type.', [g.target(perMinute('type'), '{{type}}')], 'opm', bars=true, stack=true), 12, 8],
    [
      g.timeseries('Warnings by reason: now and yesterday', 'Cluster-wide Warning occurrences per minute of the selected reasons (the namespace, kind and source pickers do not apply), and the same time a day before, dashed.', [
        g.target('sum(avg_over_time(%s{%s=~"$cluster",reason=~"$reason",type="Warning"}[$__rate_interval])) * 60' % [$.eventRateRecord(['reason', 'type']), cluster], 'now'),
        g.target('sum(avg_over_time(%s{%s=~"$cluster",reason=~"$reason",type="Warning"}[$__rate_interval] offset 1d)) * 60' % [$.eventRateRecord(['reason', 'type']), cluster], 'yesterday', ref='B'),
      ], 'opm') {
        fieldConfig+: { overrides+: [{ matcher: { id: 'byName', options: 'yesterday' }, properties: [{ id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } }] }] },
      },
      12,
      8,
    ],

    [g.timeseries('Why: classes of the selected reasons', 'Occurrences per minute by reason and class: what the message says went wrong (docs/classes.md). An empty class is a message the catalogue does not know.', [g.target(perMinute('reason, class'), '{{reason}} {{class}}')], 'opm', bars=true, stack=true), 12, 9],
    [
      g.timeseries('Occurrences, with the object of each', 'Occurrences per minute by reason, from the raw counters: each point carries an exemplar naming the object (kind/name) and node of its latest occurrence. Hover a diamond.', [
        g.target('sum by (reason) (rate(kube_events_total{%s,%s}[$__rate_interval])) * 60' % [config.jobSelector, pickers], '{{reason}}', exemplar=true),
      ], 'opm'),
      12,
      9,
    ],
    [g.timeseries('Top Warning reasons', 'The ten Warning reasons with the most occurrences over the range, per minute.', [g.target(topOverRange(10, 'reason', ',type="Warning"'), '{{reason}}')], 'opm'), 12, 9],
    [g.timeseries('Top namespaces', 'The ten namespaces with the most occurrences over the range, per minute.', [g.target(topOverRange(10, 'namespace'), '{{namespace}}')], 'opm'), 12, 9],
    [g.timeseries('By kind', 'Occurrences per minute by kind of object.', [g.target(perMinute('kind'), '{{kind}}')], 'opm'), 12, 9],
    [g.timeseries('Top sources', 'The ten reporting components with the most occurrences over the range, per minute.', [g.target(topOverRange(10, 'source'), '{{source}}')], 'opm'), 12, 9],

    [
      g.table('Top label sets over the range', 'The label sets with the most occurrences in the time range. A namespace or reason opens this dashboard filtered on it.', [
        g.target('topk(25, %s) > 0' % occurrences(byLabels, '$__range'), instant=true, table=true),
      ], links={ namespace: filterLink('namespace'), reason: filterLink('reason') }, rename={ Value: 'Occurrences' }),
      24,
      10,
    ],
    [
      g.table('New in the last hour', 'Label sets with occurrences in the last hour and none in the day before it.', [
        g.target('(%s > 0)\nunless on (%s)\n(%s > 0)' % [occurrences(byLabels, '1h'), byLabels, occurrences(byLabels, '1d', offset=' offset 1h')], instant=true, table=true),
      ], links={ namespace: filterLink('namespace'), reason: filterLink('reason') }, rename={ Value: 'Last hour' }),
      12,
      8,
    ],
    [
      g.table('Our alerts firing', 'Firing alerts of the mixin; the runbook says what to do.', [
        g.target(firingWithRunbooks, instant=true, table=true),
      ], links={
        runbook_url: [{ title: 'Runbook', url: '${__value.raw}', targetBlank: true }],
        namespace: filterLink('namespace'),
      }) {
        transformations: [{ id: 'organize', options: { excludeByName: { Time: true, Value: true, __name__: true, alertstate: true } } }],
      },
      12,
      8,
    ],
  ]),

  grafanaDashboards+:: {
    'kube-events-overview.json': g.dashboard($.overviewUID, 'Kubernetes Events', 'Kubernetes Event occurrences counted by kube-event-metrics.', config, variables, annotations, panels),
  },
}
