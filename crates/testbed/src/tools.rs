//! The programs the servers need, and the one rule for a missing one: in CI (`CI` set) the test fails
//! and says to run `.ci/setup`; on a developer's machine it prints a note and the test skips, so
//! `cargo test` still runs everything else.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A program a testbed server or helper runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `python3` able to import moto at exactly [`crate::MOTO_VERSION`], and cbor2 (the launcher's
    /// CloudWatch RPC v2 CBOR shim) at the version `.ci/setup` pins.
    Moto,
    /// Debian's `docker-registry` (distribution 2.8).
    DockerRegistry,
    /// `htpasswd` (apache2-utils), to write the registry's bcrypt password file.
    Htpasswd,
    /// `skopeo`, to inspect pushed images.
    Skopeo,
    /// The `model-image` binary, for moto's SageMaker emulation: see [`model_image`].
    ModelImage,
    /// `parliament` (PyPI) at exactly [`PARLIAMENT_VERSION`], the IAM policy linter.
    Parliament,
}

/// The parliament version the policy lint expects (`.ci/setup` pins it).
pub const PARLIAMENT_VERSION: &str = "1.6.4";

/// The cbor2 version the launcher's CloudWatch shim and request check decode and encode CBOR with
/// (`.ci/setup` pins it).
const CBOR2_VERSION: &str = "6.3.0";

impl Tool {
    fn check(self) -> Result<(), String> {
        match self {
            Tool::Moto => {
                static MOTO: OnceLock<Result<(), String>> = OnceLock::new();
                MOTO.get_or_init(check_moto).clone()
            }
            Tool::DockerRegistry => on_path("docker-registry"),
            Tool::Htpasswd => on_path("htpasswd"),
            Tool::Skopeo => on_path("skopeo"),
            Tool::ModelImage => find_model_image().map(|_| ()),
            Tool::Parliament => {
                static PARLIAMENT: OnceLock<Result<(), String>> = OnceLock::new();
                PARLIAMENT.get_or_init(check_parliament).clone()
            }
        }
    }
}

/// The `model-image` binary: `MODEL_IMAGE_BIN` (a relative path is read from the workspace root), else
/// the one `cargo test --workspace` builds next to the test executables (`target/<profile>/`). `None`
/// when there is none, with [`require`]'s rule: a note outside CI, a panic in CI.
pub fn model_image() -> Option<PathBuf> {
    if !require(&[Tool::ModelImage]) {
        return None;
    }
    find_model_image().ok()
}

fn find_model_image() -> Result<PathBuf, String> {
    let path = match std::env::var_os("MODEL_IMAGE_BIN") {
        Some(path) => Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.join("model-image")))
            .ok_or("the test executable's path is unknown")?,
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "no model-image binary at {} (set MODEL_IMAGE_BIN, or run `cargo test --workspace`, which builds it)",
            path.display()
        ))
    }
}

/// Whether every tool is available. When one is not: panics if `CI` is set ("run .ci/setup"),
/// otherwise prints a note to stderr and returns false, for the caller to skip.
pub fn require(tools: &[Tool]) -> bool {
    for tool in tools {
        if let Err(reason) = tool.check() {
            if std::env::var_os("CI").is_some() {
                panic!("{reason}: run .ci/setup");
            }
            eprintln!("skipping: {reason} (run .ci/setup to install it)");
            return false;
        }
    }
    true
}

fn check_moto() -> Result<(), String> {
    on_path("python3")?;
    let output = Command::new("python3")
        .args(["-c", "import moto; print(moto.__version__)"])
        .output()
        .map_err(|e| format!("python3 could not be run ({e})"))?;
    if !output.status.success() {
        return Err("python3 cannot import moto".to_string());
    }
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if version != crate::MOTO_VERSION {
        return Err(format!(
            "moto {version} is installed, the testbed needs moto {}",
            crate::MOTO_VERSION
        ));
    }
    let output = Command::new("python3")
        .args([
            "-c",
            "import cbor2, importlib.metadata; print(importlib.metadata.version('cbor2'))",
        ])
        .output()
        .map_err(|e| format!("python3 could not be run ({e})"))?;
    if !output.status.success() {
        return Err("python3 cannot import cbor2".to_string());
    }
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if version != CBOR2_VERSION {
        return Err(format!(
            "cbor2 {version} is installed, the testbed needs cbor2 {CBOR2_VERSION}"
        ));
    }
    Ok(())
}

fn check_parliament() -> Result<(), String> {
    on_path("parliament")?;
    let output = Command::new("parliament")
        .arg("--version")
        .output()
        .map_err(|e| format!("parliament could not be run ({e})"))?;
    // `parliament 1.6.4`.
    let printed = String::from_utf8_lossy(&output.stdout);
    let version = printed.trim().trim_start_matches("parliament ").to_string();
    if version != PARLIAMENT_VERSION {
        return Err(format!(
            "parliament {version} is installed, the policy lint needs parliament {PARLIAMENT_VERSION}"
        ));
    }
    Ok(())
}

fn on_path(program: &str) -> Result<(), String> {
    find_program(program, std::env::var_os("PATH").as_deref().map(Path::new))
        .map(|_| ())
        .ok_or_else(|| format!("`{program}` is not installed (not on PATH)"))
}

/// The first executable file named `program` in the directories of `path` (a `PATH` value).
fn find_program(program: &str, path: Option<&Path>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::split_paths(path?.as_os_str())
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_setup_installs_the_pinned_parliament() {
        let setup = include_str!("../../../.ci/setup");
        assert!(setup.contains(&format!("\nPARLIAMENT_VERSION={PARLIAMENT_VERSION}\n")));
    }

    #[test]
    fn ci_setup_installs_the_pinned_cbor2() {
        let setup = include_str!("../../../.ci/setup");
        assert!(setup.contains(&format!("\nCBOR2_VERSION={CBOR2_VERSION}\n")));
    }

    #[test]
    fn programs_are_found_only_when_executable_on_the_path() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = std::env::join_paths(["/nonexistent".as_ref(), dir.path()]).unwrap();
        assert_eq!(
            find_program("tool", Some(Path::new(&path))),
            None,
            "not executable"
        );
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_program("tool", Some(Path::new(&path))), Some(tool));
        assert_eq!(find_program("other", Some(Path::new(&path))), None);
        assert_eq!(find_program("tool", None), None);
    }
}
