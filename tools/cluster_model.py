"""The components whose Events our alerts are about, driving tools/recorder_model.py.

Timings are the components' own: the kubelet's container and image back-off (10 s doubling to
5 min, pkg/kubelet/kuberuntime), its pod-worker requeue on error (10 s, jitter 0.5), the volume
manager's mount retry (500 ms doubling to 2 min 2 s) and its 2-minute wait for volumes per sync,
probes every periodSeconds (10 s), kube-scheduler's pod back-off (1 s doubling to 10 s) and its
retries on cluster events, the controllers' workqueue back-off (5 ms doubling to 1000 s), the
HPA's 15 s sync, the external provisioner's and the service controller's retry back-off (1 s and
5 s doubling to 5 min), and the node lifecycle controller's 40 s grace period.
"""
from recorder_model import Clock, Exporter, LegacyRecorder, Obj, SeriesRecorder

POD_REQUEUE = 10
POD_REQUEUE_JITTER = 0.5


class Cluster:
    def __init__(self, until, seed=1):
        self.until = until
        self.clock = Clock(seed)
        self.exporter = Exporter()
        self.recorders = {}
        self.scheduler = SeriesRecorder(self.clock, self.exporter, "default-scheduler", until)

    def legacy(self, component, host=""):
        key = (component, host)
        if key not in self.recorders:
            self.recorders[key] = LegacyRecorder(self.clock, self.exporter, component, host)
        return self.recorders[key]

    def kubelet(self, node):
        return self.legacy("kubelet", node)

    def at(self, t, callback):
        self.clock.at(t, callback)

    def every(self, start, period, callback, until, jitter=0.0):
        self.clock.every(start, period, callback, min(until, self.until), jitter)

    def run(self):
        self.clock.run(self.until)


def pod_syncs(c, start, until, callback):
    """The pod worker re-syncing a pod whose last sync failed."""
    c.every(start, POD_REQUEUE, callback, until, jitter=POD_REQUEUE_JITTER)


def starts(c, ns, pod, node, t, image="app:1", ready_after=20, readiness_period=10):
    """A pod that schedules and starts normally; readiness fails until the app is up."""
    obj = Obj("Pod", ns, pod)
    c.scheduler.emit(t, obj, "Normal", "Scheduled", f"Successfully assigned {ns}/{pod} to {node}", "Binding")
    kubelet = c.kubelet(node)
    kubelet.emit(t + 1, obj, "Normal", "Pulling", f'Pulling image "{image}"')
    kubelet.emit(t + 4, obj, "Normal", "Pulled", f'Successfully pulled image "{image}" in 3s')
    kubelet.emit(t + 4, obj, "Normal", "Created", "Created container app")
    kubelet.emit(t + 5, obj, "Normal", "Started", "Started container app")
    probe = t + 5 + readiness_period
    while probe < t + 5 + ready_after:
        kubelet.emit(probe, obj, "Warning", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503")
        probe += readiness_period


def stops(c, ns, pod, node, t):
    c.kubelet(node).emit(t, Obj("Pod", ns, pod), "Normal", "Killing", "Stopping container app")


def crash_loop(c, ns, pod, node, start, end, run_for=5):
    kubelet = c.kubelet(node)
    obj = Obj("Pod", ns, pod)
    state = {"backoff": 10}

    def run(t):
        if t > end:
            return
        kubelet.emit(t, obj, "Normal", "Pulled", 'Container image "app:1" already present on machine')
        kubelet.emit(t, obj, "Normal", "Created", "Created container app")
        kubelet.emit(t, obj, "Normal", "Started", "Started container app")
        c.at(t + run_for, crashed)

    def crashed(t):
        wait = state["backoff"]
        state["backoff"] = min(300, wait * 2)
        restart = t + wait

        def sync(s):
            if s >= restart:
                return False
            kubelet.emit(s, obj, "Warning", "BackOff", f"Back-off restarting failed container app in pod {pod}_{ns}")

        pod_syncs(c, t + 1, min(restart, end), sync)
        c.at(restart, run)

    c.at(start, lambda t: (c.scheduler.emit(t, obj, "Normal", "Scheduled", f"Successfully assigned {ns}/{pod} to {node}", "Binding"), run(t + 2)))


def image_pull_failure(c, ns, pod, node, start, end, image="registry.example/app:v2-typo"):
    kubelet = c.kubelet(node)
    obj = Obj("Pod", ns, pod)
    state = {"backoff": 10}

    def attempt(t):
        if t > end:
            return
        kubelet.emit(t, obj, "Normal", "Pulling", f'Pulling image "{image}"')
        c.at(t + 2, failed)

    def failed(t):
        kubelet.emit(t, obj, "Warning", "Failed", f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed to pull and unpack image "{image}": not found')
        kubelet.emit(t, obj, "Warning", "Failed", "Error: ErrImagePull")
        wait = state["backoff"]
        state["backoff"] = min(300, wait * 2)
        retry = t + wait

        def sync(s):
            if s >= retry:
                return False
            kubelet.emit(s, obj, "Normal", "BackOff", f'Back-off pulling image "{image}"')
            kubelet.emit(s, obj, "Warning", "Failed", "Error: ImagePullBackOff")

        pod_syncs(c, t + 1, min(retry, end), sync)
        c.at(retry, attempt)

    c.at(start, attempt)


def config_error(c, ns, pod, node, start, end):
    """CreateContainerConfigError: the kubelet's `Failed` that is not an image pull."""
    kubelet = c.kubelet(node)
    obj = Obj("Pod", ns, pod)

    def sync(t):
        kubelet.emit(t, obj, "Normal", "Pulled", 'Container image "app:1" already present on machine')
        kubelet.emit(t, obj, "Warning", "Failed", 'Error: configmap "app-config" not found')

    pod_syncs(c, start, end, sync)


def mount_failure(c, ns, pod, node, start, end):
    """A volume from a ConfigMap that does not exist: the pod waits in ContainerCreating."""
    kubelet = c.kubelet(node)
    obj = Obj("Pod", ns, pod)
    state = {"backoff": 0.5}

    def mount(t):
        if t > end:
            return
        kubelet.emit(t, obj, "Warning", "FailedMount", 'MountVolume.SetUp failed for volume "config" : configmap "app-config" not found')
        wait = state["backoff"]
        state["backoff"] = min(122, wait * 2)
        c.at(t + wait, mount)

    def timed_out(t):
        kubelet.emit(t, obj, "Warning", "FailedMount", "Unable to attach or mount volumes: unmounted volumes=[config], unattached volumes=[config kube-api-access]: timed out waiting for the condition")

    c.at(start, mount)
    c.every(start + 120, 120 + POD_REQUEUE, timed_out, end)


def probe_failure(c, ns, pod, node, start, end, probe="Readiness", period=10):
    kubelet = c.kubelet(node)
    obj = Obj("Pod", ns, pod)
    c.every(start, period, lambda t: kubelet.emit(t, obj, "Warning", "Unhealthy", f"{probe} probe failed: HTTP probe failed with statuscode: 503"), end)


def kubelet_evictions(c, ns, pods, node, start, every=10, resource="memory"):
    kubelet = c.kubelet(node)
    kubelet.emit(start, Obj("Node", "", node), "Warning", "EvictionThresholdMet", f"Attempting to reclaim {resource}")
    for i, pod in enumerate(pods):
        t = start + i * every
        obj = Obj("Pod", ns, pod)
        kubelet.emit(t, obj, "Warning", "Evicted", f"The node was low on resource: {resource}. Threshold quantity: 100Mi, available: 80Mi.")
        kubelet.emit(t, obj, "Normal", "Killing", "Stopping container app")


def drain(c, recorder, reason, message, pods_by_ns, node, start, spacing, back_after):
    """A component evicting a node's pods one by one, each coming back elsewhere; returns when the
    last one was evicted."""
    t = start
    for ns, pods in pods_by_ns.items():
        for pod in pods:
            recorder.emit(t, Obj("Pod", ns, pod), "Normal", reason, message)
            stops(c, ns, pod, node, t + 1)
            starts(c, ns, pod + "-r", node + "-other", t + back_after)
            t += spacing
    return t


def karpenter_consolidation(c, pods_by_ns, node, start):
    karpenter = c.legacy("karpenter")
    karpenter.emit(start, Obj("Node", "", node), "Normal", "DisruptionTerminating", "Disrupting Node: Underutilized")
    drain(c, karpenter, "Evicted", "Evicted pod: Underutilized", pods_by_ns, node, start, spacing=2, back_after=30)


def node_not_ready(c, node, t, pods_on_node):
    """The node lifecycle controller after the kubelet stopped posting status (40 s grace)."""
    controller = c.legacy("node-controller")
    controller.emit(t + 40, Obj("Node", "", node), "Normal", "NodeNotReady", f"Node {node} status is now: NodeNotReady")
    for ns, pod in pods_on_node:
        controller.emit(t + 41, Obj("Pod", ns, pod), "Warning", "NodeNotReady", "Node is not ready")


def autoscaler_scale_down(c, node, pods_by_ns, start):
    autoscaler = c.legacy("cluster-autoscaler")
    autoscaler.emit(start, Obj("Node", "", node), "Normal", "ScaleDown", "marked the node as toBeDeleted/unschedulable")
    t = drain(c, autoscaler, "ScaleDown", "deleting pod for node scale down", pods_by_ns, node, start, spacing=1, back_after=20)
    # The instance goes away after the drain; DaemonSet pods stay until then.
    node_not_ready(c, node, t + 30, [("kube-system", f"{d}-{node}") for d in ("kube-proxy", "cni", "node-exporter")])
    c.legacy("node-controller").emit(t + 120, Obj("Node", "", node), "Normal", "RemovingNode", f"Node {node} event: Removing Node {node} from Controller")


def pending_pod(c, ns, pod, start, end, retry_every=15, autoscaler=None, karpenter=False, node="node-new"):
    """A pod kube-scheduler cannot place from `start` until `end` (then it is scheduled).

    The scheduler retries after its back-off once a cluster event may have made room (in a busy
    cluster, a pod deleted anywhere): about every `retry_every` seconds; in a quiet cluster the
    unschedulable queue is flushed every 5 min. `autoscaler`: "helps" (TriggeredScaleUp) or
    "cannot" (NotTriggerScaleUp every 10 s scan).
    """
    obj = Obj("Pod", ns, pod)
    message = "0/500 nodes are available: 500 Insufficient cpu. preemption: 0/500 nodes are available: 500 No preemption victims found for incoming pod."
    state = {"backoff": 1}

    def attempt(t):
        if t >= end:
            return
        c.scheduler.emit(t, obj, "Warning", "FailedScheduling", message, "Scheduling")
        wait = max(state["backoff"], retry_every)
        state["backoff"] = min(10, state["backoff"] * 2)
        c.at(t + wait, attempt)

    c.at(start, attempt)
    if autoscaler == "helps":
        c.at(start + 10, lambda t: c.legacy("cluster-autoscaler").emit(t, obj, "Normal", "TriggeredScaleUp", "pod triggered scale-up: [{ng-1 10->12 (max: 50)}]"))
    elif autoscaler == "cannot":
        c.every(start + 10, 10, lambda t: c.legacy("cluster-autoscaler").emit(t, obj, "Normal", "NotTriggerScaleUp", "pod didn't trigger scale-up: 1 max node group size reached"), end)
    if karpenter:
        c.every(start + 5, 10, lambda t: c.legacy("karpenter").emit(t, obj, "Warning", "FailedScheduling", 'Failed to schedule pod, incompatible with nodepool "default", no instance type satisfied resources'), end)
    if end < c.until:
        c.at(end, lambda t: starts(c, ns, pod, node, t))


def controller_failed_create(c, ns, owner, start, end, kind="ReplicaSet", controller="replicaset-controller"):
    """A controller whose pod creations are denied (quota, webhook); workqueue back-off."""
    retrying_with_backoff(c, c.legacy(controller), Obj(kind, ns, owner), start, end, 0.005, 1000, [
        ("Warning", "FailedCreate", f'Error creating: pods "{owner}-x" is forbidden: exceeded quota: compute, requested: cpu=1, used: cpu=20, limited: cpu=20'),
    ])


def hpa_metrics_failure(c, ns, hpa, start, end):
    recorder = c.legacy("horizontal-pod-autoscaler")
    obj = Obj("HorizontalPodAutoscaler", ns, hpa)

    def sync(t):
        recorder.emit(t, obj, "Warning", "FailedGetResourceMetric", "failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API")
        recorder.emit(t, obj, "Warning", "FailedComputeMetricsReplicas", "invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value")

    c.every(start, 15, sync, end)


def retrying_with_backoff(c, recorder, obj, start, end, initial, cap, attempt_events):
    state = {"backoff": initial}

    def attempt(t):
        if t > end:
            return
        for etype, reason, message in attempt_events:
            recorder.emit(t, obj, etype, reason, message)
        wait = state["backoff"]
        state["backoff"] = min(cap, wait * 2)
        c.at(t + wait, attempt)

    c.at(start, attempt)


def provisioning_failure(c, ns, pvc, start, end):
    """The external provisioner: "Provisioning" before each attempt, then the failure."""
    recorder = c.legacy("ebs.csi.aws.com_ebs-csi-controller-0")
    retrying_with_backoff(c, recorder, Obj("PersistentVolumeClaim", ns, pvc), start, end, 1, 300, [
        ("Normal", "Provisioning", f'External provisioner is provisioning volume for claim "{ns}/{pvc}"'),
        ("Warning", "ProvisioningFailed", 'failed to provision volume with StorageClass "gp3": rpc error: code = Internal desc = UnauthorizedOperation'),
    ])


def load_balancer_failure(c, ns, service, start, end):
    """The service controller: "EnsuringLoadBalancer" before each attempt, then the failure."""
    recorder = c.legacy("service-controller")
    retrying_with_backoff(c, recorder, Obj("Service", ns, service), start, end, 5, 300, [
        ("Normal", "EnsuringLoadBalancer", "Ensuring load balancer"),
        ("Warning", "SyncLoadBalancerFailed", "Error syncing load balancer: failed to ensure load balancer: quota exceeded for resource forwarding-rules"),
    ])


def sandbox_failure(c, ns, pod, node, start, end):
    kubelet = c.kubelet(node)
    obj = Obj("Pod", ns, pod)
    pod_syncs(c, start, end, lambda t: kubelet.emit(t, obj, "Warning", "FailedCreatePodSandBox", 'Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox: plugin type="calico" failed (add): connection refused'))


def container_oom(c, ns, pod, node, t):
    """A container over its memory limit: node-problem-detector and one restart."""
    c.legacy("kernel-monitor", node).emit(t, Obj("Node", "", node), "Warning", "OOMKilling", "Memory cgroup out of memory: Killed process 4242 (java) total-vm:8000000kB")
    kubelet = c.kubelet(node)
    obj = Obj("Pod", ns, pod)
    kubelet.emit(t + 1, obj, "Warning", "BackOff", f"Back-off restarting failed container app in pod {pod}_{ns}")
    kubelet.emit(t + 11, obj, "Normal", "Pulled", 'Container image "app:1" already present on machine')
    kubelet.emit(t + 11, obj, "Normal", "Started", "Started container app")


def system_oom(c, node, t):
    c.legacy("kernel-monitor", node).emit(t, Obj("Node", "", node), "Warning", "OOMKilling", "Out of memory: Killed process 999 (dockerd)")
    c.kubelet(node).emit(t + 1, Obj("Node", "", node), "Warning", "SystemOOM", "System OOM encountered, victim process: dockerd, pid: 999")
