//! What can go wrong while building or writing an image, one variant per failure, each naming the file
//! or command involved and, where there is one, the fix.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

/// An image build or archive write that failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The binary to ship could not be read.
    #[error(
        "cannot read the binary to ship at {path} (build it first: `cargo build --release -p model-image`)"
    )]
    BinaryMissing {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The binary is not a 64-bit little-endian ELF executable (a script, or another platform's format).
    #[error(
        "{path} is not a 64-bit little-endian ELF executable; the image needs the compiled model-image binary"
    )]
    NotElf { path: PathBuf },

    /// The binary was compiled for a different CPU than the image would be labelled with.
    #[error(
        "{path} is compiled for {binary}, but images built on this host are labelled {host}; build model-image for this host"
    )]
    ArchMismatch {
        path: PathBuf,
        binary: String,
        host: &'static str,
    },

    /// The build host's CPU has no container-image architecture name this crate knows.
    #[error(
        "cannot label an image for host architecture {arch} (supported: x86_64 -> amd64, aarch64 -> arm64)"
    )]
    UnsupportedHost { arch: &'static str },

    /// `ldd` could not be started.
    #[error("cannot run `ldd {path}` to find its shared libraries (is ldd, from libc-bin, installed?)")]
    LddSpawn {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// `ldd` ran and failed.
    #[error("`ldd {path}` failed ({status}): {stderr}")]
    LddFailed {
        path: PathBuf,
        status: ExitStatus,
        stderr: String,
    },

    /// `ldd` printed a line this crate cannot interpret; guessing could leave a library out of the layer.
    #[error("`ldd {path}` printed a line that cannot be read: {line:?}")]
    LddUnreadable { path: PathBuf, line: String },

    /// Some of the binary's shared libraries (or symbol versions) cannot be resolved on this host, so the
    /// layer could not be self-contained.
    #[error(
        "{path} needs shared libraries that ldd cannot resolve on this host: {}; install them on the build host, or build model-image fully static (DESIGN.md §5, option b)",
        missing.join("; ")
    )]
    LibraryNotFound { path: PathBuf, missing: Vec<String> },

    /// `ldd` calls the binary static, but its ELF header names a program interpreter, so it would not
    /// start without one.
    #[error("ldd reports {path} as statically linked, but it requests the program interpreter {interpreter}")]
    InterpreterWithoutClosure { path: PathBuf, interpreter: String },

    /// A file that goes into the layer (a shared library) could not be read.
    #[error("cannot read {path} for the image layer")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Assembling the layer or archive tar failed (for example a path too long for a tar header).
    #[error("cannot add {path} to a tar stream")]
    Tar {
        path: String,
        #[source]
        source: io::Error,
    },

    /// A layer entry's path is not clean (`..`, empty) or collides with another entry, for example a
    /// shared library at a path the image already uses for something else.
    #[error("cannot place /{path} in the layer: the path is not clean, or another entry already claims it")]
    LayerPath { path: String },

    /// The repository:tag for a docker-archive is empty or contains whitespace.
    #[error(
        "{repo_tag:?} is not a usable image name for a docker-archive (expected e.g. `model-image:0.1.0`)"
    )]
    InvalidRepoTag { repo_tag: String },

    /// Writing an output file failed.
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}
