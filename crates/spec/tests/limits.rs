//! Regression tests for the limits that bound reading a deploy.yaml (issue: "aliases are capped by
//! node count, not by size; deep nesting may overflow the stack; there is no file-size cap, `-f
//! /dev/zero` never returns"). Each test would hang, overflow the stack or exhaust memory without
//! its limit; none measures time (the tests just must return).

use std::fs;
use std::io::Write;
use std::path::Path;

use spec::{Kind, MAX_ALIAS_BYTES, MAX_FILE_BYTES, MAX_NESTING};

const VALID: &str = "version: 1\nname: iot-anomaly\ntarget: aws\ndata:\n  train: s3://iot-data/train/\n";

fn only(diagnostics: &spec::Diagnostics) -> &spec::Diagnostic {
    assert_eq!(diagnostics.len(), 1, "{diagnostics}");
    diagnostics.iter().next().unwrap()
}

/// Peak resident memory of this test process so far, from `/proc/self/status` (Linux).
#[cfg(target_os = "linux")]
fn peak_rss_bytes() -> usize {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// The case: a 1 MB anchored scalar aliased 10,000 times is 10 GB if expanded. It is
/// refused at the first alias, before that alias is copied: the peak memory of the whole parse
/// stays within a few times the file's size.
#[test]
fn a_large_scalar_aliased_ten_thousand_times_is_refused_without_expanding_it() {
    let source = format!(
        "version: 1\nname: &x {}\ntags: [{}]\n",
        "x".repeat(1_000_000),
        vec!["*x"; 10_000].join(",")
    );
    assert!(
        source.len() <= MAX_FILE_BYTES,
        "within the file limit, so the alias limit decides"
    );
    #[cfg(target_os = "linux")]
    let before = peak_rss_bytes();
    let err = spec::parse(&source, "deploy.yaml", Path::new(".")).unwrap_err();
    #[cfg(target_os = "linux")]
    {
        // Generous, as other tests of this binary run at the same time; expanding would take 10 GB.
        let grown = peak_rss_bytes().saturating_sub(before);
        assert!(grown < 256 << 20, "peak memory grew by {grown} bytes");
    }
    let d = only(&err);
    assert_eq!(d.kind, Kind::Limit);
    assert_eq!((d.line(), d.column()), (Some(3), Some(8)), "the first `*x`");
    assert!(d.message.contains("1 MiB"), "{d}");
    assert!(d.help.is_some());
}

#[test]
fn aliases_within_the_limit_are_expanded() {
    // 16 aliases of a 32 KiB value: 17 copies of it (with the anchor's) stay under 1 MiB. The keys
    // are unknown, so only those are reported.
    let value = "v".repeat(MAX_ALIAS_BYTES / 32);
    let aliases = vec!["*v"; 16].join(", ");
    let source = format!("{VALID}extra: &v {value}\nmore: [{aliases}]\n");
    let err = spec::parse(&source, "deploy.yaml", Path::new(".")).unwrap_err();
    let kinds: Vec<Kind> = err.iter().map(|d| d.kind).collect();
    assert_eq!(kinds, [Kind::UnknownKey, Kind::UnknownKey], "{err}");

    let tags: String = (0..16).map(|i| format!("  t{i}: *v\n")).collect();
    let source = format!("{VALID}tags:\n  team: &v {}\n{tags}", "v".repeat(200));
    let spec = spec::parse(&source, "deploy.yaml", Path::new(".")).unwrap();
    assert_eq!(spec.tags.len(), 17);
}

/// 100,000 levels of `[`, `{` and block mappings and sequences: each is refused with a line and
/// column; none overflows the stack (the check runs on the event stream, without recursion).
#[test]
fn hundred_thousand_levels_of_nesting_are_refused_without_overflowing_the_stack() {
    let levels = 100_000;
    let block_mappings: String = (0..1_440).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
    let cases = [
        format!("version: 1\ndata: {}", "[".repeat(levels)),
        format!("version: 1\ndata: {}", "{a: ".repeat(levels)),
        format!("version: 1\ndata:\n{}x\n", "- ".repeat(levels)),
        "[\n".repeat(levels),
        // About as deep as block mappings get in 1 MiB: 1,440 levels of ever deeper indentation.
        block_mappings,
    ];
    for source in cases {
        assert!(source.len() <= MAX_FILE_BYTES);
        let err = spec::parse(&source, "deploy.yaml", Path::new(".")).unwrap_err();
        let d = only(&err);
        assert_eq!(d.kind, Kind::Limit, "{d}");
        assert!(
            d.message
                .starts_with(&format!("lists and mappings nest more than {MAX_NESTING} deep")),
            "{d}"
        );
        assert!(d.location.is_some() && d.help.is_some(), "{d}");
    }
}

#[test]
fn nesting_up_to_the_limit_is_accepted() {
    // The top-level mapping and `tags` are two levels; the rest is a list nested to the limit, in an
    // unknown key so that only its shape matters.
    let depth = MAX_NESTING - 1;
    let source = format!("{VALID}extra: {}{}\n", "[".repeat(depth), "]".repeat(depth));
    let err = spec::parse(&source, "deploy.yaml", Path::new(".")).unwrap_err();
    assert_eq!(only(&err).kind, Kind::UnknownKey, "{err}");
}

/// The file limit is on the bytes read: a file of exactly `MAX_FILE_BYTES` loads, one byte more
/// is refused where it crosses the limit.
#[test]
fn files_are_read_up_to_the_limit_and_refused_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deploy.yaml");
    let mut text = VALID.to_string();
    while text.len() < MAX_FILE_BYTES {
        let line = "# padding\n";
        let room = MAX_FILE_BYTES - text.len();
        text.push_str(if room >= line.len() { line } else { &"#"[..1] });
    }
    assert_eq!(text.len(), MAX_FILE_BYTES);
    fs::write(&path, &text).unwrap();
    spec::load(&path).unwrap();

    text.push('#');
    fs::write(&path, &text).unwrap();
    let err = spec::load(&path).unwrap_err();
    let d = only(&err);
    assert_eq!(d.kind, Kind::Limit);
    let line = 1 + text[..MAX_FILE_BYTES].matches('\n').count();
    assert_eq!(d.line(), Some(line));
    assert!(
        err.to_string()
            .starts_with(&format!("{}:{line}:", path.display())),
        "the file is named: {err}"
    );
    assert!(d.message.contains("larger than 1 MiB"), "{d}");
}

/// Regression: `-f /dev/zero` never returned. A device is refused before it is read.
#[cfg(target_os = "linux")]
#[test]
fn dev_zero_is_refused_unread() {
    let err = spec::load(Path::new("/dev/zero")).unwrap_err();
    let d = only(&err);
    assert_eq!((d.kind, d.location), (Kind::Io, None));
    assert_eq!(
        err.to_string(),
        "/dev/zero: `/dev/zero` is a character device, not a file\n  help: point `--file` (`-f`) at a \
         deploy.yaml file; only files and pipes are read\n"
    );
}

#[test]
fn a_directory_is_refused_with_the_file_inside_it_suggested() {
    let dir = tempfile::tempdir().unwrap();
    let err = spec::load(dir.path()).unwrap_err();
    let d = only(&err);
    assert_eq!((d.kind, d.location), (Kind::Io, None));
    let name = dir.path().display();
    assert_eq!(d.message, format!("`{name}` is a directory, not a file"));
    assert_eq!(
        d.help.as_deref(),
        Some(format!("point `--file` at the deploy.yaml inside it: `-f {name}/deploy.yaml`").as_str())
    );
}

/// A pipe that never ends (`-f <(yes)`) is read up to the limit and refused; the writer then sees
/// the pipe closed. A pipe that does end is read like a file.
#[cfg(target_os = "linux")]
#[test]
fn pipes_are_read_within_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("deploy.yaml");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());

    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut pipe = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            let chunk = "# comment\n".repeat(1000);
            // Ends when the reader closes its end (EPIPE): the test harness ignores SIGPIPE.
            while pipe.write_all(chunk.as_bytes()).is_ok() {}
        })
    };
    let err = spec::load(&fifo).unwrap_err();
    writer.join().unwrap();
    let d = only(&err);
    assert_eq!(d.kind, Kind::Limit, "{d}");
    assert!(d.location.is_some());

    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::write(&fifo, VALID).unwrap())
    };
    let spec = spec::load(&fifo).unwrap();
    writer.join().unwrap();
    assert_eq!(spec.name.as_str(), "iot-anomaly");
}

#[test]
fn text_that_is_not_utf8_is_refused_where_it_stops_being_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deploy.yaml");
    fs::write(&path, b"version: 1\nname: caf\xe9\n").unwrap();
    let err = spec::load(&path).unwrap_err();
    let d = only(&err);
    assert_eq!((d.kind, d.line(), d.column()), (Kind::Syntax, Some(2), Some(10)));
    assert!(d.message.contains("not UTF-8"), "{d}");
}
