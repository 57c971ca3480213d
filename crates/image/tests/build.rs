//! Builds real images from real binaries on this machine and checks them with independent tools: the
//! system `ldd`, `tar` and `chroot`, and `skopeo` (reading the docker-archive and the registry form).
//! Tools that are missing make the test that needs them print a skip line and pass.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use image::{
    BINARY_PATH, BuiltImage, CONFIG_MEDIA_TYPE, Digest, FileKind, ImageError, ImageSpec, LAYER_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
};
use serde_json::Value;

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// A dynamically linked system binary (coreutils `true`).
fn system_binary() -> PathBuf {
    on_path("true").expect("`true` on PATH")
}

fn spec(binary: &Path) -> ImageSpec {
    ImageSpec::new(binary, "0.1.0-test")
}

/// The image of [`system_binary`], built once per test run (tests that need a fresh build make one).
fn system_image() -> &'static BuiltImage {
    static IMAGE: OnceLock<BuiltImage> = OnceLock::new();
    IMAGE.get_or_init(|| image::build(&spec(&system_binary())).unwrap())
}

/// The absolute paths in `ldd`'s output, read independently of the crate's parser.
fn ldd_paths(binary: &Path) -> Vec<String> {
    let output = Command::new("ldd").arg(binary).output().expect("run ldd");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter(|token| token.starts_with('/'))
        .map(str::to_owned)
        .collect()
}

struct Entry {
    path: String,
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    username: Vec<u8>,
    groupname: Vec<u8>,
    data: Vec<u8>,
}

fn entries(tar_bytes: &[u8]) -> Vec<Entry> {
    let mut archive = tar::Archive::new(tar_bytes);
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            Entry {
                path: entry.path().unwrap().to_str().unwrap().to_owned(),
                kind: header.entry_type(),
                mode: header.mode().unwrap(),
                uid: header.uid().unwrap(),
                gid: header.gid().unwrap(),
                mtime: header.mtime().unwrap(),
                username: header.username_bytes().unwrap_or_default().to_vec(),
                groupname: header.groupname_bytes().unwrap_or_default().to_vec(),
                data,
            }
        })
        .collect()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

fn skopeo() -> Option<PathBuf> {
    let found = on_path("skopeo");
    if found.is_none() {
        eprintln!("SKIP: skopeo is not on PATH; install it (Debian: `apt-get install skopeo`)");
    }
    found
}

fn run_ok(command: &mut Command) -> Vec<u8> {
    let output = command.output().expect("start command");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
fn the_layer_ships_the_binary_and_every_library_ldd_lists() {
    let binary = system_binary();
    let built = system_image();
    assert_eq!(built.layers.len(), 1);
    let layer = &built.layers[0];
    let by_path: BTreeMap<String, Entry> = entries(&layer.tar)
        .into_iter()
        .map(|entry| (format!("/{}", entry.path), entry))
        .collect();

    let shipped = &by_path[BINARY_PATH];
    assert_eq!(shipped.kind, tar::EntryType::Regular);
    assert_eq!(shipped.mode, 0o755);
    assert_eq!(shipped.data, fs::read(&binary).unwrap());

    let libraries = ldd_paths(&binary);
    assert!(!libraries.is_empty(), "{} should be dynamic", binary.display());
    for library in &libraries {
        let entry = by_path
            .get(library)
            .unwrap_or_else(|| panic!("{library} is not in the layer"));
        assert_eq!(entry.kind, tar::EntryType::Regular, "{library}");
        // Symlinks on the host (e.g. the loader) are stored as their real contents.
        assert_eq!(entry.data, fs::read(library).unwrap(), "{library}");
    }
    if cfg!(target_arch = "x86_64") {
        assert!(by_path.contains_key("/lib64/ld-linux-x86-64.so.2"));
    }

    assert_eq!(by_path["/tmp"].kind, tar::EntryType::Directory);
    assert_eq!(by_path["/tmp"].mode, 0o1777);
    assert_eq!(by_path["/opt/ml"].kind, tar::EntryType::Directory);
    assert_eq!(
        by_path["/etc/passwd"].data,
        b"root:x:0:0:root:/root:/sbin/nologin\n"
    );
    assert_eq!(by_path["/etc/group"].data, b"root:x:0:\n");
    assert!(!by_path.keys().any(|path| path.starts_with("/etc/ssl")));

    // Exactly: fixed entries, binary, libraries and their parent directories; nothing else.
    let regular: Vec<&String> = by_path
        .iter()
        .filter(|(_, entry)| entry.kind == tar::EntryType::Regular)
        .map(|(path, _)| path)
        .collect();
    assert_eq!(regular.len(), 3 + libraries.len(), "{regular:?}");

    // `files` reports exactly what is in the tar, in the same order.
    let listed: Vec<(String, FileKind, u64)> = built
        .files
        .iter()
        .map(|file| (file.path.clone(), file.kind, file.size))
        .collect();
    let in_tar: Vec<(String, FileKind, u64)> = entries(&layer.tar)
        .into_iter()
        .map(|entry| {
            let kind = if entry.kind == tar::EntryType::Directory {
                FileKind::Directory
            } else {
                FileKind::File
            };
            (format!("/{}", entry.path), kind, entry.data.len() as u64)
        })
        .collect();
    assert_eq!(listed, in_tar);
}

#[test]
fn layer_entries_are_sorted_and_carry_no_host_metadata() {
    let layer = &system_image().layers[0];
    let entries = entries(&layer.tar);
    let paths: Vec<&str> = entries.iter().map(|entry| entry.path.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort_unstable();
    assert_eq!(paths, sorted);
    for (index, entry) in entries.iter().enumerate() {
        assert_eq!((entry.uid, entry.gid, entry.mtime), (0, 0, 0), "{}", entry.path);
        assert!(entry.username.is_empty() && entry.groupname.is_empty());
        if let Some((parent, _)) = entry.path.rsplit_once('/') {
            let parent_at = paths.iter().position(|path| *path == parent);
            assert!(
                parent_at.is_some_and(|at| at < index),
                "parent of {} must come first",
                entry.path
            );
        }
    }

    // The same, as GNU tar reads the gzip blob.
    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("layer.tar.gz");
    fs::write(&blob, &layer.blob).unwrap();
    let listing = run_ok(Command::new("tar").arg("--numeric-owner").arg("-tvzf").arg(&blob));
    let listing = String::from_utf8(listing).unwrap();
    assert_eq!(listing.lines().count(), entries.len());
    for line in listing.lines() {
        assert!(line.contains(" 0/0 "), "{line}");
        assert!(line.contains("1970-01-01"), "{line}");
    }
    // gzip header: no name, no mtime.
    assert_eq!(&layer.blob[3..8], &[0, 0, 0, 0, 0]);
}

#[test]
fn two_builds_of_the_same_binary_give_identical_digests() {
    let binary = system_binary();
    let one = system_image();
    let two = image::build(&spec(&binary)).unwrap();
    eprintln!(
        "build 1: manifest {} config {} layer {} diff_id {}",
        one.manifest_digest, one.config_digest, one.layers[0].digest, one.layers[0].diff_id
    );
    eprintln!(
        "build 2: manifest {} config {} layer {} diff_id {}",
        two.manifest_digest, two.config_digest, two.layers[0].digest, two.layers[0].diff_id
    );
    assert_eq!(one.manifest_digest, two.manifest_digest);
    assert_eq!(one.config_digest, two.config_digest);
    assert_eq!(one.layers[0].diff_id, two.layers[0].diff_id);
    assert_eq!(one.layers[0].digest, two.layers[0].digest);
    assert_eq!(one.manifest, two.manifest);
    assert_eq!(one.config, two.config);
    assert!(one.layers == two.layers);

    // A copy of the binary elsewhere is the same image: the host path does not leak into it.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("model-image");
    fs::copy(&binary, &copy).unwrap();
    let three = image::build(&spec(&copy)).unwrap();
    assert_eq!(three.manifest_digest, one.manifest_digest);

    // And the archive is reproducible too.
    let (a, b) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
    one.write_docker_archive(&a, "model-image:0.1.0").unwrap();
    two.write_docker_archive(&b, "model-image:0.1.0").unwrap();
    assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
    // Written via a temporary file and a rename: nothing else is left behind.
    let mut names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a.tar", "b.tar", "model-image"]);
}

#[test]
fn changing_the_binary_changes_every_digest() {
    let dir = tempfile::tempdir().unwrap();
    let changed = dir.path().join("model-image");
    let mut bytes = fs::read(system_binary()).unwrap();
    let original = system_image();
    bytes.push(0);
    fs::write(&changed, &bytes).unwrap();
    let rebuilt = image::build(&spec(&changed)).unwrap();
    assert_ne!(rebuilt.layers[0].diff_id, original.layers[0].diff_id);
    assert_ne!(rebuilt.layers[0].digest, original.layers[0].digest);
    assert_ne!(rebuilt.config_digest, original.config_digest);
    assert_ne!(rebuilt.manifest_digest, original.manifest_digest);

    // The version label alone changes the config and manifest but not the layer.
    let relabelled = image::build(&ImageSpec::new(system_binary(), "9.9.9")).unwrap();
    assert_eq!(relabelled.layers[0].digest, original.layers[0].digest);
    assert_ne!(relabelled.manifest_digest, original.manifest_digest);
}

#[test]
fn manifest_and_config_describe_the_blobs_with_docker_media_types() {
    let mut spec = spec(&system_binary());
    spec.extra_labels
        .insert("com.example.team".to_owned(), "ml".to_owned());
    let built = image::build(&spec).unwrap();
    let layer = &built.layers[0];

    assert_eq!(built.manifest_digest, Digest::sha256(&built.manifest));
    assert_eq!(built.config_digest, Digest::sha256(&built.config));
    assert_eq!(layer.digest, Digest::sha256(&layer.blob));
    assert_eq!(layer.size, layer.blob.len() as u64);
    // diff_id is the digest of the decompressed blob, checked with an independent decoder.
    assert_eq!(layer.diff_id, Digest::sha256(&gunzip(&layer.blob)));
    assert_eq!(gunzip(&layer.blob), layer.tar);

    let manifest: Value = serde_json::from_slice(&built.manifest).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
    assert_eq!(
        MANIFEST_MEDIA_TYPE,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
    assert_eq!(
        CONFIG_MEDIA_TYPE,
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(manifest["config"]["digest"], built.config_digest.to_string());
    assert_eq!(manifest["config"]["size"], built.config.len() as u64);
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    assert_eq!(manifest["layers"][0]["mediaType"], LAYER_MEDIA_TYPE);
    assert_eq!(
        LAYER_MEDIA_TYPE,
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    assert_eq!(manifest["layers"][0]["digest"], layer.digest.to_string());
    assert_eq!(manifest["layers"][0]["size"], layer.size);

    let config: Value = serde_json::from_slice(&built.config).unwrap();
    let host = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no expectation for {other}"),
    };
    assert_eq!(built.architecture, host);
    assert_eq!(config["architecture"], host);
    assert_eq!(config["os"], "linux");
    assert_eq!(config["created"], "1970-01-01T00:00:00Z");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/model-image"])
    );
    assert!(config["config"]["Env"][0].as_str().unwrap().starts_with("PATH="));
    assert_eq!(
        config["config"]["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}})
    );
    assert_eq!(config["config"]["WorkingDir"], "/");
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.version"],
        "0.1.0-test"
    );
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.title"],
        "model-image"
    );
    assert_eq!(config["config"]["Labels"]["com.example.team"], "ml");
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([layer.diff_id.to_string()])
    );

    // The blobs to push: config first, then the gzip layer.
    let blobs = built.blobs();
    assert_eq!(blobs.len(), 2);
    assert_eq!(
        (blobs[0].media_type, blobs[0].digest, blobs[0].bytes),
        (CONFIG_MEDIA_TYPE, &built.config_digest, built.config.as_slice())
    );
    assert_eq!(
        (blobs[1].media_type, blobs[1].digest, blobs[1].bytes),
        (LAYER_MEDIA_TYPE, &layer.digest, layer.blob.as_slice())
    );
}

#[test]
fn skopeo_reads_the_docker_archive() {
    let Some(skopeo) = skopeo() else { return };
    let built = system_image();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("model-image.tar");
    built
        .write_docker_archive(&archive, "model-image:0.1.0-test")
        .unwrap();
    let source = format!("docker-archive:{}", archive.display());

    let names = run_ok(Command::new("tar").arg("-tf").arg(&archive));
    let diff_hex = built.layers[0].diff_id.hex();
    assert_eq!(
        String::from_utf8(names).unwrap(),
        format!(
            "{cfg}.json\n{diff_hex}\n{diff_hex}/layer.tar\nmanifest.json\n",
            cfg = built.config_digest.hex()
        )
    );

    let inspect: Value =
        serde_json::from_slice(&run_ok(Command::new(&skopeo).arg("inspect").arg(&source))).unwrap();
    // The archive stores the layer uncompressed, so its digest there is the diff_id.
    assert_eq!(
        inspect["Layers"],
        serde_json::json!([built.layers[0].diff_id.to_string()])
    );
    assert_eq!(inspect["Architecture"], built.architecture);
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(
        inspect["Labels"]["org.opencontainers.image.version"],
        "0.1.0-test"
    );

    let raw_config = run_ok(
        Command::new(&skopeo)
            .args(["inspect", "--config", "--raw"])
            .arg(&source),
    );
    assert_eq!(raw_config, built.config);
    let config: Value = serde_json::from_slice(&raw_config).unwrap();
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/model-image"])
    );

    let copy = dir.path().join("copy");
    run_ok(
        Command::new(&skopeo)
            .arg("copy")
            .arg(&source)
            .arg(format!("dir:{}", copy.display())),
    );
    assert!(copy.join("manifest.json").is_file());
    assert_eq!(
        fs::read(copy.join(built.config_digest.hex())).unwrap(),
        built.config
    );
}

/// The registry form (our manifest bytes, config blob, gzip layer blob) laid out as skopeo's `dir:`
/// transport, so skopeo computes the manifest digest a registry would.
#[test]
fn skopeo_reads_the_registry_form_with_our_manifest_digest() {
    let Some(skopeo) = skopeo() else { return };
    let built = system_image();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("registry-form");
    fs::create_dir(&layout).unwrap();
    fs::write(layout.join("version"), "Directory Transport Version: 1.1\n").unwrap();
    fs::write(layout.join("manifest.json"), &built.manifest).unwrap();
    for blob in built.blobs() {
        fs::write(layout.join(blob.digest.hex()), blob.bytes).unwrap();
    }
    let source = format!("dir:{}", layout.display());

    let inspect: Value =
        serde_json::from_slice(&run_ok(Command::new(&skopeo).arg("inspect").arg(&source))).unwrap();
    assert_eq!(inspect["Digest"], built.manifest_digest.to_string());
    assert_eq!(
        inspect["Layers"],
        serde_json::json!([built.layers[0].digest.to_string()])
    );
    assert_eq!(inspect["Architecture"], built.architecture);

    // skopeo's own reading of the Docker config (it converts it to OCI form for --config).
    let config: Value = serde_json::from_slice(&run_ok(
        Command::new(&skopeo).args(["inspect", "--config"]).arg(&source),
    ))
    .unwrap();
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/model-image"])
    );
    assert_eq!(
        config["config"]["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}})
    );

    // Copying reads and verifies every blob; the manifest comes through unchanged.
    let copy = dir.path().join("copy");
    run_ok(
        Command::new(&skopeo)
            .arg("copy")
            .arg(&source)
            .arg(format!("dir:{}", copy.display())),
    );
    assert_eq!(fs::read(copy.join("manifest.json")).unwrap(), built.manifest);
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// Extracts the layer with GNU tar and runs the shipped binary in a chroot of it: proof that the layer
/// alone (loader, libraries) is enough to start it, as on a bare SageMaker host.
fn run_in_chroot(built: &BuiltImage, args: &[&str]) -> Option<String> {
    let Some(chroot) = on_path("chroot").filter(|_| is_root()) else {
        eprintln!("SKIP: running the layer needs root and chroot");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("layer.tar.gz");
    fs::write(&blob, &built.layers[0].blob).unwrap();
    let root = dir.path().join("rootfs");
    fs::create_dir(&root).unwrap();
    run_ok(Command::new("tar").arg("-xzf").arg(&blob).arg("-C").arg(&root));
    let output = Command::new(chroot)
        .arg(&root)
        .arg(BINARY_PATH)
        .args(args)
        .env_clear()
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("Operation not permitted") {
        eprintln!("SKIP: chroot is not permitted here: {stderr}");
        return None;
    }
    assert!(output.status.success(), "chroot run failed: {stderr}");
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn the_layer_alone_runs_the_binary() {
    run_in_chroot(system_image(), &[]);
}

#[test]
fn a_static_binary_ships_without_libraries() {
    // Debian's ldconfig is static-pie; `ldd` says "statically linked".
    let Some(ldconfig) = ["/sbin/ldconfig", "/usr/sbin/ldconfig"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .filter(|path| ldd_paths(path).is_empty())
    else {
        eprintln!("SKIP: no statically linked ldconfig on this machine");
        return;
    };
    let built = image::build(&spec(&ldconfig)).unwrap();
    let files: Vec<&str> = built
        .files
        .iter()
        .filter(|file| file.kind == FileKind::File)
        .map(|file| file.path.as_str())
        .collect();
    assert_eq!(files, ["/etc/group", "/etc/passwd", BINARY_PATH]);
}

/// A C++ program using OpenMP has model-image's closure (libstdc++, libgomp, libm, libgcc_s, libc and the
/// loader); compiled here with the system g++, imaged, and run from nothing but its layer.
#[test]
fn an_openmp_cxx_binary_runs_from_its_layer_alone() {
    let Some(compiler) = on_path("g++") else {
        eprintln!("SKIP: g++ is not on PATH");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("omp.cpp");
    fs::write(
        &source,
        r#"#include <cmath>
#include <iostream>
#include <omp.h>
#include <vector>
int main(int argc, char **) {
    std::vector<double> values(1000, 1.0);
    double sum = 0;
#pragma omp parallel for reduction(+ : sum)
    for (int i = 0; i < static_cast<int>(values.size()); ++i) sum += std::sqrt(values[i] * argc);
    std::cout << "threads " << omp_get_max_threads() << " sum " << sum << std::endl;
    return sum == 1000.0 ? 0 : 1;
}
"#,
    )
    .unwrap();
    let binary = dir.path().join("omp");
    run_ok(
        Command::new(compiler)
            .args(["-O1", "-fopenmp", "-o"])
            .arg(&binary)
            .arg(&source),
    );
    let built = image::build(&spec(&binary)).unwrap();
    let shipped: Vec<&str> = built.files.iter().map(|file| file.path.as_str()).collect();
    let libraries = ldd_paths(&binary);
    for wanted in ["libgomp.so", "libstdc++.so"] {
        assert!(
            libraries.iter().any(|library| library.contains(wanted)),
            "ldd lists no {wanted}: {libraries:?}"
        );
    }
    for library in &libraries {
        assert!(shipped.contains(&library.as_str()), "{library} missing");
    }
    if let Some(stdout) = run_in_chroot(&built, &[]) {
        assert!(stdout.contains("sum 1000"), "{stdout}");
    }
}

/// The real thing: the model-image binary, if one has been built (set `MODEL_IMAGE_BIN`, or build it in
/// release into the same target directory as this test).
#[test]
fn model_image_ships_with_its_closure_and_runs_from_its_layer() {
    let from_env = std::env::var_os("MODEL_IMAGE_BIN").map(PathBuf::from);
    let beside_tests = std::env::current_exe().ok().and_then(|exe| {
        // <target>/<profile>/deps/<test> -> <target>/release/model-image
        let target = exe.parent()?.parent()?.parent()?;
        Some(target.join("release").join("model-image"))
    });
    let Some(binary) = from_env.or(beside_tests).filter(|path| path.is_file()) else {
        eprintln!(
            "SKIP: no model-image binary (set MODEL_IMAGE_BIN or `cargo build --release -p model-image`)"
        );
        return;
    };
    let built = image::build(&spec(&binary)).unwrap();
    let shipped: Vec<&str> = built.files.iter().map(|file| file.path.as_str()).collect();
    for library in ldd_paths(&binary) {
        assert!(shipped.contains(&library.as_str()), "{library} missing");
    }
    let again = image::build(&spec(&binary)).unwrap();
    assert_eq!(built.manifest_digest, again.manifest_digest);
    eprintln!(
        "model-image {}: manifest {} layer {} bytes, files {:?}",
        binary.display(),
        built.manifest_digest,
        built.layers[0].size,
        shipped
    );
    run_in_chroot(&built, &["--help"]);
}

#[test]
fn unusable_inputs_fail_with_errors_that_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-binary");
    let error = image::build(&spec(&missing)).unwrap_err();
    assert!(
        matches!(&error, ImageError::BinaryMissing { path, .. } if path == &missing),
        "{error:?}"
    );
    assert!(error.to_string().contains("no-such-binary"));

    // ldd calls a script "not a dynamic executable", like a static binary; it must not pass as one.
    let script = dir.path().join("model-image");
    fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    let error = image::build(&spec(&script)).unwrap_err();
    assert!(matches!(error, ImageError::NotElf { .. }), "{error:?}");

    let error = system_image()
        .write_docker_archive(&dir.path().join("x.tar"), "model image")
        .unwrap_err();
    assert!(matches!(error, ImageError::InvalidRepoTag { .. }), "{error:?}");
    assert!(!dir.path().join("x.tar").exists());
}
