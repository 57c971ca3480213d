//! Training data on moto, verified by content: uploads carry SHA-256 checksums that S3 keeps,
//! observation compares S3's checksums with the local files (not anything written beside the data),
//! and objects under `data/` that orchestrate did not upload are drift that applying deletes, while
//! objects outside `data/` and other channels' prefixes are left alone.

use aws::{Clients, s3_bucket, training_data};
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};
use base64::Engine as _;
use engine::kind::{BucketSettings, TrainingDataSettings};
use engine::resource::diff;
use engine::values::{Channel, DataHash, Tags};
use engine::{Change, Desired, Observed};
use sha2::{Digest, Sha256};
use testbed::{Moto, mutating};

const REGION: &str = "eu-west-1";
const BUCKET: &str = "iot-test-123456789012-eu-west-1";
const PREFIX: &str = "data/0123456789ab/train/";

async fn clients(moto: &Moto) -> Clients {
    Clients::from_config(&moto.sdk_config(REGION).await, |_| None)
}

/// S3's `ChecksumSHA256` of `bytes`, computed here, apart from the crate's own.
fn sha256_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(&Sha256::digest(bytes)[..])
}

/// Someone else's upload, with the SDK's checksum of their choice (or S3's own SHA-256 of it).
async fn put(clients: &Clients, key: &str, body: &[u8], algorithm: ChecksumAlgorithm) {
    clients
        .s3
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .checksum_algorithm(algorithm)
        .body(body.to_vec().into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

async fn exists(clients: &Clients, key: &str) -> bool {
    clients
        .s3
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .is_ok()
}

/// The differing fields of an update, with what was found.
fn updated(change: &Change) -> Vec<(&'static str, String)> {
    match change {
        Change::Update { fields } => fields
            .iter()
            .map(|f| (f.field, f.have.clone().unwrap_or_default()))
            .collect(),
        other => panic!("expected an update, got {other:?}"),
    }
}

#[tokio::test]
async fn training_data_is_verified_by_content_and_unknown_objects_are_removed() {
    let Some(moto) = Moto::start().await else { return };
    let clients = clients(&moto).await;
    let tags: Tags = [("orchestrate:deployment", "iot-test")].into_iter().collect();
    let bucket = Desired::new(BUCKET, BucketSettings { tags: tags.clone() });
    s3_bucket::apply(&clients, BUCKET, &BucketSettings { tags: tags.clone() })
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("part")).unwrap();
    let (a, b) = (b"a,b\n1,2\n".as_slice(), b"a,b\n3,4\n".as_slice());
    std::fs::write(dir.path().join("a.csv"), a).unwrap();
    std::fs::write(dir.path().join("part/b.csv"), b).unwrap();
    let files = training_data::local_files(dir.path()).unwrap();
    let settings = TrainingDataSettings {
        channel: Channel::Train,
        sha256: DataHash("0123456789abcdef".into()),
    };
    let data = Desired::new(PREFIX, settings.clone());
    let observe = || training_data::observe(&clients, BUCKET, PREFIX, &settings, &files);

    let upload = training_data::apply(&clients, BUCKET, PREFIX, &files)
        .await
        .unwrap();
    assert_eq!((upload.uploaded, upload.kept, upload.deleted), (2, 0, 0));
    // S3 keeps each file's SHA-256.
    for (relative, bytes) in [("a.csv", a), ("part/b.csv", b)] {
        let head = clients
            .s3
            .head_object()
            .bucket(BUCKET)
            .key(format!("{PREFIX}{relative}"))
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.checksum_sha256(),
            Some(sha256_base64(bytes).as_str()),
            "{relative}"
        );
        assert!(
            head.metadata().is_none_or(|m| m.is_empty()),
            "no metadata of ours"
        );
    }
    moto.reset_requests().await;
    let observed = observe().await.unwrap();
    assert_eq!(diff(&data, &observed), Change::NoOp, "{observed:?}");
    assert_eq!(
        diff(&bucket, &s3_bucket::observe(&clients, BUCKET).await.unwrap()),
        Change::NoOp
    );
    assert!(
        mutating(&moto.requests().await).is_empty(),
        "observing only reads"
    );
    let again = training_data::apply(&clients, BUCKET, PREFIX, &files)
        .await
        .unwrap();
    assert_eq!(
        (again.uploaded, again.kept, again.deleted),
        (0, 2, 0),
        "nothing to do"
    );

    // Someone else's writes: other content with its own SHA-256, the same bytes without one, an
    // object in the channel's prefix (SageMaker would train on it), one under `data/` outside every
    // channel, another channel's prefix (training data of its own, deleted as a leftover when not
    // wanted), and objects outside `data/`.
    put(
        &clients,
        &format!("{PREFIX}a.csv"),
        b"x,y\n9,9\n",
        ChecksumAlgorithm::Sha256,
    )
    .await;
    put(
        &clients,
        &format!("{PREFIX}part/b.csv"),
        b,
        ChecksumAlgorithm::Crc32,
    )
    .await;
    let extra = format!("{PREFIX}extra.csv");
    put(&clients, &extra, b"x,y\n0,0\n", ChecksumAlgorithm::Sha256).await;
    let stray = "data/stray.csv";
    put(&clients, stray, b"stray", ChecksumAlgorithm::Crc32).await;
    let other_channel = "data/fedcba987654/train/old.csv";
    let outside = ["elsewhere/keep.csv", "training-output/iot-1/output/model.tar.gz"];
    for key in [other_channel].into_iter().chain(outside) {
        put(&clients, key, b"keep", ChecksumAlgorithm::Crc32).await;
    }

    let drifted = observe().await.unwrap();
    assert_eq!(
        updated(&diff(&data, &drifted)),
        [
            (
                "content",
                format!("another SHA-256: {PREFIX}a.csv; no SHA-256: {PREFIX}part/b.csv")
            ),
            ("unknown_objects", extra.clone()),
        ]
    );
    let bucket_drifted = s3_bucket::observe(&clients, BUCKET).await.unwrap();
    assert_eq!(
        updated(&diff(&bucket, &bucket_drifted)),
        [("unknown_objects", stray.to_string())]
    );

    // A missing file is drift of the content too.
    clients
        .s3
        .delete_object()
        .bucket(BUCKET)
        .key(format!("{PREFIX}part/b.csv"))
        .send()
        .await
        .unwrap();
    let missing = observe().await.unwrap();
    assert_eq!(
        updated(&diff(&data, &missing))[0],
        (
            "content",
            format!("missing: {PREFIX}part/b.csv; another SHA-256: {PREFIX}a.csv")
        )
    );

    // Applying repairs both: what differs is uploaded again, what is unknown deleted.
    let repair = training_data::apply(&clients, BUCKET, PREFIX, &files)
        .await
        .unwrap();
    assert_eq!((repair.uploaded, repair.kept, repair.deleted), (2, 0, 1));
    s3_bucket::apply(&clients, BUCKET, &BucketSettings { tags })
        .await
        .unwrap();
    assert_eq!(diff(&data, &observe().await.unwrap()), Change::NoOp);
    let repaired = s3_bucket::observe(&clients, BUCKET).await.unwrap();
    assert_eq!(diff(&bucket, &repaired), Change::NoOp, "{repaired:?}");
    let object = clients
        .s3
        .get_object()
        .bucket(BUCKET)
        .key(format!("{PREFIX}a.csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(&object.body.collect().await.unwrap().into_bytes()[..], a);
    assert!(!exists(&clients, &extra).await, "unknown object deleted");
    assert!(
        !exists(&clients, stray).await,
        "object outside every channel deleted"
    );
    for key in [other_channel].into_iter().chain(outside) {
        assert!(exists(&clients, key).await, "{key} left alone");
    }
    assert!(matches!(observe().await.unwrap(), Observed::Present { .. }));
}
