//! Names AWS constrains, checked before anything is created: the deployment name every resource name
//! derives from, SageMaker instance types, regions, S3 bucket names in `s3://` URIs, and tags.
//!
//! Each newtype can only hold a valid value (`FromStr`/`new` check the rules); a rejected value comes
//! back as a [`NameError`] with the reason and, where one can be guessed, the name that was meant.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest deployment name. Every AWS name derives from it and must fit its service's limit:
/// the S3 bucket `<name>-<12-digit account>-<region>` in 63 characters (with the longest regions,
/// 14 characters, that leaves 35), SageMaker names `<name>-<hash12>-<attempt>` in 63.
pub const MAX_NAME_LEN: usize = 32;

/// The longest S3 bucket name.
pub const MAX_BUCKET_LEN: usize = 63;

/// Tag keys that orchestrate sets itself on every resource, so deploy.yaml may not.
pub const RESERVED_TAG_KEYS: [&str; 2] = ["orchestrate:deployment", "managed-by"];

/// AWS allows 50 tags per resource; orchestrate uses the reserved ones.
pub const MAX_USER_TAGS: usize = 50 - RESERVED_TAG_KEYS.len();

/// Regions known when this was written, for suggestions only (a region of the right shape that is
/// not listed is accepted: AWS opens new ones).
pub const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// A name that breaks AWS's rules, why, and (when it can be guessed) the name that was probably meant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {what}: {reason}")]
pub struct NameError {
    /// What was being named ("deployment name", "instance type", ...).
    pub what: &'static str,
    /// The rejected value.
    pub value: String,
    /// The rule it breaks.
    pub reason: String,
    /// A fix: a corrected name or the rule spelled out.
    pub hint: Option<String>,
}

impl NameError {
    fn new(what: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            what,
            value: value.to_string(),
            reason: reason.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    fn suggest(self, candidate: Option<String>, fallback: &str) -> Self {
        match candidate {
            Some(c) if c != self.value => {
                let hint = format!("did you mean `{c}`?");
                self.hint(hint)
            }
            _ => self.hint(fallback),
        }
    }
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(into = "String", try_from = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(value: String) -> Result<Self, NameError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl $name {
            /// Checks the rules and wraps the value.
            pub fn new(value: impl Into<String>) -> Result<Self, NameError> {
                let value = value.into();
                $check(&value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_newtype!(
    /// The deployment's name, the prefix of every resource name: `[a-z0-9-]`, starting with a letter,
    /// no `--`, no trailing `-`, at most [`MAX_NAME_LEN`] characters. Valid as is for S3 buckets, ECR
    /// repositories, IAM roles and SageMaker resources.
    DeploymentName,
    check_deployment_name
);

string_newtype!(
    /// A SageMaker instance type, `ml.<family>.<size>` (`ml.m5.xlarge`, `ml.g5.2xlarge`).
    InstanceType,
    check_instance_type
);

string_newtype!(
    /// An AWS region code such as `us-east-1` or `us-gov-west-1`.
    Region,
    check_region
);

impl DeploymentName {
    /// The data bucket's name, `<name>-<account_id>-<region>`.
    pub fn bucket_name(&self, account_id: &str, region: &Region) -> String {
        format!("{}-{account_id}-{}", self.0, region.0)
    }
}

impl InstanceType {
    /// The family (`m5` in `ml.m5.xlarge`).
    pub fn family(&self) -> &str {
        self.0.split('.').nth(1).unwrap_or_default()
    }

    /// The size (`xlarge` in `ml.m5.xlarge`).
    pub fn size(&self) -> &str {
        self.0.split('.').nth(2).unwrap_or_default()
    }
}

/// Length of the data bucket's name for a deployment name and region (account ids have 12 digits).
pub fn bucket_name_len(name: &str, region: &str) -> usize {
    name.len() + 1 + 12 + 1 + region.len()
}

fn check_deployment_name(v: &str) -> Result<(), NameError> {
    const WHAT: &str = "deployment name";
    let fallback = "use lowercase letters, digits and single `-`, starting with a letter";
    let err = |reason: &str| NameError::new(WHAT, v, reason).suggest(fix_name(v), fallback);
    if v.is_empty() {
        return Err(NameError::new(WHAT, v, "it is empty").hint("e.g. `iot-anomaly`"));
    }
    if let Some(c) = v.chars().find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-')) {
        let reason = if c.is_ascii_uppercase() {
            "it has uppercase letters (S3 bucket names are lowercase)".to_string()
        } else {
            format!("it contains `{c}`; only lowercase letters, digits and `-` are allowed")
        };
        return Err(err(&reason));
    }
    if !v.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(err("it must start with a letter"));
    }
    if v.contains("--") {
        return Err(err(
            "it contains `--` (SageMaker and S3 reject consecutive hyphens)",
        ));
    }
    if v.ends_with('-') {
        return Err(err("it ends with `-`"));
    }
    let len = v.chars().count();
    if len > MAX_NAME_LEN {
        let reason = format!(
            "it is {len} characters, at most {MAX_NAME_LEN}: the data bucket `<name>-<account>-<region>` \
             must fit in S3's {MAX_BUCKET_LEN}"
        );
        let hint = format!("shorten it by {} characters", len - MAX_NAME_LEN);
        return Err(NameError::new(WHAT, v, reason).hint(hint));
    }
    for prefix in ["sthree-", "amzn-s3-demo-"] {
        if v.starts_with(prefix) {
            return Err(
                NameError::new(WHAT, v, format!("S3 reserves the prefix `{prefix}`"))
                    .hint("choose another name"),
            );
        }
    }
    Ok(())
}

/// The closest valid deployment name, if the input can be mended.
fn fix_name(v: &str) -> Option<String> {
    let mut out = String::new();
    for c in v.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    out.truncate(MAX_NAME_LEN);
    let out = out.trim_end_matches('-').to_string();
    let valid = out.starts_with(|c: char| c.is_ascii_lowercase())
        && !["sthree-", "amzn-s3-demo-"].iter().any(|p| out.starts_with(p));
    valid.then_some(out)
}

fn check_instance_type(v: &str) -> Result<(), NameError> {
    const WHAT: &str = "instance type";
    let fallback = "SageMaker instance types look like `ml.m5.xlarge` (`ml.<family>.<size>`)";
    let shape = |s: &str| {
        let parts: Vec<&str> = s.split('.').collect();
        parts.len() == 3
            && parts[0] == "ml"
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
    };
    if shape(v) {
        return Ok(());
    }
    let lower = v.trim().to_ascii_lowercase();
    let candidate = if shape(&lower) {
        Some(lower)
    } else if !lower.starts_with("ml.") && shape(&format!("ml.{lower}")) {
        Some(format!("ml.{lower}"))
    } else {
        None
    };
    let reason = if !v.starts_with("ml.") {
        "SageMaker instance types start with `ml.`"
    } else if v.split('.').count() == 2 {
        "it has no size (`ml.<family>.<size>`)"
    } else {
        "expected `ml.<family>.<size>` in lowercase letters and digits"
    };
    let err = NameError::new(WHAT, v, reason);
    Err(match candidate {
        Some(c) => err.suggest(Some(c), fallback),
        None if v.split('.').count() == 2 && v.starts_with("ml.") => {
            err.hint(format!("add a size, e.g. `{v}.xlarge`"))
        }
        None => err.hint(fallback),
    })
}

fn check_region(v: &str) -> Result<(), NameError> {
    const WHAT: &str = "region";
    // [a-z]{2}(-gov)?-[a-z]+-\d
    let shape = |s: &str| {
        let parts: Vec<&str> = s.split('-').collect();
        let (country, rest) = match parts.as_slice() {
            [c, rest @ ..] => (c, rest),
            [] => return false,
        };
        let rest = match rest {
            ["gov", rest @ ..] => rest,
            other => other,
        };
        let lower = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
        country.len() == 2
            && lower(country)
            && matches!(rest, [area, n] if lower(area) && n.len() == 1 && n.as_bytes()[0].is_ascii_digit())
    };
    if shape(v) {
        return Ok(());
    }
    let lower = v.trim().to_ascii_lowercase();
    let candidate = if shape(&lower) {
        Some(lower)
    } else {
        crate::suggest::did_you_mean(&lower, KNOWN_REGIONS.iter().copied()).map(str::to_string)
    };
    Err(NameError::new(
        WHAT,
        v,
        "regions look like `us-east-1`, `eu-west-2` or `us-gov-west-1`",
    )
    .suggest(candidate, "see the AWS region list, e.g. `us-east-1`"))
}

/// Checks a bucket name in an `s3://` URI against S3's general-purpose bucket rules.
pub fn check_bucket_name(v: &str) -> Result<(), NameError> {
    bucket_rule(v).map_err(|reason| {
        let err = NameError::new("S3 bucket name", v, reason);
        let fixed = v.to_ascii_lowercase().replace('_', "-");
        let candidate = (fixed != v && bucket_rule(&fixed).is_ok()).then_some(fixed);
        err.suggest(
            candidate,
            "S3 bucket names have 3 to 63 lowercase letters, digits, `.` and `-`",
        )
    })
}

fn bucket_rule(v: &str) -> Result<(), String> {
    let len = v.len();
    if !(3..=MAX_BUCKET_LEN).contains(&len) {
        return Err(format!("it is {len} characters; S3 allows 3 to 63"));
    }
    if let Some(c) = v
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '-'))
    {
        return Err(format!(
            "it contains `{c}`; only lowercase letters, digits, `.` and `-` are allowed"
        ));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(v.chars().next()) || !alnum(v.chars().last()) {
        return Err("it must start and end with a letter or digit".into());
    }
    if v.contains("..") {
        return Err("it contains `..`".into());
    }
    if v.split('.').count() == 4 && v.split('.').all(|p| p.parse::<u8>().is_ok()) {
        return Err("it is formatted like an IP address".into());
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if v.starts_with(prefix) {
            return Err(format!("S3 reserves the prefix `{prefix}`"));
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if v.ends_with(suffix) {
            return Err(format!("S3 reserves the suffix `{suffix}`"));
        }
    }
    Ok(())
}

fn tag_chars_ok(s: &str) -> Option<char> {
    // AWS: letters, digits, whitespace and `_ . : / = + - @` (Unicode letters and digits included).
    s.chars()
        .find(|c| !(c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(*c)))
}

/// Checks a user tag key: 1 to 128 characters of the allowed set, not `aws:`-prefixed, not reserved.
pub fn check_tag_key(k: &str) -> Result<(), NameError> {
    const WHAT: &str = "tag key";
    let len = k.chars().count();
    if len == 0 || len > 128 {
        return Err(
            NameError::new(WHAT, k, format!("it is {len} characters; AWS allows 1 to 128"))
                .hint("use a tag key of 1 to 128 characters"),
        );
    }
    if k.to_ascii_lowercase().starts_with("aws:") {
        return Err(
            NameError::new(WHAT, k, "the `aws:` prefix is reserved for AWS").hint("remove the `aws:` prefix")
        );
    }
    if RESERVED_TAG_KEYS.contains(&k) {
        return Err(
            NameError::new(WHAT, k, "orchestrate sets this tag itself on every resource")
                .hint("choose another key; orchestrate finds and sweeps its resources by this tag"),
        );
    }
    if let Some(c) = tag_chars_ok(k) {
        return Err(NameError::new(WHAT, k, format!("it contains `{c}`"))
            .hint("tag keys may use letters, digits, spaces and `_ . : / = + - @`"));
    }
    Ok(())
}

/// Checks a tag value: at most 256 characters of the allowed set.
pub fn check_tag_value(v: &str) -> Result<(), NameError> {
    const WHAT: &str = "tag value";
    let len = v.chars().count();
    if len > 256 {
        return Err(
            NameError::new(WHAT, v, format!("it is {len} characters; AWS allows 256"))
                .hint("shorten the value to 256 characters"),
        );
    }
    if let Some(c) = tag_chars_ok(v) {
        return Err(NameError::new(WHAT, v, format!("it contains `{c}`"))
            .hint("tag values may use letters, digits, spaces and `_ . : / = + - @`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_names_follow_the_s3_and_sagemaker_rules() {
        for ok in ["iot-anomaly", "a", "a1-b2", "x".repeat(32).as_str()] {
            assert!(DeploymentName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "-abc",
            "abc-",
            "a--b",
            "Abc",
            "a_b",
            "a.b",
            "sthree-x",
            &"x".repeat(33),
        ] {
            assert!(DeploymentName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_deployment_name_suggests_a_valid_one() {
        let e = DeploymentName::new("IoT_Anomaly").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `iot-anomaly`?"));
        let e = DeploymentName::new("iot-anomaly-").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `iot-anomaly`?"));
        let e = DeploymentName::new("iot--anomaly").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `iot-anomaly`?"));
    }

    #[test]
    fn the_longest_name_leaves_room_for_the_bucket() {
        let name = "x".repeat(MAX_NAME_LEN);
        let longest_region = KNOWN_REGIONS.iter().map(|r| r.len()).max().unwrap();
        assert!(bucket_name_len(&name, &"r".repeat(longest_region)) <= MAX_BUCKET_LEN);
        let n = DeploymentName::new("iot").unwrap();
        let r = Region::new("eu-west-1").unwrap();
        assert_eq!(n.bucket_name("123456789012", &r), "iot-123456789012-eu-west-1");
        assert_eq!(bucket_name_len("iot", "eu-west-1"), 26);
    }

    #[test]
    fn instance_types_are_ml_family_size() {
        let t = InstanceType::new("ml.m5.xlarge").unwrap();
        assert_eq!((t.family(), t.size()), ("m5", "xlarge"));
        assert!(InstanceType::new("ml.g5.12xlarge").is_ok());
        let e = InstanceType::new("m5.xlarge").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `ml.m5.xlarge`?"));
        let e = InstanceType::new("ML.M5.Large").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `ml.m5.large`?"));
        let e = InstanceType::new("ml.m5").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("add a size, e.g. `ml.m5.xlarge`"));
        assert!(InstanceType::new("ml.m5.xlarge.x").is_err());
        assert!(InstanceType::new("ml..xlarge").is_err());
    }

    #[test]
    fn regions_have_the_aws_shape() {
        for ok in KNOWN_REGIONS {
            assert!(Region::new(*ok).is_ok(), "{ok}");
        }
        assert!(
            Region::new("xx-mars-9").is_ok(),
            "unknown but well-formed regions pass"
        );
        let e = Region::new("us-east1").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `us-east-1`?"));
        let e = Region::new("US-EAST-1").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `us-east-1`?"));
        assert!(Region::new("useast").is_err());
    }

    #[test]
    fn bucket_names_in_uris_follow_s3_rules() {
        for ok in ["my-bucket", "a.b.c", "abc", "data-123"] {
            assert!(check_bucket_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "My-Bucket",
            "-abc",
            "abc-",
            "a..b",
            "192.168.1.1",
            "xn--abc",
            "a-s3alias",
            "a_b",
        ] {
            assert!(check_bucket_name(bad).unwrap_err().hint.is_some(), "{bad}");
        }
        let e = check_bucket_name("My_Bucket").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `my-bucket`?"));
    }

    #[test]
    fn tags_follow_aws_rules_and_keep_ours_reserved() {
        assert!(check_tag_key("team").is_ok());
        assert!(check_tag_key("cost-center:ml/é").is_ok());
        assert!(check_tag_key("aws:foo").is_err());
        assert!(check_tag_key("AWS:foo").is_err());
        assert!(check_tag_key("managed-by").is_err());
        assert!(check_tag_key("orchestrate:deployment").is_err());
        assert!(check_tag_key("").is_err());
        assert!(check_tag_key(&"k".repeat(129)).is_err());
        assert!(check_tag_key("a#b").is_err());
        assert!(check_tag_value("").is_ok());
        assert!(check_tag_value(&"v".repeat(256)).is_ok());
        assert!(check_tag_value(&"v".repeat(257)).is_err());
    }
}
