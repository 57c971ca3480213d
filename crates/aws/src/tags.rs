//! Tags between the engine's one comparable field (`k=v;k=v`, sorted) and AWS's key/value lists.

use std::collections::BTreeMap;

/// Parses the engine's `tags` field back into pairs (`engine::desired::tags_field`'s inverse).
pub fn parse(field: &str) -> BTreeMap<String, String> {
    field
        .split(';')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (pair.to_string(), String::new()),
        })
        .collect()
}

/// Renders observed tags as the engine's field.
pub fn field<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let map: BTreeMap<String, String> = pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    engine::desired::tags_field(&map)
}

/// Keys present on the resource but no longer wanted (to untag).
pub fn removed(have: &BTreeMap<String, String>, want: &BTreeMap<String, String>) -> Vec<String> {
    have.keys().filter(|k| !want.contains_key(*k)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_and_parse_round_trip() {
        let text = "managed-by=orchestrate;orchestrate:deployment=iot;team=ml";
        let parsed = parse(text);
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed["orchestrate:deployment"], "iot");
        assert_eq!(field(parsed.iter().map(|(k, v)| (k.as_str(), v.as_str()))), text);
        assert!(parse("").is_empty());
    }

    #[test]
    fn removed_keys_are_those_not_wanted() {
        let have = parse("a=1;b=2");
        let want = parse("a=3");
        assert_eq!(removed(&have, &want), vec!["b".to_string()]);
    }
}
