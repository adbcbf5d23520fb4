// Recording rules behind the dashboards: occurrences per second, first-occurrence aware (the same
// expression as the alerts), so a panel over 30 days reads a few series per label set, and a
// dashboard total agrees with what an alert counted.
local promql = import '../lib/promql.libsonnet';

{
  local config = $._config,
  local cluster = config.clusterLabel,
  local window = config.recordingWindow,
  local seconds = promql.seconds(window),

  // Name of the recording rule that keeps `labels` (cluster first), per the level:metric:operation
  // convention.
  eventRateRecord(labels):: '%s:kube_events:rate%s' % [std.join('_', [cluster] + labels), window],

  local byLabels = ['namespace', 'kind', 'reason', 'type', 'source', 'class'],

  prometheusRules+:: {
    groups+: [
      {
        name: 'kube-event-metrics.rules',
        rules: [
          {
            record: $.eventRateRecord(byLabels),
            expr: promql.sumBy([cluster] + byLabels, promql.occurrences(promql.events(config, ''), window)) + '\n/ %d' % seconds,
          },
          {
            // The cluster-wide view by reason reads this one: far fewer series than per namespace.
            record: $.eventRateRecord(['reason', 'type']),
            expr: 'sum by (%s) (%s)' % [std.join(', ', [cluster, 'reason', 'type']), $.eventRateRecord(byLabels)],
          },
        ],
      },
    ],
  },
}
