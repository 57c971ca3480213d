//! Runs plans against a target: `observe` everything concurrently, `up` applies changes level by
//! level in dependency order (independent resources of a level at once) and owns every wait and its
//! timeout, `down` deletes in reverse dependency order and checks that nothing is left.
//!
//! Two safety checks live here because every target needs them: the quality gate (a model below
//! `quality_gate` never reaches the endpoint) and the endpoint verification after an update
//! (SageMaker rolls a failed update back silently; we report it as the failure it is).

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::join_all;
use spec::QualityGate;
use tokio::time::Instant;

use crate::desired::DesiredState;
use crate::plan::Plan;
use crate::progress::{Event, Reporter};
use crate::resource::{Change, Desired, Kind, Lifecycle, Observed};
use crate::target::{Applied, Found, Target, TargetError};

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(
        "{kind} `{name}` was not ready after {timeout:?} (last state: {state}); raise the timeout in deploy.yaml or check the target"
    )]
    Timeout {
        kind: Kind,
        name: String,
        timeout: Duration,
        state: String,
    },
    #[error("{kind} `{name}` failed: {reason}")]
    Failed {
        kind: Kind,
        name: String,
        reason: String,
    },
    #[error(
        "quality gate: the new model is below the bar ({}); the live endpoint was left untouched",
        failures.join(", ")
    )]
    QualityGate {
        failures: Vec<String>,
        metrics: BTreeMap<String, f64>,
    },
    #[error(
        "the endpoint update did not take: `{name}` runs `{have}` instead of `{want}` (the target rolled the update back); the previous model keeps serving"
    )]
    RolledBack {
        name: String,
        want: String,
        have: String,
    },
    #[error("{0}")]
    Rollback(String),
}

/// Observes every desired resource and everything owned, concurrently, and plans.
pub async fn plan<T: Target>(
    target: &T,
    state: &DesiredState,
    reporter: &dyn Reporter,
) -> Result<Plan, EngineError> {
    let started = Instant::now();
    let observations = join_all(state.resources.iter().map(|d| target.observe(d)));
    let (observations, owned) = tokio::join!(observations, target.owned());
    let observed = observations.into_iter().collect::<Result<Vec<_>, _>>()?;
    reporter.event(Event::Observed {
        resources: observed.len(),
        elapsed: started.elapsed(),
    });
    Ok(Plan::new(state, target.describe(), observed, owned?))
}

/// The dependency level of a kind: 0 for resources that need nothing, else one more than its
/// deepest dependency. Resources of one level are applied concurrently.
pub fn level(kind: Kind) -> usize {
    kind.dependencies()
        .iter()
        .map(|d| level(*d) + 1)
        .max()
        .unwrap_or(0)
}

/// What `up` did.
#[derive(Debug, Clone, PartialEq)]
pub struct UpOutcome {
    pub changed: usize,
    pub deleted: Vec<Found>,
}

/// Applies `plan` (made by [`plan`] from `state`).
pub async fn up<T: Target>(
    target: &T,
    state: &DesiredState,
    plan: &Plan,
    quality_gate: Option<&QualityGate>,
    reporter: &dyn Reporter,
) -> Result<UpOutcome, EngineError> {
    let max_level = Kind::ALL.iter().map(|k| level(*k)).max().unwrap_or(0);
    let rollout_needed = plan.steps.iter().any(|s| {
        matches!(
            s.desired.kind,
            Kind::Model | Kind::EndpointConfig | Kind::Endpoint
        ) && !s.change.is_noop()
    });
    for current in 0..=max_level {
        let steps = plan
            .steps
            .iter()
            .filter(|s| level(s.desired.kind) == current && !s.change.is_noop());
        let results =
            join_all(steps.map(|step| apply_one(target, state, &step.desired, &step.change, reporter))).await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        let finished_training = plan
            .steps
            .iter()
            .any(|s| s.desired.kind == Kind::TrainingJob && level(s.desired.kind) == current);
        if finished_training
            && rollout_needed
            && let Some(gate) = quality_gate
        {
            check_gate(target, state, gate, reporter).await?;
        }
    }
    if let Some(endpoint) = state.get(Kind::Endpoint) {
        verify_endpoint(target, endpoint).await?;
    }
    let mut deleted = Vec::new();
    let mut deletions: Vec<&Found> = plan.deletions().collect();
    deletions.sort_by_key(|f| std::cmp::Reverse(f.kind));
    for found in deletions {
        let started = Instant::now();
        reporter.event(Event::Started {
            kind: found.kind,
            name: found.name.clone(),
            verb: "delete",
        });
        target.delete(found).await?;
        reporter.event(Event::Finished {
            kind: found.kind,
            name: found.name.clone(),
            verb: "delete",
            elapsed: started.elapsed(),
        });
        deleted.push(found.clone());
    }
    Ok(UpOutcome {
        changed: plan.steps.iter().filter(|s| !s.change.is_noop()).count(),
        deleted,
    })
}

async fn apply_one<T: Target>(
    target: &T,
    state: &DesiredState,
    desired: &Desired,
    change: &Change,
    reporter: &dyn Reporter,
) -> Result<(), EngineError> {
    let started = Instant::now();
    let verb = change.verb();
    reporter.event(Event::Started {
        kind: desired.kind,
        name: desired.name.clone(),
        verb,
    });
    let applied = match change {
        Change::Wait { .. } => Applied::Pending,
        _ => target.apply(desired, change, state).await?,
    };
    if applied == Applied::Pending {
        wait_ready(target, desired, reporter).await?;
    }
    reporter.event(Event::Finished {
        kind: desired.kind,
        name: desired.name.clone(),
        verb,
        elapsed: started.elapsed(),
    });
    Ok(())
}

/// Polls `observe` until the resource is ready, failed, or its timeout passes.
async fn wait_ready<T: Target>(
    target: &T,
    desired: &Desired,
    reporter: &dyn Reporter,
) -> Result<(), EngineError> {
    let started = Instant::now();
    loop {
        for line in target.new_log_lines(desired).await {
            reporter.event(Event::Log {
                kind: desired.kind,
                name: desired.name.clone(),
                line,
            });
        }
        let state = match target.observe(desired).await? {
            Observed::Present {
                lifecycle: Lifecycle::Ready,
                ..
            } => {
                for line in target.new_log_lines(desired).await {
                    reporter.event(Event::Log {
                        kind: desired.kind,
                        name: desired.name.clone(),
                        line,
                    });
                }
                return Ok(());
            }
            Observed::Present {
                lifecycle: Lifecycle::Failed(reason),
                name,
                ..
            } => {
                for line in target.new_log_lines(desired).await {
                    reporter.event(Event::Log {
                        kind: desired.kind,
                        name: desired.name.clone(),
                        line,
                    });
                }
                return Err(EngineError::Failed {
                    kind: desired.kind,
                    name,
                    reason,
                });
            }
            Observed::Present {
                lifecycle: Lifecycle::InProgress(now),
                ..
            } => now,
            Observed::Absent => "not visible yet".to_string(),
        };
        let elapsed = started.elapsed();
        if elapsed >= desired.wait_timeout {
            return Err(EngineError::Timeout {
                kind: desired.kind,
                name: desired.name.clone(),
                timeout: desired.wait_timeout,
                state,
            });
        }
        reporter.event(Event::Waiting {
            kind: desired.kind,
            name: desired.name.clone(),
            state: state.clone(),
            elapsed,
        });
        tokio::time::sleep(target.poll_interval().min(desired.wait_timeout - elapsed)).await;
    }
}

/// Compares the training job's validation metrics with the gate.
async fn check_gate<T: Target>(
    target: &T,
    state: &DesiredState,
    gate: &QualityGate,
    reporter: &dyn Reporter,
) -> Result<(), EngineError> {
    let job = state.get(Kind::TrainingJob).expect("deployments train");
    let name = match target.observe(job).await? {
        Observed::Present { name, .. } => name,
        Observed::Absent => job.name.clone(),
    };
    let metrics = target.training_metrics(&name).await?;
    let mut failures = Vec::new();
    let mut checks = Vec::new();
    for (metric, minimum) in gate.thresholds() {
        match metrics.get(metric) {
            Some(value) if *value >= minimum => checks.push(format!("{metric} {value:.4} >= {minimum}")),
            Some(value) => failures.push(format!("{metric} {value:.4} < {minimum}")),
            None => failures.push(format!("{metric} was not reported by the training job")),
        }
    }
    if failures.is_empty() {
        reporter.event(Event::GatePassed { checks });
        Ok(())
    } else {
        Err(EngineError::QualityGate { failures, metrics })
    }
}

/// After `up`, the endpoint must run the desired config.
async fn verify_endpoint<T: Target>(target: &T, endpoint: &Desired) -> Result<(), EngineError> {
    let want = endpoint.get("endpoint_config").unwrap_or_default().to_string();
    match target.observe(endpoint).await? {
        Observed::Present { fields, .. } => {
            let have = fields.get("endpoint_config").cloned().unwrap_or_default();
            if have == want {
                Ok(())
            } else {
                Err(EngineError::RolledBack {
                    name: endpoint.name.clone(),
                    want,
                    have,
                })
            }
        }
        Observed::Absent => Err(EngineError::Failed {
            kind: Kind::Endpoint,
            name: endpoint.name.clone(),
            reason: "it disappeared right after being applied".into(),
        }),
    }
}

/// What `down` removed.
#[derive(Debug, Clone, PartialEq)]
pub struct DownOutcome {
    pub deleted: Vec<Found>,
    /// Left in place on purpose (a retained bucket, training job records).
    pub kept: Vec<Found>,
}

/// Deletes everything the deployment owns, in reverse dependency order, then checks nothing
/// deletable is left. `keep` says what stays (a retained bucket; training jobs, which cannot be
/// deleted, are stopped by the target's `delete` if running and kept as records).
pub async fn down<T: Target>(
    target: &T,
    keep: impl Fn(&Found) -> bool,
    reporter: &dyn Reporter,
) -> Result<DownOutcome, EngineError> {
    let mut owned = target.owned().await?;
    owned.sort_by_key(|f| std::cmp::Reverse(f.kind));
    let mut deleted = Vec::new();
    let mut kept = Vec::new();
    for found in owned {
        if keep(&found) {
            kept.push(found);
            continue;
        }
        let started = Instant::now();
        reporter.event(Event::Started {
            kind: found.kind,
            name: found.name.clone(),
            verb: "delete",
        });
        target.delete(&found).await?;
        reporter.event(Event::Finished {
            kind: found.kind,
            name: found.name.clone(),
            verb: "delete",
            elapsed: started.elapsed(),
        });
        deleted.push(found);
    }
    let left: Vec<Found> = target.owned().await?.into_iter().filter(|f| !keep(f)).collect();
    if let Some(first) = left.first() {
        return Err(EngineError::Failed {
            kind: first.kind,
            name: first.name.clone(),
            reason: format!("still present after down ({} resource(s) left)", left.len()),
        });
    }
    Ok(DownOutcome { deleted, kept })
}

/// Switches the endpoint back to the config it ran before the last update (recorded by the target
/// in the endpoint's `previous_endpoint_config` field), waits for it and verifies it. The target
/// records the config it leaves as the new previous one, so a second rollback rolls forward again.
pub async fn rollback<T: Target>(
    target: &T,
    state: &DesiredState,
    reporter: &dyn Reporter,
) -> Result<String, EngineError> {
    let endpoint = state.get(Kind::Endpoint).expect("deployments have an endpoint");
    let (current, previous) = match target.observe(endpoint).await? {
        Observed::Present { fields, .. } => (
            fields.get("endpoint_config").cloned(),
            fields.get(crate::plan::PREVIOUS_CONFIG_FIELD).cloned(),
        ),
        Observed::Absent => {
            return Err(EngineError::Rollback(format!(
                "endpoint `{}` does not exist: nothing to roll back",
                endpoint.name
            )));
        }
    };
    let Some(previous) = previous.filter(|p| !p.is_empty()) else {
        return Err(EngineError::Rollback(format!(
            "endpoint `{}` has no previous config to roll back to (it has not been updated since it was created)",
            endpoint.name
        )));
    };
    let mut rolled = endpoint.clone();
    for field in &mut rolled.fields {
        if field.name == "endpoint_config" {
            field.value = previous.clone();
        }
    }
    let change = Change::Update {
        fields: vec![crate::resource::FieldDiff {
            field: "endpoint_config",
            want: previous.clone(),
            have: current,
        }],
    };
    apply_one(target, state, &rolled, &change, reporter).await?;
    verify_endpoint(target, &rolled).await?;
    Ok(previous)
}
