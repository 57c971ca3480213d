//! Ctrl-C as an ordinary way for a command to end. The signal only marks the run as interrupted;
//! the command then stops at its next await and returns [`Interrupted`] up the normal path, so the
//! deployment's lock is given back by the same code as after a success or a failure. While a lock
//! is held ([`Interrupt::hold`]) only the code holding it may stop the command, after releasing it.

use std::sync::Arc;

use tokio::sync::watch;

use crate::exit::{Exit, Reported};

/// The error of a command stopped by Ctrl-C (exit code 130; the message was printed at the signal).
pub fn interrupted() -> anyhow::Error {
    Reported(Exit::Interrupted).into()
}

#[derive(Debug, Clone, Copy, Default)]
struct State {
    interrupted: bool,
    /// Sections that must finish their cleanup before the command may be dropped.
    holds: usize,
}

/// Whether the run was interrupted, shared by the signal task and the command.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    state: Arc<watch::Sender<State>>,
}

impl Interrupt {
    /// Marks the run as interrupted.
    pub fn trigger(&self) {
        self.state.send_modify(|state| state.interrupted = true);
    }

    /// Resolves once the run is interrupted.
    pub async fn triggered(&self) {
        let mut state = self.state.subscribe();
        // The sender lives as long as `self`: waiting cannot fail.
        let _ = state.wait_for(|state| state.interrupted).await;
    }

    /// Resolves once the run is interrupted and no section holds on (see [`hold`](Self::hold)).
    pub async fn triggered_and_free(&self) {
        let mut state = self.state.subscribe();
        let _ = state
            .wait_for(|state| state.interrupted && state.holds == 0)
            .await;
    }

    /// Keeps `main` from dropping the command until the returned guard is dropped: the section
    /// watches [`triggered`](Self::triggered) itself and cleans up before it returns.
    pub fn hold(&self) -> Hold {
        self.state.send_modify(|state| state.holds += 1);
        Hold {
            state: self.state.clone(),
        }
    }
}

/// A section that must finish before the command may be dropped.
#[derive(Debug)]
pub struct Hold {
    state: Arc<watch::Sender<State>>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.state.send_modify(|state| state.holds -= 1);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_held_section_keeps_the_command_until_it_lets_go() {
        let interrupt = Interrupt::default();
        let hold = interrupt.hold();
        interrupt.trigger();
        // The section sees the interruption at once...
        tokio::time::timeout(Duration::from_secs(1), interrupt.triggered())
            .await
            .expect("the section sees it");
        // ...but the command may be dropped only once the section let go.
        let free = tokio::time::timeout(Duration::from_secs(1), interrupt.triggered_and_free()).await;
        assert!(free.is_err(), "not while the section holds on");
        drop(hold);
        tokio::time::timeout(Duration::from_secs(1), interrupt.triggered_and_free())
            .await
            .expect("free once the section let go");
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_fires_without_an_interruption() {
        let interrupt = Interrupt::default();
        let waited = tokio::time::timeout(Duration::from_secs(1), interrupt.triggered_and_free()).await;
        assert!(waited.is_err());
    }
}
