//! The manifest digest of a binary's image without building it again: builds are reproducible, so
//! the digest only changes when the binary does. A small JSON file remembers the last digest with a
//! cheap stamp of the binary (canonical path, size, modification time, this crate's version, which
//! decides the image layout). A no-op `status` or `up` then costs a `stat` instead of a build.

use std::path::Path;

use crate::{BuiltImage, Digest, ImageError, ImageSpec};

/// The cache file's content.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct CachedDigest {
    binary: String,
    digest: String,
}

/// The digest of `spec`'s image: read from `cache_file` when the binary's stamp matches, otherwise
/// built (and the build returned, so a caller that must push it does not build twice) and
/// remembered. A cache that cannot be written only costs a build next time; its folder is not
/// created here.
pub fn cached_digest(
    spec: &ImageSpec,
    cache_file: &Path,
) -> Result<(Digest, Option<BuiltImage>), ImageError> {
    let stamp = binary_stamp(&spec.binary);
    if let (Some(stamp), Ok(text)) = (&stamp, std::fs::read_to_string(cache_file))
        && let Ok(cached) = serde_json::from_str::<CachedDigest>(&text)
        && &cached.binary == stamp
        && let Ok(digest) = cached.digest.parse::<Digest>()
    {
        return Ok((digest, None));
    }
    let built = crate::build(spec)?;
    if let Some(stamp) = stamp
        && cache_file.parent().is_some_and(Path::is_dir)
    {
        let cached = CachedDigest {
            binary: stamp,
            digest: built.manifest_digest.to_string(),
        };
        let _ = serde_json::to_vec(&cached).map(|bytes| std::fs::write(cache_file, bytes));
    }
    Ok((built.manifest_digest.clone(), Some(built)))
}

/// Identifies a binary file cheaply: canonical path, size, modification time, crate version.
fn binary_stamp(path: &Path) -> Option<String> {
    let canonical = std::fs::canonicalize(path).ok()?;
    let metadata = std::fs::metadata(&canonical).ok()?;
    let modified = metadata
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(format!(
        "{}|{}|{}|{}",
        canonical.display(),
        metadata.len(),
        modified.as_nanos(),
        env!("CARGO_PKG_VERSION")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_or_unreadable_cache_is_rebuilt_and_a_fresh_one_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("digest.json");
        let spec = ImageSpec::new(dir.path().join("missing-binary"), "0.1.0");
        // No binary: nothing cached, the build's error surfaces.
        assert!(cached_digest(&spec, &cache).is_err());

        let stamp = binary_stamp(Path::new("/bin/sh")).expect("/bin/sh exists");
        let fake = "sha256:".to_string() + &"ab".repeat(32);
        std::fs::write(
            &cache,
            serde_json::to_vec(&CachedDigest {
                binary: stamp,
                digest: fake.clone(),
            })
            .unwrap(),
        )
        .unwrap();
        let spec = ImageSpec::new("/bin/sh", "0.1.0");
        let (digest, built) = cached_digest(&spec, &cache).unwrap();
        assert_eq!(digest.as_str(), fake, "a matching stamp is trusted");
        assert!(built.is_none());

        std::fs::write(&cache, "not json").unwrap();
        let (digest, built) = cached_digest(&spec, &cache).unwrap();
        let built = built.expect("rebuilt");
        assert_eq!(digest, built.manifest_digest);
        let text = std::fs::read_to_string(&cache).unwrap();
        assert!(text.contains(digest.as_str()), "remembered: {text}");
    }
}
