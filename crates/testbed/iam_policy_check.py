"""IAM enforcement for the emulator, with AWS's own action and resource tables.

moto can enforce IAM (`INITIAL_NO_AUTH_ACTION_COUNT=0`): it verifies each request's SigV4
signature against the access keys of its IAM users and collects the caller's policies. Its own
decision is too coarse to prove a least-privilege policy: it names the action after its handler
(`s3:HeadBucket`, which IAM does not know; AWS checks `s3:ListBucket`) and evaluates every
non-S3 request against the resource `*`, so a statement scoped to a role ARN never matches.

This module replaces that decision. For each request it derives what AWS authorizes, from the
tables parliament ships (`iam_definition.json`, AWS's Service Authorization Reference as data):

  - the action: `<prefix>:<operation>`, where the prefix is the signing name (or its IAM prefix,
    `IAM_PREFIXES`) and the operation is a privilege of the service;
    the few S3 operations whose privilege has another name (`HeadBucket` is `s3:ListBucket`) are
    listed in `S3_PRIVILEGES`, from S3's documentation of the permissions each operation needs;
  - the resources: for every resource type the privilege requires (the ones marked `*`), the
    type's ARN template filled from the request's members (`${RoleNameWithPath}` from `RoleName`,
    `${BucketName}` from `Bucket`, an ARN member such as `ResourceArn` as it is). A template
    variable no member fills stands for a value only a wildcard matches. A privilege without
    resource types takes `*`. SageMaker writes its ARNs in lowercase, so names are lowercased for
    it, as AWS does;
  - the dependent actions the tables list, when the request uses them: `iam:PassRole` on the role
    a request passes (`RoleArn`, `ExecutionRoleArn`) with `iam:PassedToService`, and the tagging
    action of a create call that carries tags;
  - the condition keys a statement may test: those the request determines
    (`iam:PassedToService`, `application-autoscaling:service-namespace` and `:scalable-dimension`,
    `s3:prefix`) when the tables list them for the privilege.

A statement allows a requirement when its `Action` matches the action (IAM wildcards, case-
insensitively), its `Resource` matches the resource (case-sensitively) and every condition holds; an
explicit `Deny` wins. A statement this checker cannot evaluate (`NotAction`, `NotResource`, a
condition operator or key it does not know) allows nothing, so a gap fails the test instead of
passing it. `sts:GetCallerIdentity` is always allowed, as on AWS.

A denied request is answered with moto's own AccessDenied error for its service and recorded
(`denials()`), so a test can show exactly which action on which resource a policy lacks.
"""

import json
import os
import re
import threading

_lock = threading.Lock()
_definitions = None
_denials = []
# Every action an enforced request was allowed, by caller: what a policy was actually needed for.
_allowed = {}
_current = threading.local()

# Services whose SigV4 signing name is not their IAM action prefix (CloudWatch signs as
# `monitoring`; its actions are `cloudwatch:*`).
IAM_PREFIXES = {"monitoring": "cloudwatch"}

# S3 operations whose IAM privilege has another name (S3 User Guide, "Required permissions for
# Amazon S3 API operations"); an operation not listed is its own privilege.
S3_PRIVILEGES = {
    "HeadBucket": "ListBucket",
    "ListObjects": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "ListObjectVersions": "ListBucketVersions",
    "HeadObject": "GetObject",
    "DeleteObjects": "DeleteObject",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "GetBucketEncryption": "GetEncryptionConfiguration",
    "PutBucketEncryption": "PutEncryptionConfiguration",
    "DeleteBucketEncryption": "PutEncryptionConfiguration",
    "GetPublicAccessBlock": "GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
    "DeletePublicAccessBlock": "PutBucketPublicAccessBlock",
    "GetBucketLifecycleConfiguration": "GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "PutLifecycleConfiguration",
    "DeleteBucketTagging": "PutBucketTagging",
}
# S3 object operations that act on one version when the request names it.
S3_VERSIONED = {"GetObject": "GetObjectVersion", "DeleteObject": "DeleteObjectVersion", "HeadObject": "GetObjectVersion"}

# Members naming the role a request hands to the service (its `iam:PassRole`).
PASSED_ROLE_MEMBERS = ("RoleArn", "ExecutionRoleArn")
# The services a passed role goes to, by signing name (the `iam:PassedToService` value).
PASSED_TO = {"sagemaker": "sagemaker.amazonaws.com"}

# ARN template variables and the members that fill them, beyond the variable's own name.
VARIABLE_MEMBERS = {
    "BucketName": ("Bucket",),
    "ObjectName": ("Key",),
    "RoleNameWithPath": ("RoleName",),
    "UserNameWithPath": ("UserName",),
    "PolicyNameWithPath": ("PolicyName",),
}
# Members whose value is an ARN naming the resource itself.
ARN_MEMBERS = ("ResourceArn", "resourceArn", "resourceARN", "ResourceARN")
# An ARN variable the request does not determine: only a wildcard matches it.
UNKNOWN = "\x00unknown\x00"
# ARN variables that share a member's name but not its value: a scalable target's ARN ends with an
# id Application Auto Scaling generates, not the request's `ResourceId` (`endpoint/NAME/variant/…`).
NOT_FROM_REQUEST = {("application-autoscaling", "ResourceId")}


def definitions():
    """parliament's `iam_definition.json`, by service prefix."""
    global _definitions
    with _lock:
        if _definitions is None:
            import parliament

            path = os.path.join(os.path.dirname(parliament.__file__), "iam_definition.json")
            with open(path) as file:
                _definitions = {service["prefix"]: service for service in json.load(file)}
        return _definitions


def set_current_request(service, operation, value, raw_target, raw_body, raw_headers):
    """Called by the request log before moto handles a request: what `authorize` evaluates, and the
    request's target, body and headers as the client sent them (path and query still
    percent-encoded, the body as its bytes), which is what the signature covers. A shim that
    rewrites the request for moto (cloudwatch_cbor.py) runs after this, so the signature is checked
    against what the client signed, not the rewrite."""
    _current.request = (service, operation, value)
    _current.raw_target = raw_target
    _current.raw_body = raw_body
    _current.raw_headers = raw_headers


def clear_current_request():
    _current.request = None
    _current.raw_target = None
    _current.raw_body = None
    _current.raw_headers = None


def denials():
    with _lock:
        return list(_denials)


def take_allowed():
    """`{caller ARN: sorted actions}` allowed so far, forgotten once taken."""
    with _lock:
        taken = {caller: sorted(actions) for caller, actions in _allowed.items()}
        _allowed.clear()
        return taken


def take_denials():
    with _lock:
        taken = list(_denials)
        _denials.clear()
        return taken


class Requirement:
    """One action on one resource the request needs, with the condition values it determines."""

    def __init__(self, action, resource, context):
        self.action = action
        self.resource = resource
        self.context = context

    def describe(self):
        resource = self.resource.replace(UNKNOWN, "<any>")
        return f"{self.action} on {resource}"


def requirements(signing_name, operation, value, account, region, partition):
    """What AWS authorizes for `operation` of the service signing as `signing_name`, with input
    `value`. Raises `LookupError` when the tables do not know the privilege."""
    value = value or {}
    tables = definitions()
    service = tables.get(signing_name)
    if service is None:
        raise LookupError(f"parliament's tables have no service {signing_name!r}")
    names = [operation]
    if signing_name == "s3":
        names = [S3_VERSIONED[operation]] if operation in S3_VERSIONED and value.get("VersionId") else []
        names.append(S3_PRIVILEGES.get(operation, operation))
    privilege = _privilege(service, names[0])
    if privilege is None:
        raise LookupError(f"parliament's tables have no privilege {signing_name}:{names[0]}")
    action = f"{signing_name}:{privilege['privilege']}"
    context = _context(signing_name, privilege, value)
    variables = {"Partition": partition, "Region": region, "Account": account}
    needed = []
    for resource in _resources(service, privilege, value, variables, signing_name, operation):
        needed.append(Requirement(_object_action(action, operation, value, resource), resource, context))
        for dependent in _dependents(privilege, value):
            if dependent == "iam:PassRole":
                continue
            prefix, _, name = dependent.partition(":")
            dependent_privilege = _privilege(tables[prefix], name)
            if dependent_privilege is None:
                continue
            for dependent_resource in _resources(tables[prefix], dependent_privilege, value, variables, prefix, name):
                needed.append(Requirement(dependent, dependent_resource, {}))
    for member in PASSED_ROLE_MEMBERS:
        role = value.get(member)
        if isinstance(role, str) and "iam:PassRole" in _all_dependents(privilege):
            passed = {"iam:PassedToService": PASSED_TO.get(signing_name, f"{signing_name}.amazonaws.com")}
            needed.append(Requirement("iam:PassRole", role, passed))
    return needed


def _privilege(service, name):
    for privilege in service["privileges"]:
        if privilege["privilege"] == name:
            return privilege
    return None


def _all_dependents(privilege):
    return {action for kind in privilege["resource_types"] for action in kind["dependent_actions"]}


def _dependents(privilege, value):
    """The dependent actions the request uses: tagging ones only when it carries tags."""
    used = []
    for action in sorted(_all_dependents(privilege)):
        name = action.partition(":")[2]
        if "Tag" in name and not (value.get("Tags") or value.get("tags")):
            continue
        used.append(action)
    return used


def _resources(service, privilege, value, variables, signing_name, operation):
    """Every ARN the privilege's required resource types name for this request; `*` when the
    privilege takes no resource. A privilege that lists resource types none of which is required
    (CloudWatch's `TagResource`: an alarm, an insight rule or an SLO) takes the one the request
    names by its ARN member, and `*` without one."""
    listed = [kind["resource_type"] for kind in privilege["resource_types"] if kind["resource_type"]]
    required = [kind.rstrip("*") for kind in listed if kind.endswith("*")]
    if not required:
        arn = next((value[m] for m in ARN_MEMBERS if isinstance(value.get(m), str)), None)
        return [arn] if listed and arn else ["*"]
    for member in ARN_MEMBERS:
        arn = value.get(member)
        if isinstance(arn, str):
            return [arn]
    arns = []
    templates = {resource["resource"]: resource["arn"] for resource in service["resources"]}
    keys = _object_keys(signing_name, operation, value)
    for kind in required:
        template = templates.get(kind)
        if template is None:
            raise LookupError(f"parliament's tables have no resource type {kind!r} for {signing_name}")
        if "${ObjectName}" in template and keys:
            for key in keys:
                arns.extend(_fill(template, dict(value, Key=key), variables, signing_name))
        else:
            arns.extend(_fill(template, value, variables, signing_name))
    return arns


def _object_action(action, operation, value, resource):
    """`s3:DeleteObjectVersion` for the keys a `DeleteObjects` request names with a version."""
    if operation != "DeleteObjects":
        return action
    for entry in (value.get("Delete") or {}).get("Objects") or []:
        object_arn = f"{value.get('Bucket')}/{entry.get('Key')}" if isinstance(entry, dict) else None
        if object_arn and entry.get("VersionId") and resource.partition(":::")[2] == object_arn:
            return "s3:DeleteObjectVersion"
    return action


def _object_keys(signing_name, operation, value):
    if signing_name == "s3" and operation == "DeleteObjects":
        objects = (value.get("Delete") or {}).get("Objects") or []
        return [entry.get("Key") for entry in objects if isinstance(entry, dict) and entry.get("Key")]
    return []


def _fill(template, value, variables, signing_name):
    """The ARNs `template` names for the request: one, or one per element when a variable comes
    from a list member (ECR's `repositoryNames`)."""
    names = re.findall(r"\$\{([A-Za-z0-9]+)\}", template)
    choices = {}
    for variable in names:
        if variable in variables:
            choices[variable] = [variables[variable]]
        elif (signing_name, variable) in NOT_FROM_REQUEST:
            choices[variable] = [UNKNOWN]
        else:
            choices[variable] = _member_values(variable, value, signing_name) or [UNKNOWN]
    arns = [template]
    for variable, options in choices.items():
        arns = [arn.replace("${" + variable + "}", option) for arn in arns for option in options]
    return arns


def _member_values(variable, value, signing_name):
    lower = variable[0].lower() + variable[1:]
    for member in (variable, lower) + VARIABLE_MEMBERS.get(variable, ()):
        found = value.get(member)
        if isinstance(found, str) and found:
            return [found.lower() if signing_name == "sagemaker" else found]
    for member in (variable + "s", lower + "s"):
        found = value.get(member)
        if isinstance(found, list) and found and all(isinstance(item, str) for item in found):
            return [item.lower() if signing_name == "sagemaker" else item for item in found]
    return []


def _context(signing_name, privilege, value):
    """The condition keys the request determines and the tables list for the privilege."""
    listed = {key for kind in privilege["resource_types"] for key in kind["condition_keys"]}
    known = {}
    if signing_name == "application-autoscaling":
        known["application-autoscaling:service-namespace"] = value.get("ServiceNamespace")
        known["application-autoscaling:scalable-dimension"] = value.get("ScalableDimension")
    if signing_name == "s3" and "Prefix" in value:
        known["s3:prefix"] = value.get("Prefix")
    return {key: found for key, found in known.items() if key in listed and isinstance(found, str)}


# --- Evaluation ----------------------------------------------------------------------------------

ALLOWED, DENIED, NOT_ALLOWED = "allowed", "denied", "not allowed"


def evaluate(documents, requirement):
    """`(decision, reason)` of `requirement` under the policy documents (parsed JSON)."""
    if requirement.action == "sts:GetCallerIdentity":
        return ALLOWED, "always allowed"
    decision, reasons = NOT_ALLOWED, []
    for document in documents:
        statements = document.get("Statement", [])
        if isinstance(statements, dict):
            statements = [statements]
        for statement in statements:
            verdict, reason = _statement(statement, requirement)
            if reason:
                reasons.append(reason)
            if verdict == "deny":
                return DENIED, f"explicitly denied by statement {statement.get('Sid', '(no Sid)')}"
            if verdict == "allow":
                decision = ALLOWED
    return decision, "; ".join(reasons)


def _statement(statement, requirement):
    """`("allow" | "deny" | None, why it could not be evaluated or None)`."""
    unsupported = [key for key in ("NotAction", "NotResource", "NotPrincipal") if key in statement]
    if unsupported:
        return None, f"statement {statement.get('Sid', '(no Sid)')} uses {unsupported[0]}, which this checker does not evaluate"
    if not any(_match_action(pattern, requirement.action) for pattern in _list(statement.get("Action"))):
        return None, None
    if not any(_match_resource(pattern, requirement.resource) for pattern in _list(statement.get("Resource"))):
        return None, None
    holds, why = _conditions(statement.get("Condition") or {}, requirement.context)
    if why:
        return None, f"statement {statement.get('Sid', '(no Sid)')}: {why}"
    if not holds:
        return None, None
    return ("deny" if statement.get("Effect") == "Deny" else "allow"), None


def _list(element):
    if element is None:
        return []
    return element if isinstance(element, list) else [element]


def _iam_glob(pattern, text, ignore_case=False):
    """IAM's wildcard match: `*` any run of characters, `?` one character, nothing else special."""
    expression = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(expression, text, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def _match_action(pattern, action):
    return _iam_glob(pattern, action, ignore_case=True)


def _match_resource(pattern, resource):
    if UNKNOWN not in resource:
        return _iam_glob(pattern, resource)
    # A value the request does not determine: the pattern must match whatever it is (tried with
    # an empty value and an unlikely one, which only a `*` at that place matches both of).
    return all(_iam_glob(pattern, resource.replace(UNKNOWN, probe)) for probe in ("", "q7/Z-unknown_9"))


CONDITION_OPERATORS = {
    "StringEquals": lambda have, want: have == want,
    "StringLike": lambda have, want: _iam_glob(want, have),
}


def _conditions(conditions, context):
    """`(all hold, why they cannot be evaluated or None)`."""
    for operator, tests in conditions.items():
        compare = CONDITION_OPERATORS.get(operator)
        if compare is None:
            return False, f"condition operator {operator} is not one this checker evaluates"
        for key, wanted in tests.items():
            if key not in context:
                # A key the request does not carry fails the test, as on AWS.
                return False, None
            if not any(compare(context[key], want) for want in _list(wanted)):
                return False, None
    return True, None


# --- moto ----------------------------------------------------------------------------------------


def install():
    """Makes moto's IAM enforcement decide with `requirements` and `evaluate` (signature and access
    key checks stay moto's)."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam.access_control import IAMPolicy
    from moto.utilities.utils import get_partition

    def authenticate_and_authorize(self, iam_request_cls, resource="*"):
        if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
            ActionAuthenticatorMixin.request_count += 1
            return
        if self.headers.get("X-Amz-Target") in ActionAuthenticatorMixin.PUBLIC_OPERATIONS:
            return
        # The signature covers the target as sent; moto's `self.uri` has it decoded (`%2F` in an
        # S3 `prefix` becomes `/`), which fails signatures moto's own enforcement would fail too.
        path = getattr(_current, "raw_target", None)
        if path is None:
            from urllib.parse import urlparse

            parsed_url = urlparse(self.uri)
            path = parsed_url.path + ("?" + parsed_url.query if parsed_url.query else "")
        iam_request = iam_request_cls(
            account_id=self.current_account,
            method=self.method,
            path=path,
            data=self.data,
            # moto's `raw_body` is empty for form posts, and re-encoding the parsed form (its fallback)
            # differs from the SDK's encoding of a policy document.
            body=getattr(_current, "raw_body", None) or self.raw_body,
            headers=getattr(_current, "raw_headers", None) or self.headers,
            action=self._get_action(),
        )
        iam_request.check_signature()
        current = getattr(_current, "request", None)
        json_protocol = "X-Amz-Target" in self.headers or signing_name_of(iam_request) == "sagemaker"
        if current is None:
            return _deny(iam_request, "the request log did not parse this request", None, json_protocol)
        service, operation, value = current
        signing_name = IAM_PREFIXES.get(iam_request._service, iam_request._service)
        region = iam_request._region
        unknown = None
        try:
            needed = requirements(signing_name, operation, value, self.current_account, region, get_partition(region))
        except LookupError as error:
            # Only a policy allowing the operation on every resource can allow what the tables do
            # not describe (the harness's allow-everything user).
            unknown = str(error)
            needed = [Requirement(f"{signing_name}:{operation}", "*", {})]
        documents = [IAMPolicy(policy)._policy_json for policy in iam_request._access_key.collect_policies()]
        for requirement in needed:
            decision, reason = evaluate(documents, requirement)
            if decision != ALLOWED:
                why = "; ".join(filter(None, [unknown, reason or decision]))
                return _deny(iam_request, why, requirement.describe(), json_protocol)
        with _lock:
            _allowed.setdefault(iam_request._access_key.arn, set()).update(r.action for r in needed)

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate_and_authorize


def signing_name_of(iam_request):
    return iam_request._service


def _deny(iam_request, reason, requirement, json_protocol):
    """Records the denial and answers as AWS does: AccessDeniedException in the JSON protocols
    (moto's own denial is XML there, which the SDKs cannot read), moto's AccessDenied otherwise."""
    caller = iam_request._access_key.arn
    with _lock:
        _denials.append({"caller": caller, "requirement": requirement, "reason": reason})
    if json_protocol:
        from moto.core.exceptions import JsonRESTError

        error = JsonRESTError(
            "AccessDeniedException",
            f"User: {caller} is not authorized to perform: {requirement} because no identity-based policy allows it",
        )
        error.code = 403
        raise error
    iam_request._raise_access_denied()


def create_admin(account, partition="aws"):
    """An IAM user allowed everything, for the test harness's own calls while enforcement is on;
    returns its access key `(id, secret)`. Created in moto's backend directly: with enforcement
    from the first request there is nobody to create it over the API."""
    from moto.iam.models import iam_backends

    backend = iam_backends[account][partition]
    name = "testbed-admin"
    backend.create_user(region_name="us-east-1", user_name=name, path="/", tags=[])
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    backend.put_user_policy(name, "everything", json.dumps(document))
    key = backend.create_access_key(name)
    return key.access_key_id, key.secret_access_key
