"""moto_server for orchestrate's integration tests: moto, pinned, with our patches and a request log.

`testbed::Moto` (crates/testbed/src/moto.rs) writes this file to a temporary directory and runs it:

    python3 moto_launcher.py --port-file PATH [--host 127.0.0.1] [--port 0] [--exit-on-stdin-eof]

It imports moto (exactly MOTO_VERSION: the patches below reach into moto's internals), applies every
function registered with `@patch`, wraps moto's WSGI application in `RequestLog`, binds (port 0 picks
a free port), writes the bound port to `--port-file`, and serves until killed. With
`--exit-on-stdin-eof` it also exits when its standard input closes, so a test process that dies
without running its destructors leaves no server behind.

Extending moto: write a function that patches or subclasses a moto backend, say why in its docstring,
and decorate it with `@patch`. Patches run once, before the server starts, in the order written.

Endpoints added beside moto's own (`/moto-api/` stays moto's):
    GET  /_testbed/requests        every AWS request served so far, as a JSON list
    POST /_testbed/requests/reset  forget them
"""

import argparse
import io
import json
import os
import re
import signal
import sys
import threading
import urllib.parse

MOTO_VERSION = "5.2.1"

try:
    import moto
except ImportError as error:
    sys.exit(f"moto_launcher: cannot import moto ({error}); run .ci/setup to install moto[server]=={MOTO_VERSION}")
if moto.__version__ != MOTO_VERSION:
    sys.exit(
        f"moto_launcher: moto {moto.__version__} is installed, the patches here are written for "
        f"{MOTO_VERSION}; run .ci/setup (it pins moto[server]=={MOTO_VERSION})"
    )

PATCHES = []


def patch(function):
    """Registers `function` to run once before the server starts."""
    PATCHES.append(function)
    return function


# --- Patches -------------------------------------------------------------------------------------


def _applies_only_without_tls(statement):
    """Whether a policy statement is conditioned on `aws:SecureTransport` being false.

    Conditions of a statement are ANDed, so such a statement never applies to a TLS request, whatever
    else it is conditioned on.
    """
    conditions = statement.get("Condition") or {}
    for operator, block in conditions.items():
        if operator.lower() not in ("bool", "boolifexists") or not isinstance(block, dict):
            continue
        for key, value in block.items():
            values = value if isinstance(value, list) else [value]
            if key.lower() == "aws:securetransport" and any(str(v).lower() == "false" for v in values):
                return True
    return False


@patch
def s3_bucket_policy_under_tls():
    """S3 bucket policies: requests count as TLS, so `aws:SecureTransport = false` statements are skipped.

    Our buckets carry AWS's recommended TLS-only policy: Deny `s3:*` with
    `"Condition": {"Bool": {"aws:SecureTransport": "false"}}` (crates/aws/src/s3_bucket.rs,
    `tls_only_policy`). moto 5.2.1 evaluates a bucket policy's Deny statements against every object
    call and does not evaluate `Bool` conditions, so that policy denies every upload, even though AWS
    would never apply it to the HTTPS requests our tool makes. moto stands in for AWS's HTTPS
    endpoint here, so requests to it count as TLS: statements that apply only without TLS are left
    out, and the remaining statements are evaluated as moto does (moto's own IAMPolicy).
    """
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self, action, resource):
        if self.policy is None:
            return PermissionResult.NEUTRAL
        policy = self.policy.decode() if isinstance(self.policy, bytes) else self.policy
        document = json.loads(policy)
        statements = document.get("Statement", [])
        if isinstance(statements, dict):
            statements = [statements]
        kept = [s for s in statements if not _applies_only_without_tls(s)]
        if not kept:
            return PermissionResult.NEUTRAL
        return IAMPolicy(json.dumps({**document, "Statement": kept})).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission


@patch
def ecr_scan_on_push_defaults_to_false():
    """ECR `PutImageScanningConfiguration`: an omitted `scanOnPush` means false, as in AWS's model.

    `scanOnPush` is a boolean defaulting to false, so the Rust SDK does not send it when it is false
    (the body is `{"imageScanningConfiguration": {}}`). moto 5.2.1 ignores an empty configuration and
    leaves scanning on, so turning it off (drift, in our tests) had no effect.
    """
    from moto.ecr.models import ECRBackend

    original = ECRBackend.put_image_scanning_configuration

    def put_image_scanning_configuration(self, registry_id, repository_name, image_scan_config):
        image_scan_config = {"scanOnPush": False, **(image_scan_config or {})}
        return original(self, registry_id, repository_name, image_scan_config)

    ECRBackend.put_image_scanning_configuration = put_image_scanning_configuration


# --- Request log ---------------------------------------------------------------------------------

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/([^/]+)/aws4_request")


class RequestLog:
    """WSGI middleware recording every AWS request, so tests can count calls at the server side.

    Each entry: `method`, `path`, `query` (raw), `target` (the `X-Amz-Target` header), `service` (the
    SigV4 credential scope's service), `protocol` (`json`, `query` or `rest`) and `action`:
      - JSON protocol (ECR, SageMaker): the operation in `X-Amz-Target` (`CreateRepository`);
      - query protocol (IAM, STS): the `Action` parameter, from the form body or the query string;
      - REST (S3): `METHOD path` and the query's parameter names (`PUT /bucket/?policy`).
    moto's own `/moto-api/` and the `/_testbed/` endpoints are not recorded.
    """

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.entries = []

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_testbed/"):
            return self.control(environ, start_response, path)
        if not path.startswith("/moto-api"):
            entry = self.describe(environ, path)
            with self.lock:
                self.entries.append(entry)
        return self.app(environ, start_response)

    def control(self, environ, start_response, path):
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/_testbed/requests" and method == "GET":
            with self.lock:
                body = json.dumps(self.entries)
        elif path == "/_testbed/requests/reset" and method == "POST":
            with self.lock:
                self.entries = []
            body = "{}"
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"unknown testbed endpoint\n"]
        data = body.encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    @staticmethod
    def form_body(environ):
        """The form-encoded body (query protocol), read and put back for moto to read again."""
        if not environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            return ""
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH")
        if length:
            body = stream.read(int(length))
        elif environ.get("wsgi.input_terminated"):
            body = stream.read()
        else:
            return ""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return body.decode("utf-8", "replace")

    def describe(self, environ, path):
        method = environ.get("REQUEST_METHOD", "GET")
        query = environ.get("QUERY_STRING", "")
        target = environ.get("HTTP_X_AMZ_TARGET")
        authorization = environ.get("HTTP_AUTHORIZATION", "") + " Credential=" + urllib.parse.unquote(
            dict(urllib.parse.parse_qsl(query)).get("X-Amz-Credential", "")
        )
        scope = _CREDENTIAL_SCOPE.search(authorization)
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        form = dict(urllib.parse.parse_qsl(self.form_body(environ)))
        if target:
            protocol, action = "json", target.rsplit(".", 1)[-1]
        elif "Action" in form or "Action" in params:
            protocol, action = "query", form.get("Action") or params["Action"]
        else:
            protocol = "rest"
            # Presigned URLs' `X-Amz-*` and the SDKs' `x-id=PutObject` hint name no subresource.
            names = sorted(k for k in params if not k.lower().startswith("x-amz-") and k != "x-id")
            action = f"{method} {path}" + (f"?{'&'.join(names)}" if names else "")
        return {
            "method": method,
            "path": path,
            "query": query,
            "target": target,
            "service": scope.group(1) if scope else None,
            "protocol": protocol,
            "action": action,
        }


# --- Server --------------------------------------------------------------------------------------


def _exit_on_stdin_eof():
    sys.stdin.buffer.read()
    os._exit(0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", required=True, help="where the bound port is written")
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    args = parser.parse_args(argv)

    for function in PATCHES:
        function()

    # What moto.server.main does, with a server object so that port 0 can be resolved.
    from werkzeug.serving import make_server

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    server = make_server(args.host, args.port, RequestLog(app), threaded=True)
    os.environ["MOTO_PORT"] = str(server.port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    partial = args.port_file + ".partial"
    with open(partial, "w") as file:
        file.write(f"{server.port}\n")
    os.replace(partial, args.port_file)
    if args.exit_on_stdin_eof:
        threading.Thread(target=_exit_on_stdin_eof, daemon=True).start()
    print(f"moto_launcher: moto {moto.__version__} on http://{args.host}:{server.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
