//! `orchestrate plan`: what `up` would do, changing nothing. Exit 0 when nothing would change, 2
//! when something would (so CI can tell), 1 on error.

use engine::{Plan, Target, executor};

use crate::deployment::{Context, Needs, OnTarget, Session, dispatch};
use crate::documents::PlanDocument;
use crate::exit::Exit;
use crate::run_lock::Lockable;

/// Observes everything and plans; shared with `status`.
pub struct Observe;

impl OnTarget for Observe {
    type Output = Plan;

    fn needs(&self) -> Needs {
        Needs { desired_state: true }
    }

    async fn run<T: Target + Lockable>(self, session: &Session<'_, T>) -> anyhow::Result<Plan> {
        Ok(executor::plan(&session.target, session.state(), session.progress).await?)
    }
}

pub async fn run(cx: &Context) -> anyhow::Result<Exit> {
    let spec = cx.load_spec()?;
    let progress = cx.progress();
    let plan = dispatch(cx, &spec, &progress, Observe).await?;
    cx.printer.text(&cx.printer.plan_text(&plan.render()));
    cx.printer.json(&PlanDocument {
        ok: true,
        changes: plan.changes(),
        plan: &plan,
    });
    Ok(if plan.is_noop() {
        Exit::Success
    } else {
        Exit::Drift
    })
}
