"""CloudWatch over Smithy RPC v2 CBOR, the protocol the current Rust SDK speaks, served by moto.

`aws-sdk-cloudwatch` 1.x sends `POST /service/GraniteServiceVersion20100801/operation/<Operation>`
with `smithy-protocol: rpc-v2-cbor` and a CBOR body, and reads CBOR back (timestamps as tag 1 epoch
seconds, errors as a map with `__type` and `message`). moto 5.2.1 knows CloudWatch's JSON 1.0 and
query protocols only. A shim, rather than pinning an `aws-sdk-cloudwatch` from before the switch
(query protocol): that pin would hold orchestrate on an SDK without fixes or new CloudWatch APIs,
and the tests would prove a wire format production no longer speaks.

The shim translates, both ways, at moto's WSGI application (`install()`):
  - the request becomes CloudWatch's JSON 1.0 request for moto (`X-Amz-Target:
    GraniteServiceVersion20100801.<Operation>`, the CBOR map as JSON, timestamps as epoch seconds,
    blobs as base64), so moto's own CloudWatch (`CloudWatchResponse`, its parameter parsing and its
    backend) answers every operation it implements;
  - moto's JSON answer is re-encoded as CBOR following the botocore `cloudwatch` model's output
    shape (tag 1 timestamps, integers and doubles by the shape, base64 blobs as byte strings); an
    operation without an output shape answers an empty body;
  - an error keeps its status and moto's `x-amzn-query-error` header (CloudWatch is
    `awsQueryCompatible`: the SDK takes the error code from it) and gets the protocol's CBOR body
    `{"__type": "com.amazonaws.cloudwatch#<Code>", "message": ...}`;
  - the request log's answer to a request the service-model check refused (HTTP 400) gets the same
    CBOR form, so the SDK reads the rule it broke as the error's message.

IAM enforcement sees the request as the client sent it: the request log hands iam_policy_check.py
the original target, body and headers before this shim rewrites them, so the signature is checked
against what the SDK signed, and the action is named by CloudWatch's IAM prefix (`cloudwatch`, not
the signing name `monitoring`).
"""

import base64
import datetime
import functools
import io
import json
import re
import sys
import threading

import botocore
import botocore.loaders
import botocore.model
import cbor2

# Smithy's name of CloudWatch's service shape: the path's service and the JSON 1.0 target prefix.
SERVICE = "GraniteServiceVersion20100801"
# The namespace of CloudWatch's shapes, for the `__type` of errors.
NAMESPACE = "com.amazonaws.cloudwatch"
_PATH = re.compile(r"/service/(?P<service>[^/]+)/operation/(?P<operation>[^/]+)")
_JSON = "application/x-amz-json-1.0"

_lock = threading.Lock()
_installed = False


def operation_of(environ):
    """`(service, operation)` when the request is an RPC v2 CBOR call (`POST
    /service/<service>/operation/<operation>`), else `None`. Any service: the request check reports
    one without a model."""
    if environ.get("REQUEST_METHOD") != "POST":
        return None
    match = _PATH.fullmatch(environ.get("PATH_INFO", ""))
    return (match["service"], match["operation"]) if match else None


def protocol_violations(environ):
    """What an RPC v2 CBOR request lacks in its headers (the spec requires both)."""
    violations = []
    if environ.get("HTTP_SMITHY_PROTOCOL") != "rpc-v2-cbor":
        violations.append("smithy-protocol: the header must be rpc-v2-cbor")
    content_type = environ.get("CONTENT_TYPE", "")
    if content_type and content_type != "application/cbor":
        violations.append(f"Content-Type: {content_type!r} is not application/cbor")
    return violations


def decode(body):
    """The input structure of a CBOR body (a dict; an empty body is `{}`). Raises `ValueError` when
    the body is not CBOR or not a map."""
    if not body:
        return {}
    try:
        value = cbor2.loads(body)
    except (cbor2.CBORDecodeError, ValueError, EOFError) as error:
        raise ValueError(f"the body is not CBOR ({error})") from error
    if not isinstance(value, dict):
        raise ValueError(f"the body is a CBOR {type(value).__name__}, not a map")
    return value


@functools.cache
def _model():
    loader = botocore.loaders.Loader()
    return botocore.model.ServiceModel(loader.load_service_model("cloudwatch", "service-2"), "cloudwatch")


# --- Request: CBOR to moto's JSON 1.0 ----------------------------------------------------------------


def _to_json(value):
    """A decoded CBOR value as JSON 1.0 writes it: timestamps as epoch seconds, blobs as base64,
    null members left out."""
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_to_json(item) for item in value]
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.timestamp()
    if isinstance(value, cbor2.CBORTag) and value.tag == 1:
        return value.value
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    return value


# --- Response: moto's JSON to CBOR -----------------------------------------------------------------


def _to_cbor(shape, value):
    """`value` (moto's JSON) typed by `shape` for CBOR."""
    if value is None or shape is None:
        return value
    kind = shape.type_name
    if kind == "structure":
        return {
            name: _to_cbor(shape.members.get(name), item)
            for name, item in value.items()
            if item is not None and name in shape.members
        }
    if kind == "list":
        return [_to_cbor(shape.member, item) for item in value]
    if kind == "map":
        return {key: _to_cbor(shape.value, item) for key, item in value.items()}
    if kind == "timestamp":
        return cbor2.CBORTag(1, _epoch_seconds(value))
    if kind in ("integer", "long"):
        return int(value)
    if kind in ("float", "double"):
        return float(value)
    if kind == "boolean":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if kind == "blob":
        return base64.b64decode(value) if isinstance(value, str) else bytes(value)
    return value


def _epoch_seconds(value):
    if isinstance(value, (int, float)):
        return value
    parsed = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


def error_body(code, message):
    """The protocol's error document, CBOR-encoded."""
    return cbor2.dumps({"__type": f"{NAMESPACE}#{code}", "message": message})


# moto's headers that describe its JSON answer (and its internal `status`), replaced by the CBOR ones.
_REPLACED = ("content-type", "content-length", "x-amzn-errortype", "status")


def _headers(headers, length):
    kept = [(k, v) for k, v in headers if k.lower() not in _REPLACED]
    return kept + [
        ("Content-Type", "application/cbor"),
        ("smithy-protocol", "rpc-v2-cbor"),
        ("Content-Length", str(length)),
    ]


def _serve(app, environ, start_response):
    """Answers one RPC v2 CBOR call to CloudWatch with moto's JSON 1.0 handler."""
    _, operation = operation_of(environ)
    stream = environ["wsgi.input"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = stream.read(length) if length else b""
    try:
        params = _to_json(decode(body))
    except ValueError as error:
        data = error_body("SerializationException", str(error))
        start_response("400 Bad Request", _headers([], len(data)))
        return [data]
    payload = json.dumps(params).encode()
    translated = dict(environ)
    translated.update(
        {
            "PATH_INFO": "/",
            "RAW_URI": "/",
            "REQUEST_URI": "/",
            "QUERY_STRING": "",
            "HTTP_X_AMZ_TARGET": f"{SERVICE}.{operation}",
            "CONTENT_TYPE": _JSON,
            "CONTENT_LENGTH": str(len(payload)),
            "wsgi.input": io.BytesIO(payload),
        }
    )
    answered = {}

    def capture(status, headers, exc_info=None):
        answered["status"], answered["headers"] = status, headers
        return lambda chunk: None

    chunks = app(translated, capture)
    try:
        answer = b"".join(chunks)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    status, headers = answered["status"], answered["headers"]
    code = int(status.split(" ", 1)[0])
    try:
        document = json.loads(answer) if answer.strip() else {}
    except ValueError:
        document = {"__type": "InternalFailure", "message": answer.decode("utf-8", "replace")}
    if code >= 300:
        error_type = document.get("__type") or dict((k.lower(), v) for k, v in headers).get("x-amzn-errortype", "")
        data = error_body(error_type.rsplit("#", 1)[-1] or "InternalFailure", document.get("message") or document.get("Message") or "")
    else:
        model = _model()
        output = model.operation_model(operation).output_shape if operation in model.operation_names else None
        data = b"" if output is None else cbor2.dumps(_to_cbor(output, document))
    start_response(status, _headers(headers, len(data)))
    return [data]


def _answers_cbor(app_call):
    @functools.wraps(app_call)
    def call(self, environ, start_response):
        called = operation_of(environ)
        if called is None or called[0] != SERVICE:
            return app_call(self, environ, start_response)
        return _serve(functools.partial(app_call, self), environ, start_response)

    return call


def _rejects_in_cbor(reject):
    def rejected(environ, start_response, entry, violations):
        called = operation_of(environ)
        if called is None or called[0] != SERVICE:
            return reject(environ, start_response, entry, violations)
        message = (
            f"testbed: AWS would reject {entry['operation']}: {'; '.join(violations)} "
            f"(botocore {botocore.__version__} service model)"
        )
        data = error_body("ValidationException", message)
        start_response("400 Bad Request", _headers([("x-amzn-query-error", "ValidationError;Sender")], len(data)))
        return [data]

    return rejected


def install(request_log):
    """Serves RPC v2 CBOR CloudWatch calls through moto's application (its `DomainDispatcherApplication`)
    and answers `request_log`'s refusals of them (the launcher's `RequestLog`) in CBOR. Idempotent;
    the launcher calls it once before the server starts."""
    global _installed
    with _lock:
        if _installed:
            return
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication

        DomainDispatcherApplication.__call__ = _answers_cbor(DomainDispatcherApplication.__call__)
        request_log.reject = staticmethod(_rejects_in_cbor(request_log.reject))
        _installed = True
