//! Message classes: why an Event happened, as a short label drawn from a bounded catalogue.
//!
//! The catalogue maps (reason, message) to a class for the reasons users alert on, from the
//! message templates of the Kubernetes components that write them (kube-scheduler's filter
//! plugins and `FitError`, the kubelet, the controllers, cluster-autoscaler, the HPA). Pure: no
//! I/O. The ingest classifies an Event once, when its series is first looked up, never per update.
//! docs/classes.md lists every class and how a FailedScheduling message picks one.

use std::borrow::Cow;
use std::collections::HashMap;

use regex::Regex;

/// What the legacy recorder's aggregator puts before the message of an aggregated Event.
const COMBINED_PREFIX: &str = "(combined from similar events): ";

/// The longest class a user rule may produce; longer ones are cut at a character boundary.
pub const MAX_CLASS_LEN: usize = 64;

/// The most classes one reason may have (the catalogue's and the user's together); an Event
/// that would add another gets the empty class and counts in
/// `kube_event_metrics_classes_capped_total`.
pub const MAX_CLASSES_PER_REASON: usize = 24;

/// One class: the fragments of a message that select it (any of them, case-sensitive as the
/// components write them).
struct Class {
    name: &'static str,
    fragments: &'static [&'static str],
}

const fn class(name: &'static str, fragments: &'static [&'static str]) -> Class {
    Class { name, fragments }
}

/// The reasons of a FailedScheduling message, in the order that breaks ties: the capacity classes
/// (more nodes, or freeing some, schedules the pod) before the configuration ones (the pod asks
/// for something no node offers). `is_capacity` reads this split.
const SCHEDULING: &[Class] = &[
    class("insufficient-cpu", &["Insufficient cpu"]),
    class("insufficient-memory", &["Insufficient memory"]),
    class(
        "insufficient-ephemeral-storage",
        &["Insufficient ephemeral-storage"],
    ),
    class("too-many-pods", &["Too many pods", "Insufficient pods"]),
    // Extended resources, such as nvidia.com/gpu.
    class(
        "insufficient-resource",
        &["Insufficient ", "didn't have enough resource"],
    ),
    class(
        "insufficient-storage",
        &["did not have enough free storage"],
    ),
    // The node lifecycle controller taints nodes that stop reporting; such a taint is a node
    // outage, not a toleration the pod lacks.
    class(
        "node-not-ready",
        &[
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
            "node(s) were not ready",
        ],
    ),
    class(
        "node-unschedulable",
        &["were unschedulable", "node.kubernetes.io/unschedulable"],
    ),
    class("volume-limit", &["exceed max volume count"]),
    class("host-port", &["didn't have free ports"]),
    class(
        "no-nodes",
        &["no nodes available", "0/0 nodes are available"],
    ),
    // cluster-autoscaler's NotTriggerScaleUp.
    class("max-node-group-size", &["max node group size reached"]),
    class("scale-up-backoff", &["in backoff after failed scale-up"]),
    // Configuration from here on.
    class(
        "untolerated-taint",
        &["untolerated taint", "didn't tolerate"],
    ),
    class(
        "node-affinity",
        &[
            "node affinity/selector",
            "didn't match node selector",
            "didn't match Pod's node affinity",
        ],
    ),
    class(
        "pod-affinity",
        &["pod affinity", "pod anti-affinity", "anti-affinity rules"],
    ),
    class("topology-spread", &["topology spread constraints"]),
    class(
        "volume-node-affinity",
        &["volume node affinity conflict", "no available volume zone"],
    ),
    class(
        "unbound-pvc",
        &[
            "unbound immediate PersistentVolumeClaims",
            "didn't find available persistent volumes to bind",
            "persistentvolumeclaim",
            "bound to non-existent",
        ],
    ),
    class("node-name", &["didn't match the requested node name"]),
];

/// The first configuration class of [`SCHEDULING`].
const FIRST_CONFIGURATION: &str = "untolerated-taint";

/// Whether a FailedScheduling (or NotTriggerScaleUp) class is about capacity: nodes missing,
/// full or down, rather than a pod that asks for what no node offers.
pub fn is_capacity(class: &str) -> bool {
    let configuration = SCHEDULING
        .iter()
        .position(|c| c.name == FIRST_CONFIGURATION)
        .unwrap_or(SCHEDULING.len());
    SCHEDULING[..configuration].iter().any(|c| c.name == class)
}

/// The kubelet's `Failed`: which step of starting a container failed.
const KUBELET_FAILED: &[Class] = &[
    class("image-pull-backoff", &["ImagePullBackOff"]),
    class(
        "invalid-image-name",
        &["InvalidImageName", "Failed to apply default image tag"],
    ),
    class(
        "image-never-pull",
        &[
            "ErrImageNeverPull",
            "is not present with pull policy of Never",
        ],
    ),
    class("image-pull", &["Failed to pull image", "ErrImagePull"]),
    class(
        "config-error",
        &[
            "CreateContainerConfigError",
            "configmap \"",
            "secret \"",
            "couldn't find key",
        ],
    ),
    class(
        "create-container-error",
        &[
            "CreateContainerError",
            "failed to create containerd task",
            "failed to generate container",
            "RunContainerError",
            "failed to start container",
            "Error response from daemon",
        ],
    ),
];

const BACK_OFF: &[Class] = &[
    class("restarting-container", &["restarting failed container"]),
    class("pulling-image", &["pulling image"]),
];

const MOUNT: &[Class] = &[
    class("configmap-not-found", &["configmap \""]),
    class("secret-not-found", &["secret \""]),
    class("multi-attach", &["Multi-Attach error"]),
    class(
        "timeout",
        &[
            "timed out waiting for the condition",
            "context deadline exceeded",
            "timeout expired",
        ],
    ),
    class(
        "csi-driver-not-registered",
        &["not found in the list of registered CSI drivers"],
    ),
    class(
        "attach-failed",
        &[
            "AttachVolume.Attach failed",
            "MountVolume.WaitForAttach failed",
        ],
    ),
    class("mount-device-failed", &["MountVolume.MountDevice failed"]),
    class("setup-failed", &["MountVolume.SetUp failed"]),
];

const UNHEALTHY: &[Class] = &[
    class("liveness", &["Liveness probe"]),
    class("readiness", &["Readiness probe"]),
    class("startup", &["Startup probe"]),
];

const EVICTED: &[Class] = &[
    class("memory-pressure", &["low on resource: memory"]),
    class(
        "disk-pressure",
        &[
            "low on resource: ephemeral-storage",
            "low on resource: nodefs",
            "low on resource: imagefs",
        ],
    ),
    class("pid-pressure", &["low on resource: pids"]),
    class(
        "ephemeral-storage-limit",
        &[
            "ephemeral local storage usage exceeds",
            "exceeded its local ephemeral storage limit",
        ],
    ),
    class("emptydir-limit", &["Usage of EmptyDir volume"]),
];

/// The controllers' `FailedCreate` (ReplicaSet, Job, StatefulSet, DaemonSet): what refused the pod.
const FAILED_CREATE: &[Class] = &[
    class("quota-exceeded", &["exceeded quota"]),
    class("quota-requires-limits", &["failed quota", "must specify"]),
    class("pod-security", &["violates PodSecurity"]),
    class(
        "admission-webhook",
        &["admission webhook", "failed calling webhook"],
    ),
    class(
        "limit-range",
        &[
            "maximum cpu usage",
            "maximum memory usage",
            "minimum cpu usage",
            "minimum memory usage",
        ],
    ),
    class(
        "service-account-not-found",
        &["serviceaccount \"", "error looking up service account"],
    ),
];

const HPA: &[Class] = &[
    class("missing-request", &["missing request for"]),
    class(
        "pods-unready",
        &[
            "did not receive metrics for targeted pods",
            "did not receive metrics for any ready pods",
        ],
    ),
    class(
        "no-metrics",
        &[
            "no metrics returned",
            "unable to get metrics",
            "unable to fetch metrics",
            "unable to get metric",
            "the server could not find the requested resource",
        ],
    ),
];

/// Every reason of the catalogue: its classes, and whether its messages list reasons with node
/// counts (FitError's histogram, which `counted_class` reads).
const REASONS: &[(&str, &[Class], bool)] = &[
    ("FailedScheduling", SCHEDULING, true),
    ("NotTriggerScaleUp", SCHEDULING, true),
    ("Failed", KUBELET_FAILED, false),
    ("BackOff", BACK_OFF, false),
    ("FailedMount", MOUNT, false),
    ("FailedAttachVolume", MOUNT, false),
    ("Unhealthy", UNHEALTHY, false),
    ("Evicted", EVICTED, false),
    ("FailedCreate", FAILED_CREATE, false),
    // The HPA's FailedGet*Metric and FailedComputeMetricsReplicas.
    ("FailedGetResourceMetric", HPA, false),
    ("FailedGetContainerResourceMetric", HPA, false),
    ("FailedGetPodsMetric", HPA, false),
    ("FailedGetObjectMetric", HPA, false),
    ("FailedGetExternalMetric", HPA, false),
    ("FailedComputeMetricsReplicas", HPA, false),
];

fn catalogue_of(reason: &str) -> Option<(&'static [Class], bool)> {
    REASONS
        .iter()
        .find(|(known, _, _)| *known == reason)
        .map(|(_, classes, counted)| (*classes, *counted))
}

/// Every reason of the catalogue with its classes (the documentation and the series bound).
pub fn catalogue() -> Vec<(&'static str, Vec<&'static str>)> {
    REASONS
        .iter()
        .map(|(reason, classes, _)| (*reason, classes.iter().map(|c| c.name).collect()))
        .collect()
}

fn first_match(classes: &[Class], text: &str) -> Option<(usize, &'static str)> {
    classes
        .iter()
        .enumerate()
        .find(|(_, c)| c.fragments.iter().any(|f| text.contains(f)))
        .map(|(at, c)| (at, c.name))
}

/// A message that lists reasons with node counts: "0/12 nodes are available: 3 Insufficient
/// cpu, 9 node(s) had untolerated taint {…}. preemption: …". The reason with the most nodes wins;
/// a tie goes to the one listed first in [`SCHEDULING`] (capacity first). A reason without a
/// count before the counted ones is a PreFilter verdict, which applies to every node and wins.
fn counted_class(classes: &[Class], message: &str) -> Option<&'static str> {
    // The histogram follows the first ": "; what follows ". preemption:" is the PostFilter's own
    // account (all "Preemption is not helpful"), not why the pod did not fit.
    let body = message.split_once(": ").map_or(message, |(_, body)| body);
    let body = body.split(" preemption:").next().unwrap_or(body);
    let mut best: Option<(u64, usize, &'static str)> = None;
    let mut consider = |count: u64, text: &str| {
        if let Some((at, name)) = first_match(classes, text) {
            let better = best.is_none_or(|(c, a, _)| count > c || (count == c && at < a));
            if better {
                best = Some((count, at, name));
            }
        }
    };
    // Items are separated by ", " (reasons) and ". " (PreFilter message, then the reasons).
    // An item without a leading count continues the one before it (old taint messages say
    // "{k: v}, that the pod didn't tolerate"), unless nothing counted came before it.
    let mut pending: Option<(u64, String)> = None;
    let items = body
        .split(", ")
        .flat_map(|part| part.split(". "))
        .map(|item| item.trim().trim_end_matches('.'))
        .filter(|item| !item.is_empty());
    for item in items {
        let (count, text) = match item.split_once(' ') {
            Some((number, rest)) if number.parse::<u64>().is_ok() => {
                (number.parse::<u64>().ok(), rest)
            }
            _ => (None, item),
        };
        match (count, pending.as_mut()) {
            (Some(count), _) => {
                if let Some((c, text)) = pending.take() {
                    consider(c, &text);
                }
                pending = Some((count, text.to_owned()));
            }
            (None, Some((_, previous))) => {
                previous.push_str(", ");
                previous.push_str(text);
            }
            (None, None) => consider(u64::MAX, text),
        }
    }
    if let Some((c, text)) = pending {
        consider(c, &text);
    }
    best.map(|(_, _, name)| name)
        .or_else(|| first_match(classes, message).map(|(_, n)| n))
}

/// The catalogue's class of a message, or "" when the reason or the message is not in it.
pub fn builtin(reason: &str, message: &str) -> &'static str {
    let message = message.strip_prefix(COMBINED_PREFIX).unwrap_or(message);
    let Some((classes, counted)) = catalogue_of(reason) else {
        return "";
    };
    let found = if counted {
        counted_class(classes, message)
    } else {
        first_match(classes, message).map(|(_, name)| name)
    };
    found.unwrap_or("")
}

/// A user rule from `--config.file`: Events of `reason` whose message matches `pattern` get
/// `class`, where `$1`, `${name}` expand the pattern's groups.
#[derive(Clone, Debug)]
pub struct Rule {
    pub reason: String,
    pub pattern: Regex,
    pub class: String,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.reason == other.reason
            && self.pattern.as_str() == other.pattern.as_str()
            && self.class == other.class
    }
}

/// What [`Classifier::classify`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict<'a> {
    pub class: Cow<'a, str>,
    /// The reason already had its most classes, so this one became the empty class.
    pub capped: bool,
}

/// The catalogue plus the user's rules, with a bound on the classes of each reason.
#[derive(Debug)]
pub struct Classifier {
    rules: Vec<Rule>,
    max_per_reason: usize,
    /// The classes each reason has produced so far.
    seen: HashMap<String, Vec<String>>,
}

impl Classifier {
    pub fn new(rules: Vec<Rule>, max_per_reason: usize) -> Self {
        Self {
            rules,
            max_per_reason,
            seen: HashMap::new(),
        }
    }

    /// User rules first (they may refine the catalogue), then the catalogue.
    pub fn classify(&mut self, reason: &str, message: &str) -> Verdict<'static> {
        let message = message.strip_prefix(COMBINED_PREFIX).unwrap_or(message);
        let from_rule = self.rules.iter().find_map(|rule| {
            if rule.reason != reason {
                return None;
            }
            let captures = rule.pattern.captures(message)?;
            let mut class = String::new();
            captures.expand(&rule.class, &mut class);
            Some(truncate(&class, MAX_CLASS_LEN).to_owned())
        });
        let class = match from_rule {
            Some(class) => class,
            None => builtin(reason, message).to_owned(),
        };
        if class.is_empty() {
            return Verdict {
                class: Cow::Borrowed(""),
                capped: false,
            };
        }
        let seen = self.seen.entry(reason.to_owned()).or_default();
        if seen.contains(&class) {
            return Verdict {
                class: Cow::Owned(class),
                capped: false,
            };
        }
        if seen.len() >= self.max_per_reason {
            return Verdict {
                class: Cow::Borrowed(""),
                capped: true,
            };
        }
        seen.push(class.clone());
        Verdict {
            class: Cow::Owned(class),
            capped: false,
        }
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_with_the_most_nodes_wins() {
        let message = "0/12 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 11 Insufficient memory. preemption: 0/12 nodes are available: 1 Preemption is not helpful for scheduling, 11 No preemption victims found for incoming pod.";
        assert_eq!(builtin("FailedScheduling", message), "insufficient-memory");
        let message = "0/5 nodes are available: 2 Insufficient cpu, 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/5 nodes are available: 5 Preemption is not helpful for scheduling.";
        assert_eq!(builtin("FailedScheduling", message), "node-affinity");
    }

    #[test]
    fn a_tie_goes_to_capacity() {
        let message = "0/6 nodes are available: 3 Insufficient cpu, 3 node(s) had untolerated taint {dedicated: gpu}.";
        assert_eq!(builtin("FailedScheduling", message), "insufficient-cpu");
        assert!(is_capacity("insufficient-cpu"));
        assert!(!is_capacity("untolerated-taint"));
        assert!(!is_capacity("node-affinity"));
        assert!(is_capacity("node-not-ready"));
    }

    #[test]
    fn counts_are_compared_as_numbers_not_as_the_sorted_strings() {
        // FitError sorts "10 …" before "9 …".
        let message = "0/19 nodes are available: 10 Insufficient cpu, 9 node(s) had volume node affinity conflict.";
        assert_eq!(builtin("FailedScheduling", message), "insufficient-cpu");
    }

    #[test]
    fn a_prefilter_verdict_applies_to_every_node() {
        let message = "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
        assert_eq!(builtin("FailedScheduling", message), "unbound-pvc");
        let message = "0/3 nodes are available: persistentvolumeclaim \"data-0\" not found. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
        assert_eq!(builtin("FailedScheduling", message), "unbound-pvc");
    }

    #[test]
    fn old_taint_messages_keep_their_tail() {
        let message = "0/3 nodes are available: 3 node(s) had taint {node.kubernetes.io/unreachable: }, that the pod didn't tolerate.";
        assert_eq!(builtin("FailedScheduling", message), "node-not-ready");
        let message = "0/4 nodes are available: 1 node(s) had taint {node-role.kubernetes.io/master: }, that the pod didn't tolerate, 3 Insufficient cpu.";
        assert_eq!(builtin("FailedScheduling", message), "insufficient-cpu");
    }

    #[test]
    fn scheduling_messages_of_every_filter() {
        for (message, expected) in [
            ("0/3 nodes are available: 3 Too many pods.", "too-many-pods"),
            (
                "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
                "insufficient-resource",
            ),
            (
                "0/3 nodes are available: 3 node(s) were unschedulable.",
                "node-unschedulable",
            ),
            (
                "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.",
                "pod-affinity",
            ),
            (
                "0/3 nodes are available: 3 node(s) didn't match pod topology spread constraints.",
                "topology-spread",
            ),
            (
                "0/3 nodes are available: 3 node(s) had volume node affinity conflict.",
                "volume-node-affinity",
            ),
            (
                "0/3 nodes are available: 3 node(s) didn't have free ports for the requested pod ports.",
                "host-port",
            ),
            (
                "0/3 nodes are available: 3 node(s) exceed max volume count.",
                "volume-limit",
            ),
            (
                "0/3 nodes are available: 3 node(s) didn't match the requested node name.",
                "node-name",
            ),
            ("no nodes available to schedule pods", "no-nodes"),
            ("0/0 nodes are available: .", "no-nodes"),
            (
                "0/3 nodes are available: 3 node(s) had untolerated taint {dedicated: infra}.",
                "untolerated-taint",
            ),
        ] {
            assert_eq!(builtin("FailedScheduling", message), expected, "{message}");
        }
    }

    #[test]
    fn the_autoscaler_lists_reasons_like_the_scheduler() {
        let message = "pod didn't trigger scale-up: 2 node(s) didn't match Pod's node affinity/selector, 1 max node group size reached";
        assert_eq!(builtin("NotTriggerScaleUp", message), "node-affinity");
        let message = "pod didn't trigger scale-up (it wouldn't fit if a new node is added): 3 Insufficient memory";
        assert_eq!(builtin("NotTriggerScaleUp", message), "insufficient-memory");
    }

    #[test]
    fn kubelet_messages() {
        for (reason, message, expected) in [
            (
                "Failed",
                "Failed to pull image \"nginx:lates\": rpc error: code = NotFound desc = failed to pull and unpack image",
                "image-pull",
            ),
            ("Failed", "Error: ErrImagePull", "image-pull"),
            ("Failed", "Error: ImagePullBackOff", "image-pull-backoff"),
            ("Failed", "Error: InvalidImageName", "invalid-image-name"),
            (
                "Failed",
                "Error: configmap \"app-config\" not found",
                "config-error",
            ),
            ("Failed", "Error: secret \"db\" not found", "config-error"),
            (
                "Failed",
                "Error: couldn't find key password in Secret default/db",
                "config-error",
            ),
            (
                "Failed",
                "Error: CreateContainerConfigError",
                "config-error",
            ),
            (
                "Failed",
                "Error: failed to create containerd task: failed to create shim task: OCI runtime create failed",
                "create-container-error",
            ),
            (
                "Failed",
                "Container image \"app:1\" is not present with pull policy of Never",
                "image-never-pull",
            ),
            (
                "BackOff",
                "Back-off restarting failed container app in pod web-1_shop(uid)",
                "restarting-container",
            ),
            (
                "BackOff",
                "Back-off pulling image \"registry.local/app:1\"",
                "pulling-image",
            ),
            (
                "FailedMount",
                "MountVolume.SetUp failed for volume \"config\" : configmap \"app-config\" not found",
                "configmap-not-found",
            ),
            (
                "FailedMount",
                "MountVolume.SetUp failed for volume \"tls\" : secret \"tls\" not found",
                "secret-not-found",
            ),
            (
                "FailedMount",
                "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[data kube-api-access]: timed out waiting for the condition",
                "timeout",
            ),
            (
                "FailedMount",
                "MountVolume.MountDevice failed for volume \"pvc-1\" : kubernetes.io/csi: attacher.MountDevice failed to create newCsiDriverClient: driver name ebs.csi.aws.com not found in the list of registered CSI drivers",
                "csi-driver-not-registered",
            ),
            (
                "FailedAttachVolume",
                "Multi-Attach error for volume \"pvc-1\" Volume is already exclusively attached to one node and can't be attached to another",
                "multi-attach",
            ),
            (
                "FailedAttachVolume",
                "AttachVolume.Attach failed for volume \"pvc-1\" : rpc error: code = Internal",
                "attach-failed",
            ),
            (
                "Unhealthy",
                "Liveness probe failed: HTTP probe failed with statuscode: 500",
                "liveness",
            ),
            (
                "Unhealthy",
                "Readiness probe failed: Get \"http://10.0.0.1:8080/ready\": context deadline exceeded",
                "readiness",
            ),
            (
                "Unhealthy",
                "Startup probe failed: dial tcp 10.0.0.1:8080: connect: connection refused",
                "startup",
            ),
            (
                "Evicted",
                "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. Container app was using 2Gi, request is 1Gi, has larger consumption of memory.",
                "memory-pressure",
            ),
            (
                "Evicted",
                "The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi, available: 5Gi.",
                "disk-pressure",
            ),
            (
                "Evicted",
                "The node was low on resource: pids.",
                "pid-pressure",
            ),
            (
                "Evicted",
                "Pod ephemeral local storage usage exceeds the total limit of containers 1Gi.",
                "ephemeral-storage-limit",
            ),
            (
                "Evicted",
                "Usage of EmptyDir volume \"cache\" exceeds the limit \"1Gi\".",
                "emptydir-limit",
            ),
        ] {
            assert_eq!(builtin(reason, message), expected, "{reason}: {message}");
        }
    }

    #[test]
    fn controller_and_autoscaler_messages() {
        for (reason, message, expected) in [
            (
                "FailedCreate",
                "Error creating: pods \"web-5c9\" is forbidden: exceeded quota: compute, requested: cpu=500m, used: cpu=10, limited: cpu=10",
                "quota-exceeded",
            ),
            (
                "FailedCreate",
                "Error creating: pods \"web-5c9\" is forbidden: failed quota: compute: must specify limits.cpu for: app",
                "quota-requires-limits",
            ),
            (
                "FailedCreate",
                "Error creating: pods \"web-5c9\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false",
                "pod-security",
            ),
            (
                "FailedCreate",
                "Error creating: admission webhook \"validate.kyverno.svc\" denied the request: policy require-labels",
                "admission-webhook",
            ),
            (
                "FailedCreate",
                "Error creating: Internal error occurred: failed calling webhook \"mpod.elbv2.k8s.aws\": context deadline exceeded",
                "admission-webhook",
            ),
            (
                "FailedCreate",
                "create Pod db-0 in StatefulSet db failed error: pods \"db-0\" is forbidden: error looking up service account shop/db: serviceaccount \"db\" not found",
                "service-account-not-found",
            ),
            (
                "FailedCreate",
                "Error creating: pods \"web-5c9\" is forbidden: maximum cpu usage per Container is 2, but limit is 4",
                "limit-range",
            ),
            (
                "FailedGetResourceMetric",
                "failed to get cpu utilization: missing request for cpu in container app of Pod web-1",
                "missing-request",
            ),
            (
                "FailedGetResourceMetric",
                "failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API",
                "no-metrics",
            ),
            (
                "FailedGetResourceMetric",
                "failed to get cpu utilization: did not receive metrics for targeted pods (pods might be unready)",
                "pods-unready",
            ),
            (
                "FailedComputeMetricsReplicas",
                "invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: failed to get cpu utilization: missing request for cpu in container app of Pod web-1",
                "missing-request",
            ),
        ] {
            assert_eq!(builtin(reason, message), expected, "{reason}: {message}");
        }
    }

    #[test]
    fn unknown_messages_and_reasons_get_the_empty_class() {
        assert_eq!(builtin("FailedScheduling", "something new"), "");
        assert_eq!(builtin("Failed", "Error: something else"), "");
        assert_eq!(builtin("Pulled", "Successfully pulled image"), "");
        assert_eq!(
            builtin("Scheduled", "0/3 nodes are available: 3 Insufficient cpu."),
            ""
        );
    }

    #[test]
    fn the_aggregators_prefix_is_stripped() {
        let message = "(combined from similar events): Readiness probe failed: HTTP probe failed with statuscode: 503";
        assert_eq!(builtin("Unhealthy", message), "readiness");
        let mut classifier = Classifier::new(Vec::new(), 20);
        assert_eq!(classifier.classify("Unhealthy", message).class, "readiness");
    }

    #[test]
    fn user_rules_come_first_expand_groups_and_are_capped_per_reason() {
        let rules = vec![
            Rule {
                reason: "SyncFailed".into(),
                pattern: Regex::new(r"^sync of (?P<app>[a-z]+) failed").unwrap(),
                class: "app-${app}".into(),
            },
            Rule {
                reason: "Unhealthy".into(),
                pattern: Regex::new("probe failed: .*statuscode: 503").unwrap(),
                class: "unavailable".into(),
            },
        ];
        let mut classifier = Classifier::new(rules, 2);
        let classify = |c: &mut Classifier, r: &str, m: &str| c.classify(r, m);
        assert_eq!(
            classify(
                &mut classifier,
                "Unhealthy",
                "Readiness probe failed: HTTP probe failed with statuscode: 503"
            )
            .class,
            "unavailable"
        );
        assert_eq!(
            classify(
                &mut classifier,
                "Unhealthy",
                "Liveness probe failed: timeout"
            )
            .class,
            "liveness"
        );
        // Two classes for Unhealthy so far: a third is capped, a known one is not.
        let third = classify(&mut classifier, "Unhealthy", "Startup probe failed: x");
        assert_eq!(
            third,
            Verdict {
                class: Cow::Borrowed(""),
                capped: true
            }
        );
        assert!(!classify(&mut classifier, "Unhealthy", "Liveness probe failed: y").capped);
        assert_eq!(
            classify(&mut classifier, "SyncFailed", "sync of shop failed: 500").class,
            "app-shop"
        );
        assert_eq!(
            classify(&mut classifier, "SyncFailed", "sync of cart failed").class,
            "app-cart"
        );
        assert!(classify(&mut classifier, "SyncFailed", "sync of pay failed").capped);
        // The empty class is not a class: it never counts against the cap.
        assert!(!classify(&mut classifier, "SyncFailed", "other").capped);
    }

    #[test]
    fn classes_stay_within_the_cap_and_the_documented_length() {
        for (reason, classes) in catalogue() {
            assert!(
                classes.len() <= MAX_CLASSES_PER_REASON,
                "{reason}: {}",
                classes.len()
            );
            for class in classes {
                assert!(
                    class.len() <= MAX_CLASS_LEN
                        && class.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                    "{class}"
                );
            }
        }
        assert_eq!(truncate("ééé", 3), "é");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
