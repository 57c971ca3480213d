//! The image configuration (Docker image JSON, `application/vnd.docker.container.image.v1+json`): what to
//! run, with which environment, on which platform, over which layers.
//!
//! It carries no build time (`created` is the epoch, as in ko and Bazel's rules), so its digest depends
//! only on the layers, the version and the labels. Struct fields and `BTreeMap`s serialise in a fixed
//! order, and the exact bytes are kept: the config digest is the sha256 of those bytes.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::digest::Digest;

/// Where the binary lives in the image, and the image's entrypoint. SageMaker appends `train` or `serve`.
pub const BINARY_PATH: &str = "/usr/local/bin/model-image";
/// The `PATH` the container starts with (Docker's default).
pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The port SageMaker sends `/ping` and `/invocations` to.
pub const EXPOSED_PORT: &str = "8080/tcp";
/// The fixed creation time recorded in the config and its history.
pub const CREATED: &str = "1970-01-01T00:00:00Z";
/// Label keys set on every image.
pub const TITLE_LABEL: &str = "org.opencontainers.image.title";
pub const VERSION_LABEL: &str = "org.opencontainers.image.version";

#[derive(Serialize)]
struct ImageConfig<'a> {
    architecture: &'a str,
    config: ContainerConfig<'a>,
    created: &'static str,
    history: [History<'a>; 1],
    os: &'static str,
    rootfs: RootFs<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerConfig<'a> {
    entrypoint: [&'static str; 1],
    env: [&'static str; 1],
    exposed_ports: BTreeMap<&'static str, Empty>,
    labels: &'a BTreeMap<String, String>,
    working_dir: &'static str,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct History<'a> {
    created: &'static str,
    created_by: &'a str,
}

#[derive(Serialize)]
struct RootFs<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: &'a [&'a Digest],
}

/// The labels an image gets: title and version, then `extra` (an extra key that repeats a standard one
/// replaces it).
pub(crate) fn labels(version: &str, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (TITLE_LABEL.to_owned(), "model-image".to_owned()),
        (VERSION_LABEL.to_owned(), version.to_owned()),
    ]);
    labels.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels
}

/// The image config bytes for the given platform, labels and layer `diff_id`s.
pub(crate) fn render(architecture: &str, labels: &BTreeMap<String, String>, diff_ids: &[&Digest]) -> Vec<u8> {
    let created_by = format!("orchestrate-image: {BINARY_PATH} and its shared-library closure");
    let config = ImageConfig {
        architecture,
        config: ContainerConfig {
            entrypoint: [BINARY_PATH],
            env: [PATH_ENV],
            exposed_ports: BTreeMap::from([(EXPOSED_PORT, Empty {})]),
            labels,
            working_dir: "/",
        },
        created: CREATED,
        history: [History {
            created: CREATED,
            created_by: &created_by,
        }],
        os: "linux",
        rootfs: RootFs {
            kind: "layers",
            diff_ids,
        },
    };
    serde_json::to_vec(&config).expect("plain structs with string keys always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_the_sagemaker_contract_and_no_build_time() {
        let diff_id = Digest::sha256(b"layer");
        let extra = BTreeMap::from([("team".to_owned(), "ml".to_owned())]);
        let bytes = render("amd64", &labels("0.1.0", &extra), &[&diff_id]);
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["architecture"], "amd64");
        assert_eq!(json["os"], "linux");
        assert_eq!(json["created"], CREATED);
        assert_eq!(
            json["config"]["Entrypoint"],
            serde_json::json!(["/usr/local/bin/model-image"])
        );
        assert_eq!(json["config"]["Env"][0], PATH_ENV);
        assert_eq!(
            json["config"]["ExposedPorts"],
            serde_json::json!({"8080/tcp": {}})
        );
        assert_eq!(json["config"]["WorkingDir"], "/");
        assert_eq!(
            json["config"]["Labels"],
            serde_json::json!({
                "org.opencontainers.image.title": "model-image",
                "org.opencontainers.image.version": "0.1.0",
                "team": "ml",
            })
        );
        assert_eq!(json["rootfs"]["type"], "layers");
        assert_eq!(
            json["rootfs"]["diff_ids"],
            serde_json::json!([diff_id.to_string()])
        );
        assert_eq!(json["history"].as_array().unwrap().len(), 1);
        // Same inputs, same bytes.
        assert_eq!(bytes, render("amd64", &labels("0.1.0", &extra), &[&diff_id]));
    }
}
