//! "Did you mean …?": the closest candidate to a misspelt word, by Jaro-Winkler similarity (good at
//! typos and transpositions in short identifiers) with an edit-distance fallback.

/// The candidate closest to `word`, if any is close enough to be a plausible typo.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word_lower = word.to_ascii_lowercase();
    let word_len = word_lower.chars().count();
    candidates
        .into_iter()
        .filter_map(|c| {
            // Both measures cost |word| x |candidate|. A word over 8 times as long as the candidate
            // can be close by neither (Jaro-Winkler stays below 0.83, the distance above the
            // threshold), so a megabyte-long value is not compared at all.
            if word_len > 8 * c.len().max(3) {
                return None;
            }
            let similarity = strsim::jaro_winkler(&word_lower, c);
            let distance = strsim::osa_distance(&word_lower, c);
            let close = similarity >= 0.85 || distance <= (c.len().max(3) / 3);
            close.then_some((c, similarity))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_the_key_that_was_meant() {
        let keys = ["instance_type", "instance_count", "max_runtime", "volume_size_gb"];
        assert_eq!(did_you_mean("instanse_type", keys), Some("instance_type"));
        assert_eq!(did_you_mean("instance_cout", keys), Some("instance_count"));
        assert_eq!(did_you_mean("max_runtim", keys), Some("max_runtime"));
        assert_eq!(did_you_mean("Max_Runtime", keys), Some("max_runtime"));
        assert_eq!(did_you_mean("colour", keys), None);
    }

    #[test]
    fn very_long_words_are_not_compared() {
        let long = format!("instance_type{}", "x".repeat(1_000_000));
        assert_eq!(did_you_mean(&long, ["instance_type"]), None);
    }
}
