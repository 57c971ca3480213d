//! Bucket sniping, on moto: a bucket of the deployment's name that another AWS account created (after
//! `down` deleted ours) is neither read nor written. `up` stops before any write with an error naming
//! the bucket, the other account and what to do; `down` leaves the bucket alone; every operation on
//! the bucket and its data is refused by S3 because each passes `ExpectedBucketOwner`.
//!
//! moto ignores that header; the testbed enforces it as S3 does (crates/testbed/bucket_owner.py).
//! The other account acts through keys from an STS AssumeRole into a role ARN of that account, which
//! moto hands out as that account's.

use std::path::{Path, PathBuf};

use aws::s3_bucket::{self, NotThisAccounts};
use aws::{AwsTarget, Clients, sagemaker_training_job, training_data};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use engine::kind::{BucketSettings, TrainingDataSettings};
use engine::progress::Silent;
use engine::resource::TrainingJobOutputs;
use engine::target::{LockRequest, Target as _, error_chain};
use engine::values::{Channel, DataHash, Tags};
use engine::{Kind, executor};
use testbed::{Moto, mutating};

const REGION: &str = "eu-west-1";
/// The account that takes the name.
const SNIPER: &str = "210987654321";

/// A deployment folder: deploy.yaml's spec, a training file and a stand-in `model-image` binary.
struct Deployment {
    dir: tempfile::TempDir,
}

impl Deployment {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.csv"), "x,label\n1,Normal\n2,Anomaly\n").unwrap();
        std::fs::copy("/bin/true", dir.path().join("model-image")).expect("copy /bin/true");
        Deployment { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn binary(&self) -> PathBuf {
        self.path().join("model-image")
    }

    fn spec(&self) -> spec::Spec {
        let yaml = format!(
            "version: 1\nname: iot-sniped\ntarget: aws\nregion: {REGION}\ndata: {{train: train.csv}}\n"
        );
        std::fs::write(self.path().join("deploy.yaml"), &yaml).unwrap();
        spec::parse(&yaml, "deploy.yaml", self.path()).unwrap_or_else(|e| panic!("{e:?}"))
    }
}

async fn clients(moto: &Moto) -> Clients {
    Clients::from_config(&moto.sdk_config(REGION).await, |_| None)
}

/// Clients acting as the account [`SNIPER`].
async fn sniper(moto: &Moto, clients: &Clients) -> Clients {
    let assumed = clients
        .sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{SNIPER}:role/sniper"))
        .role_session_name("sniper")
        .send()
        .await
        .expect("assume a role of the other account");
    let keys = assumed.credentials().expect("credentials");
    let credentials = Credentials::new(
        keys.access_key_id(),
        keys.secret_access_key(),
        Some(keys.session_token().to_string()),
        None,
        "sniper",
    );
    let config = moto
        .sdk_config(REGION)
        .await
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build();
    let sniper = Clients::from_config(&config, |_| None);
    assert_eq!(sniper.account().await.unwrap(), SNIPER);
    sniper
}

/// The other account creates the bucket of the deployment's name and puts an object in it.
async fn snipe(sniper: &Clients, bucket: &str, key: &str) {
    sniper
        .s3
        .create_bucket()
        .bucket(bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await
        .expect("the other account creates the bucket");
    sniper
        .s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(b"planted\n".to_vec().into())
        .send()
        .await
        .unwrap();
}

/// The other account's bucket as it left it: its one object, no tags, no policy.
async fn untouched(sniper: &Clients, bucket: &str, key: &str) {
    let s3 = &sniper.s3;
    let listed = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, [key]);
    assert!(
        s3.get_bucket_tagging().bucket(bucket).send().await.is_err(),
        "no tags"
    );
    assert!(
        s3.get_bucket_policy().bucket(bucket).send().await.is_err(),
        "no policy"
    );
}

/// The error says which bucket, that another account holds it, and what to do.
fn assert_names_the_sniping(message: &str, bucket: &str) {
    for part in [
        format!("`{bucket}`"),
        "another AWS account".to_string(),
        "bucket sniping".to_string(),
        "neither reads nor writes".to_string(),
        "`name:` in deploy.yaml".to_string(),
    ] {
        assert!(message.contains(&part), "want `{part}` in: {message}");
    }
}

/// Whether an operation's error says another account owns the bucket.
fn is_of_another_account(error: &aws::AwsError) -> bool {
    std::error::Error::source(error)
        .and_then(|cause| cause.downcast_ref::<NotThisAccounts>())
        .is_some_and(|why| matches!(why, NotThisAccounts::AnotherAccount { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_stops_before_any_write_and_down_leaves_a_bucket_of_another_account_alone() {
    let Some(moto) = Moto::start().await else { return };
    let clients = clients(&moto).await;
    let sniper = sniper(&moto, &clients).await;
    let deployment = Deployment::new();
    let spec = deployment.spec();
    let target = AwsTarget::with_clients(&spec, &deployment.binary(), clients.clone())
        .await
        .expect("open");
    assert_ne!(target.account(), SNIPER);
    let bucket = target.bucket();
    let planted = "data/0123456789ab/train/train.csv";
    snipe(&sniper, &bucket, planted).await;
    // Without the header, moto lets any account read any bucket: what stops us is the header alone.
    assert!(clients.s3.head_bucket().bucket(&bucket).send().await.is_ok());

    let digest = target.image_digest().expect("image digest");
    let facts = target.facts(&digest).expect("facts");
    let mut state = engine::desired_state(&spec, spec::Target::Aws, &facts);
    state.resources.retain(|d| {
        [
            Kind::Bucket,
            Kind::TrainingData,
            Kind::Role,
            Kind::Repository,
            Kind::Image,
        ]
        .contains(&d.kind())
    });
    moto.reset_requests().await;

    // `up` plans first: the plan stops, with the message the user sees.
    let error = executor::plan(&target, &state, &Silent)
        .await
        .expect_err("a bucket of another account");
    assert_names_the_sniping(&error_chain(&error), &bucket);
    // Had it gone on, its lock would have stopped it too, before creating anything.
    let lock = LockRequest {
        state: Some(&state),
        owner: "up",
        break_lock: false,
    };
    match target.lock(lock).await {
        Err(error) => assert_names_the_sniping(&error_chain(&*error), &bucket),
        Ok(_) => panic!("locked a bucket of another account"),
    }

    // `down`: the bucket is not the deployment's, so there is nothing of it to lock or delete.
    assert!(target.owned().await.unwrap().is_empty());
    let unlocked = LockRequest {
        state: None,
        owner: "down",
        break_lock: false,
    };
    assert!(target.lock(unlocked).await.unwrap().is_none());
    let down = executor::down(&target, |_| false, &Silent).await.expect("down");
    assert!(down.deleted.is_empty(), "{:?}", down.deleted);

    let requests = moto.requests().await;
    assert!(!requests.is_empty());
    assert_eq!(mutating(&requests), Vec::<&testbed::Request>::new(), "no write");
    untouched(&sniper, &bucket, planted).await;
}

#[tokio::test]
async fn every_operation_on_the_bucket_and_its_data_is_refused_in_another_account() {
    let Some(moto) = Moto::start().await else { return };
    let clients = clients(&moto).await;
    let sniper = sniper(&moto, &clients).await;
    let bucket = format!("iot-sniped-{}-{REGION}", clients.account().await.unwrap());
    let prefix = "data/0123456789ab/train/";
    let planted = format!("{prefix}train.csv");
    snipe(&sniper, &bucket, &planted).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.csv"), "a,b\n1,2\n").unwrap();
    let files = training_data::local_files(&dir.path().join("train.csv")).unwrap();
    let settings = TrainingDataSettings {
        channel: Channel::Train,
        sha256: DataHash("0123456789abcdef".into()),
    };
    let tags: Tags = [("orchestrate:deployment", "iot-sniped")].into_iter().collect();
    moto.reset_requests().await;

    let observed = s3_bucket::observe(&clients, &bucket).await.expect_err("observe");
    assert!(is_of_another_account(&observed), "{observed:?}");
    assert_names_the_sniping(&error_chain(&observed), &bucket);
    assert_eq!(
        s3_bucket::owner(&clients, &bucket).await.unwrap(),
        s3_bucket::Owner::NotThisAccount(NotThisAccounts::AnotherAccount {
            account: clients.account().await.unwrap().to_string()
        })
    );
    // Creating it is refused by S3 (the name is taken), and nothing follows the refusal.
    let created = s3_bucket::apply(&clients, &bucket, &BucketSettings { tags: tags.clone() })
        .await
        .expect_err("apply");
    assert!(is_of_another_account(&created), "{created:?}");
    let writes: Vec<String> = mutating(&moto.requests().await)
        .iter()
        .map(|r| r.action.clone())
        .collect();
    assert_eq!(
        writes,
        [format!("PUT /{bucket}/")],
        "only the refused CreateBucket"
    );

    // Every other operation is refused by the header (403) at its first call.
    let refused = |result: Result<(), aws::AwsError>, what: &str| {
        let error = result.expect_err(what);
        assert_eq!(error.class, aws::ErrorClass::AccessDenied, "{what}: {error:?}");
    };
    refused(s3_bucket::put_tags(&clients, &bucket, &tags).await, "put_tags");
    refused(s3_bucket::empty(&clients, &bucket).await.map(drop), "empty");
    refused(s3_bucket::delete(&clients, &bucket).await, "delete");
    refused(
        training_data::observe(&clients, &bucket, prefix, &settings, &files)
            .await
            .map(drop),
        "observe the data",
    );
    refused(
        training_data::apply(&clients, &bucket, prefix, &files)
            .await
            .map(drop),
        "upload",
    );
    refused(
        training_data::delete(&clients, &bucket, prefix).await,
        "delete the data",
    );
    refused(
        training_data::outside_channels(&clients, &bucket).await.map(drop),
        "list the data",
    );
    let job = TrainingJobOutputs {
        attempt: "iot-sniped-0123456789ab-1".into(),
        model_artifact: format!("s3://{bucket}/{planted}"),
    };
    let metrics = sagemaker_training_job::metrics(&clients, &job).await;
    refused(metrics.map(drop), "read the metrics");

    untouched(&sniper, &bucket, &planted).await;
}
