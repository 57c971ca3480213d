//! The AWS target driven by the real engine against moto and a Docker registry on loopback.
//!
//! The first half (bucket, training data, role, repository, image): `up` from nothing, every setting
//! checked through the AWS APIs and skopeo (not through our own `observe`), a no-op second `up` that
//! makes no mutating call, a rebuilt unchanged binary that pushes nothing, out-of-band edits reported
//! and repaired, the lock, and `down` leaving nothing behind.
//!
//! Discovery of every kind through the target's `KindModules`, on moto with the testbed's SageMaker
//! emulation: each kind of a deployed stack is found (with what it uses), resources with the
//! deployment's names but not its tag are not, a failed endpoint is replaced without the target
//! waiting for its deletion, and `down` removes what is the deployment's only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws::AwsTarget;
use aws::lock::{Lease, LockError};
use aws_sdk_sagemaker::types::EndpointStatus;
use engine::desired::DEPLOYMENT_TAG;
use engine::kind::{EndpointConfigSettings, KindModules, ModelSettings, Settings};
use engine::progress::Silent;
use engine::resource::{Outputs, TrainingJobOutputs};
use engine::target::{
    Applied, DELETE_TIMEOUT, Found, KindOnTarget, LockRequest, ResourceId, Target as _, Upstream,
};
use engine::values::Tags;
use engine::{Change, DesiredState, Kind, Plan, executor};
use serde_json::Value;
use testbed::{Fault, Moto, Registry, mutating, skopeo_inspect};

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
        self.spec_with("")
    }

    /// deploy.yaml with `more` (whole lines) at its end.
    fn spec_with(&self, more: &str) -> spec::Spec {
        let yaml = format!(
            "version: 1\nname: iot-aws\ntarget: aws\nregion: {REGION}\ntags: {{team: ml}}\n\
             data: {{train: train.csv}}\n{more}"
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

/// What a run asks of the lock.
fn run_lock<'a>(state: Option<&'a DesiredState>, owner: &'a str, break_lock: bool) -> LockRequest<'a> {
    LockRequest {
        state,
        owner,
        break_lock,
    }
}

async fn plan(target: &AwsTarget, state: &DesiredState) -> Plan {
    executor::plan(target, state, &Silent).await.expect("plan")
}

fn change(plan: &Plan, kind: Kind) -> &Change {
    &plan.step(kind).unwrap_or_else(|| panic!("no {kind} step")).change
}

async fn servers() -> Option<(Moto, Registry, aws::Clients)> {
    let moto = Moto::start().await?;
    let (registry, clients) = registry_for(&moto).await?;
    Some((moto, registry, clients))
}

/// Clients of `moto` and a registry that accepts exactly what ECR's GetAuthorizationToken hands out.
async fn registry_for(moto: &Moto) -> Option<(Registry, aws::Clients)> {
    let clients = aws::Clients::from_config(&moto.sdk_config(REGION).await, |_| None);
    let token = clients.ecr.get_authorization_token().send().await.unwrap();
    let (user, password) = token.authorization_data()[0]
        .authorization_token()
        .and_then(aws::ecr_image::decode_token)
        .expect("a token");
    let registry = Registry::start(&user, &password).await?;
    Some((registry, clients))
}

/// Each kind's discovery through the target's `KindModules`, in kind order.
async fn owned_by_kind(target: &AwsTarget) -> Vec<(Kind, Vec<Found>)> {
    type Modules = AwsTarget;
    let found = vec![
        (
            Kind::Bucket,
            <Modules as KindModules>::Bucket::owned(target).await,
        ),
        (
            Kind::TrainingData,
            <Modules as KindModules>::TrainingData::owned(target).await,
        ),
        (Kind::Role, <Modules as KindModules>::Role::owned(target).await),
        (
            Kind::Repository,
            <Modules as KindModules>::Repository::owned(target).await,
        ),
        (Kind::Image, <Modules as KindModules>::Image::owned(target).await),
        (
            Kind::TrainingJob,
            <Modules as KindModules>::TrainingJob::owned(target).await,
        ),
        (Kind::Model, <Modules as KindModules>::Model::owned(target).await),
        (
            Kind::EndpointConfig,
            <Modules as KindModules>::EndpointConfig::owned(target).await,
        ),
        (Kind::Alarm, <Modules as KindModules>::Alarm::owned(target).await),
        (
            Kind::Endpoint,
            <Modules as KindModules>::Endpoint::owned(target).await,
        ),
        (
            Kind::Autoscaling,
            <Modules as KindModules>::Autoscaling::owned(target).await,
        ),
    ];
    let kinds: Vec<Kind> = found.iter().map(|(kind, _)| *kind).collect();
    assert_eq!(kinds, Kind::ALL, "every kind, once");
    found
        .into_iter()
        .map(|(kind, owned)| {
            let owned =
                owned.unwrap_or_else(|e| panic!("discover {kind}: {}", engine::target::error_chain(&e)));
            assert!(
                owned.iter().all(|f| f.kind == kind),
                "{kind} module reports {owned:?}"
            );
            (kind, owned)
        })
        .collect()
}

/// Waits (a deadline only against hanging) until SageMaker reports the endpoint in `status`.
async fn endpoint_reaches(clients: &aws::Clients, name: &str, status: EndpointStatus) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let described = clients
            .sagemaker
            .describe_endpoint()
            .endpoint_name(name)
            .send()
            .await;
        let now = described.ok().and_then(|d| d.endpoint_status().cloned());
        if now.as_ref() == Some(&status) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "endpoint `{name}` stuck in {now:?}, want {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
        .with_registry(Some(registry.address().parse().expect("a loopback registry")));
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
        .with_registry(Some(registry.address().parse().expect("a loopback registry")));
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

    // The lock, as a run takes it: a short lease (not the run's worst case), renewed while held,
    // recorded in the object; a second run is refused while the first holds it, with a message
    // naming the holder and `--break-lock`.
    let held = target
        .lock(run_lock(Some(&state), "first run", false))
        .await
        .unwrap()
        .expect("the bucket exists");
    assert_eq!(held.lease(), Lease::DEFAULT);
    let record = aws::lock::read(&clients, &bucket).await.unwrap().unwrap().record;
    assert_eq!(
        record.map(|r| (r.owner, r.lease_seconds)),
        Some(("first run".to_string(), 120))
    );
    match target.lock(run_lock(Some(&state), "second run", false)).await {
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.contains("first run") && message.contains("--break-lock"),
                "{message}"
            );
            match error.downcast_ref::<LockError>() {
                Some(LockError::Held { owner, .. }) => assert_eq!(owner, "first run"),
                other => panic!("want the lock held, got {other:?}"),
            }
        }
        Ok(other) => panic!("want the lock held, got {other:?}"),
    }
    // `--break-lock` takes it over; the first run's release then leaves the new holder's lock alone.
    let broken = target
        .lock(run_lock(Some(&state), "third run", true))
        .await
        .unwrap()
        .expect("the bucket exists");
    target.release(held).await.unwrap();
    let holder = aws::lock::read(&clients, &bucket).await.unwrap();
    assert_eq!(holder.as_ref().map(|held| held.owner()), Some("third run"));
    target.release(broken).await.unwrap();
    assert_eq!(aws::lock::read(&clients, &bucket).await.unwrap(), None);

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
    // Down again finds nothing, and the lock needs no bucket for that (nor creates one).
    assert!(
        target
            .lock(run_lock(None, "down", false))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s3.head_bucket().bucket(&bucket).send().await.is_err(),
        "no bucket made for the lock"
    );
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
    let name = spec.name.as_str();
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
    // Training data where the deployment keeps it, in the untagged bucket.
    let data_key = "data/0123456789ab/train/train.csv";
    clients
        .s3
        .put_object()
        .bucket(&bucket)
        .key(data_key)
        .body(b"a,b\n1,2\n".to_vec().into())
        .send()
        .await
        .unwrap();
    clients
        .iam
        .create_role()
        .role_name(spec.role_name())
        .assume_role_policy_document(aws::iam_role::trust_policy("123456789012").to_string())
        .send()
        .await
        .unwrap();
    let repository = spec.repository_name();
    clients
        .ecr
        .create_repository()
        .repository_name(&repository)
        .send()
        .await
        .unwrap();
    // An image in the untagged repository.
    let manifest = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#;
    let digest = image::Digest::sha256(manifest.as_bytes());
    clients
        .ecr
        .put_image()
        .repository_name(&repository)
        .image_manifest(manifest)
        .image_manifest_media_type(image::MANIFEST_MEDIA_TYPE)
        .image_tag("sha-0123456789abcdef")
        .image_digest(digest.to_string())
        .send()
        .await
        .unwrap();
    // SageMaker resources with the deployment's names, untagged: a model and an endpoint config with
    // its prefix, the endpoint named after it, and a scaling target on that endpoint.
    let prefixed = format!("{name}-0123456789ab");
    let image_uri = format!(
        "{}.dkr.ecr.{REGION}.amazonaws.com/{repository}@{digest}",
        target.account()
    );
    clients
        .sagemaker
        .create_model()
        .model_name(&prefixed)
        .execution_role_arn(aws::sagemaker::role_arn(
            target.account(),
            REGION,
            &spec.role_name(),
        ))
        .primary_container(
            aws_sdk_sagemaker::types::ContainerDefinition::builder()
                .image(&image_uri)
                .model_data_url(aws::sagemaker::model_artifact(&bucket, &format!("{prefixed}-1")))
                .build(),
        )
        .send()
        .await
        .unwrap();
    clients
        .sagemaker
        .create_endpoint_config()
        .endpoint_config_name(&prefixed)
        .production_variants(
            aws_sdk_sagemaker::types::ProductionVariant::builder()
                .variant_name(aws::sagemaker::VARIANT)
                .model_name(&prefixed)
                .instance_type(aws_sdk_sagemaker::types::ProductionVariantInstanceType::MlM5Large)
                .initial_instance_count(1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    clients
        .sagemaker
        .create_endpoint()
        .endpoint_name(name)
        .endpoint_config_name(&prefixed)
        .send()
        .await
        .unwrap();
    let autoscaling = engine::kind::AutoscalingSettings {
        min: 1,
        max: 2,
        invocations_per_instance: 100,
    };
    aws::endpoint_autoscaling::apply(&clients, name, &autoscaling)
        .await
        .unwrap();
    assert!(aws::endpoint_autoscaling::exists(&clients, name).await.unwrap());

    // Not one of them is the deployment's, by any kind's discovery.
    for (kind, owned) in owned_by_kind(&target).await {
        assert!(owned.is_empty(), "{kind}: {owned:?}");
    }
    assert!(engine::Target::owned(&target).await.unwrap().is_empty());
    let down = executor::down(&target, |_| false, &Silent).await.expect("down");
    assert!(down.deleted.is_empty(), "{:?}", down.deleted);
    // Not ours: all kept.
    assert!(
        clients.s3.head_bucket().bucket(&bucket).send().await.is_ok(),
        "not ours: kept"
    );
    assert!(
        clients
            .s3
            .head_object()
            .bucket(&bucket)
            .key(data_key)
            .send()
            .await
            .is_ok()
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
    let images = clients
        .ecr
        .list_images()
        .repository_name(&repository)
        .send()
        .await
        .unwrap();
    assert_eq!(images.image_ids().len(), 1);
    let sagemaker = &clients.sagemaker;
    assert!(
        sagemaker
            .describe_model()
            .model_name(&prefixed)
            .send()
            .await
            .is_ok()
    );
    assert!(
        sagemaker
            .describe_endpoint_config()
            .endpoint_config_name(&prefixed)
            .send()
            .await
            .is_ok()
    );
    assert!(
        sagemaker
            .describe_endpoint()
            .endpoint_name(name)
            .send()
            .await
            .is_ok()
    );
    assert!(aws::endpoint_autoscaling::exists(&clients, name).await.unwrap());
}

/// A desired resource's typed settings.
fn settings_of(state: &DesiredState, kind: Kind) -> &Settings {
    &state.get(kind).unwrap_or_else(|| panic!("no {kind}")).settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_a_deployed_stack_is_discovered_and_untagged_namesakes_are_not() {
    let Some(model_image) = testbed::model_image() else {
        return;
    };
    // Every transitional SageMaker status lasts at least 2 s: a training job still runs when
    // discovery looks, a failed endpoint is still being deleted when `apply` is called again.
    let delay = [("TESTBED_SAGEMAKER_DELAY_SECONDS", "2")];
    let Some(moto) = Moto::start_sagemaker_with_env(&model_image, &delay).await else {
        return;
    };
    let Some((registry, clients)) = registry_for(&moto).await else {
        return;
    };
    let deployment = Deployment::new();
    let spec = deployment.spec_with(
        "endpoint: {instance_count: 2, autoscaling: {min: 2, max: 3, invocations_per_instance: 500}, \
             rollout: {strategy: canary}}\n",
    );
    let target = AwsTarget::with_clients(&spec, &deployment.binary(), clients.clone())
        .await
        .expect("open")
        .with_registry(Some(registry.address().parse().expect("a loopback registry")))
        .with_poll_interval(Duration::from_millis(200));
    let digest = target.image_digest().expect("image digest");
    let state = engine::desired_state(&spec, spec::Target::Aws, &target.facts(&digest).expect("facts"));
    let bucket = target.bucket();

    // The first half through the engine.
    let mut first_half = state.clone();
    // With the rollout alarms, which need nothing first.
    first_half
        .resources
        .retain(|d| PART_ONE.contains(&d.kind()) || d.kind() == Kind::Alarm);
    executor::up(
        &target,
        &first_half,
        &plan(&target, &first_half).await,
        None,
        &Silent,
    )
    .await
    .expect("up");

    // The SageMaker half through the target, with a completed attempt standing in for training
    // (so that the job can still run when discovery looks).
    let job = state.get(Kind::TrainingJob).unwrap();
    let attempt = engine::names::attempt_name(&job.name, 1);
    let completed = TrainingJobOutputs {
        attempt: attempt.clone(),
        model_artifact: aws::sagemaker::model_artifact(&bucket, &attempt),
    };
    let outputs = BTreeMap::from([(
        ResourceId::new(Kind::TrainingJob, &job.name),
        Outputs::TrainingJob(completed.clone()),
    )]);
    let upstream = Upstream {
        state: &state,
        outputs: &outputs,
    };
    let (state_ref, target_ref) = (&state, &target);
    let apply = |kind: Kind| async move {
        let desired = state_ref.get(kind).unwrap_or_else(|| panic!("no {kind}"));
        target_ref
            .apply(desired, &Change::Create, upstream)
            .await
            .unwrap_or_else(|e| panic!("apply {kind}: {}", engine::target::error_chain(&e)))
    };
    assert_eq!(apply(Kind::Model).await, Applied::Ready(Outputs::None));
    assert_eq!(apply(Kind::EndpointConfig).await, Applied::Ready(Outputs::None));

    // The endpoint fails to come up. Applying it again replaces it: the target issues the deletion
    // and answers "not yet" until SageMaker has removed it (it never waits itself), then creates it.
    let endpoint = state.get(Kind::Endpoint).unwrap().name.clone();
    moto.inject_fault(Fault::endpoint_creation_fails(&endpoint)).await;
    assert_eq!(apply(Kind::Endpoint).await, Applied::Pending);
    endpoint_reaches(&clients, &endpoint, EndpointStatus::Failed).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut not_yet = 0;
    loop {
        match apply(Kind::Endpoint).await {
            Applied::NotYet { reason, retry_for } => {
                // The call that asks for the deletion names the failure; later ones wait for it.
                let expected = if not_yet == 0 {
                    aws::sagemaker_endpoint::DELETING_FAILED
                } else {
                    aws::sagemaker_endpoint::DELETING_REPLACED
                };
                assert_eq!(reason, expected);
                assert_eq!(retry_for, DELETE_TIMEOUT);
                not_yet += 1;
            }
            Applied::Pending => break,
            other => panic!("want the failed endpoint replaced, got {other:?}"),
        }
        assert!(Instant::now() < deadline, "the failed endpoint is never gone");
        tokio::time::sleep(target.poll_interval()).await;
    }
    assert!(
        not_yet >= 1,
        "the failed endpoint was still being deleted at first"
    );
    let replaced = clients
        .sagemaker
        .describe_endpoint()
        .endpoint_name(&endpoint)
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.endpoint_status(), Some(&EndpointStatus::Creating));
    assert_eq!(
        replaced.endpoint_config_name(),
        Some(state.get(Kind::EndpointConfig).unwrap().name.as_str())
    );
    assert_eq!(apply(Kind::Autoscaling).await, Applied::Ready(Outputs::None));

    // Namesakes without the deployment's tag: a model and an endpoint config with its prefix, and a
    // running training job with it.
    let namesake = format!("{}-ffffffffffff", spec.name);
    let untagged = Tags::default();
    let Settings::Model(model) = settings_of(&state, Kind::Model) else {
        unreachable!()
    };
    let model = ModelSettings {
        tags: untagged.clone(),
        ..model.clone()
    };
    let role = spec.role_name();
    let created = aws::sagemaker_model::apply(
        &clients,
        &namesake,
        &model,
        Some(&completed),
        target.account(),
        &role,
    )
    .await
    .unwrap();
    assert_eq!(created, Applied::Ready(Outputs::None));
    let Settings::EndpointConfig(config) = settings_of(&state, Kind::EndpointConfig) else {
        unreachable!()
    };
    let config = EndpointConfigSettings {
        tags: untagged.clone(),
        ..config.clone()
    };
    aws::sagemaker_endpoint_config::apply(&clients, &namesake, &config, &target.bucket())
        .await
        .unwrap();

    // Both training jobs last: they must still run when discovery looks.
    assert_eq!(apply(Kind::TrainingJob).await, Applied::Pending);
    let Settings::TrainingJob(job_settings) = settings_of(&state, Kind::TrainingJob) else {
        unreachable!()
    };
    let untagged_job = aws::sagemaker_training_job::JobContext {
        account: target.account(),
        bucket: &bucket,
        role: &role,
        tags: &untagged,
    };
    let started =
        aws::sagemaker_training_job::apply(&clients, &namesake, job_settings, &state, &untagged_job)
            .await
            .unwrap();
    assert_eq!(started, Applied::Pending);

    // Discovery: each kind's module finds its resource of the stack, with what it uses, and none of
    // the namesakes.
    let by_kind = owned_by_kind(&target).await;
    let running: Vec<String> = moto
        .training_jobs()
        .await
        .into_iter()
        .filter(|j| j.status == "InProgress")
        .map(|j| j.name)
        .collect();
    let namesake_attempt = engine::names::attempt_name(&namesake, 1);
    assert!(
        running.contains(&attempt) && running.contains(&namesake_attempt),
        "both jobs still ran while discovery looked: {running:?}"
    );
    let name_of = |kind| state.get(kind).unwrap().name.clone();
    let expected_one = |kind| match kind {
        Kind::TrainingJob => Found::new(kind, &attempt),
        Kind::Model => Found::new(kind, name_of(kind)).using(Kind::Image, digest.as_str()),
        Kind::EndpointConfig => Found::new(kind, name_of(kind)).using(Kind::Model, name_of(Kind::Model)),
        Kind::Endpoint => {
            Found::new(kind, name_of(kind)).using(Kind::EndpointConfig, name_of(Kind::EndpointConfig))
        }
        _ => Found::new(kind, name_of(kind)),
    };
    let expected: Vec<Found> = Kind::ALL
        .iter()
        .flat_map(|&kind| match kind {
            Kind::Alarm => state.all(kind).map(|d| Found::new(kind, &d.name)).collect(),
            _ => vec![expected_one(kind)],
        })
        .collect();
    let found: Vec<Found> = by_kind.into_iter().flat_map(|(_, owned)| owned).collect();
    assert_eq!(found, expected);
    // The target's own `owned` is the same discovery (engine::kind::dispatch).
    assert_eq!(engine::Target::owned(&target).await.unwrap(), expected);

    // Down removes the deployment's (waiting, in the executor, for the endpoint's deletion) and
    // leaves the namesakes.
    let down = executor::down(&target, |_| false, &Silent).await.expect("down");
    let mut deleted = down.deleted.clone();
    deleted.sort_by_key(|f| f.kind);
    assert_eq!(deleted, expected);
    let sagemaker = &clients.sagemaker;
    assert!(
        sagemaker
            .describe_endpoint()
            .endpoint_name(&endpoint)
            .send()
            .await
            .is_err(),
        "the endpoint is gone"
    );
    assert!(
        sagemaker
            .describe_model()
            .model_name(name_of(Kind::Model))
            .send()
            .await
            .is_err()
    );
    assert!(
        sagemaker
            .describe_model()
            .model_name(&namesake)
            .send()
            .await
            .is_ok()
    );
    assert!(
        sagemaker
            .describe_endpoint_config()
            .endpoint_config_name(&namesake)
            .send()
            .await
            .is_ok()
    );
    let namesake_job = sagemaker
        .describe_training_job()
        .training_job_name(&namesake_attempt)
        .send()
        .await
        .unwrap();
    assert_ne!(
        namesake_job.training_job_status(),
        Some(&aws_sdk_sagemaker::types::TrainingJobStatus::Stopping),
        "not stopped by down"
    );
    assert!(engine::Target::owned(&target).await.unwrap().is_empty());
}
