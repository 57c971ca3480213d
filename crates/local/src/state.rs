//! The deployment's state folder: one small JSON record per resource and the lock that keeps two
//! runs apart.
//!
//! Layout, under `<local.state_dir>/<deployment>/`:
//! ```text
//! lock                                  held by the running `up`/`down` (pid and command inside)
//! image-digest.json                     the image digest of the last binary seen (a cache; removed
//!                                       by the locked run that leaves nothing else, so after `down`
//!                                       only the lock file stays)
//! buckets/<bucket>.json, <bucket>/      the bucket's record and folder (uploaded data inside)
//! training-data/<prefix>.json           one record per uploaded channel, named by its key prefix
//!                                       (`data/<sha12>/<channel>/`, percent-encoded)
//! roles/, repositories/, autoscaling/   records only
//! images/<digest>.json, <digest hex>/   record (named `sha256:…`); the imaged binary and the
//!                                       docker-load-able archive
//! training-jobs/<job>-<n>.json, <job>-<n>/   one record and SageMaker layout per attempt
//! models/<model>.json, <model>/         record; model.tar.gz and its extracted model/
//! endpoint-configs/<config>.json        record
//! endpoints/<endpoint>.json, .log       record (pid, port, url, previous config) and the server's log
//! endpoints/<endpoint>.starting         names a server being started until the record does
//! ```
//! Each kind's folder name is the kind's `local_folder` fact (declared with the kind in the engine).
//! A record holds the resource's name, the typed settings it was applied with (the desired ones, so
//! a healthy resource diffs clean), and target details (pids, paths). Records are written to a
//! temporary file in the same folder and renamed, so a reader never sees half a record; names are
//! percent-encoded into file names, so `data/…/train/` and `sha256:…` are plain files.
//!
//! The folder and every folder in it are created private (mode 0700), and an existing state folder
//! is made private when the target opens it: records name processes and paths the target acts on.
//! Paths read back from records, and the target's own paths before it deletes, creates or runs
//! anything there, are checked to stay inside the kind's folder ([`State::contain`], see
//! [`contained`](crate::contained)); a record or lock file that is a symlink is never written
//! through.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use engine::{Kind, Settings};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::contained::{ContainedPath, Escape, RecordedPath, resolve};
use crate::error::LocalError;
use crate::process::Marker;

/// The image-digest cache's file name in the state folder.
const DIGEST_CACHE: &str = "image-digest.json";
/// How the temporary file of a record being written is named (then renamed over the record).
const TEMP_PREFIX: &str = ".record-";

/// One resource's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record<D> {
    /// The resource's name (for a training job: with its attempt suffix).
    pub name: String,
    /// The settings it was applied with, as the desired state has them.
    pub settings: Settings,
    /// What the local target needs to know about it (pids, paths, file stamps).
    pub details: D,
}

impl<D> Record<D> {
    pub fn new(name: impl Into<String>, settings: impl Into<Settings>, details: D) -> Self {
        Self {
            name: name.into(),
            settings: settings.into(),
            details,
        }
    }
}

/// Details of resources that need none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoDetails {}

/// Size and modification time of a stored file: when they are unchanged, so is its recorded
/// sha256 (the same shortcut `make` and `rsync` take), and observing costs a `stat`, not a hash.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stamp {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_secs: u64,
    pub mtime_nanos: u32,
}

impl Stamp {
    pub fn of(path: &Path) -> std::io::Result<Stamp> {
        let metadata = fs::metadata(path)?;
        let mtime = metadata
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(Stamp {
            path: path.to_path_buf(),
            size: metadata.len(),
            mtime_secs: mtime.as_secs(),
            mtime_nanos: mtime.subsec_nanos(),
        })
    }

    /// Stamps of a file, or of every non-hidden file under a folder, sorted by path.
    pub fn all(path: &Path) -> std::io::Result<Vec<Stamp>> {
        let mut files = Vec::new();
        collect_files(path, &mut files)?;
        let mut stamps = files
            .iter()
            .map(|f| Stamp::of(f))
            .collect::<std::io::Result<Vec<_>>>()?;
        stamps.sort();
        Ok(stamps)
    }
}

/// A file, or every non-hidden file under a folder (as `engine::names::data_sha256` hashes them).
pub fn collect_files(path: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if !fs::metadata(path)?.is_dir() {
        files.push(path.to_path_buf());
        return Ok(());
    }
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        collect_files(&entry.path(), files)?;
    }
    Ok(())
}

/// The folder of one deployment's state.
#[derive(Debug, Clone)]
pub struct State {
    root: PathBuf,
}

impl State {
    /// The state of deployment `name` under `state_dir`, resolved (symlinks followed as far as
    /// the folder exists). Nothing is created yet.
    pub fn new(state_dir: &Path, name: &str) -> Self {
        let root = state_dir.join(name);
        let root = std::path::absolute(&root).unwrap_or(root);
        Self { root: resolve(&root) }
    }

    /// Makes an existing state folder private (mode 0700); a missing one is fine.
    pub fn make_private(&self) -> Result<(), LocalError> {
        let error = |source| LocalError::PrivateStateDir {
            path: self.root.clone(),
            source,
        };
        let mode = match fs::metadata(&self.root) {
            Ok(metadata) => metadata.permissions().mode() & 0o777,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(error(source)),
        };
        if mode != 0o700 {
            fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700)).map_err(error)?;
        }
        Ok(())
    }

    /// `path`, if it resolves inside the folder of `kind` (see [`contained`](crate::contained)).
    pub fn contain(&self, kind: Kind, path: &Path) -> Result<ContainedPath, Escape> {
        ContainedPath::check(&self.resolved_kind_dir(kind), path)
    }

    /// A path the record `record` of `kind` holds, checked to be in the folder of `inside`: an
    /// escaping one is an error naming the record file.
    pub(crate) fn recorded(
        &self,
        kind: Kind,
        record: &str,
        inside: Kind,
        path: &RecordedPath,
    ) -> Result<ContainedPath, LocalError> {
        self.contain(inside, path.unchecked())
            .map_err(|reason| LocalError::RecordOutside {
                kind,
                record: self.record_path(kind, record),
                path: path.unchecked().to_path_buf(),
                reason,
            })
    }

    /// A path of resource `name` of `kind` that the target derived itself, checked to be in the
    /// folder of `inside` before it is acted on.
    pub(crate) fn within(
        &self,
        kind: Kind,
        name: &str,
        inside: Kind,
        path: &Path,
    ) -> Result<ContainedPath, LocalError> {
        self.contain(inside, path)
            .map_err(|reason| LocalError::PathOutside {
                kind,
                name: name.to_string(),
                path: path.to_path_buf(),
                reason,
            })
    }

    /// The resource's own folder ([`resource_dir`](Self::resource_dir)), checked.
    pub(crate) fn resource(&self, kind: Kind, name: &str) -> Result<ContainedPath, LocalError> {
        self.within(kind, name, kind, &self.resource_dir(kind, name))
    }

    /// The marker of the processes started for a resource: its folder's path, whether or not it
    /// has a folder (see [`process`](crate::process)).
    pub fn marker(&self, kind: Kind, name: &str) -> Marker {
        Marker::new(self.resource_dir(kind, name))
    }

    /// Where the kind's folder must resolve to: in the resolved state folder, not a symlink away.
    fn resolved_kind_dir(&self, kind: Kind) -> PathBuf {
        resolve(&self.root).join(kind.facts().local_folder)
    }

    /// The kind's folder, checked not to lead elsewhere; created (private) when `create`.
    pub(crate) fn checked_kind_dir(&self, kind: Kind, create: bool) -> Result<PathBuf, LocalError> {
        let dir = self.kind_dir(kind);
        if create {
            create_private_dir(&dir).map_err(|source| LocalError::WriteRecord {
                kind,
                path: dir.clone(),
                source,
            })?;
        }
        let (want, resolved) = (self.resolved_kind_dir(kind), resolve(&dir));
        if resolved != want {
            return Err(LocalError::PathOutside {
                kind,
                name: kind.facts().local_folder.to_string(),
                path: dir,
                reason: Escape::Symlink {
                    resolved,
                    folder: want,
                },
            });
        }
        Ok(dir)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of a kind's records.
    pub fn kind_dir(&self, kind: Kind) -> PathBuf {
        self.root.join(kind.facts().local_folder)
    }

    /// Where a resource's own files live (beside its record): `<kind dir>/<encoded name>`.
    pub fn resource_dir(&self, kind: Kind, name: &str) -> PathBuf {
        self.kind_dir(kind).join(encode_name(name))
    }

    pub fn record_path(&self, kind: Kind, name: &str) -> PathBuf {
        self.kind_dir(kind).join(format!("{}.json", encode_name(name)))
    }

    /// Reads a record; `None` when there is none.
    pub fn read<D: DeserializeOwned>(&self, kind: Kind, name: &str) -> Result<Option<Record<D>>, LocalError> {
        read_record(kind, &self.record_path(kind, name))
    }

    /// Writes a record atomically (temporary file in the same folder, then rename).
    pub fn write<D: Serialize>(&self, kind: Kind, record: &Record<D>) -> Result<(), LocalError> {
        let mut bytes = serde_json::to_vec_pretty(record).map_err(|source| LocalError::WriteRecord {
            kind,
            path: self.record_path(kind, &record.name),
            source: std::io::Error::other(source),
        })?;
        bytes.push(b'\n');
        self.write_file(kind, &format!("{}.json", encode_name(&record.name)), &bytes)
    }

    /// Writes a file of the kind's folder atomically: a temporary file in the folder, renamed over
    /// `file_name` (which replaces a symlink there rather than writing through it).
    pub(crate) fn write_file(&self, kind: Kind, file_name: &str, bytes: &[u8]) -> Result<(), LocalError> {
        let dir = self.checked_kind_dir(kind, true)?;
        let path = dir.join(file_name);
        let error = |source| LocalError::WriteRecord {
            kind,
            path: path.clone(),
            source,
        };
        let mut temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&dir)
            .map_err(error)?;
        temp.write_all(bytes).map_err(error)?;
        temp.as_file().sync_all().map_err(error)?;
        temp.persist(&path).map_err(|e| error(e.error))?;
        Ok(())
    }

    /// Removes a record; a missing one is fine. Also removes the kind's folder once it is empty.
    pub fn remove(&self, kind: Kind, name: &str) -> Result<(), LocalError> {
        let path = self
            .checked_kind_dir(kind, false)?
            .join(format!("{}.json", encode_name(name)));
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(LocalError::WriteRecord { kind, path, source }),
        }
        self.prune(kind);
        Ok(())
    }

    /// Removes the kind's folder and then the state folder if they are empty (after `down`, only
    /// the lock file stays).
    pub fn prune(&self, kind: Kind) {
        let dir = self.kind_dir(kind);
        // Temporary files of record writes a killed run never finished: once no record is left
        // they are all that would keep the folder.
        if let Ok(entries) = fs::read_dir(&dir) {
            let entries: Vec<_> = entries.flatten().collect();
            let unfinished = |e: &fs::DirEntry| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX);
            if entries.iter().all(unfinished) {
                for entry in entries {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        let _ = fs::remove_dir(dir);
        let _ = fs::remove_dir(&self.root);
    }

    /// The image-digest cache (see `Target::image_digest`).
    pub fn digest_cache(&self) -> PathBuf {
        self.root.join(DIGEST_CACHE)
    }

    /// Tidies the state folder at the end of a run that holds the lock: every kind's folder that
    /// holds no record is pruned ([`prune`](Self::prune)), and once nothing but the lock file and
    /// the image-digest cache is left, the cache goes too. A `down` killed between removing a record
    /// and pruning its folder left an empty folder (or the cache) that no later `down` would find,
    /// the state folder never gone; the next locked run tidies it.
    pub fn tidy(&self) {
        for &kind in Kind::ALL {
            self.prune(kind);
        }
        let Ok(entries) = fs::read_dir(&self.root) else {
            return;
        };
        let only_cache = entries
            .flatten()
            .all(|entry| entry.file_name() == "lock" || entry.file_name() == DIGEST_CACHE);
        if only_cache {
            let _ = fs::remove_file(self.digest_cache());
        }
    }

    /// Every record of a kind, sorted by name.
    pub fn list<D: DeserializeOwned>(&self, kind: Kind) -> Result<Vec<Record<D>>, LocalError> {
        let dir = self.kind_dir(kind);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(LocalError::ReadRecord {
                    kind,
                    path: dir,
                    source,
                });
            }
        };
        let mut records = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| LocalError::ReadRecord {
                kind,
                path: dir.clone(),
                source,
            })?;
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            if file_name.starts_with('.') || !file_name.ends_with(".json") {
                continue;
            }
            if let Some(record) = read_record(kind, &entry.path())? {
                records.push(record);
            }
        }
        records.sort_by(|a: &Record<D>, b| a.name.cmp(&b.name));
        Ok(records)
    }

    /// Takes the deployment's lock: exclusive, not waiting. A second run gets [`LocalError::Locked`]
    /// naming the holder's pid and command.
    pub fn lock(&self) -> Result<StateLock, LocalError> {
        create_private_dir(&self.root).map_err(|source| LocalError::StateDir {
            path: self.root.clone(),
            source,
        })?;
        let path = self.root.join("lock");
        let error = |source| LocalError::Lock {
            path: path.clone(),
            source,
        };
        // Truncated and rewritten below: never through a symlink.
        remove_symlink(&path).map_err(error)?;
        // Not truncated on open: the contents name the current holder until we hold the lock.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = holder_note(&mut file);
                let holder = if holder.is_empty() {
                    "holder unknown".to_string()
                } else {
                    holder
                };
                return Err(LocalError::Locked { path, holder });
            }
            Err(fs::TryLockError::Error(source)) => return Err(error(source)),
        }
        let command: Vec<String> = std::env::args().collect();
        let note = format!("pid {} ({})\n", std::process::id(), command.join(" "));
        file.set_len(0).map_err(error)?;
        file.seek(SeekFrom::Start(0)).map_err(error)?;
        file.write_all(note.as_bytes()).map_err(error)?;
        Ok(StateLock { file, path })
    }
}

/// How long a run refused by the lock waits for the holder's note, which the holder writes just
/// after taking the lock (two runs that reach the lock together meet in between).
const NOTE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// The holder's note in a held lock file: read again, for at most [`NOTE_WAIT`], while it is
/// empty. Empty when the holder never writes one.
fn holder_note(file: &mut File) -> String {
    let deadline = std::time::Instant::now() + NOTE_WAIT;
    loop {
        let mut holder = String::new();
        let _ = file.seek(SeekFrom::Start(0));
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        if !holder.is_empty() || std::time::Instant::now() >= deadline {
            return holder.to_string();
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The held lock; dropping it releases the lock (the file stays, so the next run locks the same
/// file).
#[derive(Debug)]
pub struct StateLock {
    file: File,
    path: PathBuf,
}

impl StateLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

fn read_record<D: DeserializeOwned>(kind: Kind, path: &Path) -> Result<Option<Record<D>>, LocalError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LocalError::ReadRecord {
                kind,
                path: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|source| {
        // Records before the typed resource model kept `fields` (strings) instead of `settings`.
        let earlier = serde_json::from_slice::<serde_json::Value>(&bytes)
            .is_ok_and(|record| record.get("fields").is_some() && record.get("settings").is_none());
        if earlier {
            LocalError::EarlierRecord {
                kind,
                path: path.to_path_buf(),
            }
        } else {
            LocalError::CorruptRecord {
                kind,
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Creates a folder and its missing parents, private (mode 0700; the umask can only narrow it).
pub(crate) fn create_private_dir(path: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(path)
}

/// Removes `path` if it is a symlink, so what is written there next is a file of ours.
pub(crate) fn remove_symlink(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_symlink() => fs::remove_file(path),
        _ => Ok(()),
    }
}

/// A resource name as a file name: `[A-Za-z0-9_-]` and inner dots as they are, everything else
/// (`/`, `@`, `:`, `%`, a leading dot) as `%XX`.
pub fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, byte) in name.bytes().enumerate() {
        let plain = byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' || (byte == b'.' && i > 0);
        if plain {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use engine::kind::{EndpointSettings, RoleSettings};
    use engine::values::Hosting;

    use super::*;

    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    struct Details {
        pid: i32,
    }

    fn endpoint(config: &str) -> EndpointSettings {
        EndpointSettings {
            endpoint_config: config.to_string(),
            hosting: Hosting::Instances,
            tags: [("orchestrate:deployment", "iot")].into_iter().collect(),
        }
    }

    fn role() -> RoleSettings {
        RoleSettings {
            tags: Default::default(),
        }
    }

    #[test]
    fn stamps_change_with_content() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.csv"), "1").unwrap();
        fs::write(dir.path().join(".hidden"), "1").unwrap();
        let before = Stamp::all(dir.path()).unwrap();
        assert_eq!(before.len(), 1);
        assert_eq!(Stamp::all(dir.path()).unwrap(), before);
        fs::write(dir.path().join("a.csv"), "12").unwrap();
        assert_ne!(Stamp::all(dir.path()).unwrap(), before);
        assert!(Stamp::all(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn names_become_safe_file_names() {
        assert_eq!(encode_name("iot-anomaly-local"), "iot-anomaly-local");
        assert_eq!(
            encode_name("data/0123/train/train"),
            "data%2F0123%2Ftrain%2Ftrain"
        );
        assert_eq!(encode_name("data/0123/train/"), "data%2F0123%2Ftrain%2F");
        assert_eq!(encode_name("repo@sha256:ab"), "repo%40sha256%3Aab");
        assert_eq!(encode_name("sha256:ab"), "sha256%3Aab");
        assert_eq!(encode_name(".hidden.json"), "%2Ehidden.json");
        assert_ne!(encode_name("a%2Fb"), encode_name("a/b"));
    }

    #[test]
    fn records_round_trip_and_list_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(dir.path(), "iot");
        assert_eq!(state.read::<Details>(Kind::Endpoint, "iot").unwrap(), None);
        let record = Record::new("iot", endpoint("iot-abc"), Details { pid: 42 });
        state.write(Kind::Endpoint, &record).unwrap();
        assert_eq!(
            state.read::<Details>(Kind::Endpoint, "iot").unwrap(),
            Some(record.clone())
        );
        let other = Record::new("data/x/train/", endpoint("x"), Details { pid: 1 });
        state.write(Kind::Endpoint, &other).unwrap();
        let names: Vec<String> = state
            .list::<Details>(Kind::Endpoint)
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["data/x/train/", "iot"]);
        // Any record can be listed without knowing its details' type (for `owned`).
        assert_eq!(state.list::<serde_json::Value>(Kind::Endpoint).unwrap().len(), 2);
        // Overwriting leaves no temporary files behind.
        state
            .write(
                Kind::Endpoint,
                &Record::new("iot", endpoint("iot-def"), Details { pid: 43 }),
            )
            .unwrap();
        let files = fs::read_dir(state.kind_dir(Kind::Endpoint)).unwrap().count();
        assert_eq!(files, 2);
        assert_eq!(
            state
                .read::<Details>(Kind::Endpoint, "iot")
                .unwrap()
                .unwrap()
                .details
                .pid,
            43
        );
    }

    #[test]
    fn kind_folders_are_the_kinds_local_folders() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(dir.path(), "iot");
        for &kind in Kind::ALL {
            assert_eq!(state.kind_dir(kind), state.root().join(kind.facts().local_folder));
        }
        assert!(state.kind_dir(Kind::TrainingData).ends_with("iot/training-data"));
        assert_eq!(
            state.record_path(Kind::Image, "sha256:ab"),
            state.root().join("images/sha256%3Aab.json")
        );
    }

    #[test]
    fn removing_records_prunes_empty_folders_and_tolerates_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(dir.path(), "iot");
        state
            .write(Kind::Role, &Record::new("r", role(), NoDetails {}))
            .unwrap();
        state.remove(Kind::Role, "r").unwrap();
        state.remove(Kind::Role, "r").unwrap();
        assert!(!state.root().exists());
        assert!(state.list::<NoDetails>(Kind::Role).unwrap().is_empty());
    }

    /// Regression: a run killed while writing a record leaves its temporary file, which kept the
    /// kind's folder (and so the state folder) after `down`.
    #[test]
    fn removing_the_last_record_also_removes_unfinished_writes() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(dir.path(), "iot");
        state
            .write(Kind::Role, &Record::new("r", role(), NoDetails {}))
            .unwrap();
        fs::write(state.kind_dir(Kind::Role).join(".record-AbC123"), "{\"na").unwrap();
        state.remove(Kind::Role, "r").unwrap();
        assert!(!state.root().exists());
    }

    #[test]
    fn corrupt_record_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(dir.path(), "iot");
        fs::create_dir_all(state.kind_dir(Kind::Model)).unwrap();
        fs::write(state.record_path(Kind::Model, "m"), "{not json").unwrap();
        let error = state.read::<NoDetails>(Kind::Model, "m").unwrap_err();
        assert!(matches!(error, LocalError::CorruptRecord { .. }), "{error}");
        assert!(error.to_string().contains("models/m.json"), "{error}");
    }

    /// Upgrading: a record from before the typed resource model says so and how to clean up,
    /// instead of inviting the user to delete one record (which would orphan a running server).
    #[test]
    fn a_record_of_an_earlier_build_says_how_to_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(dir.path(), "iot");
        fs::create_dir_all(state.kind_dir(Kind::Endpoint)).unwrap();
        let earlier = r#"{"name": "iot", "fields": {"endpoint_config": "iot-1"}, "details": {"pid": 7}}"#;
        fs::write(state.record_path(Kind::Endpoint, "iot"), earlier).unwrap();
        let error = state.read::<NoDetails>(Kind::Endpoint, "iot").unwrap_err();
        assert!(matches!(error, LocalError::EarlierRecord { .. }), "{error}");
        let text = error.to_string();
        assert!(
            text.contains("earlier orchestrate") && text.contains("orchestrate down"),
            "{text}"
        );
    }

    /// Regression: `down` left `image-digest.json` beside the lock file (the layout promises only
    /// the lock file), and a `down` killed between removing a record and pruning its folder left
    /// the folder for good.
    #[test]
    fn tidying_leaves_only_the_lock_once_nothing_else_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(dir.path(), "iot");
        let lock = state.lock().unwrap();
        fs::write(state.digest_cache(), "{}").unwrap();
        state
            .write(Kind::Role, &Record::new("r", role(), NoDetails {}))
            .unwrap();
        state.tidy();
        assert!(state.digest_cache().is_file(), "kept while a record is left");
        state.remove(Kind::Role, "r").unwrap();
        // As a `down` killed between removing the last record and pruning its folder leaves it.
        fs::create_dir(state.kind_dir(Kind::TrainingJob)).unwrap();
        state.tidy();
        assert!(!state.digest_cache().exists());
        drop(lock);
        let left: Vec<_> = fs::read_dir(state.root())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, ["lock"]);
    }

    /// Regression: a run refused in the instant between the holder taking the lock and writing
    /// its note said "holder unknown" (two `up`s started together meet there).
    #[test]
    fn a_run_refused_before_the_holder_wrote_its_note_still_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(dir.path(), "iot");
        drop(state.lock().unwrap());
        // The holder, between its lock and its note.
        let path = state.root().join("lock");
        let mut holder = OpenOptions::new().write(true).open(&path).unwrap();
        holder.try_lock().unwrap();
        // Its note comes a moment after the refused run first reads the file.
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            holder.write_all(b"pid 42 (orchestrate up)\n").unwrap();
            holder
        });
        let error = state.lock().unwrap_err();
        let _holder = writer.join().unwrap();
        assert!(error.to_string().contains("(pid 42 (orchestrate up))"), "{error}");
    }

    #[test]
    fn second_lock_fails_naming_the_holder_and_drop_releases() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(dir.path(), "iot");
        let held = state.lock().unwrap();
        let error = state.lock().unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, LocalError::Locked { .. }), "{text}");
        assert!(text.contains(&format!("pid {}", std::process::id())), "{text}");
        drop(held);
        let again = state.lock().unwrap();
        assert!(again.path().ends_with("iot/lock"));
    }
}
