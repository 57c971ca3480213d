//! `orchestrate schema`: the JSON Schema of deploy.yaml (Draft 2020-12), for editors and CI. It is
//! JSON whatever `--output` says.

use crate::deployment::Context;
use crate::exit::Exit;

pub fn run(_cx: &Context) -> anyhow::Result<Exit> {
    let mut text = serde_json::to_string_pretty(&spec::json_schema())?;
    text.push('\n');
    print!("{text}");
    Ok(Exit::Success)
}
