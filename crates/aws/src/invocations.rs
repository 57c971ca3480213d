//! Requests to the live endpoint through sagemaker-runtime's `InvokeEndpoint`: the same
//! `/invocations` contract as the local endpoint. A request the model rejects comes back from
//! SageMaker as a `ModelError` carrying the container's status and body; it is returned as that
//! status and body, exactly as the local target returns the server's answer.
//!
//! Async requests (`InvokeEndpointAsync`) go through the bucket: the payload is uploaded under
//! `async/input/`, SageMaker writes the answer under `async/output/` (or the failure under
//! `async/failures/`), and [`await_async`] polls for either and streams the answer to a file.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sagemakerruntime::operation::invoke_endpoint::InvokeEndpointError;
use aws_sdk_sagemakerruntime::primitives::Blob;
use engine::Kind;
use engine::target::{AsyncInvocation, AsyncOutcome, AsyncRequest};
use engine::values::ASYNC_INPUT_PREFIX;

use crate::clients::Clients;
use crate::errors::AwsError;

/// Sends one request; returns the model's status code and body.
pub async fn invoke(
    clients: &Clients,
    endpoint: &str,
    content_type: &str,
    accept: &str,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), AwsError> {
    let result = clients
        .runtime
        .invoke_endpoint()
        .endpoint_name(endpoint)
        .content_type(content_type)
        .accept(accept)
        .body(Blob::new(body))
        .send()
        .await;
    match result {
        Ok(out) => Ok((200, out.body().map(|b| b.as_ref().to_vec()).unwrap_or_default())),
        Err(error) => {
            if let Some(InvokeEndpointError::ModelError(model)) = error.as_service_error() {
                let status = model
                    .original_status_code()
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(424);
                let message = model.original_message().unwrap_or_default().as_bytes().to_vec();
                return Ok((status, message));
            }
            Err(AwsError::sdk("invoke", Kind::Endpoint, endpoint, error))
        }
    }
}

/// How often [`await_async`] looks for the answer.
const ASYNC_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Uploads the payload file (streamed from disk) to `s3://<bucket>/async/input/<id>` and queues it
/// with `InvokeEndpointAsync`; the id is new (128 random bits, hex) and is also the inference id.
pub async fn invoke_async(
    clients: &Clients,
    bucket: &str,
    endpoint: &str,
    request: &AsyncRequest<'_>,
) -> Result<AsyncInvocation, AwsError> {
    let id = format!("{:032x}", rand::random::<u128>());
    let key = format!("{ASYNC_INPUT_PREFIX}{id}");
    let body = ByteStream::from_path(request.input).await.map_err(|e| {
        AwsError::other(
            "read the payload of",
            Kind::Endpoint,
            endpoint,
            format!("`{}`: {e}", request.input.display()),
        )
    })?;
    clients
        .s3
        .put_object()
        .bucket(bucket)
        .key(&key)
        .content_type(request.content_type)
        .body(body)
        .send()
        .await
        .map_err(|e| AwsError::sdk("upload the async request of", Kind::Endpoint, endpoint, e))?;
    let input_location = format!("s3://{bucket}/{key}");
    let queued = clients
        .runtime
        .invoke_endpoint_async()
        .endpoint_name(endpoint)
        .input_location(&input_location)
        .content_type(request.content_type)
        .accept(request.accept)
        .inference_id(&id)
        .send()
        .await
        .map_err(|e| AwsError::sdk("invoke asynchronously", Kind::Endpoint, endpoint, e))?;
    let location = |value: Option<&str>, what: &str| {
        value.map(str::to_string).ok_or_else(|| {
            AwsError::other(
                "invoke asynchronously",
                Kind::Endpoint,
                endpoint,
                format!("SageMaker's answer names no {what} location"),
            )
        })
    };
    Ok(AsyncInvocation {
        inference_id: queued.inference_id().unwrap_or(&id).to_string(),
        input_location,
        output_location: location(queued.output_location(), "output")?,
        failure_location: location(queued.failure_location(), "failure")?,
    })
}

/// Polls the output and failure locations (`HeadObject`) until one exists or `wait` has passed;
/// an answer is streamed into `answer_file`, a failure's reason read (SageMaker writes a short
/// message there).
pub async fn await_async(
    clients: &Clients,
    invocation: &AsyncInvocation,
    wait: std::time::Duration,
    answer_file: &std::path::Path,
) -> Result<AsyncOutcome, AwsError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if exists(clients, invocation, &invocation.output_location).await? {
            let bytes = download(clients, invocation, &invocation.output_location, answer_file).await?;
            return Ok(AsyncOutcome::Answered { bytes });
        }
        if exists(clients, invocation, &invocation.failure_location).await? {
            let (bucket, key) = split_s3(invocation, &invocation.failure_location)?;
            let failure = clients
                .s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| {
                    AwsError::sdk("read the failure of", Kind::Endpoint, &invocation.inference_id, e)
                })?;
            let reason = failure.body.collect().await.map_err(|e| {
                AwsError::other("read the failure of", Kind::Endpoint, &invocation.inference_id, e)
            })?;
            let reason = String::from_utf8_lossy(&reason.into_bytes()).trim().to_string();
            return Ok(AsyncOutcome::Failed { reason });
        }
        if tokio::time::Instant::now() + ASYNC_POLL > deadline {
            return Ok(AsyncOutcome::StillQueued);
        }
        tokio::time::sleep(ASYNC_POLL).await;
    }
}

/// `s3://bucket/key` as (bucket, key).
fn split_s3<'a>(invocation: &AsyncInvocation, location: &'a str) -> Result<(&'a str, &'a str), AwsError> {
    location
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .ok_or_else(|| {
            AwsError::other(
                "read the answer of",
                Kind::Endpoint,
                &invocation.inference_id,
                format!("`{location}` is not an s3:// location"),
            )
        })
}

async fn exists(clients: &Clients, invocation: &AsyncInvocation, location: &str) -> Result<bool, AwsError> {
    let (bucket, key) = split_s3(invocation, location)?;
    match clients.s3.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => Ok(true),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
        Err(error) => Err(AwsError::sdk(
            "look for the answer of",
            Kind::Endpoint,
            &invocation.inference_id,
            error,
        )),
    }
}

/// Streams an object into a file; returns its size.
async fn download(
    clients: &Clients,
    invocation: &AsyncInvocation,
    location: &str,
    file: &std::path::Path,
) -> Result<u64, AwsError> {
    let (bucket, key) = split_s3(invocation, location)?;
    let object = clients
        .s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| AwsError::sdk("read the answer of", Kind::Endpoint, &invocation.inference_id, e))?;
    let write_error = |e: std::io::Error| {
        AwsError::other(
            "write the answer of",
            Kind::Endpoint,
            &invocation.inference_id,
            format!("`{}`: {e}", file.display()),
        )
    };
    let mut out = tokio::fs::File::create(file).await.map_err(write_error)?;
    let mut body = object.body.into_async_read();
    let bytes = tokio::io::copy(&mut body, &mut out).await.map_err(write_error)?;
    tokio::io::AsyncWriteExt::flush(&mut out)
        .await
        .map_err(write_error)?;
    Ok(bytes)
}
