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
//!
//! Nothing runs a binary a record names: a job or server runs [`runnable`]'s [`ImageBinary`], the
//! copy in the folder the image's digest gives (checked to resolve inside `images/`), a regular
//! file whose sha256 is the one the image's record holds.

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

use crate::contained::{ContainedPath, RecordedPath};
use crate::error::target_error;
use crate::state::{Record, Stamp, create_private_dir, remove_symlink};
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
    pub folder: RecordedPath,
    pub binary_sha256: String,
    pub binary: Stamp,
}

/// The image folder of a digest, `images/<digest hex>/` (not checked: see [`checked_folder`]).
pub(crate) fn folder(target: &LocalTarget, digest: &Digest) -> PathBuf {
    target.state.kind_dir(KIND).join(digest.hex())
}

/// The image folder of a digest, checked to resolve inside `images/`.
fn checked_folder(target: &LocalTarget, digest: &Digest) -> Result<ContainedPath, LocalError> {
    target
        .state
        .within(KIND, digest.as_str(), KIND, &folder(target, digest))
}

/// The imaged binary of an image, verified to be the deployment's own copy (see the module docs).
/// Only [`runnable`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageBinary(ContainedPath);

impl ImageBinary {
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

/// The binary that `kind` `name` runs for image `image`: the copy in the image's folder, if it is a
/// regular file with the sha256 the image's record holds.
pub(crate) fn runnable(
    target: &LocalTarget,
    kind: Kind,
    name: &str,
    image: &ImageRef,
) -> Result<ImageBinary, LocalError> {
    let missing = || LocalError::Missing {
        kind,
        name: name.to_string(),
        what: format!("image `{}`", image.digest),
    };
    let record = target
        .state
        .read::<ImageDetails>(KIND, image.digest.as_str())?
        .ok_or_else(missing)?;
    let binary = checked_folder(target, &image.digest)?.join(BINARY);
    let binary = target.state.within(KIND, image.digest.as_str(), KIND, &binary)?;
    if !fs::metadata(&binary).is_ok_and(|m| m.is_file()) {
        return Err(missing());
    }
    let stamp = Stamp::of(&binary).map_err(io_error(kind, name, "stat", &binary))?;
    if stamp != record.details.binary {
        let have = sha256_file(&binary).map_err(io_error(kind, name, "hash", &binary))?;
        if have != record.details.binary_sha256 {
            return Err(LocalError::NotImaged {
                kind,
                name: name.to_string(),
                image: image.digest.to_string(),
                binary: binary.to_path_buf(),
                want: record.details.binary_sha256,
                have,
            });
        }
    }
    Ok(ImageBinary(binary))
}

/// The image resource an image reference names (images are named by their digest).
pub(crate) fn resource(image: &ImageRef) -> ResourceId {
    ResourceId::new(KIND, image.digest.as_str())
}

fn observe(target: &LocalTarget, name: &str) -> Result<Observed, LocalError> {
    let Some(record) = target.state.read::<ImageDetails>(KIND, name)? else {
        return Ok(Observed::Absent);
    };
    let folder = target.state.recorded(KIND, name, KIND, &record.details.folder)?;
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
    let folder = checked_folder(target, want)?;
    create_private_dir(&folder).map_err(io_error(KIND, name, "create", &folder))?;

    let source = &target.model_image_bin;
    let binary = folder.join(BINARY);
    let staging = folder.join(format!(".{BINARY}.partial"));
    let archive = folder.join(ARCHIVE);
    // Both are written in place: never through a symlink left in the folder.
    for file in [&staging, &archive] {
        remove_symlink(file).map_err(io_error(KIND, name, "remove", file))?;
    }
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
    built
        .write_docker_archive(&archive, &repo_tag)
        .map_err(|source| LocalError::Image {
            path: archive.clone(),
            source,
        })?;

    let binary_sha256 = sha256_file(&binary).map_err(io_error(KIND, name, "hash", &binary))?;
    let stamp = Stamp::of(&binary).map_err(io_error(KIND, name, "stat", &binary))?;
    let details = ImageDetails {
        folder: RecordedPath::from(&folder),
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
        let folder = target.state.recorded(KIND, name, KIND, &record.details.folder)?;
        remove_dir_all(KIND, name, &folder)?;
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
pub(crate) mod tests {
    use engine::resource::Desired;

    use super::*;

    /// Images `binary` (its contents) as image `digest` the way `apply` leaves it: the copy, an
    /// archive and the record. Returns the image's settings.
    pub(crate) fn install(target: &LocalTarget, digest: &Digest, binary: &[u8]) -> ImageSettings {
        let settings = ImageSettings {
            image: ImageRef {
                repository: "iot-model-image".into(),
                digest: digest.clone(),
            },
        };
        let folder = checked_folder(target, digest).unwrap();
        create_private_dir(&folder).unwrap();
        let copy = folder.join(BINARY);
        fs::write(&copy, binary).unwrap();
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(folder.join(ARCHIVE), "tar").unwrap();
        let details = ImageDetails {
            folder: RecordedPath::from(&folder),
            binary_sha256: sha256_file(&copy).unwrap(),
            binary: Stamp::of(&copy).unwrap(),
        };
        let record = Record::new(digest.as_str(), settings.clone(), details);
        target.state.write(KIND, &record).unwrap();
        settings
    }

    #[test]
    fn only_the_images_own_unmodified_copy_is_runnable() {
        let dir = tempfile::tempdir().unwrap();
        let spec = crate::tests::spec(dir.path());
        let target = LocalTarget::open(&spec, Path::new("model-image")).unwrap();
        let digest = Digest::sha256(b"");
        let image = ImageRef {
            repository: "iot-model-image".into(),
            digest: digest.clone(),
        };
        assert_eq!(resource(&image), ResourceId::new(Kind::Image, digest.as_str()));
        let runnable = |image: &ImageRef| runnable(&target, Kind::TrainingJob, "iot-1", image);
        match runnable(&image) {
            Err(LocalError::Missing { what, .. }) => assert!(what.contains(digest.as_str()), "{what}"),
            other => panic!("no image yet: {other:?}"),
        }
        install(&target, &digest, b"elf");
        let binary = runnable(&image).unwrap();
        assert!(
            binary
                .path()
                .ends_with(format!("iot/images/{}/model-image", digest.hex())),
            "{}",
            binary.path().display()
        );
        assert_eq!(binary.path().parent().unwrap(), folder(&target, &digest));

        // Another binary in its place is not what was imaged.
        fs::write(binary.path(), "elf, patched").unwrap();
        match runnable(&image) {
            Err(LocalError::NotImaged { want, have, .. }) => assert_ne!(want, have),
            other => panic!("a patched copy must not run: {other:?}"),
        }
        // Nor is a symlink to a binary elsewhere, even one with the imaged contents.
        let elsewhere = dir.path().join("elsewhere");
        fs::write(&elsewhere, "elf").unwrap();
        fs::remove_file(binary.path()).unwrap();
        std::os::unix::fs::symlink(&elsewhere, binary.path()).unwrap();
        match runnable(&image) {
            Err(error @ LocalError::PathOutside { .. }) => {
                assert!(error.to_string().contains("elsewhere"), "{error}")
            }
            other => panic!("a symlinked copy must not run: {other:?}"),
        }
    }

    /// Regression: the image record's folder was removed by `delete` and read by `observe`
    /// wherever it pointed.
    #[tokio::test]
    async fn an_image_record_naming_a_folder_elsewhere_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let spec = crate::tests::spec(dir.path());
        let target = LocalTarget::open(&spec, Path::new("model-image")).unwrap();
        let digest = Digest::sha256(b"image");
        let settings = install(&target, &digest, b"elf");
        let sentinel = dir.path().join("precious");
        fs::create_dir_all(&sentinel).unwrap();
        fs::write(sentinel.join(BINARY), "elf").unwrap();
        fs::write(sentinel.join(ARCHIVE), "tar").unwrap();
        let mut record = target
            .state
            .read::<ImageDetails>(KIND, digest.as_str())
            .unwrap()
            .unwrap();
        record.details.folder = RecordedPath::from(sentinel.clone());
        target.state.write(KIND, &record).unwrap();
        for error in [
            observe(&target, digest.as_str()).unwrap_err(),
            delete(&target, digest.as_str()).unwrap_err(),
        ] {
            let text = error.to_string();
            assert!(matches!(error, LocalError::RecordOutside { .. }), "{text}");
            assert!(
                text.contains("images/sha256%3A") && text.contains("precious"),
                "names the record and the path: {text}"
            );
        }
        assert!(sentinel.join(BINARY).is_file(), "nothing was deleted");
        assert!(
            target
                .state
                .read::<ImageDetails>(KIND, digest.as_str())
                .unwrap()
                .is_some()
        );
        // The binary that runs is the one in the digest's folder, never the record's.
        let image = settings.image;
        let binary = runnable(&target, Kind::Endpoint, "iot", &image).unwrap();
        assert_eq!(binary.path(), folder(&target, &digest).join(BINARY));
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
            folder: RecordedPath::from(folder.clone()),
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
