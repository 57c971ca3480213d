//! Async requests on the local target, where `orchestrate invoke --async` plays SageMaker's queue:
//! the payload file is copied into the local bucket folder under `async/input/<id>`, streamed from
//! there to the endpoint's `/invocations`, and the answer streamed into `async/output/<id>.out`
//! (a refusal's status and reason into `async/failures/<id>-error.out`): the keys SageMaker uses on
//! S3, so what a laptop run leaves is laid out as on AWS. Neither the payload nor the answer is
//! held in memory. The endpoint's server was started with the async limits (bodies up to 1 GB), as
//! SageMaker's container is.

use std::path::{Path, PathBuf};

use engine::resource::Kind;
use engine::target::{AsyncInvocation, AsyncOutcome, AsyncRequest};
use engine::values::{ASYNC_FAILURE_PREFIX, ASYNC_INPUT_PREFIX, ASYNC_OUTPUT_PREFIX, Hosting};
use tokio::io::AsyncWriteExt;

use crate::state::create_private_dir;
use crate::{LocalError, LocalTarget, bucket, bucket_name, endpoint, io_error};

const KIND: Kind = Kind::Endpoint;

/// Where one request's files go in the bucket folder.
struct Locations {
    input: PathBuf,
    output: PathBuf,
    failure: PathBuf,
}

impl Locations {
    fn of(bucket: &Path, id: &str) -> Self {
        Locations {
            input: bucket.join(format!("{ASYNC_INPUT_PREFIX}{id}")),
            output: bucket.join(format!("{ASYNC_OUTPUT_PREFIX}{id}.out")),
            failure: bucket.join(format!("{ASYNC_FAILURE_PREFIX}{id}-error.out")),
        }
    }

    fn invocation(&self, id: &str) -> AsyncInvocation {
        let text = |path: &Path| path.display().to_string();
        AsyncInvocation {
            inference_id: id.to_string(),
            input_location: text(&self.input),
            output_location: text(&self.output),
            failure_location: text(&self.failure),
        }
    }
}

/// Queues and answers one request: copies the payload in, posts it, writes the answer or the
/// failure. By the time it returns, [`await_async`] finds one of them.
pub(crate) async fn invoke_async(
    target: &LocalTarget,
    name: &str,
    request: &AsyncRequest<'_>,
) -> Result<AsyncInvocation, LocalError> {
    let (url, hosting) = endpoint::serving(target, name)?;
    if hosting != Hosting::Async {
        return Err(LocalError::NotAsync {
            name: name.to_string(),
            hosting,
        });
    }
    let bucket = bucket::folder(target, &bucket_name(&target.spec))?;
    let id = format!("{:032x}", rand::random::<u128>());
    let locations = Locations::of(&bucket, &id);
    for path in [&locations.input, &locations.output, &locations.failure] {
        let folder = path
            .parent()
            .expect("async locations are inside the bucket folder");
        create_private_dir(folder).map_err(io_error(KIND, name, "create", folder))?;
    }
    tokio::fs::copy(request.input, &locations.input)
        .await
        .map_err(io_error(KIND, name, "copy the payload into", &locations.input))?;
    let payload = tokio::fs::File::open(&locations.input).await.map_err(io_error(
        KIND,
        name,
        "read",
        &locations.input,
    ))?;
    let http = |source| LocalError::Http {
        url: url.clone(),
        source,
    };
    let mut response = target
        .http
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, request.content_type)
        .header(reqwest::header::ACCEPT, request.accept)
        .body(reqwest::Body::from(payload))
        .send()
        .await
        .map_err(http)?;
    let status = response.status();
    let written = if status.is_success() {
        &locations.output
    } else {
        &locations.failure
    };
    let mut out = tokio::fs::File::create(written)
        .await
        .map_err(io_error(KIND, name, "write", written))?;
    if !status.is_success() {
        let line = format!(
            "Received client error ({}) from the model with message: ",
            status.as_u16()
        );
        out.write_all(line.as_bytes())
            .await
            .map_err(io_error(KIND, name, "write", written))?;
    }
    while let Some(chunk) = response.chunk().await.map_err(http)? {
        out.write_all(&chunk)
            .await
            .map_err(io_error(KIND, name, "write", written))?;
    }
    out.flush()
        .await
        .map_err(io_error(KIND, name, "write", written))?;
    Ok(locations.invocation(&id))
}

/// The request's outcome: its answer copied to `answer_file`, or its failure's reason.
pub(crate) async fn await_async(
    invocation: &AsyncInvocation,
    answer_file: &Path,
) -> Result<AsyncOutcome, LocalError> {
    let name = &invocation.inference_id;
    let output = Path::new(&invocation.output_location);
    if output.is_file() {
        let bytes = tokio::fs::copy(output, answer_file).await.map_err(io_error(
            KIND,
            name,
            "copy the answer to",
            answer_file,
        ))?;
        return Ok(AsyncOutcome::Answered { bytes });
    }
    let failure = Path::new(&invocation.failure_location);
    if failure.is_file() {
        let reason = tokio::fs::read(failure)
            .await
            .map_err(io_error(KIND, name, "read", failure))?;
        return Ok(AsyncOutcome::Failed {
            reason: String::from_utf8_lossy(&reason).trim().to_string(),
        });
    }
    Ok(AsyncOutcome::StillQueued)
}
