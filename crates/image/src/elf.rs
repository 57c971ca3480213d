//! Just enough ELF reading to label the image honestly: which CPU the binary is for, and which program
//! interpreter (dynamic loader) the kernel will look for when the container starts it.
//!
//! `ldd` only understands binaries for the host and calls anything else "not a dynamic executable", the
//! same words it uses for a static binary; reading the header ourselves keeps a foreign or dynamic binary
//! from being shipped as if it were static.

/// What the ELF header says about a binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ElfInfo {
    /// `e_machine`, the CPU the code is compiled for.
    pub machine: u16,
    /// The `PT_INTERP` path (the dynamic loader), absent for a fully static binary.
    pub interpreter: Option<String>,
}

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const PT_INTERP: u32 = 3;

/// The container-image architecture name for an ELF machine, or a descriptive name if there is none.
pub(crate) fn machine_name(machine: u16) -> String {
    match machine {
        EM_X86_64 => "amd64".to_owned(),
        EM_AARCH64 => "arm64".to_owned(),
        other => format!("ELF machine {other}"),
    }
}

/// Reads the header of a 64-bit little-endian ELF file; `None` for anything else or a truncated file.
pub(crate) fn inspect(bytes: &[u8]) -> Option<ElfInfo> {
    if bytes.get(..4)? != b"\x7fELF" || *bytes.get(4)? != 2 || *bytes.get(5)? != 1 {
        return None;
    }
    let machine = u16_at(bytes, 18)?;
    let phoff = usize::try_from(u64_at(bytes, 32)?).ok()?;
    let phentsize = usize::from(u16_at(bytes, 54)?);
    let phnum = usize::from(u16_at(bytes, 56)?);
    let mut interpreter = None;
    for index in 0..phnum {
        let header = phoff.checked_add(index.checked_mul(phentsize)?)?;
        if u32_at(bytes, header)? != PT_INTERP {
            continue;
        }
        let offset = usize::try_from(u64_at(bytes, header + 8)?).ok()?;
        let size = usize::try_from(u64_at(bytes, header + 32)?).ok()?;
        let raw = bytes.get(offset..offset.checked_add(size)?)?;
        let path = raw.split(|&b| b == 0).next().unwrap_or_default();
        interpreter = Some(String::from_utf8(path.to_vec()).ok()?);
    }
    Some(ElfInfo { machine, interpreter })
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_binary_is_a_host_elf_with_a_loader() {
        let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let info = inspect(&bytes).expect("the test executable is ELF");
        let host = match std::env::consts::ARCH {
            "x86_64" => EM_X86_64,
            "aarch64" => EM_AARCH64,
            other => panic!("no test expectation for {other}"),
        };
        assert_eq!(info.machine, host);
        // Rust test binaries on glibc are dynamically linked.
        let interpreter = info.interpreter.expect("PT_INTERP");
        assert!(interpreter.starts_with('/'), "{interpreter}");
        assert!(interpreter.contains("ld-linux"), "{interpreter}");
    }

    #[test]
    fn non_elf_and_truncated_files_are_rejected() {
        assert_eq!(inspect(b"#!/bin/sh\necho hi\n"), None);
        assert_eq!(inspect(b""), None);
        assert_eq!(inspect(b"\x7fELF\x02\x01"), None);
        // 32-bit ELF is not something we ship.
        let mut elf32 = vec![0u8; 64];
        elf32[..6].copy_from_slice(b"\x7fELF\x01\x01");
        assert_eq!(inspect(&elf32), None);
    }

    #[test]
    fn a_header_without_program_headers_has_no_interpreter() {
        let mut header = vec![0u8; 64];
        header[..6].copy_from_slice(b"\x7fELF\x02\x01");
        header[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
        assert_eq!(
            inspect(&header),
            Some(ElfInfo {
                machine: EM_AARCH64,
                interpreter: None
            })
        );
        assert_eq!(machine_name(EM_AARCH64), "arm64");
        assert_eq!(machine_name(EM_X86_64), "amd64");
        assert_eq!(machine_name(40), "ELF machine 40");
    }
}
