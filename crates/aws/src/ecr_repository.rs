//! The image repository: created before the push with immutable tags, scan on push, AES256
//! encryption and the deployment's tags; force-deleted (with its images) on teardown. Observation
//! reports the tag mutability and scanning it enforces as checks (`tag_mutability`, `scan_on_push`).
//!
//! The repository is the deployment's when it carries the deployment's tag ([`is_ours`]); the
//! image's discovery asks the same before listing the images in it.

use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageScanningConfiguration, ImageTagMutability, Tag,
};
use engine::kind::RepositorySettings;
use engine::resource::{Change, Check, Lifecycle, OnChange, Outputs};
use engine::target::{Applied, Deleted, Found, KindOnTarget, TargetError, Upstream};
use engine::values::Tags;
use engine::{Kind, Observed};

use crate::clients::Clients;
use crate::errors::{AwsError, OrAbsent};
use crate::target::AwsTarget;

const KIND: Kind = Kind::Repository;
/// The tag mutability and scanning a compliant repository reports.
pub const IMMUTABLE: &str = "IMMUTABLE";
pub const SCAN_ON_PUSH: bool = true;

/// What the module enforces, as found: `tag_mutability` and `scan_on_push`.
pub fn checks(mutability: &str, scan_on_push: bool) -> Vec<Check> {
    vec![
        Check::new("tag_mutability", IMMUTABLE, mutability, OnChange::Update),
        Check::new("scan_on_push", SCAN_ON_PUSH, scan_on_push, OnChange::Update),
    ]
}

fn ecr_tags(name: &str, wanted: &Tags) -> Result<Vec<Tag>, AwsError> {
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

async fn read_tags(clients: &Clients, name: &str, arn: &str) -> Result<Tags, AwsError> {
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

/// Reads the repository: its tags, and the checks of its tag mutability and scanning.
pub async fn observe(clients: &Clients, name: &str) -> Result<Observed, AwsError> {
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
    Ok(
        Observed::present(name, RepositorySettings { tags }, Lifecycle::Ready)
            .with_checks(checks(&mutability, scan)),
    )
}

/// Creates the repository if absent, then sets immutability, scanning and tags (each idempotent).
pub async fn apply(clients: &Clients, name: &str, settings: &RepositorySettings) -> Result<(), AwsError> {
    let ecr = &clients.ecr;
    let wanted = &settings.tags;
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
            .set_tags(Some(ecr_tags(name, wanted)?))
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
    let removed = read_tags(clients, name, &arn).await?.removed_from(wanted);
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
        .set_tags(Some(ecr_tags(name, wanted)?))
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

/// Whether the deployment's repository exists and carries the deployment's tag: what makes it,
/// and the images in it, the deployment's.
pub async fn is_ours(target: &AwsTarget) -> Result<bool, AwsError> {
    let repository = target.spec.repository_name();
    let Some(arn) = find(&target.clients, &repository)
        .await?
        .and_then(|r| r.repository_arn().map(str::to_string))
    else {
        return Ok(false);
    };
    let tags = read_tags(&target.clients, &repository, &arn).await?;
    Ok(target.is_ours(tags.iter()))
}

/// The image repository on AWS.
#[derive(Debug)]
pub struct EcrRepository;

impl KindOnTarget<AwsTarget> for EcrRepository {
    type Settings = RepositorySettings;

    async fn observe(
        target: &AwsTarget,
        name: &str,
        _: &RepositorySettings,
    ) -> Result<Observed, TargetError> {
        Ok(observe(&target.clients, name).await?)
    }

    async fn apply(
        target: &AwsTarget,
        name: &str,
        settings: &RepositorySettings,
        _: &Change,
        _: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        apply(&target.clients, name, settings).await?;
        Ok(Applied::Ready(Outputs::None))
    }

    async fn delete(target: &AwsTarget, name: &str) -> Result<Deleted, TargetError> {
        delete(&target.clients, name).await?;
        Ok(Deleted::Gone)
    }

    /// The deployment's repository, when it is tagged as the deployment's.
    async fn owned(target: &AwsTarget) -> Result<Vec<Found>, TargetError> {
        let owned = is_ours(target).await?;
        Ok(owned
            .then(|| Found::new(KIND, target.spec.repository_name()))
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_read_as_the_settings_enforced() {
        let compliant = checks("IMMUTABLE", true);
        assert!(compliant.iter().all(|c| c.want == c.have), "{compliant:?}");
        let drifted = checks("MUTABLE", false);
        let differing: Vec<String> = drifted
            .iter()
            .filter(|c| c.want != c.have)
            .map(|c| format!("{}: want {}, have {}", c.field, c.want, c.have))
            .collect();
        assert_eq!(
            differing,
            [
                "tag_mutability: want IMMUTABLE, have MUTABLE",
                "scan_on_push: want true, have false"
            ]
        );
    }
}
