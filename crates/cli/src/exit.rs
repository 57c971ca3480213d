//! Exit codes, the contract scripts and CI rely on: 0 success (or in sync), 1 error, 2 drift
//! (`status` found differences, `plan` has changes to make), and 130 when interrupted by Ctrl-C
//! (the shell's convention for SIGINT).

use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; for `status`, everything is in sync; for `plan`, nothing to change.
    Success,
    /// Something failed (deploy.yaml invalid, a resource failed, bad usage). Also the code of usage
    /// errors, which clap would otherwise report as 2, the drift code.
    Error,
    /// `status` found drift, or `plan` has changes.
    Drift,
    /// Stopped by Ctrl-C.
    Interrupted,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Error => 1,
            Exit::Drift => 2,
            Exit::Interrupted => 130,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// An error that has already been shown to the user (e.g. inside a JSON document with the plan it
/// interrupted); `main` only exits with its code.
#[derive(Debug, thiserror::Error)]
#[error("already reported")]
pub struct Reported(pub Exit);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        assert_eq!(Exit::Success.code(), 0);
        assert_eq!(Exit::Error.code(), 1);
        assert_eq!(Exit::Drift.code(), 2);
        assert_eq!(Exit::Interrupted.code(), 130);
    }
}
