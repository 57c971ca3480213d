//! `skopeo inspect`: what a registry really holds, read by a tool other than ours.

use tokio::process::Command;

/// `skopeo inspect --tls-verify=false --creds USER:PASSWORD [--raw] docker://REFERENCE`, parsed.
/// `reference` is `host:port/repo@sha256:…` (a `docker://` prefix is optional). Without `raw`: skopeo's
/// summary (`Digest` is the manifest digest it computed, `Layers`, `Architecture`, …); with `raw`: the
/// manifest exactly as stored.
///
/// Panics when skopeo fails or is missing: call [`crate::require`] with [`crate::Tool::Skopeo`] first.
pub async fn skopeo_inspect(reference: &str, user: &str, password: &str, raw: bool) -> serde_json::Value {
    inspect(reference, user, password, if raw { &["--raw"] } else { &[] }).await
}

/// The image config exactly as stored (`skopeo inspect --config --raw`): `config.Entrypoint`,
/// `rootfs.diff_ids`, ….
pub async fn skopeo_inspect_config(reference: &str, user: &str, password: &str) -> serde_json::Value {
    inspect(reference, user, password, &["--config", "--raw"]).await
}

async fn inspect(reference: &str, user: &str, password: &str, flags: &[&str]) -> serde_json::Value {
    let reference = if reference.starts_with("docker://") {
        reference.to_string()
    } else {
        format!("docker://{reference}")
    };
    let output = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            "--creds",
            &format!("{user}:{password}"),
        ])
        .args(flags)
        .arg(&reference)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run skopeo ({e}); run .ci/setup"));
    assert!(
        output.status.success(),
        "skopeo inspect {flags:?} {reference} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "skopeo inspect {flags:?} {reference} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}
