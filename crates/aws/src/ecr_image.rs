//! The model image in ECR: pushed over the registry HTTP API with `oci-client` (monolithic uploads,
//! basic auth `AWS` + the password from `GetAuthorizationToken`, blobs already present skipped),
//! tagged with a digest-derived tag, and referenced by digest everywhere.
//!
//! Each registry step (log in, each blob, the manifest) is retried on a transient failure with
//! backoff and jitter, each attempt held to a timeout ([`registry_retry`]).
//!
//! The registry address is ECR's proxy endpoint unless `ORCHESTRATE_REGISTRY` overrides it (a test
//! registry, `http://127.0.0.1:5000`). With an override the registry is not ECR's own, so the
//! manifest is also registered through ECR's `PutImage` (with `imageDigest`), for ECR's API to know
//! the image. Every registry request carries ECR's password, so a [`Registry`] is HTTPS, or plain
//! HTTP to a loopback address only.
//!
//! The image resource is named by its manifest digest; its repository is the deployment's. `apply`
//! pushes the image this run built (the target builds it, or finds its digest in the local cache);
//! discovery lists the images of the repository only when the repository is tagged as the
//! deployment's ([`ecr_repository::is_ours`]).

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use base64::Engine as _;
use engine::kind::ImageSettings;
use engine::resource::{Change, Lifecycle, Outputs};
use engine::target::{Applied, Deleted, Found, KindOnTarget, TargetError, Upstream};
use engine::values::{Digest, ImageRef};
use engine::{Kind, Observed};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};

use crate::clients::Clients;
use crate::ecr_repository;
use crate::errors::{AwsError, ErrorClass, OrAbsent};
use crate::registry_retry::{self, PUSH_BACKOFF, StepError};
use crate::target::AwsTarget;

const KIND: Kind = Kind::Image;
/// Overrides the registry address (`http://127.0.0.1:5000`).
pub const REGISTRY_ENV: &str = "ORCHESTRATE_REGISTRY";

/// The tag an image is pushed under: derived from its digest, so immutable tags never collide
/// (`sha-<first 16 hex digits>`; not `sha256-…`, which OCI reserves for referrer indexes).
pub fn tag_for(digest: &Digest) -> String {
    format!("sha-{}", &digest.hex()[..16])
}

/// A registry the image may be pushed to, with ECR's password: `https://host[:port]` (a bare
/// `host[:port]` means HTTPS too), or `http://` to a loopback host (127.0.0.0/8, ::1, `localhost`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    plain_http: bool,
    /// `host[:port]`, the registry part of image references.
    host: String,
}

/// Why a registry address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "`{address}` is plain http:// to a host that is not this machine: the push would send ECR's \
         password unencrypted; use https://, or http:// only to a loopback address (127.0.0.1, [::1], \
         localhost)"
    )]
    PlainHttpToRemote { address: String },
    #[error("`{address}` is not a registry address (`https://host[:port]`, or `http://127.0.0.1:PORT`)")]
    NotAnAddress { address: String },
}

impl Registry {
    /// `host[:port]`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether requests go over plain HTTP (to a loopback host only).
    pub fn is_plain_http(&self) -> bool {
        self.plain_http
    }

    fn protocol(&self) -> ClientProtocol {
        if self.plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        }
    }
}

impl FromStr for Registry {
    type Err = RegistryError;

    fn from_str(address: &str) -> Result<Self, RegistryError> {
        let not_an_address = || RegistryError::NotAnAddress {
            address: address.to_string(),
        };
        let trimmed = address.trim();
        let (plain_http, host) = match trimmed.split_once("://") {
            Some((scheme, host)) if scheme.eq_ignore_ascii_case("http") => (true, host),
            Some((scheme, host)) if scheme.eq_ignore_ascii_case("https") => (false, host),
            Some(_) => return Err(not_an_address()),
            None => (false, trimmed),
        };
        let host = host.trim_end_matches('/');
        if host.is_empty() || host.contains(['/', '@', '?', '#']) || host.chars().any(char::is_whitespace) {
            return Err(not_an_address());
        }
        if plain_http && !is_loopback(host) {
            return Err(RegistryError::PlainHttpToRemote {
                address: address.to_string(),
            });
        }
        Ok(Registry {
            plain_http,
            host: host.to_string(),
        })
    }
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.plain_http { "http" } else { "https" };
        write!(f, "{scheme}://{}", self.host)
    }
}

/// Whether `host[:port]` names this machine: `localhost`, an address of 127.0.0.0/8, or `::1`
/// (bracketed with a port, `[::1]:5000`; IPv4-mapped `::ffff:127.0.0.1` too).
fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inside, port)) if port.is_empty() || port.starts_with(':') => inside,
            _ => return false,
        }
    } else if host.matches(':').count() == 1 {
        host.split_once(':').map_or(host, |(name, _)| name)
    } else {
        host
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Decodes ECR's authorization token (`base64("AWS:<password>")`) into user and password.
pub fn decode_token(token: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Whether the image is in its repository, by digest.
pub async fn observe(clients: &Clients, image: &ImageRef) -> Result<Observed, AwsError> {
    let name = image.to_string();
    let id = aws_sdk_ecr::types::ImageIdentifier::builder()
        .image_digest(image.digest.as_str())
        .build();
    let described = clients
        .ecr
        .describe_images()
        .repository_name(&image.repository)
        .image_ids(id)
        .send()
        .await
        .map_err(|e| AwsError::sdk("find", KIND, &name, e))
        .or_absent()?;
    let Some(found) = described
        .as_ref()
        .and_then(|out| out.image_details().first())
        .and_then(|d| d.image_digest())
    else {
        return Ok(Observed::Absent);
    };
    let digest = found
        .parse::<Digest>()
        .map_err(|e| AwsError::other("find", KIND, &name, e))?;
    let settings = ImageSettings {
        image: ImageRef {
            repository: image.repository.clone(),
            digest,
        },
    };
    Ok(Observed::present(
        image.digest.as_str(),
        settings,
        Lifecycle::Ready,
    ))
}

/// Deletes the image `digest` from `repository`; deleting one that is gone succeeds.
pub async fn delete(clients: &Clients, repository: &str, digest: &str) -> Result<(), AwsError> {
    let name = format!("{repository}@{digest}");
    let id = aws_sdk_ecr::types::ImageIdentifier::builder()
        .image_digest(digest)
        .build();
    let deleted = clients
        .ecr
        .batch_delete_image()
        .repository_name(repository)
        .image_ids(id)
        .send()
        .await
        .map_err(|e| AwsError::sdk("delete", KIND, &name, e))
        .or_absent()?;
    match deleted.as_ref().and_then(|out| out.failures().first()) {
        Some(failure)
            if failure.failure_code() != Some(&aws_sdk_ecr::types::ImageFailureCode::ImageNotFound) =>
        {
            Err(AwsError::other(
                "delete",
                KIND,
                &name,
                failure.failure_reason().unwrap_or("refused").to_string(),
            ))
        }
        _ => Ok(()),
    }
}

/// Pushes `built` into `repository`; returns the digest reference (`<registry>/<repo>@sha256:…`).
/// `registry_override` is `ORCHESTRATE_REGISTRY`'s registry, if set.
pub async fn push(
    clients: &Clients,
    repository: &str,
    built: &image::BuiltImage,
    registry_override: Option<&Registry>,
) -> Result<String, AwsError> {
    let name = format!("{repository}@{}", built.manifest_digest);
    let failed = |action: &'static str| {
        let name = name.clone();
        move |e: StepError| {
            let transient = e.is_transient();
            let mut error = AwsError::other(action, KIND, &name, e);
            if transient {
                error.class = ErrorClass::Transient;
            }
            error
        }
    };
    let auth = clients
        .ecr
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| AwsError::sdk("log in to push", KIND, &name, e))?;
    let data = auth.authorization_data().first().ok_or_else(|| {
        AwsError::other(
            "log in to push",
            KIND,
            &name,
            "ECR returned no authorization data",
        )
    })?;
    let (user, password) = data.authorization_token().and_then(decode_token).ok_or_else(|| {
        AwsError::other(
            "log in to push",
            KIND,
            &name,
            "unreadable ECR authorization token",
        )
    })?;
    let registry = match registry_override {
        Some(registry) => registry.clone(),
        None => data
            .proxy_endpoint()
            .ok_or_else(|| {
                AwsError::other("log in to push", KIND, &name, "ECR returned no registry endpoint")
            })?
            .parse::<Registry>()
            .map_err(|e| AwsError::other("log in to push", KIND, &name, e))?,
    };
    let host = registry.host().to_string();
    let client = oci_client::Client::new(ClientConfig {
        protocol: registry.protocol(),
        use_monolithic_push: true,
        connect_timeout: Some(registry_retry::CONNECT_TIMEOUT),
        read_timeout: Some(registry_retry::READ_TIMEOUT),
        ..Default::default()
    });
    let tag = tag_for(&built.manifest_digest);
    let reference = Reference::with_tag(host.clone(), repository.to_string(), tag.clone());
    let auth = RegistryAuth::Basic(user, password);
    registry_retry::retry("log in", PUSH_BACKOFF, || {
        client.auth(&reference, &auth, RegistryOperation::Push)
    })
    .await
    .map_err(failed("log in to push"))?;
    for blob in built.blobs() {
        let digest = blob.digest.to_string();
        // One blob is one retried step: a failed upload starts over with a new upload session,
        // after checking whether the failed attempt landed after all.
        let uploaded = registry_retry::retry("upload a blob", PUSH_BACKOFF, || async {
            let exists = client.blob_exists(&reference, &digest).await;
            if logged_in_again(&client, &reference, &auth, exists).await? {
                return Ok(false);
            }
            let pushed = client.push_blob(&reference, blob.bytes.to_vec(), &digest).await;
            logged_in_again(&client, &reference, &auth, pushed)
                .await
                .map(|_| true)
        })
        .await
        .map_err(failed("upload a blob of"))?;
        if !uploaded {
            tracing::debug!(digest, "blob already present");
        }
    }
    registry_retry::retry("push the manifest", PUSH_BACKOFF, || async {
        let pushed = client
            .push_manifest_raw(
                &reference,
                built.manifest.clone(),
                http::HeaderValue::from_static(image::MANIFEST_MEDIA_TYPE),
            )
            .await;
        logged_in_again(&client, &reference, &auth, pushed).await
    })
    .await
    .map_err(failed("push the manifest of"))?;
    if registry_override.is_some() {
        register_with_ecr(clients, repository, built, &tag, &name).await?;
    }
    tracing::info!(image = name, "pushed image");
    Ok(format!("{host}/{repository}@{}", built.manifest_digest))
}

/// `result` of a push request; after a 401 it logs in again and answers
/// [`StepError::LoggedInAgain`], which the step's retry tries again (see there why a 401 may be a
/// login that did not take). A failed login is left to the next attempt.
async fn logged_in_again<T>(
    client: &oci_client::Client,
    reference: &Reference,
    auth: &RegistryAuth,
    result: Result<T, oci_client::errors::OciDistributionError>,
) -> Result<T, StepError> {
    match result {
        Err(error) if registry_retry::is_unauthorized(&error) => {
            if let Err(login) = client.auth(reference, auth, RegistryOperation::Push).await {
                tracing::debug!(%login, "logging in again failed");
            }
            Err(StepError::LoggedInAgain(error))
        }
        other => other.map_err(StepError::from),
    }
}

/// `PutImage` of the pushed manifest, passing `imageDigest` (moto computes a wrong one otherwise).
async fn register_with_ecr(
    clients: &Clients,
    repository: &str,
    built: &image::BuiltImage,
    tag: &str,
    name: &str,
) -> Result<(), AwsError> {
    let manifest =
        String::from_utf8(built.manifest.clone()).map_err(|e| AwsError::other("register", KIND, name, e))?;
    let result = clients
        .ecr
        .put_image()
        .repository_name(repository)
        .image_manifest(manifest)
        .image_manifest_media_type(image::MANIFEST_MEDIA_TYPE)
        .image_tag(tag)
        .image_digest(built.manifest_digest.to_string())
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) => {
            let e = AwsError::sdk("register", KIND, name, e);
            if e.has_code("ImageAlreadyExistsException") {
                Ok(())
            } else {
                Err(e)
            }
        }
    }
}

/// Pushes the image this run built (it must be the desired one, `name`) into the desired
/// repository, with the target's registry override.
pub async fn push_built(target: &AwsTarget, name: &str, settings: &ImageSettings) -> Result<(), AwsError> {
    let built = target.built_image()?;
    let want = &settings.image.digest;
    if built.manifest_digest != *want {
        return Err(AwsError::other(
            "push",
            KIND,
            name,
            format!(
                "the binary now builds {}, not the planned {want}; run `orchestrate up` again",
                built.manifest_digest
            ),
        ));
    }
    push(
        &target.clients,
        &settings.image.repository,
        &built,
        target.registry.as_ref(),
    )
    .await?;
    Ok(())
}

/// The digests of every image in `repository`.
async fn list_digests(clients: &Clients, repository: &str) -> Result<BTreeSet<String>, AwsError> {
    let mut token: Option<String> = None;
    let mut digests = BTreeSet::new();
    loop {
        let page = clients
            .ecr
            .list_images()
            .repository_name(repository)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| AwsError::sdk("list the images of", Kind::Repository, repository, e))?;
        digests.extend(
            page.image_ids()
                .iter()
                .filter_map(|id| id.image_digest().map(str::to_string)),
        );
        match page.next_token() {
            Some(next) => token = Some(next.to_string()),
            None => return Ok(digests),
        }
    }
}

/// The model image on AWS, in the deployment's repository.
#[derive(Debug)]
pub struct EcrImage;

impl KindOnTarget<AwsTarget> for EcrImage {
    type Settings = ImageSettings;

    async fn observe(target: &AwsTarget, _: &str, settings: &ImageSettings) -> Result<Observed, TargetError> {
        Ok(observe(&target.clients, &settings.image).await?)
    }

    async fn apply(
        target: &AwsTarget,
        name: &str,
        settings: &ImageSettings,
        _: &Change,
        _: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        push_built(target, name, settings).await?;
        Ok(Applied::Ready(Outputs::None))
    }

    /// Deletes the image `digest` (its name) from the deployment's repository.
    async fn delete(target: &AwsTarget, digest: &str) -> Result<Deleted, TargetError> {
        delete(&target.clients, &target.spec.repository_name(), digest).await?;
        Ok(Deleted::Gone)
    }

    /// Every image in the deployment's repository, by digest, when the repository is tagged as
    /// the deployment's.
    async fn owned(target: &AwsTarget) -> Result<Vec<Found>, TargetError> {
        if !ecr_repository::is_ours(target).await? {
            return Ok(Vec::new());
        }
        let digests = list_digests(&target.clients, &target.spec.repository_name()).await?;
        Ok(digests
            .into_iter()
            .map(|digest| Found::new(KIND, digest))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_derive_from_the_digest() {
        let digest = Digest::sha256(b"manifest");
        let tag = tag_for(&digest);
        assert_eq!(tag.len(), 20);
        assert!(tag.starts_with("sha-"));
        assert_eq!(&tag[4..], &digest.hex()[..16]);
    }

    fn registry(address: &str) -> Result<(ClientProtocol, String), RegistryError> {
        address
            .parse::<Registry>()
            .map(|r| (r.protocol(), r.host().to_string()))
    }

    #[test]
    fn registry_addresses_split_into_protocol_and_host() {
        assert_eq!(
            registry("http://127.0.0.1:5000/"),
            Ok((ClientProtocol::Http, "127.0.0.1:5000".to_string()))
        );
        assert_eq!(
            registry("https://123456789012.dkr.ecr.us-east-1.amazonaws.com"),
            Ok((
                ClientProtocol::Https,
                "123456789012.dkr.ecr.us-east-1.amazonaws.com".to_string()
            ))
        );
        assert_eq!(
            registry("registry:5000"),
            Ok((ClientProtocol::Https, "registry:5000".to_string()))
        );
        assert_eq!(
            "HTTP://localhost:5000".parse::<Registry>().unwrap().to_string(),
            "http://localhost:5000"
        );
    }

    #[test]
    fn plain_http_is_refused_except_to_loopback() {
        for local in [
            "http://127.0.0.1:5000",
            "http://127.8.9.10:5000",
            "http://localhost:5000",
            "http://LOCALHOST",
            "http://[::1]:5000",
            "http://[::ffff:127.0.0.1]:5000",
            "http://::1",
        ] {
            assert!(
                local.parse::<Registry>().is_ok_and(|r| r.is_plain_http()),
                "{local}"
            );
        }
        for remote in [
            "http://10.0.0.5:5000",
            "http://registry.example.com",
            "http://localhost.example.com:5000",
            "http://127.0.0.1.nip.io:5000",
            "http://[::2]:5000",
            "http://[::1]x:5000",
            "http://0.0.0.0:5000",
        ] {
            assert_eq!(
                remote.parse::<Registry>(),
                Err(RegistryError::PlainHttpToRemote {
                    address: remote.to_string()
                }),
                "{remote}"
            );
        }
        let refused = "http://10.0.0.5:5000"
            .parse::<Registry>()
            .unwrap_err()
            .to_string();
        assert!(refused.contains("unencrypted"), "{refused}");
        assert!(refused.contains("https://"), "{refused}");
    }

    #[test]
    fn registry_addresses_with_paths_credentials_or_other_schemes_are_refused() {
        for bad in [
            "",
            "http://",
            "ftp://registry:5000",
            "https://user:pw@registry",
            "https://registry/v2",
            "http://127.0.0.1:5000/v2",
        ] {
            assert_eq!(
                bad.parse::<Registry>(),
                Err(RegistryError::NotAnAddress {
                    address: bad.to_string()
                }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ecr_tokens_decode_to_user_and_password() {
        let token = base64::engine::general_purpose::STANDARD.encode("AWS:secret:with:colons");
        assert_eq!(
            decode_token(&token),
            Some(("AWS".to_string(), "secret:with:colons".to_string()))
        );
        assert_eq!(decode_token("not base64!"), None);
    }
}
