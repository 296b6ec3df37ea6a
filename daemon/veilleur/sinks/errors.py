"""Which failures are worth retrying: the one place that turns AWS errors into an Outcome.

RETRYABLE: the request may succeed later unchanged (throttling, 5xx, timeouts, connection
errors, endpoint unreachable, credentials not fetched yet). PERMANENT: AWS gave a verdict on
the request itself (access denied, unknown topic or bus, invalid parameter, too large), so
the same request will fail again: dead-letter it. Unknown error codes follow the HTTP status
(4xx permanent, 5xx and 429 retryable); unknown exceptions are retryable, and the outbox's
retry bound dead-letters them if they persist.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)

from veilleur.sinks.base import Outcome

_ERROR_CHARS = 300

# Codes that mean "later": throttling, server side trouble, transient credential problems.
RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "Throttled",  # SNS ThrottledException (senderFault true, yet transient)
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "KMSThrottling",
        "KMSThrottlingException",
        "InternalError",
        "InternalErrorException",
        "InternalFailure",
        "InternalException",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ConcurrentAccess",
        # Refreshed by botocore's credential providers or fixed by the clock: not the message.
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "IDPCommunicationError",
    }
)

# Codes that mean "never, not with this request".
PERMANENT_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AuthorizationError",
        "NotAuthorizedForSourceException",
        "NotAuthorizedForDetailTypeException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "NotFound",
        "NotFoundException",
        "ResourceNotFound",
        "ResourceNotFoundException",
        "InvalidParameter",
        "InvalidParameterException",
        "InvalidParameterValue",
        "ParameterValueInvalid",
        "InvalidArgument",
        "MalformedDetail",
        "ValidationException",
        "ValidationError",
        "InvalidAccountIdException",
        "RedactionFailure",
        "EndpointDisabled",
        "KMSAccessDenied",
        "KMSDisabled",
        "KMSInvalidState",
        "KMSNotFound",
        "KMSOptInRequired",
        "InvalidSecurity",
        "OptedOut",
        "BatchEntryIdsNotDistinct",
        "BatchRequestTooLong",
        "EmptyBatchRequest",
        "InvalidBatchEntryId",
        "TooManyEntriesInBatchRequest",
    }
)


@dataclass(frozen=True, slots=True)
class Failure:
    """How one failed call or entry ends: the outcome and a short error safe to log."""

    outcome: Outcome
    error: str


def short_error(code: str, message: str | None = None) -> str:
    """``Code: message`` on one printable line, bounded."""
    text = f"{code}: {message}" if message else code
    text = " ".join(text.split())
    return "".join(ch for ch in text if ch.isprintable())[:_ERROR_CHARS]


def classify_code(code: str, http_status: int | None = None) -> Outcome:
    """An AWS error code (and the HTTP status, when known) as an outcome."""
    if code in RETRYABLE_CODES:
        return Outcome.RETRYABLE
    if code in PERMANENT_CODES:
        return Outcome.PERMANENT
    if http_status is not None:
        if http_status == 429 or http_status >= 500:
            return Outcome.RETRYABLE
        if 400 <= http_status < 500:
            return Outcome.PERMANENT
    return Outcome.RETRYABLE


def classify_exception(exc: BaseException) -> Failure:
    """What a whole call's exception means for every item the call carried."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return Failure(
            classify_code(code, status if isinstance(status, int) else None),
            short_error(code, str(error.get("Message") or "")),
        )
    if isinstance(exc, HTTPClientError):
        # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosed...
        return Failure(Outcome.RETRYABLE, short_error(type(exc).__name__, str(exc)))
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        # An instance-metadata or STS hiccup looks the same as a missing setting: retry,
        # the outbox's bound dead-letters it if it lasts.
        return Failure(Outcome.RETRYABLE, short_error(type(exc).__name__))
    if isinstance(exc, ParamValidationError):
        # botocore refused to build the request: the same request will be refused again.
        return Failure(Outcome.PERMANENT, short_error(type(exc).__name__, str(exc)))
    if isinstance(exc, BotoCoreError):
        return Failure(Outcome.RETRYABLE, short_error(type(exc).__name__, str(exc)))
    return Failure(Outcome.RETRYABLE, short_error(f"unexpected {type(exc).__name__}", str(exc)))


def classify_sns_entry(code: str, sender_fault: bool) -> Outcome:
    """One ``Failed`` entry of ``PublishBatch``: the sender's fault is permanent, SNS's
    is retryable, except codes known to be transient (``Throttled`` is a sender fault)."""
    if code in RETRYABLE_CODES:
        return Outcome.RETRYABLE
    return Outcome.PERMANENT if sender_fault else Outcome.RETRYABLE


def classify_eventbridge_entry(code: str) -> Outcome:
    """One failed entry of ``PutEvents`` (``InternalFailure``, ``ThrottlingException`` are
    retryable; ``AccessDeniedException``, ``InvalidArgument``, ``MalformedDetail``,
    ``NotAuthorizedForSourceException``... are not). Unknown codes are retried."""
    return classify_code(code)
