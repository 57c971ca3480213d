//! AWS requests as moto's launcher records them, and which of them change something.
//!
//! The classification: a request naming an operation (`X-Amz-Target` for JSON-protocol services such
//! as ECR, SageMaker, CloudWatch Logs and Application Auto Scaling, the `Action` parameter for
//! query-protocol ones such as IAM and STS) reads when the operation starts with a reading verb (`Get`,
//! `List`, `Describe`, `Head`, `BatchGet`, `BatchCheck`, `Query`, `Scan`, `Search`, `Select`, `Lookup`,
//! `Filter`) and mutates otherwise (`Create`, `Put`, `Delete`, `Update`, `Tag`, `Untag`, `Attach`,
//! `Detach`, `Set`, `Upload`, `Complete`, `Initiate`, `BatchDelete`, `Start`, `Stop`, `Register`,
//! `Deregister`, …): an operation the list does not know counts as mutating, so a "no mutating call"
//! assertion fails on it rather than passing. A Smithy RPC v2 CBOR request (CloudWatch:
//! `POST /service/GraniteServiceVersion20100801/operation/PutMetricAlarm`) is named by the operation
//! in its path and classified by the same verbs. A REST request (S3, sagemaker-runtime) reads when its
//! method is `GET` or `HEAD` and mutates otherwise (`PUT`, `POST`, `DELETE`), with one exception:
//! sagemaker-runtime's `InvokeEndpoint` (`POST /endpoints/NAME/invocations`, signed as `sagemaker`)
//! reads, because it runs the model and changes no resource (a deployment that verifies its endpoint
//! by invoking it still made no change). `InvokeEndpointAsync` (`/async-invocations`) writes its result
//! to S3 and counts as mutating.

use std::fmt;

use serde::Deserialize;

/// One AWS request moto served.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "Logged")]
pub struct Request {
    /// The HTTP method.
    pub method: String,
    /// The URL path (`/` for query and JSON protocols, `/bucket/key` for S3,
    /// `/service/SERVICE/operation/OPERATION` for RPC v2 CBOR).
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// The `X-Amz-Target` header (JSON protocol: `AmazonEC2ContainerRegistry_V20150921.CreateRepository`).
    pub target: Option<String>,
    /// The service of the SigV4 credential scope (`s3`, `iam`, `ecr`, `sts`, `sagemaker` (also for
    /// sagemaker-runtime), `logs`, `application-autoscaling`, `monitoring` (CloudWatch)).
    pub service: Option<String>,
    /// How the operation was named.
    pub protocol: Protocol,
    /// The operation (`CreateRepository`, `CreateRole`, `PutMetricAlarm`), or for REST
    /// `METHOD path?parameter-names` (`PUT /bucket?policy`).
    pub action: String,
}

/// A request as the launcher's log writes it. The log names RPC v2 CBOR requests as REST ones
/// (`POST /service/…/operation/PutMetricAlarm`); [`Request`] names them by their operation.
#[derive(Deserialize)]
struct Logged {
    method: String,
    path: String,
    query: String,
    target: Option<String>,
    service: Option<String>,
    protocol: Protocol,
    action: String,
}

impl From<Logged> for Request {
    fn from(logged: Logged) -> Self {
        let operation = match logged.protocol {
            Protocol::Rest if logged.method == "POST" => rpc_v2_cbor_operation(&logged.path),
            _ => None,
        };
        let (protocol, action) = match operation {
            Some(operation) => (Protocol::RpcV2Cbor, operation.to_string()),
            None => (logged.protocol, logged.action),
        };
        Request {
            method: logged.method,
            path: logged.path,
            query: logged.query,
            target: logged.target,
            service: logged.service,
            protocol,
            action,
        }
    }
}

/// The operation of an RPC v2 CBOR path, `/service/SERVICE/operation/OPERATION`.
fn rpc_v2_cbor_operation(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/service/")?;
    let (service, operation) = rest.split_once("/operation/")?;
    let named = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (named(service) && named(operation)).then_some(operation)
}

/// How a request names its operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// JSON protocol: the `X-Amz-Target` header (ECR, SageMaker, CloudWatch Logs, Application Auto
    /// Scaling).
    Json,
    /// Query protocol: the `Action` parameter (IAM, STS).
    Query,
    /// REST: the method and path (S3, sagemaker-runtime).
    Rest,
    /// Smithy RPC v2 CBOR: the operation in the path, `/service/SERVICE/operation/OPERATION`
    /// (CloudWatch, as the current Rust SDK speaks it).
    #[serde(rename = "rpc-v2-cbor")]
    RpcV2Cbor,
}

/// Verbs of operations that only read.
const READS: &[&str] = &[
    "Get",
    "List",
    "Describe",
    "Head",
    "BatchGet",
    "BatchCheck",
    "Query",
    "Scan",
    "Search",
    "Select",
    "Lookup",
    "Filter",
];

impl Request {
    /// Whether the request may change state (see the module documentation for the rule).
    pub fn is_mutating(&self) -> bool {
        match self.protocol {
            Protocol::Json | Protocol::Query | Protocol::RpcV2Cbor => {
                !READS.iter().any(|verb| starts_with_word(&self.action, verb))
            }
            Protocol::Rest => {
                !matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS") && !self.is_invoke_endpoint()
            }
        }
    }

    /// sagemaker-runtime's `InvokeEndpoint`: `POST /endpoints/NAME/invocations`, signed as `sagemaker`.
    pub fn is_invoke_endpoint(&self) -> bool {
        self.protocol == Protocol::Rest
            && self.method == "POST"
            && self.service.as_deref() == Some("sagemaker")
            && self
                .path
                .strip_prefix("/endpoints/")
                .and_then(|rest| rest.strip_suffix("/invocations"))
                .is_some_and(|name| !name.is_empty() && !name.contains('/'))
    }
}

/// `name` starts with `verb` followed by the end or an uppercase letter (`Get` in `GetRole`, not in
/// `Getaway`).
fn starts_with_word(name: &str, verb: &str) -> bool {
    name.strip_prefix(verb)
        .is_some_and(|rest| rest.chars().next().is_none_or(|c| c.is_ascii_uppercase()))
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.service {
            Some(service) => write!(f, "{service} {}", self.action),
            None => f.write_str(&self.action),
        }
    }
}

/// The requests that may change state, in order.
pub fn mutating(requests: &[Request]) -> Vec<&Request> {
    requests.iter().filter(|r| r.is_mutating()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(service: &str, target: &str) -> Request {
        Request {
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            target: Some(target.into()),
            service: Some(service.into()),
            protocol: Protocol::Json,
            action: target.rsplit('.').next().unwrap().into(),
        }
    }

    fn query(service: &str, action: &str) -> Request {
        Request {
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            target: None,
            service: Some(service.into()),
            protocol: Protocol::Query,
            action: action.into(),
        }
    }

    fn rest(method: &str, path: &str, query: &str) -> Request {
        let names: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split('=').next().unwrap())
            .collect();
        let suffix = if names.is_empty() {
            String::new()
        } else {
            format!("?{}", names.join("&"))
        };
        Request {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            target: None,
            service: Some("s3".into()),
            protocol: Protocol::Rest,
            action: format!("{method} {path}{suffix}"),
        }
    }

    const ECR: &str = "AmazonEC2ContainerRegistry_V20150921";

    #[test]
    fn json_protocol_operations_are_classified_by_their_verb() {
        for op in [
            "CreateRepository",
            "DeleteRepository",
            "PutImage",
            "PutImageTagMutability",
            "PutImageScanningConfiguration",
            "TagResource",
            "UntagResource",
            "BatchDeleteImage",
            "InitiateLayerUpload",
            "UploadLayerPart",
            "CompleteLayerUpload",
            "SetRepositoryPolicy",
        ] {
            assert!(json("ecr", &format!("{ECR}.{op}")).is_mutating(), "{op}");
        }
        for op in [
            "DescribeRepositories",
            "DescribeImages",
            "ListTagsForResource",
            "GetAuthorizationToken",
            "BatchGetImage",
            "BatchCheckLayerAvailability",
        ] {
            assert!(!json("ecr", &format!("{ECR}.{op}")).is_mutating(), "{op}");
        }
        assert!(json("sagemaker", "SageMaker.CreateTrainingJob").is_mutating());
        assert!(json("sagemaker", "SageMaker.StopTrainingJob").is_mutating());
        assert!(!json("sagemaker", "SageMaker.DescribeEndpoint").is_mutating());
        assert!(!json("sagemaker", "SageMaker.Search").is_mutating());
    }

    #[test]
    fn query_protocol_actions_are_classified_by_their_verb() {
        for action in [
            "CreateRole",
            "PutRolePolicy",
            "DeleteRolePolicy",
            "AttachRolePolicy",
            "DetachRolePolicy",
            "TagRole",
            "UntagRole",
            "UpdateAssumeRolePolicy",
        ] {
            assert!(query("iam", action).is_mutating(), "{action}");
        }
        for action in [
            "GetRole",
            "GetRolePolicy",
            "ListRoleTags",
            "ListAttachedRolePolicies",
        ] {
            assert!(!query("iam", action).is_mutating(), "{action}");
        }
        assert!(!query("sts", "GetCallerIdentity").is_mutating());
    }

    #[test]
    fn unknown_operations_count_as_mutating() {
        assert!(query("sts", "AssumeRole").is_mutating());
        assert!(
            json("ecr", &format!("{ECR}.Getaway")).is_mutating(),
            "a verb is a whole word"
        );
    }

    #[test]
    fn rest_requests_are_classified_by_method() {
        assert!(rest("PUT", "/bucket", "").is_mutating());
        assert!(rest("PUT", "/bucket", "policy").is_mutating());
        assert!(rest("PUT", "/bucket/data/x.csv", "").is_mutating());
        assert!(rest("POST", "/bucket", "delete").is_mutating());
        assert!(rest("DELETE", "/bucket", "policy").is_mutating());
        assert!(!rest("GET", "/bucket", "versioning").is_mutating());
        assert!(!rest("GET", "/bucket", "list-type=2&prefix=data").is_mutating());
        assert!(!rest("HEAD", "/bucket/data/x.csv", "").is_mutating());
    }

    #[test]
    fn sagemaker_runtime_invocations_read_and_async_ones_mutate() {
        let invoke = |path: &str, service: &str| Request {
            service: Some(service.into()),
            action: format!("POST {path}"),
            ..rest("POST", path, "")
        };
        let request = invoke("/endpoints/orchestrate-demo/invocations", "sagemaker");
        assert!(request.is_invoke_endpoint());
        assert!(!request.is_mutating());
        assert!(invoke("/endpoints/orchestrate-demo/async-invocations", "sagemaker").is_mutating());
        assert!(
            invoke("/endpoints/orchestrate-demo/invocations", "s3").is_mutating(),
            "an S3 key of that name is an upload"
        );
        assert!(invoke("/endpoints/a/b/invocations", "sagemaker").is_mutating());
    }

    #[test]
    fn logs_and_autoscaling_operations_are_classified_by_their_verb() {
        for op in [
            "Logs_20140328.FilterLogEvents",
            "Logs_20140328.GetLogEvents",
            "Logs_20140328.DescribeLogStreams",
            "AnyScaleFrontendService.DescribeScalableTargets",
            "AnyScaleFrontendService.DescribeScalingPolicies",
        ] {
            assert!(!json("logs", op).is_mutating(), "{op}");
        }
        for op in [
            "Logs_20140328.CreateLogGroup",
            "Logs_20140328.PutRetentionPolicy",
            "AnyScaleFrontendService.RegisterScalableTarget",
            "AnyScaleFrontendService.PutScalingPolicy",
            "AnyScaleFrontendService.DeregisterScalableTarget",
        ] {
            assert!(json("logs", op).is_mutating(), "{op}");
        }
        assert!(json("sagemaker", "SageMaker.UpdateEndpoint").is_mutating());
        assert!(json("sagemaker", "SageMaker.DeleteEndpoint").is_mutating());
    }

    #[test]
    fn mutating_keeps_only_the_mutating_requests_in_order() {
        let requests = vec![
            query("sts", "GetCallerIdentity"),
            rest("HEAD", "/bucket", ""),
            rest("PUT", "/bucket", "tagging"),
            json("ecr", &format!("{ECR}.DescribeRepositories")),
            query("iam", "CreateRole"),
        ];
        let names: Vec<String> = mutating(&requests).iter().map(|r| r.to_string()).collect();
        assert_eq!(names, ["s3 PUT /bucket?tagging", "iam CreateRole"]);
        assert!(mutating(&requests[..2]).is_empty());
    }

    #[test]
    fn rpc_v2_cbor_requests_are_named_by_their_operation_and_classified_by_its_verb() {
        let logged = |operation: &str| {
            format!(
                r#"{{"method":"POST","path":"/service/GraniteServiceVersion20100801/operation/{operation}","query":"","target":null,"service":"monitoring","protocol":"rest","action":"POST /service/GraniteServiceVersion20100801/operation/{operation}"}}"#
            )
        };
        for (operation, mutates) in [
            ("PutMetricAlarm", true),
            ("SetAlarmState", true),
            ("DeleteAlarms", true),
            ("TagResource", true),
            ("UntagResource", true),
            ("PutMetricData", true),
            ("DescribeAlarms", false),
            ("ListTagsForResource", false),
            ("GetMetricStatistics", false),
        ] {
            let request: Request = serde_json::from_str(&logged(operation)).unwrap();
            assert_eq!(request.protocol, Protocol::RpcV2Cbor, "{operation}");
            assert_eq!(request.action, operation);
            assert_eq!(request.is_mutating(), mutates, "{operation}");
            assert_eq!(request.to_string(), format!("monitoring {operation}"));
        }
        let named: Request = serde_json::from_str(
            r#"{"method":"POST","path":"/service/S/operation/DescribeAlarms","query":"","target":null,"service":"monitoring","protocol":"rpc-v2-cbor","action":"DescribeAlarms"}"#,
        )
        .unwrap();
        assert_eq!(
            (named.protocol, named.action.as_str()),
            (Protocol::RpcV2Cbor, "DescribeAlarms")
        );
    }

    #[test]
    fn only_rpc_v2_cbor_paths_are_renamed() {
        for (method, path) in [
            ("POST", "/service/S/operation/"),
            ("POST", "/service//operation/Op"),
            ("POST", "/service/S/operation/Op/more"),
            ("POST", "/bucket/service/S/operation/Op"),
            ("GET", "/service/S/operation/Op"),
        ] {
            let request: Request = serde_json::from_value(serde_json::json!({
                "method": method, "path": path, "query": "", "target": null, "service": "s3",
                "protocol": "rest", "action": format!("{method} {path}"),
            }))
            .unwrap();
            assert_eq!(request.protocol, Protocol::Rest, "{method} {path}");
            assert_eq!(request.action, format!("{method} {path}"));
        }
    }

    #[test]
    fn the_launchers_json_deserializes() {
        let requests: Vec<Request> = serde_json::from_str(
            r#"[{"method":"POST","path":"/","query":"","target":null,"service":"iam","protocol":"query","action":"CreateRole"},
                {"method":"PUT","path":"/b","query":"policy","target":null,"service":"s3","protocol":"rest","action":"PUT /b?policy"}]"#,
        )
        .unwrap();
        assert_eq!(requests[0], query("iam", "CreateRole"));
        assert_eq!(requests[1], rest("PUT", "/b", "policy"));
    }
}
