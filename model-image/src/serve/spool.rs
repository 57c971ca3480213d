//! Request bodies too large to hold in memory: an asynchronous endpoint's, up to 1 GB when
//! `MODEL_IMAGE_MAX_PAYLOAD_MB` allows it. Such a body is written to a temporary file as it streams in
//! (the [`super::prescan`] checks every chunk on the way), read back and scored a chunk of rows at a
//! time, and its predictions are written to a second temporary file, which is then sent with its
//! `Content-Length`. Memory per request stays at a write buffer, a read block and one chunk of rows
//! whatever the body's size, and a bad cell in the last row still gets its 400 before any byte of the
//! answer has been sent.
//!
//! The files are created unlinked (`tempfile::tempfile_in`, `O_TMPFILE` on Linux) in the spool
//! directory: they never have a name to clean up, and their space is freed when the request's handle
//! closes, on every path (answer sent, error, client gone, panic unwinding, process killed).

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

use super::response::ServeError;

/// Bytes gathered before each write to a temporary file: few system calls and few hand-offs of the
/// runtime's worker thread, little memory.
const WRITE_BUFFER: usize = 1024 * 1024;

/// When a body is spooled rather than held in memory, and where to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spool {
    /// The largest body held in memory: SageMaker's realtime limit (lower in unit tests).
    pub(crate) in_memory_bytes: usize,
    /// The most rows a body held in memory may show (a CSV header aside); more are spooled.
    pub(crate) in_memory_rows: usize,
    /// The largest body accepted.
    pub(crate) max_bytes: usize,
    pub(crate) dir: PathBuf,
}

impl Spool {
    /// Whether any body is spooled: only when the body limit is over what memory takes.
    pub(crate) fn enabled(&self) -> bool {
        self.max_bytes > self.in_memory_bytes
    }

    /// A new, empty temporary file for `what` (named in error messages).
    pub(crate) fn create(&self, what: &'static str) -> Result<SpoolFile, ServeError> {
        let file = tempfile::tempfile_in(&self.dir).map_err(|e| {
            ServeError::internal(format!(
                "cannot create a temporary file for {what} in {} (MODEL_IMAGE_SPOOL_DIR): {e}",
                self.dir.display()
            ))
        })?;
        Ok(SpoolFile {
            file,
            pending: Vec::new(),
            len: 0,
            what,
        })
    }

    /// At start-up, when bodies may be spooled: a temporary file can be created in the directory.
    pub(crate) fn check(&self) -> std::io::Result<()> {
        if !self.enabled() {
            return Ok(());
        }
        tempfile::tempfile_in(&self.dir).map(drop).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "bodies over {} are spooled to {}, but no temporary file can be created there \
                     (MODEL_IMAGE_SPOOL_DIR): {e}",
                    super::limits::size_text(self.in_memory_bytes),
                    self.dir.display()
                ),
            )
        })
    }
}

/// A temporary file being written, a buffer at a time.
pub(crate) struct SpoolFile {
    file: File,
    pending: Vec<u8>,
    /// Bytes written to the file so far.
    len: u64,
    what: &'static str,
}

impl SpoolFile {
    /// Appends `bytes`: gathered in the buffer, or written to the file (off the runtime's workers)
    /// with what is gathered when they would fill it, so the buffer never grows past its size.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> Result<(), ServeError> {
        if self.pending.len() + bytes.len() < WRITE_BUFFER {
            if self.pending.capacity() == 0 {
                self.pending.reserve_exact(WRITE_BUFFER);
            }
            self.pending.extend_from_slice(bytes);
            return Ok(());
        }
        self.write(bytes)
    }

    /// Writes what is gathered, then `bytes`.
    fn write(&mut self, bytes: &[u8]) -> Result<(), ServeError> {
        let (file, pending) = (&mut self.file, &self.pending);
        let written = super::blocking(|| file.write_all(pending).and_then(|()| file.write_all(bytes)));
        written.map_err(|e| self.failed(&e))?;
        self.len += (self.pending.len() + bytes.len()) as u64;
        self.pending.clear();
        Ok(())
    }

    fn failed(&self, error: &std::io::Error) -> ServeError {
        ServeError::internal(format!(
            "could not write {} to its temporary file (MODEL_IMAGE_SPOOL_DIR): {error}",
            self.what
        ))
    }

    /// Everything appended, with the file positioned at its start, and its length.
    pub(crate) fn finish(mut self) -> Result<(File, u64), ServeError> {
        self.write(&[])?;
        self.file.seek(SeekFrom::Start(0)).map_err(|e| self.failed(&e))?;
        Ok((self.file, self.len))
    }
}

/// A body that passed its prescan, in a temporary file positioned at its start.
#[derive(Debug)]
pub(crate) struct SpooledBody {
    pub(crate) file: File,
    /// Some byte of it is a `"`: CSV is then read by the csv crate, as in memory.
    pub(crate) has_quote: bool,
}
