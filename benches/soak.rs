//! Soak: 30 minutes of mixed load against the fake API server with periodic dropped connections
//! and 410-expired gaps; checks every minute that the counters are exact and samples RSS.
//!
//!     cargo bench --bench soak                       # 30 minutes
//!     KEM_SOAK_SECONDS=120 cargo bench --bench soak  # a short run
//!
//! Not part of CI (it takes half an hour); BENCHMARKS.md records a run.

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::{EventSpec, FakeApi, scrape};

const REASONS: [&str; 6] = [
    "BackOff",
    "Unhealthy",
    "FailedMount",
    "Evicted",
    "FailedScheduling",
    "Pulled",
];
const NAMESPACES: usize = 20;
const LIVE: usize = 2_000;

struct Exporter(Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// A tiny deterministic generator, so a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below as u64) as usize
    }
}

struct Live {
    namespace: String,
    name: String,
    reason: &'static str,
    count: u64,
}

/// Waits (up to 30 s) until every counter equals the truth.
async fn wait_exact(addr: SocketAddr, truth: &BTreeMap<(String, &'static str), u64>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = scrape(addr).await;
        let exact = truth.iter().all(|((namespace, reason), value)| {
            s.warnings(namespace, reason).unwrap_or(0.0) == *value as f64
        });
        if exact {
            return true;
        }
        if Instant::now() > deadline {
            for ((namespace, reason), value) in truth {
                let got = s.warnings(namespace, reason).unwrap_or(0.0);
                if got != *value as f64 {
                    println!("{namespace} {reason}: counted {got}, true {value}");
                }
            }
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let seconds: u64 = std::env::var("KEM_SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1800);
    let api = FakeApi::start().await;
    let mut rng = Rng(0x5eed);
    let mut live: Vec<Live> = Vec::new();
    let mut next_name = 0u64;
    // Truth: occurrences since the exporter's baseline, per (namespace, reason).
    let mut truth: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    let create = |api: &FakeApi,
                  rng: &mut Rng,
                  live: &mut Vec<Live>,
                  next_name: &mut u64|
     -> (String, &'static str) {
        *next_name += 1;
        let event = Live {
            namespace: format!("ns-{}", rng.next(NAMESPACES)),
            name: format!("pod-{next_name}.x"),
            reason: REASONS[rng.next(REASONS.len())],
            count: 1,
        };
        api.create(&EventSpec::new(
            &event.namespace,
            &event.name,
            event.reason,
            1,
        ));
        let key = (event.namespace.clone(), event.reason);
        live.push(event);
        key
    };
    // History before the exporter starts: its baseline.
    for _ in 0..LIVE {
        create(&api, &mut rng, &mut live, &mut next_name);
    }

    let addr = support::free_local_addr();
    let child = support::exporter_process(&api, addr)
        .args(["--log.level", "error"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let _exporter = Exporter(child);
    while tokio::net::TcpStream::connect(addr).await.is_err()
        || support::http_get(addr, "/readyz").await.0 != 200
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("minute  updates-sent  relists  RSS-MiB  exact");
    let started = Instant::now();
    let mut sent = 0u64;
    let mut minute = 0u64;
    let mut drops = 0u64;
    let mut rss_samples = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        // About 400 changes a second: bumps, and churn that keeps ~2,000 Events live.
        for _ in 0..40 {
            match rng.next(20) {
                0 => {
                    // A new Event after the baseline: its first occurrence counts.
                    let key = create(&api, &mut rng, &mut live, &mut next_name);
                    *truth.entry(key).or_default() += 1;
                }
                1 if live.len() > LIVE / 2 => {
                    let gone = live.swap_remove(rng.next(live.len()));
                    api.delete(&gone.namespace, &gone.name);
                }
                _ => {
                    let index = rng.next(live.len());
                    let event = &mut live[index];
                    event.count += 1;
                    api.set_count(&event.namespace, &event.name, event.count);
                    *truth
                        .entry((event.namespace.clone(), event.reason))
                        .or_default() += 1;
                }
            }
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let elapsed = started.elapsed().as_secs();
        if elapsed / 45 > drops {
            drops = elapsed / 45;
            api.change(|state| state.close_watches());
        }
        if elapsed / 60 > minute {
            minute = elapsed / 60;
            // Wait until the exporter has seen everything and compare; then open a 410 gap in
            // which counts grow unseen, and check the relist caught them up before going on (an
            // Event deleted before the relist would take its unseen growth with it: that is
            // unobservable, and not what this soak measures).
            let exact = wait_exact(addr, &truth).await;
            let s = scrape(addr).await;
            let rss = rss_kib(pid) as f64 / 1024.0;
            rss_samples.push(rss);
            println!(
                "{minute:>6}  {sent:>12}  {:>7}  {rss:>7.1}  {exact}",
                s.own("relists_total")
            );
            assert!(exact, "counts diverged at minute {minute}:\n{}", s.text);
            api.gap(|state| {
                for _ in 0..50 {
                    let index = rng.next(live.len());
                    let event = &mut live[index];
                    event.count += 3;
                    state.set_count(&event.namespace, &event.name, event.count);
                    *truth
                        .entry((event.namespace.clone(), event.reason))
                        .or_default() += 3;
                }
            });
            assert!(
                wait_exact(addr, &truth).await,
                "the relist after minute {minute} is not exact"
            );
        }
    }
    let mean = |samples: &[f64]| samples.iter().sum::<f64>() / samples.len().max(1) as f64;
    // Early: minutes 3 to 5, once the allocator has warmed up; late: the last three minutes.
    let early = &rss_samples[2.min(rss_samples.len())..5.min(rss_samples.len())];
    let late = &rss_samples[rss_samples.len().saturating_sub(3)..];
    let (first, last) = (mean(early), mean(late));
    println!(
        "soak: {sent} changes in {} s; RSS {first:.1} MiB early, {last:.1} MiB at the end; counts exact at every check",
        started.elapsed().as_secs()
    );
}
