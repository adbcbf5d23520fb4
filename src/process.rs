//! The standard `process_*` metrics, read from /proc (Linux; zeros elsewhere).

use std::sync::OnceLock;

/// /proc reports CPU times in USER_HZ ticks, which Linux fixes at 100 on every architecture.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessSnapshot {
    pub cpu_seconds: f64,
    pub resident_memory_bytes: u64,
    pub virtual_memory_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub start_time_seconds: f64,
}

impl ProcessSnapshot {
    /// Reads the current values; a file that cannot be read leaves its values at 0.
    pub fn read() -> Self {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let fields = stat_fields(&stat);
        let field = |index: usize| -> u64 {
            fields
                .get(index)
                .and_then(|value| value.parse().ok())
                .unwrap_or(0)
        };
        // Indices count from the field after the command name: 0 is `state` (field 3 in proc(5)).
        let (utime, stime, vsize) = (field(11), field(12), field(20));
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        Self {
            cpu_seconds: (utime + stime) as f64 / TICKS_PER_SECOND,
            resident_memory_bytes: status_kib(&status, "VmRSS:") * 1024,
            virtual_memory_bytes: vsize,
            open_fds: std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64),
            max_fds: max_open_files(&limits),
            start_time_seconds: *START_TIME.get_or_init(|| start_time(field(19))),
        }
    }
}

static START_TIME: OnceLock<f64> = OnceLock::new();

/// The fields after `(comm)`, which may itself contain spaces and parentheses.
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default()
}

fn status_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

fn max_open_files(limits: &str) -> u64 {
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(0)
}

/// Boot time plus the process' start in ticks since boot.
fn start_time(start_ticks: u64) -> f64 {
    let boot_time = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| {
            stat.lines()
                .find_map(|line| line.strip_prefix("btime "))
                .and_then(|value| value.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    boot_time as f64 + start_ticks as f64 / TICKS_PER_SECOND
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_tricky_command_name() {
        let stat = "42 (kube) event (x)) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 777 123456789 900 18446744073709551615";
        let fields = stat_fields(stat);
        assert_eq!(fields[0], "S");
        assert_eq!(fields[11], "250");
        assert_eq!(fields[12], "50");
        assert_eq!(fields[19], "777");
        assert_eq!(fields[20], "123456789");
    }

    #[test]
    fn parses_status_and_limits() {
        assert_eq!(status_kib("Name:\tx\nVmRSS:\t  2048 kB\n", "VmRSS:"), 2048);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), 1024);
    }

    #[test]
    fn this_process_has_plausible_values() {
        let snapshot = ProcessSnapshot::read();
        assert!(snapshot.resident_memory_bytes > 1024 * 1024);
        assert!(snapshot.virtual_memory_bytes >= snapshot.resident_memory_bytes);
        assert!(snapshot.open_fds >= 3);
        assert!(snapshot.max_fds >= snapshot.open_fds);
        assert!(snapshot.start_time_seconds > 1.6e9);
    }
}
