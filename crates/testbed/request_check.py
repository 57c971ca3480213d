"""Checks AWS requests against AWS's own published service models (botocore's `service-2.json`).

moto accepts requests that AWS rejects: a tag value with a comma, a name one character too long, a
missing required member. This module rebuilds each request's input structure from the wire, in the
protocol its service speaks, and checks it against the operation's input shape the way AWS
validates: required members, enums, string lengths and `pattern`s (Java regular expressions, read
with PyPI `regex`, which knows `\\p{..}` classes), number ranges, list and map sizes, and S3's bucket
naming rules. `check(environ, body)` returns the operation and the violations, each naming the member
path and the rule; moto_launcher answers a request with violations as AWS would (HTTP 400), so the
SDK call, and with it the test, fails with that message.

Protocols:
  - JSON 1.1 (SageMaker, ECR, CloudWatch Logs, Application Auto Scaling): the operation is the
    `X-Amz-Target` header's suffix, the body is the input structure;
  - query (IAM, STS): the form body; lists are `Name.member.N`, maps `Name.entry.N.key`/`.value`,
    structures `Name.Member`;
  - Smithy RPC v2 CBOR (CloudWatch, as the Rust SDK speaks it): the operation is the path's
    (`POST /service/GraniteServiceVersion20100801/operation/PutMetricAlarm`), the service the model
    whose `targetPrefix` is the path's service; the body is the input structure, decoded with PyPI
    `cbor2`, checked as JSON bodies are; the `smithy-protocol: rpc-v2-cbor` header is required.
    `cloudwatch_cbor` (installed by the launcher) serves these requests from moto's JSON handler;
  - REST (S3's rest-xml, sagemaker-runtime's rest-json): the operation is the one whose method and
    request URI template match; members come from the path labels, query string, headers and the
    payload (an XML document for S3).
"""

import functools
import json
import threading
import urllib.parse
import xml.etree.ElementTree as ElementTree

import botocore
import botocore.loaders
import botocore.model
import regex

import cloudwatch_cbor

# The services the AWS target talks to, by the name botocore files their models under.
SERVICES = (
    "sagemaker",
    "ecr",
    "logs",
    "application-autoscaling",
    "iam",
    "sts",
    "s3",
    "sagemaker-runtime",
    "cloudwatch",
)

_lock = threading.Lock()
_models = {}
_patterns = {}


def model(name):
    """The botocore service model `name`, loaded once."""
    with _lock:
        if name not in _models:
            loader = botocore.loaders.Loader()
            _models[name] = botocore.model.ServiceModel(loader.load_service_model(name, "service-2"), name)
        return _models[name]


_SURROGATE_PAIR = regex.compile(r"\\u(D[89AB][0-9A-F]{2})\\u(D[C-F][0-9A-F]{2})", regex.IGNORECASE)


def _code_point(pair):
    high, low = int(pair.group(1), 16), int(pair.group(2), 16)
    return f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08X}"


def _pattern(source):
    """A model's pattern, compiled. Java matches UTF-16 code units, so a range written with
    surrogate pairs (`\\uD800\\uDC00-\\uDBFF\\uDFFF`) means the code points beyond U+FFFF: rewritten as
    such for Python, which matches code points."""
    with _lock:
        if source not in _patterns:
            _patterns[source] = regex.compile(_SURROGATE_PAIR.sub(_code_point, source))
        return _patterns[source]


# --- Shape checks ------------------------------------------------------------------------------


def check_value(shape, value, path, violations):
    """Appends to `violations` every rule of `shape` that `value` breaks (`path` names the member)."""
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        if not isinstance(value, dict):
            violations.append(f"{path}: expected a structure, got {type(value).__name__}")
            return
        for required in shape.required_members:
            if value.get(required) is None:
                violations.append(f"{_join(path, required)}: required member is missing")
        for name, member_value in value.items():
            member = shape.members.get(name)
            if member is None:
                violations.append(f"{_join(path, name)}: not a member of {shape.name}")
            elif member_value is not None:
                check_value(member, member_value, _join(path, name), violations)
    elif kind == "list":
        if not isinstance(value, list):
            violations.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        _check_size(meta, len(value), path, "items", violations)
        for index, item in enumerate(value):
            check_value(shape.member, item, f"{path}[{index}]", violations)
    elif kind == "map":
        if not isinstance(value, dict):
            violations.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        _check_size(meta, len(value), path, "entries", violations)
        for key, item in value.items():
            check_value(shape.key, key, f"{path} key {key!r}", violations)
            check_value(shape.value, item, f"{path}[{key!r}]", violations)
    elif kind == "string":
        if not isinstance(value, str):
            violations.append(f"{path}: expected a string, got {type(value).__name__}")
            return
        _check_size(meta, len(value), path, "characters", violations)
        if shape.enum and value not in shape.enum:
            violations.append(f"{path}: {value!r} is not one of {', '.join(shape.enum)}")
        pattern = meta.get("pattern")
        if pattern is not None and _pattern(pattern).fullmatch(value) is None:
            violations.append(f"{path}: {value!r} does not match pattern {pattern}")
    elif kind in ("integer", "long", "float", "double"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            violations.append(f"{path}: {value!r} is not a number")
            return
        if "min" in meta and number < meta["min"]:
            violations.append(f"{path}: {value} is below the minimum {meta['min']}")
        if "max" in meta and number > meta["max"]:
            violations.append(f"{path}: {value} is above the maximum {meta['max']}")
    elif kind == "boolean":
        if not isinstance(value, bool) and str(value).lower() not in ("true", "false"):
            violations.append(f"{path}: {value!r} is not a boolean")
    elif kind == "blob":
        if isinstance(value, (str, bytes)):
            _check_size(meta, len(value), path, "bytes", violations)


def _check_size(meta, size, path, unit, violations):
    if "min" in meta and size < meta["min"]:
        violations.append(f"{path}: {size} {unit}, fewer than the minimum {meta['min']}")
    if "max" in meta and size > meta["max"]:
        violations.append(f"{path}: {size} {unit}, more than the maximum {meta['max']}")


def _join(path, name):
    return f"{path}.{name}" if path else name


# --- Rebuilding the input from the wire ----------------------------------------------------------


def from_query(shape, params, prefix):
    """The value of `shape` under the query-protocol key `prefix` (`None` when absent)."""
    kind = shape.type_name
    if kind == "structure":
        value = {}
        for name, member in shape.members.items():
            key = member.serialization.get("name", name)
            member_value = from_query(member, params, f"{prefix}.{key}" if prefix else key)
            if member_value is not None:
                value[name] = member_value
        return value if value or not prefix else (value if _present(params, prefix) else None)
    if kind == "list":
        if params.get(prefix) == "":
            return []
        flattened = shape.serialization.get("flattened", False)
        item_key = shape.member.serialization.get("name", "member")
        items = []
        while True:
            key = f"{prefix}.{len(items) + 1}" if flattened else f"{prefix}.{item_key}.{len(items) + 1}"
            item = from_query(shape.member, params, key)
            if item is None:
                return items if items else None
            items.append(item)
    if kind == "map":
        if params.get(prefix) == "":
            return {}
        entries = {}
        while True:
            entry = f"{prefix}.entry.{len(entries) + 1}"
            key = from_query(shape.key, params, f"{entry}.key")
            if key is None:
                return entries if entries else None
            entries[key] = from_query(shape.value, params, f"{entry}.value")
    return params.get(prefix)


def _present(params, prefix):
    return prefix in params or any(key.startswith(prefix + ".") for key in params)


def from_xml(shape, element):
    """The value of `shape` in a rest-xml payload element."""
    kind = shape.type_name
    if kind == "structure":
        value = {}
        for name, member in shape.members.items():
            key = member.serialization.get("name", name)
            if member.type_name == "list" and member.serialization.get("flattened"):
                items = [from_xml(member.member, child) for child in element if _local(child.tag) == key]
                if items:
                    value[name] = items
                continue
            child = next((c for c in element if _local(c.tag) == key), None)
            if child is not None:
                value[name] = from_xml(member, child)
        return value
    if kind == "list":
        item_key = shape.member.serialization.get("name", "member")
        return [from_xml(shape.member, child) for child in element if _local(child.tag) == item_key]
    return element.text or ""


def _local(tag):
    return tag.rsplit("}", 1)[-1]


# --- Operations ------------------------------------------------------------------------------------


@functools.cache
def _json_services():
    """The JSON-protocol services by their `X-Amz-Target` prefix (built once)."""
    return {model(name).metadata["targetPrefix"]: name for name in SERVICES if model(name).protocol == "json"}


@functools.cache
def _cbor_services():
    """The Smithy RPC v2 CBOR services by the service name in their paths (their `targetPrefix`)."""
    return {
        model(name).metadata["targetPrefix"]: name
        for name in SERVICES
        if "smithy-rpc-v2-cbor" in model(name).metadata.get("protocols", [model(name).protocol])
    }


def _template_match(template, path, query):
    """The path labels when `template` (`/{Bucket}/{Key+}?tagging`) matches, else `None`."""
    template_path, _, template_query = template.partition("?")
    for needed in filter(None, template_query.split("&")):
        name, _, wanted = needed.partition("=")
        if name not in query or (wanted and query[name] != wanted):
            return None
    want = [segment for segment in template_path.split("/") if segment]
    have = path.split("/")[1:]
    if have and have[-1] == "" and (not want or not want[-1].endswith("+}")):
        have = have[:-1]
    labels = {}
    for index, segment in enumerate(want):
        if segment.startswith("{") and segment.endswith("+}"):
            rest = have[index:]
            if not rest or not "/".join(rest):
                return None
            labels[segment[1:-2]] = urllib.parse.unquote("/".join(rest))
            return labels
        if index >= len(have):
            return None
        if segment.startswith("{") and segment.endswith("}"):
            if have[index] == "":
                return None
            labels[segment[1:-1]] = urllib.parse.unquote(have[index])
        elif segment != have[index]:
            return None
    return labels if len(have) == len(want) else None


def _rest_operations(service, method, path, query):
    """`(operation, labels)` of every operation of `service` whose method and URI template match,
    keeping only those whose template names the most query parameters (`?tagging` over none)."""
    matches = []
    for name in service.operation_names:
        operation = service.operation_model(name)
        http = operation.http
        if http.get("method") != method:
            continue
        template = http.get("requestUri", "/")
        labels = _template_match(template, path, query)
        if labels is not None:
            query_names = len([part for part in template.partition("?")[2].split("&") if part])
            matches.append((query_names, operation, labels))
    if not matches:
        return []
    most = max(query_names for query_names, _, _ in matches)
    return [(operation, labels) for query_names, operation, labels in matches if query_names == most]


def _rest_input(operation, labels, query, headers, body):
    shape = operation.input_shape
    value = {}
    if shape is None:
        return value
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        key = member.serialization.get("name", name)
        if location == "uri":
            if key in labels:
                value[name] = labels[key]
        elif location == "querystring":
            if member.type_name == "map":
                continue
            if key in query:
                value[name] = query[key]
        elif location == "header":
            if member.type_name == "map":
                continue
            if key.lower() in headers:
                value[name] = headers[key.lower()]
        elif location == "headers":
            prefix = key.lower()
            found = {k[len(prefix):]: v for k, v in headers.items() if k.startswith(prefix)}
            if found:
                value[name] = found
    payload = shape.serialization.get("payload")
    if payload and body:
        member = shape.members[payload]
        if member.type_name == "blob":
            value[payload] = body
        elif member.type_name == "string":
            value[payload] = body.decode("utf-8", "replace")
        elif member.type_name == "structure":
            try:
                root = ElementTree.fromstring(body) if operation.metadata["protocol"] == "rest-xml" else None
            except ElementTree.ParseError as error:
                return value, [f"{payload}: the body is not XML ({error})"]
            if root is not None:
                value[payload] = from_xml(member, root)
            else:
                value[payload] = json.loads(body)
    elif not payload and body and operation.metadata["protocol"] == "rest-json":
        value.update(json.loads(body))
    return value, []


def _bucket_rules(bucket):
    """S3's bucket naming rules (general purpose buckets)."""
    rules = []
    if not 3 <= len(bucket) <= 63:
        rules.append(f"Bucket: {bucket!r} must have 3 to 63 characters")
    if regex.fullmatch(r"[a-z0-9][a-z0-9.-]*[a-z0-9]", bucket) is None:
        rules.append(
            f"Bucket: {bucket!r} must be lowercase letters, digits, dots and hyphens, beginning and ending "
            "with a letter or digit"
        )
    if ".." in bucket or regex.fullmatch(r"\d+\.\d+\.\d+\.\d+", bucket):
        rules.append(f"Bucket: {bucket!r} has adjacent dots or is an IP address")
    if bucket.startswith(("xn--", "sthree-", "amzn-s3-demo-")) or bucket.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3")):
        rules.append(f"Bucket: {bucket!r} uses a reserved prefix or suffix")
    return rules


def check(environ, body, service_name):
    """`(service, operation, violations)` for one request; `operation` is `None` when no operation of
    the service matches (itself a violation). `service_name` is the SigV4 scope's service."""
    service, operation, _, violations = check_request(environ, body, service_name)
    return service, operation, violations


def check_request(environ, body, service_name):
    """[`check`] with the request's input structure rebuilt from the wire (a dict; `None` when the
    body is unreadable): `(service, operation, input, violations)`. The IAM check
    (`iam_policy_check`) reads the resource names in it."""
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "/")
    query = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        prefix, _, name = target.rpartition(".")
        service = _json_services().get(prefix)
        if service is None:
            return prefix, name, None, [f"{target}: no service model has the target prefix {prefix!r}"]
        value = _json_body(body)
        return _with_input(_check_input(model(service), name, value), value)
    called = cloudwatch_cbor.operation_of(environ)
    if called is not None:
        return _check_cbor(environ, body, *called)
    form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)) if _is_form(environ) else {}
    params = form or query
    if "Action" in params and service_name in ("iam", "sts"):
        service = model(service_name)
        name = params["Action"]
        if name not in service.operation_names:
            return service_name, name, None, [f"{name}: not an operation of {service_name}"]
        operation = service.operation_model(name)
        flat = {k: v for k, v in params.items() if k not in ("Action", "Version")}
        value = from_query(operation.input_shape, flat, "") if operation.input_shape else {}
        return _with_input(_check_input(service, name, value), value)
    if service_name == "sagemaker" and path.startswith("/endpoints/"):
        service = model("sagemaker-runtime")
    elif service_name == "s3":
        service = model("s3")
    else:
        return service_name, f"{method} {path}", None, [f"{method} {path}: no service model for {service_name!r}"]
    candidates = _rest_operations(service, method, path, query)
    if not candidates:
        return service.service_name, f"{method} {path}", None, [
            f"{method} {path}: no operation of {service.service_name} matches"
        ]
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if key in environ:
            headers[key.replace("_", "-").lower()] = environ[key]
    # Operations sharing a method and template (S3's PutObject and CopyObject) differ in their
    # members: the request is the one it is valid for, if any.
    checked = []
    for operation, labels in candidates:
        value, problems = _rest_input(operation, labels, query, headers, body)
        _, _, violations = _check_input(service, operation.name, value)
        checked.append((len(problems + violations), operation, value, problems + violations))
    _, operation, value, violations = min(checked, key=lambda c: c[0])
    if service.service_name == "s3" and "Bucket" in value and operation.name == "CreateBucket":
        violations += _bucket_rules(value["Bucket"])
    return service.service_name, operation.name, value, violations


def _check_cbor(environ, body, prefix, name):
    """An RPC v2 CBOR request: `(service, operation, input, violations)`."""
    service = _cbor_services().get(prefix)
    if service is None:
        return prefix, name, None, [f"/service/{prefix}: no service model speaking rpc-v2-cbor is named {prefix!r}"]
    try:
        value = cloudwatch_cbor.decode(body)
    except ValueError as error:
        return service, name, None, [str(error)]
    service, name, violations = _check_input(model(service), name, value)
    return service, name, value, cloudwatch_cbor.protocol_violations(environ) + violations


def _with_input(checked, value):
    service, operation, violations = checked
    return service, operation, value, violations


def _is_form(environ):
    return environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded")


def _json_body(body):
    if not body:
        return {}
    try:
        return json.loads(body)
    except ValueError:
        return None


def _check_input(service, name, value):
    if name not in service.operation_names:
        return service.service_name, name, [f"{name}: not an operation of {service.service_name}"]
    shape = service.operation_model(name).input_shape
    violations = []
    if value is None:
        violations.append("the body is not JSON")
    elif shape is not None:
        check_value(shape, value, "", violations)
    return service.service_name, name, violations


def check_params(service_name, operation, params):
    """Violations of `params` (the input structure, as a dict) for one operation: for tests that
    check derived values (names, tags) without sending a request."""
    service = model(service_name)
    return _check_input(service, operation, params)[2]


def versions():
    return {"botocore": botocore.__version__, "regex": regex.__version__, "cbor2": _cbor2_version()}


@functools.cache
def _cbor2_version():
    from importlib.metadata import version

    return version("cbor2")
