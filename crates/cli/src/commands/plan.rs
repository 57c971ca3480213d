//! `orchestrate plan`: what `up` would do, changing nothing. Exit 0 when nothing would change, 2
//! when something would (so CI can tell), 1 on error.

use engine::{Plan, executor};

use crate::deployment::{Context, Needs, Session};
use crate::documents::PlanDocument;
use crate::exit::Exit;

/// Observes everything and plans; shared with `status`.
pub async fn observe(cx: &Context) -> anyhow::Result<Plan> {
    let spec = cx.load_spec()?;
    let progress = cx.progress();
    let session = Session::open(cx, &spec, &progress, Needs { desired_state: true }).await?;
    Ok(executor::plan(&session.target, session.state(), &progress).await?)
}

pub async fn run(cx: &Context) -> anyhow::Result<Exit> {
    let plan = observe(cx).await?;
    let spec = cx.load_spec()?;
    cx.printer.text(
        &cx.printer
            .plan_text(&crate::render::plan_with_rollout(&plan, &spec)),
    );
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
