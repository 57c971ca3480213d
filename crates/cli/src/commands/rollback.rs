//! `orchestrate rollback`: switches the endpoint back to the config (and so the model) it served
//! before the last update, waits for it and verifies it. Running it again rolls forward.

use crate::deployment::{Context, Needs, OnTarget, Session, dispatch};
use crate::documents::RollbackDocument;
use crate::exit::Exit;
use crate::run_lock::Lockable;
use engine::{Target, executor};

pub async fn run(cx: &Context) -> anyhow::Result<Exit> {
    let spec = cx.load_spec()?;
    let progress = cx.progress();
    dispatch(cx, &spec, &progress, Rollback { cx }).await
}

struct Rollback<'a> {
    cx: &'a Context,
}

impl OnTarget for Rollback<'_> {
    type Output = Exit;

    fn needs(&self) -> Needs {
        Needs { desired_state: true }
    }

    async fn run<T: Target + Lockable>(self, session: &Session<'_, T>) -> anyhow::Result<Exit> {
        let lock = session.lock().await?;
        let result = executor::rollback(&session.target, session.state(), session.progress).await;
        session.progress.close();
        lock.release().await;
        let config = result?;
        let endpoint = session.spec.name.to_string();
        self.cx.printer.text(&format!(
            "Endpoint `{endpoint}` now serves endpoint config `{config}`.\n\
             `orchestrate rollback` again switches back; `orchestrate up` rolls out deploy.yaml's model.\n"
        ));
        self.cx.printer.json(&RollbackDocument {
            ok: true,
            endpoint,
            endpoint_config: config,
        });
        Ok(Exit::Success)
    }
}
