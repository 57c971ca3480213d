//! One resource as the deployment wants it (`Desired`: a name and typed [`Settings`]), what a target
//! found (`Observed`), what it makes known once it exists ([`Outputs`]), and the pure decision
//! between wanted and found (`diff` -> `Change`).
//!
//! Every settings field says what a difference means (declared with the kind in [`crate::kind`]):
//! update in place, replace (the resource is immutable in SageMaker), or nothing (owned by someone
//! else). A target adds [`Check`]s for what it enforces on its own (an AWS bucket's encryption); they
//! count like fields. That keeps `diff` one pure function, exhaustively tested, shared by every
//! target and by `status`.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

pub use crate::kind::{Kind, Settings};

/// What a difference in one field means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnChange {
    /// Changed in place (tags, a policy, the endpoint's config).
    Update,
    /// The resource cannot change: a new one replaces it.
    Replace,
    /// Owned by someone else (e.g. the autoscaler's instance count): never drift.
    Ignore,
}

/// One resource as the deployment wants it. Names are computed before any side effect.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Desired {
    /// The resource's name. A training job's name is its base; targets add the attempt suffix.
    pub name: String,
    pub settings: Settings,
    /// How long the executor waits for this resource to become ready after applying a change.
    #[serde(rename = "wait_timeout_secs", serialize_with = "duration_secs")]
    pub wait_timeout: Duration,
}

impl Desired {
    /// The executor's default wait for a pending resource.
    pub const DEFAULT_WAIT: Duration = Duration::from_secs(600);

    pub fn new(name: impl Into<String>, settings: impl Into<Settings>) -> Self {
        Self {
            name: name.into(),
            settings: settings.into(),
            wait_timeout: Self::DEFAULT_WAIT,
        }
    }

    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    pub fn kind(&self) -> Kind {
        self.settings.kind()
    }
}

fn duration_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// The lifecycle state of a resource that exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum Lifecycle {
    Ready,
    /// Being created or updated (`InProgress`, `Creating`, `Updating`); the text is the target's word.
    InProgress(String),
    /// Ended badly or broken (a Failed training job, a Failed endpoint, a local server that died);
    /// the text is the reason. `up` replaces it.
    Failed(String),
}

/// Something a target enforces on a resource beyond its settings (an AWS bucket's encryption, a
/// role's policy), as the target wants it and as it found it, in words for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub field: &'static str,
    pub want: String,
    pub have: String,
    pub on_change: OnChange,
}

impl Check {
    pub fn new(
        field: &'static str,
        want: impl fmt::Display,
        have: impl fmt::Display,
        on_change: OnChange,
    ) -> Self {
        Self {
            field,
            want: want.to_string(),
            have: have.to_string(),
            on_change,
        }
    }
}

/// What a resource makes known once it exists, for the resources that consume it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "of", rename_all = "snake_case")]
pub enum Outputs {
    #[default]
    None,
    TrainingJob(TrainingJobOutputs),
    Endpoint(EndpointOutputs),
}

/// A completed (or running) training job attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrainingJobOutputs {
    /// The attempt's name, `<base>-<n>`.
    pub attempt: String,
    /// Where the target keeps the attempt's model artifact (an `s3://` URL on AWS, the attempt's
    /// model folder locally); the target that wrote it is the one that reads it.
    pub model_artifact: String,
}

/// What an endpoint records about its own history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EndpointOutputs {
    /// The config it served before its last update (what `orchestrate rollback` returns to).
    pub previous_config: Option<String>,
}

/// What a target found for a desired resource.
// One observation per resource and run: boxing the present case would buy nothing but indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "presence", rename_all = "snake_case")]
pub enum Observed {
    Absent,
    Present {
        /// The actual name (for a training job: with its attempt suffix).
        name: String,
        settings: Settings,
        lifecycle: Lifecycle,
        /// What the target enforces beyond the settings (see [`Check`]).
        checks: Vec<Check>,
        outputs: Outputs,
    },
}

impl Observed {
    pub fn present(name: impl Into<String>, settings: impl Into<Settings>, lifecycle: Lifecycle) -> Self {
        Observed::Present {
            name: name.into(),
            settings: settings.into(),
            lifecycle,
            checks: Vec::new(),
            outputs: Outputs::None,
        }
    }

    pub fn with_check(mut self, check: Check) -> Self {
        if let Observed::Present { checks, .. } = &mut self {
            checks.push(check);
        }
        self
    }

    pub fn with_checks(mut self, more: impl IntoIterator<Item = Check>) -> Self {
        if let Observed::Present { checks, .. } = &mut self {
            checks.extend(more);
        }
        self
    }

    pub fn with_outputs(mut self, new: Outputs) -> Self {
        if let Observed::Present { outputs, .. } = &mut self {
            *outputs = new;
        }
        self
    }

    /// The settings found, if present.
    pub fn settings(&self) -> Option<&Settings> {
        match self {
            Observed::Present { settings, .. } => Some(settings),
            Observed::Absent => None,
        }
    }

    /// The outputs of a resource that is present and ready.
    pub fn ready_outputs(&self) -> Option<&Outputs> {
        match self {
            Observed::Present {
                lifecycle: Lifecycle::Ready,
                outputs,
                ..
            } => Some(outputs),
            _ => None,
        }
    }
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldDiff {
    pub field: &'static str,
    pub want: String,
    /// `None`: the field is missing on the resource.
    pub have: Option<String>,
    #[serde(skip)]
    pub on_change: OnChange,
}

impl fmt::Display for FieldDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.have {
            Some(have) => write!(f, "{}: want {}, have {}", self.field, self.want, have),
            None => write!(f, "{}: want {}, have nothing", self.field, self.want),
        }
    }
}

/// What must happen to a resource for it to match the deployment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Change {
    /// Exists and matches.
    NoOp,
    /// Does not exist.
    Create,
    /// Exists; these fields change in place.
    Update { fields: Vec<FieldDiff> },
    /// Exists but cannot become what is wanted: a new one replaces it.
    Replace { reason: String, fields: Vec<FieldDiff> },
    /// Exists and is still being created or updated: wait for it.
    Wait { state: String },
    /// Exists under the wanted name but is not the deployment's: it lacks the deployment's tag, or
    /// names another deployment (`held_by`). `up` does not take it over unless told to
    /// (`--adopt KIND/NAME`, see `Plan::adopt`).
    Taken { held_by: Option<String> },
}

impl Change {
    pub fn is_noop(&self) -> bool {
        matches!(self, Change::NoOp)
    }

    /// `+`, `~`, `-/+`, `…` or blank: the plan's margin symbol.
    pub fn symbol(&self) -> &'static str {
        match self {
            Change::NoOp => " ",
            Change::Create => "+",
            Change::Update { .. } => "~",
            Change::Replace { .. } => "-/+",
            Change::Wait { .. } => "…",
            Change::Taken { .. } => "!",
        }
    }

    pub fn verb(&self) -> &'static str {
        match self {
            Change::NoOp => "unchanged",
            Change::Create => "create",
            Change::Update { .. } => "update",
            Change::Replace { .. } => "replace",
            Change::Wait { .. } => "wait for",
            Change::Taken { .. } => "take over",
        }
    }
}

/// The pure decision: what turns `observed` into `desired`.
///
/// - absent -> create;
/// - in progress -> wait (re-attach to a running training job, an updating endpoint);
/// - failed -> replace (a failed training job is followed by a new attempt);
/// - a differing `Replace` field or check -> replace, naming the fields; otherwise differing
///   `Update` fields and checks -> update; `Ignore` fields never count.
pub fn diff(desired: &Desired, observed: &Observed) -> Change {
    if let Observed::Present { settings, .. } = observed
        && let Some(held_by) = not_ours(&desired.settings, settings)
    {
        return Change::Taken { held_by };
    }
    diff_adopting(desired, observed)
}

/// `Some(holder)` when `have` carries tags without the deployment's own tag that `want` carries:
/// the deployment named by `have`'s tag, if any.
fn not_ours(want: &crate::Settings, have: &crate::Settings) -> Option<Option<String>> {
    let wanted = want.tags()?.get(crate::desired::DEPLOYMENT_TAG)?;
    let found = have.tags()?.get(crate::desired::DEPLOYMENT_TAG);
    (found != Some(wanted)).then(|| found.map(str::to_string))
}

/// [`diff`] for a resource the user adopts: whose it is does not matter, its settings (the
/// deployment's tag among them) are made what the deployment wants.
pub fn diff_adopting(desired: &Desired, observed: &Observed) -> Change {
    let (settings, lifecycle, checks) = match observed {
        Observed::Absent => return Change::Create,
        Observed::Present {
            settings,
            lifecycle,
            checks,
            ..
        } => (settings, lifecycle, checks),
    };
    match lifecycle {
        Lifecycle::InProgress(state) => return Change::Wait { state: state.clone() },
        Lifecycle::Failed(reason) => {
            return Change::Replace {
                reason: format!("the existing one failed: {reason}"),
                fields: vec![],
            };
        }
        Lifecycle::Ready => {}
    }
    let Some(mut differing) = desired.settings.diff(settings) else {
        return Change::Replace {
            reason: format!(
                "the target reported a {} where a {} was wanted",
                settings.kind(),
                desired.kind()
            ),
            fields: vec![],
        };
    };
    differing.extend(checks.iter().filter(|c| c.want != c.have).map(|c| FieldDiff {
        field: c.field,
        want: c.want.clone(),
        have: Some(c.have.clone()),
        on_change: c.on_change,
    }));
    let of = |policy: OnChange| -> Vec<FieldDiff> {
        differing
            .iter()
            .filter(|d| d.on_change == policy)
            .cloned()
            .collect()
    };
    let immutable = of(OnChange::Replace);
    if !immutable.is_empty() {
        let names: Vec<&str> = immutable.iter().map(|d| d.field).collect();
        return Change::Replace {
            reason: format!("{} cannot change in place", names.join(", ")),
            fields: immutable,
        };
    }
    let mutable = of(OnChange::Update);
    if mutable.is_empty() {
        Change::NoOp
    } else {
        Change::Update { fields: mutable }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::{EndpointConfigSettings, EndpointSettings};
    use crate::values::{Capacity, Hosting, InstanceType, Instances, Tags};

    fn tags() -> Tags {
        [("orchestrate:deployment", "iot")].into_iter().collect()
    }

    fn config(model: &str, count: u32) -> EndpointConfigSettings {
        EndpointConfigSettings {
            model: model.to_string(),
            variant: Capacity::Instances(Instances {
                count,
                instance_type: InstanceType::new("ml.m5.large").unwrap(),
            }),
            invocation: Default::default(),
            data_capture: Default::default(),
            tags: tags(),
        }
    }

    fn desired() -> Desired {
        Desired::new("iot-cfg", config("iot-model", 1))
    }

    fn ready(settings: EndpointConfigSettings) -> Observed {
        Observed::present("iot-cfg", settings, Lifecycle::Ready)
    }

    #[test]
    fn a_namesake_without_the_deployments_tag_is_taken_not_updated() {
        let mut untagged = config("iot-model", 1);
        untagged.tags = [("team", "ml")].into_iter().collect();
        assert_eq!(
            diff(&desired(), &ready(untagged.clone())),
            Change::Taken { held_by: None }
        );
        let mut other = config("iot-model", 1);
        other.tags = [("orchestrate:deployment", "fraud")].into_iter().collect();
        assert_eq!(
            diff(&desired(), &ready(other)),
            Change::Taken {
                held_by: Some("fraud".into())
            }
        );
        // Adopted, it is updated to the deployment's settings, its tags among them.
        match diff_adopting(&desired(), &ready(untagged)) {
            Change::Update { fields } => assert_eq!(fields[0].field, "tags"),
            other => panic!("{other:?}"),
        }
        // Ours, but in progress or failed: the usual decisions.
        let running = Observed::present(
            "iot-cfg",
            config("iot-model", 1),
            Lifecycle::InProgress("Creating".into()),
        );
        assert!(matches!(diff(&desired(), &running), Change::Wait { .. }));
    }

    #[test]
    fn absent_is_create() {
        assert_eq!(diff(&desired(), &Observed::Absent), Change::Create);
    }

    #[test]
    fn matching_is_noop() {
        assert_eq!(diff(&desired(), &ready(config("iot-model", 1))), Change::NoOp);
    }

    #[test]
    fn mutable_field_is_update_naming_want_and_have() {
        let mut have = config("iot-model", 1);
        have.tags = [("orchestrate:deployment", "iot"), ("team", "x")]
            .into_iter()
            .collect();
        let change = diff(&desired(), &ready(have));
        match &change {
            Change::Update { fields } => {
                assert_eq!(fields.len(), 1);
                assert_eq!(fields[0].field, "tags");
                assert_eq!(
                    fields[0].to_string(),
                    r#"tags: want {orchestrate:deployment: "iot"}, have {orchestrate:deployment: "iot", team: "x"}"#
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(change.symbol(), "~");
    }

    #[test]
    fn immutable_field_wins_over_mutable_ones() {
        let mut have = config("iot-other", 2);
        have.tags = [("orchestrate:deployment", "iot"), ("team", "x")]
            .into_iter()
            .collect();
        match diff(&desired(), &ready(have)) {
            Change::Replace { reason, fields } => {
                assert_eq!(reason, "model, variant cannot change in place");
                assert_eq!(fields.len(), 2);
                assert_eq!(
                    fields[1].to_string(),
                    "variant: want 1 x ml.m5.large, have 2 x ml.m5.large"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn target_checks_count_like_fields() {
        let observed = ready(config("iot-model", 1)).with_check(Check::new(
            "encryption",
            "AES256",
            "AES256",
            OnChange::Update,
        ));
        assert_eq!(diff(&desired(), &observed), Change::NoOp);
        let observed = observed.with_check(Check::new("encryption", "AES256", "none", OnChange::Update));
        match diff(&desired(), &observed) {
            Change::Update { fields } => {
                assert_eq!(fields[0].to_string(), "encryption: want AES256, have none")
            }
            other => panic!("{other:?}"),
        }
        let observed = ready(config("iot-model", 1)).with_check(Check::new(
            "region",
            "us-east-1",
            "eu-west-1",
            OnChange::Replace,
        ));
        assert!(matches!(diff(&desired(), &observed), Change::Replace { .. }));
        let observed =
            ready(config("iot-model", 1)).with_check(Check::new("owner", "a", "b", OnChange::Ignore));
        assert_eq!(diff(&desired(), &observed), Change::NoOp);
    }

    #[test]
    fn another_kind_is_never_in_sync() {
        let observed = Observed::present(
            "iot-cfg",
            EndpointSettings {
                endpoint_config: "iot-cfg".into(),
                hosting: Hosting::Instances,
                tags: tags(),
            },
            Lifecycle::Ready,
        );
        assert!(matches!(diff(&desired(), &observed), Change::Replace { .. }));
    }

    #[test]
    fn in_progress_is_wait_and_failed_is_replace() {
        let observed = Observed::present(
            "iot-cfg",
            config("iot-model", 1),
            Lifecycle::InProgress("Updating".into()),
        );
        assert_eq!(
            diff(&desired(), &observed),
            Change::Wait {
                state: "Updating".into()
            }
        );
        let observed = Observed::present(
            "iot-cfg",
            config("iot-model", 1),
            Lifecycle::Failed("AlgorithmError: boom".into()),
        );
        match diff(&desired(), &observed) {
            Change::Replace { reason, .. } => assert!(reason.contains("AlgorithmError: boom")),
            other => panic!("{other:?}"),
        }
    }
}
