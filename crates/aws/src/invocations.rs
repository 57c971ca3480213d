//! Requests to the live endpoint through sagemaker-runtime's `InvokeEndpoint`: the same
//! `/invocations` contract as the local endpoint. A request the model rejects comes back from
//! SageMaker as a `ModelError` carrying the container's status and body; it is returned as that
//! status and body, exactly as the local target returns the server's answer.

use aws_sdk_sagemakerruntime::operation::invoke_endpoint::InvokeEndpointError;
use aws_sdk_sagemakerruntime::primitives::Blob;
use engine::Kind;

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
