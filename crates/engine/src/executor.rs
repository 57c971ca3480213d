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
use tracing::Instrument as _;

use crate::desired::DesiredState;
use crate::kind::Settings;
use crate::plan::Plan;
use crate::progress::{Event, Reporter};
use crate::resource::{Change, Desired, Kind, Lifecycle, Observed, Outputs, TrainingJobOutputs};
use crate::target::{
    Applied, DELETE_TIMEOUT, Deleted, Found, ResourceId, Target, TargetError, Upstream, error_chain,
};
use crate::training_output::MetricValues;

/// How many transient observe errors a wait rides out before it gives up. A training job runs for
/// an hour; one throttled or failed `Describe*` (after the SDK's own retries) must not end the run,
/// while an outage that lasts must. The wait gives up on the first of: [`max_failures`] failed
/// observations in a row, or [`max_blind`] without a successful one; the resource's own wait
/// timeout applies throughout.
///
/// [`max_failures`]: ObserveErrorBudget::max_failures
/// [`max_blind`]: ObserveErrorBudget::max_blind
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObserveErrorBudget {
    pub max_failures: u32,
    pub max_blind: Duration,
}

/// Ten failures in a row (each already retried five times by the AWS SDK, with backoff) or five
/// minutes without an observation: a throttling burst or a short regional blip passes within it.
pub const OBSERVE_ERROR_BUDGET: ObserveErrorBudget = ObserveErrorBudget {
    max_failures: 10,
    max_blind: Duration::from_secs(5 * 60),
};

impl std::fmt::Display for ObserveErrorBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failures in a row or {:?} without an observation",
            self.max_failures, self.max_blind
        )
    }
}

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
    #[error(
        "gave up on {kind} `{name}`: {failures} calls to read or delete it failed in a row over {blind:?} \
         (budget: {budget}); the last error"
    )]
    ObserveBudgetSpent {
        kind: Kind,
        name: String,
        failures: u32,
        /// How long since the last successful observation (or the start of the wait).
        blind: Duration,
        budget: ObserveErrorBudget,
        #[source]
        last: Box<TargetError>,
    },
    #[error(
        "gave up discovering what the deployment owns: {failures} reads failed in a row over {blind:?} \
         (budget: {budget}); the last error"
    )]
    DiscoveryBudgetSpent {
        failures: u32,
        blind: Duration,
        budget: ObserveErrorBudget,
        #[source]
        last: Box<TargetError>,
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
        metrics: MetricValues,
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
    #[error(
        "{} exist under the deployment's names but are not the deployment's; nothing was changed:\n{}",
        taken.len(),
        taken.iter().map(|line| format!("  {line}")).collect::<Vec<_>>().join("\n")
    )]
    Taken {
        /// One line per resource: what it is and how to adopt it.
        taken: Vec<String>,
    },
}

/// Observes every desired resource and everything owned, concurrently, and plans.
pub async fn plan<T: Target>(
    target: &T,
    state: &DesiredState,
    reporter: &dyn Reporter,
) -> Result<Plan, EngineError> {
    let started = Instant::now();
    let observations = join_all(state.resources.iter().map(|desired| {
        let span = tracing::debug_span!("observe", kind = %desired.kind(), name = %desired.name);
        observe_within_budget(target, desired).instrument(span)
    }));
    let owned = discover_within_budget(target).instrument(tracing::debug_span!("discover"));
    let (observations, owned) = tokio::join!(observations, owned);
    let observed = observations.into_iter().collect::<Result<Vec<_>, _>>()?;
    reporter.event(Event::Observed {
        resources: observed.len(),
        elapsed: started.elapsed(),
    });
    Ok(Plan::new(state, target.describe(), observed, owned?))
}

/// Runs `read` (an observation, the discovery of what the deployment owns, or a deletion) again after a
/// transient failure, within [`OBSERVE_ERROR_BUDGET`], every poll interval: the SDK retries each
/// call a few times, this retries the read, so a throttling burst longer than the SDK's backoff
/// does not end a run that has changed nothing yet. `spent` words the error when the budget runs
/// out.
async fn read_within_budget<T, R, Fut>(
    target: &T,
    mut read: impl FnMut() -> Fut,
    spent: impl FnOnce(u32, Duration, TargetError) -> EngineError,
) -> Result<R, EngineError>
where
    T: Target,
    Fut: Future<Output = Result<R, TargetError>>,
{
    let budget = OBSERVE_ERROR_BUDGET;
    let started = Instant::now();
    let mut failures = 0u32;
    loop {
        match read().await {
            Ok(value) => return Ok(value),
            Err(error) if error.is_transient() => {
                failures += 1;
                let blind = started.elapsed();
                if failures >= budget.max_failures || blind >= budget.max_blind {
                    return Err(spent(failures, blind, error));
                }
                tracing::warn!(
                    failures,
                    ?blind,
                    error = %error_chain(&error),
                    "reading failed; trying again (transient error)"
                );
                tokio::time::sleep(target.poll_interval()).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// [`Target::observe`] within the observe budget.
async fn observe_within_budget<T: Target>(target: &T, desired: &Desired) -> Result<Observed, EngineError> {
    read_within_budget(
        target,
        || target.observe(desired),
        |failures, blind, last| EngineError::ObserveBudgetSpent {
            kind: desired.kind(),
            name: desired.name.clone(),
            failures,
            blind,
            budget: OBSERVE_ERROR_BUDGET,
            last: Box::new(last),
        },
    )
    .await
}

/// [`Target::owned`] within the observe budget.
pub async fn discover_within_budget<T: Target>(target: &T) -> Result<Vec<Found>, EngineError> {
    read_within_budget(
        target,
        || target.owned(),
        |failures, blind, last| EngineError::DiscoveryBudgetSpent {
            failures,
            blind,
            budget: OBSERVE_ERROR_BUDGET,
            last: Box::new(last),
        },
    )
    .await
}

/// The training job attempt a deployment serves from, and its validation metrics (read once per
/// run, from the attempt's model artifact).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingReport {
    pub attempt: String,
    /// The metrics, or why they could not be read.
    pub metrics: Result<MetricValues, String>,
}

/// What `up` did.
#[derive(Debug, Clone, PartialEq)]
pub struct UpOutcome {
    pub changed: usize,
    pub deleted: Vec<Found>,
    /// The training job's attempt and metrics, when it is ready.
    pub training: Option<TrainingReport>,
}

/// The outputs of the plan's resources that were found ready.
fn observed_outputs(plan: &Plan) -> BTreeMap<ResourceId, Outputs> {
    plan.steps
        .iter()
        .filter(|s| s.change.is_noop())
        .filter_map(|s| {
            let outputs = s.observed.ready_outputs()?;
            Some((
                ResourceId::new(s.desired.kind(), &s.desired.name),
                outputs.clone(),
            ))
        })
        .collect()
}

/// The training report of a plan that changes nothing (the training job was found ready), read
/// with the same single metrics read `up` makes.
pub async fn training_report<T: Target>(
    target: &T,
    state: &DesiredState,
    plan: &Plan,
) -> Option<TrainingReport> {
    let outputs = observed_outputs(plan);
    let job = Upstream {
        state,
        outputs: &outputs,
    }
    .training_job()?;
    Some(read_training(target, job).await)
}

async fn read_training<T: Target>(target: &T, job: &TrainingJobOutputs) -> TrainingReport {
    TrainingReport {
        attempt: job.attempt.clone(),
        metrics: target
            .training_metrics(job)
            .await
            .map_err(|e| crate::target::error_chain(&e)),
    }
}

/// Refuses a plan that would take over resources that are not the deployment's (the user adopts
/// them explicitly, `Plan::adopt`). Called before anything is locked or changed.
pub fn refuse_taken(plan: &Plan) -> Result<(), EngineError> {
    let taken: Vec<String> = plan
        .taken()
        .map(|step| {
            let held_by = match &step.change {
                Change::Taken { held_by } => held_by.as_deref(),
                _ => None,
            };
            let kind = step.desired.kind();
            format!(
                "{kind} `{}`: {}",
                step.desired.name,
                crate::plan::taken_note(kind, &step.desired.name, held_by)
            )
        })
        .collect();
    if taken.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Taken { taken })
    }
}

/// Applies `plan` (made by [`plan`] from `state`).
pub async fn up<T: Target>(
    target: &T,
    state: &DesiredState,
    plan: &Plan,
    quality_gate: Option<&QualityGate>,
    reporter: &dyn Reporter,
) -> Result<UpOutcome, EngineError> {
    refuse_taken(plan)?;
    let max_level = Kind::ALL.iter().map(|k| k.level()).max().unwrap_or(0);
    let rollout_needed = plan
        .steps
        .iter()
        .any(|s| s.desired.kind().facts().in_rollout && !s.change.is_noop());
    let mut outputs = observed_outputs(plan);
    let mut training = None;
    for current in 0..=max_level {
        let steps = plan
            .steps
            .iter()
            .filter(|s| s.desired.kind().level() == current && !s.change.is_noop());
        let upstream = Upstream {
            state,
            outputs: &outputs,
        };
        let results =
            join_all(steps.map(|step| apply_one(target, upstream, &step.desired, &step.change, reporter)))
                .await;
        for (id, made) in results.into_iter().collect::<Result<Vec<_>, _>>()? {
            outputs.insert(id, made);
        }
        let training_level = Kind::TrainingJob.level() == current;
        if training_level
            && let Some(job) = (Upstream {
                state,
                outputs: &outputs,
            })
            .training_job()
        {
            let report = read_training(target, job).await;
            if rollout_needed && let Some(gate) = quality_gate {
                check_gate(&report, gate, reporter)?;
            }
            training = Some(report);
        }
    }
    if let Some(endpoint) = state.get(Kind::Endpoint) {
        verify_endpoint(target, endpoint).await?;
    }
    let mut deleted = Vec::new();
    let mut deletions: Vec<&Found> = plan.deletions().collect();
    deletions.sort_by_key(|f| std::cmp::Reverse(f.kind));
    for found in deletions {
        delete_one(target, found, reporter).await?;
        deleted.push(found.clone());
    }
    Ok(UpOutcome {
        changed: plan.steps.iter().filter(|s| !s.change.is_noop()).count(),
        deleted,
        training,
    })
}

/// Deletes one resource, calling `delete` again while its deletion is under way, for at most
/// [`DELETE_TIMEOUT`](crate::target::DELETE_TIMEOUT).
async fn delete_one<T: Target>(
    target: &T,
    found: &Found,
    reporter: &dyn Reporter,
) -> Result<(), EngineError> {
    let span = tracing::debug_span!("delete", kind = %found.kind, name = %found.name);
    async {
        let started = Instant::now();
        reporter.event(Event::Started {
            kind: found.kind,
            name: found.name.clone(),
            verb: "delete",
        });
        loop {
            // A deletion is idempotent (asking again finds it pending or gone): a transient failure
            // is asked again within the budget, as an observation is.
            let deleted = read_within_budget(
                target,
                || target.delete(found),
                |failures, blind, last| EngineError::ObserveBudgetSpent {
                    kind: found.kind,
                    name: found.name.clone(),
                    failures,
                    blind,
                    budget: OBSERVE_ERROR_BUDGET,
                    last: Box::new(last),
                },
            )
            .await?;
            match deleted {
                Deleted::Gone => break,
                Deleted::Pending(state) => {
                    let elapsed = started.elapsed();
                    tracing::debug!(%state, ?elapsed, "deletion under way");
                    if elapsed >= DELETE_TIMEOUT {
                        return Err(EngineError::Timeout {
                            kind: found.kind,
                            name: found.name.clone(),
                            timeout: DELETE_TIMEOUT,
                            state: format!("{state} (being deleted)"),
                        });
                    }
                    reporter.event(Event::Waiting {
                        kind: found.kind,
                        name: found.name.clone(),
                        state,
                        elapsed,
                    });
                    tokio::time::sleep(target.poll_interval().min(DELETE_TIMEOUT - elapsed)).await;
                }
            }
        }
        reporter.event(Event::Finished {
            kind: found.kind,
            name: found.name.clone(),
            verb: "delete",
            elapsed: started.elapsed(),
        });
        Ok(())
    }
    .instrument(span)
    .await
}

/// Applies one change and waits for it; returns what the resource makes known.
async fn apply_one<T: Target>(
    target: &T,
    upstream: Upstream<'_>,
    desired: &Desired,
    change: &Change,
    reporter: &dyn Reporter,
) -> Result<(ResourceId, Outputs), EngineError> {
    let verb = change.verb();
    let kind = desired.kind();
    let span = tracing::debug_span!("apply", %kind, name = %desired.name, verb);
    async {
        let started = Instant::now();
        reporter.event(Event::Started {
            kind,
            name: desired.name.clone(),
            verb,
        });
        let outputs = loop {
            let applied = match change {
                Change::Wait { .. } => Applied::Pending,
                _ => target.apply(desired, change, upstream).await?,
            };
            match applied {
                Applied::Ready(outputs) => break outputs,
                Applied::Pending => break wait_ready(target, desired, reporter).await?,
                Applied::NotYet { reason, retry_for } => {
                    let elapsed = started.elapsed();
                    let budget = retry_for.min(desired.wait_timeout);
                    tracing::debug!(%reason, ?elapsed, "not yet; applying again");
                    if elapsed >= budget {
                        return Err(EngineError::Timeout {
                            kind,
                            name: desired.name.clone(),
                            timeout: budget,
                            state: reason,
                        });
                    }
                    reporter.event(Event::Waiting {
                        kind,
                        name: desired.name.clone(),
                        state: reason,
                        elapsed,
                    });
                    tokio::time::sleep(target.poll_interval().min(budget - elapsed)).await;
                }
            }
        };
        reporter.event(Event::Finished {
            kind,
            name: desired.name.clone(),
            verb,
            elapsed: started.elapsed(),
        });
        Ok((ResourceId::new(kind, &desired.name), outputs))
    }
    .instrument(span)
    .await
}

/// Polls `observe` until the resource is ready (returning its outputs), failed, or its timeout
/// passes.
async fn wait_ready<T: Target>(
    target: &T,
    desired: &Desired,
    reporter: &dyn Reporter,
) -> Result<Outputs, EngineError> {
    let started = Instant::now();
    let kind = desired.kind();
    let budget = OBSERVE_ERROR_BUDGET;
    let mut failures = 0u32;
    let mut last_seen = started;
    let logs = || async {
        for line in target.new_log_lines(desired).await {
            reporter.event(Event::Log {
                kind,
                name: desired.name.clone(),
                line,
            });
        }
    };
    loop {
        logs().await;
        let observed = match target.observe(desired).await {
            Ok(observed) => {
                failures = 0;
                last_seen = Instant::now();
                observed
            }
            Err(error) if error.is_transient() => {
                failures += 1;
                let blind = last_seen.elapsed();
                if failures >= budget.max_failures || blind >= budget.max_blind {
                    return Err(EngineError::ObserveBudgetSpent {
                        kind,
                        name: desired.name.clone(),
                        failures,
                        blind,
                        budget,
                        last: Box::new(error),
                    });
                }
                tracing::warn!(
                    failures,
                    ?blind,
                    error = %error_chain(&error),
                    "observing failed; waiting on (transient error)"
                );
                let elapsed = started.elapsed();
                if elapsed >= desired.wait_timeout {
                    return Err(error.into());
                }
                reporter.event(Event::Waiting {
                    kind,
                    name: desired.name.clone(),
                    state: format!("observing failed ({failures} in a row), retrying"),
                    elapsed,
                });
                tokio::time::sleep(target.poll_interval().min(desired.wait_timeout - elapsed)).await;
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        let state = match observed {
            Observed::Present {
                lifecycle: Lifecycle::Ready,
                outputs,
                ..
            } => {
                logs().await;
                return Ok(outputs);
            }
            Observed::Present {
                lifecycle: Lifecycle::Failed(reason),
                name,
                ..
            } => {
                logs().await;
                return Err(EngineError::Failed { kind, name, reason });
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
                kind,
                name: desired.name.clone(),
                timeout: desired.wait_timeout,
                state,
            });
        }
        reporter.event(Event::Waiting {
            kind,
            name: desired.name.clone(),
            state: state.clone(),
            elapsed,
        });
        tokio::time::sleep(target.poll_interval().min(desired.wait_timeout - elapsed)).await;
    }
}

/// Compares the training job's validation metrics with the gate.
fn check_gate(
    report: &TrainingReport,
    gate: &QualityGate,
    reporter: &dyn Reporter,
) -> Result<(), EngineError> {
    let metrics = report.metrics.clone().map_err(|reason| EngineError::Failed {
        kind: Kind::TrainingJob,
        name: report.attempt.clone(),
        reason: format!("its metrics cannot be read for the quality gate: {reason}"),
    })?;
    let mut failures = Vec::new();
    let mut checks = Vec::new();
    for (metric, minimum) in gate.thresholds() {
        match metrics.get(&metric) {
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

/// The config an endpoint's settings name.
fn endpoint_config(settings: &Settings) -> &str {
    match settings {
        Settings::Endpoint(endpoint) => &endpoint.endpoint_config,
        _ => "",
    }
}

/// After `up`, the endpoint must run the desired config.
async fn verify_endpoint<T: Target>(target: &T, endpoint: &Desired) -> Result<(), EngineError> {
    let want = endpoint_config(&endpoint.settings).to_string();
    match observe_within_budget(target, endpoint).await? {
        Observed::Present { settings, .. } => {
            let have = endpoint_config(&settings).to_string();
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
    let mut owned = discover_within_budget(target).await?;
    owned.sort_by_key(|f| std::cmp::Reverse(f.kind));
    let mut deleted = Vec::new();
    let mut kept = Vec::new();
    for found in owned {
        if keep(&found) {
            kept.push(found);
            continue;
        }
        delete_one(target, &found, reporter).await?;
        deleted.push(found);
    }
    let left: Vec<Found> = discover_within_budget(target)
        .await?
        .into_iter()
        .filter(|f| !keep(f))
        .collect();
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
/// in the endpoint's outputs), if the deployment owns that config, waits for it and verifies it. The target records the config it leaves
/// as the new previous one, so a second rollback rolls forward again.
pub async fn rollback<T: Target>(
    target: &T,
    state: &DesiredState,
    reporter: &dyn Reporter,
) -> Result<String, EngineError> {
    let endpoint = state.get(Kind::Endpoint).expect("deployments have an endpoint");
    let (current, previous) = match observe_within_budget(target, endpoint).await? {
        Observed::Present {
            settings, outputs, ..
        } => (
            endpoint_config(&settings).to_string(),
            match outputs {
                Outputs::Endpoint(outputs) => outputs.previous_config,
                _ => None,
            },
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
    // The previous config is read from the endpoint (a tag on AWS), which anyone who may tag it can
    // set: switch only to a config the deployment owns.
    let owned = discover_within_budget(target).await?;
    if !owned
        .iter()
        .any(|found| found.kind == Kind::EndpointConfig && found.name == previous)
    {
        return Err(EngineError::Rollback(format!(
            "endpoint `{}` names `{previous}` as its previous config, but no endpoint config of that name \
             belongs to the deployment (it is gone, or not tagged as the deployment's); nothing was changed",
            endpoint.name
        )));
    }
    let mut rolled = endpoint.clone();
    if let Settings::Endpoint(settings) = &mut rolled.settings {
        settings.endpoint_config = previous.clone();
    }
    let change = Change::Update {
        fields: vec![crate::resource::FieldDiff {
            field: "endpoint_config",
            want: previous.clone(),
            have: Some(current),
            on_change: crate::resource::OnChange::Update,
        }],
    };
    let no_outputs = BTreeMap::new();
    let upstream = Upstream {
        state,
        outputs: &no_outputs,
    };
    apply_one(target, upstream, &rolled, &change, reporter).await?;
    verify_endpoint(target, &rolled).await?;
    Ok(previous)
}
