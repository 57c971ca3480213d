//! Progress on stderr while the executor works: one `indicatif` spinner per resource in progress
//! (with its elapsed time and the target's word for its state, training log lines printed above the
//! spinners) when stderr is a terminal, and plain timestamped lines otherwise (CI logs, pipes,
//! `--output json`). Results go to stdout and never pass through here.
//!
//! [`Progress`] implements the engine's [`Reporter`] for the executor's events, and adds
//! [`Progress::begin`]/[`Step::done`] for the CLI's own slow steps (building the image).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use engine::Kind;
use engine::progress::{Event, Reporter};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::render::elapsed;

/// A plain waiting line is repeated at most this often while the state word stays the same.
const PLAIN_WAIT_EVERY: Duration = Duration::from_secs(30);

/// Renders progress events on stderr.
pub struct Progress {
    mode: Mode,
    /// Print every log line (`-v`); otherwise a training job's metric lines (forty per split) are
    /// counted and summarised in one line, since `up` prints the metrics from metrics.json anyway.
    full_log: bool,
    /// Metric lines left out, per resource.
    metric_lines: Mutex<HashMap<(Kind, String), usize>>,
}

enum Mode {
    Spinners(Spinners),
    Plain(Plain),
}

impl Progress {
    /// Spinners when `interactive` (stderr is a terminal and nothing else writes to it), plain lines
    /// otherwise; every log line with `full_log`.
    pub fn new(interactive: bool, full_log: bool) -> Self {
        let mode = if interactive {
            Mode::Spinners(Spinners::new())
        } else {
            Mode::Plain(Plain::default())
        };
        Self {
            mode,
            full_log,
            metric_lines: Mutex::default(),
        }
    }

    fn metric_lines(&self) -> std::sync::MutexGuard<'_, HashMap<(Kind, String), usize>> {
        self.metric_lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Prints one line above any spinner.
    pub fn line(&self, text: &str) {
        match &self.mode {
            Mode::Spinners(s) => s.println(text),
            Mode::Plain(p) => p.println(text),
        }
    }

    /// Starts one of the CLI's own steps ("build image"); finish it with [`Step::done`].
    pub fn begin(&self, what: impl Into<String>) -> Step<'_> {
        let what = what.into();
        let bar = match &self.mode {
            Mode::Spinners(s) => Some(s.spinner(&what)),
            Mode::Plain(p) => {
                p.println(&what);
                None
            }
        };
        Step {
            progress: self,
            bar,
            started: Instant::now(),
        }
    }

    /// Stops every spinner still running (the executor stopped with an error, or was interrupted):
    /// each is left on screen marked as not finished.
    pub fn close(&self) {
        if let Mode::Spinners(s) = &self.mode {
            s.close();
        }
    }
}

impl Reporter for Progress {
    fn event(&self, event: Event) {
        match &event {
            Event::Log { kind, name, line } if !self.full_log && metrics::is_metric_line(line) => {
                *self.metric_lines().entry((*kind, name.clone())).or_default() += 1;
                return;
            }
            Event::Finished { kind, name, .. } => {
                if let Some(count) = self.metric_lines().remove(&(*kind, name.clone())) {
                    self.line(&metric_lines_summary(name, count));
                }
            }
            _ => {}
        }
        match &self.mode {
            Mode::Spinners(s) => s.event(event),
            Mode::Plain(p) => p.event(event),
        }
    }
}

/// The one line that stands for the metric lines a resource logged.
fn metric_lines_summary(name: &str, count: usize) -> String {
    format!(
        "  {name} | … {count} metric lines (the metrics follow below; every line with -v, and in the training log)"
    )
}

/// One of the CLI's own steps in progress.
pub struct Step<'a> {
    progress: &'a Progress,
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Step<'_> {
    /// Ends the step with a one-line result ("built image sha256:…").
    pub fn done(self, result: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        self.progress
            .line(&format!("✓ {result} ({})", elapsed(self.started.elapsed())));
    }
}

impl Drop for Step<'_> {
    fn drop(&mut self) {
        // Dropped without `done`: the step failed; the error is reported by the caller.
        if let Some(bar) = &self.bar
            && !bar.is_finished()
        {
            bar.abandon();
        }
    }
}

/// What users read for an event that finished: `created bucket x`, `training job y ready`.
fn finished_phrase(verb: &str, kind: Kind, name: &str) -> String {
    match verb {
        "create" => format!("created {kind} {name}"),
        "update" => format!("updated {kind} {name}"),
        "replace" => format!("replaced {kind} {name}"),
        "delete" => format!("deleted {kind} {name}"),
        "wait for" => format!("{kind} {name} ready"),
        other => format!("{other} {kind} {name}: done"),
    }
}

fn started_phrase(verb: &str, kind: Kind, name: &str) -> String {
    match verb {
        "create" => format!("creating {kind} {name}"),
        "update" => format!("updating {kind} {name}"),
        "replace" => format!("replacing {kind} {name}"),
        "delete" => format!("deleting {kind} {name}"),
        "wait for" => format!("waiting for {kind} {name}"),
        other => format!("{other} {kind} {name}"),
    }
}

/// Spinners on a terminal.
struct Spinners {
    multi: MultiProgress,
    /// Running spinners by resource, with the phrase they started with.
    bars: Mutex<HashMap<(Kind, String), (ProgressBar, String)>>,
}

impl Spinners {
    fn new() -> Self {
        Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::default(),
        }
    }

    fn style() -> ProgressStyle {
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .tick_strings(&["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏", "✓"])
    }

    fn spinner(&self, message: &str) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(Self::style());
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    }

    fn println(&self, text: &str) {
        // MultiProgress prints above the spinners; with none drawn it prints plainly.
        let _ = self.multi.println(text);
    }

    fn bars(&self) -> std::sync::MutexGuard<'_, HashMap<(Kind, String), (ProgressBar, String)>> {
        self.bars
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn event(&self, event: Event) {
        match event {
            Event::Observed {
                resources,
                elapsed: took,
            } => {
                self.println(&format!("Observed {resources} resources ({}).", elapsed(took)));
            }
            Event::Started { kind, name, verb } => {
                let phrase = started_phrase(verb, kind, &name);
                let bar = self.spinner(&phrase);
                if let Some((old, _)) = self.bars().insert((kind, name), (bar, phrase)) {
                    old.finish_and_clear();
                }
            }
            Event::Waiting {
                kind, name, state, ..
            } => {
                if let Some((bar, phrase)) = self.bars().get(&(kind, name)) {
                    bar.set_message(format!("{phrase}: {state}"));
                }
            }
            Event::Log { name, line, .. } => self.println(&format!("  {name} | {line}")),
            Event::Finished {
                kind,
                name,
                verb,
                elapsed: took,
            } => {
                if let Some((bar, _)) = self.bars().remove(&(kind, name.clone())) {
                    bar.finish_and_clear();
                }
                self.println(&format!(
                    "✓ {} ({})",
                    finished_phrase(verb, kind, &name),
                    elapsed(took)
                ));
            }
            Event::GatePassed { checks } => {
                self.println(&format!("✓ quality gate passed: {}", checks.join(", ")));
            }
        }
    }

    fn close(&self) {
        for (_, (bar, phrase)) in self.bars().drain() {
            bar.abandon_with_message(format!("{phrase}: not finished"));
        }
    }
}

/// Plain timestamped lines.
#[derive(Default)]
struct Plain {
    /// Last waiting line printed per resource: its state word and when.
    waiting: Mutex<HashMap<(Kind, String), (String, Instant)>>,
}

impl Plain {
    fn println(&self, text: &str) {
        eprintln!("[{}] {text}", clock(SystemTime::now()));
    }

    fn event(&self, event: Event) {
        match event {
            Event::Observed {
                resources,
                elapsed: took,
            } => {
                self.println(&format!("observed {resources} resources ({})", elapsed(took)));
            }
            Event::Started { kind, name, verb } => self.println(&started_phrase(verb, kind, &name)),
            Event::Waiting {
                kind,
                name,
                state,
                elapsed: took,
            } => {
                let mut waiting = self
                    .waiting
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let key = (kind, name.clone());
                let due = match waiting.get(&key) {
                    Some((last, at)) => *last != state || at.elapsed() >= PLAIN_WAIT_EVERY,
                    None => true,
                };
                if due {
                    self.println(&format!("{kind} {name}: {state} ({})", elapsed(took)));
                    waiting.insert(key, (state, Instant::now()));
                }
            }
            Event::Log { name, line, .. } => self.println(&format!("{name} | {line}")),
            Event::Finished {
                kind,
                name,
                verb,
                elapsed: took,
            } => {
                self.println(&format!(
                    "{} ({})",
                    finished_phrase(verb, kind, &name),
                    elapsed(took)
                ));
            }
            Event::GatePassed { checks } => {
                self.println(&format!("quality gate passed: {}", checks.join(", ")))
            }
        }
    }
}

/// `HH:MM:SS` in UTC (no time-zone database needed; CI logs add their own dates).
fn clock(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_utc_time_of_day() {
        let t = UNIX_EPOCH + Duration::from_secs(86_400 * 3 + 3600 * 14 + 60 * 5 + 9);
        assert_eq!(clock(t), "14:05:09");
    }

    #[test]
    fn phrases_read_as_sentences() {
        assert_eq!(started_phrase("create", Kind::Bucket, "b"), "creating bucket b");
        assert_eq!(
            finished_phrase("wait for", Kind::TrainingJob, "j"),
            "training job j ready"
        );
        assert_eq!(
            finished_phrase("delete", Kind::EndpointConfig, "c"),
            "deleted endpoint config c"
        );
    }

    fn log(line: &str) -> Event {
        Event::Log {
            kind: Kind::TrainingJob,
            name: "job".into(),
            line: line.into(),
        }
    }

    #[test]
    fn metric_lines_are_folded_unless_the_full_log_is_asked_for() {
        let short = Progress::new(false, false);
        short.event(log("model-image train: done in 1.0s"));
        short.event(log("validation:pr_auc=0.991000"));
        short.event(log("validation:pr_auc_ci_low=0.980000"));
        let key = (Kind::TrainingJob, "job".to_string());
        assert_eq!(short.metric_lines().get(&key), Some(&2));
        short.event(Event::Finished {
            kind: Kind::TrainingJob,
            name: "job".into(),
            verb: "create",
            elapsed: Duration::from_secs(1),
        });
        assert!(
            short.metric_lines().is_empty(),
            "summarised once the job finished"
        );
        assert_eq!(
            metric_lines_summary("job", 2),
            "  job | … 2 metric lines (the metrics follow below; every line with -v, and in the training log)"
        );
        let full = Progress::new(false, true);
        full.event(log("validation:pr_auc=0.991000"));
        assert!(full.metric_lines().is_empty(), "-v prints every line");
    }
}
