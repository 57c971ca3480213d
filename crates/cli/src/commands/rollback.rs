//! `orchestrate rollback`: switches the endpoint back to the config (and so the model) it served
//! before the last update, waits for it and verifies it. Running it again rolls forward.

use crate::deployment::{Context, Needs, Session};
use crate::documents::RollbackDocument;
use crate::exit::Exit;
use engine::executor;

pub async fn run(cx: &Context) -> anyhow::Result<Exit> {
    let spec = cx.load_spec()?;
    let progress = cx.progress();
    let session = Session::open(cx, &spec, &progress, Needs { desired_state: true }).await?;
    let config = session
        .while_locked(async {
            let result = executor::rollback(&session.target, session.state(), &progress).await;
            progress.close();
            Ok(result?)
        })
        .await?;
    let endpoint = spec.name.to_string();
    cx.printer.text(&format!(
        "Endpoint `{endpoint}` now serves endpoint config `{config}`.\n\
         `orchestrate rollback` again switches back; `orchestrate up` rolls out deploy.yaml's model.\n"
    ));
    cx.printer.json(&RollbackDocument {
        ok: true,
        endpoint,
        endpoint_config: config,
    });
    Ok(Exit::Success)
}
