// Everything a user tunes. Override with `mixin { _config+:: { ... } }`; an alert's fields merge,
// so `alerts+: { KubeEventFailedMount+: { threshold: 2 } }` changes one number and keeps the rest.
//
// The event alerts share one shape: occurrences of a label selection in a trailing `window`,
// summed per cluster (and namespace where `perNamespace`), at least `threshold`, for `for`.
// Why the numbers are what they are (the recorders' spam filter, back-offs and heartbeats) is in
// docs/runbooks.md; tools/alert-scenarios.py proves them on incident and routine scenarios.
{
  _config+:: {
    // Selects our scrape job in every rule and dashboard query.
    jobSelector: 'job="kube-event-metrics"',
    // The label that tells clusters apart in a Thanos/Mimir ruler or a shared Grafana. Every
    // aggregation keeps it, so rules stay correct with one Prometheus per cluster (no such label:
    // it is simply absent) and with one ruler over many.
    clusterLabel: 'cluster',
    // Whether dashboards show the cluster picker (it always filters).
    showMultiCluster: true,
    runbookURLPattern: 'https://github.com/kube-event-metrics/kube-event-metrics/blob/main/docs/runbooks.md#%s',
    // The `source` kube-scheduler writes FailedScheduling with (its reportingController); other
    // schedulers and Karpenter write their own FailedScheduling and are not counted.
    schedulerSource: 'default-scheduler',
    // The scheduler's and cluster-autoscaler's message classes (src/classify.rs), by what fixes
    // them: capacity (add nodes, free resources) or configuration (the pod asks for what no node
    // offers). The alerts that keep `class` put the matching one in their `cause` label.
    schedulingCauses: {
      capacity: ['insufficient-cpu', 'insufficient-memory', 'insufficient-ephemeral-storage', 'too-many-pods', 'insufficient-resource', 'insufficient-storage', 'node-not-ready', 'node-unschedulable', 'volume-limit', 'host-port', 'no-nodes', 'max-node-group-size', 'scale-up-backoff'],
      configuration: ['untolerated-taint', 'node-affinity', 'pod-affinity', 'topology-spread', 'volume-node-affinity', 'unbound-pvc', 'node-name'],
    },
    // Window of the recording rules the dashboards read.
    recordingWindow: '5m',
    // Dashboard defaults.
    dashboardTags: ['kubernetes', 'events', $._config.dashboardLinkTag],
    // The tag the dashboards find each other by (their links menu).
    dashboardLinkTag: 'kube-event-metrics',
    dashboardRefresh: '1m',
    dashboardTimeFrom: 'now-6h',

    alerts: {
      KubeEventCrashLoopBackOff: {
        enabled: true,
        selector: 'reason="BackOff",type="Warning",kind="Pod",source="kubelet"',
        perNamespace: true,
        window: '15m',
        threshold: 1,
        'for': '20m',
        severity: 'warning',
      },
      KubeEventImagePullBackOff: {
        enabled: true,
        // "Back-off pulling image" is the Normal BackOff; `Failed` also carries config errors.
        selector: 'reason="BackOff",type="Normal",kind="Pod",source="kubelet"',
        perNamespace: true,
        window: '15m',
        threshold: 1,
        'for': '15m',
        severity: 'warning',
      },
      KubeEventFailedMount: {
        enabled: true,
        selector: 'reason=~"FailedMount|FailedAttachVolume",type="Warning"',
        perNamespace: true,
        window: '15m',
        threshold: 1,
        'for': '20m',
        severity: 'warning',
      },
      KubeEventProbeFailures: {
        enabled: true,
        selector: 'reason="Unhealthy",type="Warning",source="kubelet"',
        perNamespace: true,
        window: '15m',
        threshold: 1,
        'for': '1h',
        severity: 'warning',
      },
      KubeEventEvictions: {
        enabled: true,
        // Kubelet evictions under node pressure only: Karpenter's and the cluster autoscaler's
        // consolidation evictions are Normal and come from other sources.
        selector: 'reason="Evicted",type="Warning",kind="Pod",source="kubelet"',
        perNamespace: true,
        window: '30m',
        threshold: 3,
        'for': '0m',
        severity: 'warning',
      },
      KubeEventFailedScheduling: {
        enabled: true,
        selector: 'reason="FailedScheduling",type="Warning",kind="Pod",source="%s"' % $._config.schedulerSource,
        perNamespace: true,
        // Longer than the 30-minute series heartbeat, so a pod that stays unschedulable never
        // leaves the window; `for` longer than a pod that did get scheduled can keep it there: its
        // series is finished (final count written) 6-12 min after its last attempt, so a pod
        // pending 4 minutes holds the window for at most 4 + 12 + 35 = 51 minutes.
        window: '35m',
        threshold: 1,
        'for': '55m',
        severity: 'warning',
        // One alert per class, with its cause: out of capacity, or a workload mis-specified.
        byClass: true,
      },
      KubeEventNotTriggerScaleUp: {
        enabled: true,
        selector: 'reason="NotTriggerScaleUp",kind="Pod",source="cluster-autoscaler"',
        perNamespace: true,
        window: '15m',
        threshold: 1,
        'for': '20m',
        severity: 'warning',
        byClass: true,
      },
      KubeEventFailedCreate: {
        enabled: true,
        selector: 'reason="FailedCreate",type="Warning"',
        perNamespace: true,
        // The controllers retry with a per-object back-off that grows to 1000 s (16.7 min).
        window: '20m',
        threshold: 1,
        'for': '25m',
        severity: 'warning',
      },
      KubeEventHPAMetricsUnavailable: {
        enabled: true,
        selector: 'reason=~"FailedGetResourceMetric|FailedGetContainerResourceMetric|FailedGetPodsMetric|FailedGetObjectMetric|FailedGetExternalMetric|FailedComputeMetricsReplicas",kind="HorizontalPodAutoscaler"',
        perNamespace: true,
        window: '15m',
        threshold: 1,
        'for': '20m',
        severity: 'warning',
      },
      KubeEventProvisioningFailed: {
        enabled: true,
        // The provisioner records "Provisioning" before every attempt and shares one spam-filter
        // bucket per claim between both reasons: once the burst is spent each refilled token goes
        // to "Provisioning", so a claim that keeps failing stops writing ProvisioningFailed after
        // about 30 minutes. A claim that provisions writes "Provisioning" once.
        selector: 'reason=~"ProvisioningFailed|Provisioning",kind="PersistentVolumeClaim"',
        perNamespace: true,
        window: '15m',
        threshold: 1,
        'for': '20m',
        severity: 'warning',
      },
      KubeEventLoadBalancerSyncFailed: {
        enabled: true,
        // Like provisioning: "EnsuringLoadBalancer" before each attempt takes the refilled tokens.
        selector: 'reason=~"SyncLoadBalancerFailed|EnsuringLoadBalancer",kind="Service"',
        perNamespace: true,
        window: '15m',
        threshold: 1,
        'for': '20m',
        severity: 'warning',
      },
      KubeEventFailedCreatePodSandBox: {
        enabled: true,
        selector: 'reason="FailedCreatePodSandBox",type="Warning",source="kubelet"',
        perNamespace: true,
        window: '15m',
        threshold: 1,
        'for': '20m',
        severity: 'warning',
      },
      KubeEventNodesNotReady: {
        enabled: true,
        // One occurrence per node that turns NotReady (the node lifecycle controller records the
        // transition once); a rolling drain or scale-down loses nodes one at a time.
        selector: 'reason="NodeNotReady",kind="Node",source="node-controller"',
        perNamespace: false,
        window: '5m',
        threshold: 3,
        'for': '0m',
        severity: 'warning',
      },
      KubeEventSystemOOM: {
        enabled: true,
        // The kubelet's SystemOOM is a node-level OOM kill (outside any container's limit);
        // node-problem-detector's OOMKilling also reports every container-limit kill.
        selector: 'reason="SystemOOM",kind="Node",source="kubelet"',
        perNamespace: false,
        window: '15m',
        threshold: 1,
        'for': '0m',
        severity: 'warning',
      },
      KubeEventWarningBurst: {
        enabled: true,
        // Warnings per second over `window`, above `threshold` and `factor` times the rate of the
        // `baseline` that ended `baselineOffset` ago.
        window: '10m',
        threshold: 1,
        factor: 10,
        baseline: '1h',
        baselineOffset: '30m',
        'for': '10m',
        severity: 'info',
      },

      KubeEventMetricsDown: { enabled: true, 'for': '5m', severity: 'warning' },
      KubeEventMetricsAbsent: { enabled: true, 'for': '5m', severity: 'critical' },
      KubeEventMetricsLeaders: { enabled: true, 'for': '5m', severity: 'warning' },
      KubeEventMetricsNotSynced: { enabled: true, 'for': '15m', severity: 'warning' },
      KubeEventMetricsBlind: {
        enabled: true,
        // No object from the API server for `staleAfterSeconds` while its watch failed in that
        // time: kube's watcher retries every 30 s at most, so a revoked RBAC role fails ~20 times
        // in 10 min, never the 20+ an error-rate threshold would need, and `synced` stays 1.
        staleAfterSeconds: 600,
        'for': '5m',
        severity: 'warning',
      },
      KubeEventMetricsSeriesNearLimit: { enabled: true, ratio: 0.9, 'for': '15m', severity: 'warning' },
      KubeEventMetricsSeriesFolded: { enabled: true, window: '30m', 'for': '5m', severity: 'info' },
    },
  },
}
