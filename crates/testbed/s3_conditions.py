"""S3 conditional writes as AWS makes them: the condition and the write are one step.

moto 5.2.1 checks `If-Match` and `If-None-Match: *` of PutObject and `If-Match` of DeleteObject as
AWS does (412 PreconditionFailed on a mismatch, 404 NoSuchKey for `If-Match` on a missing object),
but in a step of its own before the write, on a threaded server: two conditional writes of one
object can both pass the check and both succeed. AWS evaluates the condition atomically with the
write, and answers a conditional write that meets another write of the same object still in flight
with 409 ConditionalRequestConflict (PutObject's API reference: "If a conflicting operation occurs
during the upload S3 returns a 409 ConditionalRequestConflict response. On a 409 failure you should
fetch the object's ETag and retry the upload."; the conditional deletes guide says the same of
DeleteObject).

`apply()` (a `@patch` of moto_launcher.py) makes the writes of each object one at a time: an
unconditional write waits for the one in flight, a conditional write that finds one in flight is
answered 409 ConditionalRequestConflict.
"""

import functools
import threading

_GUARD = threading.Lock()
# (bucket, key) -> a lock held while a write of that object runs
_WRITING = {}

_CONFLICT = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>ConditionalRequestConflict</Code><Message>A conflicting operation occurred. If using "
    b"PutObject you can retry the request. If using multipart upload you should initiate another "
    b"CreateMultipartUpload request and re-upload each part.</Message></Error>"
)


def _writing(bucket, key):
    with _GUARD:
        return _WRITING.setdefault((bucket, key), threading.Lock())


def _one_write_at_a_time(write):
    @functools.wraps(write)
    def guarded(self):
        writing = _writing(self.bucket_name, self.parse_key_name())
        conditional = bool(self.headers.get("If-Match") or self.headers.get("If-None-Match"))
        if not writing.acquire(blocking=not conditional):
            return 409, {"Content-Type": "application/xml"}, _CONFLICT
        try:
            return write(self)
        finally:
            writing.release()

    return guarded


def apply():
    """Wraps moto's PutObject and DeleteObject handlers (`S3Response.put_object`, `.delete_object`)."""
    from moto.s3.responses import S3Response

    S3Response.put_object = _one_write_at_a_time(S3Response.put_object)
    S3Response.delete_object = _one_write_at_a_time(S3Response.delete_object)
