//! Every AWS error is classified here, into sgt-core's error kinds.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use sgt_core::Error;

/// Error codes that mean "try again later".
const TRANSIENT: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "TooManyUpdates",
    "SlowDown",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "RequestTimeout",
];
const NOT_FOUND: &[&str] = &[
    "NoSuchKey",
    "NotFound",
    "NoSuchBucket",
    "ParameterNotFound",
    "ResourceNotFoundException",
];
const ALREADY_EXISTS: &[&str] = &[
    "ParameterAlreadyExists",
    "BucketAlreadyOwnedByYou",
    "ResourceInUseException",
];
const CONFLICT: &[&str] = &[
    "ConditionalCheckFailedException",
    "TransactionConflictException",
];

/// Maps an SDK error to a core error; `what` names the thing in `NotFound`/`AlreadyExists`.
pub(crate) fn classify<E, R>(backend: &'static str, what: &str, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => Error::unavailable(format!(
            "{backend}: {}",
            aws_smithy_types::error::display::DisplayErrorContext(&err)
        )),
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            if TRANSIENT.contains(&code) {
                Error::unavailable(format!("{backend}: {code}"))
            } else if NOT_FOUND.contains(&code) {
                Error::not_found(what)
            } else if ALREADY_EXISTS.contains(&code) {
                Error::already_exists(what)
            } else if CONFLICT.contains(&code) {
                Error::conflict(what)
            } else {
                Error::backend(backend, err)
            }
        }
        _ => Error::backend(backend, err),
    }
}

/// The error code of a service error, if it is one.
pub(crate) fn code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}
