//! `orchestrate down`: deletes everything the deployment owns, in reverse dependency order, and
//! checks that nothing is left. The bucket (and the data in it) stays when `bucket.retain_on_down`
//! is set. On a terminal it lists what will go and asks first, unless `--yes`; without a terminal
//! it refuses to run without `--yes`.

use std::io::{BufRead, IsTerminal, Write};

use crate::documents::DownDocument;
use anyhow::bail;
use engine::target::Found;
use engine::{Target, executor};

use crate::cli::DownArgs;
use crate::deployment::{Context, Needs, Session};
use crate::exit::Exit;

/// The error without a terminal and without `--yes`.
pub const NEEDS_YES: &str = "`orchestrate down` deletes every resource of the deployment and asks for confirmation, \
     but there is no terminal to ask on; pass --yes to delete without asking";

pub async fn run(cx: &Context, args: &DownArgs) -> anyhow::Result<Exit> {
    let can_ask = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if !args.yes && !can_ask {
        bail!(NEEDS_YES);
    }
    let spec = cx.load_spec()?;
    let progress = cx.progress();
    let session = Session::open(cx, &spec, &progress, Needs { desired_state: false }).await?;
    let retain = spec.bucket.retain_on_down;
    let keep = |found: &Found| retain && found.kind.facts().kept_with_bucket;
    session.while_locked(delete_all(&session, keep, !args.yes)).await
}

/// Lists what the deployment owns, asks (when `ask`), deletes all but what `keep` says and checks
/// nothing is left.
async fn delete_all(session: &Session<'_>, keep: impl Fn(&Found) -> bool, ask: bool) -> anyhow::Result<Exit> {
    let printer = &session.cx.printer;
    let (target, spec) = (&session.target, session.spec);
    let retain = spec.bucket.retain_on_down;
    let owned = executor::discover_within_budget(target).await?;
    let doomed: Vec<&Found> = owned.iter().filter(|f| !keep(f)).collect();
    if doomed.is_empty() {
        printer.text(&format!(
            "Nothing to delete: `{}` has no resources on {}.\n",
            spec.name,
            target.describe()
        ));
        printer.json(&DownDocument {
            ok: true,
            deleted: &[],
            kept: &owned,
        });
        return Ok(Exit::Success);
    }
    if ask {
        eprint!(
            "{}",
            listing(spec.name.as_str(), &target.describe(), &doomed, retain)
        );
        if !confirm("Delete them? [y/N] ").await? {
            eprintln!("Nothing was deleted.");
            return Ok(Exit::Error);
        }
    }
    let result = executor::down(target, keep, session.progress).await;
    session.progress.close();
    let outcome = result?;
    let mut text = format!(
        "Deleted {} resource(s) of `{}`.\n",
        outcome.deleted.len(),
        spec.name
    );
    for found in &outcome.kept {
        text.push_str(&format!(
            "  kept {} {} (bucket.retain_on_down)\n",
            found.kind, found.name
        ));
    }
    printer.text(&text);
    printer.json(&DownDocument {
        ok: true,
        deleted: &outcome.deleted,
        kept: &outcome.kept,
    });
    Ok(Exit::Success)
}

/// What will be deleted, one resource a line, newest dependants first.
fn listing(deployment: &str, target: &str, doomed: &[&Found], retain: bool) -> String {
    let mut doomed = doomed.to_vec();
    doomed.sort_by_key(|f| std::cmp::Reverse(f.kind));
    let mut text = format!(
        "This deletes {} resource(s) of `{deployment}` on {target}:\n",
        doomed.len()
    );
    for found in doomed {
        text.push_str(&format!("  - {:<16} {}\n", found.kind.label(), found.name));
    }
    if retain {
        text.push_str("The bucket and its data stay (bucket.retain_on_down).\n");
    }
    text
}

/// Asks on stderr, reads one line from stdin: yes only for `y` or `yes`. The read runs on a
/// blocking thread, so Ctrl-C ends the command while it waits for an answer.
async fn confirm(question: &str) -> anyhow::Result<bool> {
    eprint!("{question}");
    std::io::stderr().flush()?;
    let answer = tokio::task::spawn_blocking(|| {
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).map(|_| answer)
    })
    .await??;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::Kind;

    #[test]
    fn listing_names_every_resource_dependants_first() {
        let bucket = Found::new(Kind::Bucket, "iot-local");
        let endpoint = Found::new(Kind::Endpoint, "iot");
        let text = listing("iot", "local (.orchestrate/iot)", &[&bucket, &endpoint], false);
        assert_eq!(
            text,
            "This deletes 2 resource(s) of `iot` on local (.orchestrate/iot):\n  - endpoint         iot\n  - bucket           iot-local\n"
        );
    }
}
