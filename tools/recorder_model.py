"""A model of how Kubernetes components write Events, and of what kube-event-metrics counts.

Used by tools/alert-scenarios.py to turn incidents and routine operations into the series
Prometheus would scrape, so the rule tests use the recorders' numbers, not guesses.

Constants are client-go's (k8s.io/client-go):
- tools/record/events_cache.go: maxLruCacheEntries 4096, defaultAggregateMaxEvents 10,
  defaultAggregateIntervalInSeconds 600, defaultSpamBurst 25, defaultSpamQPS 1/300. EventCorrelate
  runs the aggregator, then eventObserve (which counts the occurrence in its cache), then the spam
  filter: a skipped occurrence stays in the cached count and rides along with the next write that
  gets a token. getSpamKey is source component + host + involved object (kind, namespace, name,
  uid, apiVersion); it does not include the type or the reason, so all of a component's events about
  one object share one bucket.
- tools/events/event_broadcaster.go: the isomorphic key is (action, reason, reportingController,
  regarding, related), not the note, so a changing message stays in one series; the second
  occurrence is written at once with series.count 2 (current client-go; releases before the fix
  wrote 1), later ones only on refreshTime (30 min, one ticker for all series) and on finishTime
  (6 min ticker: a series not observed for 6 min gets its final count written and is dropped).

The exporter side is exact, as it counts (issue 12): every write adds the increase of its Event's
count, also when client-go re-creates an Event after the API server's one-hour TTL.
"""
import bisect
import heapq
import itertools
import random
from collections import OrderedDict, defaultdict

AGGREGATE_MAX_EVENTS = 10
AGGREGATE_INTERVAL = 600
SPAM_BURST = 25
SPAM_QPS = 1 / 300
LRU_ENTRIES = 4096
SERIES_FINISH = 6 * 60
SERIES_REFRESH = 30 * 60


class Exporter:
    """What kube-event-metrics counts: per label set, the running total of occurrences."""

    def __init__(self):
        self.last_count = {}
        self.changes = defaultdict(list)  # labels -> [(t, total)]
        self.totals = defaultdict(int)

    def write(self, t, name, labels, count):
        delta = count - self.last_count.get(name, 0)
        self.last_count[name] = max(count, self.last_count.get(name, 0))
        if delta <= 0:
            return
        self.totals[labels] += delta
        self.changes[labels].append((t, self.totals[labels]))


class Clock:
    """A discrete-event simulation: callbacks at simulated seconds, in order."""

    def __init__(self, seed=1):
        self.queue = []
        self.sequence = itertools.count()
        self.now = 0.0
        self.random = random.Random(seed)

    def at(self, t, callback):
        heapq.heappush(self.queue, (t, next(self.sequence), callback))

    def run(self, until):
        while self.queue and self.queue[0][0] <= until:
            t, _, callback = heapq.heappop(self.queue)
            self.now = t
            callback(t)
        self.now = until

    def every(self, start, period, callback, until, jitter=0.0):
        """callback(t) at start, then every period (plus up to jitter * period) until `until`."""

        def tick(t):
            if t > until:
                return
            if callback(t) is False:
                return
            self.at(t + period * (1 + self.random.random() * jitter), tick)

        self.at(start, tick)


def in_future(clock, t, emit):
    """Components may announce an Event for later (a pod's start-up sequence, a grace period);
    the recorders' caches, buckets and the exporter's totals must see occurrences in time order,
    so a later one is queued on the clock. True when it was queued."""
    if t <= clock.now:
        return False
    clock.at(t, lambda _: emit())
    return True


def lru_put(cache, key, value):
    cache[key] = value
    cache.move_to_end(key)
    if len(cache) > LRU_ENTRIES:
        cache.popitem(last=False)


class Obj:
    """An involved object: what an Event is about."""

    def __init__(self, kind, namespace, name):
        self.kind, self.namespace, self.name = kind, namespace, name
        self.key = (kind, namespace, name)


class LegacyRecorder:
    """client-go tools/record: EventCorrelator (aggregator, observer, spam filter)."""

    def __init__(self, clock, exporter, component, host=""):
        self.clock, self.exporter, self.component, self.host = clock, exporter, component, host
        self.aggregates = OrderedDict()
        self.observed = OrderedDict()
        self.buckets = OrderedDict()
        self.names = itertools.count()

    def emit(self, t, obj, etype, reason, message):
        if in_future(self.clock, t, lambda: self.emit(t, obj, etype, reason, message)):
            return
        aggregate_key = (obj.key, etype, reason)
        record = self.aggregates.get(aggregate_key)
        if record is None or t - record[1] > AGGREGATE_INTERVAL:
            record = [set(), t]
        record[0].add(message)
        record[1] = t
        lru_put(self.aggregates, aggregate_key, record)
        if len(record[0]) < AGGREGATE_MAX_EVENTS:
            event_key = (obj.key, etype, reason, message)
        else:
            record[0].pop()
            event_key = aggregate_key  # one "(combined from similar events)" Event from now on

        last = self.observed.get(event_key)
        if last is not None:
            count, name = last[0] + 1, last[1]
        else:
            count, name = 1, f"{obj.name}.{self.component}.{next(self.names)}"
        lru_put(self.observed, event_key, (count, name))

        tokens, stamp = self.buckets.get(obj.key, (SPAM_BURST, t))
        tokens = min(SPAM_BURST, tokens + (t - stamp) * SPAM_QPS)
        accepted = tokens >= 1
        if accepted:
            tokens -= 1
        lru_put(self.buckets, obj.key, (tokens, t))
        if accepted:
            labels = (obj.namespace, obj.kind, reason, etype, self.component)
            self.exporter.write(t, name, labels, count)


class SeriesRecorder:
    """client-go tools/events: the events.k8s.io recorder with its series."""

    def __init__(self, clock, exporter, controller, until):
        self.clock, self.exporter, self.controller = clock, exporter, controller
        self.cache = {}
        self.names = itertools.count()
        # One ticker each for the whole process, started at an arbitrary phase.
        clock.every(clock.random.random() * SERIES_REFRESH, SERIES_REFRESH, self.refresh, until)
        clock.every(clock.random.random() * SERIES_FINISH, SERIES_FINISH, self.finish, until)

    def _write(self, t, entry):
        self.exporter.write(t, entry["name"], entry["labels"], entry["count"])

    def emit(self, t, obj, etype, reason, note, action=""):
        if in_future(self.clock, t, lambda: self.emit(t, obj, etype, reason, note, action)):
            return
        key = (action, reason, obj.key)
        entry = self.cache.get(key)
        if entry is None:
            labels = (obj.namespace, obj.kind, reason, etype, self.controller)
            entry = {"name": f"{obj.name}.{next(self.names)}", "labels": labels, "count": 1,
                     "series": False, "last": t, "created": t}
            self.cache[key] = entry
            self._write(t, entry)
        elif entry["series"]:
            entry["count"] += 1
            entry["last"] = t
        else:
            entry["series"] = True
            entry["count"] = 2
            entry["last"] = t
            self._write(t, entry)

    def refresh(self, t):
        for entry in self.cache.values():
            if entry["series"]:
                self._write(t, entry)

    def finish(self, t):
        for key, entry in list(self.cache.items()):
            if entry["series"] and entry["last"] < t - SERIES_FINISH:
                self._write(t, entry)
                del self.cache[key]
            elif not entry["series"] and entry["created"] < t - SERIES_FINISH:
                del self.cache[key]


def sample(exporter, minutes, restart_at=None):
    """Prometheus' view: each series' value at every 1-minute scrape, promtool notation.

    A series appears at the scrape after its first occurrence (the exporter creates it then, so its
    first sample is already >= 1). With `restart_at` (a minute), the exporter restarts without a
    state file: that scrape fails, the first list is a baseline (label sets of Events still live,
    written in the last hour, come back at 0) and only later occurrences count.
    """
    series = {}
    for labels, changes in exporter.changes.items():
        stamps = [at for at, _ in changes]

        def total_at(t):
            index = bisect.bisect_right(stamps, t)
            return changes[index - 1][1] if index else None

        values = []
        for minute in range(minutes + 1):
            t = minute * 60
            total = total_at(t)
            if restart_at is None or minute < restart_at:
                values.append(total)
                continue
            if minute == restart_at:
                values.append(None)
                continue
            restart = restart_at * 60
            base = total_at(restart) or 0
            live = bisect.bisect_right(stamps, restart) > bisect.bisect_right(stamps, restart - 3600)
            if total is not None and (total - base > 0 or live):
                values.append(total - base)
            else:
                values.append(None)
        series[labels] = values
    return series


def notation(values):
    """promtool's expanding notation: `axN` is N+1 samples of a, but `_xN` is N missing ones."""
    parts = []
    for value, group in itertools.groupby(values):
        n = len(list(group))
        if value is None:
            parts.append("_" if n == 1 else f"_x{n}")
        else:
            parts.append(str(value) if n == 1 else f"{value}x{n - 1}")
    return " ".join(parts)
