//! The shared-library closure of the binary: every library the dynamic loader maps when it starts, and
//! the loader itself, found by running `ldd` on the build host (DESIGN.md §5, option a).
//!
//! The image has no base layer, so whatever `ldd` lists is all the binary gets. Anything `ldd` cannot
//! resolve ("not found", a missing symbol version) fails the build loudly rather than producing an image
//! that dies at start on SageMaker. A fully static binary ("statically linked" / "not a dynamic
//! executable") has an empty closure.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::elf::ElfInfo;
use crate::error::ImageError;

/// One shared object the binary needs at run time, at the path the build host resolves it to. The file
/// there may be a symlink; the layer stores its contents as a regular file at this path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedLibrary {
    /// The name the binary asks for (`libgomp.so.1`), or the path itself for the loader.
    pub name: String,
    /// Where the loader finds it (`/lib/x86_64-linux-gnu/libgomp.so.1`, `/lib64/ld-linux-x86-64.so.2`).
    pub path: PathBuf,
}

/// How `ldd` says the binary is linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linkage {
    /// No shared libraries: the binary runs on its own.
    Static,
    /// The libraries `ldd` listed (virtual objects like `linux-vdso.so.1` left out), in its order,
    /// without duplicates.
    Dynamic(Vec<SharedLibrary>),
}

/// Runs `ldd` on `binary` and returns its shared-library closure (empty for a static binary).
///
/// `ldd` may ask the dynamic loader to inspect the binary; only run it on binaries you built.
pub fn shared_libraries(binary: &Path) -> Result<Vec<SharedLibrary>, ImageError> {
    match run_ldd(binary)? {
        Linkage::Static => Ok(Vec::new()),
        Linkage::Dynamic(libraries) => Ok(libraries),
    }
}

/// The closure to ship for a binary whose ELF header has already been read: `ldd`'s list, checked
/// against the header, plus the program interpreter if `ldd` did not list it under that exact path (the
/// kernel opens that path, nothing else).
pub(crate) fn resolve(binary: &Path, elf: &ElfInfo) -> Result<Vec<SharedLibrary>, ImageError> {
    match (run_ldd(binary)?, &elf.interpreter) {
        (Linkage::Static, None) => Ok(Vec::new()),
        (Linkage::Static, Some(interpreter)) => Err(ImageError::InterpreterWithoutClosure {
            path: binary.to_owned(),
            interpreter: interpreter.clone(),
        }),
        (Linkage::Dynamic(mut libraries), interpreter) => {
            if let Some(interpreter) = interpreter {
                let path = PathBuf::from(interpreter);
                if !libraries.iter().any(|library| library.path == path) {
                    libraries.push(SharedLibrary {
                        name: interpreter.clone(),
                        path,
                    });
                }
            }
            Ok(libraries)
        }
    }
}

fn run_ldd(binary: &Path) -> Result<Linkage, ImageError> {
    // A bare file name would make ldd search nothing sensible; give it a path.
    let target = if binary.components().count() == 1 && binary.is_relative() {
        Path::new(".").join(binary)
    } else {
        binary.to_owned()
    };
    let output = Command::new("ldd")
        .arg(&target)
        // ldd's messages are what we parse: keep them in English.
        .env("LC_ALL", "C")
        .output()
        .map_err(|source| ImageError::LddSpawn {
            path: binary.to_owned(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let linkage = parse_ldd(binary, &stdout, &stderr)?;
    // ldd exits 1 for "not a dynamic executable"; any other failure is a real one.
    if !output.status.success() && linkage != Linkage::Static {
        return Err(ImageError::LddFailed {
            path: binary.to_owned(),
            status: output.status,
            stderr: stderr.trim().to_owned(),
        });
    }
    Ok(linkage)
}

/// Reads `ldd`'s output for `binary` (pure: no I/O, `binary` only names it in errors).
///
/// Every line of `stdout` must be understood: `name => /path (0xaddr)`, `/path (0xaddr)` (the loader),
/// `name (0xaddr)` (a virtual object such as `linux-vdso.so.1`, skipped), `name => not found`, or one
/// of ldd's "statically linked" / "not a dynamic executable" notes. Any line on either stream that
/// reports something "not found" (a library or a symbol version) is collected, and all of them are
/// reported together as [`ImageError::LibraryNotFound`].
pub fn parse_ldd(binary: &Path, stdout: &str, stderr: &str) -> Result<Linkage, ImageError> {
    let mut libraries: Vec<SharedLibrary> = Vec::new();
    let mut missing = Vec::new();
    let mut static_note = None;
    let unreadable = |line: &str| ImageError::LddUnreadable {
        path: binary.to_owned(),
        line: line.to_owned(),
    };

    for line in stdout.lines().map(str::trim).filter(|line| !line.is_empty()) {
        if is_static_note(line) {
            static_note = Some(line);
        } else if let Some((name, target)) = line.split_once(" => ") {
            let (name, target) = (name.trim(), target.trim());
            if target.starts_with("not found") {
                missing.push(name.to_owned());
            } else if target.starts_with('(') {
                // Older glibc prints virtual objects as `linux-vdso.so.1 =>  (0x...)`.
            } else {
                let path = without_address(target);
                if !path.starts_with('/') {
                    return Err(unreadable(line));
                }
                push_unique(&mut libraries, name, path);
            }
        } else if line.contains("not found") {
            // e.g. `./bin: /lib/.../libc.so.6: version `GLIBC_2.99' not found (required by ./bin)`
            missing.push(line.to_owned());
        } else {
            let object = without_address(line);
            if object.starts_with('/') {
                push_unique(&mut libraries, object, object);
            } else if object.len() < line.len() && !object.contains(char::is_whitespace) {
                // A virtual object with an address and no file: linux-vdso.so.1, linux-gate.so.1.
            } else {
                return Err(unreadable(line));
            }
        }
    }
    for line in stderr.lines().map(str::trim) {
        if line.contains("not found") {
            missing.push(line.to_owned());
        } else if is_static_note(line) {
            static_note = Some(line);
        }
    }

    if !missing.is_empty() {
        return Err(ImageError::LibraryNotFound {
            path: binary.to_owned(),
            missing,
        });
    }
    match static_note {
        Some(_) if libraries.is_empty() => Ok(Linkage::Static),
        Some(note) => Err(unreadable(note)),
        None => Ok(Linkage::Dynamic(libraries)),
    }
}

fn is_static_note(line: &str) -> bool {
    line.ends_with("statically linked") || line.ends_with("not a dynamic executable")
}

/// `"/lib/x/libc.so.6 (0x00007f...)"` -> `"/lib/x/libc.so.6"`.
fn without_address(text: &str) -> &str {
    match text.rfind(" (0x") {
        Some(at) if text.ends_with(')') => text[..at].trim(),
        _ => text.trim(),
    }
}

fn push_unique(libraries: &mut Vec<SharedLibrary>, name: &str, path: &str) {
    let path = PathBuf::from(path);
    if !libraries.iter().any(|library| library.path == path) {
        libraries.push(SharedLibrary {
            name: name.to_owned(),
            path,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn library(name: &str, path: &str) -> SharedLibrary {
        SharedLibrary {
            name: name.to_owned(),
            path: PathBuf::from(path),
        }
    }

    const MODEL_IMAGE_LDD: &str = "\tlinux-vdso.so.1 (0x00007ffd5a3f2000)
\tlibstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f2c1c200000)
\tlibgomp.so.1 => /lib/x86_64-linux-gnu/libgomp.so.1 (0x00007f2c1c1a0000)
\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f2c1c170000)
\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f2c1c090000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2c1be00000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f2c1c5e0000)
";

    #[test]
    fn a_dynamic_binary_lists_its_libraries_and_the_loader_but_not_the_vdso() {
        let linkage = parse_ldd(Path::new("model-image"), MODEL_IMAGE_LDD, "").unwrap();
        assert_eq!(
            linkage,
            Linkage::Dynamic(vec![
                library("libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6"),
                library("libgomp.so.1", "/lib/x86_64-linux-gnu/libgomp.so.1"),
                library("libgcc_s.so.1", "/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                library("libm.so.6", "/lib/x86_64-linux-gnu/libm.so.6"),
                library("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"),
                library("/lib64/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2"),
            ])
        );
    }

    #[test]
    fn a_missing_library_is_a_loud_error_naming_every_missing_one() {
        let stdout = "\tlinux-vdso.so.1 (0x00007ffd5a3f2000)
\tlibgomp.so.1 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2c1be00000)
\tlibfoo.so.2 => not found
\t/lib64/ld-linux-x86-64.so.2 (0x00007f2c1c5e0000)
";
        let error = parse_ldd(Path::new("target/release/model-image"), stdout, "").unwrap_err();
        match &error {
            ImageError::LibraryNotFound { path, missing } => {
                assert_eq!(path, Path::new("target/release/model-image"));
                assert_eq!(missing, &["libgomp.so.1", "libfoo.so.2"]);
            }
            other => panic!("expected LibraryNotFound, got {other:?}"),
        }
        let message = error.to_string();
        assert!(message.contains("libgomp.so.1; libfoo.so.2"), "{message}");
        assert!(message.contains("target/release/model-image"), "{message}");
    }

    #[test]
    fn a_missing_symbol_version_is_a_loud_error_too() {
        let stderr = "./model-image: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.99' not found (required by ./model-image)\n";
        let error = parse_ldd(Path::new("model-image"), MODEL_IMAGE_LDD, stderr).unwrap_err();
        assert!(
            matches!(&error, ImageError::LibraryNotFound { missing, .. } if missing[0].contains("GLIBC_2.99")),
            "{error:?}"
        );
    }

    #[test]
    fn static_binaries_have_no_closure() {
        for (stdout, stderr) in [
            ("\tstatically linked\n", ""),
            ("", "\tnot a dynamic executable\n"),
            ("\tnot a dynamic executable\n", ""),
        ] {
            assert_eq!(
                parse_ldd(Path::new("model-image"), stdout, stderr).unwrap(),
                Linkage::Static
            );
        }
    }

    #[test]
    fn old_style_vdso_lines_and_duplicates_are_tolerated() {
        let stdout = "\tlinux-vdso.so.1 =>  (0x00007ffd5a3f2000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2c1be00000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2c1be00000)
";
        assert_eq!(
            parse_ldd(Path::new("bin"), stdout, "ldd: warning: something harmless\n").unwrap(),
            Linkage::Dynamic(vec![library("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6")])
        );
    }

    #[test]
    fn an_unreadable_line_fails_instead_of_being_skipped() {
        for stdout in [
            "\tsomething unexpected here\n",
            "\tlibc.so.6 => relative/libc.so.6 (0x0000)\n",
        ] {
            let error = parse_ldd(Path::new("bin"), stdout, "").unwrap_err();
            assert!(matches!(error, ImageError::LddUnreadable { .. }), "{error:?}");
        }
    }
}
