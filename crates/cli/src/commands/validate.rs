//! `orchestrate validate`: checks deploy.yaml and reports every problem at once
//! (`deploy.yaml:LINE:COL: what is wrong` plus a help line), changing nothing. With `--target`, the
//! file is checked for that target (S3 data needs `aws`).

use crate::deployment::Context;
use crate::documents::ValidateDocument;
use crate::exit::Exit;

pub fn run(cx: &Context) -> anyhow::Result<Exit> {
    let spec = cx.load_spec()?;
    let file = cx.global.file.display().to_string();
    cx.printer.text(&format!(
        "{file} is valid: deployment `{}` on the {} target.\n",
        spec.name, spec.target
    ));
    cx.printer.json(&ValidateDocument {
        ok: true,
        file,
        spec: &spec,
    });
    Ok(Exit::Success)
}
