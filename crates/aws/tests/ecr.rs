//! The ECR repository against moto, and the image push against a real registry: a Docker registry
//! (`docker-registry`) logging in with moto's ECR token, checked independently with skopeo and ECR's
//! own API. Outcomes are read through the SDK, skopeo and the registry's access log, not through our
//! own `observe`. Tests skip (with a note) when moto, the registry or skopeo is missing outside CI.

use aws::{Clients, ecr_image, ecr_repository};
use aws_sdk_ecr::types::{
    EncryptionType, ImageIdentifier, ImageScanningConfiguration, ImageTagMutability, Tag,
};
use engine::kind::{ImageSettings, RepositorySettings};
use engine::resource::{OnChange, diff};
use engine::values::{ImageRef, Tags};
use engine::{Change, Desired, Observed};
use testbed::{FaultKind, FaultPlan, FaultProxy, Moto, Registry, Tool, Upstream};

const REGION: &str = "eu-west-1";

async fn clients(moto: &Moto) -> Clients {
    Clients::from_config(&moto.sdk_config(REGION).await, |_| None)
}

fn settings() -> RepositorySettings {
    RepositorySettings { tags: wanted_tags() }
}

fn desired_repository(name: &str) -> Desired {
    Desired::new(name, settings())
}

/// The repository as ECR describes it, with its tags.
async fn describe(clients: &Clients, name: &str) -> (aws_sdk_ecr::types::Repository, Tags) {
    let out = clients
        .ecr
        .describe_repositories()
        .repository_names(name)
        .send()
        .await
        .unwrap();
    let repository = out.repositories()[0].clone();
    let tags = clients
        .ecr
        .list_tags_for_resource()
        .resource_arn(repository.repository_arn().unwrap())
        .send()
        .await
        .unwrap();
    let tags = tags
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    (repository, tags)
}

fn wanted_tags() -> Tags {
    [
        ("managed-by", "orchestrate"),
        ("orchestrate:deployment", "iot-test"),
        ("team", "ml"),
    ]
    .into_iter()
    .collect()
}

#[tokio::test]
async fn repository_is_created_repaired_after_drift_and_force_deleted() {
    let Some(moto) = Moto::start().await else { return };
    let clients = clients(&moto).await;
    let ecr = &clients.ecr;
    let name = "iot-test";
    let desired = desired_repository(name);

    assert_eq!(
        ecr_repository::observe(&clients, name).await.unwrap(),
        Observed::Absent
    );
    ecr_repository::apply(&clients, name, &settings()).await.unwrap();
    // Twice: apply is idempotent.
    ecr_repository::apply(&clients, name, &settings()).await.unwrap();

    let (repository, tags) = describe(&clients, name).await;
    assert_eq!(
        repository.image_tag_mutability(),
        Some(&ImageTagMutability::Immutable)
    );
    assert!(repository.image_scanning_configuration().unwrap().scan_on_push());
    assert_eq!(
        repository.encryption_configuration().unwrap().encryption_type(),
        &EncryptionType::Aes256
    );
    assert_eq!(tags, wanted_tags());
    moto.reset_requests().await;
    let observed = ecr_repository::observe(&clients, name).await.unwrap();
    assert_eq!(diff(&desired, &observed), Change::NoOp, "{observed:?}");
    let requests = moto.requests().await;
    assert!(!requests.is_empty());
    assert_eq!(
        testbed::mutating(&requests),
        Vec::<&testbed::Request>::new(),
        "observe only reads"
    );

    // Drift: tags made mutable, scanning off, a tag removed and one added, by hand.
    ecr.put_image_tag_mutability()
        .repository_name(name)
        .image_tag_mutability(ImageTagMutability::Mutable)
        .send()
        .await
        .unwrap();
    ecr.put_image_scanning_configuration()
        .repository_name(name)
        .image_scanning_configuration(ImageScanningConfiguration::builder().scan_on_push(false).build())
        .send()
        .await
        .unwrap();
    let arn = repository.repository_arn().unwrap();
    ecr.untag_resource()
        .resource_arn(arn)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    ecr.tag_resource()
        .resource_arn(arn)
        .tags(Tag::builder().key("owner").value("someone").build().unwrap())
        .send()
        .await
        .unwrap();
    let (drifted, tags) = describe(&clients, name).await;
    assert_eq!(drifted.image_tag_mutability(), Some(&ImageTagMutability::Mutable));
    assert!(!drifted.image_scanning_configuration().unwrap().scan_on_push());
    assert_eq!(tags.get("owner"), Some("someone"));
    let observed = ecr_repository::observe(&clients, name).await.unwrap();
    match diff(&desired, &observed) {
        Change::Update { fields } => {
            let names: Vec<&str> = fields.iter().map(|f| f.field).collect();
            assert_eq!(names, ["tags", "tag_mutability", "scan_on_push"]);
            let words: Vec<String> = fields[1..].iter().map(|f| f.to_string()).collect();
            assert_eq!(
                words,
                [
                    "tag_mutability: want IMMUTABLE, have MUTABLE",
                    "scan_on_push: want true, have false"
                ]
            );
            assert!(fields.iter().all(|f| f.on_change == OnChange::Update));
        }
        other => panic!("expected an update, got {other:?}"),
    }

    ecr_repository::apply(&clients, name, &settings()).await.unwrap();
    let (repository, tags) = describe(&clients, name).await;
    assert_eq!(
        repository.image_tag_mutability(),
        Some(&ImageTagMutability::Immutable)
    );
    assert!(repository.image_scanning_configuration().unwrap().scan_on_push());
    assert_eq!(
        tags,
        wanted_tags(),
        "the added tag is removed, the removed one back"
    );

    // An image in the repository: deleting it needs force.
    let manifest = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#;
    ecr.put_image()
        .repository_name(name)
        .image_manifest(manifest)
        .image_manifest_media_type(image::MANIFEST_MEDIA_TYPE)
        .image_tag("sha-0123456789abcdef")
        .image_digest(image::Digest::sha256(manifest.as_bytes()).to_string())
        .send()
        .await
        .unwrap();
    let unforced = ecr.delete_repository().repository_name(name).send().await;
    assert!(
        unforced.is_err(),
        "a repository with images is not deleted without force"
    );

    ecr_repository::delete(&clients, name).await.unwrap();
    let gone = ecr.describe_repositories().repository_names(name).send().await;
    let error = gone.expect_err("the repository is gone");
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_repository_not_found_exception()),
        "{error:?}"
    );
    // Deleting what is gone succeeds.
    ecr_repository::delete(&clients, name).await.unwrap();
}

/// A real one-layer image built by the image crate from this machine's `/bin/true` (with its shared
/// libraries), as the local target builds `model-image`.
fn build_image(dir: &std::path::Path) -> image::BuiltImage {
    let binary = dir.join("true");
    std::fs::copy("/bin/true", &binary).unwrap();
    image::build(&image::ImageSpec::new(&binary, "0.0.0-test")).unwrap()
}

#[tokio::test]
async fn image_is_pushed_to_a_real_registry_once_and_ecr_knows_its_digest() {
    if !testbed::require(&[Tool::Skopeo]) {
        return;
    }
    let Some(moto) = Moto::start().await else { return };
    let clients = clients(&moto).await;
    // The registry accepts exactly what moto's ECR hands out, so the push's login flow is exercised.
    let token = clients.ecr.get_authorization_token().send().await.unwrap();
    let token = token.authorization_data()[0].authorization_token().unwrap();
    let (user, password) = ecr_image::decode_token(token).unwrap();
    assert_eq!(user, "AWS");
    let Some(registry) = Registry::start(&user, &password).await else {
        return;
    };

    let repository = "iot-test";
    ecr_repository::apply(&clients, repository, &settings())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let built = build_image(dir.path());
    let digest = built.manifest_digest.to_string();

    let address: ecr_image::Registry = registry.address().parse().expect("a loopback registry");
    let before = registry.requests().await;
    let reference = ecr_image::push(&clients, repository, &built, Some(&address))
        .await
        .unwrap();
    assert_eq!(reference, format!("{}/{repository}@{digest}", registry.host()));
    let first: Vec<_> = registry.requests().await.split_off(before.len());
    let uploads: Vec<_> = first.iter().filter(|r| r.is_blob_upload()).collect();
    // The config and the layer, each as a POST then a PUT with its digest.
    let completed: Vec<_> = uploads
        .iter()
        .filter(|r| r.method == "PUT" && r.status == 201)
        .collect();
    assert_eq!(completed.len(), 2, "{first:#?}");
    for blob in built.blobs() {
        assert!(
            completed.iter().any(|r| r.uri.contains(blob.digest.hex())),
            "{} uploaded: {first:#?}",
            blob.digest
        );
    }

    // What the registry holds, read by skopeo.
    let raw = testbed::skopeo_inspect(&reference, &user, &password, true).await;
    assert_eq!(
        raw["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(raw["layers"].as_array().unwrap().len(), 1);
    let summary = testbed::skopeo_inspect(&reference, &user, &password, false).await;
    assert_eq!(
        summary["Digest"],
        digest.as_str(),
        "skopeo's digest of the stored manifest"
    );
    assert_eq!(summary["Layers"].as_array().unwrap().len(), 1);
    let config = testbed::skopeo_inspect_config(&reference, &user, &password).await;
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!([image::BINARY_PATH])
    );
    assert_eq!(config["architecture"], built.architecture);

    // ECR's API knows the image by the same digest.
    let described = clients
        .ecr
        .describe_images()
        .repository_name(repository)
        .image_ids(ImageIdentifier::builder().image_digest(&digest).build())
        .send()
        .await
        .unwrap();
    let details = &described.image_details()[0];
    assert_eq!(details.image_digest(), Some(digest.as_str()));
    assert_eq!(details.image_tags(), [ecr_image::tag_for(&built.manifest_digest)]);
    let image = ImageRef {
        repository: repository.to_string(),
        digest: built.manifest_digest.clone(),
    };
    let desired = Desired::new(&digest, ImageSettings { image: image.clone() });
    let observed = ecr_image::observe(&clients, &image).await.unwrap();
    match &observed {
        Observed::Present { name, .. } => assert_eq!(name, &digest, "named by its digest"),
        Observed::Absent => panic!("the pushed image is not found"),
    }
    assert_eq!(diff(&desired, &observed), Change::NoOp, "{observed:?}");
    // Another digest in the same repository is not there.
    let other = ImageRef {
        repository: repository.to_string(),
        digest: image::Digest::sha256(b"another manifest"),
    };
    assert_eq!(
        ecr_image::observe(&clients, &other).await.unwrap(),
        Observed::Absent
    );

    // A second push finds every blob present and uploads none.
    let before = registry.requests().await;
    let again = ecr_image::push(&clients, repository, &built, Some(&address))
        .await
        .unwrap();
    assert_eq!(again, reference);
    let second: Vec<_> = registry.requests().await.split_off(before.len());
    assert!(
        second.iter().all(|r| !r.is_blob_upload()),
        "no blob uploaded again: {second:#?}"
    );
    assert!(
        second
            .iter()
            .any(|r| r.method == "HEAD" && r.uri.contains("/blobs/")),
        "the blobs were checked: {second:#?}"
    );
    let summary = testbed::skopeo_inspect(&reference, &user, &password, false).await;
    assert_eq!(summary["Digest"], digest.as_str());
}

/// Regression: the push had no retries, so one 503 or dropped connection from the registry
/// failed the whole deployment. Each blob is now retried with backoff.
#[tokio::test]
async fn a_blob_upload_the_registry_fails_transiently_is_retried() {
    let Some(moto) = Moto::start().await else { return };
    let clients = clients(&moto).await;
    let token = clients.ecr.get_authorization_token().send().await.unwrap();
    let token = token.authorization_data()[0].authorization_token().unwrap();
    let (user, password) = ecr_image::decode_token(token).unwrap();
    let Some(registry) = Registry::start(&user, &password).await else {
        return;
    };
    let repository = "iot-retry";
    ecr_repository::apply(&clients, repository, &settings())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let built = build_image(dir.path());

    // The first blob upload answered 503, the second reset before it reaches the registry.
    let plan = FaultPlan::first_calls("PUT blob upload", 1, FaultKind::Unavailable);
    let proxy = FaultProxy::start(&registry.address(), Upstream::Registry, plan).await;
    let address: ecr_image::Registry = proxy.url().parse().expect("a loopback proxy");
    let before = registry.requests().await;
    ecr_image::push(&clients, repository, &built, Some(&address))
        .await
        .expect("the push survives a 503");
    assert_eq!(proxy.stats().faulted(), 1, "the fault was hit: {}", proxy.stats());
    let requests: Vec<_> = registry.requests().await.split_off(before.len());
    let completed = requests
        .iter()
        .filter(|r| r.is_blob_upload() && r.method == "PUT" && r.status == 201)
        .count();
    assert_eq!(completed, built.blobs().len(), "{requests:#?}");
    assert!(
        requests
            .iter()
            .any(|r| r.method == "PUT" && r.uri.contains("/manifests/") && r.status == 201),
        "{requests:#?}"
    );
}

/// Regression: oci-client takes a `/v2/` answer without a challenge (here a 503) for "no
/// credentials needed" and sent the next request unauthenticated; the registry's 401 then ended
/// the push. A 401 now logs in again and the step is retried.
#[tokio::test]
async fn a_login_probe_the_registry_fails_transiently_does_not_push_unauthenticated() {
    let Some(moto) = Moto::start().await else { return };
    let clients = clients(&moto).await;
    let token = clients.ecr.get_authorization_token().send().await.unwrap();
    let token = token.authorization_data()[0].authorization_token().unwrap();
    let (user, password) = ecr_image::decode_token(token).unwrap();
    let Some(registry) = Registry::start(&user, &password).await else {
        return;
    };
    let repository = "iot-login";
    ecr_repository::apply(&clients, repository, &settings())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let built = build_image(dir.path());
    let plan = FaultPlan::first_calls("GET base", 3, FaultKind::Unavailable);
    let proxy = FaultProxy::start(&registry.address(), Upstream::Registry, plan).await;
    let address: ecr_image::Registry = proxy.url().parse().expect("a loopback proxy");
    ecr_image::push(&clients, repository, &built, Some(&address))
        .await
        .expect("the push logs in again");
    assert_eq!(proxy.stats().faulted(), 3, "{}", proxy.stats());
    let reference = format!("{}/{repository}@{}", registry.host(), built.manifest_digest);
    let summary = testbed::skopeo_inspect(&reference, &user, &password, false).await;
    assert_eq!(summary["Digest"], built.manifest_digest.to_string().as_str());
}
