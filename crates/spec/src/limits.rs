//! The limits that keep reading a deploy.yaml bounded in time, memory and stack, whatever the file
//! holds: its size, how deep its lists and mappings nest, and how much its anchors and aliases copy.
//!
//! A real deploy.yaml is about 1 KiB, nests three levels (`training.hyperparameters.<key>`) and uses
//! aliases, if at all, for a few short values. Each limit sits orders of magnitude above that and
//! orders of magnitude below what would hurt: the file is read with [`std::io::Read::take`], nesting
//! is counted on the parser's event stream before any tree exists, and the bytes that anchors and
//! aliases copy are added up before they are copied. A file past a limit is rejected with the place
//! where it crossed it.

/// The largest deploy.yaml read, in bytes (1 MiB, a thousand times a real one). `load` never reads
/// more than one byte past it, so `-f /dev/zero` or an endless pipe return at once.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// The deepest nesting of lists and mappings (64; deploy.yaml needs 3). The tree, its validation and
/// its drop recurse once per level, so this bounds their stack use.
pub const MAX_NESTING: usize = 64;

/// The most that anchors and aliases may copy, in bytes, all together (1 MiB). Every anchored value
/// is copied once when it is defined and once per alias; each copy costs its scalars' text plus the
/// size of each node. Capped by size, not by count: one 1 MB scalar aliased 10,000 times is a handful
/// of nodes but 10 GB.
pub const MAX_ALIAS_BYTES: usize = 1024 * 1024;

/// A byte count for messages: `1 MiB`, `977 KiB`, `17 bytes`.
pub(crate) fn human_bytes(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else if bytes >= KIB {
        format!("{} KiB", bytes.div_ceil(KIB))
    } else if bytes == 1 {
        "1 byte".into()
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_naturally() {
        assert_eq!(human_bytes(MAX_FILE_BYTES), "1 MiB");
        assert_eq!(human_bytes(1_000_000), "977 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(human_bytes(17), "17 bytes");
        assert_eq!(human_bytes(1), "1 byte");
    }
}
