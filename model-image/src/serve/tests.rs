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
use futures_util::StreamExt;

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
    (
        router(served_model(features, Box::new(scorer)), &ServeLimits::default()),
        last_rows,
    )
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
    // Deep nesting is a 400 from the prescan, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    post_json(&app, &deep)
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["nests deeper than 32"]);
    let deep = format!("{}1{}", r#"{"a":"#.repeat(100_000), "}".repeat(100_000));
    post_json(&app, &format!("[{deep}]"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["nests deeper than 32"]);
    // Within the depth limit, the parser's own errors.
    let deep = format!("{}{}", "[".repeat(32), "]".repeat(32));
    post_json(&app, &deep)
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["instance 1", "1 values"]);
    let deep = format!("{}1{}", r#"{"a":"#.repeat(30), "}".repeat(30));
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
    let app = router(model, &ServeLimits::default());
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
    // Exactly 6 MB is fine (in rows of 100 bytes, under the row limit).
    let limit = 6 * 1024 * 1024;
    let line = format!("1,2,3,{}4\n", " ".repeat(92));
    assert_eq!(line.len(), 100);
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
        let app = router(
            served_model(&FEATURES, Box::new(FaultyScorer(fault))),
            &ServeLimits::default(),
        );
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
    let app = router(
        served_model(&FEATURES, Box::new(FaultyScorer("panic"))),
        &ServeLimits::default(),
    );
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

// ---------------------------------------------------------------------------------------------
// Hostile shapes, chunked scoring, the in-flight limit, the body timeout

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_beyond_one_scoring_chunk_are_scored_in_order() {
    let (app, rows) = app();
    let n = 2 * request::SCORE_CHUNK_ROWS + 17;
    let body: String = (0..n).map(|i| format!("{},0,0,{i}\n", i % 100)).collect();
    let got = predictions(&post_csv(&app, &body).await);
    assert_eq!(got.len(), n);
    for (i, (_, score)) in got.iter().enumerate() {
        assert_eq!(*score, (i % 100) as f64 / 100.0, "row {i}");
    }
    // The scorer saw the last, partial chunk last.
    let seen = rows.lock().unwrap().clone();
    assert_eq!(seen.len(), 17 * FEATURES.len());
    assert_eq!(seen[seen.len() - 1], (n - 1) as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_rows_than_the_limit_is_413_and_the_limit_itself_is_fine() {
    let (app, _) = app();
    let rows = |n: usize| "1,2,3,4\n".repeat(n);
    let header = "Tot_Fwd_Pkts,Flow_Duration,Dst_Port,Idle_Min\n";
    assert_eq!(
        predictions(&post_csv(&app, &format!("{header}{}", rows(MAX_ROWS_PER_REQUEST))).await).len(),
        MAX_ROWS_PER_REQUEST
    );
    for body in [
        rows(MAX_ROWS_PER_REQUEST + 1),
        format!("{header}{}", rows(MAX_ROWS_PER_REQUEST + 1)),
        rows(3 * MAX_ROWS_PER_REQUEST),
    ] {
        post_csv(&app, &body)
            .await
            .assert_error(StatusCode::PAYLOAD_TOO_LARGE, &["more than 100000 rows"]);
    }
    let instances = format!("[{}[1,2,3,4]]", "[1,2,3,4],".repeat(MAX_ROWS_PER_REQUEST));
    post_json(&app, &instances)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, &["more than 100000 rows"]);
    let lines = "[1,2,3,4]\n".repeat(MAX_ROWS_PER_REQUEST + 1);
    post(&app, Some("application/jsonlines"), None, lines)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, &["more than 100000 rows"]);
}

#[tokio::test]
async fn records_wider_than_the_model_could_use_are_400_before_parsing() {
    let (app, _) = app();
    // The test model reads at most 86 columns (the raw layout) plus the extra allowance.
    let max = 86 + EXTRA_COLUMNS;
    let commas = ",".repeat(1_000_000);
    post_csv(&app, &commas).await.assert_error(
        StatusCode::BAD_REQUEST,
        &["record 1", &format!("more than {max} fields")],
    );
    let header: Vec<String> = (0..=max).map(|i| format!("c{i}")).collect();
    post_csv(&app, &format!("1,2,3,4\n{}\n", header.join(",")))
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["record 2", "fields"]);
    // As wide as allowed: a header with the features and extra columns is read.
    let mut header: Vec<String> = FEATURES.iter().map(|f| (*f).to_owned()).collect();
    header.extend((FEATURES.len()..max).map(|i| format!("extra{i}")));
    let row: Vec<&str> = (0..max).map(|i| if i == 0 { "70" } else { "1" }).collect();
    let body = format!("{}\n{}\n", header.join(","), row.join(","));
    assert_eq!(predictions(&post_csv(&app, &body).await), [pred("Anomaly", 0.7)]);

    let long_list = format!("[[{}1]]", "1,".repeat(1_000_000));
    post_json(&app, &long_list)
        .await
        .assert_error(StatusCode::BAD_REQUEST, &[&format!("more than {max} entries")]);
    let wide_object: Vec<String> = (0..=max).map(|i| format!("\"k{i}\":1")).collect();
    post_json(&app, &format!("[{{{}}}]", wide_object.join(",")))
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["entries"]);
}

/// A body of `chunks`, counting how many the server pulled.
fn chunked(chunks: Vec<Vec<u8>>, pulled: Arc<std::sync::atomic::AtomicUsize>) -> Body {
    let stream = futures_util::stream::iter(chunks.into_iter().map(move |chunk| {
        pulled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok::<_, std::io::Error>(axum::body::Bytes::from(chunk))
    }));
    Body::from_stream(stream)
}

async fn post_chunks(app: &Router, content_type: &str, chunks: Vec<Vec<u8>>) -> (Reply, usize) {
    let pulled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let body = chunked(chunks, Arc::clone(&pulled));
    let reply = post(app, Some(content_type), None, body).await;
    (reply, pulled.load(std::sync::atomic::Ordering::SeqCst))
}

#[tokio::test]
async fn bodies_in_many_chunks_are_joined_and_checked_across_chunk_boundaries() {
    let (app, rows) = app();
    let body = b"\xEF\xBB\xBF90,1,2,3\r\n\"10\",4,5,6\n".to_vec();
    let (reply, _) = post_chunks(&app, "text/csv", body.chunks(2).map(<[u8]>::to_vec).collect()).await;
    assert_eq!(predictions(&reply), [pred("Anomaly", 0.9), pred("Normal", 0.1)]);
    assert_rows(&rows, &[90., 1., 2., 3., 10., 4., 5., 6.]);

    // A million commas in 1 KB chunks: refused, and the rest still read (drained) so that the
    // client gets the answer.
    let chunks: Vec<Vec<u8>> = (0..1000).map(|_| vec![b','; 1000]).collect();
    let (reply, pulled) = post_chunks(&app, "text/csv", chunks).await;
    reply.assert_error(StatusCode::BAD_REQUEST, &["more than"]);
    assert_eq!(pulled, 1000);

    let json = format!("{{\"instances\": [[{}]]}}", "0,".repeat(400) + "0");
    let chunks = json.as_bytes().chunks(7).map(<[u8]>::to_vec).collect();
    post_chunks(&app, "application/json", chunks)
        .await
        .0
        .assert_error(StatusCode::BAD_REQUEST, &["entries"]);
}

#[tokio::test]
async fn requests_refused_before_their_body_still_drain_it() {
    let (app, _) = app();
    let chunks: Vec<Vec<u8>> = (0..50).map(|_| b"1,2,3,4\n".to_vec()).collect();
    let (reply, pulled) = post_chunks(&app, "text/plain", chunks).await;
    reply.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, &["text/csv"]);
    assert_eq!(pulled, 50);
}

#[tokio::test(start_paused = true)]
async fn a_body_that_stops_arriving_is_408_after_the_body_timeout() {
    let limits = ServeLimits {
        body_timeout: Duration::from_secs(3),
        ..ServeLimits::default()
    };
    let app = router(
        served_model(
            &FEATURES,
            Box::new(FakeScorer {
                n_features: FEATURES.len(),
                last_rows: Arc::default(),
            }),
        ),
        &limits,
    );
    let stalled = futures_util::stream::iter([Ok::<_, std::io::Error>(axum::body::Bytes::from("1,2,"))])
        .chain(futures_util::stream::pending());
    let started = tokio::time::Instant::now();
    let reply = post(&app, Some("text/csv"), None, Body::from_stream(stalled)).await;
    reply.assert_error(
        StatusCode::REQUEST_TIMEOUT,
        &["within 3 s", "MODEL_IMAGE_BODY_TIMEOUT"],
    );
    assert_eq!(started.elapsed(), Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_beyond_the_in_flight_limit_is_503_with_retry_after() {
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    let scorer = SlowScorer {
        started: Mutex::new(started_tx),
        release: Mutex::new(release_rx),
    };
    let limits = ServeLimits {
        max_in_flight: 1,
        ..ServeLimits::default()
    };
    let app = router(served_model(&FEATURES, Box::new(scorer)), &limits);
    let busy = tokio::spawn({
        let app = app.clone();
        async move { post_csv(&app, "1,2,3,4\n").await }
    });
    tokio::task::spawn_blocking(move || started_rx.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the first request reached the scorer");

    let reply = post_csv(&app, "1,2,3,4\n").await;
    reply.assert_error(
        StatusCode::SERVICE_UNAVAILABLE,
        &["limit of 1 requests in flight", "MODEL_IMAGE_MAX_IN_FLIGHT"],
    );
    assert_eq!(reply.headers.get(header::RETRY_AFTER).unwrap(), "1");
    // Other routes are not limited.
    let ping = send(&app, Request::get("/ping").body(Body::empty()).unwrap()).await;
    assert_eq!(ping.status, StatusCode::OK);

    release_tx.send(()).unwrap();
    assert_eq!(busy.await.unwrap().status, StatusCode::OK);
    // The permit came back with the finished response (and the scorer no longer waits).
    drop(release_tx);
    assert_eq!(post_csv(&app, "1,2,3,4\n").await.status, StatusCode::OK);
}

/// The prescan's verdict on a CSV body, fed in chunks of `chunk` bytes.
fn prescan_csv(body: &[u8], shape: prescan::RequestShape, chunk: usize) -> bool {
    let mut scan = prescan::Prescan::new(InputFormat::Csv, shape);
    body.chunks(chunk).all(|c| scan.feed(c).is_ok()) && scan.finish().is_ok()
}

/// The widest record and the number of non-blank records, as the parser reads them: the csv crate
/// for bodies with quotes, lines split at `\r` and `\n` otherwise; blank = one whitespace field.
fn parsed_csv_shape(body: &[u8]) -> (usize, usize) {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let records: Vec<Vec<Vec<u8>>> = if body.contains(&b'"') {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(body);
        reader
            .byte_records()
            .map(|r| r.unwrap().iter().map(<[u8]>::to_vec).collect())
            .collect()
    } else {
        body.split(|&b| b == b'\n' || b == b'\r')
            .map(|line| line.split(|&b| b == b',').map(<[u8]>::to_vec).collect())
            .collect()
    };
    let nonblank = records
        .iter()
        .filter(|r| !(r.is_empty() || (r.len() == 1 && r[0].iter().all(u8::is_ascii_whitespace))))
        .count();
    (records.iter().map(Vec::len).max().unwrap_or(0), nonblank)
}

proptest::proptest! {
    /// The prescan refuses a CSV body exactly when the parser would meet a record wider than the
    /// limit or more records than rows plus a header: it never refuses what the parser reads, and
    /// never lets through what the parser would allocate for.
    #[test]
    fn the_csv_prescan_agrees_with_the_parser(
        body in proptest::collection::vec(
            proptest::sample::select(vec![b',', b'"', b'\n', b'\r', b'a', b'1', b' ', 0xEF, 0xBB, 0xBF]),
            0..60,
        ),
        chunk in 1usize..9,
    ) {
        let shape = prescan::RequestShape { max_fields: 3, max_rows: 2, max_record_bytes: usize::MAX };
        let (widest, records) = parsed_csv_shape(&body);
        let expected = widest <= shape.max_fields && records <= shape.max_rows + 1;
        proptest::prop_assert_eq!(prescan_csv(&body, shape, chunk), expected, "widest {} records {}", widest, records);
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
        ServeLimits::default(),
        None,
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
        ServeLimits::default(),
        None,
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

/// Reads until the server closes the connection; `false` if it is still open after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let read_to_end = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_to_end).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_slow_and_stalled_connections_by_its_deadline() {
    let limits = ServeLimits {
        header_timeout: Duration::from_secs(60),
        body_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        shutdown_timeout: Duration::from_secs(1),
        ..ServeLimits::default()
    };
    let scorer = FakeScorer {
        n_features: FEATURES.len(),
        last_rows: Arc::default(),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with_shutdown(
        listener,
        served_model(&FEATURES, Box::new(scorer)),
        limits,
        None,
        async {
            let _ = stopped.await;
        },
    ));
    // Idle after one request; half-way through its headers; half-way through its body.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert_eq!(exchange(&mut idle, &csv_request("1,2,3,4\n")).await.0, 200);
    let mut slow_headers = TcpStream::connect(addr).await.unwrap();
    slow_headers
        .write_all(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-")
        .await
        .unwrap();
    let mut stalled_body = TcpStream::connect(addr).await.unwrap();
    stalled_body
        .write_all(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 50\r\n\r\n1,2")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the server stops by its shutdown deadline")
        .unwrap()
        .unwrap();
    for (what, stream) in [
        ("idle", &mut idle),
        ("slow headers", &mut slow_headers),
        ("stalled body", &mut stalled_body),
    ] {
        assert!(
            closed_within(stream, Duration::from_secs(10)).await,
            "{what} stays open"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_dribbling_its_headers_is_closed_at_the_header_timeout_and_others_are_served() {
    let limits = ServeLimits {
        header_timeout: Duration::from_millis(500),
        ..ServeLimits::default()
    };
    let scorer = FakeScorer {
        n_features: FEATURES.len(),
        last_rows: Arc::default(),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with_shutdown(
        listener,
        served_model(&FEATURES, Box::new(scorer)),
        limits,
        None,
        async {
            let _ = stopped.await;
        },
    ));
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let dribble = tokio::spawn(async move {
        slow.write_all(b"POST /invocations HTTP/1.1\r\n").await.unwrap();
        // A byte every 100 ms keeps the connection busy but never completes the headers.
        for _ in 0..300 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow.write_all(b"x").await.is_err() {
                return true;
            }
        }
        closed_within(&mut slow, Duration::ZERO).await
    });
    let mut normal = TcpStream::connect(addr).await.unwrap();
    for _ in 0..5 {
        assert_eq!(exchange(&mut normal, &csv_request("1,2,3,4\n")).await.0, 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(20), dribble)
            .await
            .expect("the slow client's connection is closed")
            .unwrap()
    );
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Spooled bodies (an asynchronous endpoint's, `MODEL_IMAGE_MAX_PAYLOAD_MB` over 6)

/// Bodies over this are spooled by [`spooling_app`]: small, so that its tests stay quick. The real
/// threshold of 6 MB has tests of its own.
const TEST_IN_MEMORY_BYTES: usize = 64 * 1024;

/// A spool directory for one test. Spool files are created unlinked, so it never has an entry; the
/// files this process holds open in it (`/proc/self/fd`, Linux) are the ones in use.
struct SpoolDir(tempfile::TempDir);

impl SpoolDir {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn path(&self) -> std::path::PathBuf {
        std::fs::canonicalize(self.0.path()).unwrap()
    }

    fn entries(&self) -> usize {
        std::fs::read_dir(self.0.path()).unwrap().count()
    }

    /// Files of this process open in the directory, unlinked ones included.
    fn open_files(&self) -> usize {
        let dir = self.path();
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter(|target| target.starts_with(&dir))
            .count()
    }

    /// Nothing is left of any request: no name in the directory, no file open in it.
    #[track_caller]
    fn assert_empty(&self) {
        assert_eq!(self.entries(), 0, "spool files have names");
        assert_eq!(self.open_files(), 0, "spool files are still open");
    }
}

fn fake_scorer() -> Box<dyn Scorer> {
    Box::new(FakeScorer {
        n_features: FEATURES.len(),
        last_rows: Arc::default(),
    })
}

/// Limits that allow bodies of `max_payload_mb`, spooled into `dir`.
fn spooling_limits(dir: &SpoolDir, max_payload_mb: usize) -> ServeLimits {
    ServeLimits {
        max_payload_mb,
        spool_dir: Some(dir.path()),
        ..ServeLimits::default()
    }
}

/// A router that spools bodies over [`TEST_IN_MEMORY_BYTES`], up to 1 MB, into `dir`.
fn spooling_app_with(dir: &SpoolDir, scorer: Box<dyn Scorer>) -> Router {
    router_holding_in_memory(
        served_model(&FEATURES, scorer),
        &spooling_limits(dir, 1),
        TEST_IN_MEMORY_BYTES,
    )
}

fn spooling_app(dir: &SpoolDir) -> Router {
    spooling_app_with(dir, fake_scorer())
}

/// `n` CSV rows of the test model: scores and labels vary (the first feature is `i % 100` and a
/// decimal), cells have spaces and missing values.
fn csv_rows(n: usize) -> String {
    (0..n)
        .map(|i| {
            let port = if i % 11 == 0 { "" } else { "443" };
            format!("{}.{},{}, {port} ,{i}\n", i % 100, i % 7, i * 31 % 1000)
        })
        .collect()
}

/// The same rows as JSON Lines, lists and objects in turn, with a blank line now and then.
fn json_lines_rows(n: usize) -> String {
    (0..n)
        .map(|i| {
            let first = format!("{}.{}", i % 100, i % 7);
            let line = if i % 2 == 0 {
                format!("[{first}, {}, null, {i}]\n", i * 31 % 1000)
            } else {
                format!(
                    r#"{{"Tot_Fwd_Pkts": {first}, "Flow_Duration": "{}", "Dst_Port": 443, "Idle_Min": {i}}}"#,
                    i * 31 % 1000
                ) + "\n"
            };
            if i % 500 == 0 { format!("{line}\n") } else { line }
        })
        .collect()
}

/// `POST /invocations` declaring the body's length, as SageMaker does.
async fn post_with_length(app: &Router, content_type: &str, accept: Option<&str>, body: String) -> Reply {
    let mut request = Request::post("/invocations")
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, body.len());
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    send(app, request.body(Body::from(body)).unwrap()).await
}

/// `body` in chunks of `size` bytes, without a length.
fn in_chunks(body: &str, size: usize) -> Vec<Vec<u8>> {
    body.as_bytes().chunks(size).map(<[u8]>::to_vec).collect()
}

#[tokio::test]
async fn spooled_bodies_are_answered_byte_for_byte_as_in_memory_in_every_format() {
    let dir = SpoolDir::new();
    let spooling = spooling_app(&dir);
    let (in_memory, _) = app();
    // More than one scoring chunk, over the test's in-memory limit, under the real one.
    let n = request::SCORE_CHUNK_ROWS + 904;
    let rows = csv_rows(n);
    assert!(rows.len() > TEST_IN_MEMORY_BYTES && rows.len() < MAX_PAYLOAD_IN_MB * MB);
    let header = FEATURES.join(",");
    let bodies = [
        ("text/csv", rows.clone()),
        // A BOM, a header, CRLF line ends.
        (
            "text/csv",
            format!("\u{feff}{header}\r\n{}", rows.replace('\n', "\r\n")),
        ),
        // A quote (in the header) sends the body through the csv crate.
        ("text/csv", format!("\"Tot_Fwd_Pkts\",{}\n{rows}", &header[13..])),
        ("application/jsonlines", json_lines_rows(n)),
        (
            "application/x-jsonlines",
            format!("\u{feff}{}", json_lines_rows(n)),
        ),
    ];
    let accepts = [
        None,
        Some("text/csv"),
        Some("application/jsonlines"),
        Some("application/x-jsonlines"),
    ];
    for (content_type, body) in &bodies {
        for accept in accepts {
            let what = format!("{content_type} body, Accept {accept:?}");
            let expected = post(&in_memory, Some(content_type), accept, body.clone()).await;
            assert_eq!(expected.status, StatusCode::OK, "{what}: {}", expected.text());
            // Declared (spooled from the first byte), in one chunk and in many (spooled from the chunk
            // that passes the in-memory limit).
            let replies = [
                post_with_length(&spooling, content_type, accept, body.clone()).await,
                post(&spooling, Some(content_type), accept, body.clone()).await,
                {
                    let mut request =
                        Request::post("/invocations").header(header::CONTENT_TYPE, *content_type);
                    if let Some(accept) = accept {
                        request = request.header(header::ACCEPT, accept);
                    }
                    let chunks = in_chunks(body, 4000);
                    let pulled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
                    send(&spooling, request.body(chunked(chunks, pulled)).unwrap()).await
                },
            ];
            for reply in replies {
                assert_eq!(reply.status, StatusCode::OK, "{what}: {}", reply.text());
                assert_eq!(reply.content_type(), expected.content_type(), "{what}");
                assert_eq!(
                    reply.headers[header::CONTENT_LENGTH],
                    reply.body.len().to_string(),
                    "{what}"
                );
                assert!(reply.body == expected.body, "{what}: the spooled answer differs");
            }
            dir.assert_empty();
        }
    }
    // The answer really is the rows' (not two equal wrong answers).
    let got = predictions(&post(&spooling, Some("text/csv"), None, rows).await);
    assert_eq!(got.len(), n);
    let last: f64 = format!("{}.{}", (n - 1) % 100, (n - 1) % 7).parse().unwrap();
    assert_eq!(got[n - 1].1, last / 100.0);
}

/// Rows of 100 bytes of the test model (padded with spaces), so that a body of many MB stays under
/// the row limit.
fn padded_rows(bytes: usize) -> String {
    let mut body: String = (0..bytes / 100)
        .map(|i| format!("{:>4},1,2,{:<90}\n", i % 100, 4))
        .collect();
    body.push_str(&"\n".repeat(bytes - body.len()));
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_real_6_mb_are_spooled_and_answered_as_in_memory() {
    let limit = MAX_PAYLOAD_IN_MB * MB;
    // A spool directory that does not exist: every body that is spooled fails (500), every body held
    // in memory is answered, so the replies show exactly where spooling starts.
    let missing = SpoolDir::new();
    let limits = ServeLimits {
        spool_dir: Some(missing.path().join("missing")),
        ..spooling_limits(&missing, 8)
    };
    let no_spool = router(served_model(&FEATURES, fake_scorer()), &limits);
    let at_limit = padded_rows(limit);
    assert_eq!(post_csv(&no_spool, &at_limit).await.status, StatusCode::OK);
    let over = padded_rows(limit + 1);
    for reply in [
        post_csv(&no_spool, &over).await,
        post_with_length(&no_spool, "text/csv", None, over.clone()).await,
    ] {
        reply.assert_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &["temporary file", "MODEL_IMAGE_SPOOL_DIR"],
        );
    }

    // With a spool directory, a 7 MB body is answered as the same body held in memory is.
    let dir = SpoolDir::new();
    let spooling = router(served_model(&FEATURES, fake_scorer()), &spooling_limits(&dir, 8));
    let in_memory = router_holding_in_memory(
        served_model(&FEATURES, fake_scorer()),
        &spooling_limits(&dir, 8),
        8 * MB,
    );
    let body = padded_rows(7 * MB);
    for accept in [None, Some("text/csv")] {
        let spooled = post_with_length(&spooling, "text/csv", accept, body.clone()).await;
        let expected = post(&in_memory, Some("text/csv"), accept, body.clone()).await;
        assert_eq!(spooled.status, StatusCode::OK, "{}", spooled.text());
        assert_eq!(expected.status, StatusCode::OK, "{}", expected.text());
        assert!(
            spooled.body == expected.body,
            "Accept {accept:?}: the answers differ"
        );
    }
    dir.assert_empty();
}

#[tokio::test]
async fn a_bad_cell_in_the_last_row_of_a_spooled_body_is_400_naming_its_row_and_column() {
    let dir = SpoolDir::new();
    let app = spooling_app(&dir);
    let n = 6000;
    let csv = format!("{}1,2,oops,4\n", csv_rows(n));
    for accept in [None, Some("text/csv")] {
        let body = post_with_length(&app, "text/csv", accept, csv.clone())
            .await
            .assert_error(StatusCode::BAD_REQUEST, &["row 6001", "Dst_Port", "\"oops\""]);
        assert_eq!(
            (body["row"].clone(), body["column"].clone()),
            (json!(6001), json!("Dst_Port"))
        );
    }
    let lines = format!("{}[1, 2, 3, \"x\"]\n", json_lines_rows(n));
    let body = post(&app, Some("application/jsonlines"), None, lines)
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["row 6001", "Idle_Min"]);
    assert_eq!(
        (body["row"].clone(), body["column"].clone()),
        (json!(6001), json!("Idle_Min"))
    );
    dir.assert_empty();
}

/// A JSON body of 100-byte instances, `bytes` long.
fn padded_json(bytes: usize) -> String {
    let n = (bytes - 1) / 100;
    let mut body = String::from("[");
    for i in 0..n {
        body.push_str(&format!("[{:>4},1,2,{:<88}]", i % 100, 4));
        body.push(if i + 1 < n { ',' } else { ']' });
    }
    body.push_str(&" ".repeat(bytes - body.len()));
    body
}

#[tokio::test]
async fn a_json_document_over_6_mb_is_413_asking_for_csv_or_json_lines() {
    let dir = SpoolDir::new();
    let app = router(
        served_model(&FEATURES, fake_scorer()),
        &spooling_limits(&dir, 1024),
    );
    let small = padded_json(MB);
    assert_eq!(predictions(&post_json(&app, &small).await).len(), MB / 100);
    let big = padded_json(MAX_PAYLOAD_IN_MB * MB + 1);
    let needles = [
        "JSON",
        "at most 6 MB",
        "text/csv",
        "application/jsonlines",
        "up to 1024 MB",
    ];
    post_json(&app, &big)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, &needles);
    post_with_length(&app, "application/json", None, big.clone())
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, &needles);
    // Streamed in chunks: refused at the chunk that passes 6 MB, and the rest still read.
    let chunks = in_chunks(&big, 64 * 1024);
    let count = chunks.len();
    let (reply, pulled) = post_chunks(&app, "application/json", chunks).await;
    reply.assert_error(StatusCode::PAYLOAD_TOO_LARGE, &needles);
    assert_eq!(pulled, count, "the rest of the body is drained");
    dir.assert_empty();
}

#[tokio::test]
async fn a_spooled_body_over_the_configured_limit_is_413() {
    let dir = SpoolDir::new();
    let app = spooling_app(&dir);
    let exactly = padded_rows(MB);
    assert_eq!(predictions(&post_csv(&app, &exactly).await).len(), MB / 100);
    let over = padded_rows(MB + 1);
    post_with_length(&app, "text/csv", None, over.clone())
        .await
        .assert_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &["larger than 1 MB", "MODEL_IMAGE_MAX_PAYLOAD_MB"],
        );
    let (reply, _) = post_chunks(&app, "text/csv", in_chunks(&over, 64 * 1024)).await;
    reply.assert_error(StatusCode::PAYLOAD_TOO_LARGE, &["larger than 1 MB"]);
    dir.assert_empty();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_rows_than_memory_takes_are_spooled_when_the_limit_allows_them() {
    let dir = SpoolDir::new();
    // 12 MB allow 200,000 rows; a 1.2 MB body of 150,000 rows is spooled for its rows.
    let app = router(served_model(&FEATURES, fake_scorer()), &spooling_limits(&dir, 12));
    let n = 150_000;
    let body: String = (0..n).map(|i| format!("{},2,3,4\n", i % 100)).collect();
    let got = predictions(&post_csv(&app, &body).await);
    assert_eq!(got.len(), n);
    assert_eq!(got[n - 1], pred("Anomaly", 0.99));
    let lines = "[1,2,3,4]\n".repeat(n);
    let reply = post(&app, Some("application/jsonlines"), Some("text/csv"), lines).await;
    assert_eq!(reply.text().lines().count(), n);
    // 200,001 is one too many; a JSON document keeps the realtime row limit.
    post_csv(&app, &"1,2,3,4\n".repeat(2 * MAX_ROWS_PER_REQUEST + 1))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, &["more than 200000 rows"]);
    let instances = format!("[{}[1,2,3,4]]", "[1,2,3,4],".repeat(MAX_ROWS_PER_REQUEST));
    post_json(&app, &instances)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, &["more than 100000 rows"]);
    dir.assert_empty();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_files_have_no_name_while_in_use_and_are_closed_on_every_outcome() {
    let dir = SpoolDir::new();
    let rows = csv_rows(6000);

    // In use: the body and the answer are open, and the directory is still empty.
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    let slow = SlowScorer {
        started: Mutex::new(started_tx),
        release: Mutex::new(release_rx),
    };
    let app = spooling_app_with(&dir, Box::new(slow));
    let busy = tokio::spawn({
        let (app, rows) = (app.clone(), rows.clone());
        async move { post_csv(&app, &rows).await }
    });
    tokio::task::spawn_blocking(move || started_rx.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the request reached the scorer");
    assert_eq!(
        (dir.entries(), dir.open_files()),
        (0, 2),
        "body and answer, unlinked"
    );
    release_tx.send(()).unwrap();
    drop(release_tx);
    assert_eq!(predictions(&busy.await.unwrap()).len(), 6000);
    dir.assert_empty();

    // A client that goes while its body is scored: the work stops at the next chunk of rows.
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    let slow = SlowScorer {
        started: Mutex::new(started_tx),
        release: Mutex::new(release_rx),
    };
    let app = spooling_app_with(&dir, Box::new(slow));
    let gone = tokio::spawn({
        let (app, rows) = (app.clone(), rows.clone());
        async move { post_csv(&app, &rows).await }
    });
    tokio::task::spawn_blocking(move || started_rx.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the request reached the scorer");
    gone.abort();
    assert!(gone.await.is_err_and(|e| e.is_cancelled()));
    release_tx.send(()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while dir.open_files() > 0 {
        assert!(std::time::Instant::now() < deadline, "the abandoned work goes on");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    dir.assert_empty();

    let app = spooling_app(&dir);
    // Refused by the prescan after spooling began (a record too wide, one too long): drained.
    for (bad, needle) in [
        (format!("{rows}{}\n", ",".repeat(200)), "fields"),
        (
            format!("{rows}1,2,3,{}4\n", " ".repeat(TEST_IN_MEMORY_BYTES)),
            "longer than 65536 bytes",
        ),
    ] {
        let chunks = in_chunks(&bad, 4000);
        let count = chunks.len();
        let (reply, pulled) = post_chunks(&app, "text/csv", chunks).await;
        reply.assert_error(StatusCode::BAD_REQUEST, &[needle]);
        assert_eq!(pulled, count, "the rest of the body is drained");
        dir.assert_empty();
    }
    // A client whose body breaks off, or that goes while it sends (the request's future dropped).
    let head = rows.as_bytes()[..TEST_IN_MEMORY_BYTES + 4000].to_vec();
    let broken = futures_util::stream::iter([
        Ok(axum::body::Bytes::from(head.clone())),
        Err(std::io::Error::other("connection reset")),
    ]);
    post(&app, Some("text/csv"), None, Body::from_stream(broken))
        .await
        .assert_error(StatusCode::BAD_REQUEST, &["could not read the request body"]);
    dir.assert_empty();
    let stalled = futures_util::stream::iter([Ok::<_, std::io::Error>(axum::body::Bytes::from(head))])
        .chain(futures_util::stream::pending());
    let gone = tokio::spawn({
        let app = app.clone();
        async move { post(&app, Some("text/csv"), None, Body::from_stream(stalled)).await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while dir.open_files() == 0 {
        assert!(std::time::Instant::now() < deadline, "the body was not spooled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gone.abort();
    assert!(gone.await.is_err_and(|e| e.is_cancelled()));
    dir.assert_empty();

    // A client that takes part of the answer and goes.
    let request = Request::post("/invocations")
        .header(header::CONTENT_TYPE, "text/csv")
        .body(Body::from(csv_rows(20_000)))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut answer = response.into_body();
    use http_body_util::BodyExt;
    let first = answer.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(!first.is_empty());
    assert_eq!(dir.open_files(), 1, "the answer is open while it is sent");
    drop(answer);
    dir.assert_empty();

    // The scorer fails, panics or returns a NaN part-way through.
    for (fault, needle) in [
        ("error", "booster exploded"),
        ("panic", "booster panicked"),
        ("nan", "non-finite score for row 1"),
    ] {
        let app = spooling_app_with(&dir, Box::new(FaultyScorer(fault)));
        post_csv(&app, &rows)
            .await
            .assert_error(StatusCode::INTERNAL_SERVER_ERROR, &[needle]);
        dir.assert_empty();
    }
}

#[test]
fn serving_refuses_to_start_when_bodies_would_be_spooled_into_a_missing_directory() {
    let dir = SpoolDir::new();
    let missing = dir.path().join("missing");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let error = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let limits = ServeLimits {
            spool_dir: Some(missing.clone()),
            ..spooling_limits(&dir, 1024)
        };
        serve_with_shutdown(
            listener,
            served_model(&FEATURES, fake_scorer()),
            limits,
            None,
            async {},
        )
        .await
        .unwrap_err()
    });
    let message = error.to_string();
    assert!(
        message.contains("MODEL_IMAGE_SPOOL_DIR") && message.contains(&missing.display().to_string()),
        "{message}"
    );
    // At the realtime limit nothing is spooled, and the directory is not looked at.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let limits = ServeLimits {
                spool_dir: Some(missing.clone()),
                ..ServeLimits::default()
            };
            serve_with_shutdown(
                listener,
                served_model(&FEATURES, fake_scorer()),
                limits,
                None,
                async {},
            )
            .await
        })
        .unwrap();
}

/// Data capture: a successful invocation reaches the capture queue with its body as sent and its
/// answer as answered (a body of several chunks too); refused ones never do; a body spooled past
/// the in-memory size is counted, not captured.
#[tokio::test]
async fn captures_successful_invocations_only_and_counts_spooled_ones() {
    let (capture, mut queue) = capture::Capture::with_queue(SamplingPercent::ALL, 16, 1 << 20);
    let dir = SpoolDir::new();
    let app = router_with(
        served_model(&FEATURES, fake_scorer()),
        &spooling_limits(&dir, 1),
        TEST_IN_MEMORY_BYTES,
        Some(capture.clone()),
    );
    let reply = post(
        &app,
        Some("text/csv; charset=utf-8"),
        Some("text/csv"),
        "62.5,1,2,3\n",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let exchange = queue.try_next().expect("the invocation is captured");
    assert_eq!(exchange.input_type, "text/csv; charset=utf-8");
    assert_eq!(exchange.input, "62.5,1,2,3\n");
    assert_eq!(exchange.output_type, "text/csv");
    assert_eq!(exchange.output, reply.body);

    let rows = csv_rows(500);
    let chunks: Vec<String> = rows.lines().map(|l| format!("{l}\n")).collect();
    let request = Request::post("/invocations")
        .header(header::CONTENT_TYPE, "text/csv")
        .body(Body::from_stream(futures_util::stream::iter(
            chunks.into_iter().map(Ok::<_, std::io::Error>),
        )))
        .unwrap();
    let reply = send(&app, request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let exchange = queue.try_next().expect("the invocation is captured");
    assert_eq!(exchange.input, rows.as_bytes());
    assert_eq!(exchange.output_type, "application/json");
    assert_eq!(exchange.output, reply.body);

    post_csv(&app, "1,2\n")
        .await
        .assert_error(StatusCode::BAD_REQUEST, &[]);
    post(&app, Some("text/plain"), None, "1,2,3,4\n")
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, &[]);
    post(&app, Some("text/csv"), Some("image/png"), "1,2,3,4\n")
        .await
        .assert_error(StatusCode::NOT_ACCEPTABLE, &[]);
    assert!(queue.try_next().is_none(), "refused requests are not captured");

    let large = csv_rows(TEST_IN_MEMORY_BYTES / 10);
    assert!(large.len() > TEST_IN_MEMORY_BYTES);
    let reply = post(&app, Some("text/csv"), None, large).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(queue.try_next().is_none(), "a spooled body is not captured");
    let tally = capture.tally();
    assert_eq!((tally.skipped_large, tally.dropped), (1, 0));
}
