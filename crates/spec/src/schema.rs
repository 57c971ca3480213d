//! The JSON Schema of deploy.yaml (Draft 2020-12), generated from the wire types, for editors
//! (the YAML language server reads `# yaml-language-server: $schema=deploy.schema.json`) and for
//! `orchestrate schema`.

use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::wire::DeployFile;

/// The JSON Schema of deploy.yaml: Draft 2020-12, every key described with its default and its
/// constraint, `additionalProperties: false` on every mapping with fixed keys.
pub fn json_schema() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<DeployFile>();
    let mut value = schema.to_value();
    tag_names(&mut value);
    unwrap_descriptions(&mut value);
    value
}

/// Doc comments wrap at 100 columns; descriptions read better as one line per paragraph.
fn unwrap_descriptions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(text) if key == "description" => {
                        *text = text
                            .split("\n\n")
                            .map(|p| p.replace('\n', " "))
                            .collect::<Vec<_>>()
                            .join("\n\n");
                    }
                    _ => unwrap_descriptions(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_descriptions),
        _ => {}
    }
}

/// Tag keys and values carry AWS's rules; the derive only knows "map of strings".
fn tag_names(schema: &mut Value) {
    let Some(tags) = schema.pointer_mut("/properties/tags") else {
        return;
    };
    let Some(obj) = tags.as_object_mut() else { return };
    obj.insert(
        "propertyNames".into(),
        serde_json::json!({
            "minLength": 1,
            "maxLength": 128,
            "not": { "anyOf": [
                { "pattern": "^[aA][wW][sS]:" },
                { "enum": crate::names::RESERVED_TAG_KEYS }
            ] }
        }),
    );
    obj.insert(
        "additionalProperties".into(),
        serde_json::json!({ "type": "string", "maxLength": 256 }),
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::json_schema;
    use crate::validate::keys::SECTIONS;

    /// Follows `$ref` and the `anyOf: [T, null]` that `Option<T>` produces.
    fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            return resolve(root, root.pointer(r.trim_start_matches('#')).unwrap());
        }
        if let Some(alts) = schema.get("anyOf").and_then(Value::as_array)
            && let Some(obj) = alts
                .iter()
                .map(|a| resolve(root, a))
                .find(|a| a.get("properties").is_some())
        {
            return obj;
        }
        schema
    }

    fn at<'a>(root: &'a Value, path: &str) -> &'a Value {
        let mut node = root;
        for key in path.split('.').filter(|k| !k.is_empty()) {
            node = resolve(root, &node["properties"][key]);
        }
        resolve(root, node)
    }

    #[test]
    fn the_schema_and_the_validator_know_the_same_keys() {
        let schema = json_schema();
        for (path, keys) in SECTIONS {
            let props: BTreeSet<&str> = at(&schema, path)["properties"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let known: BTreeSet<&str> = keys.iter().copied().collect();
            assert_eq!(props, known, "section `{path}`");
        }
    }

    #[test]
    fn every_mapping_is_closed_and_every_key_described() {
        fn walk(v: &Value, at: &str, mappings: &mut usize) {
            if let Some(obj) = v.as_object() {
                if let Some(props) = obj.get("properties").and_then(Value::as_object) {
                    *mappings += 1;
                    assert_eq!(obj.get("additionalProperties"), Some(&Value::Bool(false)), "{at}");
                    for (k, p) in props {
                        let d = p.get("description").and_then(Value::as_str).unwrap_or_default();
                        assert!(
                            !d.is_empty() && !d.contains('\n'),
                            "{at}.{k} has no one-line description"
                        );
                    }
                }
                for (k, child) in obj {
                    walk(child, &format!("{at}/{k}"), mappings);
                }
            } else if let Some(items) = v.as_array() {
                items.iter().for_each(|i| walk(i, at, mappings));
            }
        }
        let schema = json_schema();
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
        let mut mappings = 0;
        walk(&schema, "", &mut mappings);
        assert_eq!(mappings, SECTIONS.len());
    }

    #[test]
    fn documented_defaults_are_the_validator_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.csv"), "a,Label\n1,Anomaly\n").unwrap();
        let minimal = "version: 1\nname: x\ndata: {train: train.csv}\nendpoint: {autoscaling: {max: 2}}\n";
        let spec = crate::parse(minimal, "deploy.yaml", dir.path()).unwrap();
        let spec = serde_json::to_value(&spec).unwrap();
        let minimal_serverless =
            "version: 1\nname: x\ndata: {train: train.csv}\nendpoint: {serverless: {}}\n";
        let serverless = crate::parse(minimal_serverless, "deploy.yaml", dir.path()).unwrap();
        let serverless = serde_json::to_value(&serverless.endpoint).unwrap();
        let minimal_async =
            "version: 1\nname: x\ndata: {train: train.csv}\nendpoint: {async: {}, data_capture: {}}\n";
        let asynchronous = crate::parse(minimal_async, "deploy.yaml", dir.path()).unwrap();
        let asynchronous = serde_json::to_value(&asynchronous.endpoint).unwrap();
        let schema = json_schema();
        let default = |path: &str| {
            let (parent, key) = path.rsplit_once('.').unwrap_or(("", path));
            at(&schema, parent)["properties"][key]["default"].clone()
        };
        let cases = [
            ("target", spec["target"].clone()),
            ("region", spec["region"].clone()),
            ("data.validation", spec["data"]["validation"]["fraction"].clone()),
            ("data.label", spec["data"]["label"].clone()),
            ("data.positive", spec["data"]["positive"].clone()),
            ("data.exclude", spec["data"]["exclude"].clone()),
            ("bucket.retain_on_down", spec["bucket"]["retain_on_down"].clone()),
            (
                "training.instance_type",
                spec["training"]["instance_type"].clone(),
            ),
            (
                "training.instance_count",
                spec["training"]["instance_count"].clone(),
            ),
            (
                "training.volume_size_gb",
                spec["training"]["volume_size_gb"].clone(),
            ),
            ("training.max_runtime", spec["training"]["max_runtime"].clone()),
            (
                "endpoint.instance_type",
                spec["endpoint"]["capacity"]["instances"]["instance_type"].clone(),
            ),
            (
                "endpoint.instance_count",
                spec["endpoint"]["capacity"]["instances"]["count"].clone(),
            ),
            ("endpoint.wait_timeout", spec["endpoint"]["wait_timeout"].clone()),
            (
                "endpoint.serverless.memory_mb",
                serverless["capacity"]["serverless"]["memory_mb"].clone(),
            ),
            (
                "endpoint.serverless.max_concurrency",
                serverless["capacity"]["serverless"]["max_concurrency"].clone(),
            ),
            (
                "endpoint.async.max_concurrent_invocations",
                asynchronous["invocation"]["async"]["max_concurrent_invocations"].clone(),
            ),
            (
                "endpoint.data_capture.sample_percent",
                asynchronous["data_capture"]["sample_percent"].clone(),
            ),
            (
                "monitoring.drift_threshold",
                spec["monitoring"]["drift_threshold"].clone(),
            ),
            (
                "endpoint.autoscaling.min",
                spec["endpoint"]["autoscaling"]["min"].clone(),
            ),
            (
                "endpoint.autoscaling.invocations_per_instance",
                spec["endpoint"]["autoscaling"]["invocations_per_instance"].clone(),
            ),
        ];
        for (path, value) in cases {
            assert!(!value.is_null(), "{path}: no value in the spec");
            assert_eq!(default(path), value, "{path}");
        }
        let state_dir = spec["local"]["state_dir"].as_str().unwrap();
        assert!(state_dir.ends_with(default("local.state_dir").as_str().unwrap()));
    }

    #[test]
    fn documented_rollout_defaults_are_the_validator_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.csv"), "a,Label\n1,Anomaly\n").unwrap();
        let schema = json_schema();
        let default = |path: &str| {
            let (parent, key) = path.rsplit_once('.').unwrap();
            at(&schema, parent)["properties"][key]["default"].clone()
        };
        let parse = |rollout: &str| {
            let source = format!(
                "version: 1\nname: x\ndata: {{train: train.csv}}\nendpoint: {{instance_count: 2, rollout: {rollout}}}\n"
            );
            let spec = crate::parse(&source, "deploy.yaml", dir.path()).unwrap();
            spec.endpoint.rollout
        };
        let empty = parse("{}");
        assert_eq!(
            default("endpoint.rollout.strategy"),
            serde_json::to_value(empty.strategy).unwrap()["strategy"]
        );
        assert_eq!(
            default("endpoint.rollout.bake"),
            crate::format_duration(empty.bake).as_str()
        );
        assert_eq!(default("endpoint.rollout.alarms"), "default");
        assert_eq!(
            empty.alarms,
            crate::RolloutAlarms::Owned(crate::OwnedAlarms::DEFAULT)
        );
        let canary = parse("{strategy: canary}");
        assert_eq!(
            default("endpoint.rollout.canary_percent"),
            serde_json::to_value(canary.strategy).unwrap()["percent"]
        );
        let linear = parse("{strategy: linear}");
        assert_eq!(
            default("endpoint.rollout.step_percent"),
            serde_json::to_value(linear.strategy).unwrap()["step_percent"]
        );
        let rules = crate::OwnedAlarms::DEFAULT;
        let cases = [
            ("endpoint.rollout.alarms.errors.threshold", rules.errors.threshold),
            (
                "endpoint.rollout.alarms.errors.datapoints",
                rules.errors.datapoints.into(),
            ),
            (
                "endpoint.rollout.alarms.errors.periods",
                rules.errors.periods.into(),
            ),
            (
                "endpoint.rollout.alarms.latency.threshold_ms",
                rules.latency.threshold / 1_000,
            ),
            (
                "endpoint.rollout.alarms.latency.datapoints",
                rules.latency.datapoints.into(),
            ),
            (
                "endpoint.rollout.alarms.latency.periods",
                rules.latency.periods.into(),
            ),
        ];
        for (path, value) in cases {
            assert_eq!(default(path), value, "{path}");
        }
    }
}
