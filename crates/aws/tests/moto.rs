//! The AWS adapters against moto_server, over real HTTP: every test starts its own moto on a free
//! loopback port (`testbed::Moto`) and checks the outcome through the SDK directly, not through our
//! own `observe`. Tests skip (with a note) when moto is not installed, outside CI.

use aws::iam_role::PolicyScope;
use aws::lock::{Lease, Lock, LockError, Released};
use aws::{Clients, iam_role, s3_bucket, training_data};
use engine::kind::{BucketSettings, RoleSettings, TrainingDataSettings};
use engine::resource::{OnChange, diff};
use engine::values::{Channel, DataHash, Tags};
use engine::{Change, Desired, Observed};
use testbed::Moto;

const REGION: &str = "eu-west-1";

fn tags() -> Tags {
    [
        ("managed-by", "orchestrate"),
        ("orchestrate:deployment", "iot-test"),
        ("team", "ml"),
    ]
    .into_iter()
    .collect()
}

async fn clients(moto: &Moto) -> Clients {
    Clients::from_config(&moto.sdk_config(REGION).await, |_| None)
}

fn desired_bucket(name: &str) -> Desired {
    Desired::new(name, BucketSettings { tags: tags() })
}

fn bucket_settings(desired: &Desired) -> &BucketSettings {
    match &desired.settings {
        engine::Settings::Bucket(settings) => settings,
        other => panic!("not a bucket: {other:?}"),
    }
}

/// What observation found for one check.
fn check(observed: &Observed, field: &str) -> String {
    match observed {
        Observed::Present { checks, .. } => checks
            .iter()
            .find(|c| c.field == field)
            .map(|c| c.have.clone())
            .unwrap_or_else(|| panic!("no `{field}` check: {observed:?}")),
        Observed::Absent => panic!("absent"),
    }
}

#[tokio::test]
async fn bucket_is_created_observed_repaired_and_deleted_with_every_version() {
    let Some(moto) = Moto::start().await else { return };
    let clients = clients(&moto).await;
    let s3 = &clients.s3;
    let name = "iot-test-123456789012-eu-west-1";
    let desired = desired_bucket(name);
    let settings = bucket_settings(&desired);

    assert_eq!(
        s3_bucket::observe(&clients, name).await.unwrap(),
        Observed::Absent
    );
    s3_bucket::apply(&clients, name, settings).await.unwrap();
    // Twice: apply is idempotent.
    s3_bucket::apply(&clients, name, settings).await.unwrap();

    // Checked through the SDK directly.
    let location = s3.get_bucket_location().bucket(name).send().await.unwrap();
    assert_eq!(location.location_constraint().unwrap().as_str(), REGION);
    // (GetBucketVersioning from moto 5.2 cannot be decoded by the SDK; versioning is checked below
    // through the versions an overwrite and a delete leave.)
    let encryption = s3.get_bucket_encryption().bucket(name).send().await.unwrap();
    let rule = &encryption.server_side_encryption_configuration().unwrap().rules()[0];
    let algorithm = rule
        .apply_server_side_encryption_by_default()
        .unwrap()
        .sse_algorithm();
    assert_eq!(algorithm.as_str(), "AES256");
    let block = s3.get_public_access_block().bucket(name).send().await.unwrap();
    let block = block.public_access_block_configuration().unwrap();
    assert_eq!(block.block_public_acls(), Some(true));
    assert_eq!(block.restrict_public_buckets(), Some(true));
    let policy = s3.get_bucket_policy().bucket(name).send().await.unwrap();
    assert!(policy.policy().unwrap().contains("aws:SecureTransport"));
    let tagging = s3.get_bucket_tagging().bucket(name).send().await.unwrap();
    assert!(
        tagging
            .tag_set()
            .iter()
            .any(|t| t.key() == "orchestrate:deployment" && t.value() == "iot-test")
    );

    moto.reset_requests().await;
    let observed = s3_bucket::observe(&clients, name).await.unwrap();
    assert_eq!(diff(&desired, &observed), Change::NoOp, "{observed:?}");
    // Every protection is checked, in the words `status` shows.
    for (field, want) in [
        ("region", REGION),
        ("versioning", "Enabled"),
        ("encryption", "AES256"),
        ("public_access_block", "all blocked"),
        ("tls_only_policy", "present"),
    ] {
        assert_eq!(check(&observed, field), want, "{field}");
    }
    let requests = moto.requests().await;
    assert!(!requests.is_empty());
    assert_eq!(
        testbed::mutating(&requests),
        Vec::<&testbed::Request>::new(),
        "observe only reads"
    );

    // Drift: someone suspends versioning and removes the policy.
    s3.put_bucket_versioning()
        .bucket(name)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .unwrap();
    s3.delete_bucket_policy().bucket(name).send().await.unwrap();
    let observed = s3_bucket::observe(&clients, name).await.unwrap();
    assert_eq!(check(&observed, "versioning"), "Suspended");
    assert_eq!(check(&observed, "tls_only_policy"), "absent");
    match diff(&desired, &observed) {
        Change::Update { fields } => {
            let names: Vec<&str> = fields.iter().map(|f| f.field).collect();
            assert_eq!(names, ["versioning", "tls_only_policy"]);
            assert!(fields.iter().all(|f| f.on_change == OnChange::Update));
        }
        other => panic!("expected an update, got {other:?}"),
    }

    // Versions and delete markers.
    s3.put_bucket_versioning()
        .bucket(name)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    for body in ["one", "two"] {
        s3.put_object()
            .bucket(name)
            .key("data/x.csv")
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    }
    s3.delete_object()
        .bucket(name)
        .key("data/x.csv")
        .send()
        .await
        .unwrap();
    let versions = s3.list_object_versions().bucket(name).send().await.unwrap();
    assert_eq!(versions.versions().len() + versions.delete_markers().len(), 3);

    s3_bucket::apply(&clients, name, settings).await.unwrap();
    let observed = s3_bucket::observe(&clients, name).await.unwrap();
    assert_eq!(diff(&desired, &observed), Change::NoOp, "{observed:?}");

    s3_bucket::delete(&clients, name).await.unwrap();
    let head = s3.head_bucket().bucket(name).send().await;
    assert!(head.is_err(), "the bucket is gone");
    // Deleting what is gone succeeds.
    s3_bucket::delete(&clients, name).await.unwrap();
}

fn desired_role(name: &str) -> Desired {
    Desired::new(name, RoleSettings { tags: tags() })
}

fn scope() -> PolicyScope {
    PolicyScope {
        bucket: "iot-test-bucket".into(),
        repository: "iot-test".into(),
        deployment: "iot-test".into(),
        rollback_alarms: Vec::new(),
        async_inference: false,
        data_capture: false,
    }
}

#[tokio::test]
async fn role_is_created_with_its_policy_observed_and_deleted() {
    let Some(moto) = Moto::start().await else { return };
    let clients = clients(&moto).await;
    let iam = &clients.iam;
    let name = "iot-test-sagemaker";
    let desired = desired_role(name);
    let settings = RoleSettings { tags: tags() };
    let scope = scope();

    assert_eq!(
        iam_role::observe(&clients, name, &scope).await.unwrap(),
        Observed::Absent
    );
    iam_role::apply(&clients, name, &settings, &scope).await.unwrap();
    iam_role::apply(&clients, name, &settings, &scope).await.unwrap();

    let role = iam.get_role().role_name(name).send().await.unwrap();
    let trust = iam_role::decode_document(role.role().unwrap().assume_role_policy_document().unwrap());
    assert!(trust.contains("sagemaker.amazonaws.com"), "{trust}");
    let policy = iam
        .get_role_policy()
        .role_name(name)
        .policy_name(iam_role::POLICY_NAME)
        .send()
        .await
        .unwrap();
    let document = iam_role::decode_document(policy.policy_document());
    assert!(
        document.contains("arn:aws:s3:::iot-test-bucket/data/*"),
        "{document}"
    );
    assert!(document.contains(":repository/iot-test"), "{document}");
    let tags = iam.list_role_tags().role_name(name).send().await.unwrap();
    assert!(tags.tags().iter().any(|t| t.key() == "team" && t.value() == "ml"));

    moto.reset_requests().await;
    let observed = iam_role::observe(&clients, name, &scope).await.unwrap();
    assert_eq!(diff(&desired, &observed), Change::NoOp, "{observed:?}");
    assert_eq!(
        check(&observed, "trust"),
        iam_role::wanted_trust(clients.account().await.unwrap())
    );
    assert_eq!(
        check(&observed, "policy"),
        "s3:iot-test-bucket;ecr:iot-test;logs:/aws/sagemaker/*iot-test*"
    );
    let requests = moto.requests().await;
    assert!(!requests.is_empty());
    assert_eq!(
        testbed::mutating(&requests),
        Vec::<&testbed::Request>::new(),
        "observe only reads"
    );

    // Drift: the inline policy is edited by hand.
    iam.put_role_policy()
        .role_name(name)
        .policy_name(iam_role::POLICY_NAME)
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
        )
        .send()
        .await
        .unwrap();
    let observed = iam_role::observe(&clients, name, &scope).await.unwrap();
    assert_eq!(check(&observed, "policy"), iam_role::POLICY_EDITED);
    match diff(&desired, &observed) {
        Change::Update { fields } => {
            let names: Vec<&str> = fields.iter().map(|f| f.field).collect();
            assert_eq!(names, ["policy"]);
        }
        other => panic!("expected an update, got {other:?}"),
    }
    iam_role::apply(&clients, name, &settings, &scope).await.unwrap();
    let observed = iam_role::observe(&clients, name, &scope).await.unwrap();
    assert_eq!(diff(&desired, &observed), Change::NoOp, "{observed:?}");

    // A second inline policy and a managed one.
    iam.put_role_policy()
        .role_name(name)
        .policy_name("extra")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::x/*"}]}"#)
        .send()
        .await
        .unwrap();
    let managed = iam
        .create_policy()
        .policy_name("iot-test-managed")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::x/*"}]}"#)
        .send()
        .await
        .unwrap();
    let managed_arn = managed.policy().unwrap().arn().unwrap().to_string();
    iam.attach_role_policy()
        .role_name(name)
        .policy_arn(&managed_arn)
        .send()
        .await
        .unwrap();
    // Both widen the role: drift, which `up` repairs by removing them.
    let observed = iam_role::observe(&clients, name, &scope).await.unwrap();
    assert_eq!(
        check(&observed, "other_policies"),
        format!("inline extra, managed {managed_arn}")
    );
    match diff(&desired, &observed) {
        Change::Update { fields } => {
            let names: Vec<&str> = fields.iter().map(|f| f.field).collect();
            assert_eq!(names, ["other_policies"]);
        }
        other => panic!("expected an update, got {other:?}"),
    }
    iam_role::apply(&clients, name, &settings, &scope).await.unwrap();
    let observed = iam_role::observe(&clients, name, &scope).await.unwrap();
    assert_eq!(diff(&desired, &observed), Change::NoOp, "{observed:?}");
    let attached = iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
        .unwrap();
    assert!(attached.attached_policies().is_empty());
    let inline = iam.list_role_policies().role_name(name).send().await.unwrap();
    assert_eq!(inline.policy_names(), [iam_role::POLICY_NAME]);

    // Teardown removes other policies too, then the role.
    iam.attach_role_policy()
        .role_name(name)
        .policy_arn(&managed_arn)
        .send()
        .await
        .unwrap();
    iam_role::delete(&clients, name).await.unwrap();
    let gone = iam.get_role().role_name(name).send().await;
    assert!(gone.is_err(), "the role is gone");
    iam_role::delete(&clients, name).await.unwrap();
}

#[tokio::test]
async fn training_data_is_uploaded_once_and_the_lock_is_exclusive() {
    let Some(moto) = Moto::start().await else { return };
    let clients = clients(&moto).await;
    let s3 = &clients.s3;
    // The full compliant bucket, TLS-only Deny policy included: object calls still work (moto is
    // patched to count its requests as TLS, as AWS counts our HTTPS requests).
    let bucket = "iot-test-data-123456789012-eu-west-1";
    s3_bucket::apply(&clients, bucket, &BucketSettings { tags: tags() })
        .await
        .unwrap();
    let policy = s3.get_bucket_policy().bucket(bucket).send().await.unwrap();
    let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    assert_eq!(policy, s3_bucket::tls_only_policy(bucket, REGION));
    assert_eq!(policy["Statement"][0]["Effect"], "Deny");
    assert_eq!(
        policy["Statement"][0]["Condition"]["Bool"]["aws:SecureTransport"],
        "false"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("train.csv");
    std::fs::write(&file, "a,b\n1,2\n").unwrap();
    let files = training_data::local_files(&file).unwrap();
    let prefix = "data/0123456789ab/train/";
    let settings = TrainingDataSettings {
        channel: Channel::Train,
        sha256: DataHash("0123456789abcdef".into()),
    };
    let desired = Desired::new(prefix, settings.clone());
    assert_eq!(
        training_data::observe(&clients, bucket, prefix, &settings, &files)
            .await
            .unwrap(),
        Observed::Absent
    );
    assert_eq!(
        training_data::apply(&clients, bucket, prefix, &files)
            .await
            .unwrap()
            .uploaded,
        1
    );
    assert_eq!(
        training_data::apply(&clients, bucket, prefix, &files)
            .await
            .unwrap()
            .uploaded,
        0,
        "skipped"
    );
    let object = s3
        .get_object()
        .bucket(bucket)
        .key("data/0123456789ab/train/train.csv")
        .send()
        .await
        .unwrap();
    let body = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(&body[..], b"a,b\n1,2\n");
    let observed = training_data::observe(&clients, bucket, prefix, &settings, &files)
        .await
        .unwrap();
    assert_eq!(diff(&desired, &observed), Change::NoOp, "{observed:?}");

    // Another hash of the channel (new content) is a replacement naming the hash.
    let changed = TrainingDataSettings {
        sha256: DataHash("fedcba9876543210".into()),
        ..settings.clone()
    };
    match diff(&Desired::new(prefix, changed), &observed) {
        Change::Replace { fields, .. } => {
            let names: Vec<&str> = fields.iter().map(|f| f.field).collect();
            assert_eq!(names, ["sha256"]);
        }
        other => panic!("expected a replacement, got {other:?}"),
    }

    // An interrupted upload (one of a folder's two files written) is drift of the content, and
    // `up`'s repair uploads only what is missing.
    let folder = dir.path().join("validation");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("a.csv"), "a,b\n3,4\n").unwrap();
    std::fs::write(folder.join("b.csv"), "a,b\n5,6\n").unwrap();
    let files = training_data::local_files(&folder).unwrap();
    let prefix = "data/abcdef012345/validation/";
    let settings = TrainingDataSettings {
        channel: Channel::Validation,
        sha256: DataHash("abcdef0123456789".into()),
    };
    let desired = Desired::new(prefix, settings.clone());
    assert_eq!(
        training_data::apply(&clients, bucket, prefix, &files)
            .await
            .unwrap()
            .uploaded,
        2
    );
    s3.delete_object()
        .bucket(bucket)
        .key(format!("{prefix}b.csv"))
        .send()
        .await
        .unwrap();
    let interrupted = training_data::observe(&clients, bucket, prefix, &settings, &files)
        .await
        .unwrap();
    match diff(&desired, &interrupted) {
        Change::Update { fields } => {
            let found: Vec<(&str, Option<&str>)> =
                fields.iter().map(|f| (f.field, f.have.as_deref())).collect();
            assert_eq!(
                found,
                [("content", Some("missing: data/abcdef012345/validation/b.csv"))]
            );
        }
        other => panic!("expected an update, got {other:?}"),
    }
    assert_eq!(
        training_data::apply(&clients, bucket, prefix, &files)
            .await
            .unwrap()
            .uploaded,
        1,
        "only the missing file"
    );
    let observed = training_data::observe(&clients, bucket, prefix, &settings, &files)
        .await
        .unwrap();
    assert_eq!(diff(&desired, &observed), Change::NoOp, "{observed:?}");

    // The lock in the same (policy-guarded) bucket: exclusive, broken only on request, and a release
    // by the run it was taken from leaves the new holder's lock (crates/aws/tests/lock.rs has the rest).
    let lock = Lock::acquire(&clients, bucket, "first", Lease::DEFAULT, false)
        .await
        .unwrap();
    match Lock::acquire(&clients, bucket, "second", Lease::DEFAULT, false).await {
        Err(LockError::Held { owner, .. }) => assert_eq!(owner, "first"),
        other => panic!("expected the lock to be held, got {other:?}"),
    }
    let second = Lock::acquire(&clients, bucket, "second", Lease::DEFAULT, true)
        .await
        .unwrap();
    assert_eq!(
        lock.release(&clients).await.unwrap(),
        Released::TakenOver {
            by: "second".to_string()
        }
    );
    let holder = aws::lock::read(&clients, bucket).await.unwrap().unwrap();
    assert_eq!(holder.owner(), "second");
    assert_eq!(second.release(&clients).await.unwrap(), Released::Deleted);
    assert_eq!(aws::lock::read(&clients, bucket).await.unwrap(), None);
}

/// An AWS refusal reaches the engine's error as a typed cause carrying the service's code and
/// message, orchestrate's class of it and the request id (what AWS support asks for), not as a
/// flattened string.
#[tokio::test]
async fn a_refused_call_keeps_its_code_class_and_request_id() {
    let Some(moto) = Moto::start().await else { return };
    let clients = clients(&moto).await;
    let refused = clients
        .iam
        .get_role()
        .role_name("no-such-role")
        .send()
        .await
        .expect_err("no such role");
    let error = aws::AwsError::sdk("read", engine::Kind::Role, "no-such-role", refused);
    assert!(error.is_not_found());
    let target: engine::TargetError = error.into();
    assert_eq!(target.to_string(), "read role `no-such-role`");
    let cause = std::error::Error::source(&target)
        .and_then(|c| c.downcast_ref::<aws::errors::ServiceError>())
        .expect("the service's answer as the cause");
    assert_eq!(cause.code, "NoSuchEntity");
    assert_eq!(cause.class, aws::errors::ErrorClass::NotFound);
    let request_id = cause
        .request_id
        .as_deref()
        .expect("moto answers with a request id");
    let chain = engine::target::error_chain(&target);
    assert!(
        chain.starts_with("read role `no-such-role`: NoSuchEntity"),
        "{chain}"
    );
    assert!(
        chain.contains(&format!("(not found, request id {request_id})")),
        "{chain}"
    );
}
