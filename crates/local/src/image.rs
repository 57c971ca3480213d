//! The container image: built by the image crate exactly as for AWS (same layer, config and
//! manifest digest), named by that digest (`sha256:…`) and kept in `images/<digest hex>/` as the
//! `docker load`-able `image.tar` beside a copy of the binary it ships, `model-image`. Training jobs
//! and endpoints run that copy (found from the typed image reference they were given), so they run
//! exactly what was imaged, whatever happens to the build output afterwards.
//!
//! An image that a model kept for rollback runs is not deleted while the endpoint records that
//! model's config: rolling back must find its binary.
//!
//! Observation checks both files are there and that the copy is still the imaged binary: a
//! `binary_sha256` check, recomputed only when the copy's size or mtime changed. A modified copy
//! fails the check, which `up` replaces.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use engine::kind::ImageSettings;
use engine::resource::{Change, Check, Kind, Observed, OnChange, Outputs};
use engine::target::{Applied, Deleted, Found, KindOnTarget, ResourceId, TargetError, Upstream};
use engine::values::{Digest, ImageRef};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::target_error;
use crate::state::{Record, Stamp};
use crate::{LocalError, LocalTarget, io_error, record, remove_dir_all};

const KIND: Kind = Kind::Image;

/// The container image on the local target.
#[derive(Debug)]
pub struct LocalImage;

impl KindOnTarget<LocalTarget> for LocalImage {
    type Settings = ImageSettings;

    async fn observe(target: &LocalTarget, name: &str, _: &ImageSettings) -> Result<Observed, TargetError> {
        observe(target, name).map_err(|e| target_error("observe", KIND, name, e))
    }

    async fn apply(
        target: &LocalTarget,
        name: &str,
        settings: &ImageSettings,
        change: &Change,
        _: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        apply(target, name, settings).map_err(|e| target_error(change.verb(), KIND, name, e))
    }

    async fn delete(target: &LocalTarget, name: &str) -> Result<Deleted, TargetError> {
        delete(target, name)
            .map(|()| Deleted::Gone)
            .map_err(|e| target_error("delete", KIND, name, e))
    }

    async fn owned(target: &LocalTarget) -> Result<Vec<Found>, TargetError> {
        target.found(KIND)
    }
}
/// The binary's file name in an image folder.
pub(crate) const BINARY: &str = "model-image";
/// The docker-archive's file name in an image folder.
pub(crate) const ARCHIVE: &str = "image.tar";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ImageDetails {
    pub folder: PathBuf,
    pub binary_sha256: String,
    pub binary: Stamp,
}

/// The image folder of a digest, `images/<digest hex>/`.
pub(crate) fn folder(target: &LocalTarget, digest: &Digest) -> PathBuf {
    target.state.kind_dir(KIND).join(digest.hex())
}

/// The imaged binary of an image.
pub(crate) fn binary_for(target: &LocalTarget, image: &ImageRef) -> PathBuf {
    folder(target, &image.digest).join(BINARY)
}

/// The image resource an image reference names (images are named by their digest).
pub(crate) fn resource(image: &ImageRef) -> ResourceId {
    ResourceId::new(KIND, image.digest.as_str())
}

fn observe(target: &LocalTarget, name: &str) -> Result<Observed, LocalError> {
    let Some(record) = target.state.read::<ImageDetails>(KIND, name)? else {
        return Ok(Observed::Absent);
    };
    let folder = &record.details.folder;
    let binary = folder.join(BINARY);
    if !binary.is_file() || !folder.join(ARCHIVE).is_file() {
        return Ok(Observed::Absent);
    }
    let stamp = Stamp::of(&binary).map_err(io_error(KIND, name, "stat", &binary))?;
    let imaged = record.details.binary_sha256.clone();
    let have = if stamp == record.details.binary {
        imaged.clone()
    } else {
        sha256_file(&binary).map_err(io_error(KIND, name, "hash", &binary))?
    };
    // The copy must still be the binary that was imaged; a different one is a different image.
    Ok(record::observed(Some(record)).with_check(Check::new(
        "binary_sha256",
        imaged,
        have,
        OnChange::Replace,
    )))
}

fn apply(target: &LocalTarget, name: &str, settings: &ImageSettings) -> Result<Applied, LocalError> {
    let want = &settings.image.digest;
    let built = target.built_image(want)?;
    let folder = folder(target, want);
    fs::create_dir_all(&folder).map_err(io_error(KIND, name, "create", &folder))?;

    let source = &target.model_image_bin;
    let binary = folder.join(BINARY);
    let staging = folder.join(format!(".{BINARY}.partial"));
    fs::copy(source, &staging).map_err(io_error(KIND, name, "copy", source))?;
    fs::set_permissions(&staging, fs::Permissions::from_mode(0o755))
        .map_err(io_error(KIND, name, "chmod", &staging))?;
    // The imaged size must match the copy: a binary rebuilt since `build_image` is not the image.
    let copied = fs::metadata(&staging)
        .map_err(io_error(KIND, name, "stat", &staging))?
        .len();
    let imaged = built
        .files
        .iter()
        .find(|f| f.path == ::image::BINARY_PATH)
        .map(|f| f.size);
    if imaged.is_some_and(|size| size != copied) {
        let _ = fs::remove_file(&staging);
        let rebuilt = crate::build_image(source)?;
        return Err(LocalError::DigestMismatch {
            name: name.to_string(),
            binary: source.clone(),
            want: want.to_string(),
            have: rebuilt.manifest_digest.to_string(),
        });
    }
    fs::rename(&staging, &binary).map_err(io_error(KIND, name, "store", &binary))?;

    let repo_tag = format!(
        "{}:{}",
        settings.image.repository,
        built.manifest_digest.short12()
    );
    let archive = folder.join(ARCHIVE);
    built
        .write_docker_archive(&archive, &repo_tag)
        .map_err(|source| LocalError::Image {
            path: archive.clone(),
            source,
        })?;

    let binary_sha256 = sha256_file(&binary).map_err(io_error(KIND, name, "hash", &binary))?;
    let stamp = Stamp::of(&binary).map_err(io_error(KIND, name, "stat", &binary))?;
    let details = ImageDetails {
        folder,
        binary_sha256,
        binary: stamp,
    };
    target
        .state
        .write(KIND, &Record::new(name, settings.clone(), details))?;
    Ok(Applied::Ready(Outputs::None))
}

/// Deletes the image folder, unless a model the endpoint runs or may roll back to runs this image.
fn delete(target: &LocalTarget, name: &str) -> Result<(), LocalError> {
    if crate::endpoint::rollback_protected(target)?.protects(KIND, name) {
        return Ok(());
    }
    if let Some(record) = target.state.read::<ImageDetails>(KIND, name)? {
        remove_dir_all(KIND, name, &record.details.folder)?;
    }
    target.state.remove(KIND, name)
}

impl LocalTarget {
    /// The remembered build if it has digest `want`, else a fresh build that must have it.
    fn built_image(&self, want: &Digest) -> Result<::image::BuiltImage, LocalError> {
        let remembered = self.built.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let built = match remembered {
            Some(built) if &built.manifest_digest == want => built,
            _ => self.build_image()?,
        };
        if &built.manifest_digest != want {
            return Err(LocalError::DigestMismatch {
                name: want.to_string(),
                binary: self.model_image_bin.clone(),
                want: want.to_string(),
                have: built.manifest_digest.to_string(),
            });
        }
        Ok(built)
    }
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(engine::names::hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use engine::resource::Desired;

    use super::*;

    #[test]
    fn digests_and_references_map_to_folders() {
        let dir = tempfile::tempdir().unwrap();
        let spec = crate::tests::spec(dir.path());
        let target = LocalTarget::open(&spec, Path::new("model-image")).unwrap();
        let digest = Digest::sha256(b"");
        let image = ImageRef {
            repository: "iot-model-image".into(),
            digest: digest.clone(),
        };
        let binary = binary_for(&target, &image);
        assert!(
            binary.ends_with(format!("iot/images/{}/model-image", digest.hex())),
            "{}",
            binary.display()
        );
        assert_eq!(binary.parent().unwrap(), folder(&target, &digest));
        assert_eq!(resource(&image), ResourceId::new(Kind::Image, digest.as_str()));
    }

    #[test]
    fn a_modified_binary_copy_is_a_different_image() {
        let dir = tempfile::tempdir().unwrap();
        let spec = crate::tests::spec(dir.path());
        let target = LocalTarget::open(&spec, Path::new("model-image")).unwrap();
        let settings = ImageSettings {
            image: ImageRef {
                repository: "iot-model-image".into(),
                digest: Digest::sha256(b"image"),
            },
        };
        let desired = Desired::new(settings.image.digest.as_str(), settings.clone());
        assert_eq!(observe(&target, &desired.name).unwrap(), Observed::Absent);
        let folder = folder(&target, &settings.image.digest);
        fs::create_dir_all(&folder).unwrap();
        let binary = folder.join(BINARY);
        fs::write(&binary, "elf").unwrap();
        fs::write(folder.join(ARCHIVE), "tar").unwrap();
        let details = ImageDetails {
            folder: folder.clone(),
            binary_sha256: sha256_file(&binary).unwrap(),
            binary: Stamp::of(&binary).unwrap(),
        };
        let record = Record::new(&desired.name, settings, details);
        target.state.write(KIND, &record).unwrap();
        let observed = observe(&target, &desired.name).unwrap();
        assert_eq!(engine::resource::diff(&desired, &observed), Change::NoOp);

        fs::write(&binary, "elf, patched").unwrap();
        match engine::resource::diff(&desired, &observe(&target, &desired.name).unwrap()) {
            Change::Replace { fields, .. } => {
                assert_eq!(fields.len(), 1, "{fields:?}");
                assert_eq!(fields[0].field, "binary_sha256");
                assert_eq!(fields[0].want, record.details.binary_sha256);
            }
            other => panic!("a modified copy must be replaced, got {other:?}"),
        }
        fs::remove_file(folder.join(ARCHIVE)).unwrap();
        assert_eq!(observe(&target, &desired.name).unwrap(), Observed::Absent);
    }

    #[test]
    fn file_hash_is_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "2").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35"
        );
    }
}
