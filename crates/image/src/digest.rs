//! Content digests (`sha256:<64 hex>`), the names registries, manifests and `docker load` give blobs.
//!
//! A [`Digest`] is only ever made by hashing bytes or by parsing a well-formed string, so holding one
//! means holding a valid reference: `repo@sha256:…` can be built from it without further checks.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

const PREFIX: &str = "sha256:";
const HEX_LEN: usize = 64;

/// A sha256 content digest, displayed as `sha256:<64 lowercase hex digits>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    /// The sha256 digest of `bytes`.
    pub fn sha256(bytes: &[u8]) -> Self {
        let hash = Sha256::digest(bytes);
        let mut text = String::with_capacity(PREFIX.len() + HEX_LEN);
        text.push_str(PREFIX);
        for byte in hash.iter() {
            text.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
            text.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
        }
        Self(text)
    }

    /// The whole digest, `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits without the algorithm prefix (file names in archives and blob stores).
    pub fn hex(&self) -> &str {
        &self.0[PREFIX.len()..]
    }

    /// The first 12 hex digits, the short image id Docker prints.
    pub fn short12(&self) -> &str {
        &self.hex()[..12]
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A string that is not `sha256:` followed by 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a sha256 digest (expected `sha256:` and 64 lowercase hex digits)")]
pub struct ParseDigestError(pub String);

impl FromStr for Digest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let well_formed = s
            .strip_prefix(PREFIX)
            .is_some_and(|hex| hex.len() == HEX_LEN && hex.bytes().all(|b| HEX_DIGITS.contains(&b)));
        if well_formed {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseDigestError(s.to_owned()))
        }
    }
}

impl TryFrom<String> for Digest {
    type Error = ParseDigestError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(digest: Digest) -> Self {
        digest.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty_input_matches_the_known_value() {
        let digest = Digest::sha256(b"");
        assert_eq!(
            digest.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            digest.hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(digest.short12(), "e3b0c44298fc");
    }

    #[test]
    fn parse_accepts_only_well_formed_sha256() {
        let text = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(text.parse::<Digest>().unwrap(), Digest::sha256(b""));
        for bad in [
            "",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn serde_round_trips_through_the_string_form_and_validates() {
        let digest = Digest::sha256(b"layer");
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(json, format!("\"{digest}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), digest);
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
    }
}
