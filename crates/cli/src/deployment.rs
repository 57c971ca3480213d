//! From a parsed command line to an open target: loading deploy.yaml (all diagnostics before any
//! side effect), choosing the target (`--target` over the file's `target`), opening it, taking its
//! lock, building the image and computing the desired state.
//!
//! Commands are written once, generically over `engine::Target`, as an [`OnTarget`]; [`dispatch`] is
//! the one place that knows the concrete targets. A command that changes something takes the
//! deployment's lock itself ([`Session::lock`]), at the moment it knows it will change something, so
//! a no-op `up` makes no write at all.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use aws::AwsTarget;
use engine::values::Digest;
use engine::{DesiredState, Facts, Target};
use local::LocalTarget;
use spec::Spec;

use crate::cli::Global;
use crate::model_image;
use crate::render::Printer;
use crate::reporter::Progress;
use crate::run_lock::{Lockable, RunLock};

/// The hint when AWS cannot be reached.
pub const AWS_CREDENTIALS: &str = "cannot reach AWS: orchestrate uses the standard credential chain (AWS_PROFILE, \
     AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, SSO, an instance role); check them with \
     `aws sts get-caller-identity`, or use `--target local` to deploy on this machine";

/// Everything a command needs from the command line.
#[derive(Debug)]
pub struct Context {
    pub global: Global,
    pub printer: Printer,
    /// stderr is a terminal and nothing else writes to it: draw spinners.
    pub spinners: bool,
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

/// The targets this binary can open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetChoice {
    Local,
    Aws,
}

impl TargetChoice {
    /// The target of a validated spec (where `--target` has already replaced the file's choice).
    pub fn of(spec: &Spec) -> Self {
        match spec.target {
            spec::Target::Local => TargetChoice::Local,
            spec::Target::Aws => TargetChoice::Aws,
        }
    }
}

/// What a command needs prepared before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// Build the image and compute the desired state (every command that plans).
    pub desired_state: bool,
}

/// An open target, ready for a command.
pub struct Session<'a, T> {
    pub spec: &'a Spec,
    pub target: T,
    pub progress: &'a Progress,
    /// Present when the command asked for it ([`Needs::desired_state`]).
    state: Option<DesiredState>,
    /// `--break-lock`.
    break_lock: bool,
}

impl<T: Lockable> Session<'_, T> {
    /// Takes the deployment's lock; hold it until the changes are done, then
    /// [`release`](RunLock::release) it (also when they failed).
    pub async fn lock(&self) -> anyhow::Result<RunLock> {
        self.target
            .take_lock(self.spec, self.state.as_ref(), self.break_lock)
            .await
    }
}

impl<T> Session<'_, T> {
    /// The desired state; only for commands that declared [`Needs::desired_state`].
    pub fn state(&self) -> &DesiredState {
        self.state
            .as_ref()
            .expect("the command declared Needs::desired_state")
    }
}

/// A command, written once for every target.
#[allow(async_fn_in_trait)]
pub trait OnTarget {
    type Output;

    fn needs(&self) -> Needs;

    async fn run<T: Target + Lockable>(self, session: &Session<'_, T>) -> anyhow::Result<Self::Output>;
}

/// Opens the spec's target, prepares what `command` needs and runs it.
pub async fn dispatch<C: OnTarget>(
    cx: &Context,
    spec: &Spec,
    progress: &Progress,
    command: C,
) -> anyhow::Result<C::Output> {
    let needs = command.needs();
    match TargetChoice::of(spec) {
        TargetChoice::Local => {
            let binary = model_image_binary(cx, needs.desired_state, progress)?;
            let target = LocalTarget::open(spec, &binary).context("cannot open the local target")?;
            run_on(cx, spec, progress, command, target, &binary).await
        }
        TargetChoice::Aws => {
            // Credentials first: without them nothing else is worth doing (or building).
            let step = progress.begin(format!("AWS account ({})", spec.region));
            let clients = aws::Clients::load(spec.region.as_str()).await;
            clients.account().await.context(AWS_CREDENTIALS)?;
            let binary = model_image_binary(cx, needs.desired_state, progress)?;
            let target = AwsTarget::with_clients(spec, &binary, clients)
                .await
                .context(AWS_CREDENTIALS)?;
            step.done(&target.describe());
            run_on(cx, spec, progress, command, target, &binary).await
        }
    }
}

/// What the desired state needs from a target: the image digest and the target's facts.
trait Planned {
    fn image_digest(&self) -> anyhow::Result<Digest>;
    fn facts(&self, image_digest: &Digest) -> anyhow::Result<Facts>;
}

impl Planned for LocalTarget {
    fn image_digest(&self) -> anyhow::Result<Digest> {
        Ok(LocalTarget::image_digest(self)?)
    }

    fn facts(&self, image_digest: &Digest) -> anyhow::Result<Facts> {
        Ok(LocalTarget::facts(self, image_digest)?)
    }
}

impl Planned for AwsTarget {
    fn image_digest(&self) -> anyhow::Result<Digest> {
        Ok(AwsTarget::image_digest(self)?)
    }

    fn facts(&self, image_digest: &Digest) -> anyhow::Result<Facts> {
        Ok(AwsTarget::facts(self, image_digest)?)
    }
}

/// Computes the desired state if the command needs it, then runs the command on the open target.
async fn run_on<C: OnTarget, T: Target + Lockable + Planned>(
    cx: &Context,
    spec: &Spec,
    progress: &Progress,
    command: C,
    target: T,
    binary: &Path,
) -> anyhow::Result<C::Output> {
    let state = if command.needs().desired_state {
        let step = progress.begin(format!("image of {}", binary.display()));
        let digest = target.image_digest()?;
        step.done(&format!("image {digest}"));
        let facts = target.facts(&digest)?;
        Some(engine::desired_state(spec, spec.target, &facts))
    } else {
        None
    };
    let session = Session {
        spec,
        target,
        progress,
        state,
        break_lock: cx.global.break_lock,
    };
    command.run(&session).await
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
