//! Progress events the executor emits while it works. Rendering them (spinners on a terminal, plain
//! lines otherwise, JSON) is the CLI's job; the engine only says what happens.

use std::time::Duration;

use crate::resource::Kind;

/// Something the executor did or is waiting for.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Observation of every resource finished.
    Observed { resources: usize, elapsed: Duration },
    /// A change to one resource started (`verb`: create, update, replace, wait for, delete).
    Started {
        kind: Kind,
        name: String,
        verb: &'static str,
    },
    /// Still waiting for a resource; `state` is the target's word for it.
    Waiting {
        kind: Kind,
        name: String,
        state: String,
        elapsed: Duration,
    },
    /// A log line of a pending resource (a training job's output).
    Log { kind: Kind, name: String, line: String },
    /// The change finished.
    Finished {
        kind: Kind,
        name: String,
        verb: &'static str,
        elapsed: Duration,
    },
    /// The quality gate was checked against the training job's validation metrics.
    GatePassed { checks: Vec<String> },
}

/// Receives events. Must be cheap: called from the executor's loop.
pub trait Reporter: Sync {
    fn event(&self, event: Event);
}

/// Discards events.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {
    fn event(&self, _event: Event) {}
}

/// Collects events (tests).
#[derive(Debug, Default)]
pub struct Recorder {
    pub events: std::sync::Mutex<Vec<Event>>,
}

impl Reporter for Recorder {
    fn event(&self, event: Event) {
        self.events.lock().expect("recorder lock").push(event);
    }
}
