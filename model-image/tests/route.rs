//! `model-image route`, the canary router, over real sockets: two `model-image serve` processes on the
//! same small model (or a green where nothing listens) behind a router process, with traffic sent
//! through it while it bakes. Every wait is a poll of the status file or of answers with a generous
//! deadline; nothing asserts on timing (the tests run on 2 shared cores).

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use contract::rollout::{AlarmMetric, AlarmRule, AlarmState, RolloutPhase, RolloutPlan, RolloutStatus};
use support::{Answer, MAX_BODY, Server, connect, exchange, invocation, trained};

const DEADLINE: Duration = Duration::from_secs(120);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The default-like alarms, with a latency threshold no loaded CI machine reaches by accident.
fn default_alarms() -> Vec<AlarmRule> {
    vec![
        AlarmRule {
            name: "iot-invocation-5xx-errors".to_owned(),
            metric: AlarmMetric::Invocation5xxErrors,
            threshold: 1,
            datapoints: 2,
            periods: 3,
        },
        AlarmRule {
            name: "iot-model-latency".to_owned(),
            metric: AlarmMetric::ModelLatency,
            threshold: 10_000_000,
            datapoints: 2,
            periods: 3,
        },
    ]
}

fn plan(blue: SocketAddr, green: SocketAddr, alarms: Vec<AlarmRule>) -> RolloutPlan {
    RolloutPlan {
        blue: Some(blue),
        green,
        steps: vec![50, 100],
        bake_ms: 1500,
        period_ms: 500,
        alarms,
    }
}

/// A running `model-image route`, killed on drop.
struct Router {
    child: Child,
    addr: SocketAddr,
    status: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Router {
    fn start(plan: &RolloutPlan) -> Router {
        let dir = tempfile::tempdir().unwrap();
        let plan_path = dir.path().join("plan.json");
        std::fs::write(&plan_path, serde_json::to_vec_pretty(plan).unwrap()).unwrap();
        let status = dir.path().join("status.json");
        let log = dir.path().join("route.log");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new(support::BIN)
            .args(["route", "--listen", &addr.to_string(), "--rollout"])
            .arg(&plan_path)
            .arg("--status")
            .arg(&status)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut router = Router {
            child,
            addr,
            status,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + DEADLINE;
        while !(router.status.exists() && std::net::TcpStream::connect(addr).is_ok()) {
            assert!(
                matches!(router.child.try_wait(), Ok(None)),
                "the router exited: {}",
                router.log_text()
            );
            assert!(Instant::now() < deadline, "the router did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        router
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn status(&self) -> RolloutStatus {
        let text = std::fs::read_to_string(&self.status).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad status {text}: {e}"))
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Polls the status until `done` holds for it.
    fn wait_for(&self, what: &str, done: impl Fn(&RolloutStatus) -> bool) -> RolloutStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let status = self.status();
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not reached, last status {status:?}\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn invoke(&self, line: &str) -> Answer {
        let mut stream = connect(self.addr);
        exchange(
            &mut stream,
            &invocation(self.addr, &[("Content-Type", "text/csv")], line.as_bytes()),
        )
        .unwrap()
    }

    fn get(&self, request: &str) -> Answer {
        let mut stream = connect(self.addr);
        exchange(&mut stream, request.as_bytes()).unwrap()
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends single-row requests through the router from one thread until stopped; returns the answers.
struct Traffic {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Answer>>,
}

impl Traffic {
    fn start(addr: SocketAddr, lines: &'static [String]) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                let mut stream = connect(addr);
                let mut answers = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let line = &lines[i % lines.len()];
                    i += 1;
                    let request = invocation(addr, &[("Content-Type", "text/csv")], line.as_bytes());
                    let answer = match exchange(&mut stream, &request) {
                        Ok(answer) => answer,
                        Err(_) => {
                            stream = connect(addr);
                            exchange(&mut stream, &request).unwrap()
                        }
                    };
                    answers.push(answer);
                    std::thread::sleep(Duration::from_millis(5));
                }
                answers
            }
        });
        Traffic { stop, thread }
    }

    fn stop(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn backend(answer: &Answer) -> &str {
    answer.header("x-canary-backend").unwrap_or("none")
}

#[test]
fn a_healthy_green_takes_traffic_step_by_step_and_completes() {
    let trained = trained();
    let blue = Server::start(trained, &[]);
    let green = Server::start(trained, &[]);
    let router = Router::start(&plan(blue.addr, green.addr, default_alarms()));
    assert_eq!(router.status().phase, RolloutPhase::Baking);
    let traffic = Traffic::start(router.addr, &trained.lines[..200]);
    let status = router.wait_for("completed", |s| s.phase == RolloutPhase::Completed);
    let answers = traffic.stop();
    assert!(
        status.requests.blue > 0 && status.requests.green > 0,
        "{status:?}"
    );
    assert_eq!(status.green_percent, 100);
    assert!(status.rolled_back_by.is_none());
    assert!(
        status.alarms.iter().all(|a| a.state == AlarmState::Ok),
        "{status:?}"
    );
    assert!(answers.iter().all(|a| a.status == 200), "all answered 200");
    assert!(answers.iter().any(|a| backend(a) == "blue"));
    assert!(answers.iter().any(|a| backend(a) == "green"));

    // Completed: everything goes to green, and the answers are serve's own.
    for line in &trained.lines[..20] {
        let through = router.invoke(line);
        assert_eq!(through.status, 200);
        assert_eq!(backend(&through), "green");
        let mut stream = connect(blue.addr);
        let direct = exchange(
            &mut stream,
            &invocation(blue.addr, &[("Content-Type", "text/csv")], line.as_bytes()),
        )
        .unwrap();
        assert_eq!(through.body, direct.body);
        assert_eq!(through.header("content-type"), direct.header("content-type"));
    }
    let ping = router.get("GET /ping HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(ping.status, 200);
    let log = router.log_text();
    assert!(log.contains("rollout: completed"), "{log}");
}

#[test]
fn a_slow_green_trips_the_latency_alarm_and_traffic_returns_to_blue() {
    let trained = trained();
    let blue = Server::start(trained, &[]);
    let green = Server::start(trained, &[]);
    let mut alarms = default_alarms();
    alarms[1].threshold = 1;
    alarms[1].datapoints = 1;
    alarms[1].periods = 1;
    let router = Router::start(&plan(blue.addr, green.addr, alarms));
    let traffic = Traffic::start(router.addr, &trained.lines[..200]);
    let status = router.wait_for("rolled back", |s| s.phase == RolloutPhase::RolledBack);
    traffic.stop();
    let by = status.rolled_back_by.as_ref().unwrap();
    assert_eq!(by.name, "iot-model-latency");
    assert!(
        by.reason.starts_with("Threshold Crossed: ")
            && by.reason.contains("greater than the threshold (1.0)"),
        "{}",
        by.reason
    );
    assert_eq!(status.green_percent, 0);
    assert_eq!(status.alarms[1].state, AlarmState::Alarm);

    // Afterwards every request goes to blue and green's count stays put.
    for line in &trained.lines[..10] {
        assert_eq!(backend(&router.invoke(line)), "blue");
    }
    let before = router.wait_for("counts written", |s| s.requests.blue >= status.requests.blue + 10);
    for line in &trained.lines[..50] {
        let answer = router.invoke(line);
        assert_eq!(answer.status, 200);
        assert_eq!(backend(&answer), "blue");
    }
    let after = router.wait_for("counts written", |s| s.requests.blue >= before.requests.blue + 50);
    assert_eq!(after.requests.green, before.requests.green);
    assert_eq!(after.phase, RolloutPhase::RolledBack);
    let log = router.log_text();
    assert!(log.contains("rolled back"), "{log}");
}

#[test]
fn an_unreachable_green_answers_502_trips_the_error_alarm_and_blue_keeps_serving() {
    let trained = trained();
    let blue = Server::start(trained, &[]);
    let nowhere = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut router = Router::start(&plan(blue.addr, nowhere, default_alarms()));
    let traffic = Traffic::start(router.addr, &trained.lines[..200]);
    let status = router.wait_for("rolled back", |s| s.phase == RolloutPhase::RolledBack);
    let answers = traffic.stop();
    let by = status.rolled_back_by.as_ref().unwrap();
    assert_eq!(by.name, "iot-invocation-5xx-errors", "{status:?}");
    assert!(
        by.reason.contains("greater than or equal to the threshold (1.0)"),
        "{}",
        by.reason
    );
    let failed: Vec<&Answer> = answers.iter().filter(|a| a.status == 502).collect();
    assert!(!failed.is_empty(), "green's requests answered 502");
    for answer in &failed {
        assert_eq!(backend(answer), "green");
        let reason = answer.reason().unwrap();
        assert!(reason.contains("could not be reached"), "{reason}");
    }
    assert!(
        answers
            .iter()
            .filter(|a| backend(a) == "blue")
            .all(|a| a.status == 200)
    );
    for line in &trained.lines[..20] {
        let answer = router.invoke(line);
        assert_eq!((answer.status, backend(&answer)), (200, "blue"));
    }
    // Only blue takes traffic now, and it is healthy.
    assert_eq!(router.get("GET /ping HTTP/1.1\r\nHost: x\r\n\r\n").status, 200);
    assert!(router.alive());
}

#[test]
fn hostile_requests_to_the_router_get_4xx_with_a_reason_and_it_keeps_serving() {
    let trained = trained();
    let blue = Server::start(trained, &[]);
    let green = Server::start(trained, &[]);
    let mut router = Router::start(&plan(blue.addr, green.addr, default_alarms()));
    let chunked_too_large = {
        let mut request =
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        let chunk = vec![b'1'; 1024 * 1024];
        for _ in 0..7 {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(&chunk);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        request
    };
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unknown path", b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 404),
        (
            "POST elsewhere",
            b"POST /invocations/x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec(),
            404,
        ),
        ("GET /invocations", b"GET /invocations HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 405),
        ("DELETE /ping", b"DELETE /ping HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 405),
        (
            "declared 6 MB + 1",
            format!(
                "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
                MAX_BODY + 1
            )
            .into_bytes(),
            413,
        ),
        ("7 MB chunked", chunked_too_large, 413),
    ];
    for (what, request, expected) in cases {
        let mut stream = connect(router.addr);
        let answer = exchange(&mut stream, &request).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(answer.status, expected, "{what}: {:?}", answer.reason());
        assert!(answer.reason().is_some(), "{what}: no reason");
        assert!(router.alive(), "{what}: the router exited: {}", router.log_text());
    }
    // A malformed request line: hyper answers 400 and closes the connection.
    let mut stream = connect(router.addr);
    let answer = exchange(&mut stream, b"NOT HTTP AT ALL\r\n\r\n");
    if let Ok(answer) = answer {
        assert!((400..500).contains(&answer.status), "{}", answer.status);
    }
    // Bad bodies are the backend's to judge: its 4xx comes back as it is.
    let answer = router.invoke("not,a,row");
    assert_eq!(answer.status, 400, "{:?}", answer.reason());
    assert!(answer.reason().is_some());
    // Still serving.
    assert!(router.alive());
    assert_eq!(router.get("GET /ping HTTP/1.1\r\nHost: x\r\n\r\n").status, 200);
    assert_eq!(router.invoke(&trained.lines[0]).status, 200);
    // Hostile requests are not green's 5xx: no rollback.
    assert_ne!(router.status().phase, RolloutPhase::RolledBack);
}

#[test]
fn a_bad_plan_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let plan_path = dir.path().join("plan.json");
    std::fs::write(
        &plan_path,
        r#"{"blue": "127.0.0.1:1", "green": "127.0.0.1:2", "steps": [50],
            "bake_ms": 10, "period_ms": 10, "alarms": []}"#,
    )
    .unwrap();
    let output = Command::new(support::BIN)
        .args(["route", "--listen", "127.0.0.1:0", "--rollout"])
        .arg(&plan_path)
        .arg("--status")
        .arg(dir.path().join("status.json"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("steps must end at 100"), "{stderr}");
}
