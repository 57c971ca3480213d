//! The image manifest a registry stores (Docker v2 schema 2): the config blob and the layer blobs by
//! digest, size and media type.
//!
//! Docker media types, not OCI ones: SageMaker rejects OCI manifests (DESIGN.md §5). The manifest is
//! serialised once and its exact bytes are what gets pushed; its digest is the sha256 of those bytes and
//! is how every other resource refers to the image (`repo@sha256:…`).

use serde::Serialize;

use crate::digest::Digest;
use crate::layer::Layer;

/// Media type of the manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Media type of the image config blob.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.docker.container.image.v1+json";
/// Media type of a gzip-compressed layer blob.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor<'a>,
    layers: Vec<Descriptor<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor<'a> {
    media_type: &'static str,
    size: u64,
    digest: &'a Digest,
}

/// The manifest bytes for a config blob of `config_size` bytes and the given layers.
pub(crate) fn render(config_digest: &Digest, config_size: u64, layers: &[Layer]) -> Vec<u8> {
    let manifest = Manifest {
        schema_version: 2,
        media_type: MANIFEST_MEDIA_TYPE,
        config: Descriptor {
            media_type: CONFIG_MEDIA_TYPE,
            size: config_size,
            digest: config_digest,
        },
        layers: layers
            .iter()
            .map(|layer| Descriptor {
                media_type: LAYER_MEDIA_TYPE,
                size: layer.size,
                digest: &layer.digest,
            })
            .collect(),
    };
    serde_json::to_vec(&manifest).expect("plain structs with string keys always serialise")
}
