//! The plan: every desired resource with what was observed and the change `diff` decided, plus the
//! owned resources nobody wants any more. `plan` prints it, `up` executes it, `status` reports it
//! per resource. Rendering is plain text (the CLI adds colour) or JSON.

use std::fmt::Write;

use serde::Serialize;

use crate::desired::DesiredState;
use crate::kind::Settings;
use crate::resource::{Change, Desired, FieldDiff, Kind, Lifecycle, Observed, Outputs, diff};
use crate::target::{Found, ResourceId};

/// One desired resource's decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub desired: Desired,
    pub observed: Observed,
    pub change: Change,
}

/// An owned resource that is not desired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leftover {
    pub found: Found,
    /// Kept for `orchestrate rollback` (the endpoint's previous config and its model): not deleted,
    /// not drift.
    pub kept_for_rollback: bool,
}

/// Everything `up` would do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub deployment: String,
    pub target: String,
    pub steps: Vec<Step>,
    pub leftovers: Vec<Leftover>,
}

impl Plan {
    /// Decides every change. `observed` is in the order of `state.resources`.
    pub fn new(state: &DesiredState, target: String, observed: Vec<Observed>, owned: Vec<Found>) -> Plan {
        let steps: Vec<Step> = state
            .resources
            .iter()
            .zip(observed)
            .map(|(desired, observed)| Step {
                change: diff(desired, &observed),
                desired: desired.clone(),
                observed,
            })
            .collect();
        let keep = rollback_names(&steps, &owned);
        let leftovers = owned
            .into_iter()
            // Training jobs are permanent records in SageMaker: never leftovers.
            .filter(|found| !found.kind.facts().permanent)
            .filter(|found| {
                !steps
                    .iter()
                    .any(|s| s.desired.kind() == found.kind && s.desired.name == found.name)
            })
            .map(|found| Leftover {
                kept_for_rollback: keep.contains(&ResourceId::new(found.kind, &found.name)),
                found,
            })
            .collect();
        Plan {
            deployment: state.deployment.clone(),
            target,
            steps,
            leftovers,
        }
    }

    /// Changes to make (leftovers to delete included).
    pub fn changes(&self) -> usize {
        self.steps.iter().filter(|s| !s.change.is_noop()).count() + self.deletions().count()
    }

    pub fn is_noop(&self) -> bool {
        self.changes() == 0
    }

    /// Leftovers `up` deletes.
    pub fn deletions(&self) -> impl Iterator<Item = &Found> {
        self.leftovers
            .iter()
            .filter(|l| !l.kept_for_rollback)
            .map(|l| &l.found)
    }

    /// The resources that exist under the wanted names but are not the deployment's.
    pub fn taken(&self) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .filter(|s| matches!(s.change, Change::Taken { .. }))
    }

    /// Takes over the resources the user named (`--adopt KIND/NAME`): each must be one the plan
    /// found taken; its change becomes what makes it the deployment's (its tags among it). The
    /// error names what cannot be adopted.
    pub fn adopt(&mut self, resources: &[ResourceId]) -> Result<(), String> {
        for id in resources {
            let Some(step) = self
                .steps
                .iter_mut()
                .find(|s| s.desired.kind() == id.kind && s.desired.name == id.name)
            else {
                return Err(format!(
                    "--adopt {}/{}: the deployment has no {} of that name",
                    id.kind.key(),
                    id.name,
                    id.kind
                ));
            };
            if !matches!(step.change, Change::Taken { .. }) {
                return Err(format!(
                    "--adopt {}/{}: it is not someone else's {} (it is missing or already the deployment's); nothing to adopt",
                    id.kind.key(),
                    id.name,
                    id.kind
                ));
            }
            step.change = crate::resource::diff_adopting(&step.desired, &step.observed);
        }
        Ok(())
    }

    pub fn step(&self, kind: Kind) -> Option<&Step> {
        self.steps.iter().find(|s| s.desired.kind() == kind)
    }

    /// The plan as people read it:
    /// ```text
    ///   + training job     iot-anomaly-1a2b3c4d5e6f
    ///   ~ endpoint         iot-anomaly
    ///       endpoint_config: want iot-anomaly-…, have iot-anomaly-…
    ///   - model            iot-anomaly-0f9e8d7c6b5a (no longer desired)
    /// ```
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Plan for `{}` on {}:", self.deployment, self.target);
        for step in &self.steps {
            let name = display_name(step);
            let _ = writeln!(
                out,
                "  {:<3} {:<16} {}",
                step.change.symbol(),
                step.desired.kind().label(),
                name
            );
            match &step.change {
                Change::Update { fields } => write_fields(&mut out, fields),
                Change::Replace { reason, fields } => {
                    let _ = writeln!(out, "        because {reason}");
                    write_fields(&mut out, fields);
                }
                Change::Wait { state } => {
                    let _ = writeln!(out, "        in progress ({state}): wait for it");
                }
                Change::Taken { held_by } => {
                    let _ = writeln!(
                        out,
                        "        {}",
                        taken_note(step.desired.kind(), &step.desired.name, held_by.as_deref())
                    );
                }
                Change::NoOp | Change::Create => {}
            }
        }
        for leftover in &self.leftovers {
            let note = if leftover.kept_for_rollback {
                "kept for rollback"
            } else {
                "no longer desired"
            };
            let symbol = if leftover.kept_for_rollback { " " } else { "-" };
            let _ = writeln!(
                out,
                "  {symbol:<3} {:<16} {} ({note})",
                leftover.found.kind.label(),
                leftover.found.name
            );
        }
        let count = |f: fn(&Change) -> bool| self.steps.iter().filter(|s| f(&s.change)).count();
        let creates = count(|c| matches!(c, Change::Create));
        let updates = count(|c| matches!(c, Change::Update { .. }));
        let replaces = count(|c| matches!(c, Change::Replace { .. }));
        let waits = count(|c| matches!(c, Change::Wait { .. }));
        let taken = count(|c| matches!(c, Change::Taken { .. }));
        let deletes = self.deletions().count();
        if self.is_noop() {
            let _ = writeln!(out, "No changes: {} resources in sync.", self.steps.len());
        } else {
            let _ = write!(
                out,
                "{creates} to create, {updates} to update, {replaces} to replace, {waits} to wait for, {deletes} to delete"
            );
            if taken > 0 {
                let _ = write!(
                    out,
                    "; {taken} not the deployment's, which `up` will not take over"
                );
            }
            let _ = writeln!(out, ".");
        }
        out
    }
}

fn display_name(step: &Step) -> String {
    match (&step.observed, step.desired.kind()) {
        (Observed::Present { name, .. }, Kind::TrainingJob) if step.change.is_noop() => name.clone(),
        _ => step.desired.name.clone(),
    }
}

/// What the plan and `status` say of a resource that is not the deployment's.
pub fn taken_note(kind: Kind, name: &str, held_by: Option<&str>) -> String {
    let whose = match held_by {
        Some(other) => format!("it belongs to deployment `{other}`"),
        None => "it does not carry the deployment's tag".to_string(),
    };
    format!(
        "exists, but {whose}: `up` will not take it over; `orchestrate up --adopt {}/{name}` adopts it",
        kind.key()
    )
}

fn write_fields(out: &mut String, fields: &[FieldDiff]) {
    for field in fields {
        let _ = writeln!(out, "        {field}");
    }
}

/// The config (and its model and image) to keep for `orchestrate rollback`: when the endpoint is
/// about to move to a new config, the one it serves now (it becomes the previous one); otherwise the
/// previous config the target recorded for the endpoint.
fn rollback_names(steps: &[Step], owned: &[Found]) -> Vec<ResourceId> {
    let Some(endpoint) = steps.iter().find(|s| s.desired.kind() == Kind::Endpoint) else {
        return Vec::new();
    };
    let Observed::Present {
        settings: Settings::Endpoint(serving),
        outputs,
        ..
    } = &endpoint.observed
    else {
        return Vec::new();
    };
    let Settings::Endpoint(wanted) = &endpoint.desired.settings else {
        return Vec::new();
    };
    if serving.hosting != wanted.hosting {
        // Replaced (SageMaker cannot update between instances and serverless): the new endpoint
        // cannot be updated back to a config of the other hosting either, so none is kept.
        return Vec::new();
    }
    let serving = Some(serving.endpoint_config.as_str()).filter(|c| !c.is_empty());
    let moving = serving.is_some_and(|c| c != wanted.endpoint_config);
    let keep_config = if moving {
        serving.map(str::to_string)
    } else {
        match outputs {
            Outputs::Endpoint(endpoint) => endpoint.previous_config.clone(),
            _ => None,
        }
    };
    let Some(config) = keep_config.filter(|c| !c.is_empty()) else {
        return Vec::new();
    };
    let find = |kind: Kind, name: &str| owned.iter().find(|f| f.kind == kind && f.name == name);
    let mut keep = vec![ResourceId::new(Kind::EndpointConfig, &config)];
    if let Some(model) = find(Kind::EndpointConfig, &config).and_then(|f| f.used(Kind::Model)) {
        keep.push(ResourceId::new(Kind::Model, model));
        // And the model's image: rolling back to a model needs the binary that serves it.
        if let Some(image) = find(Kind::Model, model).and_then(|f| f.used(Kind::Image)) {
            keep.push(ResourceId::new(Kind::Image, image));
        }
    }
    keep
}

/// One resource's standing, as `status` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Standing {
    InSync,
    Drifted {
        fields: Vec<FieldDiff>,
        action: &'static str,
    },
    Missing,
    InProgress {
        state: String,
    },
    Failed {
        reason: String,
    },
    /// Exists under the wanted name but is not the deployment's (see `Change::Taken`).
    Taken {
        held_by: Option<String>,
    },
    /// Owned by the deployment but not desired.
    Orphan,
    /// The endpoint's previous config or model, kept for rollback.
    KeptForRollback,
}

impl Standing {
    /// Whether this standing counts as drift for `status`'s exit code.
    pub fn is_drift(&self) -> bool {
        !matches!(self, Standing::InSync | Standing::KeptForRollback)
    }

    pub fn label(&self) -> &'static str {
        match self {
            Standing::InSync => "in sync",
            Standing::Drifted { .. } => "drifted",
            Standing::Missing => "missing",
            Standing::InProgress { .. } => "in progress",
            Standing::Failed { .. } => "failed",
            Standing::Taken { .. } => "not ours",
            Standing::Orphan => "orphan",
            Standing::KeptForRollback => "kept for rollback",
        }
    }
}

/// One line of `status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusEntry {
    pub kind: Kind,
    pub name: String,
    #[serde(flatten)]
    pub standing: Standing,
}

impl StatusEntry {
    /// Whether this line counts as drift for `status`'s exit code: its standing does, except an
    /// endpoint in progress, which is a rollout under way (SageMaker shifting traffic and baking,
    /// or the endpoint being created), not drift.
    pub fn is_drift(&self) -> bool {
        match (&self.standing, self.kind) {
            (Standing::InProgress { .. }, Kind::Endpoint) => false,
            (standing, _) => standing.is_drift(),
        }
    }
}

/// `status`: the plan, read as drift.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    pub deployment: String,
    pub target: String,
    pub resources: Vec<StatusEntry>,
    pub in_sync: bool,
}

impl StatusReport {
    pub fn from_plan(plan: &Plan) -> StatusReport {
        let mut resources: Vec<StatusEntry> = plan
            .steps
            .iter()
            .map(|step| {
                let standing = match (&step.change, &step.observed) {
                    (_, Observed::Absent) => Standing::Missing,
                    (
                        _,
                        Observed::Present {
                            lifecycle: Lifecycle::Failed(reason),
                            ..
                        },
                    ) => Standing::Failed {
                        reason: reason.clone(),
                    },
                    (Change::Wait { state }, _) => Standing::InProgress { state: state.clone() },
                    (Change::Update { fields }, _) => Standing::Drifted {
                        fields: fields.clone(),
                        action: "update",
                    },
                    (Change::Replace { fields, .. }, _) => Standing::Drifted {
                        fields: fields.clone(),
                        action: "replace",
                    },
                    (Change::Taken { held_by }, _) => Standing::Taken {
                        held_by: held_by.clone(),
                    },
                    (Change::NoOp | Change::Create, _) => Standing::InSync,
                };
                StatusEntry {
                    kind: step.desired.kind(),
                    name: display_name(step),
                    standing,
                }
            })
            .collect();
        resources.extend(plan.leftovers.iter().map(|l| StatusEntry {
            kind: l.found.kind,
            name: l.found.name.clone(),
            standing: if l.kept_for_rollback {
                Standing::KeptForRollback
            } else {
                Standing::Orphan
            },
        }));
        let in_sync = resources.iter().all(|r| !r.is_drift());
        StatusReport {
            deployment: plan.deployment.clone(),
            target: plan.target.clone(),
            resources,
            in_sync,
        }
    }

    /// Resources reported absent (all of them after `down`).
    pub fn all_missing(&self) -> bool {
        self.resources
            .iter()
            .all(|r| matches!(r.standing, Standing::Missing))
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Status of `{}` on {}:", self.deployment, self.target);
        for entry in &self.resources {
            let _ = writeln!(
                out,
                "  {:<18} {:<16} {}",
                entry.standing.label(),
                entry.kind.label(),
                entry.name
            );
            match &entry.standing {
                Standing::Drifted { fields, action } => {
                    for field in fields {
                        let _ = writeln!(out, "        {field}");
                    }
                    let _ = writeln!(out, "        (`orchestrate up` will {action} it)");
                }
                Standing::InProgress { state } => {
                    let _ = writeln!(out, "        {state}");
                }
                Standing::Failed { reason } => {
                    let _ = writeln!(out, "        {reason}");
                }
                Standing::Taken { held_by } => {
                    let _ = writeln!(
                        out,
                        "        {}",
                        taken_note(entry.kind, &entry.name, held_by.as_deref())
                    );
                }
                _ => {}
            }
        }
        let drifted = self.resources.iter().filter(|r| r.is_drift()).count();
        let rolling_out = self
            .resources
            .iter()
            .any(|r| matches!(r.standing, Standing::InProgress { .. }) && !r.is_drift());
        if self.in_sync && rolling_out {
            let _ = writeln!(out, "No drift; the endpoint's rollout is in progress.");
        } else if self.in_sync {
            let _ = writeln!(out, "In sync.");
        } else {
            let _ = writeln!(
                out,
                "{drifted} of {} resources differ from deploy.yaml.",
                self.resources.len()
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::{EndpointConfigSettings, EndpointSettings, ModelSettings};
    use crate::resource::EndpointOutputs;
    use crate::values::{
        Capacity, Digest, Hosting, ImageRef, InstanceType, Instances, NetworkIsolation, Tags,
    };

    fn image() -> ImageRef {
        ImageRef {
            repository: "repo".into(),
            digest: Digest::sha256(b"new"),
        }
    }

    fn model(job: &str) -> ModelSettings {
        ModelSettings {
            image: image(),
            training_job: job.into(),
            network_isolation: NetworkIsolation::Isolated,
            invocation: Default::default(),
            tags: Tags::default(),
        }
    }

    fn config(model: &str) -> EndpointConfigSettings {
        EndpointConfigSettings {
            model: model.into(),
            variant: Capacity::Instances(Instances {
                count: 1,
                instance_type: InstanceType::new("ml.m5.large").unwrap(),
            }),
            invocation: Default::default(),
            data_capture: Default::default(),
            tags: Tags::default(),
        }
    }

    fn endpoint(config: &str) -> EndpointSettings {
        EndpointSettings {
            endpoint_config: config.into(),
            hosting: Hosting::Instances,
            tags: Tags::default(),
        }
    }

    fn state() -> DesiredState {
        DesiredState {
            deployment: "iot".into(),
            target: spec::Target::Local,
            resources: vec![
                Desired::new("iot-new", model("job")),
                Desired::new("iot-cfg-new", config("iot-new")),
                Desired::new("iot", endpoint("iot-cfg-new")),
            ],
        }
    }

    /// The endpoint serving `config`, with `previous` recorded as the config it ran before.
    fn serving(config: &str, previous: Option<&str>) -> Observed {
        Observed::present("iot", endpoint(config), Lifecycle::Ready).with_outputs(Outputs::Endpoint(
            EndpointOutputs {
                previous_config: previous.map(str::to_string),
            },
        ))
    }

    fn converged() -> Vec<Observed> {
        vec![
            Observed::present("iot-new", model("job"), Lifecycle::Ready),
            Observed::present("iot-cfg-new", config("iot-new"), Lifecycle::Ready),
            serving("iot-cfg-new", None),
        ]
    }

    #[test]
    fn converged_deployment_is_a_noop_plan_and_in_sync() {
        let plan = Plan::new(&state(), "local".into(), converged(), vec![]);
        assert!(plan.is_noop());
        assert!(plan.render().contains("No changes: 3 resources in sync."));
        let status = StatusReport::from_plan(&plan);
        assert!(status.in_sync);
    }

    #[test]
    fn roll_forward_keeps_the_config_being_left_and_deletes_the_older_previous_one() {
        let observed = vec![
            Observed::Absent,
            Observed::Absent,
            serving("iot-cfg-old", Some("iot-cfg-older")),
        ];
        let old_image = Digest::sha256(b"old").to_string();
        let owned = vec![
            Found::new(Kind::EndpointConfig, "iot-cfg-old").using(Kind::Model, "iot-old"),
            Found::new(Kind::Model, "iot-old").using(Kind::Image, &old_image),
            Found::new(Kind::Image, &old_image),
            Found::new(Kind::EndpointConfig, "iot-cfg-older").using(Kind::Model, "iot-older"),
            Found::new(Kind::Model, "iot-older"),
            Found::new(Kind::TrainingJob, "iot-job-1"),
        ];
        let plan = Plan::new(&state(), "local".into(), observed, owned);
        let text = plan.render();
        assert!(text.contains("  +   model            iot-new"), "{text}");
        assert!(text.contains("  ~   endpoint         iot"), "{text}");
        assert!(
            text.contains("endpoint_config: want iot-cfg-new, have iot-cfg-old"),
            "{text}"
        );
        // The endpoint serves "old" until the update: it becomes the previous config, kept for
        // rollback; "older" (the previous one so far) is no longer needed.
        assert!(text.contains("iot-cfg-old (kept for rollback)"), "{text}");
        assert!(text.contains("iot-old (kept for rollback)"), "{text}");
        assert!(
            text.contains(&format!("{old_image} (kept for rollback)")),
            "{text}"
        );
        let deletions: Vec<&str> = plan.deletions().map(|f| f.name.as_str()).collect();
        assert_eq!(deletions, ["iot-cfg-older", "iot-older"]);
        assert!(
            text.contains("2 to create, 1 to update, 0 to replace, 0 to wait for, 2 to delete."),
            "{text}"
        );
    }

    #[test]
    fn a_move_between_instances_and_serverless_replaces_the_endpoint_and_keeps_no_config() {
        let serverless = Observed::present(
            "iot",
            EndpointSettings {
                hosting: Hosting::Serverless,
                ..endpoint("iot-cfg-old")
            },
            Lifecycle::Ready,
        )
        .with_outputs(Outputs::Endpoint(EndpointOutputs {
            previous_config: Some("iot-cfg-older".into()),
        }));
        let observed = vec![Observed::Absent, Observed::Absent, serverless];
        let owned = vec![
            Found::new(Kind::EndpointConfig, "iot-cfg-old").using(Kind::Model, "iot-old"),
            Found::new(Kind::Model, "iot-old"),
            Found::new(Kind::EndpointConfig, "iot-cfg-older"),
        ];
        let plan = Plan::new(&state(), "local".into(), observed, owned);
        let text = plan.render();
        assert!(text.contains("  -/+ endpoint         iot"), "{text}");
        assert!(text.contains("because hosting cannot change in place"), "{text}");
        assert!(
            text.contains("hosting: want instances, have serverless"),
            "{text}"
        );
        assert!(!text.contains("kept for rollback"), "{text}");
        let deletions: Vec<&str> = plan.deletions().map(|f| f.name.as_str()).collect();
        assert_eq!(deletions, ["iot-cfg-old", "iot-old", "iot-cfg-older"]);
    }

    #[test]
    fn converged_endpoint_keeps_its_recorded_previous_config() {
        let mut observed = converged();
        observed[2] = serving("iot-cfg-new", Some("iot-cfg-old"));
        let owned = vec![
            Found::new(Kind::EndpointConfig, "iot-cfg-old").using(Kind::Model, "iot-old"),
            Found::new(Kind::Model, "iot-old"),
        ];
        let plan = Plan::new(&state(), "local".into(), observed, owned);
        assert!(plan.is_noop(), "{}", plan.render());
        assert!(plan.leftovers.iter().all(|l| l.kept_for_rollback));
        assert!(StatusReport::from_plan(&plan).in_sync);
    }

    #[test]
    fn status_names_each_kind_of_drift() {
        let observed = vec![
            Observed::Absent,
            Observed::present(
                "iot-cfg-new",
                config("iot-new"),
                Lifecycle::InProgress("Creating".into()),
            ),
            serving("iot-cfg-x", None),
        ];
        let owned = vec![Found::new(Kind::Model, "stray")];
        let status = StatusReport::from_plan(&Plan::new(&state(), "local".into(), observed, owned));
        let standings: Vec<&str> = status.resources.iter().map(|r| r.standing.label()).collect();
        assert_eq!(standings, ["missing", "in progress", "drifted", "orphan"]);
        assert!(!status.in_sync);
        let text = status.render();
        assert!(
            text.contains("endpoint_config: want iot-cfg-new, have iot-cfg-x"),
            "{text}"
        );
        assert!(text.contains("4 of 4 resources differ"), "{text}");
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["resources"][2]["status"], "drifted");
        assert_eq!(json["resources"][2]["kind"], "endpoint");
    }
}
