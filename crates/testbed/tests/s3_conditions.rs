//! S3's conditional writes on the launcher's moto (`s3_conditions.py`): of concurrent writes with
//! the same precondition exactly one succeeds, and every other is refused as AWS refuses it (412
//! PreconditionFailed, or 409 ConditionalRequestConflict while the winner's write is in flight).
//! Skipped (with a note) when moto is missing, outside CI.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use testbed::Moto;

const BUCKET: &str = "testbed-conditions";
const WRITERS: usize = 8;

fn s3(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// What one conditional write got: `Ok(etag)` or the error code and HTTP status.
type Outcome = Result<String, (String, u16)>;

fn refusal<E: ProvideErrorMetadata>(error: &aws_sdk_s3::error::SdkError<E>) -> (String, u16) {
    let status = error.raw_response().map_or(0, |r| r.status().as_u16());
    (error.code().unwrap_or_default().to_string(), status)
}

/// `WRITERS` PutObjects of `key` at once, each with a body of its own (never one written before: an
/// equal body has an equal ETag), `If-Match: etag` or (without an etag) `If-None-Match: *`.
async fn race(s3: &aws_sdk_s3::Client, key: &str, etag: Option<&str>) -> Vec<Outcome> {
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let request = s3.put_object().bucket(BUCKET).key(key).body(ByteStream::from(
            format!("writer {writer} after {etag:?}").into_bytes(),
        ));
        let request = match etag {
            Some(etag) => request.if_match(etag),
            None => request.if_none_match("*"),
        };
        writers.spawn(async move {
            match request.send().await {
                Ok(out) => Ok(out.e_tag().unwrap_or_default().to_string()),
                Err(error) => Err(refusal(&error)),
            }
        });
    }
    writers.join_all().await
}

/// Exactly one write won; the others were refused as AWS refuses them. The winner's ETag.
fn one_winner(outcomes: &[Outcome]) -> String {
    let winners: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    for outcome in outcomes {
        if let Err((code, status)) = outcome {
            assert!(
                matches!(
                    (code.as_str(), status),
                    ("PreconditionFailed", 412) | ("ConditionalRequestConflict", 409)
                ),
                "{outcomes:?}"
            );
        }
    }
    winners[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conditional_writes_of_one_object_have_exactly_one_winner() {
    let Some(moto) = Moto::start().await else { return };
    let s3 = s3(&moto.sdk_config("us-east-1").await);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();

    // Creation: `If-None-Match: *`.
    let created = one_winner(&race(&s3, "lock.json", None).await);
    // Replacement: `If-Match` of the version all of them read.
    let replaced = one_winner(&race(&s3, "lock.json", Some(&created)).await);
    assert_ne!(created, replaced);
    let object = s3
        .get_object()
        .bucket(BUCKET)
        .key("lock.json")
        .send()
        .await
        .unwrap();
    assert_eq!(object.e_tag(), Some(replaced.as_str()));

    // A delete with the stale ETag leaves the object; with the current one it deletes it.
    let stale = s3
        .delete_object()
        .bucket(BUCKET)
        .key("lock.json")
        .if_match(&created)
        .send()
        .await
        .unwrap_err();
    assert_eq!(refusal(&stale), ("PreconditionFailed".to_string(), 412));
    s3.delete_object()
        .bucket(BUCKET)
        .key("lock.json")
        .if_match(&replaced)
        .send()
        .await
        .unwrap();
    let gone = s3.get_object().bucket(BUCKET).key("lock.json").send().await;
    assert!(gone.is_err(), "deleted");
}
