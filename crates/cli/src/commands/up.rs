//! `orchestrate up`: plan, print the plan, apply it (progress on stderr), then print where the
//! deployment answers and the new model's validation metrics. A converged deployment prints
//! "No changes" and returns at once. With `--output json`, one document: the plan, the outcome (or
//! the error that stopped the run), the summary and the metrics.

use std::time::Instant;

use engine::Target;
use engine::executor::{self, TrainingReport, UpOutcome};
use engine::target::Found;

use crate::cli::UpArgs;
use crate::deployment::{Context, Needs, Session};
use crate::documents::{UpDocument, UpFailed, UpOutcomeDocument};
use crate::exit::{Exit, Reported};
use crate::render::{elapsed, error_json, key_values, metrics_table, plan_with_rollout};

pub async fn run(cx: &Context, args: &UpArgs) -> anyhow::Result<Exit> {
    let spec = cx.load_spec()?;
    let progress = cx.progress();
    let session = Session::open(cx, &spec, &progress, Needs { desired_state: true }).await?;
    let printer = &cx.printer;
    let (target, state) = (&session.target, session.state());
    // The plan with the resources the user adopts taken over, refused (before any lock or change)
    // while something else's would be.
    let decide = || async {
        let mut plan = executor::plan(target, state, &progress).await?;
        plan.adopt(&args.adopt).map_err(anyhow::Error::msg)?;
        if let Err(taken) = executor::refuse_taken(&plan) {
            printer.text(&printer.plan_text(&plan_with_rollout(&plan, &spec)));
            return Err(anyhow::Error::from(taken));
        }
        anyhow::Ok(plan)
    };
    let plan = decide().await?;
    let started = Instant::now();
    let (plan, outcome) = if plan.is_noop() {
        // A converged deployment: no lock, no write, the training report read once.
        printer.text(&printer.plan_text(&plan_with_rollout(&plan, &spec)));
        let training = executor::training_report(target, state, &plan).await;
        let outcome = UpOutcome {
            changed: 0,
            deleted: Vec::new(),
            training,
        };
        (plan, outcome)
    } else {
        let gate = spec.training.quality_gate.as_ref();
        let applied = session
            .while_locked(async {
                // Under the lock the plan is made again: another run may have changed things.
                let plan = decide().await?;
                printer.text(&printer.plan_text(&plan_with_rollout(&plan, &spec)));
                let result = executor::up(target, state, &plan, gate, &progress).await;
                progress.close();
                Ok((plan, result))
            })
            .await?;
        match applied {
            (plan, Ok(outcome)) => (plan, outcome),
            (plan, Err(error)) if printer.is_json() => {
                let error = anyhow::Error::from(error);
                printer.json(&UpFailed {
                    ok: false,
                    plan: &plan,
                    outcome: None,
                    error: error_json(&error),
                });
                return Err(Reported(Exit::Error).into());
            }
            (_, Err(error)) => return Err(error.into()),
        }
    };

    // A target may keep a leftover it was asked to delete (the local target keeps the config
    // the endpoint just left, for rollback): report what is really gone.
    let (deleted, kept) = if outcome.deleted.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let owned = executor::discover_within_budget(target).await.unwrap_or_default();
        outcome
            .deleted
            .iter()
            .cloned()
            .partition::<Vec<Found>, _>(|d| !owned.iter().any(|o| o.kind == d.kind && o.name == d.name))
    };
    let summary = target.summary(state).await;
    let (job, metrics) = match &outcome.training {
        Some(TrainingReport { attempt, metrics }) => {
            let metrics = match metrics {
                Ok(metrics) => Some(metrics.clone()),
                Err(reason) => {
                    progress.line(&format!(
                        "warning: cannot read the metrics of {attempt}: {reason}"
                    ));
                    None
                }
            };
            (Some(attempt.clone()), metrics)
        }
        None => (None, None),
    };

    if !plan.is_noop() {
        let mut text = format!(
            "Applied {} change{} in {}.\n",
            outcome.changed,
            if outcome.changed == 1 { "" } else { "s" },
            elapsed(started.elapsed())
        );
        for found in &deleted {
            text.push_str(&format!("  deleted {} {}\n", found.kind, found.name));
        }
        for found in &kept {
            text.push_str(&format!("  kept {} {} for rollback\n", found.kind, found.name));
        }
        printer.text(&text);
    }
    if !summary.is_empty() {
        printer.text(&format!(
            "Deployment `{}` on {}:\n{}",
            plan.deployment,
            plan.target,
            key_values(&summary)
        ));
    }
    if let (Some(job), Some(metrics)) = (&job, &metrics) {
        printer.text(&format!(
            "Validation metrics of training job {job}:\n{}",
            metrics_table(metrics)
        ));
    }
    printer.json(&UpDocument {
        ok: true,
        changes: plan.changes(),
        plan: &plan,
        outcome: UpOutcomeDocument {
            changed: outcome.changed,
            deleted,
            kept_for_rollback: kept,
        },
        summary: summary.iter().cloned().collect(),
        training_job: job,
        validation_metrics: metrics,
    });
    Ok(Exit::Success)
}
