"""moto_server for orchestrate's integration tests: moto, pinned, with our patches and a request log.

`testbed::Moto` (crates/testbed/src/moto.rs) writes this file to a temporary directory and runs it:

    python3 moto_launcher.py --port-file PATH [--host 127.0.0.1] [--port 0] [--exit-on-stdin-eof]
                             [--model-image PATH]

It imports moto (exactly MOTO_VERSION: the patches below reach into moto's internals), applies every
function registered with `@patch`, wraps moto's WSGI application in `RequestLog`, binds (port 0 picks
a free port), writes the bound port to `--port-file`, and serves until killed. With
`--exit-on-stdin-eof` it also exits when its standard input closes, so a test process that dies
without running its destructors leaves no server behind.

With `--model-image PATH` (or `TESTBED_MODEL_IMAGE`), the `@sagemaker_patch` functions are applied too:
SageMaker training jobs and endpoints run that `model-image` binary for real (see "SageMaker
emulation" below). Environment: `TESTBED_SAGEMAKER_DELAY_SECONDS` (default 0.5), the least time each
transitional state lasts; `TESTBED_SAGEMAKER_PING_SECONDS` (default 60), how long a serve process gets
to answer `/ping`. On exit (stdin EOF, SIGTERM, SIGINT) every process it started is stopped.

Extending moto: write a function that patches or subclasses a moto backend, say why in its docstring,
and decorate it with `@patch` (or `@sagemaker_patch`). Patches run once, before the server starts, in
the order written.

Endpoints added beside moto's own (`/moto-api/` stays moto's):
    GET  /_testbed/requests        every AWS request served so far, as a JSON list
    POST /_testbed/requests/reset  forget them
    GET  /_testbed/iam/admin       with IAM enforcement on (INITIAL_NO_AUTH_ACTION_COUNT set): the access
                                   key of `testbed-admin`, allowed everything; otherwise null
    POST /_testbed/iam/denials/take  every request IAM enforcement denied so far (caller, action on
                                   resource, reason), forgotten once taken
    POST /_testbed/iam/allowed/take  every action IAM enforcement allowed so far, by caller ARN,
                                   forgotten once taken
  with --model-image:
    POST /_testbed/faults          inject a fault: {"<kind>": "<name>", "reason": "..."} (reason optional;
                                   kinds in FAULT_KINDS); each is consumed by the first call it affects
    GET  /_testbed/faults          the pending faults; POST /_testbed/faults/reset forgets them
    GET  /_testbed/endpoints       each endpoint: status, config, the serve process's URL and pid, and
                                   `rollout` during a blue/green UpdateEndpoint (phase, step of steps,
                                   traffic_percent on the new config, green_url/_config/_pid), else null
    GET  /_testbed/training-jobs   each training job: status, the train process's pid, whether it runs
"""
import argparse
import errno
import io
import json
import os
import posixpath
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import werkzeug.datastructures

import bucket_owner
import cloudwatch_cbor
import iam_policy_check
import request_check
import s3_conditions

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

# S3's `ExpectedBucketOwner` (bucket_owner.py).
patch(bucket_owner.s3_expected_bucket_owner_is_enforced)


@patch
def cloudwatch_speaks_rpc_v2_cbor():
    """The Rust SDK's CloudWatch speaks Smithy RPC v2 CBOR, which moto does not: cloudwatch_cbor.py
    serves it through moto's own CloudWatch JSON handler, and the request log refuses it in CBOR."""
    cloudwatch_cbor.install(RequestLog)


@patch
def iam_is_enforced_with_aws_tables():
    """With `INITIAL_NO_AUTH_ACTION_COUNT` set (moto's IAM enforcement), every request is allowed
    or denied by its caller's policies on the action and resources AWS's tables define
    (iam_policy_check.py), and a `testbed-admin` user allowed everything exists for the test's own
    calls (`GET /_testbed/iam/admin`)."""
    iam_policy_check.install()
    if os.environ.get("INITIAL_NO_AUTH_ACTION_COUNT") is not None:
        from moto.core import DEFAULT_ACCOUNT_ID

        IAM_ADMIN.update(zip(("access_key_id", "secret_access_key"), iam_policy_check.create_admin(DEFAULT_ACCOUNT_ID)))


# The enforcement's admin access key, when enforcement is on.
IAM_ADMIN = {}


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
def s3_conditional_writes_are_atomic():
    """S3 PutObject/DeleteObject: a condition is checked and the write made in one step (s3_conditions.py).

    moto 5.2.1 checks `If-Match`/`If-None-Match` before the write, so two concurrent conditional writes
    of one object can both succeed; AWS lets one win and answers the other 412 PreconditionFailed, or
    409 ConditionalRequestConflict while the winner's write is in flight (the deployment lock relies
    on it).
    """
    s3_conditions.apply()


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


# --- Application Auto Scaling --------------------------------------------------------------------


@patch
def application_autoscaling_deregister_deletes_policies():
    """`DeregisterScalableTarget` deletes the target's scaling policies, as AWS does.

    AWS: "Deregistering a scalable target deletes the scaling policies and the scheduled actions that
    are associated with it." moto 5.2.1 deletes only the target and leaves its policies listed by
    `DescribeScalingPolicies`, so a `down` that deregisters the target would look as if it had left a
    policy behind.
    """
    from moto.applicationautoscaling.models import ApplicationAutoscalingBackend

    original = ApplicationAutoscalingBackend.deregister_scalable_target

    def deregister_scalable_target(self, namespace, r_id, dimension):
        original(self, namespace, r_id, dimension)
        for key, policy in list(self.policies.items()):
            if (policy.service_namespace, policy.resource_id, policy.scalable_dimension) == (
                namespace,
                r_id,
                dimension,
            ):
                policy.delete_alarms(self.account_id, self.region_name)
                del self.policies[key]

    ApplicationAutoscalingBackend.deregister_scalable_target = deregister_scalable_target


@patch
def application_autoscaling_policy_needs_a_registered_target():
    """`PutScalingPolicy` on a target that is not registered fails with `ObjectNotFoundException`.

    AWS requires the scalable target first; moto 5.2.1 accepts a policy for any resource, so code that
    puts the policy before (or without) registering the target would pass against moto only.
    """
    from moto.applicationautoscaling.models import ApplicationAutoscalingBackend
    from moto.core.exceptions import JsonRESTError

    original = ApplicationAutoscalingBackend.put_scaling_policy

    def put_scaling_policy(self, policy_name, service_namespace, resource_id, scalable_dimension, *args, **kwargs):
        if not self._scalable_target_exists(resource_id, scalable_dimension):
            raise JsonRESTError(
                "ObjectNotFoundException",
                f"No scalable target registered for service namespace: {service_namespace}, resource ID: "
                f"{resource_id}, scalable dimension: {scalable_dimension}",
            )
        return original(self, policy_name, service_namespace, resource_id, scalable_dimension, *args, **kwargs)

    ApplicationAutoscalingBackend.put_scaling_policy = put_scaling_policy


# --- SageMaker emulation (with --model-image) ----------------------------------------------------
#
# moto 5.2.1 finishes training jobs and endpoints at once, writes no artifacts or logs, lets duplicate
# names overwrite, and has no UpdateEndpoint or StopTrainingJob. With a `model-image` binary the
# patches below make SageMaker behave like the real service for the calls orchestrate makes:
#
# - a training job runs `model-image train` on its channels' data in moto's S3 (in-process), logs every
#   output line to moto's CloudWatch Logs and uploads model.tar.gz and output.tar.gz;
# - an endpoint runs `model-image serve` with its model; InvokeEndpoint is forwarded to it;
# - every transitional state (InProgress's secondary statuses, Stopping, Creating, Updating,
#   RollingBack, Deleting) lasts at least TESTBED_SAGEMAKER_DELAY_SECONDS (default 0.5) so that pollers
#   see it;
# - failures can be injected over HTTP (`POST /_testbed/faults`, the kinds in FAULT_KINDS; Rust:
#   `Moto::inject_fault`).
#
# Only what orchestrate uses is emulated: S3Prefix channels in File mode, one container per model, the
# first production variant of a config (instance counts are reported, never acted on), no autoscaler
# changing DesiredInstanceCount. A stopped job uploads nothing. Every process started is in its own
# process group, stopped when the launcher exits (and killed through `setpriv --pdeathsig` if the
# launcher itself is killed).

SAGEMAKER_PATCHES = []


def sagemaker_patch(function):
    """Registers `function` to run once before the server starts, when SageMaker is emulated."""
    SAGEMAKER_PATCHES.append(function)
    return function


TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
ENDPOINT_LOG_GROUP = "/aws/sagemaker/Endpoints/{}"
# Statuses in which SageMaker still routes invocations to the endpoint's current variant.
INVOCABLE_STATUSES = ("InService", "Updating", "RollingBack", "SystemUpdating")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# kind -> (what it names, the default reason)
FAULT_KINDS = {
    "training_fails": (
        "a training-job name prefix: the next job whose name starts with it fails",
        "AlgorithmError: injected by the testbed",
    ),
    "endpoint_creation_fails": (
        "an endpoint name: its next CreateEndpoint ends Failed",
        "The primary container for production variant AllTraffic did not pass the ping health check. "
        "Please check CloudWatch logs for this endpoint.",
    ),
    "endpoint_update_rolls_back": (
        "an endpoint name: its next UpdateEndpoint rolls back",
        "The primary container for production variant AllTraffic did not pass the ping health check. "
        "Please check CloudWatch logs for this endpoint.",
    ),
}



class Sagemaker:
    """The emulation's shared state: its settings, what runs, and the injected faults."""

    def __init__(self):
        self.model_image = None
        self.delay = 0.5
        self.ping_timeout = 60.0
        self.root = None
        self.lock = threading.RLock()
        self.trainings = {}  # (account, region, job name) -> Training
        self.endpoints = {}  # (account, region, endpoint name) -> EndpointRuntime
        self.faults = {kind: {} for kind in FAULT_KINDS}  # kind -> {name or prefix: reason}
        self.processes = set()
        self.closing = False
        # One long-lived thread forks every child: `--pdeathsig` fires when the forking *thread* ends.
        self.spawner = None
        self.pdeathsig = []

    def configure(self, model_image):
        from concurrent.futures import ThreadPoolExecutor

        self.model_image = os.path.abspath(model_image)
        if not os.access(self.model_image, os.X_OK):
            sys.exit(f"moto_launcher: the model-image binary {self.model_image} is not executable")
        self.delay = float(os.environ.get("TESTBED_SAGEMAKER_DELAY_SECONDS", "0.5"))
        self.ping_timeout = float(os.environ.get("TESTBED_SAGEMAKER_PING_SECONDS", "60"))
        self.root = os.path.abspath(tempfile.mkdtemp(prefix="sagemaker-", dir=os.getcwd()))
        self.spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spawner")
        if shutil.which("setpriv"):
            self.pdeathsig = ["setpriv", "--pdeathsig", "KILL", "--"]

    @property
    def enabled(self):
        return self.model_image is not None

    # Processes --------------------------------------------------------------------------------

    def spawn(self, args, env):
        """Starts `args` in a new process group, output (stdout and stderr) on one pipe."""

        def start():
            for attempt in range(40):
                try:
                    return subprocess.Popen(
                        self.pdeathsig + args,
                        env={**os.environ, **env},
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                except OSError as error:
                    # The binary may have been copied for us a moment ago (ETXTBSY while a writer
                    # that forked elsewhere still holds it open).
                    if error.errno != errno.ETXTBSY or attempt == 39:
                        raise
                    time.sleep(0.05)

        with self.lock:
            if self.closing:
                raise RuntimeError("the launcher is shutting down")
            process = self.spawner.submit(start).result()
            self.processes.add(process)
        return process

    def terminate(self, process, grace=3.0):
        """SIGTERM to the process group, SIGKILL after `grace` seconds; waits for the process."""
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        _signal_group(process, signal.SIGKILL)  # anything left in the group
        with self.lock:
            self.processes.discard(process)

    def shutdown(self):
        """Stops every process started, for the launcher's exit."""
        with self.lock:
            self.closing = True
            processes = list(self.processes)
        for process in processes:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 3.0
        for process in processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(process, signal.SIGKILL)
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)

    # Timing -----------------------------------------------------------------------------------

    def hold(self, since):
        """Sleeps until the state entered at `since` (time.monotonic()) has lasted the delay."""
        time.sleep(max(0.0, self.delay - (time.monotonic() - since)))

    # Faults -----------------------------------------------------------------------------------

    def take_fault(self, kind, name):
        """The reason of a pending fault of `kind` for `name`, consumed; None when there is none."""
        with self.lock:
            faults = self.faults[kind]
            for key in list(faults):
                matches = name.startswith(key) if kind == "training_fails" else name == key
                if matches:
                    return faults.pop(key)
        return None


SAGEMAKER = Sagemaker()

def _signal_group(process, signum):
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _s3_backend(account_id, region):
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    return s3_backends[account_id][get_partition(region)]


def _split_s3_uri(uri):
    """`s3://bucket/key/prefix` -> ("bucket", "key/prefix")."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {uri}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def _s3_read(account_id, region, uri):
    bucket, key = _split_s3_uri(uri)
    obj = _s3_backend(account_id, region).get_object(bucket, key)
    if obj is None or not hasattr(obj, "value"):
        raise KeyError(uri)
    return obj.value


def _s3_write(account_id, region, uri, data):
    bucket, key = _split_s3_uri(uri)
    _s3_backend(account_id, region).put_object(bucket, key, data)


class LogStream:
    """A CloudWatch Logs stream in moto's logs backend, created on first use, one event per line."""

    def __init__(self, account_id, region, group, stream):
        self.account_id, self.region, self.group, self.stream = account_id, region, group, stream
        self.created = False

    @property
    def group_arn(self):
        from moto.utilities.utils import get_partition

        return f"arn:{get_partition(self.region)}:logs:{self.region}:{self.account_id}:log-group:{self.group}"

    def write(self, line):
        from moto.logs.exceptions import ResourceAlreadyExistsException
        from moto.logs.models import logs_backends

        line = _ANSI.sub("", line).rstrip("\r\n")
        if not line.strip():
            return
        logs = logs_backends[self.account_id][self.region]
        with SAGEMAKER.lock:
            if not self.created:
                try:
                    logs.create_log_group(self.group, {})
                except ResourceAlreadyExistsException:
                    pass
                logs.ensure_log_stream(self.group, self.stream)
                self.created = True
            event = {"timestamp": int(time.time() * 1000), "message": line}
            logs.put_log_events(self.group, self.stream, [event])


def _tar_gz(directory):
    """The files of `directory` as a gzipped tar, at the archive's root (as SageMaker packs them)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        if os.path.isdir(directory):
            for name in sorted(os.listdir(directory)):
                archive.add(os.path.join(directory, name), arcname=name)
    return buffer.getvalue()


# Training jobs -------------------------------------------------------------------------------


class Training:
    """One training job's run: the thread driving it, its process and the stop request."""

    def __init__(self, backend, job, metric_definitions):
        self.backend = backend
        self.job = job
        self.metric_definitions = metric_definitions
        self.process = None
        self.stop_reason = None  # "Stopped" (StopTrainingJob) or "MaxRuntimeExceeded"
        self.stop_requested_at = None
        self.lines = []
        self.started = time.monotonic()

    @property
    def key(self):
        return (self.backend.account_id, self.backend.region_name, self.job.training_job_name)

    def transition(self, status, secondary, message, final=False):
        """Moves the job to `status`/`secondary`, unless it is stopping and this is not final."""
        from moto.core.utils import utcnow

        with SAGEMAKER.lock:
            job = self.job
            if self.stop_reason and not final and status == "InProgress":
                return False
            now = utcnow()
            transitions = job.secondary_status_transitions
            if transitions and "EndTime" not in transitions[-1]:
                transitions[-1]["EndTime"] = now
            entry = {"Status": secondary, "StartTime": now, "StatusMessage": message}
            if final:
                entry["EndTime"] = now
            transitions.append(entry)
            job.training_job_status = status
            job.secondary_status = secondary
            job.last_modified_time = now
            return True

    def request_stop(self, reason):
        """Stopping: records why, and terminates the process if one runs. False if already ended."""
        with SAGEMAKER.lock:
            if self.job.training_job_status not in ("InProgress", "Stopping"):
                return False
            if self.stop_reason:
                return True
            message = {
                "Stopped": "Stopping the training job",
                "MaxRuntimeExceeded": "Stopping the training job: it ran beyond MaxRuntimeInSeconds",
            }[reason]
            self.transition("Stopping", "Stopping", message)
            self.stop_reason = reason
            self.stop_requested_at = time.monotonic()
            process = self.process
        if process is not None:
            threading.Thread(target=SAGEMAKER.terminate, args=(process,), daemon=True).start()
        return True

    def run(self):
        try:
            self._run()
        except Exception as error:  # a bug here must not leave the job InProgress forever
            import traceback

            traceback.print_exc()
            self.finish("Failed", f"InternalServerError: testbed emulation error: {error}")

    def _run(self):
        job = self.job
        name = job.training_job_name
        account, region = self.backend.account_id, self.backend.region_name
        SAGEMAKER.hold(self.started)  # Starting
        if self.stop_reason:
            return self.finish_stopped()

        since = time.monotonic()
        self.transition("InProgress", "Downloading", "Downloading input data")
        opt_ml = tempfile.mkdtemp(prefix=f"training-{name}-", dir=SAGEMAKER.root)
        config = os.path.join(opt_ml, "input", "config")
        os.makedirs(config)
        with open(os.path.join(config, "hyperparameters.json"), "w") as file:
            json.dump(job.hyper_parameters or {}, file)
        failure = self.download_channels(opt_ml)
        SAGEMAKER.hold(since)
        if self.stop_reason:
            return self.finish_stopped()
        if failure:
            return self.finish("Failed", failure)

        since = time.monotonic()
        self.transition("InProgress", "Training", "Training image download completed. Training in progress.")
        from moto.core.utils import utcnow

        job.training_start_time = utcnow()
        log = LogStream(account, region, TRAINING_LOG_GROUP, f"{name}/algo-1-{int(time.time())}")
        injected = SAGEMAKER.take_fault("training_fails", name)
        if injected is not None:
            log.write(f"testbed: injected failure: {injected}")
            SAGEMAKER.hold(since)
            return self.finish("Failed", injected)
        with SAGEMAKER.lock:
            stopped = bool(self.stop_reason)
            if not stopped:
                process = SAGEMAKER.spawn([SAGEMAKER.model_image, "train"], {"OPT_ML": opt_ml})
                self.process = process
        if stopped:
            return self.finish_stopped()
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.lines.append(line)
            log.write(line)
        code = process.wait()
        SAGEMAKER.terminate(process)
        SAGEMAKER.hold(since)
        self.record_metrics()
        if self.stop_reason:
            return self.finish_stopped()
        if code != 0:
            return self.finish("Failed", _algorithm_error(opt_ml, code))

        since = time.monotonic()
        if not self.transition("InProgress", "Uploading", "Uploading generated training model"):
            return self.finish_stopped()
        output = job.output_data_config["S3OutputPath"].rstrip("/") + f"/{name}/output"
        model_uri = f"{output}/model.tar.gz"
        try:
            _s3_write(account, region, model_uri, _tar_gz(os.path.join(opt_ml, "model")))
            _s3_write(account, region, f"{output}/output.tar.gz", _tar_gz(os.path.join(opt_ml, "output", "data")))
        except Exception as error:
            SAGEMAKER.hold(since)
            return self.finish("Failed", f"ClientError: cannot upload the output to {output}: {error}")
        SAGEMAKER.hold(since)
        job.model_artifacts = {"S3ModelArtifacts": model_uri}
        if self.stop_reason:
            return self.finish_stopped()
        self.finish("Completed", None)

    def download_channels(self, opt_ml):
        """Copies each channel's S3 objects into input/data/<channel>/; a failure reason or None."""
        job = self.job
        account, region = self.backend.account_id, self.backend.region_name
        for channel in job.input_data_config or []:
            name = channel["ChannelName"]
            source = (channel.get("DataSource") or {}).get("S3DataSource")
            if not source:
                return f"ClientError: channel {name}: only S3DataSource channels are emulated"
            if source.get("S3DataType", "S3Prefix") != "S3Prefix":
                return f"ClientError: channel {name}: only S3DataType S3Prefix is emulated"
            uri = source["S3Uri"]
            try:
                bucket_name, prefix = _split_s3_uri(uri)
                s3 = _s3_backend(account, region)
                bucket = s3.get_bucket(bucket_name)
                keys = sorted(k for k in list(bucket.keys.keys()) if k.startswith(prefix) and not k.endswith("/"))
            except Exception:
                keys = []
            target = os.path.join(opt_ml, "input", "data", name)
            os.makedirs(target, exist_ok=True)
            written = 0
            for key in keys:
                obj = s3.get_object(bucket_name, key)
                if obj is None or not hasattr(obj, "value"):
                    continue
                relative = key[len(prefix) :].lstrip("/") or posixpath.basename(key)
                path = os.path.normpath(os.path.join(target, relative))
                if not path.startswith(target + os.sep):
                    continue
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as file:
                    file.write(obj.value)
                written += 1
            if not written:
                bucket_name = uri[len("s3://") :].split("/")[0]
                return (
                    f'ClientError: No S3 objects found under S3 URL "{uri}" given in input data source. '
                    f"Please ensure that the bucket exists in the selected region ({region}), that objects "
                    f'exist under that S3 prefix, and that the role "{job.role_arn}" has "s3:ListBucket" '
                    f'permissions on bucket "{bucket_name}".'
                )
        return None

    def record_metrics(self):
        """FinalMetricDataList: each MetricDefinition's regex over the log lines, the last match wins."""
        from moto.core.utils import utcnow

        values = {}
        for definition in self.metric_definitions:
            try:
                pattern = re.compile(definition["Regex"])
            except (re.error, KeyError, TypeError):
                continue
            for line in self.lines:
                match = pattern.search(line)
                if match:
                    try:
                        values[definition["Name"]] = float(match.group(1) if match.groups() else match.group(0))
                    except ValueError:
                        pass
        now = utcnow()
        metrics = [{"MetricName": name, "Value": value, "Timestamp": now} for name, value in values.items()]
        self.job.final_metric_data_list = metrics or None

    def finish_stopped(self):
        if self.stop_requested_at is not None:
            SAGEMAKER.hold(self.stop_requested_at)  # Stopping
        if self.stop_reason == "MaxRuntimeExceeded":
            return self.finish("Stopped", None, "MaxRuntimeExceeded", "Training job ran beyond MaxRuntimeInSeconds")
        return self.finish("Stopped", None, "Stopped", "The training job was stopped")

    def finish(self, status, failure_reason, secondary=None, message=None):
        from moto.core.utils import utcnow

        messages = {"Completed": "Training job completed", "Failed": "Training job failed"}
        with SAGEMAKER.lock:
            if self.stop_reason and status != "Stopped":
                status, secondary, message = "Stopped", self.stop_reason, "The training job was stopped"
            job = self.job
            job.failure_reason = failure_reason
            now = utcnow()
            job.training_end_time = now
            if job.training_start_time is not None:
                seconds = max(1, int((now - job.training_start_time).total_seconds()))
                job.training_time_in_seconds = job.billable_time_in_seconds = seconds
            self.transition(status, secondary or status, message or messages[status], final=True)


def _algorithm_error(opt_ml, code):
    """SageMaker's FailureReason for a failed algorithm: `AlgorithmError: ` and output/failure's first line."""
    try:
        with open(os.path.join(opt_ml, "output", "failure"), encoding="utf-8", errors="replace") as file:
            first = file.read().strip().splitlines()
    except OSError:
        first = []
    if first and first[0].strip():
        return f"AlgorithmError: {first[0].strip()[:1024]}"
    return f"AlgorithmError: the training process exited with code {code}"


@sagemaker_patch
def sagemaker_training_jobs_really_train():
    """CreateTrainingJob runs `model-image train` and ends Completed (with artifacts), Failed or Stopped.

    moto 5.2.1 marks every job Completed at once, with no model.tar.gz, no logs, a made-up metric, and
    replaces the request's MetricDefinitions; a second job with the same name silently replaces the
    first. Here: the job is InProgress (Starting, Downloading, Training, Uploading), its channels come
    from moto's S3, its output lines go to CloudWatch Logs, and a duplicate name is `ResourceInUse`, as
    in AWS. StoppingCondition.MaxRuntimeInSeconds (counted from CreateTrainingJob) stops the job as AWS
    does: TrainingJobStatus Stopped, SecondaryStatus MaxRuntimeExceeded.
    """
    import copy

    from moto.sagemaker.exceptions import ResourceInUseException
    from moto.sagemaker.models import FakeTrainingJob, SageMakerModelBackend

    original = SageMakerModelBackend.create_training_job

    def create_training_job(self, training_job_name, **kwargs):
        if training_job_name in self.training_jobs:
            arn = FakeTrainingJob.arn_formatter(training_job_name, self.account_id, self.region_name)
            raise ResourceInUseException(
                "Training job names must be unique within an AWS account and region, and a training job "
                f"with this name already exists ({arn})"
            )
        specification = copy.deepcopy(kwargs.get("algorithm_specification") or {})
        job = original(self, training_job_name=training_job_name, **kwargs)
        job.algorithm_specification = specification
        job.training_job_status = "InProgress"
        job.secondary_status = "Starting"
        job.secondary_status_transitions = [
            {"Status": "Starting", "StartTime": job.creation_time, "StatusMessage": "Preparing the instances for training"}
        ]
        job.training_start_time = None
        job.training_end_time = None
        job.model_artifacts = None
        job.final_metric_data_list = None
        run = Training(self, job, specification.get("MetricDefinitions") or [])
        with SAGEMAKER.lock:
            SAGEMAKER.trainings[run.key] = run
        max_runtime = (job.stopping_condition or {}).get("MaxRuntimeInSeconds")
        if max_runtime:
            timer = threading.Timer(float(max_runtime), run.request_stop, args=("MaxRuntimeExceeded",))
            timer.daemon = True
            timer.start()
        threading.Thread(target=run.run, name=f"training-{training_job_name}", daemon=True).start()
        return job

    SageMakerModelBackend.create_training_job = create_training_job


@sagemaker_patch
def sagemaker_stop_training_job():
    """StopTrainingJob (missing in moto 5.2.1, a 500): Stopping, the process group killed, Stopped.

    Only an InProgress job can be stopped; AWS rejects the others with a ValidationException.
    """
    from moto.core.responses import EmptyResult
    from moto.sagemaker.exceptions import ResourceNotFound, ValidationError
    from moto.sagemaker.models import FakeTrainingJob, SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse

    def stop_training_job(self, training_job_name):
        job = self.training_jobs.get(training_job_name)
        if job is None:
            arn = FakeTrainingJob.arn_formatter(training_job_name, self.account_id, self.region_name)
            raise ResourceNotFound(f"Could not find training job '{arn}'.")
        run = SAGEMAKER.trainings.get((self.account_id, self.region_name, training_job_name))
        if run is None or not run.request_stop("Stopped"):
            raise ValidationError(
                f"The request was rejected because the training job is in status {job.training_job_status}."
            )

    def stop_training_job_response(self):
        self.sagemaker_backend.stop_training_job(self._get_param("TrainingJobName"))
        return EmptyResult()

    SageMakerModelBackend.stop_training_job = stop_training_job
    SageMakerResponse.stop_training_job = stop_training_job_response


# Models and endpoint configs -------------------------------------------------------------------


@sagemaker_patch
def sagemaker_duplicate_models_and_configs_are_rejected():
    """CreateModel / CreateEndpointConfig with an existing name fail as in AWS.

    moto 5.2.1 replaces the existing model or config silently, so code that relies on content-hash names
    (create once, never overwrite) could not see a collision.
    """
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.models import FakeEndpointConfig, SageMakerModelBackend
    from moto.sagemaker.utils import arn_formatter

    create_model = SageMakerModelBackend.create_model
    create_endpoint_config = SageMakerModelBackend.create_endpoint_config

    def create_model_once(self, model_name, *args, **kwargs):
        if model_name in self._models:
            arn = arn_formatter("model", model_name, self.account_id, self.region_name)
            raise ValidationError(f'Cannot create already existing model "{arn}".')
        return create_model(self, model_name, *args, **kwargs)

    def create_endpoint_config_once(self, endpoint_config_name, *args, **kwargs):
        if endpoint_config_name in self.endpoint_configs:
            arn = FakeEndpointConfig.arn_formatter(endpoint_config_name, self.account_id, self.region_name)
            raise ValidationError(f'Cannot create already existing endpoint configuration "{arn}".')
        return create_endpoint_config(self, endpoint_config_name, *args, **kwargs)

    SageMakerModelBackend.create_model = create_model_once
    SageMakerModelBackend.create_endpoint_config = create_endpoint_config_once


@sagemaker_patch
def sagemaker_models_keep_network_isolation():
    """CreateModel's EnableNetworkIsolation is dropped by moto 5.2.1 (DescribeModel always says false):
    the model keeps what was asked, as SageMaker's does, so a model created without isolation (for
    a serverless endpoint) and one created with it can be told apart."""
    from moto.sagemaker.responses import SageMakerResponse

    create_model = SageMakerResponse.create_model

    def create_model_keeping_isolation(self):
        result = create_model(self)
        model = self.sagemaker_backend._models.get(self._get_param("ModelName"))
        if model is not None:
            model.enable_network_isolation = bool(self._get_param("EnableNetworkIsolation", False))
        return result

    SageMakerResponse.create_model = create_model_keeping_isolation


# Endpoints -----------------------------------------------------------------------------------


class Serving:
    """A `model-image serve` process answering for one endpoint config."""

    def __init__(self, process, port, model_dir, config_name, variant_name, log):
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.model_dir = model_dir
        self.config_name = config_name
        self.variant_name = variant_name
        self.log = log
        self.stopped = False

    def stop(self):
        """Stops the process (once: a rollout and a DeleteEndpoint may both stop a green fleet)."""
        with SAGEMAKER.lock:
            if self.stopped:
                return
            self.stopped = True
        SAGEMAKER.terminate(self.process)
        shutil.rmtree(self.model_dir, ignore_errors=True)


class EndpointRuntime:
    """What runs for an endpoint: its Serving, and the token of the operation allowed to change it.

    During a blue/green rollout (UpdateEndpoint with a DeploymentConfig) also the green fleet
    (`green`), the share of invocations it takes (`green_percent`, 0-100), a count of invocations
    routed (for the weighted round-robin) and the rollout's state for `/_testbed/endpoints`."""

    def __init__(self):
        self.serving = None
        self.token = None
        self.green = None
        self.green_percent = 0
        self.routed = 0
        self.rollout = None


def _runtime(backend, name):
    with SAGEMAKER.lock:
        return SAGEMAKER.endpoints.setdefault((backend.account_id, backend.region_name, name), EndpointRuntime())


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_serving(backend, endpoint_name, config_name):
    """(Serving, None) once `/ping` answers 200, or (None, the FailureReason SageMaker would give)."""
    from moto.sagemaker.utils import arn_formatter

    config = backend.endpoint_configs.get(config_name)
    if config is None or not config.production_variants:
        return None, f"Could not find endpoint configuration '{config_name}'."
    variant = config.production_variants[0]
    variant_name = variant.get("VariantName", "AllTraffic")
    model = backend._models.get(variant.get("ModelName"))
    if model is None:
        arn = arn_formatter("model", variant.get("ModelName"), backend.account_id, backend.region_name)
        return None, f"Could not find model \"{arn}\"."
    container = _container(model)
    model_dir = tempfile.mkdtemp(prefix=f"endpoint-{endpoint_name}-", dir=SAGEMAKER.root)
    data_url = container.get("ModelDataUrl")
    if data_url:
        try:
            data = _s3_read(backend.account_id, backend.region_name, data_url)
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
                archive.extractall(model_dir, filter="data")
        except Exception:
            shutil.rmtree(model_dir, ignore_errors=True)
            return None, (
                f'Failed to download model data for container "container_1" from URL: "{data_url}". Please '
                "ensure that there is an object located at the URL and that the role passed to CreateModel "
                "has permissions to download the model."
            )
    health = (
        f"The primary container for production variant {variant_name} did not pass the ping health check. "
        "Please check CloudWatch logs for this endpoint."
    )
    log = LogStream(
        backend.account_id,
        backend.region_name,
        ENDPOINT_LOG_GROUP.format(endpoint_name),
        f"{variant_name}/i-{os.urandom(9).hex()[:17]}",
    )
    port = _free_port()
    env = {str(k): str(v) for k, v in (container.get("Environment") or {}).items()}
    env["SAGEMAKER_BIND_TO_PORT"] = str(port)
    serverless = variant.get("ServerlessConfig")
    if serverless and serverless.get("MaxConcurrency"):
        # Serverless capacity serves MaxConcurrency requests at once; the container refuses more.
        env["MODEL_IMAGE_MAX_IN_FLIGHT"] = str(serverless["MaxConcurrency"])
    try:
        process = SAGEMAKER.spawn(
            [SAGEMAKER.model_image, "serve", "--model-dir", model_dir, "--host", "127.0.0.1"], env
        )
    except Exception as error:
        shutil.rmtree(model_dir, ignore_errors=True)
        return None, f"{health} ({error})"

    def forward():
        for raw in process.stdout:
            log.write(raw.decode("utf-8", "replace"))

    threading.Thread(target=forward, name=f"serve-log-{endpoint_name}", daemon=True).start()
    serving = Serving(process, port, model_dir, config_name, variant_name, log)
    deadline = time.monotonic() + SAGEMAKER.ping_timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{serving.url}/ping", timeout=2) as response:
                if response.status == 200:
                    return serving, None
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.05)
    serving.stop()
    return None, health


def _container(model):
    """The model's serving container: PrimaryContainer, else the first of Containers."""
    return model.primary_container or (model.containers[0] if model.containers else {})


def _variants(backend, config_name, previous=None):
    """DescribeEndpoint's ProductionVariants for `config_name`: instance counts and weights from the
    config (or, variant by variant, from `previous`: RetainAllVariantProperties), and the image each
    runs (DeployedImages; ResolvedImage only for an image given by digest, as nothing resolves tags)."""
    config = backend.endpoint_configs.get(config_name)
    kept = {v["VariantName"]: v for v in previous or []}
    variants = []
    for source in config.production_variants if config else []:
        variant = {"VariantName": source["VariantName"]}
        if source.get("InitialInstanceCount"):
            variant["CurrentInstanceCount"] = variant["DesiredInstanceCount"] = source["InitialInstanceCount"]
        if source.get("ServerlessConfig"):
            variant["CurrentServerlessConfig"] = variant["DesiredServerlessConfig"] = dict(source["ServerlessConfig"])
        if source.get("InitialVariantWeight") is not None:
            variant["CurrentWeight"] = variant["DesiredWeight"] = source["InitialVariantWeight"]
        model = backend._models.get(source.get("ModelName"))
        image = _container(model).get("Image") if model else None
        if image:
            deployed = {"SpecifiedImage": image}
            if "@sha256:" in image:
                deployed["ResolvedImage"] = image
            variant["DeployedImages"] = [deployed]
        old = kept.get(variant["VariantName"])
        if old:
            for field in ("CurrentInstanceCount", "DesiredInstanceCount", "CurrentWeight", "DesiredWeight"):
                if field in old:
                    variant[field] = old[field]
        variants.append(variant)
    return variants


def _serverless(config):
    """Whether an endpoint config's variants run on serverless capacity."""
    return bool(config and any(v.get("ServerlessConfig") for v in config.production_variants))


def _set_endpoint(endpoint, status, **fields):
    from moto.core.utils import utcnow

    endpoint.endpoint_status = status
    for name, value in fields.items():
        setattr(endpoint, name, value)
    endpoint.last_modified_time = utcnow()


def _percent(value):
    """A traffic share for messages and `/_testbed/endpoints`: 50, or 33.3."""
    return int(value) if float(value).is_integer() else round(value, 1)


def _deployment_plan(deployment_config, variant, old_variant_name=None):
    """The rollout a DeploymentConfig asks for, validated as SageMaker validates it (ValidationError):
    {"steps": [percent of the green fleet's capacity taking traffic, ..., 100], "wait": the
    WaitIntervalInSeconds each step bakes, "termination": TerminationWaitInSeconds, "alarms": the
    AutoRollbackConfiguration's alarm names}. `variant` is the new config's first variant as
    DescribeEndpoint would report it; `old_variant_name` the endpoint's current one (UpdateEndpoint)."""
    from moto.sagemaker.exceptions import ValidationError

    if deployment_config.get("RollingUpdatePolicy"):
        raise ValidationError(
            "RollingUpdatePolicy is not supported by the testbed's SageMaker emulation; use BlueGreenUpdatePolicy."
        )
    variant_name = variant.get("VariantName")
    if old_variant_name is not None and variant_name != old_variant_name:
        raise ValidationError(
            f"The variant name(s) of the new endpoint configuration [{variant_name}] must match the variant "
            f"name(s) of the endpoint's current configuration [{old_variant_name}] for a blue/green deployment."
        )
    alarms = [alarm.get("AlarmName") for alarm in (deployment_config.get("AutoRollbackConfiguration") or {}).get("Alarms") or []]
    policy = deployment_config.get("BlueGreenUpdatePolicy") or {}
    routing = policy.get("TrafficRoutingConfiguration") or {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
    kind = routing.get("Type")
    count = variant.get("DesiredInstanceCount") or 1
    if kind == "ALL_AT_ONCE":
        steps = [100]
    elif kind in ("CANARY", "LINEAR"):
        field = "CanarySize" if kind == "CANARY" else "LinearStepSize"
        size = routing.get(field)
        if not size:
            raise ValidationError(f"{field} must be specified when the traffic routing type is {kind}.")
        if count < 2:
            raise ValidationError(
                f"The {kind} traffic routing type needs at least 2 instances, but production variant "
                f"{variant_name} has {count}."
            )
        value = size.get("Value") or 0
        percent = value if size.get("Type") == "CAPACITY_PERCENT" else value * 100 / count
        unit = "%" if size.get("Type") == "CAPACITY_PERCENT" else f" instance(s) of {count}"
        if kind == "CANARY" and not 0 < percent <= 50:
            raise ValidationError(
                f"CanarySize {value}{unit} is invalid: the canary must be at most 50% of the instance count "
                f"({count}) of production variant {variant_name}."
            )
        if kind == "LINEAR" and not 10 <= percent <= 50:
            raise ValidationError(
                f"LinearStepSize {value}{unit} is invalid: each step must be between 10% and 50% of the instance "
                f"count ({count}) of production variant {variant_name}."
            )
        if kind == "CANARY":
            steps = [_percent(percent), 100]
        else:
            steps = []
            while (len(steps) + 1) * percent < 100:
                steps.append(_percent((len(steps) + 1) * percent))
            steps.append(100)
    else:
        raise ValidationError(f"Unknown traffic routing type {kind!r}: ALL_AT_ONCE, CANARY or LINEAR.")
    return {
        "steps": steps,
        "wait": routing.get("WaitIntervalInSeconds") or 0,
        "termination": policy.get("TerminationWaitInSeconds") or 0,
        "alarms": alarms,
    }


def _alarms_in_alarm(account_id, region, names):
    """Which of the alarms `names` moto's CloudWatch holds in state ALARM (an unknown name is not)."""
    from moto.cloudwatch.models import cloudwatch_backends

    alarms = cloudwatch_backends[account_id][region].alarms
    return [name for name in names if getattr(alarms.get(name), "state_value", None) == "ALARM"]


def _pending_summary(config_name, variant, started, status, message, since):
    """DescribeEndpoint's PendingDeploymentSummary: the new config's variant, its status and traffic."""
    pending = {key: value for key, value in variant.items() if key == "VariantName" or key == "DeployedImages"}
    count = variant.get("DesiredInstanceCount")
    weight = variant.get("DesiredWeight", 1.0)
    if count is not None:
        pending["CurrentInstanceCount"] = 0 if status == "Creating" else count
        pending["DesiredInstanceCount"] = count
    pending["CurrentWeight"] = 0.0 if status == "Creating" else weight
    pending["DesiredWeight"] = weight
    pending["VariantStatus"] = [{"Status": status, "StatusMessage": message, "StartTime": since}]
    return {"EndpointConfigName": config_name, "StartTime": started, "ProductionVariants": [pending]}


@sagemaker_patch
def sagemaker_endpoints_serve_their_model():
    """CreateEndpoint starts a real `model-image serve`; DeleteEndpoint stops it.

    moto 5.2.1 makes an endpoint InService at once and serves nothing. Here: Creating, then the first
    production variant's model (its ModelDataUrl model.tar.gz, from moto's S3) is served by
    `model-image serve` on a free loopback port; InService once `/ping` answers 200, otherwise Failed
    with the FailureReason SageMaker gives. The serve process's output goes to CloudWatch Logs
    (`/aws/sagemaker/Endpoints/<name>`). A duplicate name is rejected as in AWS. A DeploymentConfig is
    validated as UpdateEndpoint validates it and kept as LastDeploymentConfig (it only governs later
    updates, with RetainDeploymentConfig). DeleteEndpoint: Deleting, the processes stopped (a rollout's
    green fleet too), then the endpoint is gone.
    """
    from moto.core.responses import ActionResult
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.models import FakeEndpoint, SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse

    original_create = SageMakerModelBackend.create_endpoint

    def create_endpoint(self, endpoint_name, endpoint_config_name, tags, deployment_config=None):
        if endpoint_name in self.endpoints:
            arn = FakeEndpoint.arn_formatter(endpoint_name, self.account_id, self.region_name)
            raise ValidationError(f'Cannot create already existing endpoint "{arn}".')
        if deployment_config and endpoint_config_name in self.endpoint_configs:
            variants = _variants(self, endpoint_config_name)
            _deployment_plan(deployment_config, variants[0] if variants else {})
        endpoint = original_create(self, endpoint_name, endpoint_config_name, tags)
        runtime = _runtime(self, endpoint_name)
        token = object()
        with SAGEMAKER.lock:
            runtime.token = token
            _set_endpoint(
                endpoint, "Creating", failure_reason=None, last_deployment_config=deployment_config or None
            )
        started = time.monotonic()

        def create():
            injected = SAGEMAKER.take_fault("endpoint_creation_fails", endpoint_name)
            if injected is None:
                serving, reason = _start_serving(self, endpoint_name, endpoint_config_name)
            else:
                serving, reason = None, injected
            SAGEMAKER.hold(started)
            with SAGEMAKER.lock:
                current = runtime.token is token and self.endpoints.get(endpoint_name) is endpoint
                if current and serving:
                    runtime.serving = serving
                    variants = _variants(self, endpoint_config_name)
                    _set_endpoint(endpoint, "InService", production_variants=variants)
                elif current:
                    _set_endpoint(endpoint, "Failed", failure_reason=reason)
            if serving and not current:
                serving.stop()

        threading.Thread(target=create, name=f"create-{endpoint_name}", daemon=True).start()
        return endpoint

    def delete_endpoint(self, endpoint_name):
        endpoint = self.endpoints.get(endpoint_name)
        if endpoint is None:
            arn = FakeEndpoint.arn_formatter(endpoint_name, self.account_id, self.region_name)
            raise ValidationError(f"Could not find endpoint '{arn}'.")
        runtime = _runtime(self, endpoint_name)
        token = object()
        with SAGEMAKER.lock:
            runtime.token = token
            _set_endpoint(endpoint, "Deleting")
        started = time.monotonic()

        def delete():
            with SAGEMAKER.lock:
                serving, runtime.serving = runtime.serving, None
                green, runtime.green, runtime.green_percent, runtime.rollout = runtime.green, None, 0, None
            for process in (serving, green):
                if process:
                    process.stop()
            SAGEMAKER.hold(started)
            with SAGEMAKER.lock:
                if runtime.token is token and self.endpoints.get(endpoint_name) is endpoint:
                    del self.endpoints[endpoint_name]
                    SAGEMAKER.endpoints.pop((self.account_id, self.region_name, endpoint_name), None)

        threading.Thread(target=delete, name=f"delete-{endpoint_name}", daemon=True).start()

    def create_endpoint_response(self):
        endpoint = self.sagemaker_backend.create_endpoint(
            endpoint_name=self._get_param("EndpointName"),
            endpoint_config_name=self._get_param("EndpointConfigName"),
            tags=self._get_param("Tags"),
            deployment_config=self._get_param("DeploymentConfig"),
        )
        return ActionResult({"EndpointArn": endpoint.arn})

    SageMakerModelBackend.create_endpoint = create_endpoint
    SageMakerModelBackend.delete_endpoint = delete_endpoint
    SageMakerResponse.create_endpoint = create_endpoint_response


@sagemaker_patch
def sagemaker_update_endpoint():
    """UpdateEndpoint (missing in moto 5.2.1, a 500): Updating, then the new config serves, or a rollback.

    As in SageMaker: the old config keeps serving while the new one starts; when the new one is up the
    endpoint switches to it (EndpointConfigName), stops the old one and is InService. When the new one
    fails (or `endpoint_update_rolls_back` was injected), the endpoint is RollingBack, then InService
    with the OLD EndpointConfigName and FailureReason set: the silent rollback that callers must detect.
    RetainAllVariantProperties keeps the variants' instance counts and weights. Only an InService
    endpoint can be updated, and not between instances and serverless capacity (SageMaker refuses
    both directions: the endpoint must be replaced).

    With a DeploymentConfig (or RetainDeploymentConfig and a LastDeploymentConfig), a blue/green
    deployment with traffic shifting and auto-rollback, as SageMaker's deployment guardrails: validated
    first (`_deployment_plan`: CanarySize/LinearStepSize required, canary at most 50%, linear steps
    10-50%, at least 2 instances for either, the same variant name; RollingUpdatePolicy unsupported).
    Once the green fleet (the new config's serve process) answers `/ping`, each step (ALL_AT_ONCE
    [100], CANARY [size, 100], LINEAR [size, 2*size, ..., 100], percent of capacity) sends that share
    of invocations to green (ActivatingTraffic), then bakes WaitIntervalInSeconds; after the last step a
    final bake of TerminationWaitInSeconds. Throughout, every 0.2 s, the AutoRollbackConfiguration's
    alarms are read from moto's CloudWatch: one in ALARM rolls back (RollingBack, all traffic to blue,
    green stopped, then InService on the old config with FailureReason "Rolled back the deployment:
    CloudWatch alarm(s) [NAME, ...] went into ALARM state."). Otherwise the endpoint switches to the new
    config. DescribeEndpoint shows PendingDeploymentSummary while Updating (VariantStatus Creating,
    ActivatingTraffic, Baking with StartTime the bake's start) and LastDeploymentConfig after.
    """
    from moto.core.responses import ActionResult
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.models import FakeEndpoint, FakeEndpointConfig, SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse

    def update_endpoint(
        self,
        endpoint_name,
        endpoint_config_name,
        retain_all_variant_properties=False,
        deployment_config=None,
        retain_deployment_config=False,
    ):
        from moto.core.utils import utcnow

        endpoint = self.endpoints.get(endpoint_name)
        arn = FakeEndpoint.arn_formatter(endpoint_name, self.account_id, self.region_name)
        if endpoint is None:
            raise ValidationError(f'Could not find endpoint "{arn}".')
        if endpoint_config_name not in self.endpoint_configs:
            config_arn = FakeEndpointConfig.arn_formatter(endpoint_config_name, self.account_id, self.region_name)
            raise ValidationError(f"Could not find endpoint configuration '{config_arn}'.")
        if not deployment_config and retain_deployment_config:
            deployment_config = getattr(endpoint, "last_deployment_config", None)
        runtime = _runtime(self, endpoint_name)
        token = object()
        with SAGEMAKER.lock:
            previous = endpoint.production_variants if retain_all_variant_properties else None
            new_variants = _variants(self, endpoint_config_name, previous)
            plan = None
            if deployment_config:  # the request is validated first, whatever the endpoint's status
                old_name = (endpoint.production_variants or [{}])[0].get("VariantName")
                plan = _deployment_plan(deployment_config, new_variants[0] if new_variants else {}, old_name)
            old_config = self.endpoint_configs.get(endpoint.endpoint_config_name)
            was_serverless = _serverless(old_config)
            if old_config is not None and was_serverless != _serverless(self.endpoint_configs[endpoint_config_name]):
                kinds = ("a serverless", "an instance-based") if was_serverless else ("an instance-based", "a serverless")
                raise ValidationError(
                    f"Updating {kinds[0]} endpoint to {kinds[1]} endpoint is not supported: delete "
                    f'"{arn}" and create it with the new endpoint configuration.'
                )
            if endpoint.endpoint_status == "Failed":
                raise ValidationError(f'Cannot update failed endpoint "{arn}".')
            if endpoint.endpoint_status != "InService":
                raise ValidationError(f'Cannot update in-progress endpoint "{arn}".')
            runtime.token = token
            started_at = utcnow()
            pending = None
            if plan:
                pending = _pending_summary(
                    endpoint_config_name,
                    new_variants[0],
                    started_at,
                    "Creating",
                    "Creating the new fleet's instances",
                    started_at,
                )
                runtime.rollout = {"phase": "creating", "step": 0, "steps": len(plan["steps"]), "traffic_percent": 0}
            _set_endpoint(endpoint, "Updating", pending_deployment_summary=pending)
        started = time.monotonic()

        def current():
            return runtime.token is token and self.endpoints.get(endpoint_name) is endpoint

        def roll_back(reason, green=None):
            """RollingBack (all traffic to blue, green stopped), then InService on the old config."""
            with SAGEMAKER.lock:
                if not current():
                    return
                runtime.green_percent = 0
                if runtime.green is green:
                    runtime.green = None
                if plan:
                    runtime.rollout = {**runtime.rollout, "phase": "rolling_back", "traffic_percent": 0}
                _set_endpoint(endpoint, "RollingBack", pending_deployment_summary=None)
            if green:
                green.stop()
            SAGEMAKER.hold(time.monotonic())
            with SAGEMAKER.lock:
                if current():
                    runtime.rollout = None
                    fields = {"last_deployment_config": deployment_config} if plan else {}
                    _set_endpoint(endpoint, "InService", failure_reason=reason, **fields)

        def bake(seconds):
            """Waits `seconds`, reading the alarms every 0.2 s: the alarms in ALARM, [] once the time is
            up, None when a later operation took over."""
            deadline = time.monotonic() + seconds
            while True:
                with SAGEMAKER.lock:
                    if not current():
                        return None
                fired = _alarms_in_alarm(self.account_id, self.region_name, plan["alarms"])
                left = deadline - time.monotonic()
                if fired or left <= 0:
                    return fired
                time.sleep(min(0.2, left))

        def shift(green):
            """The rollout's steps and bakes; True once every bake passed."""
            steps = plan["steps"]
            phases = [(index, percent, "baking", plan["wait"]) for index, percent in enumerate(steps)]
            phases.append((len(steps) - 1, 100, "final_bake", plan["termination"]))
            for index, percent, phase, seconds in phases:
                where = f"step {index + 1} of {len(steps)}"
                with SAGEMAKER.lock:
                    if not current():
                        return None
                    if phase == "baking":
                        runtime.green_percent = percent
                        runtime.rollout = {
                            "phase": "activating_traffic",
                            "step": index + 1,
                            "steps": len(steps),
                            "traffic_percent": percent,
                            "green_url": green.url,
                            "green_config": green.config_name,
                            "green_pid": green.process.pid,
                        }
                        _set_endpoint(
                            endpoint,
                            "Updating",
                            pending_deployment_summary=_pending_summary(
                                endpoint_config_name,
                                new_variants[0],
                                started_at,
                                "ActivatingTraffic",
                                f"Activating traffic: {percent}% of the new fleet's capacity ({where})",
                                utcnow(),
                            ),
                        )
                if phase == "baking":
                    # Shown for the emulation's least transitional time, not counted in the bake.
                    fired = bake(SAGEMAKER.delay)
                    if fired is None or fired:
                        return fired
                with SAGEMAKER.lock:
                    if not current():
                        return None
                    runtime.rollout = {**runtime.rollout, "phase": phase}
                    if phase == "baking":
                        message = f"Baking: {percent}% of the new fleet's capacity takes traffic ({where})"
                    else:
                        message = (
                            "Baking: 100% of the new fleet's capacity takes traffic "
                            "(final bake before the old fleet is terminated)"
                        )
                    _set_endpoint(
                        endpoint,
                        "Updating",
                        pending_deployment_summary=_pending_summary(
                            endpoint_config_name, new_variants[0], started_at, "Baking", message, utcnow()
                        ),
                    )
                fired = bake(seconds)
                if fired is None or fired:
                    return fired
            return []

        def update():
            injected = SAGEMAKER.take_fault("endpoint_update_rolls_back", endpoint_name)
            if injected is None:
                serving, reason = _start_serving(self, endpoint_name, endpoint_config_name)
            else:
                serving, reason = None, injected
            SAGEMAKER.hold(started)
            with SAGEMAKER.lock:
                live = current()
                if live and serving and plan:
                    runtime.green, runtime.green_percent, runtime.routed = serving, 0, 0
            if serving and not live:
                serving.stop()
                return
            if not live:
                return
            if not serving:
                roll_back(reason)
                return
            if plan:
                fired = shift(serving)
                if fired is None:  # a later DeleteEndpoint took over (it stops the green fleet too)
                    serving.stop()
                    return
                if fired:
                    roll_back(
                        f"Rolled back the deployment: CloudWatch alarm(s) [{', '.join(fired)}] went into ALARM state.",
                        serving,
                    )
                    return
            old = None
            with SAGEMAKER.lock:
                if current():
                    old, runtime.serving = runtime.serving, serving
                    runtime.green, runtime.green_percent, runtime.rollout = None, 0, None
                    _set_endpoint(
                        endpoint,
                        "InService",
                        endpoint_config_name=endpoint_config_name,
                        production_variants=new_variants,
                        failure_reason=None,
                        pending_deployment_summary=None,
                        last_deployment_config=deployment_config or None,
                    )
                else:
                    old = serving
            if old:
                old.stop()

        threading.Thread(target=update, name=f"update-{endpoint_name}", daemon=True).start()
        return endpoint.arn

    def update_endpoint_response(self):
        arn = self.sagemaker_backend.update_endpoint(
            endpoint_name=self._get_param("EndpointName"),
            endpoint_config_name=self._get_param("EndpointConfigName"),
            retain_all_variant_properties=bool(self._get_param("RetainAllVariantProperties", False)),
            deployment_config=self._get_param("DeploymentConfig"),
            retain_deployment_config=bool(self._get_param("RetainDeploymentConfig", False)),
        )
        return ActionResult({"EndpointArn": arn})

    SageMakerModelBackend.update_endpoint = update_endpoint
    SageMakerResponse.update_endpoint = update_endpoint_response


@sagemaker_patch
def sagemaker_runtime_invokes_the_served_model():
    """InvokeEndpoint is answered by the endpoint's `model-image serve`, with SageMaker's errors.

    moto 5.2.1 answers every invocation with canned data. Here the body, Content-Type and Accept go to
    the live serve process; a 2xx comes back as is; a 4xx/5xx becomes `ModelError` (HTTP 424, with
    OriginalStatusCode, OriginalMessage and LogStreamArn) as SageMaker reports a model's error; an
    endpoint that does not exist or is not serving is `ValidationError` ("Endpoint NAME of account
    ACCOUNT not found.", HTTP 400). As in SageMaker, an endpoint that is Updating or RollingBack is
    still served by its current config. During a blue/green rollout the green fleet takes its share of
    invocations (a weighted round-robin on `green_percent`), the old one the rest; both answer with the
    variant's name, as in SageMaker. moto routes `.../invocations` to sagemaker-runtime by path (the
    signing name is `sagemaker` for both services).
    """
    import http.client

    from moto.sagemaker.models import sagemaker_backends
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

    def error(status, code, fields):
        body = json.dumps({"__type": code, **fields})
        return status, {"status": status, "Content-Type": "application/json", "x-amzn-ErrorType": code}, body

    def invoke_endpoint(self):
        match = re.match(r"^/endpoints/([^/]+)/invocations$", self.path)
        name = urllib.parse.unquote(match.group(1)) if match else ""
        account, region = self.current_account, self.region
        backend = sagemaker_backends[account][region]
        with SAGEMAKER.lock:
            endpoint = backend.endpoints.get(name)
            runtime = SAGEMAKER.endpoints.get((account, region, name))
            serving = runtime.serving if runtime else None
            status = endpoint.endpoint_status if endpoint else None
            if runtime and runtime.green and serving:
                runtime.routed += 1
                share = runtime.green_percent
                if (runtime.routed * share) // 100 > ((runtime.routed - 1) * share) // 100:
                    serving = runtime.green
        if serving is None or status not in INVOCABLE_STATUSES:
            return error(400, "ValidationError", {"Message": f"Endpoint {name} of account {account} not found."})
        body = self.raw_body if isinstance(self.raw_body, bytes) else (self.raw_body or "").encode()
        headers = {"Content-Type": self.headers.get("Content-Type") or "application/octet-stream"}
        if self.headers.get("Accept"):
            headers["Accept"] = self.headers["Accept"]
        try:
            connection = http.client.HTTPConnection("127.0.0.1", serving.port, timeout=60)
            connection.request("POST", "/invocations", body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            content_type = response.getheader("Content-Type") or "application/octet-stream"
            connection.close()
        except OSError as problem:
            return error(
                503,
                "ServiceUnavailable",
                {"Message": f"the testbed's model server for endpoint {name} did not answer ({problem})"},
            )
        if 200 <= response.status < 300:
            return 200, {"Content-Type": content_type, "x-Amzn-Invoked-Production-Variant": serving.variant_name}, answer
        text = answer.decode("utf-8", "replace")
        kind = "client" if response.status < 500 else "server"
        console = (
            f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logEventViewer:"
            f"group={serving.log.group}"
        )
        return error(
            424,
            "ModelError",
            {
                "Message": f'Received {kind} error ({response.status}) from primary with message "{text}". '
                f"See {console} in account {account} for more information.",
                "OriginalStatusCode": response.status,
                "OriginalMessage": text,
                "LogStreamArn": serving.log.group_arn,
            },
        )

    SageMakerRuntimeResponse.invoke_endpoint = invoke_endpoint


@sagemaker_patch
def sagemaker_endpoints_capture_their_traffic():
    """An endpoint whose config has a DataCaptureConfig writes its sampled traffic to S3, as SageMaker does.

    moto 5.2.1 keeps DataCaptureConfig and writes nothing. Here, for each successful InvokeEndpoint
    (patched above to reach the real model server), with probability InitialSamplingPercentage: one
    record in SageMaker's capture format (`captureData.endpointInput`/`endpointOutput` with
    `observedContentType`, `mode`, `data`, `encoding`; `eventMetadata.eventId`/`inferenceTime`;
    `eventVersion` "0") under `<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/`, encoded as the
    config's CaptureContentTypeHeader says (CSV and JSON types as text, others base64). SageMaker
    buffers records into files of several; here each record is its own object (same layout, same
    lines).
    """
    import base64
    import random
    import uuid
    from datetime import datetime, timezone

    from moto.sagemaker.models import sagemaker_backends
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

    served = SageMakerRuntimeResponse.invoke_endpoint

    def encoded(content_type, data, header):
        base = (content_type or "").split(";")[0].strip().lower()
        if base in [t.lower() for t in header.get("CsvContentTypes") or []]:
            return "CSV", data.decode("utf-8", "replace")
        if base in [t.lower() for t in header.get("JsonContentTypes") or []]:
            return "JSON", data.decode("utf-8", "replace")
        return "BASE64", base64.b64encode(data).decode("ascii")

    def invoke_endpoint(self):
        answer = served(self)
        status, headers, body = answer
        if status != 200:
            return answer
        match = re.match(r"^/endpoints/([^/]+)/invocations$", self.path)
        name = urllib.parse.unquote(match.group(1)) if match else ""
        account, region = self.current_account, self.region
        backend = sagemaker_backends[account][region]
        endpoint = backend.endpoints.get(name)
        config = backend.endpoint_configs.get(endpoint.endpoint_config_name) if endpoint else None
        capture = (config.data_capture_config if config else None) or {}
        if not capture.get("EnableCapture") or random.uniform(0, 100) >= float(capture.get("InitialSamplingPercentage", 0)):
            return answer
        header = capture.get("CaptureContentTypeHeader") or {}
        modes = {o.get("CaptureMode") for o in capture.get("CaptureOptions") or []}
        request = self.raw_body if isinstance(self.raw_body, bytes) else (self.raw_body or "").encode()
        response = body if isinstance(body, bytes) else str(body).encode()
        data = {}
        if "Input" in modes:
            encoding, text = encoded(self.headers.get("Content-Type"), request, header)
            data["endpointInput"] = {
                "observedContentType": self.headers.get("Content-Type") or "",
                "mode": "INPUT", "data": text, "encoding": encoding,
            }
        if "Output" in modes:
            encoding, text = encoded(headers.get("Content-Type"), response, header)
            data["endpointOutput"] = {
                "observedContentType": headers.get("Content-Type") or "",
                "mode": "OUTPUT", "data": text, "encoding": encoding,
            }
        now = datetime.now(timezone.utc)
        record = {
            "captureData": data,
            "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "eventVersion": "0",
        }
        variant = headers.get("x-Amzn-Invoked-Production-Variant") or "AllTraffic"
        key = (
            f"{capture['DestinationS3Uri'].rstrip('/')}/{name}/{variant}/{now:%Y/%m/%d/%H}/"
            f"{now:%M-%S}-{now.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
        )
        _s3_write(account, region, key, (json.dumps(record) + "\n").encode())
        return answer

    SageMakerRuntimeResponse.invoke_endpoint = invoke_endpoint


PROCESSING_LOG_GROUP = "/aws/sagemaker/ProcessingJobs"


@sagemaker_patch
def sagemaker_processing_jobs_really_run():
    """CreateProcessingJob runs the container (`model-image` with the job's ContainerArguments) for real.

    moto 5.2.1 stores a processing job as Completed at once, drops its Environment and runs nothing.
    Here, as in SageMaker: the job is InProgress; each ProcessingInput's S3Input (S3Prefix: every
    object under the prefix, its key's remainder kept as the path below LocalPath; File mode) is
    downloaded; the container runs with the job's Environment and its /opt/ml moved to a private
    folder (OPT_ML; LocalPaths under /opt/ml move with it, as training jobs' do); its output goes to
    CloudWatch Logs (`/aws/sagemaker/ProcessingJobs`, stream `<job>/algo-1-<time>`); exit 0 is
    Completed, after each ProcessingOutput's LocalPath is uploaded under its S3Uri; otherwise Failed
    with ExitMessage (the first KB of /opt/ml/output/message) and FailureReason `AlgorithmError: ...`.
    A duplicate name is `ResourceInUse`.
    """
    from moto.core.utils import utcnow
    from moto.sagemaker.exceptions import ResourceInUseException
    from moto.sagemaker.responses import SageMakerResponse

    def local(opt_ml, path):
        if not path.startswith("/opt/ml/"):
            raise ValueError(f"LocalPath {path} is not under /opt/ml/ (the only paths the emulator maps)")
        return os.path.join(opt_ml, path[len("/opt/ml/") :])

    def download(account, region, uri, target):
        bucket_name, prefix = _split_s3_uri(uri)
        s3 = _s3_backend(account, region)
        try:
            keys = sorted(k for k in list(s3.get_bucket(bucket_name).keys.keys()) if k.startswith(prefix))
        except Exception:
            keys = []
        os.makedirs(target, exist_ok=True)
        for key in keys:
            obj = s3.get_object(bucket_name, key)
            if key.endswith("/") or obj is None or not hasattr(obj, "value"):
                continue
            relative = key[len(prefix) :].lstrip("/") or posixpath.basename(key)
            path = os.path.normpath(os.path.join(target, relative))
            if not path.startswith(target + os.sep):
                continue
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as file:
                file.write(obj.value)

    def upload(account, region, folder, uri):
        for root, _, files in os.walk(folder):
            for file_name in files:
                path = os.path.join(root, file_name)
                relative = os.path.relpath(path, folder).replace(os.sep, "/")
                with open(path, "rb") as file:
                    _s3_write(account, region, uri.rstrip("/") + "/" + relative, file.read())

    def run(account, region, job, environment):
        name = job.processing_job_name
        started = time.monotonic()
        opt_ml = tempfile.mkdtemp(prefix=f"processing-{name}-", dir=SAGEMAKER.root)
        failure, exit_message = None, None
        try:
            for item in job.processing_inputs or []:
                source = item.get("S3Input") or {}
                download(account, region, source["S3Uri"], local(opt_ml, source["LocalPath"]))
            outputs = (job.processing_output_config or {}).get("Outputs") or []
            for item in outputs:
                os.makedirs(local(opt_ml, (item.get("S3Output") or {})["LocalPath"]), exist_ok=True)
            log = LogStream(account, region, PROCESSING_LOG_GROUP, f"{name}/algo-1-{int(time.time())}")
            arguments = (job.app_specification or {}).get("ContainerArguments") or []
            env = {str(k): str(v) for k, v in environment.items()}
            env["OPT_ML"] = opt_ml
            process = SAGEMAKER.spawn([SAGEMAKER.model_image, *arguments], env)
            for raw in process.stdout:
                log.write(raw.decode("utf-8", "replace").rstrip("\r\n"))
            code = process.wait()
            SAGEMAKER.terminate(process)
            if code == 0:
                for item in outputs:
                    target = item.get("S3Output") or {}
                    upload(account, region, local(opt_ml, target["LocalPath"]), target["S3Uri"])
            else:
                try:
                    with open(os.path.join(opt_ml, "output", "message"), encoding="utf-8", errors="replace") as file:
                        exit_message = file.read(1024).strip() or None
                except OSError:
                    exit_message = None
                failure = f"AlgorithmError: {exit_message or f'the container exited with code {code}'}"
        except Exception as error:
            failure = f"ClientError: {error}"
        SAGEMAKER.hold(started)
        with SAGEMAKER.lock:
            job.processing_job_status = "Failed" if failure else "Completed"
            job.failure_reason = failure
            job.exit_message = exit_message
            job.processing_end_time = job.last_modified_time = utcnow()
        shutil.rmtree(opt_ml, ignore_errors=True)

    def create_processing_job(self):
        name = self._get_param("ProcessingJobName")
        backend = self.sagemaker_backend
        if name in backend.processing_jobs:
            raise ResourceInUseException(f"Processing job names must be unique within an AWS account and region, and a processing job with this name already exists ({name})")
        job = backend.create_processing_job(
            app_specification=self._get_param("AppSpecification"),
            experiment_config=self._get_param("ExperimentConfig"),
            network_config=self._get_param("NetworkConfig"),
            processing_inputs=self._get_param("ProcessingInputs"),
            processing_job_name=name,
            processing_output_config=self._get_param("ProcessingOutputConfig"),
            role_arn=self._get_param("RoleArn"),
            stopping_condition=self._get_param("StoppingCondition"),
            tags=self._get_param("Tags"),
        )
        environment = self._get_param("Environment") or {}
        with SAGEMAKER.lock:
            job.processing_job_status = "InProgress"
            job.processing_end_time = None
            job.environment = environment
            job.processing_resources = self._get_param("ProcessingResources")
        threading.Thread(
            target=run, args=(backend.account_id, backend.region_name, job, environment),
            name=f"processing-{name}", daemon=True,
        ).start()
        from moto.core.responses import ActionResult

        return ActionResult({"ProcessingJobArn": job.arn})

    SageMakerResponse.create_processing_job = create_processing_job


@sagemaker_patch
def sagemaker_async_endpoints_invoke_from_s3():
    """InvokeEndpointAsync queues the request and the endpoint's `model-image serve` answers it into S3.

    moto 5.2.1 answers InvokeEndpointAsync with canned locations and writes nothing. Here, as in
    SageMaker: the endpoint must be invocable and its config must have an AsyncInferenceConfig
    (otherwise ValidationError); the answer is 202 with the InferenceId (the caller's, or a new UUID)
    and the OutputLocation (`<S3OutputPath><id>.out`) and FailureLocation
    (`<S3FailurePath><id>-error.out`) headers; a background worker reads the InputLocation object from
    moto's S3, posts it with the request's content type and accept to the serving process (at most
    MaxConcurrentInvocationsPerInstance times the instance count at once; the rest wait in the queue)
    and writes a 2xx body to the output location, or the container's error (or a missing input, or no
    answer) to the failure location. DescribeEndpoint reports the config's AsyncInferenceConfig, and
    CreateEndpointConfig refuses one beside a serverless variant, as SageMaker does. Payloads pass
    through the emulator's memory (moto's S3 keeps objects there): the emulator proves the protocol,
    model-image's own tests prove the container's bounded memory on big bodies.
    """
    import http.client
    import uuid

    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.models import SageMakerModelBackend, sagemaker_backends
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

    original_describe = SageMakerModelBackend.describe_endpoint
    original_create_config = SageMakerModelBackend.create_endpoint_config

    def describe_endpoint(self, endpoint_name):
        response = dict(original_describe(self, endpoint_name))
        config = self.endpoint_configs.get(response.get("EndpointConfigName"))
        if config is not None and config.async_inference_config:
            response["AsyncInferenceConfig"] = config.async_inference_config
        return response

    def create_endpoint_config(self, endpoint_config_name, **kwargs):
        variants = kwargs.get("production_variants") or []
        if kwargs.get("async_inference_config") and any(v.get("ServerlessConfig") for v in variants):
            raise ValidationError(
                message="AsyncInferenceConfig is not supported for endpoint configurations with "
                "serverless production variants."
            )
        return original_create_config(self, endpoint_config_name, **kwargs)

    queues = {}  # (account, region, endpoint) -> threading.BoundedSemaphore

    def error(status, code, message):
        body = json.dumps({"__type": code, "Message": message})
        return status, {"status": status, "Content-Type": "application/json", "x-amzn-ErrorType": code}, body

    def work(account, region, name, serving, request, slots):
        with slots:
            answer, failure = None, None
            try:
                payload = _s3_read(account, region, request["input"])
            except Exception:
                failure = f"The input object {request['input']} could not be read."
            if failure is None:
                headers = {"Content-Type": request["content_type"]}
                if request["accept"]:
                    headers["Accept"] = request["accept"]
                try:
                    connection = http.client.HTTPConnection("127.0.0.1", serving.port, timeout=request["timeout"])
                    connection.request("POST", "/invocations", body=payload, headers=headers)
                    response = connection.getresponse()
                    body = response.read()
                    connection.close()
                    if 200 <= response.status < 300:
                        answer = body
                    else:
                        text = body.decode("utf-8", "replace")
                        failure = f'Received client error ({response.status}) from primary with message "{text}".'
                except OSError as problem:
                    failure = f"The model container did not answer within the invocation timeout ({problem})."
            if answer is not None:
                _s3_write(account, region, request["output"], answer)
            else:
                _s3_write(account, region, request["failure"], failure.encode())

    def invoke_endpoint_async(self):
        match = re.match(r"^/endpoints/([^/]+)/async-invocations$", self.path)
        name = urllib.parse.unquote(match.group(1)) if match else ""
        account, region = self.current_account, self.region
        backend = sagemaker_backends[account][region]
        with SAGEMAKER.lock:
            endpoint = backend.endpoints.get(name)
            runtime = SAGEMAKER.endpoints.get((account, region, name))
            serving = runtime.serving if runtime else None
            status = endpoint.endpoint_status if endpoint else None
            config = backend.endpoint_configs.get(endpoint.endpoint_config_name) if endpoint else None
        if serving is None or status not in INVOCABLE_STATUSES:
            return error(400, "ValidationError", f"Endpoint {name} of account {account} not found.")
        inference = (config.async_inference_config if config else None) or {}
        if not inference:
            return error(400, "ValidationError", f"Endpoint {name} of account {account} is not an asynchronous endpoint.")
        input_location = self.headers.get("X-Amzn-SageMaker-InputLocation") or ""
        if not input_location.startswith("s3://"):
            return error(400, "ValidationError", "InputLocation must be an S3 URI (s3://bucket/key).")
        inference_id = self.headers.get("X-Amzn-SageMaker-Inference-Id") or str(uuid.uuid4())
        output = inference.get("OutputConfig") or {}
        output_location = f"{output.get('S3OutputPath', '')}{inference_id}.out"
        failure_location = f"{output.get('S3FailurePath', output.get('S3OutputPath', ''))}{inference_id}-error.out"
        per_instance = (inference.get("ClientConfig") or {}).get("MaxConcurrentInvocationsPerInstance") or 4
        instances = 1
        variants = config.production_variants if config else []
        if variants and variants[0].get("InitialInstanceCount"):
            instances = int(variants[0]["InitialInstanceCount"])
        with SAGEMAKER.lock:
            slots = queues.setdefault((account, region, name, per_instance * instances),
                                      threading.BoundedSemaphore(per_instance * instances))
        request = {
            "input": input_location,
            "output": output_location,
            "failure": failure_location,
            "content_type": self.headers.get("X-Amzn-SageMaker-Content-Type") or "application/octet-stream",
            "accept": self.headers.get("X-Amzn-SageMaker-Accept"),
            "timeout": int(self.headers.get("X-Amzn-SageMaker-InvocationTimeoutSeconds") or 900),
        }
        threading.Thread(
            target=work, args=(account, region, name, serving, request, slots),
            name=f"async-{name}-{inference_id}", daemon=True,
        ).start()
        headers = {
            "Content-Type": "application/json",
            "X-Amzn-SageMaker-OutputLocation": output_location,
            "X-Amzn-SageMaker-FailureLocation": failure_location,
        }
        return 202, headers, json.dumps({"InferenceId": inference_id})

    SageMakerModelBackend.describe_endpoint = describe_endpoint
    SageMakerModelBackend.create_endpoint_config = create_endpoint_config
    SageMakerRuntimeResponse.invoke_endpoint_async = invoke_endpoint_async


# Test endpoints (/_testbed/...) ------------------------------------------------------------------


def _sagemaker_control(method, path, body):
    """The SageMaker emulation's `/_testbed/` endpoints: (HTTP status, JSON-able answer) or None."""
    if path not in ("/_testbed/faults", "/_testbed/faults/reset", "/_testbed/endpoints", "/_testbed/training-jobs"):
        return None
    if not SAGEMAKER.enabled:
        return 404, {"error": "SageMaker is not emulated: the launcher was started without --model-image"}
    if path == "/_testbed/faults" and method == "POST":
        try:
            request = json.loads(body or b"{}")
            reason = request.pop("reason", None)
            if len(request) != 1:
                raise ValueError("name exactly one fault")
            ((kind, name),) = request.items()
            if kind not in FAULT_KINDS or not isinstance(name, str) or not name:
                raise ValueError(f"unknown fault {kind!r}; known: {sorted(FAULT_KINDS)}")
        except ValueError as problem:
            return 400, {"error": str(problem)}
        with SAGEMAKER.lock:
            SAGEMAKER.faults[kind][name] = reason or FAULT_KINDS[kind][1]
        return 200, {}
    if path == "/_testbed/faults" and method == "GET":
        with SAGEMAKER.lock:
            return 200, {kind: dict(faults) for kind, faults in SAGEMAKER.faults.items()}
    if path == "/_testbed/faults/reset" and method == "POST":
        with SAGEMAKER.lock:
            for faults in SAGEMAKER.faults.values():
                faults.clear()
        return 200, {}
    if path == "/_testbed/endpoints" and method == "GET":
        from moto.sagemaker.models import sagemaker_backends

        answer = []
        with SAGEMAKER.lock:
            for (account, region, name), runtime in sorted(SAGEMAKER.endpoints.items()):
                endpoint = sagemaker_backends[account][region].endpoints.get(name)
                if endpoint is None:
                    continue
                serving = runtime.serving
                answer.append(
                    {
                        "account": account,
                        "region": region,
                        "name": name,
                        "status": endpoint.endpoint_status,
                        "endpoint_config": endpoint.endpoint_config_name,
                        "url": serving.url if serving else None,
                        "serving_config": serving.config_name if serving else None,
                        "pid": serving.process.pid if serving else None,
                        # During a blue/green rollout: phase (creating, activating_traffic, baking,
                        # final_bake, rolling_back), step of steps, the share of invocations on the
                        # new config (traffic_percent), the green fleet's URL, config and pid.
                        "rollout": dict(runtime.rollout) if runtime.rollout else None,
                    }
                )
        return 200, answer
    if path == "/_testbed/training-jobs" and method == "GET":
        with SAGEMAKER.lock:
            answer = [
                {
                    "account": account,
                    "region": region,
                    "name": name,
                    "status": run.job.training_job_status,
                    "pid": run.process.pid if run.process else None,
                    "running": bool(run.process and run.process.poll() is None),
                }
                for (account, region, name), run in sorted(SAGEMAKER.trainings.items())
            ]
        return 200, answer
    return 405, {"error": f"{method} is not allowed on {path}"}


# --- Request log ---------------------------------------------------------------------------------

def _xml_escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/([^/]+)/aws4_request")


class RequestLog:
    """WSGI middleware recording every AWS request, so tests can count calls at the server side.

    Each entry: `method`, `path`, `query` (raw), `target` (the `X-Amz-Target` header), `service` (the
    SigV4 credential scope's service), `protocol` (`json`, `query` or `rest`) and `action`:
      - JSON protocol (ECR, SageMaker, CloudWatch Logs, Application Auto Scaling): the operation in
        `X-Amz-Target` (`CreateRepository`);
      - query protocol (IAM, STS): the `Action` parameter, from the form body or the query string;
      - REST (S3, sagemaker-runtime): `METHOD path` and the query's parameter names (`PUT /bucket/?policy`,
        `POST /endpoints/NAME/invocations`; sagemaker-runtime signs as `sagemaker`).
    moto's own `/moto-api/` and the `/_testbed/` endpoints are not recorded.

    Every recorded request is also checked against AWS's service models (`request_check`): the entry
    gets `operation` (`service:Operation`) and `violations`; a request with violations is answered
    with HTTP 400 as AWS would answer it, and the count of checked requests and every violation are
    kept in the violations file.
    """

    def __init__(self, app, violations_file):
        self.app = app
        self.lock = threading.Lock()
        self.entries = []
        self.violations_file = violations_file
        self.checked = 0
        self.violations = []

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_testbed/"):
            return self.control(environ, start_response, path)
        if path.startswith("/moto-api"):
            return self.app(environ, start_response)
        body = self.body(environ)
        entry = self.describe(environ, path, body)
        value = None
        try:
            service, operation, value, violations = request_check.check_request(environ, body, entry["service"])
        except Exception as error:  # a checker bug must fail the test, not pass the request unchecked
            service, operation = entry["service"], entry["action"]
            violations = [f"the testbed could not check it: {type(error).__name__}: {error}"]
        entry["operation"] = f"{service}:{operation}"
        entry["violations"] = violations
        with self.lock:
            self.entries.append(entry)
            self.checked += 1
            self.write_counts(entry if violations else None)
        if violations:
            return self.reject(environ, start_response, entry, violations)
        raw_target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        raw_headers = werkzeug.datastructures.EnvironHeaders(dict(environ))
        iam_policy_check.set_current_request(service, operation, value, raw_target, body, raw_headers)
        try:
            return self.app(environ, start_response)
        finally:
            iam_policy_check.clear_current_request()

    def write_counts(self, violating):
        """Keeps `violations_file` current: the requests checked and every violation so far (read by
        the Rust side when the server stops, so a violation fails the test even if the code under
        test swallowed the error)."""
        if violating is not None:
            self.violations.append({"operation": violating["operation"], "violations": violating["violations"]})
        document = {"checked": self.checked, "violations": self.violations, "models": request_check.versions()}
        partial = self.violations_file + ".partial"
        with open(partial, "w") as file:
            json.dump(document, file)
        os.replace(partial, self.violations_file)

    @staticmethod
    def reject(environ, start_response, entry, violations):
        """Answers as AWS answers a request that fails validation (HTTP 400), in the protocol's format."""
        message = (
            f"testbed: AWS would reject {entry['operation']}: {'; '.join(violations)} "
            f"(botocore {request_check.versions()['botocore']} service model)"
        )
        if entry["protocol"] == "json":
            body = json.dumps({"__type": "ValidationException", "message": message}).encode()
            headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", "ValidationException")]
        elif entry["protocol"] == "query":
            body = (
                "<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code>"
                f"<Message>{_xml_escape(message)}</Message></Error><RequestId>testbed</RequestId></ErrorResponse>"
            ).encode()
            headers = [("Content-Type", "text/xml")]
        elif entry["service"] == "s3":
            body = (
                f"<Error><Code>InvalidArgument</Code><Message>{_xml_escape(message)}</Message>"
                "<RequestId>testbed</RequestId></Error>"
            ).encode()
            headers = [("Content-Type", "application/xml")]
        else:
            body = json.dumps({"message": message}).encode()
            headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", "ValidationError")]
        if environ.get("REQUEST_METHOD") == "HEAD":
            body = b""
        start_response("400 Bad Request", headers + [("Content-Length", str(len(body)))])
        return [body]

    def control(self, environ, start_response, path):
        method = environ.get("REQUEST_METHOD", "GET")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request_body = environ["wsgi.input"].read(length) if length else b""
        answer = _sagemaker_control(method, path, request_body)
        if answer is not None:
            status, document = answer
            data = json.dumps(document, default=str).encode()
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}[status]
            start_response(
                f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
            )
            return [data]
        if path == "/_testbed/requests" and method == "GET":
            with self.lock:
                body = json.dumps(self.entries)
        elif path == "/_testbed/requests/reset" and method == "POST":
            with self.lock:
                self.entries = []
            body = "{}"
        elif path == "/_testbed/check" and method == "POST":
            request = json.loads(request_body or b"{}")
            violations = request_check.check_params(request["service"], request["operation"], request["params"])
            if request.get("partial"):
                violations = [v for v in violations if not v.endswith("required member is missing")]
            body = json.dumps({"violations": violations})
        elif path == "/_testbed/iam/admin" and method == "GET":
            body = json.dumps(IAM_ADMIN or None)
        elif path == "/_testbed/iam/denials/take" and method == "POST":
            body = json.dumps(iam_policy_check.take_denials())
        elif path == "/_testbed/iam/allowed/take" and method == "POST":
            body = json.dumps(iam_policy_check.take_allowed())
        elif path == "/_testbed/violations/take" and method == "POST":
            with self.lock:
                self.violations = []
                self.write_counts(None)
            body = "{}"
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"unknown testbed endpoint\n"]
        data = body.encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    @staticmethod
    def body(environ):
        """The request body, read and put back for moto to read again."""
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH")
        if length:
            body = stream.read(int(length))
        elif environ.get("wsgi.input_terminated"):
            body = stream.read()
        else:
            return b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return body

    def describe(self, environ, path, body):
        method = environ.get("REQUEST_METHOD", "GET")
        query = environ.get("QUERY_STRING", "")
        target = environ.get("HTTP_X_AMZ_TARGET")
        authorization = environ.get("HTTP_AUTHORIZATION", "") + " Credential=" + urllib.parse.unquote(
            dict(urllib.parse.parse_qsl(query)).get("X-Amz-Credential", "")
        )
        scope = _CREDENTIAL_SCOPE.search(authorization)
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        is_form = environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded")
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"))) if is_form else {}
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


def _exit(code=0):
    """Stops every process the SageMaker emulation started, then exits at once."""
    try:
        SAGEMAKER.shutdown()
    finally:
        sys.stdout.flush()
        os._exit(code)


def _exit_on_stdin_eof():
    sys.stdin.buffer.read()
    _exit(0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", required=True, help="where the bound port is written")
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    parser.add_argument(
        "--violations-file",
        required=True,
        help="where the count of checked requests and every service-model violation are kept",
    )
    parser.add_argument(
        "--model-image",
        default=os.environ.get("TESTBED_MODEL_IMAGE"),
        help="emulate SageMaker with this model-image binary (default: $TESTBED_MODEL_IMAGE)",
    )
    args = parser.parse_args(argv)

    for function in PATCHES:
        function()
    if args.model_image:
        SAGEMAKER.configure(args.model_image)
        for function in SAGEMAKER_PATCHES:
            function()

    # What moto.server.main does, with a server object so that port 0 can be resolved.
    from werkzeug.serving import make_server

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    server = make_server(args.host, args.port, RequestLog(app, args.violations_file), threaded=True)
    os.environ["MOTO_PORT"] = str(server.port)
    signal.signal(signal.SIGTERM, lambda *_: _exit(0))
    signal.signal(signal.SIGINT, lambda *_: _exit(0))
    partial = args.port_file + ".partial"
    with open(partial, "w") as file:
        file.write(f"{server.port}\n")
    os.replace(partial, args.port_file)
    if args.exit_on_stdin_eof:
        threading.Thread(target=_exit_on_stdin_eof, daemon=True).start()
    emulating = f", SageMaker emulated with {SAGEMAKER.model_image}" if SAGEMAKER.enabled else ""
    print(f"moto_launcher: moto {moto.__version__} on http://{args.host}:{server.port}{emulating}", flush=True)
    try:
        server.serve_forever()
    finally:
        _exit(0)


if __name__ == "__main__":
    main()
