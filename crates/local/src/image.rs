//! The container image: built by the image crate exactly as for AWS (same layer, config and
//! manifest digest), kept in `images/<digest hex>/` as the `docker load`-able `image.tar` beside a
//! copy of the binary it ships, `model-image`. Training jobs and endpoints run that copy, so they
//! run exactly what was imaged, whatever happens to the build output afterwards.
//!
//! An image that a model kept for rollback runs is not deleted while the endpoint records that
//! model's config: rolling back must find its binary.
//!
//! Observation checks both files are there and that the copy is still the imaged binary (its
//! sha256, recomputed only when its size or mtime changed); a modified copy shows as a differing
//! `digest`, which `up` replaces.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use engine::resource::{Desired, Kind, Observed};
use engine::target::Applied;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::state::{Record, Stamp};
use crate::{LocalError, LocalTarget, desired_fields, io_error, observed_record, remove_dir_all};

const KIND: Kind = Kind::Image;
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

/// The hex digits of `sha256:<hex>` (or the text itself).
pub(crate) fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// The image folder of a digest.
pub(crate) fn folder(target: &LocalTarget, digest: &str) -> PathBuf {
    target.state.kind_dir(KIND).join(hex(digest))
}

/// The imaged binary for an image reference `repo@sha256:…` or a digest.
pub(crate) fn binary_for(target: &LocalTarget, image_ref: &str) -> PathBuf {
    let digest = image_ref.rsplit_once('@').map_or(image_ref, |(_, digest)| digest);
    folder(target, digest).join(BINARY)
}

pub(crate) fn observe(target: &LocalTarget, desired: &Desired) -> Result<Observed, LocalError> {
    let Some(record) = target.state.read::<ImageDetails>(KIND, &desired.name)? else {
        return Ok(Observed::Absent);
    };
    let folder = &record.details.folder;
    let binary = folder.join(BINARY);
    if !binary.is_file() || !folder.join(ARCHIVE).is_file() {
        return Ok(Observed::Absent);
    }
    let stamp = Stamp::of(&binary).map_err(io_error(KIND, &desired.name, "stat", &binary))?;
    if stamp == record.details.binary {
        return Ok(observed_record(Some(record)));
    }
    let sha256 = sha256_file(&binary).map_err(io_error(KIND, &desired.name, "hash", &binary))?;
    if sha256 == record.details.binary_sha256 {
        return Ok(observed_record(Some(record)));
    }
    Ok(observed_record(Some(record)).with_field(
        "digest",
        format!("unknown (the imaged binary was modified: sha256 {sha256})"),
    ))
}

pub(crate) fn apply(target: &LocalTarget, desired: &Desired) -> Result<Applied, LocalError> {
    let name = desired.name.as_str();
    let want = desired.get("digest").unwrap_or_default();
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

    let repository = name.split_once('@').map_or(name, |(repo, _)| repo);
    let repo_tag = format!("{repository}:{}", built.manifest_digest.short12());
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
        .write(KIND, &Record::new(name, desired_fields(desired), details))?;
    Ok(Applied::Ready)
}

/// Deletes the image folder, unless a model the endpoint runs or may roll back to runs this image.
pub(crate) fn delete(target: &LocalTarget, name: &str) -> Result<(), LocalError> {
    if crate::endpoint::rollback_protected(target)?
        .images
        .iter()
        .any(|i| i == name)
    {
        return Ok(());
    }
    if let Some(record) = target.state.read::<ImageDetails>(KIND, name)? {
        remove_dir_all(KIND, name, &record.details.folder)?;
    }
    target.state.remove(KIND, name)
}

impl LocalTarget {
    /// The remembered build if it has digest `want`, else a fresh build that must have it.
    fn built_image(&self, want: &str) -> Result<::image::BuiltImage, LocalError> {
        let remembered = self.built.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let built = match remembered {
            Some(built) if built.manifest_digest.as_str() == want => built,
            _ => self.build_image()?,
        };
        if built.manifest_digest.as_str() != want {
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
    use super::*;

    #[test]
    fn digests_and_references_map_to_folders() {
        assert_eq!(hex("sha256:abc"), "abc");
        assert_eq!(hex("abc"), "abc");
        let dir = tempfile::tempdir().unwrap();
        let spec = crate::tests::spec(dir.path());
        let target = LocalTarget::open(&spec, Path::new("model-image")).unwrap();
        let binary = binary_for(&target, "iot-model-image@sha256:abc");
        assert!(
            binary.ends_with("iot/images/abc/model-image"),
            "{}",
            binary.display()
        );
        assert_eq!(binary_for(&target, "sha256:abc"), binary);
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
