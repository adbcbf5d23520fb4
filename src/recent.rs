//! Recent activity for the status page: which series grew most in the last minutes.
//!
//! Pure and bounded. Once a minute the caller hands over every series' value; the growth since the
//! last sample is kept for the hour, but only each minute's [`KEPT_PER_MINUTE`] largest, so memory
//! is one value per series (the last sample) plus a fixed amount, whatever the cardinality. A top
//! list is exact while no minute had more growing series than that; the page says when one had.

use std::collections::{HashMap, VecDeque};

use crate::ledger::SeriesId;

/// Growing series remembered per minute.
pub const KEPT_PER_MINUTE: usize = 500;
/// Minutes remembered.
pub const MINUTES: usize = 60;

#[derive(Debug, Default)]
pub struct Recent {
    /// The first sample is the baseline: what the counters held before is not recent.
    started: bool,
    last: Vec<u64>,
    /// Newest last: per minute, (series, growth) of the largest growths.
    minutes: VecDeque<Vec<(SeriesId, u64)>>,
    /// Minutes whose growing series did not all fit.
    truncated: VecDeque<bool>,
}

/// The series that grew most over a window, and whether the window is exact.
#[derive(Debug, PartialEq, Eq)]
pub struct Top {
    pub series: Vec<(SeriesId, u64)>,
    /// Whole minutes the window covers (fewer than asked just after start).
    pub minutes: usize,
    pub exact: bool,
}

impl Recent {
    /// One minute has passed: `values[id]` is series `id`'s counter now.
    pub fn sample(&mut self, values: &[u64]) {
        if !self.started {
            self.started = true;
            self.last.extend_from_slice(values);
            return;
        }
        let grown = growth(&self.last, values);
        let truncated = grown.len() > KEPT_PER_MINUTE;
        self.minutes.push_back(largest(grown, KEPT_PER_MINUTE));
        self.truncated.push_back(truncated);
        while self.minutes.len() > MINUTES {
            self.minutes.pop_front();
            self.truncated.pop_front();
        }
        self.last.clear();
        self.last.extend_from_slice(values);
    }

    /// The `n` series that grew most over the last `minutes` whole minutes plus the minute in
    /// progress (`values` now), largest first.
    pub fn top(&self, values: &[u64], minutes: usize, n: usize) -> Top {
        let mut sums: HashMap<SeriesId, u64> = HashMap::new();
        let recorded = self.minutes.len().min(minutes);
        for minute in self.minutes.iter().rev().take(recorded) {
            for (series, grown) in minute {
                *sums.entry(*series).or_default() += grown;
            }
        }
        for (series, grown) in growth(&self.last, values) {
            *sums.entry(series).or_default() += grown;
        }
        let exact = !self.truncated.iter().rev().take(recorded).any(|t| *t);
        Top {
            series: largest(sums.into_iter().collect(), n),
            minutes: recorded,
            exact,
        }
    }
}

/// (series, growth) of every series that grew since `last` (a new series grew from 0).
fn growth(last: &[u64], values: &[u64]) -> Vec<(SeriesId, u64)> {
    values
        .iter()
        .enumerate()
        .filter_map(|(id, value)| {
            let before = last.get(id).copied().unwrap_or(0);
            let grown = value.saturating_sub(before);
            (grown > 0).then_some((id as SeriesId, grown))
        })
        .collect()
}

fn largest(mut grown: Vec<(SeriesId, u64)>, n: usize) -> Vec<(SeriesId, u64)> {
    grown.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    grown.truncate(n);
    grown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_sum_the_minutes_and_the_one_in_progress() {
        let mut recent = Recent::default();
        // The baseline: counts from before (a restored state, --count-existing) are not recent.
        recent.sample(&[0, 0, 0]);
        recent.sample(&[5, 1, 0]); // minute 1: series 0 +5, series 1 +1
        recent.sample(&[5, 9, 0]); // minute 2: series 1 +8
        let now = [6, 9, 2]; // in progress: series 0 +1, series 2 +2
        let last_minute = recent.top(&now, 1, 10);
        assert_eq!(last_minute.series, vec![(1, 8), (2, 2), (0, 1)]);
        assert_eq!(last_minute.minutes, 1);
        let both = recent.top(&now, 5, 2);
        assert_eq!(both.series, vec![(1, 9), (0, 6)]);
        assert_eq!(both.minutes, 2, "fewer minutes than asked after start");
        assert!(both.exact);
    }

    #[test]
    fn memory_is_bounded_and_a_crowded_minute_says_so() {
        let mut recent = Recent::default();
        let mut values = vec![0u64; KEPT_PER_MINUTE * 2];
        for minute in 0..MINUTES + 10 {
            for (id, value) in values.iter_mut().enumerate() {
                *value += (id + minute) as u64 % 3;
            }
            recent.sample(&values);
        }
        assert_eq!(recent.minutes.len(), MINUTES);
        assert!(recent.minutes.iter().all(|m| m.len() <= KEPT_PER_MINUTE));
        let top = recent.top(&values, 60, 5);
        assert!(!top.exact);
        assert_eq!(top.series.len(), 5);
        // The baseline is not growth; a counter that went down (a restart) adds nothing.
        let mut quiet = Recent::default();
        quiet.sample(&[7]);
        assert_eq!(
            quiet.top(&[7], 5, 5).series,
            vec![],
            "the baseline is not growth"
        );
        quiet.sample(&[10]);
        assert_eq!(quiet.top(&[10], 5, 5).series, vec![(0, 3)]);
        assert_eq!(
            quiet.top(&[3], 5, 5).series,
            vec![(0, 3)],
            "a decrease adds nothing"
        );
    }
}
