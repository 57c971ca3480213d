"""S3's `ExpectedBucketOwner` for the launcher (moto_launcher.py registers the patch below).

S3 refuses a request carrying `x-amz-expected-bucket-owner` with 403 AccessDenied "Access Denied" when
the bucket belongs to another account; moto 5.2.1 ignores the header. orchestrate sends it on every
call on its data bucket, so that a bucket of the same name created by another account (after a
`down` deleted ours: bucket sniping) is never read or written. A bucket that does not exist still
answers NoSuchBucket, as on S3.

moto keeps buckets per account (`s3_backends[account][partition]`) in one namespace, with a global
map of bucket name to (partition, account): the owner is looked up there. The account a request acts
as is moto's: the access key's (an STS AssumeRole into another account's role ARN gives keys of that
account).
"""


def s3_expected_bucket_owner_is_enforced():
    """S3 `x-amz-expected-bucket-owner`: a bucket owned by another account is 403 AccessDenied."""
    from moto.s3.exceptions import S3AccessDeniedError
    from moto.s3.models import s3_backends
    from moto.s3.responses import S3Response

    def checked(respond):
        def response(self, request, full_url):
            expected = request.headers.get("x-amz-expected-bucket-owner")
            if expected is not None:
                owner = s3_backends.bucket_accounts.get(self.parse_bucket_name_from_url(request, full_url))
                if owner is not None and owner[1] != expected:
                    raise S3AccessDeniedError()
            return respond(self, request, full_url)

        return response

    # Both run inside moto's handlers, which answer an S3 error raised here in S3's format.
    S3Response._bucket_response = checked(S3Response._bucket_response)
    S3Response._key_response = checked(S3Response._key_response)
