//! One driver for both targets: a [`World`] runs `orchestrate` on the local target or against the
//! AWS world, and checks a deployment the way that target is checked from outside ([`local`] or
//! [`Aws::assert_converged`]). Its async methods need a multi-threaded Tokio runtime (the local
//! checks block: they run in `block_in_place`).

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::aws::Aws;
use crate::{Deployment, Run, local};

/// Where a test deploys.
#[derive(Clone, Copy)]
pub enum World<'a> {
    Local,
    Aws(&'a Aws),
}

impl World<'_> {
    /// `local` or `aws`, for messages and figure lines.
    pub fn label(&self) -> &'static str {
        match self {
            World::Local => "local",
            World::Aws(_) => "aws",
        }
    }

    /// The `orchestrate ARGS` command in the deployment's folder, for this target.
    pub fn command(&self, deployment: &Deployment, args: &[&str]) -> Command {
        match self {
            World::Local => deployment.command(args, &[]),
            World::Aws(aws) => aws.command(deployment, args),
        }
    }

    /// Runs `orchestrate ARGS` to its end.
    pub fn run(&self, deployment: &Deployment, args: &[&str]) -> Run {
        let output = self.command(deployment, args).output().expect("run orchestrate");
        Run::from(output)
    }

    /// Starts `orchestrate ARGS` in the background, its stdout and stderr going to `log.stdout` and
    /// `log.stderr` (files: a run that is killed or waited for late never blocks on a full pipe).
    pub fn spawn(&self, deployment: &Deployment, args: &[&str], log: &Path) -> Child {
        let file = |ext: &str| {
            let path = log.with_extension(ext);
            Stdio::from(std::fs::File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        };
        self.command(deployment, args)
            .stdout(file("stdout"))
            .stderr(file("stderr"))
            .spawn()
            .expect("start orchestrate")
    }

    /// Checks that deployment `name` converged (see [`local::assert_converged`] and
    /// [`Aws::assert_converged`]).
    pub async fn assert_converged(&self, deployment: &Deployment, name: &str, context: &str) {
        match self {
            World::Local => {
                tokio::task::block_in_place(|| local::assert_converged(deployment, name, context))
            }
            World::Aws(aws) => {
                aws.assert_converged(name, context).await;
            }
        }
    }

    /// Checks that nothing of deployment `name` is left (see [`local::assert_gone`] and
    /// [`Aws::assert_gone`]).
    pub async fn assert_gone(&self, deployment: &Deployment, name: &str, context: &str) {
        match self {
            World::Local => tokio::task::block_in_place(|| local::assert_gone(deployment, name, context)),
            World::Aws(aws) => aws.assert_gone(name, context).await,
        }
    }

    /// The holder a run refused by the lock must name: its pid, as each target's lock message
    /// gives it (`(pid N (orchestrate up))` locally, `(user@host pid N, last renewed …)` on AWS).
    pub fn holder_text(&self, pid: u32) -> String {
        match self {
            World::Local => format!("(pid {pid} ("),
            World::Aws(_) => format!(" pid {pid}, "),
        }
    }

    /// The words each target's lock refusal starts with.
    pub fn locked_text(&self) -> &'static str {
        match self {
            World::Local => "another orchestrate run holds the lock",
            World::Aws(_) => "the deployment is locked by another run",
        }
    }
}

/// The text of a spawned run's log file (`log.stdout` or `log.stderr`), empty when there is none.
pub fn log_text(log: &Path, ext: &str) -> String {
    std::fs::read_to_string(log.with_extension(ext)).unwrap_or_default()
}
