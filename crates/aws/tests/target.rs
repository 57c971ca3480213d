//! The AWS target's first half (bucket, training data, role, repository, image) driven by the real
//! engine against moto and a Docker registry on loopback: `up` from nothing, every setting checked
//! through the AWS APIs and skopeo (not through our own `observe`), a no-op second `up` that makes no
//! mutating call, a rebuilt unchanged binary that pushes nothing, out-of-band edits reported and
//! repaired, the lock, and `down` leaving nothing behind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws::AwsTarget;
use aws::lock::LockError;
use engine::desired::DEPLOYMENT_TAG;
use engine::progress::Silent;
use engine::{Change, DesiredState, Kind, Plan, executor};
use serde_json::Value;
use testbed::{Moto, Registry, mutating, skopeo_inspect};

const REGION: &str = "eu-west-1";
const PART_ONE: [Kind; 5] = [
    Kind::Bucket,
    Kind::TrainingData,
    Kind::Role,
    Kind::Repository,
    Kind::Image,
];

/// A deployment folder: deploy.yaml, a training file, and a stand-in "model-image" binary (any
/// real ELF executable: the image crate ships whatever it is given).
struct Deployment {
    dir: tempfile::TempDir,
}

impl Deployment {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("train.csv"),
            "Flow_Duration,Label\n1,Normal\n2,Anomaly\n",
        )
        .unwrap();
        let deployment = Deployment { dir };
        deployment.copy_binary();
        deployment
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn binary(&self) -> PathBuf {
        self.path().join("model-image")
    }

    /// (Re)writes the stand-in binary: same bytes, new file (a rebuild of an unchanged binary).
    fn copy_binary(&self) {
        let _ = std::fs::remove_file(self.binary());
        std::fs::copy("/bin/true", self.binary()).expect("copy /bin/true");
    }

    fn spec(&self) -> spec::Spec {
        let yaml = format!(
            "version: 1\nname: iot-aws\ntarget: aws\nregion: {REGION}\ntags: {{team: ml}}\n\
             data: {{train: train.csv}}\n"
        );
        std::fs::write(self.path().join("deploy.yaml"), &yaml).unwrap();
        spec::parse(&yaml, "deploy.yaml", self.path()).unwrap_or_else(|e| panic!("{e:?}"))
    }
}

/// The first half of the desired state: what this build applies on AWS.
fn part_one(target: &AwsTarget, spec: &spec::Spec) -> DesiredState {
    let digest = target.image_digest().expect("image digest");
    let facts = target.facts(&digest).expect("facts");
    let mut state = engine::desired_state(spec, spec::Target::Aws, &facts);
    state.resources.retain(|d| PART_ONE.contains(&d.kind()));
    state
}

async fn plan(target: &AwsTarget, state: &DesiredState) -> Plan {
    executor::plan(target, state, &Silent).await.expect("plan")
}

fn change(plan: &Plan, kind: Kind) -> &Change {
    &plan.step(kind).unwrap_or_else(|| panic!("no {kind} step")).change
}

async fn servers() -> Option<(Moto, Registry, aws::Clients)> {
    let moto = Moto::start().await?;
    let clients = aws::Clients::from_config(&moto.sdk_config(REGION).await, |_| None);
    // The registry accepts exactly what ECR's GetAuthorizationToken hands out.
    let token = clients.ecr.get_authorization_token().send().await.unwrap();
    let (user, password) = token.authorization_data()[0]
        .authorization_token()
        .and_then(aws::ecr_image::decode_token)
        .expect("a token");
    let registry = Registry::start(&user, &password).await?;
    Some((moto, registry, clients))
}

fn tag_value<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>, key: &str) -> Option<String> {
    pairs
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_creates_verifies_repairs_and_down_removes_the_first_half() {
    let Some((moto, registry, clients)) = servers().await else {
        return;
    };
    let deployment = Deployment::new();
    let spec = deployment.spec();
    let target = AwsTarget::with_clients(&spec, &deployment.binary(), clients.clone())
        .await
        .expect("open")
        .with_registry(Some(registry.address()));
    let state = part_one(&target, &spec);
    let bucket = target.bucket();
    assert_eq!(bucket, format!("iot-aws-{}-{REGION}", target.account()));

    // Up from nothing: everything is created.
    let first = plan(&target, &state).await;
    for kind in PART_ONE {
        assert!(
            matches!(change(&first, kind), Change::Create),
            "{kind}: {first:?}"
        );
    }
    executor::up(&target, &state, &first, None, &Silent)
        .await
        .expect("up");

    // The bucket, through S3's API.
    let s3 = &clients.s3;
    let encryption = s3.get_bucket_encryption().bucket(&bucket).send().await.unwrap();
    let rule = &encryption.server_side_encryption_configuration().unwrap().rules()[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .unwrap()
            .sse_algorithm()
            .as_str(),
        "AES256"
    );
    let block = s3.get_public_access_block().bucket(&bucket).send().await.unwrap();
    let block = block.public_access_block_configuration().unwrap();
    assert_eq!(
        (
            block.block_public_acls(),
            block.ignore_public_acls(),
            block.block_public_policy(),
            block.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    let policy = s3.get_bucket_policy().bucket(&bucket).send().await.unwrap();
    let policy: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    assert_eq!(policy["Statement"][0]["Effect"], "Deny");
    assert_eq!(
        policy["Statement"][0]["Condition"]["Bool"]["aws:SecureTransport"],
        "false"
    );
    let tagging = s3.get_bucket_tagging().bucket(&bucket).send().await.unwrap();
    let bucket_tags = tagging.tag_set().iter().map(|t| (t.key(), t.value()));
    assert_eq!(tag_value(bucket_tags, DEPLOYMENT_TAG).as_deref(), Some("iot-aws"));

    // The training data, under its content-hash key, versioned (a real version id, not "null").
    // (The resource's name is its key prefix.)
    let data = state.get(Kind::TrainingData).unwrap();
    assert!(
        data.name.starts_with("data/") && data.name.ends_with("/train/"),
        "{}",
        data.name
    );
    let key = format!("{}train.csv", data.name);
    let object = s3.get_object().bucket(&bucket).key(&key).send().await.unwrap();
    let version = object.version_id().map(str::to_string);
    let body = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(
        &body[..],
        std::fs::read(deployment.path().join("train.csv")).unwrap()
    );
    assert!(version.is_some_and(|v| v != "null"), "versioning is on");

    // The role, through IAM's API: trusted by SageMaker only, its policy scoped.
    let iam = &clients.iam;
    let role_name = spec.role_name();
    let role = iam.get_role().role_name(&role_name).send().await.unwrap();
    let trust = aws::iam_role::decode_document(role.role().unwrap().assume_role_policy_document().unwrap());
    assert!(trust.contains("sagemaker.amazonaws.com"), "{trust}");
    let inline = iam
        .get_role_policy()
        .role_name(&role_name)
        .policy_name(aws::iam_role::POLICY_NAME)
        .send()
        .await
        .unwrap();
    let inline: Value =
        serde_json::from_str(&aws::iam_role::decode_document(inline.policy_document())).unwrap();
    for statement in inline["Statement"].as_array().unwrap() {
        let actions = statement["Action"].to_string();
        if actions.contains("s3:") || actions.contains("ecr:Batch") {
            assert_ne!(statement["Resource"], "*", "{statement}");
        }
    }
    assert!(inline.to_string().contains(&format!("arn:aws:s3:::{bucket}")));
    let attached = iam
        .list_attached_role_policies()
        .role_name(&role_name)
        .send()
        .await
        .unwrap();
    assert!(attached.attached_policies().is_empty(), "no managed policy");

    // The repository and the image, through ECR's API and the registry (skopeo).
    let ecr = &clients.ecr;
    let repository = spec.repository_name();
    let described = ecr
        .describe_repositories()
        .repository_names(&repository)
        .send()
        .await
        .unwrap();
    let repo = &described.repositories()[0];
    assert_eq!(repo.image_tag_mutability().unwrap().as_str(), "IMMUTABLE");
    assert!(repo.image_scanning_configuration().unwrap().scan_on_push());
    // The image resource is named by its digest.
    let digest = state.get(Kind::Image).unwrap().name.clone();
    assert_eq!(digest, target.image_digest().unwrap().as_str());
    let images = ecr
        .list_images()
        .repository_name(&repository)
        .send()
        .await
        .unwrap();
    let digests: Vec<&str> = images
        .image_ids()
        .iter()
        .filter_map(|i| i.image_digest())
        .collect();
    assert_eq!(digests, [digest.as_str()]);
    let inspected = skopeo_inspect(
        &format!("{}/{repository}@{digest}", registry.host()),
        registry.user(),
        registry.password(),
        false,
    )
    .await;
    assert_eq!(inspected["Digest"], digest.as_str());

    // A second up: nothing to do, and not one mutating call or blob upload to find that out.
    moto.reset_requests().await;
    let uploads_before = registry
        .requests()
        .await
        .iter()
        .filter(|r| r.is_blob_upload())
        .count();
    let second = plan(&target, &state).await;
    assert!(second.is_noop(), "{}", second.render());
    executor::up(&target, &state, &second, None, &Silent)
        .await
        .expect("no-op up");
    let requests = moto.requests().await;
    assert!(!requests.is_empty(), "the plan read the resources");
    assert!(mutating(&requests).is_empty(), "{:#?}", mutating(&requests));

    // The same binary, written again (new file, new modification time): rebuilt to the same digest,
    // so nothing is pushed.
    deployment.copy_binary();
    let rebuilt = AwsTarget::with_clients(&spec, &deployment.binary(), clients.clone())
        .await
        .unwrap()
        .with_registry(Some(registry.address()));
    let rebuilt_state = part_one(&rebuilt, &spec);
    assert_eq!(rebuilt_state, state);
    assert!(plan(&rebuilt, &rebuilt_state).await.is_noop());
    let uploads_after = registry
        .requests()
        .await
        .iter()
        .filter(|r| r.is_blob_upload())
        .count();
    assert_eq!(uploads_before, uploads_after, "no blob uploaded again");

    // Out-of-band edits, each reported as drift of the right resource.
    s3.delete_bucket_encryption()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    s3.put_public_access_block()
        .bucket(&bucket)
        .public_access_block_configuration(
            aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
                .block_public_acls(false)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    iam.put_role_policy()
        .role_name(&role_name)
        .policy_name(aws::iam_role::POLICY_NAME)
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
        )
        .send()
        .await
        .unwrap();
    iam.untag_role()
        .role_name(&role_name)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    ecr.put_image_tag_mutability()
        .repository_name(&repository)
        .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Mutable)
        .send()
        .await
        .unwrap();
    let drifted = plan(&target, &state).await;
    let fields = |kind| match change(&drifted, kind) {
        Change::Update { fields } => fields.iter().map(|f| f.field.to_string()).collect::<Vec<_>>(),
        other => panic!("{kind}: want an update, got {other:?}"),
    };
    assert_eq!(fields(Kind::Bucket), ["encryption", "public_access_block"]);
    assert_eq!(fields(Kind::Role), ["tags", "policy"]);
    assert_eq!(fields(Kind::Repository), ["tag_mutability"]);
    assert!(matches!(change(&drifted, Kind::Image), Change::NoOp));

    // Up repairs every one of them.
    executor::up(&target, &state, &drifted, None, &Silent)
        .await
        .expect("repair");
    assert!(plan(&target, &state).await.is_noop());
    let inline = iam
        .get_role_policy()
        .role_name(&role_name)
        .policy_name(aws::iam_role::POLICY_NAME)
        .send()
        .await
        .unwrap();
    let repaired = aws::iam_role::decode_document(inline.policy_document());
    assert!(!repaired.contains(r#""s3:*""#), "the edit is gone: {repaired}");

    // A deleted image is pushed again.
    ecr.batch_delete_image()
        .repository_name(&repository)
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_digest(&digest)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let missing = plan(&target, &state).await;
    assert!(matches!(change(&missing, Kind::Image), Change::Create));
    executor::up(&target, &state, &missing, None, &Silent)
        .await
        .expect("push again");
    assert!(plan(&target, &state).await.is_noop());

    // The lock: a second run is refused while the first holds it, naming the holder.
    let hour = Duration::from_secs(3600);
    let held = target
        .lock(Some(&state), "first run", hour, false)
        .await
        .unwrap()
        .expect("the bucket exists");
    match target.lock(Some(&state), "second run", hour, false).await {
        Err(LockError::Held { owner, .. }) => assert_eq!(owner, "first run"),
        other => panic!("want the lock held, got {other:?}"),
    }
    held.release(target.clients()).await.unwrap();

    // Down removes everything, found by tag, and reports nothing left.
    let owned = engine::Target::owned(&target).await.unwrap();
    let kinds: Vec<Kind> = owned.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::Bucket,
            Kind::TrainingData,
            Kind::Role,
            Kind::Repository,
            Kind::Image
        ]
    );
    // Found by the names the desired state gives them: training data by its prefix, the image by
    // its digest.
    let names: Vec<&str> = owned.iter().map(|f| f.name.as_str()).collect();
    let wanted: Vec<&str> = state.resources.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, wanted);
    executor::down(&target, |_| false, &Silent).await.expect("down");
    assert!(
        s3.head_bucket().bucket(&bucket).send().await.is_err(),
        "bucket gone"
    );
    assert!(
        iam.get_role().role_name(&role_name).send().await.is_err(),
        "role gone"
    );
    assert!(
        ecr.describe_repositories()
            .repository_names(&repository)
            .send()
            .await
            .is_err(),
        "repository gone"
    );
    assert!(engine::Target::owned(&target).await.unwrap().is_empty());
    // Down again finds nothing, and the lock needs no bucket for that.
    assert!(target.lock(None, "down", hour, false).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_of_the_same_name_not_tagged_with_the_deployment_are_not_owned() {
    let Some((_moto, _registry, clients)) = servers().await else {
        return;
    };
    let deployment = Deployment::new();
    let spec = deployment.spec();
    let target = AwsTarget::with_clients(&spec, &deployment.binary(), clients.clone())
        .await
        .unwrap();
    let bucket = target.bucket();
    clients
        .s3
        .create_bucket()
        .bucket(&bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await
        .unwrap();
    clients
        .iam
        .create_role()
        .role_name(spec.role_name())
        .assume_role_policy_document(aws::iam_role::trust_policy().to_string())
        .send()
        .await
        .unwrap();
    clients
        .ecr
        .create_repository()
        .repository_name(spec.repository_name())
        .send()
        .await
        .unwrap();
    assert!(engine::Target::owned(&target).await.unwrap().is_empty());
    executor::down(&target, |_| false, &Silent).await.expect("down");
    assert!(
        clients.s3.head_bucket().bucket(&bucket).send().await.is_ok(),
        "not ours: kept"
    );
    assert!(
        clients
            .iam
            .get_role()
            .role_name(spec.role_name())
            .send()
            .await
            .is_ok()
    );
}
