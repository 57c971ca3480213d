//! SDK error classification, in one place: every module asks "was that not found, throttled, a
//! conflict, access denied, or something else?" here and nowhere else.
//!
//! The modelled error's code is used where AWS sends one (S3's `NoSuchBucket`, IAM's `NoSuchEntity`,
//! ECR's `RepositoryNotFoundException`), the HTTP status where it does not (S3 answers `HeadBucket`
//! and `HeadObject` with a bare 404), and the message for services that report a missing resource
//! as `ValidationException` (SageMaker's `Describe*`: "Could not find …"). A request that never left
//! because the credential chain found no credentials at all is [`ErrorClass::NoCredentials`].

use std::error::Error as StdError;
use std::fmt;

use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::request_id::RequestId;
use engine::{Kind, TargetError};

/// What kind of failure an SDK error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The resource (or its sub-configuration, like a bucket policy) does not exist.
    NotFound,
    /// The service asked us to slow down; retrying later helps.
    Throttled,
    /// The resource exists already, is in use, or a precondition (`If-None-Match`) failed.
    Conflict,
    /// The credentials are wrong, expired, or not allowed to do this.
    AccessDenied,
    /// The service failed on its side (a 5xx), timed out, or could not be reached (a connection
    /// refused or reset): the same call may well work later.
    Transient,
    /// No request was sent: no source of the credential chain (environment, profile, web identity,
    /// container or instance metadata) had credentials.
    NoCredentials,
    /// Anything else (validation, other client errors).
    Other,
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorClass::NotFound => "not found",
            ErrorClass::Throttled => "throttled",
            ErrorClass::Conflict => "conflict",
            ErrorClass::AccessDenied => "access denied",
            ErrorClass::Transient => "transient failure",
            ErrorClass::NoCredentials => "no credentials",
            ErrorClass::Other => "failed",
        })
    }
}

const NOT_FOUND_CODES: &[&str] = &[
    "NotFound",
    "NoSuchBucket",
    "NoSuchKey",
    "NoSuchVersion",
    "NoSuchBucketPolicy",
    "NoSuchTagSet",
    "NoSuchTagSetError",
    "NoSuchPublicAccessBlockConfiguration",
    "ServerSideEncryptionConfigurationNotFoundError",
    "NoSuchEntity",
    "RepositoryNotFoundException",
    "ImageNotFoundException",
    "RepositoryPolicyNotFoundException",
    "ResourceNotFound",
    "ResourceNotFoundException",
    "ObjectNotFoundException",
];

const THROTTLED_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "ProvisionedThroughputExceededException",
];

const CONFLICT_CODES: &[&str] = &[
    "BucketAlreadyExists",
    "BucketAlreadyOwnedByYou",
    "OperationAborted",
    "PreconditionFailed",
    "ConditionalRequestConflict",
    "EntityAlreadyExists",
    "DeleteConflict",
    "ConcurrentModification",
    "RepositoryAlreadyExistsException",
    "RepositoryNotEmptyException",
    "ImageAlreadyExistsException",
    "ImageTagAlreadyExistsException",
    "LayerAlreadyExistsException",
    "ResourceInUse",
    "ResourceInUseException",
    "ConflictException",
];

const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "AllAccessDisabled",
    "UnauthorizedOperation",
    "UnauthorizedAccess",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "MissingAuthenticationToken",
];

/// Classifies an error from its code, message and HTTP status (pure; the codes take precedence).
pub fn classify_parts(code: Option<&str>, message: Option<&str>, status: Option<u16>) -> ErrorClass {
    if let Some(code) = code {
        if NOT_FOUND_CODES.contains(&code) {
            return ErrorClass::NotFound;
        }
        if THROTTLED_CODES.contains(&code) {
            return ErrorClass::Throttled;
        }
        if CONFLICT_CODES.contains(&code) {
            return ErrorClass::Conflict;
        }
        if ACCESS_DENIED_CODES.contains(&code) {
            return ErrorClass::AccessDenied;
        }
        // SageMaker's `Describe*` ("Could not find"), and Application Auto Scaling as moto answers
        // a missing scalable target or policy ("No scalable target found", where AWS sends
        // `ObjectNotFoundException`).
        if code == "ValidationException"
            && message.is_some_and(|m| {
                m.contains("Could not find")
                    || m.contains("does not exist")
                    || m.contains("No scalable target found")
                    || m.contains("No scaling policy found")
            })
        {
            return ErrorClass::NotFound;
        }
    }
    match status {
        Some(404) => ErrorClass::NotFound,
        Some(429) => ErrorClass::Throttled,
        Some(409 | 412) => ErrorClass::Conflict,
        Some(401 | 403) => ErrorClass::AccessDenied,
        Some(500..=599) => ErrorClass::Transient,
        _ => ErrorClass::Other,
    }
}

/// Classifies an SDK error of any AWS service.
pub fn classify<E>(error: &SdkError<E, HttpResponse>) -> ErrorClass
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    if found_no_credentials(error) {
        return ErrorClass::NoCredentials;
    }
    match error {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => return ErrorClass::Transient,
        SdkError::DispatchFailure(failure) if failure.is_timeout() || failure.is_io() => {
            return ErrorClass::Transient;
        }
        _ => {}
    }
    let status = error.raw_response().map(|r| r.status().as_u16());
    classify_parts(error.code(), error.message(), status)
}

/// Whether `error` or one of its causes is the credential chain saying that none of its sources had
/// credentials (`CredentialsNotLoaded`; the SDK reports it as a dispatch failure). A source that has
/// credentials configured but fails (an expired SSO token, a failing `credential_process`) is a
/// different error and stays one.
pub fn found_no_credentials(error: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if matches!(
            error.downcast_ref::<CredentialsError>(),
            Some(CredentialsError::CredentialsNotLoaded(_))
        ) {
            return true;
        }
        next = error.source();
    }
    false
}

/// The cause to keep of an SDK error: the service's answer (code, message, class, request id) when
/// there is one, the SDK's error with its causes otherwise (a connection that failed, a timeout).
pub fn sdk_cause<E>(class: ErrorClass, error: SdkError<E, HttpResponse>) -> Box<dyn StdError + Send + Sync>
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match error.code() {
        Some(code) => Box::new(ServiceError {
            code: code.to_string(),
            message: error.message().map(str::to_string),
            class,
            request_id: error.request_id().map(str::to_string),
        }),
        None => Box::new(error),
    }
}

/// One failed AWS call, with what it was doing to which resource.
#[derive(Debug, thiserror::Error)]
#[error("{action} {kind} `{name}`")]
pub struct AwsError {
    pub action: &'static str,
    pub kind: Kind,
    pub name: String,
    pub class: ErrorClass,
    /// The service's error code (`NoSuchBucket`), when it sent one.
    pub code: Option<String>,
    #[source]
    pub source: Box<dyn StdError + Send + Sync>,
}

impl AwsError {
    /// Wraps an SDK error, classifying it.
    pub fn sdk<E>(action: &'static str, kind: Kind, name: &str, error: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let class = classify(&error);
        let code = error.code().map(str::to_string);
        Self {
            action,
            kind,
            name: name.to_string(),
            class,
            code,
            source: sdk_cause(class, error),
        }
    }

    pub fn other(
        action: &'static str,
        kind: Kind,
        name: &str,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self {
            action,
            kind,
            name: name.to_string(),
            class: ErrorClass::Other,
            code: None,
            source: source.into(),
        }
    }

    /// Whether the service sent this error code.
    pub fn has_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    pub fn is_not_found(&self) -> bool {
        self.class == ErrorClass::NotFound
    }
}

/// For calls where a missing resource is an answer, not a failure: finding, reading, deleting.
pub trait OrAbsent<T> {
    /// `Some(value)`; `None` when the error says the resource (or the part of it asked for) does
    /// not exist; any other error stays an error.
    fn or_absent(self) -> Result<Option<T>, AwsError>;
}

impl<T> OrAbsent<T> for Result<T, AwsError> {
    fn or_absent(self) -> Result<Option<T>, AwsError> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }
}

impl AwsError {
    /// Whether the same call may work later: throttled, or a [`ErrorClass::Transient`] failure.
    pub fn is_transient(&self) -> bool {
        matches!(self.class, ErrorClass::Throttled | ErrorClass::Transient)
    }
}

impl From<AwsError> for TargetError {
    fn from(error: AwsError) -> Self {
        let transient = error.is_transient();
        let error = TargetError::caused_by(error.action, error.kind, &error.name, error.source);
        if transient { error.transient() } else { error }
    }
}

/// What an AWS service answered when it refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{code}{}{} ({class}{})",
    if message.is_some() { ": " } else { "" },
    message.as_deref().unwrap_or_default(),
    request_id.as_ref().map(|id| format!(", request id {id}")).unwrap_or_default()
)]
pub struct ServiceError {
    pub code: String,
    pub message: Option<String>,
    pub class: ErrorClass,
    pub request_id: Option<String>,
}

/// Displays an error with its whole `source()` chain (`a: b: c`).
pub struct DisplayErrorContext<'a, E: ?Sized>(pub &'a E);

impl<E: StdError + ?Sized> fmt::Display for DisplayErrorContext<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl<E: ?Sized> fmt::Debug for DisplayErrorContext<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DisplayErrorContext")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modelled_codes_win_over_status() {
        assert_eq!(
            classify_parts(Some("NoSuchBucket"), None, Some(404)),
            ErrorClass::NotFound
        );
        assert_eq!(
            classify_parts(Some("NoSuchEntity"), None, Some(404)),
            ErrorClass::NotFound
        );
        assert_eq!(
            classify_parts(Some("RepositoryNotFoundException"), None, Some(400)),
            ErrorClass::NotFound
        );
        assert_eq!(
            classify_parts(Some("SlowDown"), None, Some(503)),
            ErrorClass::Throttled
        );
        assert_eq!(
            classify_parts(Some("ThrottlingException"), None, Some(400)),
            ErrorClass::Throttled
        );
        assert_eq!(
            classify_parts(Some("EntityAlreadyExists"), None, Some(409)),
            ErrorClass::Conflict
        );
        assert_eq!(
            classify_parts(Some("BucketAlreadyOwnedByYou"), None, Some(409)),
            ErrorClass::Conflict
        );
        assert_eq!(
            classify_parts(Some("PreconditionFailed"), None, Some(412)),
            ErrorClass::Conflict
        );
        assert_eq!(
            classify_parts(Some("AccessDenied"), None, Some(403)),
            ErrorClass::AccessDenied
        );
        assert_eq!(
            classify_parts(Some("ExpiredToken"), None, Some(400)),
            ErrorClass::AccessDenied
        );
    }

    #[test]
    fn sagemaker_reports_missing_resources_as_validation_errors() {
        assert_eq!(
            classify_parts(
                Some("ValidationException"),
                Some("Could not find endpoint \"iot-anomaly\"."),
                Some(400)
            ),
            ErrorClass::NotFound
        );
        assert_eq!(
            classify_parts(Some("ValidationException"), Some("Bad instance type"), Some(400)),
            ErrorClass::Other
        );
    }

    /// Regression: a `DeregisterScalableTarget` whose answer was lost was retried by the SDK and
    /// met "No scalable target found", which ended `down` instead of counting as gone.
    #[test]
    fn a_missing_scalable_target_or_policy_is_not_found() {
        let moto = "No scalable target found for service namespace: sagemaker, resource ID: \
                    endpoint/iot/variant/AllTraffic, scalable dimension: sagemaker:variant:DesiredInstanceCount";
        assert_eq!(
            classify_parts(Some("ValidationException"), Some(moto), Some(400)),
            ErrorClass::NotFound
        );
        assert_eq!(
            classify_parts(
                Some("ObjectNotFoundException"),
                Some("No scaling policy found"),
                Some(400)
            ),
            ErrorClass::NotFound
        );
    }

    /// What the SDK returns when identity resolution fails before a request is sent.
    fn unsent(
        cause: CredentialsError,
    ) -> SdkError<aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError, HttpResponse> {
        use aws_smithy_runtime_api::client::result::ConnectorError;
        SdkError::dispatch_failure(ConnectorError::other(Box::new(cause), None))
    }

    #[test]
    fn an_empty_credential_chain_is_no_credentials_and_a_failing_source_is_not() {
        assert_eq!(
            classify(&unsent(CredentialsError::not_loaded("no providers in chain"))),
            ErrorClass::NoCredentials
        );
        assert_eq!(
            classify(&unsent(CredentialsError::provider_error("the SSO token expired"))),
            ErrorClass::Other
        );
        assert_eq!(
            classify(&unsent(CredentialsError::invalid_configuration(
                "role_arn without source"
            ))),
            ErrorClass::Other
        );
    }

    #[test]
    fn bare_statuses_are_classified() {
        // HeadBucket / HeadObject answer with no body, so no code.
        assert_eq!(classify_parts(None, None, Some(404)), ErrorClass::NotFound);
        assert_eq!(classify_parts(None, None, Some(403)), ErrorClass::AccessDenied);
        assert_eq!(classify_parts(None, None, Some(412)), ErrorClass::Conflict);
        assert_eq!(classify_parts(None, None, Some(429)), ErrorClass::Throttled);
        assert_eq!(classify_parts(None, None, Some(500)), ErrorClass::Transient);
        assert_eq!(classify_parts(None, None, Some(503)), ErrorClass::Transient);
        assert_eq!(classify_parts(None, None, Some(400)), ErrorClass::Other);
        assert_eq!(classify_parts(None, None, None), ErrorClass::Other);
        assert_eq!(
            classify_parts(Some("InternalError"), None, Some(500)),
            ErrorClass::Transient
        );
    }

    /// Regression: a throttled or failed Describe* during a wait ended the run; the executor now
    /// waits through errors the target marks transient.
    #[test]
    fn throttling_server_errors_and_timeouts_are_transient_for_the_engine() {
        use aws_smithy_runtime_api::client::result::ConnectorError;
        type StsError = aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError;
        let timeout: SdkError<StsError, HttpResponse> = SdkError::timeout_error("attempt timed out");
        assert_eq!(classify(&timeout), ErrorClass::Transient);
        let reset: SdkError<StsError, HttpResponse> = SdkError::dispatch_failure(ConnectorError::io(
            Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        ));
        assert_eq!(classify(&reset), ErrorClass::Transient);
        let target = |class| {
            TargetError::from(AwsError {
                action: "find",
                kind: Kind::TrainingJob,
                name: "iot-job1-1".into(),
                class,
                code: None,
                source: "cause".into(),
            })
        };
        assert!(target(ErrorClass::Throttled).is_transient());
        assert!(target(ErrorClass::Transient).is_transient());
        assert!(!target(ErrorClass::AccessDenied).is_transient());
        assert!(!target(ErrorClass::Other).is_transient());
    }
}
