//! Kernel command-line parsing: space-separated `key=value` parameters and bare flags.

/// The value of `key=` on the command line (the last one wins).
pub fn param<'a>(cmdline: &'a [u8], key: &str) -> Option<&'a [u8]> {
    cmdline.split(|&b| b == b' ').rev().find_map(|arg| {
        let rest = arg.strip_prefix(key.as_bytes())?;
        rest.strip_prefix(b"=")
    })
}

/// Whether the exact word `word` (a flag such as `kmem`, or `key=value`) is present.
pub fn has_flag(cmdline: &[u8], word: &str) -> bool {
    cmdline
        .split(|&b| b == b' ')
        .any(|arg| arg == word.as_bytes())
}
