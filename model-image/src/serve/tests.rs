//! Tests of the inference contract: the router driven in memory with `tower::ServiceExt::oneshot` and a
//! fake scorer that records the rows it gets, plus one server over a real socket.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use super::*;
use crate::schema::RAW_COLUMNS;

/// The test model's features, deliberately not in raw-layout order (raw columns 8, 7, 4, 82).
const FEATURES: [&str; 4] = ["Tot_Fwd_Pkts", "Flow_Duration", "Dst_Port", "Idle_Min"];

/// Score = first feature / 100 clamped to [0, 1]; a missing first feature scores 0.25. Remembers the
/// rows of the last call.
struct FakeScorer {
    n_features: usize,
    last_rows: Arc<Mutex<Vec<f64>>>,
}

impl Scorer for FakeScorer {
    fn score(&self, rows: &[f64], n_rows: usize) -> Result<Vec<f64>, String> {
        assert_eq!(
            rows.len(),
            n_rows * self.n_features,
            "rows are n_rows x n_features"
        );
        *self.last_rows.lock().unwrap() = rows.to_vec();
        Ok(rows
            .chunks(self.n_features)
            .map(|row| {
                if row[0].is_nan() {
                    0.25
                } else {
                    (row[0] / 100.0).clamp(0.0, 1.0)
                }
            })
            .collect())
    }
}

fn served_model(features: &[&str], scorer: Box<dyn Scorer>) -> Arc<ServedModel> {
    Arc::new(ServedModel {
        features: features.iter().map(|f| (*f).to_owned()).collect(),
        threshold: 0.5,
        positive_label: "Anomaly".to_owned(),
        negative_label: "Normal".to_owned(),
        scorer,
    })
}

/// The test router and the rows its scorer saw last.
fn app_with(features: &[&str]) -> (Router, Arc<Mutex<Vec<f64>>>) {
    let last_rows = Arc::new(Mutex::new(Vec::new()));
    let scorer = FakeScorer {
        n_features: features.len(),
        last_rows: last_rows.clone(),
    };
    (router(served_model(features, Box::new(scorer))), last_rows)
}

fn app() -> (Router, Arc<Mutex<Vec<f64>>>) {
    app_with(&FEATURES)
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    /// Asserts an error reply: status, JSON body with a message containing every `needles`.
    fn assert_error(&self, status: StatusCode, needles: &[&str]) -> Value {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.content_type(), "application/json");
        let body = self.json();
        let message = body["error"].as_str().expect("error is a string");
        for needle in needles {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
        body
    }
}

async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

async fn post(
    app: &Router,
    content_type: Option<&str>,
    accept: Option<&str>,
    body: impl Into<Body>,
) -> Reply {
    let mut request = Request::post("/invocations");
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    send(app, request.body(body.into()).unwrap()).await
}

async fn post_csv(app: &Router, body: &str) -> Reply {
    post(app, Some("text/csv"), None, body.to_owned()).await
}

async fn post_json(app: &Router, body: &str) -> Reply {
    post(app, Some("application/json"), None, body.to_owned()).await
}

/// `[(label, score)]` of a JSON predictions reply.
fn predictions(reply: &Reply) -> Vec<(String, f64)> {
    assert_eq!(reply.status, StatusCode::OK, "body: {}", reply.text());
    assert_eq!(reply.content_type(), "application/json");
    let body = reply.json();
    assert_eq!(body.as_object().unwrap().len(), 1, "only `predictions`");
    body["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p.as_object().unwrap().len(), 2, "only label and score");
            (
                p["label"].as_str().unwrap().to_owned(),
                p["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn pred(label: &str, score: f64) -> (String, f64) {
    (label.to_owned(), score)
}

/// Asserts equal rows, NaN equal to NaN.
fn assert_rows(seen: &Mutex<Vec<f64>>, expected: &[f64]) {
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), expected.len(), "{seen:?} vs {expected:?}");
    for (a, b) in seen.iter().zip(expected) {
        assert!(a == b || (a.is_nan() && b.is_nan()), "{seen:?} vs {expected:?}");
    }
}

const NAN: f64 = f64::NAN;

/// A raw IoTID20 record, `width` 86 or 83 cells, with `values` set by column name and plausible text
/// in the identifier, timestamp and label columns.
fn raw_row(width: usize, values: &[(&str, &str)]) -> String {
    RAW_COLUMNS[..width]
        .iter()
        .map(|&column| {
            if let Some((_, v)) = values.iter().find(|(c, _)| *c == column) {
                return (*v).to_owned();
            }
            match column {
                "Flow_ID" => "192.168.0.13-222.160.179.132-554-2179-6",
                "Src_IP" => "222.160.179.132",
                "Dst_IP" => "192.168.0.13",
                "Timestamp" => "25/07/2019 03:25:53 AM",
                "Label" => "Anomaly",
                "Cat" => "Mirai",
                "Sub_Cat" => "Mirai-UDP Flooding",
                _ => "0",
            }
            .to_owned()
        })
        .collect::<Vec<_>>()
        .join(",")
}

// ---------------------------------------------------------------------------------------------
// ping, execution parameters, unknown routes

#[tokio::test]
async fn ping_answers_200() {
    let (app, _) = app();
    let reply = send(&app, Request::get("/ping").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn execution_parameters_report_cores_batch_strategy_and_payload() {
    let (app, _) = app();
    let reply = send(
        &app,
        Request::get("/execution-parameters").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type(), "application/json");
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(
        reply.json(),
        json!({"MaxConcurrentTransforms": cores, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6})
    );
}

#[tokio::test]
async fn unknown_path_is_a_json_404_and_wrong_method_a_json_405() {
    let (app, _) = app();
    let reply = send(&app, Request::get("/nope").body(Body::empty()).unwrap()).await;
    reply.assert_error(StatusCode::NOT_FOUND, &["/nope", "/invocations"]);
    let reply = send(&app, Request::get("/invocations").body(Body::empty()).unwrap()).await;
    reply.assert_error(StatusCode::METHOD_NOT_ALLOWED, &["/invocations", "GET"]);
}

// ---------------------------------------------------------------------------------------------
// CSV

#[tokio::test]
async fn csv_without_header_in_model_order() {
    let (app, rows) = app();
    let reply = post_csv(&app, "90,1,2,3\n10,4,5,6\r\n\n50,7,8,9").await;
    assert_eq!(
        predictions(&reply),
        [pred("Anomaly", 0.9), pred("Normal", 0.1), pred("Anomaly", 0.5)],
        "score == threshold is positive"
    );
    assert_rows(&rows, &[90., 1., 2., 3., 10., 4., 5., 6., 50., 7., 8., 9.]);
}

#[tokio::test]
async fn csv_single_row_with_charset_and_exact_body() {
    let (app, _) = app();
    let reply = post(&app, Some("text/csv; charset=utf-8"), None, "75,0,0,0\n").await;
    assert_eq!(
        reply.text(),
        r#"{"predictions":[{"label":"Anomaly","score":0.75}]}"#
    );
}

#[tokio::test]
async fn csv_with_header_matches_columns_by_name_and_ignores_extras() {
    let (app, rows) = app();
    let body = ",Src_IP,Idle_Min,Dst_Port,Flow_Duration,Tot_Fwd_Pkts,Label,Cat,Timestamp\n\
                0,10.0.0.1,4,3,2,80,Anomaly,Mirai,25/07/2019 03:25:53 AM\n\
                1,10.0.0.2,8,7,6,5,Normal,Normal,25/07/2019 03:25:54 AM\n";
    let reply = post_csv(&app, body).await;
    assert_eq!(predictions(&reply), [pred("Anomaly", 0.8), pred("Normal", 0.05)]);
    assert_rows(&rows, &[80., 2., 3., 4., 5., 6., 7., 8.]);
}

#[tokio::test]
async fn csv_header_with_bom_crlf_and_spaces() {
    let (app, rows) = app();
    let body = "\u{feff}Tot_Fwd_Pkts, Flow_Duration ,Dst_Port,Idle_Min\r\n60, 1 ,2,3\r\n";
    assert_eq!(predictions(&post_csv(&app, body).await), [pred("Anomaly", 0.6)]);
    assert_rows(&rows, &[60., 1., 2., 3.]);
}

#[tokio::test]
async fn csv_header_missing_features_is_400_naming_them() {
    let (app, _) = app();
    let reply = post_csv(&app, "Tot_Fwd_Pkts,Dst_Port,Label\n1,2,Normal\n").await;
    let body = reply.assert_error(StatusCode::BAD_REQUEST, &["header", "Flow_Duration", "Idle_Min"]);
    assert!(body.get("column").is_none(), "two columns are missing");
    let reply = post_csv(&app, "Tot_Fwd_Pkts,Dst_Port,Idle_Min\n1,2,3\n").await;
    let body = reply.assert_error(StatusCode::BAD_REQUEST, &["Flow_Duration"]);
    assert_eq!(body["column"], "Flow_Duration");
}

#[tokio::test]
async fn csv_header_row_with_wrong_width_is_400() {
    let (app, _) = app();
    let reply = post_csv(
        &app,
        "Tot_Fwd_Pkts,Flow_Duration,Dst_Port,Idle_Min\n1,2,3,4\n1,2,3\n",
    )
    .await;
    let body = reply.assert_error(StatusCode::BAD_REQUEST, &["row 2", "3 fields", "header has 4"]);
    assert_eq!(body["row"], 2);
}

#[tokio::test]
async fn csv_raw_86_and_83_column_layouts_without_header() {
    let (app, rows) = app();
    let values = [
        ("Tot_Fwd_Pkts", "70"),
        ("Flow_Duration", "1"),
        ("Dst_Port", "554"),
        ("Idle_Min", "9"),
    ];
    let body = format!("{}\n{}\n", raw_row(86, &values), raw_row(83, &values));
    let reply = post_csv(&app, &body).await;
    assert_eq!(predictions(&reply), [pred("Anomaly", 0.7), pred("Anomaly", 0.7)]);
    assert_rows(&rows, &[70., 1., 554., 9., 70., 1., 554., 9.]);
}

#[tokio::test]
async fn csv_raw_83_layout_for_a_model_of_all_flow_features() {
    let features: Vec<&str> = crate::schema::flow_feature_columns().collect();
    let (app, rows) = app_with(&features);
    let body = raw_row(83, &[("Src_Port", "42"), ("Idle_Min", "7")]);
    let reply = post_csv(&app, &body).await;
    assert_eq!(predictions(&reply), [pred("Normal", 0.42)]);
    let seen = rows.lock().unwrap().clone();
    assert_eq!(seen.len(), features.len());
    assert_eq!(features[0], "Src_Port");
    assert_eq!((seen[0], seen[features.len() - 1]), (42.0, 7.0));

    // The raw file's own header, with a pandas index column: matched by name.
    let header = format!(",{}", RAW_COLUMNS.join(","));
    let body = format!("{header}\n0,{}\n", raw_row(86, &[("Src_Port", "99")]));
    assert_eq!(predictions(&post_csv(&app, &body).await), [pred("Anomaly", 0.99)]);
}

#[tokio::test]
async fn csv_wrong_width_without_header_is_400_naming_row_width_and_accepted_widths() {
    let (app, _) = app();
    let reply = post_csv(&app, "1,2,3,4\n1,2,3,4,5\n").await;
    let body = reply.assert_error(
        StatusCode::BAD_REQUEST,
        &[
            "row 2",
            "5 fields",
            "4 (the model's features in order)",
            "86",
            "83",
        ],
    );
    assert_eq!(body["row"], 2);
    assert!(body.get("column").is_none());
}

#[tokio::test]
async fn csv_missing_value_spellings_become_nan() {
    let (app, rows) = app();
    let body = "1,,inf,-inf\n+inf,Infinity,NaN,nan\n-INFINITY,  ,iNf,NAN\n";
    let reply = post_csv(&app, body).await;
    assert_eq!(
        predictions(&reply),
        [pred("Normal", 0.01), pred("Normal", 0.25), pred("Normal", 0.25)]
    );
    assert_rows(
        &rows,
        &[1., NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN],
    );
}

#[tokio::test]
async fn csv_non_numeric_feature_is_400_with_row_and_column() {
    let (app, _) = app();
    let reply = post_csv(&app, "1,2,3,4\n5,6,abc,8\n").await;
    let body = reply.assert_error(StatusCode::BAD_REQUEST, &["row 2", "Dst_Port", "\"abc\""]);
    assert_eq!(body["row"], 2);
    assert_eq!(body["column"], "Dst_Port");

    // Rows count from the first data row when there is a header.
    let reply = post_csv(&app, "Tot_Fwd_Pkts,Flow_Duration,Dst_Port,Idle_Min\nx,2,3,4\n").await;
    let body = reply.assert_error(StatusCode::BAD_REQUEST, &["row 1", "Tot_Fwd_Pkts"]);
    assert_eq!(
        (body["row"].clone(), body["column"].clone()),
        (json!(1), json!("Tot_Fwd_Pkts"))
    );
}

#[tokio::test]
async fn csv_quoted_cells() {
    let (app, rows) = app();
    let body = "\"Tot_Fwd_Pkts\",\"Flow_Duration\",Dst_Port,Idle_Min,Note\n\"55\",2,\"\",4,\"a, b\"\n";
    assert_eq!(predictions(&post_csv(&app, body).await), [pred("Anomaly", 0.55)]);
    assert_rows(&rows, &[55., 2., NAN, 4.]);

    let reply = post_csv(&app, "1,2,\"x\",4\n").await;
    let body = reply.assert_error(StatusCode::BAD_REQUEST, &["row 1", "Dst_Port"]);
    assert_eq!(body["column"], "Dst_Port");
}

#[tokio::test]
async fn csv_with_only_a_header_or_blank_lines_is_400() {
    let (app, _) = app();
    post_csv(&app, "Tot_Fwd_Pkts,Flow_Duration,Dst_Port,Idle_Min\n")
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["no data rows"]);
    post_csv(&app, "")
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["empty"]);
    post_csv(&app, "\n \r\n")
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["empty"]);
}

// ---------------------------------------------------------------------------------------------
// JSON and JSON Lines

#[tokio::test]
async fn json_instances_of_objects() {
    let (app, rows) = app();
    let body = r#"{"instances": [
        {"Flow_Duration": 12, "Tot_Fwd_Pkts": 90, "Dst_Port": "80", "Idle_Min": null, "Label": "Anomaly", "Src_IP": "1.2.3.4"},
        {"Idle_Min": "-inf", "Dst_Port": 1e3, "Flow_Duration": "NaN", "Tot_Fwd_Pkts": "\u0031"}
    ], "configuration": {"ignored": true}}"#;
    assert_eq!(
        predictions(&post_json(&app, body).await),
        [pred("Anomaly", 0.9), pred("Normal", 0.01)]
    );
    assert_rows(&rows, &[90., 12., 80., NAN, 1., NAN, 1000., NAN]);
}

#[tokio::test]
async fn json_instances_of_lists_and_bare_lists() {
    let (app, rows) = app();
    let reply = post_json(&app, r#"{"instances": [[60, 1, 2, 3], [null, "", "inf", 4]]}"#).await;
    assert_eq!(predictions(&reply), [pred("Anomaly", 0.6), pred("Normal", 0.25)]);
    assert_rows(&rows, &[60., 1., 2., 3., NAN, NAN, NAN, 4.]);

    let reply = post_json(&app, "[[20, 1, 2, 3]]").await;
    assert_eq!(predictions(&reply), [pred("Normal", 0.2)]);

    let reply = post_json(
        &app,
        r#"[{"Tot_Fwd_Pkts": 75, "Flow_Duration": 1, "Dst_Port": 2, "Idle_Min": 3}]"#,
    )
    .await;
    assert_eq!(predictions(&reply), [pred("Anomaly", 0.75)]);
}

#[tokio::test]
async fn json_list_in_raw_layout_ignores_text_columns() {
    let (app, rows) = app();
    let row: Vec<Value> = raw_row(86, &[("Tot_Fwd_Pkts", "65"), ("Idle_Min", "5")])
        .split(',')
        .map(|cell| cell.parse::<f64>().map_or_else(|_| json!(cell), |v| json!(v)))
        .collect();
    let body = json!({ "instances": [row] }).to_string();
    assert_eq!(
        predictions(&post_json(&app, &body).await),
        [pred("Anomaly", 0.65)]
    );
    assert_rows(&rows, &[65., 0., 0., 5.]);
}

#[tokio::test]
async fn json_missing_key_is_400_with_row_and_column() {
    let (app, _) = app();
    let body = r#"{"instances": [
        {"Tot_Fwd_Pkts": 1, "Flow_Duration": 1, "Dst_Port": 2, "Idle_Min": 3},
        {"Tot_Fwd_Pkts": 1, "Flow_Duration": 1, "Idle_Min": 3}
    ]}"#;
    let reply = post_json(&app, body).await;
    let body = reply.assert_error(StatusCode::BAD_REQUEST, &["instance 2", "missing", "Dst_Port"]);
    assert_eq!(
        (body["row"].clone(), body["column"].clone()),
        (json!(2), json!("Dst_Port"))
    );
}

#[tokio::test]
async fn json_non_numeric_values_are_400_with_row_and_column() {
    let (app, _) = app();
    let reply = post_json(
        &app,
        r#"[{"Tot_Fwd_Pkts": 1, "Flow_Duration": "fast", "Dst_Port": 2, "Idle_Min": 3}]"#,
    )
    .await;
    let body = reply.assert_error(StatusCode::BAD_REQUEST, &["row 1", "Flow_Duration"]);
    assert_eq!(
        (body["row"].clone(), body["column"].clone()),
        (json!(1), json!("Flow_Duration"))
    );

    let reply = post_json(&app, r#"[[1, 2, 3, 4], [1, 2, true, 4]]"#).await;
    let body = reply.assert_error(StatusCode::BAD_REQUEST, &["row 2", "Dst_Port", "boolean"]);
    assert_eq!(
        (body["row"].clone(), body["column"].clone()),
        (json!(2), json!("Dst_Port"))
    );

    let reply = post_json(&app, r#"[[1, 2, [3], 4]]"#).await;
    reply.assert_error(StatusCode::BAD_REQUEST, &["row 1", "Dst_Port", "list"]);
}

#[tokio::test]
async fn json_shape_errors_are_400() {
    let (app, _) = app();
    let cases: &[(&str, &[&str])] = &[
        (r#"{"instances": [[1, 2, 3]]}"#, &["instance 1", "3 values", "86"]),
        (r#"{"rows": [[1, 2, 3, 4]]}"#, &["instances"]),
        (r#"{"instances": []}"#, &["no data rows"]),
        ("[]", &["no data rows"]),
        (r#"{"instances": {"a": 1}}"#, &["invalid JSON"]),
        ("[5]", &["instance 1", "a number"]),
        (r#"{"instances": [[1,2,3,4]]"#, &["invalid JSON"]),
        (r#"[[1,2,3,4]] [[1,2,3,4]]"#, &["invalid JSON"]),
        ("\"text\"", &["invalid JSON"]),
        ("nonsense", &["invalid JSON"]),
        ("\u{fffd}", &["invalid JSON"]),
    ];
    for (body, needles) in cases {
        post_json(&app, body)
            .await
            .assert_error(StatusCode::BAD_REQUEST, needles);
    }
    // Deep nesting is a 400, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    post_json(&app, &deep)
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["instance 1", "1 values"]);
    let deep = format!("{}1{}", r#"{"a":"#.repeat(100_000), "}".repeat(100_000));
    post_json(&app, &format!("[{deep}]"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["instance 1", "missing"]);
    post_json(&app, &deep)
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["instances"]);
}

#[tokio::test]
async fn json_lines_of_objects_and_lists() {
    let (app, rows) = app();
    let body = "{\"Tot_Fwd_Pkts\": 80, \"Flow_Duration\": 1, \"Dst_Port\": 2, \"Idle_Min\": 3}\n\n[30, 4, 5, null]\r\n";
    for content_type in ["application/jsonlines", "application/x-jsonlines; charset=utf-8"] {
        let reply = post(&app, Some(content_type), None, body).await;
        assert_eq!(predictions(&reply), [pred("Anomaly", 0.8), pred("Normal", 0.3)]);
        assert_rows(&rows, &[80., 1., 2., 3., 30., 4., 5., NAN]);
    }
}

#[tokio::test]
async fn json_lines_errors_name_the_line() {
    let (app, _) = app();
    let reply = post(&app, Some("application/jsonlines"), None, "[1,2,3,4]\n{oops\n").await;
    let body = reply.assert_error(StatusCode::BAD_REQUEST, &["line 2", "not a valid JSON"]);
    assert_eq!(body["row"], 2);
    let reply = post(
        &app,
        Some("application/jsonlines"),
        None,
        "[1,2,3,4]\n[1,\"x\",3,4]\n",
    )
    .await;
    let body = reply.assert_error(StatusCode::BAD_REQUEST, &["row 2", "Flow_Duration"]);
    assert_eq!(body["column"], "Flow_Duration");
}

// ---------------------------------------------------------------------------------------------
// Accept

#[tokio::test]
async fn accept_selects_the_response_format() {
    let (app, _) = app();
    let body = "90,0,0,0\n10,0,0,0\n";
    for accept in [
        None,
        Some("application/json"),
        Some("*/*"),
        Some("application/json; charset=utf-8"),
    ] {
        let reply = post(&app, Some("text/csv"), accept, body).await;
        assert_eq!(
            predictions(&reply),
            [pred("Anomaly", 0.9), pred("Normal", 0.1)],
            "Accept {accept:?}"
        );
    }

    let reply = post(&app, Some("text/csv"), Some("text/csv"), body).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type(), "text/csv");
    assert_eq!(reply.text(), "Anomaly,0.9\nNormal,0.1\n");

    for accept in ["application/jsonlines", "application/x-jsonlines"] {
        let reply = post(&app, Some("text/csv"), Some(accept), body).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.content_type(), accept);
        assert_eq!(
            reply.text(),
            "{\"label\":\"Anomaly\",\"score\":0.9}\n{\"label\":\"Normal\",\"score\":0.1}\n"
        );
    }

    // Quality values: the best supported range wins; q=0 excludes.
    let reply = post(
        &app,
        Some("text/csv"),
        Some("text/html, application/json;q=0.5, text/csv;q=0.9"),
        body,
    )
    .await;
    assert_eq!(reply.content_type(), "text/csv");
    let reply = post(&app, Some("text/csv"), Some("text/csv;q=0, */*;q=0.1"), body).await;
    assert_eq!(reply.content_type(), "application/json");
}

#[tokio::test]
async fn unsupported_accept_is_406() {
    let (app, _) = app();
    for accept in ["text/html", "application/xml, image/png", "text/csv;q=0"] {
        post(&app, Some("text/csv"), Some(accept), "1,2,3,4")
            .await
            .assert_error(
                StatusCode::NOT_ACCEPTABLE,
                &[accept, "application/json", "text/csv"],
            );
    }
}

#[tokio::test]
async fn labels_are_escaped_in_every_format() {
    let scorer = FakeScorer {
        n_features: 1,
        last_rows: Arc::default(),
    };
    let model = Arc::new(ServedModel {
        features: vec!["Flow_Duration".to_owned()],
        threshold: 0.5,
        positive_label: "Bad, \"really\"".to_owned(),
        negative_label: "Normal".to_owned(),
        scorer: Box::new(scorer),
    });
    let app = router(model);
    let reply = post(&app, Some("text/csv"), Some("text/csv"), "90\n").await;
    assert_eq!(reply.text(), "\"Bad, \"\"really\"\"\",0.9\n");
    let reply = post(&app, Some("text/csv"), None, "90\n").await;
    assert_eq!(predictions(&reply), [pred("Bad, \"really\"", 0.9)]);
}

// ---------------------------------------------------------------------------------------------
// Size, content type, recovery, scorer faults

#[tokio::test]
async fn body_over_6_mb_is_413() {
    let (app, _) = app();
    let line = "1,2,3,4\n";
    let big = line.repeat(7 * 1024 * 1024 / line.len());
    assert!(big.len() > 6 * 1024 * 1024);
    // Streamed without Content-Length: the body limit stops reading.
    post_csv(&app, &big)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, &["6 MB"]);
    // Declared by Content-Length: refused before reading.
    let request = Request::post("/invocations")
        .header(header::CONTENT_TYPE, "text/csv")
        .header(header::CONTENT_LENGTH, big.len())
        .body(Body::from(big.clone()))
        .unwrap();
    send(&app, request)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, &["6 MB"]);
    // Exactly 6 MB is fine.
    let limit = 6 * 1024 * 1024;
    let mut at_limit = line.repeat(limit / line.len());
    at_limit.push_str(&"\n".repeat(limit - at_limit.len()));
    assert_eq!(at_limit.len(), limit);
    assert_eq!(post_csv(&app, &at_limit).await.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_or_missing_content_type_is_415_listing_accepted_types() {
    let (app, _) = app();
    for content_type in [None, Some("text/plain"), Some("application/xml"), Some("")] {
        post(&app, content_type, None, "1,2,3,4").await.assert_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &["text/csv", "application/json", "application/jsonlines"],
        );
    }
}

#[tokio::test]
async fn a_bad_request_does_not_disturb_the_next_one() {
    let (app, rows) = app();
    post_csv(&app, "1,2,zzz,4\n")
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["Dst_Port"]);
    post(&app, Some("application/json"), None, b"\xff\xfe\x00".to_vec())
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["invalid JSON"]);
    post_csv(&app, "\u{fffd},\u{0},\"unterminated\n")
        .await
        .assert_error(StatusCode::BAD_REQUEST, &[]);
    assert_eq!(
        predictions(&post_csv(&app, "60,1,2,3\n").await),
        [pred("Anomaly", 0.6)]
    );
    assert_rows(&rows, &[60., 1., 2., 3.]);
}

struct FaultyScorer(&'static str);

impl Scorer for FaultyScorer {
    fn score(&self, _rows: &[f64], n_rows: usize) -> Result<Vec<f64>, String> {
        match self.0 {
            "error" => Err("booster exploded".to_owned()),
            "panic" => panic!("booster panicked"),
            "short" => Ok(vec![0.5; n_rows - 1]),
            _ => Ok(vec![f64::NAN; n_rows]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scorer_faults_are_500_and_the_server_keeps_serving() {
    for (fault, needle) in [
        ("error", "booster exploded"),
        ("panic", "booster panicked"),
        ("short", "1 scores for 2 rows"),
        ("nan", "non-finite"),
    ] {
        let app = router(served_model(&FEATURES, Box::new(FaultyScorer(fault))));
        post_csv(&app, "1,2,3,4\n5,6,7,8\n")
            .await
            .assert_error(StatusCode::INTERNAL_SERVER_ERROR, &[needle]);
        assert_eq!(
            send(&app, Request::get("/ping").body(Body::empty()).unwrap())
                .await
                .status,
            StatusCode::OK
        );
    }
    // A batch large enough to be scored with block_in_place panics just the same way.
    let app = router(served_model(&FEATURES, Box::new(FaultyScorer("panic"))));
    post_csv(&app, &"1,2,3,4\n".repeat(500))
        .await
        .assert_error(StatusCode::INTERNAL_SERVER_ERROR, &["booster panicked"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches_are_scored_in_order() {
    let (app, _) = app();
    let body: String = (0..1000).map(|i| format!("{},0,0,0\n", i % 100)).collect();
    let got = predictions(&post_csv(&app, &body).await);
    assert_eq!(got.len(), 1000);
    for (i, (_, score)) in got.iter().enumerate() {
        assert_eq!(*score, (i % 100) as f64 / 100.0);
    }
}

#[test]
fn bind_address_comes_from_sagemaker_bind_to_port() {
    let any = IpAddr::from([0, 0, 0, 0]);
    assert_eq!(bind_addr(any, None).unwrap(), "0.0.0.0:8080".parse().unwrap());
    assert_eq!(bind_addr(any, Some("")).unwrap(), "0.0.0.0:8080".parse().unwrap());
    assert_eq!(
        bind_addr(any, Some("9090")).unwrap(),
        "0.0.0.0:9090".parse().unwrap()
    );
    let loopback = IpAddr::from([127, 0, 0, 1]);
    assert_eq!(
        bind_addr(loopback, Some(" 9091 ")).unwrap(),
        "127.0.0.1:9091".parse().unwrap()
    );
    assert!(bind_addr(any, Some("http")).is_err());
    assert!(bind_addr(any, Some("70000")).is_err());
}

// ---------------------------------------------------------------------------------------------
// A real socket

/// Writes one HTTP/1.1 request and reads one response (status line, headers, Content-Length body).
async fn exchange(stream: &mut TcpStream, request: &str) -> (u16, String) {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end].to_vec()).unwrap();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                let body = String::from_utf8(buf[end + 4..end + 4 + length].to_vec()).unwrap();
                return (status, body);
            }
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "connection closed mid-response: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn csv_request(body: &str) -> String {
    format!(
        "POST /invocations HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/csv\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn serves_over_a_socket_and_shuts_down_gracefully() {
    let (_, rows) = app();
    let scorer = FakeScorer {
        n_features: FEATURES.len(),
        last_rows: rows,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with_shutdown(
        listener,
        served_model(&FEATURES, Box::new(scorer)),
        async {
            let _ = stopped.await;
        },
    ));

    let mut stream = TcpStream::connect(addr).await.unwrap();
    let (status, _) = exchange(&mut stream, "GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(status, 200);
    // A bad request, then a good one, on the same keep-alive connection.
    let (status, body) = exchange(&mut stream, &csv_request("1,2\n")).await;
    assert_eq!(status, 400);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["row"], 1);
    let (status, body) = exchange(&mut stream, &csv_request("62.5,1,2,3\n")).await;
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"predictions":[{"label":"Anomaly","score":0.625}]}"#);

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "the port is closed");
}

/// Blocks in `score` until released, to hold a request in flight.
struct SlowScorer {
    started: Mutex<std::sync::mpsc::Sender<()>>,
    release: Mutex<std::sync::mpsc::Receiver<()>>,
}

impl Scorer for SlowScorer {
    fn score(&self, _rows: &[f64], n_rows: usize) -> Result<Vec<f64>, String> {
        let _ = self.started.lock().unwrap().send(());
        let _ = self.release.lock().unwrap().recv_timeout(Duration::from_secs(10));
        Ok(vec![0.75; n_rows])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_in_flight_request_finish() {
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    let scorer = SlowScorer {
        started: Mutex::new(started_tx),
        release: Mutex::new(release_rx),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with_shutdown(
        listener,
        served_model(&FEATURES, Box::new(scorer)),
        async {
            let _ = stopped.await;
        },
    ));

    let client = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        exchange(&mut stream, &csv_request("1,2,3,4\n")).await
    });
    tokio::task::spawn_blocking(move || started_rx.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the request reached the scorer");
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    release_tx.send(()).unwrap();

    let (status, body) = tokio::time::timeout(Duration::from_secs(10), client)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"predictions":[{"label":"Anomaly","score":0.75}]}"#);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}
