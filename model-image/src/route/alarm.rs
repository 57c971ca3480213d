//! Green's metrics per period and the alarm evaluation.
//!
//! Periods are aligned to the Unix epoch (period `k` covers `[k * period_ms, (k + 1) * period_ms)`),
//! as CloudWatch aligns one-minute periods to the minute. A green answer lands in the period it
//! finished in. Per period, one datapoint per metric: `invocation_5xx_errors` is the Sum of green's
//! 5xx answers (502 and 504 of the router included), `model_latency` the p99 (nearest rank) of
//! green's response times in microseconds. A period in which green answered nothing is missing data:
//! neither breaching nor not, and skipped (CloudWatch's `TreatMissingData: missing`).
//!
//! **The rule.** The window is the last `periods` periods that have finished, except that the
//! current, unfinished period takes the place of the oldest of them as soon as its datapoint so far
//! already breaches. An alarm is in ALARM when at least `datapoints` of the datapoints in the window
//! breach. Counting the current period early is exact for the error Sum (it only grows, so a period
//! at the threshold will still breach when it ends); for the latency p99 it is a decision on the
//! requests seen so far, taken early on purpose: a bake shorter than a period must still be able to
//! roll back, and rolling back a canary too soon is cheaper than too late. Without breaching
//! datapoints in the current period, only finished periods count, exactly as in CloudWatch.

use std::collections::VecDeque;

use contract::rollout::{AlarmMetric, AlarmRule, AlarmState};

/// What green answered in one period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeriodData {
    pub errors: u64,
    /// Response times in microseconds.
    pub latencies_us: Vec<u64>,
}

impl PeriodData {
    /// The datapoint of `metric`, `None` when green answered nothing (missing data).
    pub fn datapoint(&self, metric: AlarmMetric) -> Option<u64> {
        if self.latencies_us.is_empty() && self.errors == 0 {
            return None;
        }
        match metric {
            AlarmMetric::Invocation5xxErrors => Some(self.errors),
            AlarmMetric::ModelLatency => p99(&self.latencies_us),
        }
    }
}

/// The nearest-rank 99th percentile.
pub fn p99(values: &[u64]) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = (values.len() * 99).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

/// Green's recent periods, newest last.
#[derive(Debug)]
pub struct Periods {
    period_ms: u64,
    keep: usize,
    periods: VecDeque<(u64, PeriodData)>,
}

impl Periods {
    /// Keeps the `keep` most recent periods (the largest `periods` of the rules, plus the current).
    pub fn new(period_ms: u64, keep: usize) -> Self {
        Self {
            period_ms,
            keep: keep.max(1) + 1,
            periods: VecDeque::new(),
        }
    }

    pub fn index(&self, unix_ms: u64) -> u64 {
        unix_ms / self.period_ms
    }

    /// Records one green answer at `unix_ms`: a 5xx or not, and its response time when there was
    /// one (`None` when green could not be reached).
    pub fn record(&mut self, unix_ms: u64, server_error: bool, latency_us: Option<u64>) {
        let index = self.index(unix_ms);
        if self.periods.back().is_none_or(|(i, _)| *i < index) {
            self.periods.push_back((index, PeriodData::default()));
            while self.periods.len() > self.keep {
                self.periods.pop_front();
            }
        }
        // A clock that went back: count the answer in the newest period.
        let period = &mut self.periods.back_mut().expect("pushed above").1;
        if server_error {
            period.errors += 1;
        }
        if let Some(latency) = latency_us {
            period.latencies_us.push(latency);
        }
    }

    fn get(&self, index: u64) -> Option<&PeriodData> {
        self.periods
            .iter()
            .rev()
            .find(|(i, _)| *i == index)
            .map(|(_, d)| d)
    }

    /// Evaluates `rule` at `now_unix_ms` by the rule in the module documentation.
    pub fn evaluate(&self, rule: &AlarmRule, now_unix_ms: u64) -> Evaluation {
        let current = self.index(now_unix_ms);
        let periods = u64::from(rule.periods);
        let current_value = self.get(current).and_then(|d| d.datapoint(rule.metric));
        let current_breaches = current_value.is_some_and(|v| rule.metric.breaches(v, rule.threshold));
        // (period index, datapoint), newest first.
        let mut window: Vec<(u64, u64)> = Vec::new();
        let finished = if current_breaches {
            window.push((current, current_value.unwrap_or_default()));
            periods - 1
        } else {
            periods
        };
        for back in 1..=finished {
            let Some(index) = current.checked_sub(back) else {
                break;
            };
            if let Some(value) = self.get(index).and_then(|d| d.datapoint(rule.metric)) {
                window.push((index, value));
            }
        }
        let breaching = window
            .iter()
            .filter(|(_, v)| rule.metric.breaches(*v, rule.threshold))
            .count();
        let state = if breaching >= rule.datapoints as usize {
            AlarmState::Alarm
        } else {
            AlarmState::Ok
        };
        let reason = if window.is_empty() {
            format!(
                "Threshold Crossed: no datapoints were received for the last {} period(s) of {} ms \
                 (missing data is not breaching).",
                rule.periods, self.period_ms
            )
        } else {
            let listed: Vec<String> = window
                .iter()
                .map(|(index, value)| {
                    format!(
                        "{value}.0 ({})",
                        cloudwatch_time(index.saturating_mul(self.period_ms))
                    )
                })
                .collect();
            format!(
                "Threshold Crossed: {breaching} out of the last {} datapoints [{}] {} {} the \
                 threshold ({}.0) (minimum {} datapoints for OK -> ALARM transition).",
                window.len(),
                listed.join(", "),
                if breaching == 1 { "was" } else { "were" },
                rule.metric.comparison(),
                rule.threshold,
                rule.datapoints
            )
        };
        Evaluation { state, reason }
    }
}

/// One alarm's state and its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub state: AlarmState,
    pub reason: String,
}

/// `dd/MM/yy HH:mm:ss` in UTC, as CloudWatch writes datapoint times in state reasons.
pub fn cloudwatch_time(unix_ms: u64) -> String {
    let seconds = unix_ms / 1000;
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{day:02}/{month:02}/{:02} {:02}:{:02}:{:02}",
        year % 100,
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Howard Hinnant's days-to-civil for days since 1970-01-01 (non-negative).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(metric: AlarmMetric, threshold: u64, datapoints: u32, periods: u32) -> AlarmRule {
        AlarmRule {
            name: "a".to_owned(),
            metric,
            threshold,
            datapoints,
            periods,
        }
    }

    #[test]
    fn p99_is_the_nearest_rank() {
        assert_eq!(p99(&[]), None);
        assert_eq!(p99(&[7]), Some(7));
        let values: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(p99(&values), Some(99));
        let values: Vec<u64> = (1..=1000).collect();
        assert_eq!(p99(&values), Some(990));
    }

    #[test]
    fn times_are_written_as_cloudwatch_does() {
        // 2026-12-02 17:03:00 UTC.
        assert_eq!(cloudwatch_time(1_796_230_980_000), "02/12/26 17:03:00");
        assert_eq!(cloudwatch_time(0), "01/01/70 00:00:00");
    }

    #[test]
    fn two_of_three_finished_periods_breach() {
        let errors = rule(AlarmMetric::Invocation5xxErrors, 1, 2, 3);
        let mut periods = Periods::new(1000, 3);
        periods.record(10_100, true, Some(5));
        periods.record(11_100, false, Some(5));
        // At 12.5 s: period 10 breached, 11 did not, 12 is current and clean.
        let early = periods.evaluate(&errors, 12_500);
        assert_eq!(early.state, AlarmState::Ok, "{}", early.reason);
        assert!(
            early.reason.contains("1 out of the last 2 datapoints"),
            "{}",
            early.reason
        );
        periods.record(12_600, true, Some(5));
        // The current period already breaches: it counts at once.
        let alarm = periods.evaluate(&errors, 12_700);
        assert_eq!(alarm.state, AlarmState::Alarm, "{}", alarm.reason);
        assert!(
            alarm
                .reason
                .starts_with("Threshold Crossed: 2 out of the last 3 datapoints [1.0 ("),
            "{}",
            alarm.reason
        );
        assert!(
            alarm
                .reason
                .contains("greater than or equal to the threshold (1.0)")
        );
        // Much later, the breaching periods have left the window.
        assert_eq!(periods.evaluate(&errors, 30_000).state, AlarmState::Ok);
    }

    #[test]
    fn missing_periods_do_not_breach_and_latency_is_strictly_greater() {
        let latency = rule(AlarmMetric::ModelLatency, 100, 1, 1);
        let mut periods = Periods::new(500, 1);
        assert_eq!(periods.evaluate(&latency, 1_000).state, AlarmState::Ok);
        periods.record(1_000, false, Some(100));
        assert_eq!(periods.evaluate(&latency, 1_100).state, AlarmState::Ok);
        periods.record(1_200, false, Some(101));
        let alarm = periods.evaluate(&latency, 1_300);
        assert_eq!(alarm.state, AlarmState::Alarm, "{}", alarm.reason);
        assert!(alarm.reason.contains("[101.0 ("), "{}", alarm.reason);
        assert!(alarm.reason.contains("was greater than the threshold (100.0)"));
    }

    #[test]
    fn unreachable_green_counts_errors_without_latency() {
        let errors = rule(AlarmMetric::Invocation5xxErrors, 1, 1, 1);
        let latency = rule(AlarmMetric::ModelLatency, 1, 1, 1);
        let mut periods = Periods::new(1000, 1);
        periods.record(5_000, true, None);
        assert_eq!(periods.evaluate(&errors, 5_001).state, AlarmState::Alarm);
        assert_eq!(periods.evaluate(&latency, 5_001).state, AlarmState::Ok);
    }
}
