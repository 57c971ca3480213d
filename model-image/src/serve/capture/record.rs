//! One data capture record, the JSON line SageMaker writes per captured invocation:
//!
//! ```json
//! {"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT","data":"...","encoding":"CSV"},
//!  "endpointOutput":{"observedContentType":"application/json","mode":"OUTPUT","data":"...","encoding":"JSON"}},
//!  "eventMetadata":{"eventId":"<uuid>","inferenceTime":"2026-12-04T01:02:03Z"},"eventVersion":"0"}
//! ```
//!
//! (on one line). The endpoint config's `CaptureContentTypeHeader` decides how a payload is held:
//! content types in its CSV list as the text with `CSV`, those in its JSON list as the text with
//! `JSON`, every other one in base64 with `BASE64`. The lists here are [`CSV_CONTENT_TYPES`] and
//! [`JSON_CONTENT_TYPES`], matched on the media type as SageMaker does (`text/csv; charset=utf-8` is
//! CSV). A body that is not UTF-8 cannot be a JSON string as it is, so it is held in base64 whatever
//! its type. `inferenceTime` is in whole seconds, as SageMaker writes it.

use std::borrow::Cow;

use base64::Engine;
use serde::Serialize;

use super::Exchange;

/// The content types captured as text with the `CSV` encoding.
pub const CSV_CONTENT_TYPES: [&str; 1] = ["text/csv"];
/// The content types captured as text with the `JSON` encoding.
pub const JSON_CONTENT_TYPES: [&str; 2] = ["application/json", "application/jsonlines"];

/// How a payload's `data` holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(super) enum Encoding {
    #[serde(rename = "CSV")]
    Csv,
    #[serde(rename = "JSON")]
    Json,
    #[serde(rename = "BASE64")]
    Base64,
}

/// The encoding of a payload of `content_type` (a `Content-Type` value, parameters and all).
pub(super) fn encoding_for(content_type: &str) -> Encoding {
    let media = content_type.split(';').next().unwrap_or("").trim();
    let listed = |list: &[&str]| list.iter().any(|t| t.eq_ignore_ascii_case(media));
    if listed(&CSV_CONTENT_TYPES) {
        Encoding::Csv
    } else if listed(&JSON_CONTENT_TYPES) {
        Encoding::Json
    } else {
        Encoding::Base64
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    capture_data: CaptureData<'a>,
    event_metadata: EventMetadata<'a>,
    event_version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CaptureData<'a> {
    endpoint_input: Payload<'a>,
    endpoint_output: Payload<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    observed_content_type: &'a str,
    mode: Mode,
    data: Cow<'a, str>,
    encoding: Encoding,
}

#[derive(Serialize)]
#[serde(rename_all = "UPPERCASE")]
enum Mode {
    Input,
    Output,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventMetadata<'a> {
    event_id: &'a str,
    inference_time: String,
}

impl<'a> Payload<'a> {
    fn new(content_type: &'a str, body: &'a [u8], mode: Mode) -> Self {
        let text = match encoding_for(content_type) {
            Encoding::Csv => std::str::from_utf8(body).ok().map(|t| (t, Encoding::Csv)),
            Encoding::Json => std::str::from_utf8(body).ok().map(|t| (t, Encoding::Json)),
            Encoding::Base64 => None,
        };
        let (data, encoding) = match text {
            Some((text, encoding)) => (Cow::Borrowed(text), encoding),
            None => (
                Cow::Owned(base64::engine::general_purpose::STANDARD.encode(body)),
                Encoding::Base64,
            ),
        };
        Self {
            observed_content_type: content_type,
            mode,
            data,
            encoding,
        }
    }
}

/// Appends `exchange`'s record, with its `event_id`, and a newline to `out`.
pub(super) fn write_line(out: &mut Vec<u8>, exchange: &Exchange, event_id: &str) {
    let record = Record {
        capture_data: CaptureData {
            endpoint_input: Payload::new(&exchange.input_type, &exchange.input, Mode::Input),
            endpoint_output: Payload::new(exchange.output_type, &exchange.output, Mode::Output),
        },
        event_metadata: EventMetadata {
            event_id,
            inference_time: exchange.time.whole_seconds().to_string(),
        },
        event_version: "0",
    };
    // Strings and enums into a Vec: serializing cannot fail.
    let _ = serde_json::to_writer(&mut *out, &record);
    out.push(b'\n');
}

/// A random (version 4) UUID in its usual text, `8-4-4-4-12` lowercase hex digits: the event ids and
/// file names SageMaker uses. Sixteen random bytes and a format did not justify the `uuid` crate.
pub(super) fn random_uuid(rng: &mut impl rand::Rng) -> String {
    let mut bytes: [u8; 16] = rng.random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Bytes;
    use rand::SeedableRng;

    use super::*;
    use crate::monitor::capture::parse_line;
    use crate::monitor::window::Timestamp;

    fn exchange(input_type: &str, input: &[u8], output_type: &'static str, output: &[u8]) -> Exchange {
        Exchange {
            time: Timestamp::parse("2026-12-04T01:02:03.456Z").unwrap(),
            input_type: input_type.to_owned(),
            input: Bytes::copy_from_slice(input),
            output_type,
            output: Bytes::copy_from_slice(output),
        }
    }

    fn line(exchange: &Exchange) -> Vec<u8> {
        let mut out = Vec::new();
        write_line(&mut out, exchange, "a6f5c1e0-1b2c-4d5e-8f90-123456789abc");
        out
    }

    #[test]
    fn the_encoding_follows_the_content_type_lists() {
        for (content_type, encoding) in [
            ("text/csv", Encoding::Csv),
            ("text/CSV; charset=utf-8", Encoding::Csv),
            ("application/json", Encoding::Json),
            (" Application/JSON ;charset=utf-8", Encoding::Json),
            ("application/jsonlines", Encoding::Json),
            ("application/x-jsonlines", Encoding::Base64),
            ("application/x-npy", Encoding::Base64),
            ("text/plain", Encoding::Base64),
            ("", Encoding::Base64),
        ] {
            assert_eq!(encoding_for(content_type), encoding, "{content_type:?}");
        }
    }

    #[test]
    fn a_record_is_one_line_in_sagemakers_layout() {
        let out = line(&exchange(
            "text/csv",
            b"1,2\n3,\"x\"\n",
            "application/json",
            br#"{"predictions":[]}"#,
        ));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(out.last(), Some(&b'\n'));
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT","#,
                r#""data":"1,2\n3,\"x\"\n","encoding":"CSV"},"endpointOutput":{"observedContentType":"#,
                r#""application/json","mode":"OUTPUT","data":"{\"predictions\":[]}","encoding":"JSON"}},"#,
                r#""eventMetadata":{"eventId":"a6f5c1e0-1b2c-4d5e-8f90-123456789abc","#,
                r#""inferenceTime":"2026-12-04T01:02:03Z"},"eventVersion":"0"}"#,
                "\n"
            )
        );
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "captureData": {
                    "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "1,2\n3,\"x\"\n", "encoding": "CSV"},
                    "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT", "data": "{\"predictions\":[]}", "encoding": "JSON"}
                },
                "eventMetadata": {"eventId": "a6f5c1e0-1b2c-4d5e-8f90-123456789abc", "inferenceTime": "2026-12-04T01:02:03Z"},
                "eventVersion": "0"
            })
        );
    }

    /// What `serve` writes, `monitor` reads back to the byte, whichever the encoding.
    #[test]
    fn the_monitor_reads_back_every_payload_as_it_was() {
        let cases: [(&str, &[u8], &'static str, &[u8]); 4] = [
            ("text/csv; charset=utf-8", b"1,2\n", "text/csv", b"Normal,0.1\n"),
            (
                "application/jsonlines",
                b"{\"a\":1}\n{\"a\":2}\n",
                "application/jsonlines",
                b"{\"label\":\"Normal\",\"score\":0.1}\n",
            ),
            (
                "application/x-jsonlines",
                b"{\"a\":1}\n",
                "application/x-jsonlines",
                b"{}\n",
            ),
            // Not UTF-8: base64 whatever the type.
            ("text/csv", b"1,\xff\n", "application/json", b"{}"),
        ];
        for (input_type, input, output_type, output) in cases {
            let out = line(&exchange(input_type, input, output_type, output));
            let record = parse_line(&out).unwrap_or_else(|e| panic!("{input_type}: {e}"));
            let read_input = record.input.unwrap();
            assert_eq!(read_input.content_type.as_deref(), Some(input_type));
            assert_eq!(read_input.data, input, "{input_type}");
            let read_output = record.output.unwrap();
            assert_eq!(read_output.content_type.as_deref(), Some(output_type));
            assert_eq!(read_output.data, output, "{output_type}");
            assert_eq!(
                record.inference_time,
                Some(Timestamp::parse("2026-12-04T01:02:03Z").unwrap())
            );
        }
        let value: serde_json::Value = serde_json::from_slice(&line(&exchange(
            "text/csv",
            b"1,\xff\n",
            "application/x-jsonlines",
            b"{}\n",
        )))
        .unwrap();
        assert_eq!(value["captureData"]["endpointInput"]["encoding"], "BASE64");
        assert_eq!(value["captureData"]["endpointInput"]["data"], "MSz/Cg==");
        assert_eq!(value["captureData"]["endpointOutput"]["encoding"], "BASE64");
    }

    #[test]
    fn uuids_are_version_4_in_their_usual_text() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let first = random_uuid(&mut rng);
        for id in [first.clone(), random_uuid(&mut rng)] {
            let groups: Vec<&str> = id.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{id}"
            );
            assert!(
                id.bytes()
                    .all(|b| b == b'-' || matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                "{id}"
            );
            assert!(groups[2].starts_with('4'), "{id}");
            assert!(
                matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
                "{id}"
            );
        }
        assert_ne!(first, random_uuid(&mut rng));
    }
}
