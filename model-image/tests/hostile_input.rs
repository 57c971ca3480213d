//! Hostile input to `/invocations` of the real `model-image serve`, over loopback: generated requests
//! (proptest: random bytes, malformed and valid CSV, JSON and JSON Lines, wrong content types and
//! `Accept`s, NaN/inf, extreme numbers, invalid UTF-8) and fixed ones (huge and empty bodies, a
//! million commas, deep JSON, chunked bodies, a client that stops sending). Every answer must be a
//! 2xx, a 4xx or a 503 with a JSON reason; the server must never exit, `/ping` stays 200, and 16
//! concurrent hostile 6 MB bodies grow it by at most 4 bodies' worth of memory.
//!
//! Reduced form under `cargo test`; the full form:
//! `HOSTILE_CASES=20000 cargo test -p model-image --test hostile_input -- --nocapture`.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use support::{Answer, MAX_BODY, Server, connect, exchange, invocation, trained};

/// Generated cases in the reduced form.
const DEFAULT_CASES: u32 = 300;

/// What the server is held to: 2 s bodies keep the stalled-client case short.
const ENV: &[(&str, &str)] = &[("MODEL_IMAGE_BODY_TIMEOUT", "2")];

/// One generated request.
#[derive(Debug, Clone)]
struct Hostile {
    content_type: Option<&'static str>,
    accept: Option<&'static str>,
    body: Vec<u8>,
}

/// Checks one answer: a 2xx with predictions, or a 4xx/503 with a reason.
fn check(what: &str, answer: &Answer) -> Result<(), String> {
    let text = || String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)]).into_owned();
    match answer.status {
        200..=299 => {
            if answer.header("content-type") == Some("application/json") {
                let value: serde_json::Value = serde_json::from_slice(&answer.body)
                    .map_err(|e| format!("{what}: 2xx body is not JSON ({e}): {}", text()))?;
                let predictions = value["predictions"]
                    .as_array()
                    .ok_or_else(|| format!("{what}: no predictions in {}", text()))?;
                for p in predictions {
                    let score = p["score"].as_f64().unwrap_or(f64::NAN);
                    if !(0.0..=1.0).contains(&score) || p["label"].as_str().is_none() {
                        return Err(format!("{what}: bad prediction {p}"));
                    }
                }
            }
            Ok(())
        }
        400..=499 | 503 => match answer.reason() {
            Some(_) => Ok(()),
            None => Err(format!(
                "{what}: HTTP {} without a reason: {}",
                answer.status,
                text()
            )),
        },
        status => Err(format!("{what}: HTTP {status}: {}", text())),
    }
}

fn send(server: &Server, request: &[u8]) -> Result<Answer, String> {
    let mut stream = connect(server.addr);
    exchange(&mut stream, request).map_err(|e| format!("no answer: {e}"))
}

fn headers(content_type: Option<&str>, accept: Option<&str>) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if let Some(content_type) = content_type {
        headers.push(("Content-Type", content_type.to_owned()));
    }
    if let Some(accept) = accept {
        headers.push(("Accept", accept.to_owned()));
    }
    headers
}

fn request_of(server: &Server, case: &Hostile) -> Vec<u8> {
    let headers = headers(case.content_type, case.accept);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    invocation(server.addr, &headers, &case.body)
}

// ---------------------------------------------------------------------------------------------
// Strategies

fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:e}")),
        any::<i64>().prop_map(|v| v.to_string()),
        (0u32..1000).prop_map(|v| v.to_string()),
        prop::sample::select(vec![
            "nan",
            "NaN",
            "inf",
            "-inf",
            "Infinity",
            "-Infinity",
            "1e309",
            "-1e309",
            "1e-400",
            "5e-324",
            "1.7976931348623157e308",
            "-0",
            "+.5",
            "5.",
            ".",
            "-",
            "0x10",
            "1_000",
            "99999999999999999999999999999999",
            "  7  ",
            "1e",
            "e5",
            "--1",
            "1..2",
        ])
        .prop_map(str::to_owned),
    ]
}

fn garbage_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z ]{0,12}",
        "\\PC{0,8}",
        Just("\"quoted, with comma\"".to_owned()),
        Just("\"unterminated".to_owned()),
        Just("Anomaly".to_owned()),
    ]
}

fn cell() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => number_text().prop_map(String::into_bytes),
        1 => Just(Vec::new()),
        1 => garbage_text().prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 1..6),
    ]
}

fn csv_body(features: &[String]) -> impl Strategy<Value = Vec<u8>> {
    let n = features.len();
    let header = features.join(",").into_bytes();
    let width = prop_oneof![4 => Just(n), 1 => Just(86usize), 1 => Just(83usize), 2 => 0usize..200];
    let row = width.prop_flat_map(|w| prop::collection::vec(cell(), w));
    (
        any::<bool>(),
        prop::collection::vec(row, 0..12),
        prop::sample::select(vec!["\n", "\r\n", "\r"]),
    )
        .prop_map(move |(with_header, rows, separator)| {
            let mut body = if with_header { header.clone() } else { Vec::new() };
            for row in rows {
                if !body.is_empty() {
                    body.extend_from_slice(separator.as_bytes());
                }
                body.extend(row.join(&b','));
            }
            body
        })
}

/// Real rows, one cell of one row perhaps replaced by a hostile one: mostly answered 200, or a 400
/// naming the row and column.
fn real_rows_body(lines: &[String], json: bool) -> impl Strategy<Value = Vec<u8>> {
    let lines: Vec<Vec<String>> = lines
        .iter()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    (
        prop::collection::vec(any::<prop::sample::Index>(), 1..40),
        prop::option::of((any::<prop::sample::Index>(), any::<prop::sample::Index>(), cell())),
    )
        .prop_map(move |(picks, mutation)| {
            let mut rows: Vec<Vec<Vec<u8>>> = picks
                .iter()
                .map(|i| i.get(&lines).iter().map(|c| c.clone().into_bytes()).collect())
                .collect();
            if let Some((row, column, cell)) = mutation {
                let n = rows.len();
                let row = &mut rows[row.index(n)];
                let width = row.len();
                row[column.index(width)] = cell;
            }
            if json {
                let instances: Vec<String> = rows
                    .iter()
                    .map(|r| {
                        let cells: Vec<String> = r
                            .iter()
                            .map(|c| {
                                serde_json::Value::String(String::from_utf8_lossy(c).into_owned()).to_string()
                            })
                            .collect();
                        format!("[{}]", cells.join(","))
                    })
                    .collect();
                format!("{{\"instances\": [{}]}}", instances.join(",")).into_bytes()
            } else {
                rows.iter()
                    .map(|r| r.join(&b','))
                    .collect::<Vec<_>>()
                    .join(&b'\n')
            }
        })
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>().prop_map(|v| serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)),
        any::<i64>().prop_map(Value::from),
        number_text().prop_map(Value::String),
        garbage_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 96, 12, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..12).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{1,12}", inner, 0..12)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_instance(features: &[String]) -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let names: Vec<String> = features.to_vec();
    let n = features.len();
    let number = prop_oneof![
        4 => any::<f64>().prop_map(|v| serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)),
        1 => number_text().prop_map(Value::String),
        1 => Just(Value::Null),
    ];
    prop_oneof![
        prop::collection::vec(number.clone(), n).prop_map(Value::Array),
        prop::collection::vec(number, n)
            .prop_map(move |values| { Value::Object(names.iter().cloned().zip(values).collect()) }),
        json_value(),
    ]
}

fn json_body(features: &[String]) -> impl Strategy<Value = Vec<u8>> {
    let instances = || prop::collection::vec(json_instance(features), 0..8);
    prop_oneof![
        instances().prop_map(|list| serde_json::json!({ "instances": list }).to_string().into_bytes()),
        instances().prop_map(|list| serde_json::Value::Array(list).to_string().into_bytes()),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        // Truncated or spliced JSON.
        (json_value(), any::<prop::sample::Index>()).prop_map(|(v, cut)| {
            let text = v.to_string().into_bytes();
            text[..cut.index(text.len() + 1)].to_vec()
        }),
    ]
}

fn json_lines_body(features: &[String]) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(json_instance(features), 0..8).prop_map(|lines| {
        lines
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes()
    })
}

const CONTENT_TYPES: [Option<&str>; 10] = [
    None,
    Some("text/csv"),
    Some("text/csv; charset=utf-8"),
    Some("application/json"),
    Some("application/jsonlines"),
    Some("application/x-jsonlines"),
    Some("text/plain"),
    Some("application/json; charset=latin1"),
    Some("multipart/form-data; boundary=x"),
    Some("*/*"),
];

const ACCEPTS: [Option<&str>; 7] = [
    None,
    Some("application/json"),
    Some("text/csv"),
    Some("application/jsonlines"),
    Some("*/*"),
    Some("text/html"),
    Some("text/csv;q=0, application/json;q=0.5"),
];

fn hostile(features: &[String], lines: &[String]) -> impl Strategy<Value = Hostile> {
    let body = prop_oneof![
        3 => real_rows_body(lines, false).prop_map(|b| (Some("text/csv"), b)),
        1 => real_rows_body(lines, true).prop_map(|b| (Some("application/json"), b)),
        3 => csv_body(features).prop_map(|b| (Some("text/csv"), b)),
        3 => json_body(features).prop_map(|b| (Some("application/json"), b)),
        1 => json_lines_body(features).prop_map(|b| (Some("application/jsonlines"), b)),
        2 => prop::collection::vec(any::<u8>(), 0..4096).prop_map(|b| (Some("text/csv"), b)),
    ];
    (
        body,
        prop::sample::select(CONTENT_TYPES.to_vec()),
        any::<u8>(),
        prop::sample::select(ACCEPTS.to_vec()),
    )
        .prop_map(|((matching, body), other, pick, accept)| Hostile {
            // One request in five gets a content type chosen at random, often the wrong one.
            content_type: if pick.is_multiple_of(5) { other } else { matching },
            accept,
            body,
        })
}

// ---------------------------------------------------------------------------------------------
// Fixed cases

/// A named request, or a client behaviour, that a generator would rarely produce.
fn fixed_cases(server: &Server) -> Vec<(&'static str, Vec<u8>)> {
    let trained = trained();
    let n = trained.features.len();
    let csv = |body: &[u8]| invocation(server.addr, &[("Content-Type", "text/csv")], body);
    let json = |body: &[u8]| invocation(server.addr, &[("Content-Type", "application/json")], body);
    let row = |cells: &[&str]| {
        (0..n)
            .map(|i| cells[i % cells.len()])
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut commas_6mb = vec![b','; MAX_BODY];
    commas_6mb[MAX_BODY - 1] = b'\n';
    let long_list = format!("[[{}1]]", "1,".repeat((MAX_BODY - 8) / 2));
    let deep = format!("{}{}", "[".repeat(MAX_BODY / 2), "]".repeat(MAX_BODY / 2));
    let valid_rows = trained.lines.join("\n");
    vec![
        ("empty body", csv(b"")),
        ("blank body", csv(b" \r\n\n\t")),
        ("empty JSON body", json(b"")),
        ("a million commas", csv(",".repeat(1_000_000).as_bytes())),
        ("6 MB of commas", csv(&commas_6mb)),
        ("6 MB JSON list", json(long_list.as_bytes())),
        ("6 MB of brackets", json(deep.as_bytes())),
        ("6 MB of invalid UTF-8", csv(&vec![0xFF; MAX_BODY])),
        (
            "NaN and inf rows",
            csv(row(&["nan", "inf", "-Infinity", "NaN", ""]).as_bytes()),
        ),
        (
            "extreme numbers",
            csv(row(&["1e308", "-1e308", "5e-324", "1e309", "-0", "99999999999999999999"]).as_bytes()),
        ),
        ("3000 real rows", csv(valid_rows.as_bytes())),
        (
            "3000 real rows, CSV answer",
            invocation(
                server.addr,
                &[("Content-Type", "text/csv"), ("Accept", "text/csv")],
                valid_rows.as_bytes(),
            ),
        ),
        (
            "wrong content type, 6 MB body",
            invocation(
                server.addr,
                &[("Content-Type", "image/png")],
                &vec![b'1'; MAX_BODY],
            ),
        ),
        (
            "chunked body",
            invocation(
                server.addr,
                &[("Content-Type", "text/csv"), ("Transfer-Encoding", "chunked")],
                format!(
                    "{:x}\r\n{}\r\n0\r\n\r\n",
                    trained.lines[0].len(),
                    trained.lines[0]
                )
                .as_bytes(),
            ),
        ),
        (
            "malformed chunked body",
            invocation(
                server.addr,
                &[("Content-Type", "text/csv"), ("Transfer-Encoding", "chunked")],
                b"zz\r\n1,2\r\n0\r\n\r\n",
            ),
        ),
    ]
}

/// Declares 6 MB + 1 and sends no body: refused on the headers alone.
fn declared_too_large(server: &Server) -> Result<Answer, String> {
    let mut stream = connect(server.addr);
    let head = format!(
        "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
        MAX_BODY + 1
    );
    exchange(&mut stream, head.as_bytes()).map_err(|e| e.to_string())
}

/// Sends half of its declared body and waits: answered 408 at the body timeout.
fn stalled_body(server: &Server) -> Result<Answer, String> {
    let mut stream = connect(server.addr);
    let head =
        "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 100\r\n\r\n1,2,3";
    exchange(&mut stream, head.as_bytes()).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------

#[test]
fn every_hostile_request_gets_an_answer_with_a_reason_and_the_server_survives() {
    let trained = trained();
    let mut server = Server::start(trained, ENV);
    let cases = support::env_number("HOSTILE_CASES", DEFAULT_CASES);
    let started = Instant::now();
    let statuses: Mutex<BTreeMap<u16, u64>> = Mutex::default();
    let count = |answer: &Answer| *statuses.lock().unwrap().entry(answer.status).or_default() += 1;

    let mut fixed = 0;
    for (what, request) in fixed_cases(&server) {
        let answer = send(&server, &request).unwrap_or_else(|e| panic!("{what}: {e}"));
        check(what, &answer).unwrap();
        count(&answer);
        fixed += 1;
        assert!(
            server.alive(),
            "the server exited after {what}: {}",
            server.log_text()
        );
    }
    for (what, answer, status) in [
        ("declared 6 MB + 1", declared_too_large(&server), 413),
        ("stalled body", stalled_body(&server), 408),
    ] {
        let answer = answer.unwrap_or_else(|e| panic!("{what}: {e}"));
        check(what, &answer).unwrap();
        assert_eq!(answer.status, status, "{what}: {:?}", answer.reason());
        count(&answer);
        fixed += 1;
    }

    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let generated = std::cell::Cell::new(0u64);
    let server_cell = std::cell::RefCell::new(&mut server);
    let result = runner.run(&hostile(&trained.features, &trained.lines), |case| {
        generated.set(generated.get() + 1);
        let mut server = server_cell.borrow_mut();
        let answer = send(&server, &request_of(&server, &case)).map_err(TestCaseError::fail)?;
        check("generated request", &answer).map_err(TestCaseError::fail)?;
        count(&answer);
        if !server.alive() {
            return Err(TestCaseError::fail(format!(
                "the server exited: {}",
                server.log_text()
            )));
        }
        if generated.get().is_multiple_of(50) && server.ping() != Some(200) {
            return Err(TestCaseError::fail("/ping stopped answering 200"));
        }
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
    assert!(server.alive(), "the server exited: {}", server.log_text());
    assert_eq!(server.ping(), Some(200));
    println!(
        "hostile inputs tried: {} ({} generated, {fixed} fixed), crashes: 0, answers by status: {:?}, {:.1} s",
        generated.get() + fixed,
        generated.get(),
        statuses.lock().unwrap(),
        started.elapsed().as_secs_f64()
    );
}

/// The hostile 6 MB bodies of the memory test: shapes the prescan refuses while they stream in.
fn hostile_6mb_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let mut commas = vec![b','; MAX_BODY];
    commas[0] = b'1';
    let long_list = format!("[[{}1]]", "1,".repeat((MAX_BODY - 8) / 2)).into_bytes();
    let deep = format!("{}{}", "[".repeat(MAX_BODY / 2), "]".repeat(MAX_BODY / 2)).into_bytes();
    let wide_lines = format!("[{}1]\n", "0,".repeat(MAX_BODY / 2 - 4)).into_bytes();
    vec![
        ("text/csv", commas),
        ("application/json", long_list),
        ("application/json", deep),
        ("application/jsonlines", wide_lines),
    ]
}

#[test]
fn sixteen_concurrent_hostile_6_mb_bodies_grow_the_server_by_at_most_four_bodies() {
    const CLIENTS: usize = 16;
    const BOUND_KIB: u64 = 4 * MAX_BODY as u64 / 1024;
    let trained = trained();
    let mut server = Server::start(trained, ENV);
    let bodies = hostile_6mb_bodies();
    let requests: Vec<Vec<u8>> = (0..CLIENTS)
        .map(|i| {
            let (content_type, body) = &bodies[i % bodies.len()];
            invocation(server.addr, &[("Content-Type", content_type)], body)
        })
        .collect();
    // Warm up: every kind once, then a few normal requests, so that lazily grown buffers are grown.
    for request in requests.iter().take(bodies.len()) {
        check("warm-up", &send(&server, request).unwrap()).unwrap();
    }
    let normal = invocation(
        server.addr,
        &[("Content-Type", "text/csv")],
        trained.lines[..100].join("\n").as_bytes(),
    );
    for _ in 0..5 {
        assert_eq!(send(&server, &normal).unwrap().status, 200);
    }

    let before = server.memory_kib("VmRSS");
    let reset = server.reset_peak_memory();
    let peak_sampler = Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pid) = (Arc::clone(&peak_sampler), Arc::clone(&sampling), server.pid());
        std::thread::spawn(move || {
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(rss) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find_map(|l| l.strip_prefix("VmRSS:"))
                            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                    })
                {
                    peak.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };

    let barrier = Arc::new(Barrier::new(CLIENTS));
    let addr = server.addr;
    let started = Instant::now();
    let answers: Vec<Answer> = std::thread::scope(|scope| {
        let handles: Vec<_> = requests
            .iter()
            .map(|request| {
                let barrier = Arc::clone(&barrier);
                scope.spawn(move || {
                    let mut stream = connect(addr);
                    barrier.wait();
                    stream.write_all(request).unwrap();
                    support::read_answer(&mut stream).unwrap()
                })
            })
            .collect();
        // `/ping` stays 200 while they are in flight.
        assert_eq!(server.ping(), Some(200));
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();

    let peak = if reset {
        server
            .memory_kib("VmHWM")
            .max(peak_sampler.load(std::sync::atomic::Ordering::Relaxed))
    } else {
        peak_sampler.load(std::sync::atomic::Ordering::Relaxed)
    };
    let after = server.memory_kib("VmRSS");
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for answer in &answers {
        check("hostile 6 MB body", answer).unwrap();
        assert!(answer.status >= 400, "a hostile body was accepted");
        *statuses.entry(answer.status).or_default() += 1;
    }
    assert!(server.alive());
    assert_eq!(server.ping(), Some(200));
    let growth = peak.saturating_sub(before);
    println!(
        "{CLIENTS} concurrent hostile 6 MB bodies ({}): answers {statuses:?} in {:.2} s; server RSS \
         {:.1} MiB before, peak {:.1} MiB (growth {:.1} MiB, bound {:.1} MiB; peak from {}), {:.1} MiB after",
        bodies.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(", "),
        elapsed.as_secs_f64(),
        support::mib(before),
        support::mib(peak),
        support::mib(growth),
        support::mib(BOUND_KIB),
        if reset {
            "VmHWM after a reset"
        } else {
            "sampled VmRSS"
        },
        support::mib(after),
    );
    assert!(
        growth <= BOUND_KIB,
        "the server grew by {:.1} MiB under {CLIENTS} hostile bodies (bound {:.1} MiB)",
        support::mib(growth),
        support::mib(BOUND_KIB)
    );
}

/// Runs `requests` at once, each on its own connection, and returns the answers with the server's
/// peak memory growth over its resident size before (KiB).
fn burst(server: &Server, requests: &[Vec<u8>]) -> (Vec<Answer>, u64) {
    let before = server.memory_kib("VmRSS");
    assert!(
        server.reset_peak_memory(),
        "cannot reset the peak memory of the server"
    );
    let barrier = Arc::new(Barrier::new(requests.len()));
    let addr = server.addr;
    let answers = std::thread::scope(|scope| {
        let handles: Vec<_> = requests
            .iter()
            .map(|request| {
                let barrier = Arc::clone(&barrier);
                scope.spawn(move || {
                    let mut stream = connect(addr);
                    barrier.wait();
                    stream.write_all(request).unwrap();
                    support::read_answer(&mut stream).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    (answers, server.memory_kib("VmHWM").saturating_sub(before))
}

/// Bodies the prescan lets through (real rows up to 6 MB, the last row bad) are buffered and parsed:
/// the in-flight limit bounds how many at once, the rest get 503 with a reason.
#[test]
fn the_in_flight_limit_bounds_memory_for_bodies_that_pass_the_prescan() {
    const CLIENTS: usize = 16;
    const IN_FLIGHT: u64 = 4;
    let trained = trained();
    let mut server = Server::start(trained, &[("MODEL_IMAGE_MAX_IN_FLIGHT", "4")]);
    let mut body = Vec::with_capacity(MAX_BODY);
    'fill: loop {
        for line in &trained.lines {
            if body.len() + line.len() + 100 > MAX_BODY {
                break 'fill;
            }
            body.extend_from_slice(line.as_bytes());
            body.push(b'\n');
        }
    }
    body.extend_from_slice(b"not a row\n");
    let request = invocation(server.addr, &[("Content-Type", "text/csv")], &body);
    let warm = send(&server, &request).unwrap();
    assert_eq!(warm.status, 400, "{:?}", warm.reason());
    let (answers, growth) = burst(&server, &vec![request; CLIENTS]);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for answer in &answers {
        check("6 MB of rows with a bad last row", answer).unwrap();
        *statuses.entry(answer.status).or_default() += 1;
    }
    assert!(server.alive());
    // Each admitted request holds its body, a chunk of features and its scores: under two bodies.
    let bound = IN_FLIGHT * 2 * MAX_BODY as u64 / 1024;
    println!(
        "{CLIENTS} concurrent 6 MB bodies of {} real rows (last one bad), at most {IN_FLIGHT} in flight: \
         answers {statuses:?}; server peak growth {:.1} MiB (bound {:.1} MiB)",
        body.iter().filter(|&&b| b == b'\n').count(),
        support::mib(growth),
        support::mib(bound)
    );
    assert!(statuses.get(&400).is_some_and(|&n| n >= 1));
    assert!(growth <= bound, "grew {:.1} MiB", support::mib(growth));
}
