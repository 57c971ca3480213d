//! The local target does not trust its own state records: crafted records (a copied or cloned
//! state folder, a hand edit) must not make `down` delete folders outside the deployment's state
//! folder, signal processes it did not start, or take another deployment's processes for its own;
//! and the state folder is private. Regression tests for the issue "the local target trusts its
//! own state records". None of them needs model-image.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use engine::desired::{DesiredState, desired_state};
use engine::executor;
use engine::progress::Silent;
use engine::resource::Kind;
use engine::target::{Found, LockRequest, Target, Upstream};
use engine::values::Digest;
use local::LocalTarget;
use local::process::{self, Marker};
use local::state::{State, encode_name};
use serde_json::json;

/// A deployment `name` in `dir` (sharing `dir`'s state folder with any other deployment there).
fn deployment(dir: &Path, name: &str) -> (LocalTarget, DesiredState) {
    std::fs::write(dir.join("train.csv"), "a,Label\n1,Normal\n").unwrap();
    let yaml = format!("version: 1\nname: {name}\ndata: {{train: train.csv}}\n");
    let spec = spec::parse(&yaml, "deploy.yaml", dir).unwrap_or_else(|e| panic!("{e:?}"));
    let target = LocalTarget::open(&spec, Path::new("model-image")).unwrap();
    let facts = target.facts(&Digest::sha256(b"image")).unwrap();
    let state = desired_state(&spec, spec::Target::Local, &facts);
    (target, state)
}

/// Writes the record of resource `name` of `kind` as a crafted file would be: the desired
/// settings of that kind, and `details`.
fn craft(
    target: &LocalTarget,
    state: &DesiredState,
    kind: Kind,
    name: &str,
    details: serde_json::Value,
) -> PathBuf {
    let settings = &state.get(kind).unwrap_or_else(|| panic!("no {kind}")).settings;
    let record = json!({ "name": name, "settings": settings, "details": details });
    let folder = target.state_dir().join(kind.facts().local_folder);
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join(format!("{}.json", encode_name(name)));
    std::fs::write(&path, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
    path
}

/// A folder outside every state folder, with a file in it, that must survive.
fn sentinel(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join("precious"), "keep me").unwrap();
    path
}

fn survives(sentinel: &Path) {
    assert_eq!(
        std::fs::read_to_string(sentinel.join("precious")).ok().as_deref(),
        Some("keep me"),
        "{} was deleted",
        sentinel.display()
    );
}

/// Deletes `found` and returns the error's whole chain (it must fail).
async fn refused(target: &LocalTarget, found: &Found) -> String {
    let error = target
        .delete(found)
        .await
        .expect_err("a crafted record must be refused");
    engine::target::error_chain(&error)
}

#[tokio::test]
async fn records_naming_folders_outside_the_state_make_down_refuse_and_delete_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (target, state) = deployment(dir.path(), "iot");
    let root = target.state_dir().to_path_buf();
    let job = state.training_job().to_string();
    let attempt = format!("{job}-1");

    // A training job attempt whose folder is elsewhere, absolutely, through `..`, and through a
    // symlink inside the state folder.
    let absolute = sentinel(dir.path(), "absolute");
    let dotted = sentinel(dir.path(), "dotted");
    let linked = sentinel(dir.path(), "linked");
    let job_details = |folder: &Path| json!({ "attempt": 1, "folder": folder, "pid": 0, "pgid": 0 });
    let cases = [
        (absolute.clone(), absolute.clone()),
        (dotted.clone(), root.join("training-jobs/../../../dotted")),
        (linked.clone(), root.join("training-jobs/link")),
    ];
    for (sentinel, folder) in &cases {
        let record = craft(&target, &state, Kind::TrainingJob, &attempt, job_details(folder));
        if folder.ends_with("link") {
            symlink(sentinel, folder).unwrap();
        }
        let down = executor::down(&target, |_| false, &Silent)
            .await
            .expect_err("down must refuse");
        let text = down.to_string();
        assert!(text.contains(&attempt), "{text}");
        let text = refused(&target, &Found::new(Kind::TrainingJob, &attempt)).await;
        assert!(
            text.contains(&record.display().to_string()) && text.contains("nothing was changed"),
            "the error names the record file: {text}"
        );
        assert!(
            text.contains(&folder.display().to_string()),
            "and the path: {text}"
        );
        survives(sentinel);
        assert!(record.is_file(), "the record is kept for the user to inspect");
        std::fs::remove_file(&record).unwrap();
    }

    // Training data whose folder or bucket is elsewhere; an image whose folder is.
    let data = state.get(Kind::TrainingData).unwrap().name.clone();
    let data_folder = sentinel(dir.path(), "data");
    let bucket = root.join("buckets/iot-local");
    craft(
        &target,
        &state,
        Kind::TrainingData,
        &data,
        json!({ "bucket": bucket, "folder": data_folder, "path": data_folder, "stamps": [] }),
    );
    let text = refused(&target, &Found::new(Kind::TrainingData, &data)).await;
    assert!(text.contains("training-data/data%2F"), "{text}");
    survives(&data_folder);

    let image = state.get(Kind::Image).unwrap().name.clone();
    let image_folder = sentinel(dir.path(), "image");
    let stamp = json!({ "path": image_folder, "size": 0, "mtime_secs": 0, "mtime_nanos": 0 });
    craft(
        &target,
        &state,
        Kind::Image,
        &image,
        json!({ "folder": image_folder, "binary_sha256": "", "binary": stamp }),
    );
    let text = refused(&target, &Found::new(Kind::Image, &image)).await;
    assert!(text.contains("images/sha256%3A"), "{text}");
    survives(&image_folder);
}

/// A kind's folder that is a symlink out of the state folder: derived paths are checked too.
#[tokio::test]
async fn a_kind_folder_symlinked_out_of_the_state_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let (target, state) = deployment(dir.path(), "iot");
    let outside = dir.path().join("outside");
    let bucket = sentinel(&outside, "iot-local");
    std::fs::create_dir_all(target.state_dir()).unwrap();
    symlink(&outside, target.state_dir().join("buckets")).unwrap();
    craft(&target, &state, Kind::Bucket, "iot-local", json!({}));
    assert!(
        outside.join("iot-local.json").is_file(),
        "the record went through the link"
    );
    let text = refused(&target, &Found::new(Kind::Bucket, "iot-local")).await;
    assert!(text.contains("leads through a symlink"), "{text}");
    survives(&bucket);
    // Applying does not write through it either.
    let nothing = Default::default();
    let upstream = Upstream {
        state: &state,
        outputs: &nothing,
    };
    let desired = state.get(Kind::Bucket).unwrap();
    let change = engine::resource::Change::Create;
    assert!(target.apply(desired, &change, upstream).await.is_err());
    survives(&bucket);
}

/// `sh -c 'sleep 60; :' sh <mention>`, in its own process group: a process this test started,
/// whose command line mentions `mention` (what the old check looked for).
fn unrelated(mention: &Path) -> Child {
    Command::new("sh")
        .args(["-c", "sleep 60; :", "sh"])
        .arg(mention)
        .process_group(0)
        .spawn()
        .unwrap()
}

/// `/proc/<pid>/stat` field 22, the start time, as the target records it.
fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

fn still_runs(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_none()
}

#[tokio::test]
async fn a_recorded_pid_of_an_unrelated_process_is_not_signalled() {
    let dir = tempfile::tempdir().unwrap();
    let (target, state) = deployment(dir.path(), "iot");
    let mut server = unrelated(target.state_dir());
    let mut trainer = unrelated(target.state_dir());
    let job = format!("{}-1", state.training_job());
    let claim = |child: &Child| {
        let pid = child.id();
        (pid, start_time(pid))
    };
    let (pid, started) = claim(&server);
    let model_dir = target.state_dir().join("models/m/model");
    craft(
        &target,
        &state,
        Kind::Endpoint,
        "iot",
        json!({ "pid": pid, "pgid": pid, "start_time": started, "port": 1,
                "url": "http://127.0.0.1:1", "model_dir": model_dir }),
    );
    let (pid, started) = claim(&trainer);
    let folder = target.state_dir().join("training-jobs").join(&job);
    craft(
        &target,
        &state,
        Kind::TrainingJob,
        &job,
        json!({ "attempt": 1, "folder": folder, "pid": pid, "pgid": pid, "start_time": started }),
    );
    // Neither is ours: the endpoint is not running, and down has nothing to stop.
    let endpoint = state.get(Kind::Endpoint).unwrap();
    let observed = target.observe(endpoint).await.unwrap();
    assert!(format!("{observed:?}").contains("not running"), "{observed:?}");
    // A record of an earlier build (no start time) cannot be verified either, and says so.
    let (pid, _) = claim(&server);
    craft(
        &target,
        &state,
        Kind::Endpoint,
        "iot",
        json!({ "pid": pid, "pgid": pid, "port": 1, "url": "http://127.0.0.1:1", "model_dir": model_dir }),
    );
    let observed = format!("{:?}", target.observe(endpoint).await.unwrap());
    assert!(observed.contains("earlier orchestrate"), "{observed}");
    executor::down(&target, |_| false, &Silent).await.expect("down");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(still_runs(&mut server), "the unrelated server was signalled");
    assert!(still_runs(&mut trainer), "the unrelated trainer was signalled");
    for child in [&mut server, &mut trainer] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

/// A process started for deployment `deployment`'s endpoint, as the target starts one (marked),
/// its command line mentioning that deployment's state folder.
fn served_for(dir: &Path, deployment: &str) -> process::Spawned {
    let state = State::new(&dir.join(".orchestrate"), deployment);
    let marker: Marker = state.marker(Kind::Endpoint, deployment);
    process::spawn_detached(
        r#"( sleep 60; : "$1" ) >/dev/null 2>&1"#,
        &[state.root().as_os_str()],
        &[],
        dir,
        &marker,
    )
    .unwrap()
    .unwrap()
}

fn endpoint_details(target: &LocalTarget, spawned: process::Spawned) -> serde_json::Value {
    json!({ "pid": spawned.pid, "pgid": spawned.pgid, "start_time": spawned.start_time, "port": 1,
            "url": "http://127.0.0.1:1", "model_dir": target.state_dir().join("models/m/model") })
}

/// Regression: "is this process ours" looked for the state folder's path in the command line, and
/// `<state>/iot` is a prefix of `<state>/iot-prod`: `down` of `iot` stopped `iot-prod`'s server.
#[tokio::test]
async fn down_of_a_deployment_does_not_touch_one_whose_name_it_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let (iot, iot_state) = deployment(dir.path(), "iot");
    let (prod, prod_state) = deployment(dir.path(), "iot-prod");
    let prod_server = served_for(dir.path(), "iot-prod");
    let prod_marker =
        State::new(&dir.path().join(".orchestrate"), "iot-prod").marker(Kind::Endpoint, "iot-prod");
    assert!(process::alive(prod_server, &prod_marker));
    craft(
        &prod,
        &prod_state,
        Kind::Endpoint,
        "iot-prod",
        endpoint_details(&prod, prod_server),
    );
    // `iot`'s record names `iot-prod`'s server (copied over, or stale after a pid reuse).
    craft(
        &iot,
        &iot_state,
        Kind::Endpoint,
        "iot",
        endpoint_details(&iot, prod_server),
    );
    executor::down(&iot, |_| false, &Silent).await.expect("down iot");
    assert!(
        process::alive(prod_server, &prod_marker),
        "iot-prod's server survives iot's down"
    );
    // Its own deployment finds and stops it.
    executor::down(&prod, |_| false, &Silent)
        .await
        .expect("down iot-prod");
    assert!(!process::alive(prod_server, &prod_marker));
    assert!(process::find(&prod_marker).is_empty());
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn state_folders_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let (target, state) = deployment(dir.path(), "iot");
    let lock = target
        .lock(LockRequest {
            state: Some(&state),
            owner: "test",
            break_lock: false,
        })
        .await
        .unwrap()
        .expect("a lock");
    let nothing = Default::default();
    let upstream = Upstream {
        state: &state,
        outputs: &nothing,
    };
    for kind in [Kind::Bucket, Kind::TrainingData, Kind::Role] {
        let desired = state.get(kind).unwrap();
        let change = engine::resource::Change::Create;
        target.apply(desired, &change, upstream).await.unwrap();
    }
    let root = target.state_dir();
    for folder in [
        root.to_path_buf(),
        root.join("buckets"),
        root.join("buckets/iot-local"),
        root.join("buckets/iot-local/data"),
        root.join("training-data"),
        root.join("roles"),
    ] {
        assert_eq!(mode(&folder), 0o700, "{}", folder.display());
    }
    target.release(lock).await.unwrap();

    // An existing state folder that is readable by others is made private on open.
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (reopened, _) = deployment(dir.path(), "iot");
    assert_eq!(mode(reopened.state_dir()), 0o700);
}
