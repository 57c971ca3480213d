//! Daemonless, reproducible container image build for the `model-image` binary (DESIGN.md §5).
//!
//! [`build`] makes a one-layer image with no base: the binary at `/usr/local/bin/model-image`, exactly its
//! shared-library closure as `ldd` resolves it on the build host (or nothing, for a static binary),
//! `/opt/ml`, `/tmp`, and a minimal `/etc/passwd` and `/etc/group`. The layer, the image config and the
//! Docker v2 schema 2 manifest are byte-for-byte reproducible: the same binary and libraries give the same
//! manifest digest. The result holds every blob with its digest, ready for a registry push, and
//! [`BuiltImage::write_docker_archive`] writes the `docker load`-able archive the local target uses.
//!
//! ```no_run
//! let spec = image::ImageSpec::new("target/release/model-image", "0.1.0");
//! let built = image::build(&spec)?;
//! println!("{}", built.manifest_digest);
//! built.write_docker_archive("model-image.tar".as_ref(), "model-image:0.1.0")?;
//! # Ok::<(), image::ImageError>(())
//! ```

mod archive;
mod cache;
mod closure;
mod config;
mod digest;
mod elf;
mod error;
mod layer;
mod manifest;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

pub use cache::cached_digest;
pub use closure::{Linkage, SharedLibrary, parse_ldd, shared_libraries};
pub use config::{BINARY_PATH, CREATED, EXPOSED_PORT, PATH_ENV, TITLE_LABEL, VERSION_LABEL};
pub use digest::{Digest, ParseDigestError};
pub use error::ImageError;
pub use layer::{FileKind, Layer, LayerFile, MTIME};
pub use manifest::{CONFIG_MEDIA_TYPE, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};

/// What to build: the binary to ship and how to label it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// The compiled `model-image` (for the build host's architecture).
    pub binary: PathBuf,
    /// The version recorded in the `org.opencontainers.image.version` label.
    pub version: String,
    /// More labels; a key that repeats a standard label replaces it.
    pub extra_labels: BTreeMap<String, String>,
}

impl ImageSpec {
    /// A spec with no extra labels.
    pub fn new(binary: impl Into<PathBuf>, version: impl Into<String>) -> Self {
        Self {
            binary: binary.into(),
            version: version.into(),
            extra_labels: BTreeMap::new(),
        }
    }
}

/// A built image: every blob, its digest, and what went into the layer.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The manifest bytes to push, exactly (Docker v2 schema 2).
    pub manifest: Vec<u8>,
    /// sha256 of `manifest`: the image's identity (`repo@sha256:…`).
    pub manifest_digest: Digest,
    /// The image config bytes (a blob of [`CONFIG_MEDIA_TYPE`]).
    pub config: Vec<u8>,
    /// sha256 of `config`; Docker's image id.
    pub config_digest: Digest,
    /// The layers, base first (this build makes exactly one).
    pub layers: Vec<Layer>,
    /// Every entry of the layer, in layer order.
    pub files: Vec<LayerFile>,
    /// The platform architecture in the config (`amd64`, `arm64`).
    pub architecture: &'static str,
}

/// A blob to upload before the manifest: its media type, digest and bytes.
#[derive(Debug, Clone, Copy)]
pub struct Blob<'a> {
    pub media_type: &'static str,
    pub digest: &'a Digest,
    pub bytes: &'a [u8],
}

impl BuiltImage {
    /// The blobs a registry needs before the manifest can be put: the config, then each layer (gzip).
    pub fn blobs(&self) -> Vec<Blob<'_>> {
        let config = Blob {
            media_type: CONFIG_MEDIA_TYPE,
            digest: &self.config_digest,
            bytes: &self.config,
        };
        let layers = self.layers.iter().map(|layer| Blob {
            media_type: LAYER_MEDIA_TYPE,
            digest: &layer.digest,
            bytes: &layer.blob,
        });
        std::iter::once(config).chain(layers).collect()
    }

    /// Writes a `docker load`-able archive (the `docker save` layout) tagged `repo_tag`
    /// (`model-image:0.1.0`), atomically and reproducibly.
    pub fn write_docker_archive(&self, path: &Path, repo_tag: &str) -> Result<(), ImageError> {
        archive::write(self, path, repo_tag)
    }
}

/// The image architecture for this build host (`x86_64` -> `amd64`, `aarch64` -> `arm64`).
pub fn host_architecture() -> Result<&'static str, ImageError> {
    match std::env::consts::ARCH {
        "x86_64" => Ok("amd64"),
        "aarch64" => Ok("arm64"),
        arch => Err(ImageError::UnsupportedHost { arch }),
    }
}

/// Contents of `/etc/passwd` and `/etc/group`: root only, as in distroless.
const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\n";

/// Builds the image for `spec`: reads the binary, checks it is an ELF for this host, resolves its
/// shared-library closure with `ldd` (failing if anything is not found), and assembles layer, config and
/// manifest.
pub fn build(spec: &ImageSpec) -> Result<BuiltImage, ImageError> {
    let architecture = host_architecture()?;
    let binary = fs::read(&spec.binary).map_err(|source| ImageError::BinaryMissing {
        path: spec.binary.clone(),
        source,
    })?;
    let elf = elf::inspect(&binary).ok_or_else(|| ImageError::NotElf {
        path: spec.binary.clone(),
    })?;
    let binary_arch = elf::machine_name(elf.machine);
    if binary_arch != architecture {
        return Err(ImageError::ArchMismatch {
            path: spec.binary.clone(),
            binary: binary_arch,
            host: architecture,
        });
    }
    let libraries = closure::resolve(&spec.binary, &elf)?;

    let mut tree = layer::LayerTree::default();
    tree.file("/etc/passwd", 0o644, PASSWD.into(), None)?;
    tree.file("/etc/group", 0o644, GROUP.into(), None)?;
    tree.directory("/opt/ml", 0o755)?;
    tree.directory("/root", 0o700)?;
    tree.directory("/tmp", 0o1777)?;
    tree.file(BINARY_PATH, 0o755, binary, Some(spec.binary.clone()))?;
    for library in &libraries {
        // fs::read follows symlinks: the layer holds the real contents as a regular file at the path
        // the loader looks for (e.g. /lib64/ld-linux-x86-64.so.2, a symlink on the host).
        let data = fs::read(&library.path).map_err(|source| ImageError::Read {
            path: library.path.clone(),
            source,
        })?;
        let path = library.path.to_str().ok_or_else(|| ImageError::LayerPath {
            path: library.path.display().to_string(),
        })?;
        tree.file(path, 0o755, data, Some(library.path.clone()))?;
    }

    let files = tree.files();
    let layer = tree.build()?;
    let labels = config::labels(&spec.version, &spec.extra_labels);
    let config = config::render(architecture, &labels, &[&layer.diff_id]);
    let config_digest = Digest::sha256(&config);
    let layers = vec![layer];
    let manifest = manifest::render(&config_digest, config.len() as u64, &layers);
    Ok(BuiltImage {
        manifest_digest: Digest::sha256(&manifest),
        manifest,
        config,
        config_digest,
        layers,
        files,
        architecture,
    })
}
