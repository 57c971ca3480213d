//! From a parsed command line to an open target: loading deploy.yaml (all diagnostics before any
//! side effect), opening the target it names (`--target` over the file's `target`) as an
//! [`OpenTarget`], building the image and computing the desired state ([`Session::open`]).
//!
//! Commands are plain async code over the [`Session`]. A command that changes something runs that
//! part in [`Session::while_locked`], at the moment it knows it will change something, so a no-op
//! `up` makes no write at all.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use aws::AwsTarget;
use engine::target::LockRequest;
use engine::{DesiredState, Target};
use local::LocalTarget;
use spec::Spec;

use crate::cli::Global;
use crate::interrupt::Interrupt;
use crate::model_image;
use crate::render::Printer;
use crate::reporter::Progress;
use crate::targets::OpenTarget;

/// The hint when AWS cannot be reached.
pub const AWS_CREDENTIALS: &str = "cannot reach AWS: orchestrate uses the standard credential chain (AWS_PROFILE, \
     AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, SSO, an instance role); check them with \
     `aws sts get-caller-identity`, or use `--target local` to deploy on this machine";

/// The first AWS call failed: one line when no credentials were found at all (which sources were
/// tried is in the `-v` log), the credential hint above the cause otherwise.
pub fn account_error(error: aws::clients::AccountError) -> anyhow::Error {
    match error {
        error @ aws::clients::AccountError::NoCredentials { .. } => {
            anyhow::anyhow!("{error}; or use `--target local` to deploy on this machine")
        }
        error => anyhow::Error::new(error).context(AWS_CREDENTIALS),
    }
}

/// Opening the AWS target failed: its account (see [`account_error`]) or `ORCHESTRATE_REGISTRY`.
fn open_error(error: aws::target::OpenError) -> anyhow::Error {
    match error {
        aws::target::OpenError::Account(error) => account_error(error),
        error => anyhow::Error::new(error),
    }
}

/// Everything a command needs from the command line.
#[derive(Debug)]
pub struct Context {
    pub global: Global,
    pub printer: Printer,
    /// stderr is a terminal and nothing else writes to it: draw spinners.
    pub spinners: bool,
    /// Set by Ctrl-C.
    pub interrupt: Interrupt,
}

impl Context {
    /// Reads and validates deploy.yaml, with `--target` applied. On failure the error is the
    /// [`spec::Diagnostics`], every problem at once.
    pub fn load_spec(&self) -> anyhow::Result<Spec> {
        let overrides = spec::Overrides {
            target: self.global.target.map(Into::into),
        };
        Ok(spec::load_with(&self.global.file, &overrides)?)
    }

    /// The folder of deploy.yaml (relative paths in it are relative to this folder).
    pub fn deploy_dir(&self) -> PathBuf {
        match self.global.file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    pub fn progress(&self) -> Progress {
        Progress::new(self.spinners, self.global.verbose > 0)
    }
}

/// What a command needs prepared before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// Build the image and compute the desired state (every command that plans).
    pub desired_state: bool,
}

/// An open target, ready for a command.
pub struct Session<'a> {
    pub cx: &'a Context,
    pub spec: &'a Spec,
    pub target: OpenTarget,
    pub progress: &'a Progress,
    /// Present when the command asked for it ([`Needs::desired_state`]).
    state: Option<DesiredState>,
}

impl<'a> Session<'a> {
    /// Opens the spec's target and prepares what the command needs: for [`Needs::desired_state`]
    /// the image digest (building the image if the binary changed) and the desired state.
    pub async fn open(
        cx: &'a Context,
        spec: &'a Spec,
        progress: &'a Progress,
        needs: Needs,
    ) -> anyhow::Result<Session<'a>> {
        let (target, binary) = match spec.target {
            spec::Target::Local => {
                let binary = model_image_binary(cx, needs.desired_state, progress)?;
                let target = LocalTarget::open(spec, &binary).context("cannot open the local target")?;
                (OpenTarget::Local(target), binary)
            }
            spec::Target::Aws => {
                // Credentials first: without them nothing else is worth doing (or building).
                let step = progress.begin(format!("AWS account ({})", spec.region));
                let clients = aws::Clients::load(spec.region.as_str()).await;
                clients.identify().await.map_err(account_error)?;
                let binary = model_image_binary(cx, needs.desired_state, progress)?;
                let target = AwsTarget::with_clients(spec, &binary, clients)
                    .await
                    .map_err(open_error)?;
                step.done(&target.describe());
                (OpenTarget::Aws(target), binary)
            }
        };
        let state = if needs.desired_state {
            let step = progress.begin(format!("image of {}", binary.display()));
            let digest = target.image_digest()?;
            step.done(&format!("image {digest}"));
            let facts = target.facts(&digest)?;
            Some(engine::desired_state(spec, spec.target, &facts))
        } else {
            None
        };
        Ok(Session {
            cx,
            spec,
            target,
            progress,
            state,
        })
    }

    /// The desired state; only for commands that declared [`Needs::desired_state`].
    pub fn state(&self) -> &DesiredState {
        self.state
            .as_ref()
            .expect("the command declared Needs::desired_state")
    }

    /// Runs `work` under the deployment's lock (taken now, when the command knows it will change
    /// something, so a no-op `up` writes nothing) and gives the lock back when `work` ends: after
    /// a success, a failure, or Ctrl-C, which stops `work` at its next await with
    /// [`interrupted`](crate::interrupt::interrupted). A lock that cannot be given back is a
    /// warning: it expires, and the next run says so.
    pub async fn while_locked<R>(&self, work: impl Future<Output = anyhow::Result<R>>) -> anyhow::Result<R> {
        let interrupt = &self.cx.interrupt;
        let _hold = interrupt.hold();
        let owner = owner();
        let request = LockRequest {
            state: self.state.as_ref(),
            owner: &owner,
            break_lock: self.cx.global.break_lock,
        };
        let lock = self
            .target
            .lock(request)
            .await
            .map_err(anyhow::Error::from_boxed)?;
        let result = tokio::select! {
            biased;
            () = interrupt.triggered() => {
                self.progress.close();
                Err(crate::interrupt::interrupted())
            }
            result = work => result,
        };
        if let Some(lock) = lock
            && let Err(error) = self.target.release(lock).await
        {
            self.progress.line(&format!(
                "warning: could not release the deployment lock: {}; it expires on its own, or the next run \
                 takes it with --break-lock",
                engine::target::error_chain(&*error)
            ));
        }
        result
    }
}

/// Who holds a lock: `user@host pid N`.
fn owner() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "someone".to_string());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string());
    format!("{user}@{host} pid {}", std::process::id())
}

/// The model-image binary. Commands that build the image find (or build) it; the others only pass
/// it along to the target, which does not run it, so a missing one is not worth a build.
fn model_image_binary(cx: &Context, needed: bool, progress: &Progress) -> anyhow::Result<PathBuf> {
    let explicit = cx.global.model_image.as_deref();
    if needed {
        let (path, source) = model_image::locate(explicit, &cx.deploy_dir(), |line| progress.line(line))?;
        tracing::debug!(path = %path.display(), ?source, "model-image binary");
        Ok(path)
    } else {
        Ok(explicit
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("model-image")))
    }
}
