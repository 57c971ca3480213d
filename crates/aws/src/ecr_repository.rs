//! The image repository: created before the push with immutable tags, scan on push, AES256
//! encryption and the deployment's tags; force-deleted (with its images) on teardown.

use std::collections::BTreeMap;

use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageScanningConfiguration, ImageTagMutability, Tag,
};
use engine::resource::Lifecycle;
use engine::{Desired, Kind, Observed};

use crate::clients::Clients;
use crate::errors::{AwsError, OrAbsent};
use crate::tags;

const KIND: Kind = Kind::Repository;

fn ecr_tags(name: &str, wanted: &BTreeMap<String, String>) -> Result<Vec<Tag>, AwsError> {
    wanted
        .iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| AwsError::other("tag", KIND, name, e))
        })
        .collect()
}

/// The repository's ARN, if it exists.
async fn find(clients: &Clients, name: &str) -> Result<Option<aws_sdk_ecr::types::Repository>, AwsError> {
    let described = clients
        .ecr
        .describe_repositories()
        .repository_names(name)
        .send()
        .await
        .map_err(|e| AwsError::sdk("find", KIND, name, e))
        .or_absent()?;
    Ok(described.and_then(|out| out.repositories().first().cloned()))
}

async fn read_tags(clients: &Clients, name: &str, arn: &str) -> Result<BTreeMap<String, String>, AwsError> {
    let out = clients
        .ecr
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(|e| AwsError::sdk("read the tags of", KIND, name, e))?;
    Ok(out
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect())
}

/// Reads the repository: `tags`, `tag_mutability`, `scan_on_push`.
pub async fn observe(clients: &Clients, desired: &Desired) -> Result<Observed, AwsError> {
    let name = desired.name.as_str();
    let Some(repository) = find(clients, name).await? else {
        return Ok(Observed::Absent);
    };
    let arn = repository.repository_arn().unwrap_or_default();
    let tags = read_tags(clients, name, arn).await?;
    let mutability = repository
        .image_tag_mutability()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let scan = repository
        .image_scanning_configuration()
        .map(|c| c.scan_on_push())
        .unwrap_or(false);
    Ok(Observed::present(name, Lifecycle::Ready)
        .with_field("tags", engine::desired::tags_field(&tags))
        .with_field("tag_mutability", mutability)
        .with_field("scan_on_push", scan.to_string()))
}

/// Creates the repository if absent, then sets immutability, scanning and tags (each idempotent).
pub async fn apply(clients: &Clients, desired: &Desired) -> Result<(), AwsError> {
    let name = desired.name.as_str();
    let ecr = &clients.ecr;
    let wanted = tags::parse(desired.get("tags").unwrap_or_default());
    let scanning = ImageScanningConfiguration::builder().scan_on_push(true).build();
    if find(clients, name).await?.is_none() {
        let encryption = EncryptionConfiguration::builder()
            .encryption_type(EncryptionType::Aes256)
            .build()
            .map_err(|e| AwsError::other("create", KIND, name, e))?;
        let created = ecr
            .create_repository()
            .repository_name(name)
            .image_tag_mutability(ImageTagMutability::Immutable)
            .image_scanning_configuration(scanning.clone())
            .encryption_configuration(encryption)
            .set_tags(Some(ecr_tags(name, &wanted)?))
            .send()
            .await;
        match created {
            Ok(_) => {
                tracing::info!(repository = name, "created repository");
                return Ok(());
            }
            Err(e) => {
                let e = AwsError::sdk("create", KIND, name, e);
                if !e.has_code("RepositoryAlreadyExistsException") {
                    return Err(e);
                }
            }
        }
    }
    ecr.put_image_tag_mutability()
        .repository_name(name)
        .image_tag_mutability(ImageTagMutability::Immutable)
        .send()
        .await
        .map_err(|e| AwsError::sdk("make tags immutable in", KIND, name, e))?;
    ecr.put_image_scanning_configuration()
        .repository_name(name)
        .image_scanning_configuration(scanning)
        .send()
        .await
        .map_err(|e| AwsError::sdk("turn on scanning in", KIND, name, e))?;
    let arn = find(clients, name)
        .await?
        .and_then(|r| r.repository_arn().map(str::to_string))
        .ok_or_else(|| AwsError::other("tag", KIND, name, "the repository has no ARN"))?;
    let removed = tags::removed(&read_tags(clients, name, &arn).await?, &wanted);
    if !removed.is_empty() {
        ecr.untag_resource()
            .resource_arn(&arn)
            .set_tag_keys(Some(removed))
            .send()
            .await
            .map_err(|e| AwsError::sdk("untag", KIND, name, e))?;
    }
    ecr.tag_resource()
        .resource_arn(&arn)
        .set_tags(Some(ecr_tags(name, &wanted)?))
        .send()
        .await
        .map_err(|e| AwsError::sdk("tag", KIND, name, e))?;
    Ok(())
}

/// Force-deletes the repository with every image in it. Deleting one that is gone succeeds.
pub async fn delete(clients: &Clients, name: &str) -> Result<(), AwsError> {
    clients
        .ecr
        .delete_repository()
        .repository_name(name)
        .force(true)
        .send()
        .await
        .map_err(|e| AwsError::sdk("delete", KIND, name, e))
        .or_absent()?;
    Ok(())
}
