#!/usr/bin/env python3
"""Writes src/source/demo-recording.jsonl: ten minutes of a small cluster's life as a
`kubectl get events -A -w -o json --output-watch-events` stream, one watch event per line.

The objects have the shape real clusters write (see ../shared/fixtures/seed-events.yaml): legacy
core/v1 Events from the kubelet and controllers with `count`, `source.component` and timestamps;
events.k8s.io-style ones from the scheduler with `eventTime`, `series`, `reportingComponent`, an
empty `source` and a null `count`. Run it again after changing the story; the output is committed.
"""
import hashlib
import json
import sys
from datetime import datetime, timedelta, timezone

START = datetime(2026, 11, 20, 14, 0, 0, tzinfo=timezone.utc)
lines = []
objects = {}
resource_version = [812_340]


def ts(seconds):
    return (START + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro(seconds):
    return (START + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def uid_for(name):
    h = hashlib.sha1(name.encode()).hexdigest()
    return f"{h[0:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


def suffix(name):
    return hashlib.sha1(("event/" + name).encode()).hexdigest()[:16]


def emit(kind, obj):
    resource_version[0] += 1
    obj["metadata"]["resourceVersion"] = str(resource_version[0])
    lines.append(json.dumps({"type": kind, "object": obj}, separators=(",", ":")))


def legacy(at, ns, kind, obj_name, reason, etype, component, message, host=None,
           api="v1", field_path=None, count=1, event_ns=None):
    """A core/v1 Event from the legacy recorder; repeats bump count and lastTimestamp."""
    key = (event_ns or ns, kind, obj_name, reason, message)
    if key in objects:
        obj = objects[key]
        obj["count"] = count if count > obj["count"] else obj["count"] + 1
        obj["lastTimestamp"] = ts(at)
        emit("MODIFIED", obj)
        return
    name = f"{obj_name}.{suffix(repr(key))}"
    involved = {"apiVersion": api, "kind": kind, "name": obj_name,
                "uid": uid_for(kind + "/" + obj_name)}
    if ns:
        involved["namespace"] = ns
    if field_path:
        involved["fieldPath"] = field_path
    source = {"component": component}
    if host:
        source["host"] = host
    obj = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": event_ns or ns or "default",
                     "uid": uid_for(name), "creationTimestamp": ts(at)},
        "involvedObject": involved, "reason": reason, "message": message,
        "source": source, "type": etype, "count": count,
        "firstTimestamp": ts(at), "lastTimestamp": ts(at), "eventTime": None,
        "reportingComponent": "", "reportingInstance": "",
    }
    objects[key] = obj
    emit("ADDED", obj)


def scheduler(at, ns, pod, reason, etype, action, message, series_count=None):
    """An events.k8s.io Event from kube-scheduler, as core/v1 shows it: no count, empty source."""
    key = (ns, "Pod", pod, reason, "scheduler")
    if key in objects and series_count:
        obj = objects[key]
        obj["series"] = {"count": series_count, "lastObservedTime": micro(at)}
        emit("MODIFIED", obj)
        return
    name = f"{pod}.{suffix(repr(key))}"
    obj = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": ns, "uid": uid_for(name),
                     "creationTimestamp": ts(at)},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": ns,
                           "uid": uid_for("Pod/" + pod)},
        "reason": reason, "message": message, "action": action, "type": etype,
        "eventTime": micro(at), "firstTimestamp": None, "lastTimestamp": None, "count": None,
        "source": {}, "reportingComponent": "default-scheduler",
        "reportingInstance": "default-scheduler-control-plane",
    }
    objects[key] = obj
    emit("ADDED", obj)


story = []


def at(seconds, fn, *args, **kwargs):
    story.append((seconds, len(story), fn, args, kwargs))


NODES = ["worker-1", "worker-2", "worker-3"]

# 1. A Deployment rollout in "shop".
at(2, legacy, "shop", "Deployment", "web", "ScalingReplicaSet", "Normal", "deployment-controller",
   "Scaled up replica set web-7d9c5b6f8 to 3", api="apps/v1")
for i, pod in enumerate(["web-7d9c5b6f8-x2k4q", "web-7d9c5b6f8-m8zrt", "web-7d9c5b6f8-p5lvn"]):
    t = 3 + i
    node = NODES[i]
    at(t, legacy, "shop", "ReplicaSet", "web-7d9c5b6f8", "SuccessfulCreate", "Normal",
       "replicaset-controller", f"Created pod: {pod}", api="apps/v1")
    at(t + 1, scheduler, "shop", pod, "Scheduled", "Normal", "Binding",
       f"Successfully assigned shop/{pod} to {node}")
    fp = "spec.containers{web}"
    at(t + 2, legacy, "shop", "Pod", pod, "Pulling", "Normal", "kubelet",
       'Pulling image "ghcr.io/acme/web:1.14.2"', host=node, field_path=fp)
    at(t + 9, legacy, "shop", "Pod", pod, "Pulled", "Normal", "kubelet",
       'Successfully pulled image "ghcr.io/acme/web:1.14.2" in 6.812s (6.812s including waiting)',
       host=node, field_path=fp)
    at(t + 10, legacy, "shop", "Pod", pod, "Created", "Normal", "kubelet",
       "Created container web", host=node, field_path=fp)
    at(t + 10, legacy, "shop", "Pod", pod, "Started", "Normal", "kubelet",
       "Started container web", host=node, field_path=fp)

# 2. An image that does not exist.
api_pod = "api-5f6d7c8b9-qw7er"
fp = "spec.containers{api}"
image = "ghcr.io/acme/api:2.0.0-rc1"
for k, t in enumerate(range(20, 560, 45)):
    at(t, legacy, "shop", "Pod", api_pod, "Pulling", "Normal", "kubelet",
       f'Pulling image "{image}"', host="worker-2", field_path=fp)
    at(t + 1, legacy, "shop", "Pod", api_pod, "Failed", "Warning", "kubelet",
       f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed to pull and unpack '
       f'image "{image}": failed to resolve reference "{image}": {image}: not found',
       host="worker-2", field_path=fp)
    at(t + 1, legacy, "shop", "Pod", api_pod, "Failed", "Warning", "kubelet",
       "Error: ErrImagePull", host="worker-2", field_path=fp)
    at(t + 2, legacy, "shop", "Pod", api_pod, "BackOff", "Normal", "kubelet",
       f'Back-off pulling image "{image}"', host="worker-2", field_path=fp)
    at(t + 2, legacy, "shop", "Pod", api_pod, "Failed", "Warning", "kubelet",
       "Error: ImagePullBackOff", host="worker-2", field_path=fp)

# 3. A crash-looping container in "payments".
worker = "ledger-worker-6b8f9d4c7-h3j9k"
fp = "spec.containers{worker}"
for t in range(15, 590, 24):
    at(t, legacy, "payments", "Pod", worker, "Pulled", "Normal", "kubelet",
       'Container image "ghcr.io/acme/ledger-worker:3.1.0" already present on machine',
       host="worker-1", field_path=fp)
    at(t, legacy, "payments", "Pod", worker, "Created", "Normal", "kubelet",
       "Created container worker", host="worker-1", field_path=fp)
    at(t + 1, legacy, "payments", "Pod", worker, "Started", "Normal", "kubelet",
       "Started container worker", host="worker-1", field_path=fp)
    at(t + 6, legacy, "payments", "Pod", worker, "BackOff", "Warning", "kubelet",
       f"Back-off restarting failed container worker in pod {worker}_payments({uid_for('Pod/' + worker)})",
       host="worker-1", field_path=fp)

# 4. Probe failures.
checkout = "checkout-84c6d9f5b7-7tq2m"
fp = "spec.containers{checkout}"
for t in range(10, 600, 9):
    at(t, legacy, "shop", "Pod", checkout, "Unhealthy", "Warning", "kubelet",
       "Readiness probe failed: HTTP probe failed with statuscode: 503", host="worker-3",
       field_path=fp)
for t in range(40, 600, 30):
    at(t, legacy, "shop", "Pod", checkout, "Unhealthy", "Warning", "kubelet",
       'Liveness probe failed: Get "http://10.244.2.17:8080/healthz": context deadline exceeded '
       "(Client.Timeout exceeded while awaiting headers)", host="worker-3", field_path=fp)

# 5. An unschedulable pod: FailedScheduling written the events.k8s.io way with series bumps, then
# Scheduled once the node is labelled.
gpu = "trainer-0"
msg = ("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. "
       "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")
at(6, scheduler, "ml", gpu, "FailedScheduling", "Warning", "Scheduling", msg)
for n, t in enumerate(range(36, 420, 30), start=2):
    at(t, scheduler, "ml", gpu, "FailedScheduling", "Warning", "Scheduling", msg, series_count=n)
at(430, scheduler, "ml", gpu, "Scheduled", "Normal", "Binding",
   f"Successfully assigned ml/{gpu} to worker-3")

# 6. FailedMount of a missing ConfigMap.
report = "report-28861440-zx8wd"
for t in range(25, 600, 20):
    at(t, legacy, "batch", "Pod", report, "FailedMount", "Warning", "kubelet",
       'MountVolume.SetUp failed for volume "config" : configmap "report-config" not found',
       host="worker-2")

# 7. A node going NotReady, with evictions.
at(300, legacy, "", "Node", "worker-3", "NodeNotReady", "Normal", "node-controller",
   "Node worker-3 status is now: NodeNotReady", api="v1", event_ns="default")
for pod in [checkout, "cache-0"]:
    ns = "shop"
    at(301, legacy, ns, "Pod", pod, "NodeNotReady", "Warning", "node-controller",
       "Node is not ready")
for i, pod in enumerate(["batch-import-7c9d8-4kq2w", "batch-import-7c9d8-9vx1s", "search-indexer-0"]):
    at(240 + 15 * i, legacy, "batch" if i < 2 else "search", "Pod", pod, "Evicted", "Warning",
       "kubelet",
       "The node was low on resource: memory. Threshold quantity: 100Mi, available: 91236Ki. "
       "Container importer was using 1843232Ki, request is 512Mi, has larger consumption of memory.",
       host="worker-3")

# 8. An OOM kill: node-problem-detector's kernel monitor and the kubelet.
for t in (200, 290, 380, 470):
    at(t, legacy, "", "Node", "worker-3", "OOMKilling", "Warning", "kernel-monitor",
       "Memory cgroup out of memory: Killed process 48213 (importer) total-vm:2398812kB, "
       "anon-rss:1843232kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:3812kB oom_score_adj:984",
       host="worker-3", event_ns="default")
    at(t, legacy, "", "Node", "worker-3", "SystemOOM", "Warning", "kubelet",
       "System OOM encountered, victim process: importer, pid: 48213", host="worker-3",
       event_ns="default")

# 9. A sandbox that cannot be created.
for t in range(50, 600, 35):
    at(t, legacy, "payments", "Pod", "fraud-scorer-5d7f6c9b8-2mnbx", "FailedCreatePodSandBox",
       "Warning", "kubelet",
       'Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for '
       'sandbox "3f1c2a9e": plugin type="calico" failed (add): error getting ClusterInformation: '
       "connection is unauthorized: Unauthorized", host="worker-1")

# 10. A batch of pods the cluster has no room for: the control-plane node's taint rules out one
# node, memory the other three, so the class is insufficient-memory (capacity). Scheduled once a
# node is added.
msg = ("0/4 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
       "3 Insufficient memory. preemption: 0/4 nodes are available: 1 Preemption is not helpful for "
       "scheduling, 3 No preemption victims found for incoming pod.")
for i in range(4):
    etl = f"etl-28861500-{'abcd'[i]}x9k2"
    at(120 + i, scheduler, "batch", etl, "FailedScheduling", "Warning", "Scheduling", msg)
    for n, t in enumerate(range(121 + i, 480, 60), start=2):
        at(t, scheduler, "batch", etl, "FailedScheduling", "Warning", "Scheduling", msg, series_count=n)
    at(490 + i, scheduler, "batch", etl, "Scheduled", "Normal", "Binding",
       f"Successfully assigned batch/{etl} to worker-4")

# 11. A container whose ConfigMap is missing: the kubelet's Failed that is not an image pull.
flags_pod = "web-flags-6d5c4b3a2-k8s9d"
for t in range(30, 600, 40):
    at(t, legacy, "shop", "Pod", flags_pod, "Failed", "Warning", "kubelet",
       'Error: configmap "web-flags" not found', host="worker-1", field_path="spec.containers{web}")

for seconds, _, fn, args, kwargs in sorted(story, key=lambda s: (s[0], s[1])):
    fn(seconds, *args, **kwargs)

out = sys.argv[1] if len(sys.argv) > 1 else "src/source/demo-recording.jsonl"
with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")
print(f"{len(lines)} watch events, {len(objects)} Events -> {out}")
