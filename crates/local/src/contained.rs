//! Paths the local target acts on, checked to lie inside the deployment's state folder.
//!
//! Records are files anyone with write access to the state folder can craft (a copied or cloned
//! `.orchestrate/`, a hand edit), so a path read back from one is a [`RecordedPath`]: it can be
//! written and compared, but not used, until [`State::contain`](crate::state::State::contain)
//! turns it into a [`ContainedPath`]. Paths the target derives itself are checked the same way
//! before anything is deleted, created or run there, because a folder on the way may be a symlink.
//!
//! The check is on the resolved path: every symlink on the way followed (as far as the path
//! exists), `..` refused outright, and the result strictly inside the kind's folder of the
//! deployment's resolved state folder (`<state>/training-jobs/…` for a training job). A
//! [`ContainedPath`] holds that resolved path, so what is removed or read is what was checked.

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::ops::Deref;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A path inside a kind's folder of the deployment's state folder, resolved (no symlinks, no `..`).
/// Only [`State::contain`](crate::state::State::contain) makes one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainedPath(PathBuf);

impl ContainedPath {
    /// Checks `path` against `folder` (already resolved): see the module docs.
    pub(crate) fn check(folder: &Path, path: &Path) -> Result<ContainedPath, Escape> {
        if !path.is_absolute() {
            return Err(Escape::Relative);
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(Escape::ParentDir);
        }
        let resolved = resolve(path);
        if resolved.starts_with(folder) && resolved != folder {
            return Ok(ContainedPath(resolved));
        }
        let folder = folder.to_path_buf();
        if resolved == path {
            Err(Escape::Outside { folder })
        } else {
            Err(Escape::Symlink { resolved, folder })
        }
    }

    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

impl Deref for ContainedPath {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for ContainedPath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<OsStr> for ContainedPath {
    fn as_ref(&self) -> &OsStr {
        self.0.as_os_str()
    }
}

/// A path as a record holds it: written from a [`ContainedPath`] (or anything, in tests), never
/// used before it is checked again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordedPath(PathBuf);

impl RecordedPath {
    /// The path as recorded, for [`State::contain`](crate::state::State::contain) and messages.
    pub(crate) fn unchecked(&self) -> &Path {
        &self.0
    }
}

impl From<&ContainedPath> for RecordedPath {
    fn from(path: &ContainedPath) -> Self {
        RecordedPath(path.0.clone())
    }
}

impl From<PathBuf> for RecordedPath {
    fn from(path: PathBuf) -> Self {
        RecordedPath(path)
    }
}

/// Why a path is not inside the folder it must be in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Escape {
    Relative,
    ParentDir,
    /// The path itself is elsewhere.
    Outside {
        folder: PathBuf,
    },
    /// A symlink on the way leads elsewhere.
    Symlink {
        resolved: PathBuf,
        folder: PathBuf,
    },
}

impl fmt::Display for Escape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Escape::Relative => f.write_str("is not an absolute path"),
            Escape::ParentDir => f.write_str("contains `..`"),
            Escape::Outside { folder } => write!(f, "is not inside `{}`", folder.display()),
            Escape::Symlink { resolved, folder } => write!(
                f,
                "leads through a symlink to `{}`, which is not inside `{}`",
                resolved.display(),
                folder.display()
            ),
        }
    }
}

/// `path` with every symlink resolved as far as it exists: the longest existing ancestor
/// canonicalised, the rest (which cannot hold a symlink) appended, `..` there taken lexically.
pub(crate) fn resolve(path: &Path) -> PathBuf {
    for ancestor in path.ancestors() {
        if ancestor.as_os_str().is_empty() {
            break;
        }
        let Ok(mut resolved) = fs::canonicalize(ancestor) else {
            continue;
        };
        let rest = path.strip_prefix(ancestor).unwrap_or(Path::new(""));
        for component in rest.components() {
            match component {
                Component::ParentDir => {
                    resolved.pop();
                }
                Component::Normal(part) => resolved.push(part),
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            }
        }
        return resolved;
    }
    path.to_path_buf()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn only_paths_resolving_strictly_inside_the_folder_are_contained() {
        let dir = tempfile::tempdir().unwrap();
        let base = resolve(dir.path());
        let folder = base.join("state/training-jobs");
        fs::create_dir_all(folder.join("job-1")).unwrap();
        fs::create_dir_all(base.join("outside")).unwrap();
        symlink(base.join("outside"), folder.join("link")).unwrap();

        let inside = ContainedPath::check(&folder, &folder.join("job-1")).unwrap();
        assert_eq!(inside.as_path(), folder.join("job-1"));
        // Not created yet is fine: the rest of the path cannot hold a symlink.
        assert!(ContainedPath::check(&folder, &folder.join("job-2/opt_ml")).is_ok());

        assert_eq!(
            ContainedPath::check(&folder, Path::new("job-1")),
            Err(Escape::Relative)
        );
        assert_eq!(
            ContainedPath::check(&folder, &folder.join("job-1/../../buckets")),
            Err(Escape::ParentDir)
        );
        for path in [folder.clone(), base.join("outside"), PathBuf::from("/")] {
            assert_eq!(
                ContainedPath::check(&folder, &path),
                Err(Escape::Outside {
                    folder: folder.clone()
                }),
                "{}",
                path.display()
            );
        }
        for (path, resolved) in [
            (folder.join("link"), base.join("outside")),
            (folder.join("link/deeper"), base.join("outside/deeper")),
        ] {
            assert_eq!(
                ContainedPath::check(&folder, &path),
                Err(Escape::Symlink {
                    resolved,
                    folder: folder.clone()
                }),
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn resolving_follows_symlinks_as_far_as_the_path_exists() {
        let dir = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir_all(base.join("real")).unwrap();
        symlink(base.join("real"), base.join("link")).unwrap();
        assert_eq!(resolve(&base.join("link/a/b")), base.join("real/a/b"));
        assert_eq!(resolve(&base.join("missing/../real")), base.join("real"));
        assert_eq!(resolve(&base), base);
    }
}
