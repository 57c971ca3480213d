//! Finding the `model-image` binary that the image ships and the local target runs.
//!
//! In order: `--model-image PATH` (or `ORCHESTRATE_MODEL_IMAGE`); the `model-image` next to the
//! running `orchestrate` (an install puts both in one directory); and, when deploy.yaml lives inside
//! this project's Cargo workspace, a release build of it (`cargo build --release -p model-image`,
//! announced on stderr, into `CARGO_TARGET_DIR` or the workspace's `target/`). Otherwise the error
//! says how to get one.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// The file name of the binary.
const BINARY: &str = "model-image";
/// The package that builds it.
const PACKAGE: &str = "model-image";

/// Where the binary came from (shown with `-v` and in errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--model-image` or `ORCHESTRATE_MODEL_IMAGE`.
    Explicit,
    /// The `model-image` in the directory of the running `orchestrate`.
    NextToExecutable,
    /// Built by `cargo build --release -p model-image` in this workspace.
    WorkspaceBuild { workspace: PathBuf },
}

/// Locates (or builds) the model-image binary. `explicit` is `--model-image`/the environment;
/// `deploy_dir` is the directory of deploy.yaml; `announce` prints one line before a build starts.
pub fn locate(
    explicit: Option<&Path>,
    deploy_dir: &Path,
    announce: impl Fn(&str),
) -> anyhow::Result<(PathBuf, Source)> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!(
                "the model-image binary `{}` (from --model-image or ORCHESTRATE_MODEL_IMAGE) does not exist",
                path.display()
            );
        }
        return Ok((absolute(path), Source::Explicit));
    }
    if let Some(beside) = beside_executable()
        && beside.is_file()
    {
        return Ok((beside, Source::NextToExecutable));
    }
    if let Some(workspace) = find_workspace(deploy_dir) {
        let binary = build_in_workspace(&workspace, &announce)?;
        return Ok((binary, Source::WorkspaceBuild { workspace }));
    }
    bail!(
        "cannot find the model-image binary: it is not next to orchestrate, and {} is not inside the \
         orchestrate source tree\n  help: pass --model-image PATH (or set ORCHESTRATE_MODEL_IMAGE), or \
         build it with `cargo build --release -p model-image` in the orchestrate repository",
        deploy_dir.display()
    )
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `model-image` in the directory of the running executable.
fn beside_executable() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(
        exe.parent()?
            .join(format!("{BINARY}{}", std::env::consts::EXE_SUFFIX)),
    )
}

/// The nearest directory at or above `start` whose Cargo.toml is a workspace with a `model-image`
/// member (this project's root).
pub fn find_workspace(start: &Path) -> Option<PathBuf> {
    let start = std::fs::canonicalize(start).ok()?;
    start
        .ancestors()
        .find(|dir| is_model_image_workspace(dir))
        .map(Path::to_path_buf)
}

fn is_model_image_workspace(dir: &Path) -> bool {
    let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
        return false;
    };
    workspace_members(&manifest).iter().any(|m| m == PACKAGE)
        && dir.join(PACKAGE).join("Cargo.toml").is_file()
}

/// The entries of `members = [...]` in a `[workspace]` table. A small scan, not a TOML parser: it
/// only has to recognise this project's own manifest.
fn workspace_members(manifest: &str) -> Vec<String> {
    let mut in_workspace = false;
    let mut collecting = false;
    let mut text = String::new();
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') && !collecting {
            in_workspace = line == "[workspace]";
            continue;
        }
        if in_workspace
            && !collecting
            && let Some(rest) = line.strip_prefix("members")
        {
            let Some(rest) = rest.trim_start().strip_prefix('=') else {
                continue;
            };
            collecting = true;
            text.push_str(rest);
        } else if collecting {
            text.push_str(line);
        }
        if collecting && text.contains(']') {
            break;
        }
    }
    let list = text.trim().trim_start_matches('[');
    let list = list.split(']').next().unwrap_or("");
    list.split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

/// The target directory cargo builds into for `workspace`.
fn target_dir(workspace: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace.join(dir)
            }
        }
        _ => workspace.join("target"),
    }
}

fn build_in_workspace(workspace: &Path, announce: &impl Fn(&str)) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    announce(&format!(
        "Building model-image: `cargo build --release -p {PACKAGE}` in {} (the first build compiles LightGBM: about 10 minutes)",
        workspace.display()
    ));
    let status = Command::new(&cargo)
        .args(["build", "--release", "-p", PACKAGE])
        .current_dir(workspace)
        .status()
        .with_context(|| format!("cannot run `{}` to build model-image", cargo.to_string_lossy()))?;
    if !status.success() {
        bail!(
            "`cargo build --release -p {PACKAGE}` failed ({status}); fix the build, or pass a built binary with --model-image PATH"
        );
    }
    let binary = target_dir(workspace)
        .join("release")
        .join(format!("{BINARY}{}", std::env::consts::EXE_SUFFIX));
    if !binary.is_file() {
        bail!(
            "cargo built model-image but `{}` is missing; pass the binary with --model-image PATH",
            binary.display()
        );
    }
    Ok(binary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_read_from_one_or_many_lines() {
        let one = "[workspace]\nresolver = \"3\"\nmembers = [\"model-image\", \"crates/spec\"]\n";
        assert_eq!(workspace_members(one), ["model-image", "crates/spec"]);
        let many = "[package]\nname = \"x\"\n[workspace]\nmembers = [\n  \"crates/cli\", # the binary\n  \"model-image\",\n]\n[workspace.package]\n";
        assert_eq!(workspace_members(many), ["crates/cli", "model-image"]);
        assert!(workspace_members("[package]\nname = \"model-image\"\n").is_empty());
        assert!(workspace_members("[dependencies]\nmembers = [\"model-image\"]\n").is_empty());
    }

    #[test]
    fn workspace_is_found_from_a_nested_directory() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("Cargo.toml"),
            "[workspace]\nmembers = [\"model-image\"]\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.path().join("model-image")).unwrap();
        std::fs::write(root.path().join("model-image/Cargo.toml"), "[package]\n").unwrap();
        let nested = root.path().join("examples/demo");
        std::fs::create_dir_all(&nested).unwrap();
        let found = find_workspace(&nested).unwrap();
        assert_eq!(found, std::fs::canonicalize(root.path()).unwrap());
    }

    #[test]
    fn explicit_path_must_exist() {
        let error = locate(Some(Path::new("no/such/model-image")), Path::new("."), |_| {}).unwrap_err();
        assert!(error.to_string().contains("does not exist"), "{error}");
    }

    #[test]
    fn target_dir_respects_cargo_target_dir_only_when_set() {
        // Not setting the variable here (tests run in parallel); the default case is deterministic
        // only when the variable is absent.
        if std::env::var_os("CARGO_TARGET_DIR").is_none() {
            assert_eq!(target_dir(Path::new("/w")), Path::new("/w/target"));
        }
    }
}
