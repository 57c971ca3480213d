//! The `docker load`-able archive (the `docker save` format) the local target keeps instead of pushing:
//! `manifest.json`, the config as `<config hex>.json`, and each layer uncompressed as
//! `<diff_id hex>/layer.tar`.
//!
//! Layers are stored uncompressed, as `docker save` does, so every file in the archive is named after the
//! digest of its own bytes (`docker load`, `skopeo` and `podman load` all read this form). The archive is
//! itself a reproducible tar, written to a temporary file beside the destination and renamed into place.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use serde::Serialize;

use crate::BuiltImage;
use crate::error::ImageError;
use crate::layer::{FileKind, append};

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveManifest<'a> {
    config: String,
    repo_tags: [&'a str; 1],
    layers: Vec<String>,
}

pub(crate) fn write(image: &BuiltImage, path: &Path, repo_tag: &str) -> Result<(), ImageError> {
    if repo_tag.is_empty() || repo_tag.contains(char::is_whitespace) {
        return Err(ImageError::InvalidRepoTag {
            repo_tag: repo_tag.to_owned(),
        });
    }
    let config_name = format!("{}.json", image.config_digest.hex());
    let layer_dirs: Vec<String> = image
        .layers
        .iter()
        .map(|layer| layer.diff_id.hex().to_owned())
        .collect();
    let manifest = serde_json::to_vec(&[ArchiveManifest {
        config: config_name.clone(),
        repo_tags: [repo_tag],
        layers: layer_dirs.iter().map(|dir| format!("{dir}/layer.tar")).collect(),
    }])
    .expect("plain structs with string keys always serialise");

    // Sorted like the layer itself, so the archive bytes are reproducible too.
    let mut entries: BTreeMap<String, Option<&[u8]>> = BTreeMap::new();
    entries.insert(config_name, Some(&image.config));
    entries.insert("manifest.json".to_owned(), Some(&manifest));
    for (dir, layer) in layer_dirs.iter().zip(&image.layers) {
        entries.insert(dir.clone(), None);
        entries.insert(format!("{dir}/layer.tar"), Some(&layer.tar));
    }
    write_atomically(path, |file| {
        let mut builder = tar::Builder::new(BufWriter::new(file));
        for (name, data) in &entries {
            match data {
                Some(data) => append(&mut builder, name, FileKind::File, 0o644, data)?,
                None => append(&mut builder, name, FileKind::Directory, 0o755, &[])?,
            }
        }
        let mut out = builder.into_inner().map_err(|source| ImageError::Tar {
            path: path.display().to_string(),
            source,
        })?;
        out.flush().map_err(|source| ImageError::Write {
            path: path.to_owned(),
            source,
        })
    })
}

/// Streams the content into a temporary file in `path`'s directory, then renames it over `path`, so a
/// reader sees the old archive or the whole new one.
fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut File) -> Result<(), ImageError>,
) -> Result<(), ImageError> {
    let error = |source| ImageError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".image-archive-")
        .tempfile_in(dir)
        .map_err(error)?;
    fill(file.as_file_mut())?;
    file.as_file().sync_all().map_err(error)?;
    fs::set_permissions(file.path(), fs::Permissions::from_mode(0o644)).map_err(error)?;
    file.persist(path).map_err(|persist| error(persist.error))?;
    Ok(())
}
