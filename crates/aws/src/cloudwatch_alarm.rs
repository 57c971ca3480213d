//! The CloudWatch alarms a deployment owns for its rollouts (`endpoint.rollout.alarms: default`):
//! one per watched metric of the endpoint's variant (`Invocation5XXErrors`, `ModelLatency`), named
//! `<deployment>-<metric>`, named in every `UpdateEndpoint`'s `AutoRollbackConfiguration` so that
//! SageMaker rolls a bad update back by itself.
//!
//! `PutMetricAlarm` creates or overwrites an alarm whole, so `apply` is one call plus the tag
//! update (CloudWatch applies `Tags` only when it creates an alarm). Observation reports the
//! metric, endpoint, rule and tags as settings, and what orchestrate always sets (namespace,
//! statistic, comparison, one-minute period, missing data not breaching, the variant) as checks.
//! The alarms are the deployment's when they carry its tag; discovery lists alarms by the
//! deployment's name prefix and keeps the tagged ones of the names orchestrate gives.

use aws_sdk_cloudwatch::types::{
    AlarmType, ComparisonOperator, Dimension, MetricAlarm, StateValue, Statistic, Tag,
};
use engine::kind::AlarmSettings;
use engine::resource::{Change, Check, Lifecycle, OnChange, Outputs};
use engine::target::{Applied, Deleted, Found, KindOnTarget, TargetError, Upstream};
use engine::values::{AlarmMetric, AlarmRule, Tags};
use engine::{Kind, Observed};

use crate::clients::Clients;
use crate::errors::AwsError;
use crate::sagemaker::VARIANT;
use crate::target::AwsTarget;

const KIND: Kind = Kind::Alarm;
/// SageMaker's endpoint metrics' namespace.
pub const NAMESPACE: &str = "AWS/SageMaker";
/// The alarms' period: SageMaker publishes endpoint metrics once a minute.
pub const PERIOD_SECONDS: i32 = 60;
/// Missing data (no traffic) is not a reason to roll back.
pub const MISSING_DATA: &str = "notBreaching";
/// The percentile the latency alarm watches.
pub const LATENCY_PERCENTILE: &str = "p99";

/// How orchestrate reads each metric: the statistic and the comparison with the threshold.
fn statistic_of(metric: AlarmMetric) -> &'static str {
    match metric {
        AlarmMetric::Invocation5xxErrors => Statistic::Sum.as_str(),
        AlarmMetric::ModelLatency => LATENCY_PERCENTILE,
    }
}

fn comparison_of(metric: AlarmMetric) -> ComparisonOperator {
    match metric {
        AlarmMetric::Invocation5xxErrors => ComparisonOperator::GreaterThanOrEqualToThreshold,
        AlarmMetric::ModelLatency => ComparisonOperator::GreaterThanThreshold,
    }
}

/// One alarm as CloudWatch describes it; `None` when there is none of that name.
async fn describe(clients: &Clients, name: &str) -> Result<Option<MetricAlarm>, AwsError> {
    let described = clients
        .cloudwatch
        .describe_alarms()
        .alarm_names(name)
        .alarm_types(AlarmType::MetricAlarm)
        .send()
        .await
        .map_err(|e| AwsError::sdk("describe", KIND, name, e))?;
    Ok(described
        .metric_alarms()
        .iter()
        .find(|a| a.alarm_name() == Some(name))
        .cloned())
}

/// An alarm's tags.
async fn read_tags(clients: &Clients, name: &str, arn: &str) -> Result<Tags, AwsError> {
    let listed = clients
        .cloudwatch
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(|e| AwsError::sdk("read the tags of", KIND, name, e))?;
    Ok(listed
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
        .collect())
}

fn dimension(alarm: &MetricAlarm, key: &str) -> Option<String> {
    alarm
        .dimensions()
        .iter()
        .find(|d| d.name() == Some(key))
        .and_then(|d| d.value())
        .map(str::to_string)
}

/// The statistic an alarm reads, in CloudWatch's words (`Sum`, `p99`).
fn statistic_found(alarm: &MetricAlarm) -> String {
    alarm
        .extended_statistic()
        .map(str::to_string)
        .or_else(|| alarm.statistic().map(|s| s.as_str().to_string()))
        .unwrap_or_else(|| "none".to_string())
}

/// A count CloudWatch reports as a signed integer, as an unsigned one (absent or negative: 0).
fn count(value: Option<i32>) -> u32 {
    value.and_then(|v| u32::try_from(v).ok()).unwrap_or(0)
}

/// What an alarm found says of the settings orchestrate compares, and the checks of what it
/// always sets. `wanted` supplies the metric when the alarm watches another one (reported as
/// that other metric's name in the check).
pub fn read(alarm: &MetricAlarm, wanted: &AlarmSettings, tags: Tags) -> (AlarmSettings, Vec<Check>) {
    let metric_name = alarm.metric_name().unwrap_or_default();
    let metric = AlarmMetric::ALL
        .into_iter()
        .find(|m| m.metric_name() == metric_name)
        .unwrap_or(wanted.metric);
    let threshold = alarm.threshold().unwrap_or(0.0);
    let settings = AlarmSettings {
        metric,
        endpoint: dimension(alarm, "EndpointName").unwrap_or_default(),
        rule: AlarmRule {
            // Thresholds orchestrate sets are whole numbers; another one reads as its floor, a drift.
            threshold: if threshold.is_finite() && threshold >= 0.0 {
                threshold.floor() as u64
            } else {
                0
            },
            datapoints: count(alarm.datapoints_to_alarm().or(alarm.evaluation_periods())),
            periods: count(alarm.evaluation_periods()),
        },
        tags: user_tags(&tags),
    };
    let checks = vec![
        Check::new("metric", metric.metric_name(), metric_name, OnChange::Update),
        Check::new(
            "namespace",
            NAMESPACE,
            alarm.namespace().unwrap_or_default(),
            OnChange::Update,
        ),
        Check::new(
            "variant",
            VARIANT,
            dimension(alarm, "VariantName").unwrap_or_default(),
            OnChange::Update,
        ),
        Check::new(
            "statistic",
            statistic_of(metric),
            statistic_found(alarm),
            OnChange::Update,
        ),
        Check::new(
            "comparison",
            comparison_of(metric).as_str(),
            alarm
                .comparison_operator()
                .map(|c| c.as_str())
                .unwrap_or_default(),
            OnChange::Update,
        ),
        Check::new(
            "period",
            format!("{PERIOD_SECONDS}s"),
            format!("{}s", alarm.period().unwrap_or(0)),
            OnChange::Update,
        ),
        Check::new(
            "missing_data",
            MISSING_DATA,
            alarm.treat_missing_data().unwrap_or("missing"),
            OnChange::Update,
        ),
        Check::new(
            "threshold",
            wanted.rule.threshold,
            alarm.threshold().map(|t| t.to_string()).unwrap_or_default(),
            OnChange::Update,
        ),
    ];
    // Only the checks that hold nothing new: the threshold check reports a fractional threshold,
    // which the rule's whole number would hide.
    let checks = checks
        .into_iter()
        .filter(|c| c.field != "threshold" || c.have.parse::<f64>().is_ok_and(|t| t.fract() != 0.0))
        .collect();
    (settings, checks)
}

/// The tags orchestrate compares: all of them (CloudWatch alarms carry no bookkeeping tags).
fn user_tags(tags: &Tags) -> Tags {
    tags.clone()
}

/// Reads the alarm: its settings, checks, and as lifecycle Ready (an alarm's state is the
/// endpoint's business, read when a rollout is followed).
pub async fn observe(clients: &Clients, name: &str, wanted: &AlarmSettings) -> Result<Observed, AwsError> {
    let Some(alarm) = describe(clients, name).await? else {
        return Ok(Observed::Absent);
    };
    let tags = match alarm.alarm_arn() {
        Some(arn) => read_tags(clients, name, arn).await?,
        None => Tags::default(),
    };
    let (settings, checks) = read(&alarm, wanted, tags);
    let mut observed = Observed::present(name, settings, Lifecycle::Ready);
    for check in checks {
        observed = observed.with_check(check);
    }
    Ok(observed)
}

fn cloudwatch_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// The metric's dimensions: the endpoint's one variant.
fn dimensions(endpoint: &str) -> Vec<Dimension> {
    [("EndpointName", endpoint), ("VariantName", VARIANT)]
        .into_iter()
        .map(|(key, value)| Dimension::builder().name(key).value(value).build())
        .collect()
}

/// The alarm's description, for people reading it in the CloudWatch console.
fn description(settings: &AlarmSettings) -> String {
    format!(
        "orchestrate: rolls an update of endpoint {} back when {} ({} {}) holds",
        settings.endpoint,
        settings.metric,
        settings.rule,
        settings.metric.unit()
    )
}

/// Creates or overwrites the alarm (`PutMetricAlarm`), then makes its tags the wanted ones.
pub async fn apply(clients: &Clients, name: &str, settings: &AlarmSettings) -> Result<(), AwsError> {
    let metric = settings.metric;
    let mut put = clients
        .cloudwatch
        .put_metric_alarm()
        .alarm_name(name)
        .alarm_description(description(settings))
        .namespace(NAMESPACE)
        .metric_name(metric.metric_name())
        .set_dimensions(Some(dimensions(&settings.endpoint)))
        .period(PERIOD_SECONDS)
        .evaluation_periods(i32::try_from(settings.rule.periods).unwrap_or(i32::MAX))
        .datapoints_to_alarm(i32::try_from(settings.rule.datapoints).unwrap_or(i32::MAX))
        .threshold(settings.rule.threshold as f64)
        .comparison_operator(comparison_of(metric))
        .treat_missing_data(MISSING_DATA)
        .set_tags(Some(cloudwatch_tags(&settings.tags)));
    put = match metric {
        AlarmMetric::Invocation5xxErrors => put.statistic(Statistic::Sum),
        AlarmMetric::ModelLatency => put.extended_statistic(LATENCY_PERCENTILE),
    };
    put.send()
        .await
        .map_err(|e| AwsError::sdk("put", KIND, name, e))?;
    // `Tags` only count when the alarm is created: an existing alarm is re-tagged here.
    let Some(alarm) = describe(clients, name).await? else {
        return Ok(());
    };
    let Some(arn) = alarm.alarm_arn() else {
        return Ok(());
    };
    let have = read_tags(clients, name, arn).await?;
    let removed = have.removed_from(&settings.tags);
    if !removed.is_empty() {
        clients
            .cloudwatch
            .untag_resource()
            .resource_arn(arn)
            .set_tag_keys(Some(removed))
            .send()
            .await
            .map_err(|e| AwsError::sdk("untag", KIND, name, e))?;
    }
    if have != settings.tags {
        clients
            .cloudwatch
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(cloudwatch_tags(&settings.tags)))
            .send()
            .await
            .map_err(|e| AwsError::sdk("tag", KIND, name, e))?;
    }
    Ok(())
}

/// Deletes the alarm; one that is gone already is no failure.
pub async fn delete(clients: &Clients, name: &str) -> Result<(), AwsError> {
    match clients.cloudwatch.delete_alarms().alarm_names(name).send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let e = AwsError::sdk("delete", KIND, name, e);
            if e.is_not_found() { Ok(()) } else { Err(e) }
        }
    }
}

/// An alarm's state as a rollout reads it: in ALARM or not, and CloudWatch's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmState {
    pub name: String,
    pub in_alarm: bool,
    pub reason: String,
}

/// The states of the named alarms (those CloudWatch does not know are left out).
pub async fn states(clients: &Clients, names: &[String]) -> Result<Vec<AlarmState>, AwsError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let described = clients
        .cloudwatch
        .describe_alarms()
        .set_alarm_names(Some(names.to_vec()))
        .send()
        .await
        .map_err(|e| AwsError::sdk("describe", KIND, &names.join(", "), e))?;
    let metric = described.metric_alarms().iter().map(|a| {
        (
            a.alarm_name().unwrap_or_default(),
            a.state_value(),
            a.state_reason().unwrap_or_default(),
        )
    });
    let composite = described.composite_alarms().iter().map(|a| {
        (
            a.alarm_name().unwrap_or_default(),
            a.state_value(),
            a.state_reason().unwrap_or_default(),
        )
    });
    Ok(metric
        .chain(composite)
        .map(|(name, state, reason)| AlarmState {
            name: name.to_string(),
            in_alarm: state == Some(&StateValue::Alarm),
            reason: reason.to_string(),
        })
        .collect())
}

/// The deployment's alarms: those with a name orchestrate gives (`<name>-<metric>`, so a deployment
/// `iot` never reads the tags of `iot-prod`'s alarms) that carry its tag.
pub async fn owned_names(target: &AwsTarget) -> Result<Vec<String>, AwsError> {
    let clients = &target.clients;
    let deployment = target.spec.name.as_str();
    let ours: Vec<String> = AlarmMetric::ALL
        .iter()
        .map(|&metric| engine::desired::alarm_name(deployment, metric))
        .collect();
    let prefix = format!("{deployment}-");
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = clients
            .cloudwatch
            .describe_alarms()
            .alarm_name_prefix(&prefix)
            .alarm_types(AlarmType::MetricAlarm)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| AwsError::sdk("list", KIND, &prefix, e))?;
        for alarm in page.metric_alarms() {
            let (Some(name), Some(arn)) = (alarm.alarm_name(), alarm.alarm_arn()) else {
                continue;
            };
            if !ours.iter().any(|n| n == name) {
                continue;
            }
            let tags = match read_tags(clients, name, arn).await {
                Ok(tags) => tags,
                // Deleted between the listing and the tag read: not ours any more.
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            if target.is_ours(tags.iter()) {
                names.push(name.to_string());
            }
        }
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => {
                // In name order, whatever order CloudWatch lists them in.
                names.sort();
                return Ok(names);
            }
        }
    }
}

/// A rollout alarm on AWS, in CloudWatch.
#[derive(Debug)]
pub struct CloudWatchAlarm;

impl KindOnTarget<AwsTarget> for CloudWatchAlarm {
    type Settings = AlarmSettings;

    async fn observe(
        target: &AwsTarget,
        name: &str,
        settings: &AlarmSettings,
    ) -> Result<Observed, TargetError> {
        Ok(observe(&target.clients, name, settings).await?)
    }

    async fn apply(
        target: &AwsTarget,
        name: &str,
        settings: &AlarmSettings,
        _: &Change,
        _: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        apply(&target.clients, name, settings).await?;
        Ok(Applied::Ready(Outputs::None))
    }

    async fn delete(target: &AwsTarget, name: &str) -> Result<Deleted, TargetError> {
        delete(&target.clients, name).await?;
        Ok(Deleted::Gone)
    }

    async fn owned(target: &AwsTarget) -> Result<Vec<Found>, TargetError> {
        Ok(owned_names(target)
            .await?
            .into_iter()
            .map(|name| Found::new(KIND, name))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted() -> AlarmSettings {
        AlarmSettings {
            metric: AlarmMetric::ModelLatency,
            endpoint: "iot".into(),
            rule: AlarmRule {
                threshold: 100_000,
                datapoints: 2,
                periods: 3,
            },
            tags: [("orchestrate:deployment", "iot")].into_iter().collect(),
        }
    }

    fn alarm_as_put(settings: &AlarmSettings) -> MetricAlarm {
        MetricAlarm::builder()
            .alarm_name("iot-model-latency")
            .namespace(NAMESPACE)
            .metric_name(settings.metric.metric_name())
            .set_dimensions(Some(dimensions("iot")))
            .extended_statistic(LATENCY_PERCENTILE)
            .period(PERIOD_SECONDS)
            .evaluation_periods(3)
            .datapoints_to_alarm(2)
            .threshold(100_000.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .treat_missing_data(MISSING_DATA)
            .build()
    }

    #[test]
    fn an_alarm_as_orchestrate_puts_it_reads_back_as_wanted_with_every_check_holding() {
        let wanted = wanted();
        let (settings, checks) = read(&alarm_as_put(&wanted), &wanted, wanted.tags.clone());
        assert_eq!(settings, wanted);
        for check in &checks {
            assert_eq!(check.want, check.have, "{}", check.field);
        }
        assert!(!checks.iter().any(|c| c.field == "threshold"));
    }

    #[test]
    fn an_alarm_changed_elsewhere_reads_as_drift() {
        let wanted = wanted();
        let mut changed = alarm_as_put(&wanted);
        changed.treat_missing_data = Some("breaching".into());
        changed.threshold = Some(2.5);
        changed.period = Some(300);
        let (settings, checks) = read(&changed, &wanted, Tags::default());
        assert_eq!(settings.rule.threshold, 2);
        assert!(settings.tags.0.is_empty());
        let off: Vec<&str> = checks
            .iter()
            .filter(|c| c.want != c.have)
            .map(|c| c.field)
            .collect();
        assert_eq!(off, ["period", "missing_data", "threshold"]);
    }
}
