//! `orchestrate invoke FILE`: sends a CSV, JSON or JSON Lines file to the deployment's endpoint and
//! prints the predictions as the endpoint answers them (`--accept`). The content type comes from the
//! file's extension unless `--content-type` says otherwise. A refused request (non-2xx) prints the
//! endpoint's reason and exits 1.
//!
//! `--async` invokes an async endpoint (`endpoint.async`): the target uploads the file under the
//! bucket's `async/input/`, queues it, and this command waits up to `--wait` for the answer, which
//! it streams to stdout (or leaves in `--answer-file`) without holding it in memory. A failure prints
//! its reason and exits 1; an answer not there within the wait exits 1 naming where it will be.

use std::path::Path;

use anyhow::{Context as _, bail};
use engine::Target;
use serde_json::Value;

use engine::target::{AsyncOutcome, AsyncRequest};

use crate::documents::{AsyncInvokeDocument, InvokeDocument};

use crate::cli::{ContentType, InvokeArgs};
use crate::deployment::{Context, Needs, Session};
use crate::exit::{Exit, Reported};

pub async fn run(cx: &Context, args: &InvokeArgs) -> anyhow::Result<Exit> {
    if args.asynchronous {
        return run_async(cx, args).await;
    }
    let content_type = content_type(&args.file, args.content_type)?;
    let body = std::fs::read(&args.file).with_context(|| format!("cannot read `{}`", args.file.display()))?;
    let spec = cx.load_spec()?;
    let progress = cx.progress();
    let session = Session::open(cx, &spec, &progress, Needs { desired_state: false }).await?;
    let (status, response) = session
        .target
        .invoke(spec.name.as_str(), content_type, args.accept.mime(), body)
        .await?;
    let ok = (200..300).contains(&status);
    if cx.printer.is_json() {
        let parsed = serde_json::from_slice::<Value>(&response)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&response).into_owned()));
        cx.printer.json(&InvokeDocument {
            ok,
            status,
            response: parsed,
        });
        return if ok {
            Ok(Exit::Success)
        } else {
            Err(Reported(Exit::Error).into())
        };
    }
    if !ok {
        bail!(
            "the endpoint refused the request (HTTP {status}): {}",
            reason(&response)
        );
    }
    let mut text = String::from_utf8_lossy(&response).into_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    cx.printer.text(&text);
    Ok(Exit::Success)
}

async fn run_async(cx: &Context, args: &InvokeArgs) -> anyhow::Result<Exit> {
    let content_type = content_type(&args.file, args.content_type)?;
    if !args.file.is_file() {
        bail!("cannot read `{}`: not a file", args.file.display());
    }
    let spec = cx.load_spec()?;
    let progress = cx.progress();
    let session = Session::open(cx, &spec, &progress, Needs { desired_state: false }).await?;
    let request = AsyncRequest {
        input: &args.file,
        content_type,
        accept: args.accept.mime(),
    };
    let invocation = session.target.invoke_async(spec.name.as_str(), &request).await?;
    // Without --output the answer goes through an unlinked file to stdout.
    let scratch;
    let answer_file = match &args.answer_file {
        Some(path) => path.clone(),
        None => {
            scratch = tempfile::NamedTempFile::new().context("cannot create a file for the answer")?;
            scratch.path().to_path_buf()
        }
    };
    let outcome = session
        .target
        .await_async(&invocation, args.wait, &answer_file)
        .await?;
    let ok = matches!(outcome, AsyncOutcome::Answered { .. });
    if cx.printer.is_json() {
        let response = match (&outcome, &args.answer_file) {
            (AsyncOutcome::Answered { .. }, None) => {
                let bytes = std::fs::read(&answer_file).context("cannot read the answer")?;
                Some(
                    serde_json::from_slice::<Value>(&bytes)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
                )
            }
            _ => None,
        };
        cx.printer.json(&AsyncInvokeDocument {
            ok,
            invocation,
            outcome,
            answer_file: args.answer_file.clone(),
            response,
        });
        return if ok {
            Ok(Exit::Success)
        } else {
            Err(Reported(Exit::Error).into())
        };
    }
    match outcome {
        AsyncOutcome::Answered { bytes } => match &args.answer_file {
            Some(path) => {
                cx.printer.text(&format!(
                    "answered: {bytes} bytes in `{}` (from {})\n",
                    path.display(),
                    invocation.output_location
                ));
                Ok(Exit::Success)
            }
            None => {
                stream_to_stdout(&answer_file)?;
                Ok(Exit::Success)
            }
        },
        AsyncOutcome::Failed { reason } => bail!(
            "the endpoint failed request {} ({}): {}",
            invocation.inference_id,
            invocation.failure_location,
            reason
        ),
        AsyncOutcome::StillQueued => bail!(
            "request {} was not answered within {}; its answer will be at {} (a failure at {})",
            invocation.inference_id,
            spec::format_duration(args.wait),
            invocation.output_location,
            invocation.failure_location
        ),
    }
}

/// Copies a file to stdout, ending with a newline when it has none.
fn stream_to_stdout(path: &Path) -> anyhow::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut file = std::fs::File::open(path).context("cannot read the answer")?;
    let mut stdout = std::io::stdout().lock();
    let copied = std::io::copy(&mut file, &mut stdout).context("cannot write the answer")?;
    let mut last = [0u8; 1];
    let ends_with_newline = copied > 0
        && file.seek(SeekFrom::End(-1)).is_ok()
        && file.read_exact(&mut last).is_ok()
        && last[0] == b'\n';
    if !ends_with_newline {
        stdout.write_all(b"\n").context("cannot write the answer")?;
    }
    stdout.flush().context("cannot write the answer")?;
    Ok(())
}

/// The request's content type: the flag's, or the one the extension implies.
pub fn content_type(file: &Path, flag: ContentType) -> anyhow::Result<&'static str> {
    Ok(match flag {
        ContentType::Csv => "text/csv",
        ContentType::Json => "application/json",
        ContentType::JsonLines => "application/jsonlines",
        ContentType::Auto => {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            match name.rsplit_once('.').map(|(_, ext)| ext) {
                Some("csv") => "text/csv",
                Some("json") => "application/json",
                Some("jsonl" | "jsonlines" | "ndjson") => "application/jsonlines",
                _ => bail!(
                    "cannot tell the content type of `{}` from its extension; name it .csv, .json or .jsonl, \
                     or pass --content-type",
                    file.display()
                ),
            }
        }
    })
}

/// The reason in an error body: model-image answers `{"error": "<sentence>", "row": n?, "column": "name"?}`;
/// anything else is shown as text.
fn reason(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body)
        && let Some(text) = ["error", "message"]
            .iter()
            .find_map(|k| value.get(*k).and_then(Value::as_str))
    {
        let mut reason = text.to_string();
        if let Some(row) = value.get("row").and_then(Value::as_u64) {
            reason.push_str(&format!(" (row {row}"));
            if let Some(column) = value.get("column").and_then(Value::as_str) {
                reason.push_str(&format!(", column `{column}`"));
            }
            reason.push(')');
        } else if let Some(column) = value.get("column").and_then(Value::as_str) {
            reason.push_str(&format!(" (column `{column}`)"));
        }
        return reason;
    }
    let text = String::from_utf8_lossy(body).trim().to_string();
    if text.is_empty() {
        "no reason given".to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_follows_the_extension_unless_given() {
        let auto = |name: &str| content_type(Path::new(name), ContentType::Auto);
        assert_eq!(auto("rows.csv").unwrap(), "text/csv");
        assert_eq!(auto("ROWS.CSV").unwrap(), "text/csv");
        assert_eq!(auto("rows.json").unwrap(), "application/json");
        assert_eq!(auto("rows.jsonl").unwrap(), "application/jsonlines");
        assert_eq!(auto("rows.ndjson").unwrap(), "application/jsonlines");
        assert!(
            auto("rows.txt")
                .unwrap_err()
                .to_string()
                .contains("--content-type")
        );
        assert_eq!(
            content_type(Path::new("rows.txt"), ContentType::Csv).unwrap(),
            "text/csv"
        );
    }

    #[test]
    fn reason_reads_model_image_errors() {
        assert_eq!(
            reason(br#"{"error": "not a number", "row": 3, "column": "Flow_Duration"}"#),
            "not a number (row 3, column `Flow_Duration`)"
        );
        assert_eq!(reason(br#"{"error": "empty body"}"#), "empty body");
        assert_eq!(reason(b"plain words\n"), "plain words");
        assert_eq!(reason(b""), "no reason given");
    }
}
