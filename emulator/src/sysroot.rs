//! What a host program needs besides itself to run in the guest (`vmscope run PATH`): the
//! interpreter of a `#!` script, and for a dynamically linked ELF its program interpreter
//! (PT_INTERP, `ld.so`) and every shared library it needs (DT_NEEDED, transitively), found
//! as the dynamic linker finds them (ldd's answer): DT_RPATH (when there is no DT_RUNPATH),
//! DT_RUNPATH with `$ORIGIN`, then the system directories of Debian's multiarch glibc.
//! Each file goes into the initramfs at the path the guest will look for it.
//!
//! With `--sysroot DIR` every path is looked up under DIR instead of the host's root, as
//! qemu-user's `-L` does; the paths inside the guest stay the same.

use goblin::elf::{program_header, Elf};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Interpreter levels of a `#!` chain (the guest kernel's `BINPRM_MAX_RECURSION`).
pub const MAX_SCRIPT_DEPTH: usize = 4;
/// Bytes of a file's head that hold its `#!` line (Linux's `BINPRM_BUF_SIZE`).
const SHEBANG_MAX: usize = 256;
/// Where glibc's dynamic linker looks after RPATH/RUNPATH (and before nothing else, with no
/// `/etc/ld.so.cache` in the guest): Debian's multiarch system directories.
pub const SYSTEM_LIB_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];
/// Most shared objects one program may pull in (a guard against cycles of bad input).
const MAX_OBJECTS: usize = 256;

/// Files for the guest, by absolute guest path.
pub type Files = BTreeMap<String, Vec<u8>>;

/// Where host files are read from: the host's root or a sysroot directory.
#[derive(Clone, Copy, Debug)]
pub struct Root<'a>(pub Option<&'a Path>);

impl Root<'_> {
    /// The host path of guest path `p` (absolute).
    pub fn host(&self, p: &str) -> PathBuf {
        match self.0 {
            Some(dir) => dir.join(p.trim_start_matches('/')),
            None => PathBuf::from(p),
        }
    }

    fn read(&self, p: &str) -> Result<Vec<u8>, String> {
        let h = self.host(p);
        std::fs::read(&h).map_err(|e| format!("cannot read {}: {e}", h.display()))
    }

    fn is_file(&self, p: &str) -> bool {
        self.host(p).is_file()
    }

    /// Whether `p` starts like an ELF64 little-endian x86-64 file (ld.so's `open_verify`).
    fn is_elf64_x86_64(&self, p: &str) -> bool {
        use std::io::Read;
        let mut h = [0u8; 20];
        std::fs::File::open(self.host(p))
            .and_then(|mut f| f.read_exact(&mut h))
            .is_ok()
            && h[..4] == *b"\x7fELF"
            && h[4] == 2
            && h[5] == 1
            && u16::from_le_bytes([h[18], h[19]]) == goblin::elf::header::EM_X86_64
    }
}

/// The interpreter and optional argument of a `#!` line, as the guest kernel parses it
/// (blanks separate them; the argument is the rest of the line, trimmed). None if `image`
/// does not start with `#!`.
pub fn shebang(image: &[u8]) -> Option<Result<(String, Option<String>), String>> {
    if !image.starts_with(b"#!") {
        return None;
    }
    let head = &image[2..image.len().min(SHEBANG_MAX)];
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let Ok(line) = std::str::from_utf8(line) else {
        return Some(Err("the #! line is not UTF-8".into()));
    };
    let line = line.trim_matches(|c| c == ' ' || c == '\t');
    let (interp, rest) = line
        .split_once([' ', '\t'])
        .map_or((line, ""), |(a, b)| (a, b));
    if interp.is_empty() {
        return Some(Err("the #! line names no interpreter".into()));
    }
    let arg = rest.trim_matches(|c| c == ' ' || c == '\t');
    Some(Ok((
        interp.to_string(),
        (!arg.is_empty()).then(|| arg.to_string()),
    )))
}

/// The interpreters of a `#!` chain starting at `image`, in order, by guest path, each
/// read from `root` (empty if `image` is no script); the last one is not a script.
pub fn interpreters(image: &[u8], root: Root) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut chain: Vec<(String, Vec<u8>)> = Vec::new();
    loop {
        let cur = chain.last().map_or(image, |(_, d)| d.as_slice());
        let interp = match shebang(cur) {
            None => return Ok(chain),
            Some(Err(e)) => return Err(e),
            Some(Ok((interp, _))) => interp,
        };
        if chain.len() == MAX_SCRIPT_DEPTH {
            return Err(format!(
                "more than {MAX_SCRIPT_DEPTH} levels of #! interpreters"
            ));
        }
        if !interp.starts_with('/') {
            return Err(format!(
                "the #! interpreter {interp} is not an absolute path"
            ));
        }
        let data = root
            .read(&interp)
            .map_err(|e| format!("#! interpreter: {e}"))?;
        chain.push((interp, data));
    }
}

/// The dynamic linker and shared libraries ELF `image` (at guest path `path`) needs,
/// added to `files`.
pub fn dependencies(image: &[u8], path: &str, root: Root, files: &mut Files) -> Result<(), String> {
    collect_elf(image, path, root, files)
}

/// The dynamic linker and the libraries of ELF `image` (at guest path `path`, whose
/// directory is `$ORIGIN`).
fn collect_elf(image: &[u8], path: &str, root: Root, files: &mut Files) -> Result<(), String> {
    let elf = parse(image)?;
    let interp = elf
        .program_headers
        .iter()
        .any(|p| p.p_type == program_header::PT_INTERP)
        .then(|| {
            elf.interpreter
                .unwrap_or("")
                .trim_end_matches('\0')
                .to_string()
        });
    let Some(interp) = interp else {
        return Ok(());
    };
    if interp.is_empty() || !interp.starts_with('/') {
        return Err(format!("bad program interpreter {interp:?}"));
    }
    if !files.contains_key(&interp) {
        let data = root
            .read(&interp)
            .map_err(|e| format!("program interpreter: {e}"))?;
        files.insert(interp.clone(), data);
    }
    // Breadth-first over DT_NEEDED, each object searched with its own RPATH/RUNPATH.
    let mut queue: Vec<(String, Vec<u8>)> = vec![(path.to_string(), image.to_vec())];
    let mut seen = 0usize;
    while let Some((obj_path, data)) = queue.pop() {
        seen += 1;
        if seen > MAX_OBJECTS {
            return Err(format!("more than {MAX_OBJECTS} shared objects"));
        }
        let elf = parse(&data)?;
        let origin = Path::new(&obj_path)
            .parent()
            .and_then(|p| p.to_str())
            .unwrap_or("/")
            .to_string();
        let expand = |list: &[&str]| -> Vec<String> {
            list.iter()
                .flat_map(|s| s.split(':'))
                .filter(|s| !s.is_empty())
                .map(|s| s.replace("$ORIGIN", &origin).replace("${ORIGIN}", &origin))
                .collect()
        };
        let mut dirs = if elf.runpaths.is_empty() {
            expand(&elf.rpaths)
        } else {
            Vec::new()
        };
        dirs.extend(expand(&elf.runpaths));
        dirs.extend(SYSTEM_LIB_DIRS.iter().map(|s| s.to_string()));
        for lib in &elf.libraries {
            // musl's dynamic linker is its libc: it satisfies "libc.so" itself.
            if *lib == "libc.so" && interp.contains("ld-musl") {
                continue;
            }
            // As ld.so, a file that is not an x86-64 ELF64 shared object (a linker script
            // such as glibc's libc.so, a 32-bit library) is passed over.
            let found = if lib.contains('/') {
                Some(lib.to_string())
            } else {
                dirs.iter()
                    .map(|d| format!("{}/{lib}", d.trim_end_matches('/')))
                    .find(|p| root.is_file(p) && root.is_elf64_x86_64(p))
            };
            let Some(p) = found else {
                return Err(format!(
                    "{obj_path} needs {lib}, which is not in {}",
                    dirs.join(":")
                ));
            };
            if files.contains_key(&p) {
                continue;
            }
            let bytes = root.read(&p)?;
            files.insert(p.clone(), bytes.clone());
            queue.push((p, bytes));
        }
    }
    Ok(())
}

/// Parse a host file as ELF; goblin's rare panics on malformed input become errors too
/// (a library in `--sysroot` is the user's input).
fn parse(image: &[u8]) -> Result<Elf<'_>, String> {
    match crate::run::quietly(|| Elf::parse(image)) {
        Some(Ok(e)) => Ok(e),
        Some(Err(e)) => Err(format!("malformed ELF: {e}")),
        None => Err("malformed ELF".into()),
    }
}

/// The time-zone file glibc reads for `TZ` (`tzset`): a leading `:` is dropped; an absolute
/// path is taken as it is, anything else under `/usr/share/zoneinfo`. `None` when there
/// is no such regular file (a POSIX rule such as `EST5EDT` needs none, or the name is
/// unknown, which the guest's C library then handles as the host's would) or the name
/// climbs out with `..`.
pub fn zoneinfo(tz: &str, root: Root) -> Option<(String, Vec<u8>)> {
    let tz = tz.strip_prefix(':').unwrap_or(tz);
    if tz.is_empty() || tz.split('/').any(|c| c == "..") {
        return None;
    }
    let path = if tz.starts_with('/') {
        tz.to_string()
    } else {
        format!("/usr/share/zoneinfo/{tz}")
    };
    if !root.is_file(&path) {
        return None;
    }
    root.read(&path).ok().map(|d| (path, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines_parse_as_the_kernel_does() {
        assert!(shebang(b"\x7fELF").is_none());
        let p = |s: &[u8]| shebang(s).unwrap().unwrap();
        assert_eq!(p(b"#!/bin/sh\necho"), ("/bin/sh".into(), None));
        assert_eq!(
            p(b"#!  /usr/bin/env   python3 -u  \n"),
            ("/usr/bin/env".into(), Some("python3 -u".into()))
        );
        assert_eq!(
            p(b"#!/bin/busybox\tsh"),
            ("/bin/busybox".into(), Some("sh".into()))
        );
        assert!(shebang(b"#!   \n").unwrap().is_err());
    }
}
