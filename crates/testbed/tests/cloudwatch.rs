//! CloudWatch alarms with the current Rust SDK, which speaks Smithy RPC v2 CBOR, against the
//! launcher's moto (its `cloudwatch_cbor.py` shim): alarms are created, described back field by
//! field, set to ALARM, tagged, untagged and deleted over real HTTP; the service-model check refuses
//! an invalid request in the protocol's error form; the request log names each call by its operation.
//! Skipped (with a note) when moto is missing, outside CI.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, MetricAlarm, MetricDatum, StateValue, Statistic, Tag,
};
use testbed::{Moto, Protocol, mutating};

const REGION: &str = "us-east-1";
const ENDPOINT: &str = "orchestrate-demo";
const VARIANT: &str = "AllTraffic";
const ERRORS: &str = "orchestrate-demo-invocation-5xx";
const LATENCY: &str = "orchestrate-demo-model-latency-p99";

fn cloudwatch(config: &aws_config::SdkConfig) -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::new(config)
}

fn dimensions() -> Vec<Dimension> {
    vec![
        Dimension::builder().name("EndpointName").value(ENDPOINT).build(),
        Dimension::builder().name("VariantName").value(VARIANT).build(),
    ]
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

async fn alarm(cloudwatch: &aws_sdk_cloudwatch::Client, name: &str) -> Option<MetricAlarm> {
    let described = cloudwatch
        .describe_alarms()
        .alarm_names(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeAlarms {name}: {}", DisplayErrorContext(&e)));
    assert!(described.composite_alarms().is_empty());
    let mut alarms = described.metric_alarms().to_vec();
    assert!(alarms.len() <= 1, "{alarms:?}");
    alarms.pop()
}

async fn tags(cloudwatch: &aws_sdk_cloudwatch::Client, arn: &str) -> Vec<(String, String)> {
    let listed = cloudwatch
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListTagsForResource {arn}: {}", DisplayErrorContext(&e)));
    let mut tags: Vec<(String, String)> = listed
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect();
    tags.sort();
    tags
}

fn pairs(tags: &[(&str, &str)]) -> Vec<(String, String)> {
    tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_round_trip_over_rpc_v2_cbor() {
    let Some(moto) = Moto::start().await else { return };
    let cloudwatch = cloudwatch(&moto.sdk_config(REGION).await);

    cloudwatch
        .put_metric_alarm()
        .alarm_name(ERRORS)
        .alarm_description("5xx errors of the endpoint's variant")
        .namespace("AWS/SageMaker")
        .metric_name("Invocation5XXErrors")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(3)
        .datapoints_to_alarm(2)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .treat_missing_data("notBreaching")
        .set_dimensions(Some(dimensions()))
        .set_alarm_actions(Some(Vec::new()))
        .tags(tag("orchestrate:deployment", "demo"))
        .tags(tag("orchestrate:guard", "errors"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutMetricAlarm: {}", DisplayErrorContext(&e)));
    cloudwatch
        .put_metric_alarm()
        .alarm_name(LATENCY)
        .namespace("AWS/SageMaker")
        .metric_name("ModelLatency")
        .extended_statistic("p99")
        .period(60)
        .evaluation_periods(5)
        .datapoints_to_alarm(3)
        .threshold(250_000.5)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .treat_missing_data("missing")
        .set_dimensions(Some(dimensions()))
        .set_alarm_actions(Some(Vec::new()))
        .tags(tag("orchestrate:deployment", "demo"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutMetricAlarm: {}", DisplayErrorContext(&e)));

    // Described back with every field as set.
    let errors = alarm(&cloudwatch, ERRORS).await.expect("the 5xx alarm");
    assert_eq!(errors.alarm_name(), Some(ERRORS));
    assert_eq!(
        errors.alarm_description(),
        Some("5xx errors of the endpoint's variant")
    );
    assert_eq!(errors.namespace(), Some("AWS/SageMaker"));
    assert_eq!(errors.metric_name(), Some("Invocation5XXErrors"));
    assert_eq!(errors.statistic(), Some(&Statistic::Sum));
    assert_eq!(errors.extended_statistic(), None);
    assert_eq!(errors.period(), Some(60));
    assert_eq!(errors.evaluation_periods(), Some(3));
    assert_eq!(errors.datapoints_to_alarm(), Some(2));
    assert_eq!(errors.threshold(), Some(1.0));
    assert_eq!(
        errors.comparison_operator(),
        Some(&ComparisonOperator::GreaterThanOrEqualToThreshold)
    );
    assert_eq!(errors.treat_missing_data(), Some("notBreaching"));
    assert_eq!(errors.dimensions(), dimensions());
    assert!(errors.alarm_actions().is_empty());
    assert_eq!(errors.actions_enabled(), Some(true));
    assert_eq!(errors.state_value(), Some(&StateValue::Ok));
    let arn = errors.alarm_arn().expect("an ARN").to_string();
    assert_eq!(
        arn,
        format!("arn:aws:cloudwatch:{REGION}:123456789012:alarm:{ERRORS}")
    );
    // Timestamps arrive as CBOR tag 1: the configuration was updated a moment ago.
    let updated = errors
        .alarm_configuration_updated_timestamp()
        .expect("a configuration timestamp");
    let updated = SystemTime::try_from(*updated).unwrap();
    let age = SystemTime::now().duration_since(updated).unwrap_or_default();
    assert!(age < Duration::from_secs(60), "updated {age:?} ago");

    let latency = alarm(&cloudwatch, LATENCY).await.expect("the latency alarm");
    assert_eq!(latency.metric_name(), Some("ModelLatency"));
    assert_eq!(latency.extended_statistic(), Some("p99"));
    assert_eq!(latency.statistic(), None);
    assert_eq!(latency.evaluation_periods(), Some(5));
    assert_eq!(latency.datapoints_to_alarm(), Some(3));
    assert_eq!(latency.threshold(), Some(250_000.5));
    assert_eq!(
        latency.comparison_operator(),
        Some(&ComparisonOperator::GreaterThanThreshold)
    );
    assert_eq!(latency.treat_missing_data(), Some("missing"));
    assert_eq!(latency.dimensions(), dimensions());

    // By prefix, through the SDK's paginator (moto answers one page: no NextToken).
    let names: Vec<String> = cloudwatch
        .describe_alarms()
        .alarm_name_prefix("orchestrate-demo-")
        .into_paginator()
        .send()
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("DescribeAlarms: {}", DisplayErrorContext(&e)))
        .iter()
        .flat_map(|page| page.metric_alarms())
        .filter_map(|a| a.alarm_name().map(str::to_string))
        .collect();
    assert_eq!(names, [ERRORS, LATENCY]);

    // SetAlarmState shows in DescribeAlarms with its reason.
    cloudwatch
        .set_alarm_state()
        .alarm_name(ERRORS)
        .state_value(StateValue::Alarm)
        .state_reason("testbed: 5xx errors above the threshold")
        .send()
        .await
        .unwrap_or_else(|e| panic!("SetAlarmState: {}", DisplayErrorContext(&e)));
    let errors = alarm(&cloudwatch, ERRORS).await.expect("the 5xx alarm");
    assert_eq!(errors.state_value(), Some(&StateValue::Alarm));
    assert_eq!(
        errors.state_reason(),
        Some("testbed: 5xx errors above the threshold")
    );
    assert!(errors.state_updated_timestamp().is_some());

    // An error in the protocol's form: the modelled ResourceNotFound, its code from the
    // query-compatible header.
    let error = cloudwatch
        .set_alarm_state()
        .alarm_name("orchestrate-missing")
        .state_value(StateValue::Alarm)
        .state_reason("r")
        .send()
        .await
        .expect_err("no such alarm");
    assert_eq!(error.code(), Some("ResourceNotFound"), "{error:?}");
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_resource_not_found()),
        "{}",
        DisplayErrorContext(&error)
    );

    // Tags are listed and changed.
    assert_eq!(
        tags(&cloudwatch, &arn).await,
        pairs(&[
            ("orchestrate:deployment", "demo"),
            ("orchestrate:guard", "errors")
        ])
    );
    cloudwatch
        .tag_resource()
        .resource_arn(&arn)
        .tags(tag("orchestrate:guard", "5xx"))
        .tags(tag("team", "ml"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("TagResource: {}", DisplayErrorContext(&e)));
    cloudwatch
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("orchestrate:deployment")
        .send()
        .await
        .unwrap_or_else(|e| panic!("UntagResource: {}", DisplayErrorContext(&e)));
    assert_eq!(
        tags(&cloudwatch, &arn).await,
        pairs(&[("orchestrate:guard", "5xx"), ("team", "ml")])
    );

    // DeleteAlarms removes both; describing a missing alarm is empty, not an error.
    cloudwatch
        .delete_alarms()
        .alarm_names(ERRORS)
        .alarm_names(LATENCY)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DeleteAlarms: {}", DisplayErrorContext(&e)));
    assert_eq!(alarm(&cloudwatch, ERRORS).await, None);
    assert_eq!(alarm(&cloudwatch, LATENCY).await, None);

    // The request log names every call by its operation, and tells the mutating ones.
    let requests: Vec<_> = moto
        .requests()
        .await
        .into_iter()
        .filter(|r| r.service.as_deref() == Some("monitoring"))
        .collect();
    assert!(
        requests.iter().all(|r| r.protocol == Protocol::RpcV2Cbor),
        "{requests:?}"
    );
    let actions: Vec<&str> = requests.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "PutMetricAlarm",
            "PutMetricAlarm",
            "DescribeAlarms",
            "DescribeAlarms",
            "DescribeAlarms",
            "SetAlarmState",
            "DescribeAlarms",
            "SetAlarmState",
            "ListTagsForResource",
            "TagResource",
            "UntagResource",
            "ListTagsForResource",
            "DeleteAlarms",
            "DescribeAlarms",
            "DescribeAlarms",
        ]
    );
    let changed: Vec<String> = mutating(&requests).iter().map(|r| r.to_string()).collect();
    assert_eq!(
        changed,
        [
            "monitoring PutMetricAlarm",
            "monitoring PutMetricAlarm",
            "monitoring SetAlarmState",
            "monitoring SetAlarmState",
            "monitoring TagResource",
            "monitoring UntagResource",
            "monitoring DeleteAlarms",
        ]
    );
    let checks = moto.request_checks();
    assert!(checks.checked >= 15, "{checks:?}");
    assert!(checks.violations.is_empty(), "{checks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_are_refused_naming_the_member() {
    let Some(moto) = Moto::start().await else { return };
    let cloudwatch = cloudwatch(&moto.sdk_config(REGION).await);

    let error = cloudwatch
        .put_metric_alarm()
        .alarm_name(ERRORS)
        .namespace("AWS/SageMaker")
        .metric_name("Invocation5XXErrors")
        .statistic(Statistic::Sum)
        .period(0)
        .evaluation_periods(3)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .send()
        .await
        .expect_err("Period 0");
    let status = error.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(400), "{}", DisplayErrorContext(&error));
    assert_eq!(error.code(), Some("ValidationError"), "{error:?}");
    let message = error.message().unwrap_or_default();
    assert!(message.contains("Period: 0 is below the minimum 1"), "{message}");

    let error = cloudwatch
        .put_metric_alarm()
        .namespace("AWS/SageMaker")
        .metric_name("Invocation5XXErrors")
        .evaluation_periods(3)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .send()
        .await
        .expect_err("no AlarmName");
    let message = error.message().unwrap_or_default();
    assert!(
        message.contains("AlarmName: required member is missing"),
        "{}",
        DisplayErrorContext(&error)
    );

    // Nothing reached moto's backend: the alarm does not exist.
    assert_eq!(alarm(&cloudwatch, ERRORS).await, None);
    let refused: Vec<String> = moto
        .take_violations()
        .await
        .into_iter()
        .map(|v| format!("{}: {}", v.operation, v.violations.join("; ")))
        .collect();
    assert_eq!(
        refused,
        [
            "cloudwatch:PutMetricAlarm: Period: 0 is below the minimum 1",
            "cloudwatch:PutMetricAlarm: AlarmName: required member is missing",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_data_timestamps_round_trip() {
    let Some(moto) = Moto::start().await else { return };
    let cloudwatch = cloudwatch(&moto.sdk_config(REGION).await);
    // A whole minute: moto keeps milliseconds, and the statistics are per minute.
    let seconds = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let minute = SystemTime::UNIX_EPOCH + Duration::from_secs(seconds - seconds % 60);
    cloudwatch
        .put_metric_data()
        .namespace("AWS/SageMaker")
        .metric_data(
            MetricDatum::builder()
                .metric_name("Invocation5XXErrors")
                .set_dimensions(Some(dimensions()))
                .timestamp(DateTime::from(minute))
                .value(2.0)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutMetricData: {}", DisplayErrorContext(&e)));
    let statistics = cloudwatch
        .get_metric_statistics()
        .namespace("AWS/SageMaker")
        .metric_name("Invocation5XXErrors")
        .set_dimensions(Some(dimensions()))
        .start_time(DateTime::from(minute - Duration::from_secs(600)))
        .end_time(DateTime::from(minute + Duration::from_secs(60)))
        .period(60)
        .statistics(Statistic::Sum)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetMetricStatistics: {}", DisplayErrorContext(&e)));
    let points: Vec<(Option<DateTime>, Option<f64>)> = statistics
        .datapoints()
        .iter()
        .map(|p| (p.timestamp().copied(), p.sum()))
        .collect();
    assert_eq!(points, [(Some(DateTime::from(minute)), Some(2.0))]);
}
