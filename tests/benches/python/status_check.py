"""The reference for `cargo bench -p orchestrate-e2e --bench aws_noop`: the status check a user writes
with boto3 (the SageMaker Python SDK's own client library) when they glue a deployment together by
hand: describe each resource of the deployment, one call after another, and compare with what they
expect. Same resources and settings as `orchestrate status` checks.

Usage: python3 status_check.py NAME REGION ACCOUNT   (AWS_ENDPOINT_URL etc. from the environment)
Prints the number of differences found (0 on a converged deployment).
"""

import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def main() -> int:
    name, region, account = sys.argv[1:4]
    bucket = f"{name}-{account}-{region}"
    role = f"{name}-sagemaker-execution"
    repository = f"{name}-model-image"
    s3 = boto3.client("s3", region_name=region, config=Config(s3={"addressing_style": "path"}))
    iam = boto3.client("iam", region_name=region)
    ecr = boto3.client("ecr", region_name=region)
    sm = boto3.client("sagemaker", region_name=region)
    scaling = boto3.client("application-autoscaling", region_name=region)
    differences = 0

    s3.head_bucket(Bucket=bucket)
    try:
        s3.get_bucket_versioning(Bucket=bucket)
    except Exception:  # moto's answer is not parseable by every client either
        pass
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    differences += rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] != "AES256"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    differences += not all(block.values())
    differences += "SecureTransport" not in s3.get_bucket_policy(Bucket=bucket)["Policy"]
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    differences += tags.get("orchestrate:deployment") != name
    differences += s3.list_objects_v2(Bucket=bucket, Prefix="data/")["KeyCount"] == 0

    differences += "sagemaker" not in str(iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"])
    iam.get_role_policy(RoleName=role, PolicyName="orchestrate")
    iam.list_role_tags(RoleName=role)

    repo = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]
    differences += repo["imageTagMutability"] != "IMMUTABLE"
    differences += len(ecr.describe_images(repositoryName=repository)["imageDetails"]) == 0

    jobs = sm.list_training_jobs(NameContains=name, SortBy="CreationTime", SortOrder="Descending")
    job = sm.describe_training_job(TrainingJobName=jobs["TrainingJobSummaries"][0]["TrainingJobName"])
    differences += job["TrainingJobStatus"] != "Completed"
    endpoint = sm.describe_endpoint(EndpointName=name)
    differences += endpoint["EndpointStatus"] != "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    differences += job["TrainingJobName"] not in model["PrimaryContainer"]["ModelDataUrl"]
    resource = f"endpoint/{name}/variant/AllTraffic"
    targets = scaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource])
    differences += len(targets["ScalableTargets"]) == 0
    scaling.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource)
    print(differences)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ClientError as error:
        print(f"status check failed: {error}", file=sys.stderr)
        sys.exit(1)
