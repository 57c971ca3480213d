//! Reading deploy.yaml's text, bounded: only a regular file or a pipe is read, never more than
//! [`MAX_FILE_BYTES`] plus one byte, and the bytes must be UTF-8 text without control characters.
//! Every refusal is a [`Diagnostic`] naming the file; those about its content also carry the line and
//! column where it went wrong.

use std::fs::{self, File, FileType};
use std::io::{self, Read};
use std::path::Path;

use crate::diagnostic::{Diagnostic, Diagnostics, Kind, Location};
use crate::limits::{MAX_FILE_BYTES, human_bytes};

/// The text of the deploy.yaml at `path`, or why it cannot be read; `file_name` names it in messages.
pub(crate) fn read(path: &Path, file_name: &str) -> Result<String, Diagnostics> {
    let alone = |d: Diagnostic| Diagnostics::new(file_name.to_string(), vec![d]);
    let cannot_read = |e: io::Error| {
        let help = match e.kind() {
            io::ErrorKind::NotFound => {
                "check the path, or run orchestrate in the directory that holds deploy.yaml"
            }
            io::ErrorKind::PermissionDenied => "make the file readable by this user",
            _ => "check that the file exists and can be read",
        };
        alone(unlocated(
            file_name,
            format!("cannot read the file: {e}"),
            help.into(),
        ))
    };
    let meta = fs::metadata(path).map_err(cannot_read)?;
    if let Some(what) = not_a_file(&meta.file_type()) {
        let help = if meta.is_dir() {
            format!(
                "point `--file` at the deploy.yaml inside it: `-f {}`",
                Path::new(file_name).join("deploy.yaml").display()
            )
        } else {
            "point `--file` (`-f`) at a deploy.yaml file; only files and pipes are read".into()
        };
        let message = format!("`{file_name}` is {what}, not a file");
        return Err(alone(unlocated(file_name, message, help)));
    }
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(cannot_read)?;
    if let Some(d) = too_large(file_name, &bytes) {
        return Err(alone(d));
    }
    String::from_utf8(bytes).map_err(|e| alone(not_utf8(file_name, e.as_bytes(), e.utf8_error())))
}

/// What a file type is when it is neither a regular file nor a pipe (`a directory`, ...).
fn not_a_file(t: &FileType) -> Option<&'static str> {
    if t.is_file() {
        return None;
    }
    if t.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        // A pipe is read (`-f <(generate)`, `-f /dev/stdin`); the byte limit bounds it.
        if t.is_fifo() {
            return None;
        }
        if t.is_char_device() {
            return Some("a character device");
        }
        if t.is_block_device() {
            return Some("a block device");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    Some("a special file")
}

/// The diagnostic for text longer than [`MAX_FILE_BYTES`], located where it crosses the limit.
pub(crate) fn too_large(file_name: &str, bytes: &[u8]) -> Option<Diagnostic> {
    if bytes.len() <= MAX_FILE_BYTES {
        return None;
    }
    let limit = human_bytes(MAX_FILE_BYTES);
    Some(located(
        Kind::Limit,
        file_name,
        location_of(bytes, MAX_FILE_BYTES),
        format!("the file is larger than {limit}, the limit for deploy.yaml; it crosses the limit here"),
        "a deploy.yaml is a few KiB: check that `--file` names the right file; data belongs in the \
         files that `data.train` names, not in deploy.yaml"
            .into(),
    ))
}

/// The first check on any text taken for deploy.yaml: within [`MAX_FILE_BYTES`], and free of the
/// control characters YAML does not allow (all but tab, line feed and carriage return).
pub(crate) fn check_text(file_name: &str, text: &str) -> Option<Diagnostic> {
    if let Some(d) = too_large(file_name, text.as_bytes()) {
        return Some(d);
    }
    let (at, c) = text
        .char_indices()
        .find(|&(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))?;
    Some(located(
        Kind::Syntax,
        file_name,
        location_of(text.as_bytes(), at),
        format!(
            "the file contains the control character U+{:04X}, which YAML does not allow",
            u32::from(c)
        ),
        "remove it: deploy.yaml is plain text (control characters come from binary files or from \
         copying terminal output)"
            .into(),
    ))
}

fn not_utf8(file_name: &str, bytes: &[u8], e: std::str::Utf8Error) -> Diagnostic {
    let at = e.valid_up_to();
    let message = match e.error_len() {
        Some(_) => format!(
            "the file is not UTF-8 text: byte 0x{:02X} is not part of a UTF-8 character",
            bytes[at]
        ),
        None => "the file is not UTF-8 text: it ends in the middle of a character".into(),
    };
    located(
        Kind::Syntax,
        file_name,
        location_of(bytes, at),
        message,
        "YAML files are UTF-8: save deploy.yaml as UTF-8 (without a byte-order mark is best)".into(),
    )
}

/// The 1-based line and column (in characters) of byte `offset`.
fn location_of(bytes: &[u8], offset: usize) -> Location {
    let before = &bytes[..offset];
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    Location {
        line: 1 + before.iter().filter(|&&b| b == b'\n').count(),
        // UTF-8 continuation bytes (0b10xx_xxxx) do not start a character.
        column: 1 + before[line_start..].iter().filter(|&&b| b & 0xC0 != 0x80).count(),
    }
}

fn located(kind: Kind, file_name: &str, location: Location, message: String, help: String) -> Diagnostic {
    Diagnostic {
        kind,
        file: file_name.to_string(),
        location: Some(location),
        key: None,
        message,
        help: Some(help),
        notes: Vec::new(),
        span: None,
        source: None,
    }
}

/// A problem with the file as a whole, before any of its text is read.
fn unlocated(file_name: &str, message: String, help: String) -> Diagnostic {
    Diagnostic {
        kind: Kind::Io,
        file: file_name.to_string(),
        location: None,
        key: None,
        message,
        help: Some(help),
        notes: Vec::new(),
        span: None,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_count_lines_and_characters() {
        assert_eq!(location_of(b"ab\ncd", 4), Location { line: 2, column: 2 });
        assert_eq!(
            location_of("é\néx".as_bytes(), 5),
            Location { line: 2, column: 2 }
        );
        assert_eq!(location_of(b"", 0), Location { line: 1, column: 1 });
    }

    #[test]
    fn control_characters_are_refused_where_they_are() {
        let d = check_text("deploy.yaml", "a: 1\nb: x\u{7}y\n").unwrap();
        assert_eq!(d.location, Some(Location { line: 2, column: 5 }));
        assert!(d.message.contains("U+0007"), "{}", d.message);
        assert!(check_text("deploy.yaml", "a:\t1\r\nb: é\n").is_none());
    }

    #[test]
    fn text_up_to_the_limit_is_not_too_large() {
        assert!(too_large("deploy.yaml", &vec![b'#'; MAX_FILE_BYTES]).is_none());
        let d = too_large("deploy.yaml", &vec![b'#'; MAX_FILE_BYTES + 1]).unwrap();
        assert_eq!(
            d.location,
            Some(Location {
                line: 1,
                column: MAX_FILE_BYTES + 1
            })
        );
    }
}
