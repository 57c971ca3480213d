//! The closed set of resource kinds a deployment owns, what the deployment wants of each (`Desired`),
//! what a target found (`Observed`), and the pure decision between them (`diff` -> `Change`).
//!
//! Desired and observed state are both expressed as named fields with string values, and each desired
//! field says what a difference means: update in place, replace (the resource is immutable in
//! SageMaker), or nothing (the field is owned by someone else, like the autoscaler's instance count).
//! That keeps `diff` one pure function, exhaustively tested, shared by every target and by `status`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// Every kind of resource a deployment owns, in dependency order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Bucket,
    TrainingData,
    Role,
    Repository,
    Image,
    TrainingJob,
    Model,
    EndpointConfig,
    Endpoint,
    Autoscaling,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Bucket,
        Kind::TrainingData,
        Kind::Role,
        Kind::Repository,
        Kind::Image,
        Kind::TrainingJob,
        Kind::Model,
        Kind::EndpointConfig,
        Kind::Endpoint,
        Kind::Autoscaling,
    ];

    /// How users call it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Bucket => "bucket",
            Kind::TrainingData => "training data",
            Kind::Role => "role",
            Kind::Repository => "repository",
            Kind::Image => "image",
            Kind::TrainingJob => "training job",
            Kind::Model => "model",
            Kind::EndpointConfig => "endpoint config",
            Kind::Endpoint => "endpoint",
            Kind::Autoscaling => "autoscaling",
        }
    }

    /// The kinds this one needs to exist first.
    pub fn dependencies(self) -> &'static [Kind] {
        match self {
            Kind::Bucket | Kind::Role | Kind::Repository => &[],
            Kind::TrainingData => &[Kind::Bucket],
            Kind::Image => &[Kind::Repository],
            Kind::TrainingJob => &[Kind::TrainingData, Kind::Role, Kind::Image],
            Kind::Model => &[Kind::TrainingJob],
            Kind::EndpointConfig => &[Kind::Model],
            Kind::Endpoint => &[Kind::EndpointConfig],
            Kind::Autoscaling => &[Kind::Endpoint],
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What a difference in one field means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnChange {
    /// Changed in place (tags, a policy, the endpoint's config).
    Update,
    /// The resource cannot change: a new one replaces it.
    Replace,
    /// Owned by someone else (e.g. the autoscaler's instance count): never drift.
    Ignore,
}

/// One field the deployment wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    pub name: &'static str,
    pub value: String,
    pub on_change: OnChange,
}

/// One resource as the deployment wants it. Names are computed before any side effect.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Desired {
    pub kind: Kind,
    /// The resource's name. A training job's name is its base; targets add the attempt suffix.
    pub name: String,
    pub fields: Vec<Field>,
    /// How long the executor waits for this resource to become ready after applying a change.
    #[serde(with = "duration_secs")]
    pub wait_timeout: Duration,
}

impl Desired {
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
            fields: Vec::new(),
            wait_timeout: Duration::from_secs(600),
        }
    }

    pub fn field(mut self, name: &'static str, value: impl Into<String>, on_change: OnChange) -> Self {
        self.fields.push(Field {
            name,
            value: value.into(),
            on_change,
        });
        self
    }

    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// The wanted value of a field.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.as_str())
    }
}

mod duration_secs {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

/// The lifecycle state of a resource that exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum Lifecycle {
    Ready,
    /// Being created or updated (`InProgress`, `Creating`, `Updating`); the text is the target's word.
    InProgress(String),
    /// Ended badly (a Failed training job, a Failed endpoint); the text is the reason.
    Failed(String),
}

/// What a target found for a desired resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "presence", rename_all = "snake_case")]
pub enum Observed {
    Absent,
    Present {
        /// The actual name (for a training job: with its attempt suffix).
        name: String,
        fields: BTreeMap<String, String>,
        lifecycle: Lifecycle,
    },
}

impl Observed {
    pub fn present(name: impl Into<String>, lifecycle: Lifecycle) -> Self {
        Observed::Present {
            name: name.into(),
            fields: BTreeMap::new(),
            lifecycle,
        }
    }

    pub fn with_field(mut self, field: &str, value: impl Into<String>) -> Self {
        if let Observed::Present { fields, .. } = &mut self {
            fields.insert(field.to_string(), value.into());
        }
        self
    }
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldDiff {
    pub field: &'static str,
    pub want: String,
    /// `None`: the field is missing on the resource.
    pub have: Option<String>,
}

impl fmt::Display for FieldDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.have {
            Some(have) => write!(f, "{}: want {}, have {}", self.field, self.want, have),
            None => write!(f, "{}: want {}, have nothing", self.field, self.want),
        }
    }
}

/// What must happen to a resource for it to match the deployment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Change {
    /// Exists and matches.
    NoOp,
    /// Does not exist.
    Create,
    /// Exists; these fields change in place.
    Update { fields: Vec<FieldDiff> },
    /// Exists but cannot become what is wanted: a new one replaces it.
    Replace { reason: String, fields: Vec<FieldDiff> },
    /// Exists and is still being created or updated: wait for it.
    Wait { state: String },
}

impl Change {
    pub fn is_noop(&self) -> bool {
        matches!(self, Change::NoOp)
    }

    /// `+`, `~`, `-/+`, `…` or blank: the plan's margin symbol.
    pub fn symbol(&self) -> &'static str {
        match self {
            Change::NoOp => " ",
            Change::Create => "+",
            Change::Update { .. } => "~",
            Change::Replace { .. } => "-/+",
            Change::Wait { .. } => "…",
        }
    }

    pub fn verb(&self) -> &'static str {
        match self {
            Change::NoOp => "unchanged",
            Change::Create => "create",
            Change::Update { .. } => "update",
            Change::Replace { .. } => "replace",
            Change::Wait { .. } => "wait for",
        }
    }
}

/// The pure decision: what turns `observed` into `desired`.
///
/// - absent -> create;
/// - in progress -> wait (re-attach to a running training job, an updating endpoint);
/// - failed -> replace (a failed training job is followed by a new attempt);
/// - a differing `Replace` field -> replace, naming the fields; otherwise differing `Update` fields
///   -> update; `Ignore` fields never count.
pub fn diff(desired: &Desired, observed: &Observed) -> Change {
    let (fields, lifecycle) = match observed {
        Observed::Absent => return Change::Create,
        Observed::Present {
            fields, lifecycle, ..
        } => (fields, lifecycle),
    };
    match lifecycle {
        Lifecycle::InProgress(state) => return Change::Wait { state: state.clone() },
        Lifecycle::Failed(reason) => {
            return Change::Replace {
                reason: format!("the existing one failed: {reason}"),
                fields: vec![],
            };
        }
        Lifecycle::Ready => {}
    }
    let differing = |policy: OnChange| -> Vec<FieldDiff> {
        desired
            .fields
            .iter()
            .filter(|f| f.on_change == policy)
            .filter(|f| fields.get(f.name) != Some(&f.value))
            .map(|f| FieldDiff {
                field: f.name,
                want: f.value.clone(),
                have: fields.get(f.name).cloned(),
            })
            .collect()
    };
    let immutable = differing(OnChange::Replace);
    if !immutable.is_empty() {
        let names: Vec<&str> = immutable.iter().map(|d| d.field).collect();
        return Change::Replace {
            reason: format!("{} cannot change in place", names.join(", ")),
            fields: immutable,
        };
    }
    let mutable = differing(OnChange::Update);
    if mutable.is_empty() {
        Change::NoOp
    } else {
        Change::Update { fields: mutable }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> Desired {
        Desired::new(Kind::Endpoint, "iot")
            .field("config", "iot-aaa", OnChange::Update)
            .field("instance_type", "ml.m5.large", OnChange::Replace)
            .field("instance_count", "1", OnChange::Ignore)
    }

    fn ready() -> Observed {
        Observed::present("iot", Lifecycle::Ready)
            .with_field("config", "iot-aaa")
            .with_field("instance_type", "ml.m5.large")
            .with_field("instance_count", "1")
    }

    #[test]
    fn absent_is_create() {
        assert_eq!(diff(&desired(), &Observed::Absent), Change::Create);
    }

    #[test]
    fn matching_is_noop() {
        assert_eq!(diff(&desired(), &ready()), Change::NoOp);
    }

    #[test]
    fn ignored_fields_never_drift() {
        let observed = ready().with_field("instance_count", "4");
        assert_eq!(diff(&desired(), &observed), Change::NoOp);
        let observed = match ready() {
            Observed::Present {
                name,
                mut fields,
                lifecycle,
            } => {
                fields.remove("instance_count");
                Observed::Present {
                    name,
                    fields,
                    lifecycle,
                }
            }
            Observed::Absent => unreachable!(),
        };
        assert_eq!(diff(&desired(), &observed), Change::NoOp);
    }

    #[test]
    fn mutable_field_is_update_naming_want_and_have() {
        let observed = ready().with_field("config", "iot-old");
        let change = diff(&desired(), &observed);
        assert_eq!(
            change,
            Change::Update {
                fields: vec![FieldDiff {
                    field: "config",
                    want: "iot-aaa".into(),
                    have: Some("iot-old".into())
                }]
            }
        );
        assert_eq!(change.symbol(), "~");
    }

    #[test]
    fn missing_field_counts_as_different() {
        let observed = Observed::present("iot", Lifecycle::Ready).with_field("instance_type", "ml.m5.large");
        match diff(&desired(), &observed) {
            Change::Update { fields } => {
                assert_eq!(fields.len(), 1);
                assert_eq!(fields[0].have, None);
                assert_eq!(fields[0].to_string(), "config: want iot-aaa, have nothing");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn immutable_field_wins_over_mutable_ones() {
        let observed = ready()
            .with_field("config", "iot-old")
            .with_field("instance_type", "ml.c5.large");
        match diff(&desired(), &observed) {
            Change::Replace { reason, fields } => {
                assert_eq!(reason, "instance_type cannot change in place");
                assert_eq!(fields.len(), 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn in_progress_is_wait_and_failed_is_replace() {
        let observed = Observed::present("iot", Lifecycle::InProgress("Updating".into()));
        assert_eq!(
            diff(&desired(), &observed),
            Change::Wait {
                state: "Updating".into()
            }
        );
        let observed = Observed::present("iot", Lifecycle::Failed("AlgorithmError: boom".into()));
        match diff(&desired(), &observed) {
            Change::Replace { reason, .. } => assert!(reason.contains("AlgorithmError: boom")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dependencies_come_earlier_in_kind_order() {
        for kind in Kind::ALL {
            for dependency in kind.dependencies() {
                assert!(dependency < &kind, "{kind} depends on later {dependency}");
            }
        }
    }
}
