//! Captured response bodies read back into the model's scores, in `serve`'s three shapes (see
//! `serve::response`): JSON `{"predictions": [{"label": .., "score": ..}, ..]}`, JSON Lines of the
//! same objects, and CSV `label,score` lines. The server's error body (`{"error": "..."}`) holds no
//! scores, and says why.

use serde_json::Value;

/// The scores in a response body of `content_type`, in row order.
pub fn scores(content_type: Option<&str>, body: &[u8]) -> Result<Vec<f64>, String> {
    let media = content_type
        .and_then(|t| t.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if media.eq_ignore_ascii_case("application/json") {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("the response is not JSON: {e}"))?;
        if let Some(error) = value.get("error").and_then(Value::as_str) {
            return Err(format!("the endpoint answered an error: {error}"));
        }
        let predictions = value
            .get("predictions")
            .and_then(Value::as_array)
            .ok_or("the response has no \"predictions\" list")?;
        predictions
            .iter()
            .enumerate()
            .map(|(i, p)| score_of(p, i + 1))
            .collect()
    } else if media.eq_ignore_ascii_case("application/jsonlines")
        || media.eq_ignore_ascii_case("application/x-jsonlines")
    {
        body.split(|&b| b == b'\n')
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .enumerate()
            .map(|(i, line)| {
                let value: Value = serde_json::from_slice(line)
                    .map_err(|e| format!("response line {} is not JSON: {e}", i + 1))?;
                score_of(&value, i + 1)
            })
            .collect()
    } else if media.eq_ignore_ascii_case("text/csv") {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(body);
        reader
            .byte_records()
            .enumerate()
            .map(|(i, record)| {
                let record = record.map_err(|e| format!("response row {} is not CSV: {e}", i + 1))?;
                record
                    .iter()
                    .next_back()
                    .and_then(|cell| std::str::from_utf8(cell).ok())
                    .and_then(|cell| cell.trim().parse::<f64>().ok())
                    .filter(|score| score.is_finite())
                    .ok_or_else(|| format!("response row {} has no score", i + 1))
            })
            .collect()
    } else {
        Err(format!(
            "the response's content type {:?} is not one serve answers with",
            content_type.unwrap_or("")
        ))
    }
}

fn score_of(prediction: &Value, row: usize) -> Result<f64, String> {
    prediction
        .get("score")
        .and_then(Value::as_f64)
        .filter(|score| score.is_finite())
        .ok_or_else(|| format!("prediction {row} has no score"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_shape_serve_answers_with() {
        let json = br#"{"predictions":[{"label":"Anomaly","score":0.97},{"label":"Normal","score":1e-7}]}"#;
        assert_eq!(scores(Some("application/json"), json).unwrap(), [0.97, 1e-7]);
        let lines = b"{\"label\":\"Anomaly\",\"score\":0.97}\n{\"label\":\"Normal\",\"score\":0.01}\n";
        assert_eq!(
            scores(Some("application/jsonlines"), lines).unwrap(),
            [0.97, 0.01]
        );
        let csv = b"Anomaly,0.97\n\"Not, normal\",0.5\n";
        assert_eq!(scores(Some("text/csv"), csv).unwrap(), [0.97, 0.5]);
    }

    #[test]
    fn an_error_body_or_a_bad_shape_gives_no_scores_and_says_why() {
        for (content_type, body, reason) in [
            (
                Some("application/json"),
                &br#"{"error":"row 1 has 3 fields","row":1}"#[..],
                "the endpoint answered an error: row 1 has 3 fields",
            ),
            (
                Some("application/json"),
                br#"{"predictions":[{"label":"x"}]}"#,
                "prediction 1 has no score",
            ),
            (Some("text/csv"), b"Anomaly,high\n", "response row 1 has no score"),
            (
                Some("application/jsonlines"),
                b"{\"score\":1}\nnope\n",
                "response line 2",
            ),
            (Some("text/html"), b"<html>", "not one serve answers with"),
            (None, b"{}", "not one serve answers with"),
        ] {
            let error = scores(content_type, body).unwrap_err();
            assert!(error.contains(reason), "{error}");
        }
    }
}
