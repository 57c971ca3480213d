//! An asynchronous endpoint's request, through the real `model-image serve` over loopback: with
//! `MODEL_IMAGE_MAX_PAYLOAD_MB=1024`, a CSV body far larger than SageMaker's realtime 6 MB (generated
//! as it is sent, never held by the test) is spooled, scored and answered from temporary files.
//! Every prediction must equal the same row's in a small request, the server's peak memory must stay
//! far below the body's size, and its spool directory must stay without a name in it and end with
//! no file of the server open in it.
//!
//! Reduced form under `cargo test`: a 210 MB body, about 20 s in a debug build on 2 cores. The size
//! is `LARGE_PAYLOAD_MB`; near the asynchronous limit, with a release server (18 s on 2 cores):
//! `cargo build --release -p model-image && MODEL_IMAGE_BIN=$PWD/target/release/model-image
//! LARGE_PAYLOAD_MB=1000 cargo test -p model-image --test large_payload -- --nocapture`.

mod support;

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::{Server, connect, invocation, mib, read_answer, read_head, trained};

/// The body's size in the reduced form, MB.
const DEFAULT_PAYLOAD_MB: usize = 200;

/// The server's peak resident memory may be at most this while it takes the body (MiB). Measured on
/// 2 cores: 25 MiB for the 210 MB body in a debug build (18 MiB before it: the model; then a block
/// read back and a chunk of rows), 19 MiB for a 1,049 MB body in release; the body alone would be
/// 200 MiB.
const MAX_PEAK_MIB: f64 = 64.0;

/// The length of `rows` rows of `lines`, cycled, as CSV text (what [`write_csv`] writes).
fn csv_length(lines: &[String], rows: usize) -> usize {
    let line_bytes = |n: usize| lines[..n].iter().map(|l| l.len() + 1).sum::<usize>();
    rows / lines.len() * line_bytes(lines.len()) + line_bytes(rows % lines.len())
}

/// Writes `rows` rows of `lines`, cycled, as CSV text.
fn write_csv(out: &mut impl Write, lines: &[String], rows: usize) -> std::io::Result<()> {
    for i in 0..rows {
        out.write_all(lines[i % lines.len()].as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Samples, until stopped, the most files the server held open in the spool directory and the most
/// names the directory ever had.
struct SpoolWatch {
    stop: Arc<AtomicBool>,
    open: Arc<AtomicUsize>,
    names: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<()>,
}

impl SpoolWatch {
    fn start(server: &Server, dir: PathBuf) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (open, names) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let pid = server.pid();
        let thread = std::thread::spawn({
            let (stop, open, names) = (Arc::clone(&stop), Arc::clone(&open), Arc::clone(&names));
            move || {
                while !stop.load(Ordering::Relaxed) {
                    open.fetch_max(support::open_files_in(pid, &dir), Ordering::Relaxed);
                    names.fetch_max(std::fs::read_dir(&dir).unwrap().count(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        Self {
            stop,
            open,
            names,
            thread,
        }
    }

    /// (most files open, most names)
    fn stop(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        (
            self.open.load(Ordering::Relaxed),
            self.names.load(Ordering::Relaxed),
        )
    }
}

#[test]
fn a_body_far_over_6_mb_is_spooled_and_scored_in_bounded_memory() {
    let trained = trained();
    let spool_dir = tempfile::tempdir().unwrap();
    let spool_path = std::fs::canonicalize(spool_dir.path()).unwrap();
    let spool_text = spool_path.display().to_string();
    let mut server = Server::start(
        trained,
        &[
            ("MODEL_IMAGE_MAX_PAYLOAD_MB", "1024"),
            // What the orchestrator sets for asynchronous endpoints: bodies from S3 take longer.
            ("MODEL_IMAGE_BODY_TIMEOUT", "600"),
            ("MODEL_IMAGE_SPOOL_DIR", spool_text.as_str()),
        ],
    );
    let lines = &trained.lines;

    // The expected answer of every row: all demo rows in one small (in-memory) request.
    let csv_accept = [("Content-Type", "text/csv"), ("Accept", "text/csv")];
    let small = invocation(server.addr, &csv_accept, (lines.join("\n") + "\n").as_bytes());
    let mut stream = connect(server.addr);
    stream.write_all(&small).unwrap();
    let expected = read_answer(&mut stream).unwrap();
    assert_eq!(expected.status, 200, "{:?}", expected.reason());
    let expected: Vec<String> = String::from_utf8(expected.body)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(expected.len(), lines.len());

    let payload_mb = support::env_number("LARGE_PAYLOAD_MB", DEFAULT_PAYLOAD_MB);
    let target = payload_mb * 1024 * 1024;
    let cycle = csv_length(lines, lines.len());
    let rows = target / cycle * lines.len() + lines.len() / 2;
    let length = csv_length(lines, rows);
    assert!(length > 6 * 1024 * 1024 && length <= 1024 * 1024 * 1024);

    let before = server.memory_kib("VmRSS");
    assert!(
        server.reset_peak_memory(),
        "cannot reset the server's peak memory"
    );
    let watch = SpoolWatch::start(&server, spool_path.clone());
    let started = Instant::now();
    let stream = connect(server.addr);
    stream.set_read_timeout(Some(Duration::from_secs(600))).unwrap();
    let head = format!(
        "POST /invocations HTTP/1.1\r\nHost: {}\r\nContent-Type: text/csv\r\nAccept: text/csv\r\n\
         Content-Length: {length}\r\n\r\n",
        server.addr
    );
    let mut writer = BufWriter::with_capacity(1 << 20, stream.try_clone().unwrap());
    writer.write_all(head.as_bytes()).unwrap();
    write_csv(&mut writer, lines, rows).unwrap();
    drop(writer);
    let sent = started.elapsed();

    let mut reader = BufReader::with_capacity(1 << 20, stream);
    let (status, headers) = read_head(&mut reader).unwrap();
    let answered = started.elapsed();
    assert_eq!(status, 200, "{headers:?}");
    let answer_length: usize = support::header(&headers, "content-length")
        .expect("the answer has a Content-Length")
        .parse()
        .unwrap();
    let mut line = String::new();
    let mut read = 0;
    for i in 0..rows {
        line.clear();
        read += reader.read_line(&mut line).unwrap();
        assert_eq!(
            line.trim_end_matches('\n'),
            expected[i % lines.len()],
            "row {}: the spooled answer differs from the small request's",
            i + 1
        );
    }
    assert_eq!(read, answer_length, "the answer is exactly one line per row");
    let received = started.elapsed();
    let peak = server.memory_kib("VmHWM");
    let (most_open, most_names) = watch.stop();

    // The answer's file is closed once the server has sent it (and dropped its body).
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.open_files_in(&spool_path) > 0 {
        assert!(Instant::now() < deadline, "the server still holds spool files");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.alive(), "{}", server.log_text());
    assert_eq!(server.ping(), Some(200));
    println!(
        "{:.1} MB CSV body of {rows} rows, spooled: sent in {:.1} s, answered after {:.1} s, {:.1} MB \
         answer read after {:.1} s; server RSS {:.1} MiB before, peak {:.1} MiB (bound {MAX_PEAK_MIB} MiB); \
         spool files open at most {most_open}, names in the spool directory at most {most_names}",
        length as f64 / 1e6,
        sent.as_secs_f64(),
        answered.as_secs_f64(),
        answer_length as f64 / 1e6,
        received.as_secs_f64(),
        mib(before),
        mib(peak),
    );
    assert_eq!(most_names, 0, "spool files are created without a name");
    assert!(most_open >= 1, "the body was not spooled");
    assert!(
        mib(peak) < MAX_PEAK_MIB,
        "the server's peak memory was {:.1} MiB for a {:.0} MB body",
        mib(peak),
        length as f64 / 1e6
    );
}
