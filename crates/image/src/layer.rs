//! The image's single layer: a file tree turned into a reproducible tar and its gzip blob.
//!
//! Reproducible means the bytes depend on file contents and nothing else: entries sorted by path (so a
//! parent directory always comes before its children), mtime 0, uid/gid 0 with empty user and group
//! names, fixed modes, and a gzip header without mtime or file name. The same binary and libraries give
//! the same `diff_id` and blob digest on every build.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;

use flate2::{Compression, GzBuilder};
use serde::Serialize;

use crate::digest::Digest;
use crate::error::ImageError;

/// The mtime of every entry (the epoch, like `SOURCE_DATE_EPOCH=0`).
pub const MTIME: u64 = 0;

/// A built layer, in both forms a consumer needs.
#[derive(Clone, PartialEq, Eq)]
pub struct Layer {
    /// The uncompressed tar (what a docker-archive stores; `diff_id` is its digest).
    pub tar: Vec<u8>,
    /// The gzip of `tar`, the blob a registry stores (`digest` and `size` describe it).
    pub blob: Vec<u8>,
    /// sha256 of `tar`, listed in the image config's `rootfs.diff_ids`.
    pub diff_id: Digest,
    /// sha256 of `blob`, listed in the manifest.
    pub digest: Digest,
    /// Length of `blob` in bytes.
    pub size: u64,
}

impl std::fmt::Debug for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layer")
            .field("diff_id", &self.diff_id)
            .field("digest", &self.digest)
            .field("size", &self.size)
            .field("tar_len", &self.tar.len())
            .finish()
    }
}

/// One entry of the layer, for printing what went in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerFile {
    /// Absolute path inside the image (`/usr/local/bin/model-image`).
    pub path: String,
    pub kind: FileKind,
    /// Permission bits as stored (`0o1777` for `/tmp`).
    pub mode: u32,
    /// Bytes of content (0 for directories).
    pub size: u64,
    /// The host file the content came from, if any.
    pub source: Option<PathBuf>,
}

/// Whether a layer entry is a directory or a regular file (the layer has nothing else).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    Directory,
    File,
}

#[derive(Debug)]
struct Entry {
    mode: u32,
    data: Option<Vec<u8>>,
    source: Option<PathBuf>,
}

/// The file tree of a layer, keyed by path without the leading `/`; the map's order is the tar order.
#[derive(Debug, Default)]
pub(crate) struct LayerTree {
    entries: BTreeMap<String, Entry>,
}

impl LayerTree {
    /// Adds a directory (and its parents, mode 0755) with the given mode.
    pub fn directory(&mut self, path: &str, mode: u32) -> Result<(), ImageError> {
        let key = self.add_parents(path)?;
        match self.entries.get_mut(&key) {
            Some(Entry { data: Some(_), .. }) => Err(ImageError::LayerPath { path: key }),
            Some(entry) => {
                entry.mode = mode;
                Ok(())
            }
            None => {
                self.entries.insert(
                    key,
                    Entry {
                        mode,
                        data: None,
                        source: None,
                    },
                );
                Ok(())
            }
        }
    }

    /// Adds a regular file (and its parents, mode 0755).
    pub fn file(
        &mut self,
        path: &str,
        mode: u32,
        data: Vec<u8>,
        source: Option<PathBuf>,
    ) -> Result<(), ImageError> {
        let key = self.add_parents(path)?;
        if self.entries.contains_key(&key) {
            return Err(ImageError::LayerPath { path: key });
        }
        self.entries.insert(
            key,
            Entry {
                mode,
                data: Some(data),
                source,
            },
        );
        Ok(())
    }

    /// Normalises `path` to a key and makes sure every ancestor is a directory entry.
    fn add_parents(&mut self, path: &str) -> Result<String, ImageError> {
        let key = path.trim_matches('/');
        let clean = !key.is_empty()
            && key
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..");
        if !clean {
            return Err(ImageError::LayerPath {
                path: path.trim_start_matches('/').to_owned(),
            });
        }
        for (at, _) in key.match_indices('/') {
            let parent = &key[..at];
            let entry = self.entries.entry(parent.to_owned()).or_insert(Entry {
                mode: 0o755,
                data: None,
                source: None,
            });
            if entry.data.is_some() {
                return Err(ImageError::LayerPath {
                    path: parent.to_owned(),
                });
            }
        }
        Ok(key.to_owned())
    }

    /// What the layer holds, in layer order.
    pub fn files(&self) -> Vec<LayerFile> {
        self.entries
            .iter()
            .map(|(path, entry)| LayerFile {
                path: format!("/{path}"),
                kind: if entry.data.is_some() {
                    FileKind::File
                } else {
                    FileKind::Directory
                },
                mode: entry.mode,
                size: entry.data.as_ref().map_or(0, |data| data.len() as u64),
                source: entry.source.clone(),
            })
            .collect()
    }

    /// The reproducible tar, its gzip, and their digests.
    pub fn build(&self) -> Result<Layer, ImageError> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, entry) in &self.entries {
            match &entry.data {
                Some(data) => append(&mut builder, path, FileKind::File, entry.mode, data)?,
                None => append(&mut builder, path, FileKind::Directory, entry.mode, &[])?,
            }
        }
        let tar = builder.into_inner().map_err(|source| ImageError::Tar {
            path: "layer.tar".to_owned(),
            source,
        })?;
        let blob = gzip(&tar).map_err(|source| ImageError::Tar {
            path: "layer.tar.gz".to_owned(),
            source,
        })?;
        Ok(Layer {
            diff_id: Digest::sha256(&tar),
            digest: Digest::sha256(&blob),
            size: blob.len() as u64,
            tar,
            blob,
        })
    }
}

/// Appends one entry with a fully explicit ustar header: nothing is taken from the host's metadata.
pub(crate) fn append<W: std::io::Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    kind: FileKind,
    mode: u32,
    data: &[u8],
) -> Result<(), ImageError> {
    let error = |source| ImageError::Tar {
        path: path.to_owned(),
        source,
    };
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(match kind {
        FileKind::Directory => tar::EntryType::Directory,
        FileKind::File => tar::EntryType::Regular,
    });
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_username("").map_err(error)?;
    header.set_groupname("").map_err(error)?;
    header.set_mtime(MTIME);
    header.set_size(data.len() as u64);
    builder.append_data(&mut header, path, data).map_err(error)
}

/// gzip with a fixed header: mtime 0, no file name, OS byte 255 ("unknown"), default level.
fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::with_capacity(bytes.len() / 2), Compression::default());
    encoder.write_all(bytes)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_created_and_come_before_children() {
        let mut tree = LayerTree::default();
        tree.file("/usr/local/bin/tool", 0o755, b"x".to_vec(), None)
            .unwrap();
        tree.directory("/tmp", 0o1777).unwrap();
        tree.file("/usr-share", 0o644, Vec::new(), None).unwrap();
        let paths: Vec<_> = tree.files().into_iter().map(|f| f.path).collect();
        assert_eq!(
            paths,
            [
                "/tmp",
                "/usr",
                "/usr-share",
                "/usr/local",
                "/usr/local/bin",
                "/usr/local/bin/tool"
            ]
        );
        let tmp = &tree.files()[0];
        assert_eq!((tmp.kind, tmp.mode), (FileKind::Directory, 0o1777));
    }

    #[test]
    fn a_path_claimed_twice_or_under_a_file_is_a_conflict() {
        let mut tree = LayerTree::default();
        tree.file("/etc/passwd", 0o644, Vec::new(), None).unwrap();
        for result in [
            tree.file("/etc/passwd", 0o644, Vec::new(), None),
            tree.directory("/etc/passwd", 0o755),
            tree.file("/etc/passwd/x", 0o644, Vec::new(), None),
            tree.file("/etc/../x", 0o644, Vec::new(), None),
            tree.file("/", 0o644, Vec::new(), None),
        ] {
            assert!(matches!(result, Err(ImageError::LayerPath { .. })), "{result:?}");
        }
    }

    #[test]
    fn the_same_tree_gives_the_same_bytes_and_the_gzip_header_is_fixed() {
        let make = || {
            let mut tree = LayerTree::default();
            tree.file("/a/b", 0o755, vec![7; 10_000], None).unwrap();
            tree.directory("/tmp", 0o1777).unwrap();
            tree.build().unwrap()
        };
        let (one, two) = (make(), make());
        assert!(one == two);
        assert_eq!(one.diff_id, Digest::sha256(&one.tar));
        assert_eq!(one.digest, Digest::sha256(&one.blob));
        // ID1 ID2 CM FLG(no name/comment/extra) MTIME(0) XFL OS(255)
        assert_eq!(&one.blob[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);

        let mut archive = tar::Archive::new(one.tar.as_slice());
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let header = entry.header();
            assert_eq!(header.mtime().unwrap(), 0);
            assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
            assert_eq!(header.username_bytes(), Some(&b""[..]));
            assert_eq!(header.groupname_bytes(), Some(&b""[..]));
            if entry.path().unwrap().to_str() == Some("tmp") {
                assert_eq!(header.mode().unwrap(), 0o1777);
            }
        }
    }
}
