// Alerting rules. The numbers come from _config.alerts; the texts say what a human does.
local promql = import '../lib/promql.libsonnet';

{
  local config = $._config,
  local alertConfig = config.alerts,
  local cluster = config.clusterLabel,

  local runbook(name) = config.runbookURLPattern % std.asciiLower(name),

  local rule(name, expr, texts) = {
    alert: name,
    expr: expr,
    'for': alertConfig[name]['for'],
    labels: { severity: alertConfig[name].severity },
    annotations: {
      summary: texts.summary,
      description: texts.description,
      runbook_url: runbook(name),
    },
  },

  // The shared shape of the event alerts (see config.libsonnet).
  local byClass(a) = std.get(a, 'byClass', false),
  local eventRule(name, texts) =
    local a = alertConfig[name];
    local by = [cluster] + (if a.perNamespace then ['namespace'] else []) + (if byClass(a) then ['class'] else []);
    local expr = promql.sumBy(by, promql.occurrences(promql.events(config, a.selector), a.window)) + ' >= %d' % a.threshold;
    rule(name, if byClass(a) then withCause(expr) else expr, texts),

  // label_replace matches the whole value, so an unknown (empty) class gets no cause.
  local withCause(expr) = std.foldl(
    function(inner, cause)
      'label_replace(\n%s,\n"cause", "%s", "class", "%s")' % [inner, cause, std.join('|', config.schedulingCauses[cause])],
    ['capacity', 'configuration'],
    '(\n' + expr + '\n)'
  ),
  // What the class says, where the alert keeps it.
  local why = '{{ with $labels.class }} Class: {{ . }}.{{ end }}{{ with $labels.cause }} Cause: {{ . }} (see the runbook).{{ end }}',

  // Go templates, rendered by Prometheus: the cluster is named where the series carry its label.
  local ofCluster = '{{ with $labels.%s }} of cluster {{ . }}{{ end }}' % cluster,
  local where(a) =
    if a.perNamespace then 'in namespace {{ $labels.namespace }}' + ofCluster
    else '{{ with $labels.%s }}in cluster {{ . }}{{ else }}in the cluster{{ end }}' % cluster,

  local eventTexts = {
    KubeEventCrashLoopBackOff: {
      summary: 'Containers in {{ $labels.namespace }} are crash-looping.',
      description: 'The kubelet has kept reporting "Back-off restarting failed container" (BackOff, type Warning) %(where)s without a %(window)s pause for %(for)s: a container keeps exiting and is restarted with a growing back-off.',
    },
    KubeEventImagePullBackOff: {
      summary: 'Images cannot be pulled in {{ $labels.namespace }}.',
      description: 'The kubelet has kept reporting "Back-off pulling image" (BackOff, type Normal) %(where)s without a %(window)s pause for %(for)s: a pod cannot start because its image does not pull.',
    },
    KubeEventFailedMount: {
      summary: 'Volumes cannot be mounted in {{ $labels.namespace }}.',
      description: 'FailedMount or FailedAttachVolume has kept occurring %(where)s without a %(window)s pause for %(for)s: pods wait in ContainerCreating.',
    },
    KubeEventProbeFailures: {
      summary: 'Probes keep failing in {{ $labels.namespace }}.',
      description: 'Liveness, readiness or startup probes (Unhealthy) have kept failing %(where)s without a %(window)s pause for %(for)s. The count cannot tell one pod from many: the dashboard and kubectl say which.',
    },
    KubeEventEvictions: {
      summary: 'The kubelet is evicting pods in {{ $labels.namespace }}.',
      description: 'Kubelets evicted at least %(threshold)d pods %(where)s in the last %(window)s (Evicted, type Warning): nodes ran short of memory, disk or PIDs.',
    },
    KubeEventFailedScheduling: {
      summary: 'Pods in {{ $labels.namespace }} stay unschedulable{{ with $labels.cause }} ({{ . }}){{ end }}.',
      description: 'kube-scheduler has kept recording FailedScheduling %(where)s without a %(window)s pause for %(for)s: it repeats the event of a pod that stays Pending on a 30-minute heartbeat, so at least one pod has waited that long.' + why,
    },
    KubeEventNotTriggerScaleUp: {
      summary: 'The cluster autoscaler cannot help pending pods in {{ $labels.namespace }}{{ with $labels.cause }} ({{ . }}){{ end }}.',
      description: 'cluster-autoscaler has kept reporting NotTriggerScaleUp %(where)s without a %(window)s pause for %(for)s: no node group could fit the pending pods, so they wait until a human changes the pods or the node groups.' + why,
    },
    KubeEventFailedCreate: {
      summary: 'Controllers cannot create pods in {{ $labels.namespace }}.',
      description: 'FailedCreate has kept occurring %(where)s without a %(window)s pause for %(for)s: a ReplicaSet, Job, StatefulSet or DaemonSet cannot create its pods (quota, admission webhook, Pod Security).',
    },
    KubeEventHPAMetricsUnavailable: {
      summary: 'Horizontal pod autoscalers in {{ $labels.namespace }} cannot read their metrics.',
      description: 'HorizontalPodAutoscalers have kept failing to get or compute metrics %(where)s without a %(window)s pause for %(for)s: they do not scale while it lasts.',
    },
    KubeEventProvisioningFailed: {
      summary: 'Volumes cannot be provisioned in {{ $labels.namespace }}.',
      description: 'ProvisioningFailed has kept occurring for PersistentVolumeClaims %(where)s without a %(window)s pause for %(for)s: their pods stay Pending.',
    },
    KubeEventLoadBalancerSyncFailed: {
      summary: 'Load balancers cannot be synced in {{ $labels.namespace }}.',
      description: 'The service controller has kept failing to sync load balancers (SyncLoadBalancerFailed) %(where)s without a %(window)s pause for %(for)s: Services of type LoadBalancer are not reachable or do not follow their endpoints.',
    },
    KubeEventFailedCreatePodSandBox: {
      summary: 'Pod sandboxes cannot be created in {{ $labels.namespace }}.',
      description: 'FailedCreatePodSandBox has kept occurring %(where)s without a %(window)s pause for %(for)s, usually a CNI or container runtime problem on the nodes.',
    },
    KubeEventNodesNotReady: {
      summary: 'Several nodes became NotReady at once.',
      description: 'The node lifecycle controller marked at least %(threshold)d nodes NotReady %(where)s within %(window)s: more than the one-at-a-time of a drain or scale-down.',
    },
    KubeEventSystemOOM: {
      summary: 'Nodes ran out of memory.',
      description: 'Kubelets reported SystemOOM %(where)s in the last %(window)s: the kernel killed processes outside any container limit, so the node itself is short of memory.',
    },
  },

  // Descriptions state the window and `for` of the rendered rule, so a tuned rule explains itself.
  local describe(name) =
    local a = alertConfig[name];
    eventTexts[name] {
      description: super.description % { where: where(a), window: a.window, 'for': a['for'], threshold: a.threshold },
    },

  local enabled(rules) = [r for r in rules if alertConfig[r.alert].enabled],

  local burst = alertConfig.KubeEventWarningBurst,
  local warnings = promql.events(config, 'type="Warning"'),
  local warningRate(window, offset) =
    'sum by (%s, namespace) (rate(%s[%s]%s))' % [cluster, warnings, window, if offset == '' then '' else ' offset ' + offset],

  local blind = alertConfig.KubeEventMetricsBlind,
  local up = 'up{%s}' % config.jobSelector,
  local own(metric) = 'kube_event_metrics_%s{%s}' % [metric, config.jobSelector],
  local instance = '%s, job, instance' % cluster,

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'kube-event-metrics.events',
        rules: enabled([
          eventRule(name, describe(name))
          for name in std.objectFields(eventTexts)
        ] + [
          rule('KubeEventWarningBurst',
               '(\n  %s > %s\n)\nunless\n(\n  %s\n  <=\n  %d * %s\n)' % [
                 warningRate(burst.window, ''), burst.threshold, warningRate(burst.window, ''),
                 burst.factor, warningRate(burst.baseline, burst.baselineOffset),
               ],
               {
                 summary: 'Burst of Warning events in {{ $labels.namespace }}.',
                 description: 'Namespace {{ $labels.namespace }} records more than %s Warning events per second over %s, over %d times its rate in the %s that ended %s ago.' % [
                   burst.threshold, burst.window, burst.factor, burst.baseline, burst.baselineOffset,
                 ],
               }),
        ]),
      },
      {
        name: 'kube-event-metrics.exporter',
        rules: enabled([
          rule('KubeEventMetricsDown', '%s == 0' % up, {
            summary: 'A kube-event-metrics instance is down.',
            description: 'Prometheus has failed to scrape {{ $labels.instance }} for %s. With leader election a standby takes over; without it the Event counters are blind.' % alertConfig.KubeEventMetricsDown['for'],
          }),
          rule('KubeEventMetricsAbsent', 'absent(%s == 1)' % up, {
            summary: 'No kube-event-metrics instance is up.',
            description: 'No target of %s has been scraped successfully for %s: the Event counters and every alert built on them are blind.' % [config.jobSelector, alertConfig.KubeEventMetricsAbsent['for']],
          }),
          rule('KubeEventMetricsLeaders',
               'sum by (%s, job) (%s) != 1' % [cluster, own('leader')],
               {
                 summary: 'kube-event-metrics does not have exactly one leader.',
                 description: 'Job {{ $labels.job }}%s has had a number of leaders other than one for %s: with none nothing is counted, with two the series are exported twice.' % [ofCluster, alertConfig.KubeEventMetricsLeaders['for']],
               }),
          rule('KubeEventMetricsNotSynced',
               '(%s == 0)\nand on (%s)\n(%s == 1)' % [own('synced'), instance, own('leader')],
               {
                 summary: 'kube-event-metrics has not completed its first list of Events.',
                 description: 'Instance {{ $labels.instance }} leads but has not completed the first list of every watch for %s, so it counts nothing yet.' % alertConfig.KubeEventMetricsNotSynced['for'],
               }),
          rule('KubeEventMetricsBlind',
               '(time() - %s > %d)\nand on (%s)\n(increase(%s[%s]) > 0)\nand on (%s)\n(%s == 1)' % [
                 own('last_update_timestamp_seconds'), blind.staleAfterSeconds,
                 instance, own('watch_errors_total'), '%ds' % blind.staleAfterSeconds, instance, own('leader'),
               ],
               {
                 summary: 'kube-event-metrics receives nothing while its watch fails.',
                 description: 'The leader {{ $labels.instance }} has received no object from the API server for %d s while its watch keeps failing: it counts nothing, though it still reports synced. Its logs say why (RBAC, API server overload, network).' % blind.staleAfterSeconds,
               }),
          rule('KubeEventMetricsSeriesNearLimit',
               '%s\n/ on (%s)\n%s\n> %s' % [own('series'), instance, own('series_limit'), alertConfig.KubeEventMetricsSeriesNearLimit.ratio],
               {
                 summary: 'kube-event-metrics is close to --max-series.',
                 description: 'Instance {{ $labels.instance }} has served more than %d%% of its --max-series for %s; beyond the limit new label sets are folded into namespace="_other_". Raise --max-series or filter noisy reasons.' % [alertConfig.KubeEventMetricsSeriesNearLimit.ratio * 100, alertConfig.KubeEventMetricsSeriesNearLimit['for']],
               }),
          rule('KubeEventMetricsSeriesFolded',
               'sum by (%s) (increase(%s[%s])) > 0' % [instance, own('folded_total'), alertConfig.KubeEventMetricsSeriesFolded.window],
               {
                 summary: 'kube-event-metrics folds new label sets.',
                 description: 'Instance {{ $labels.instance }} counted occurrences into folded series (namespace="_other_") in the last %s: it reached --max-series.' % alertConfig.KubeEventMetricsSeriesFolded.window,
               }),
        ]),
      },
    ],
  },
}
