//! The initramfs of `vmscope run`: a newc cpio archive (written with the `cpio` crate) that
//! the guest kernel unpacks into its root file system (`guest-os/kfs`).
//!
//! Layout:
//!
//! ```text
//! /bin/<name>          every bundled guest program, and the user's program (mode 0755)
//! /etc/vmscope/init    the absolute guest path of the program to run (no newline)
//! /etc/vmscope/argv    argv, each string NUL-terminated; argv[0] is that path
//! /etc/vmscope/envp    the environment, `KEY=VALUE` strings, each NUL-terminated
//! ```
//!
//! Everything is owned by 0:0 with mtime 0, and entries come in a fixed order, so the same
//! inputs give the same bytes.

use std::io::Write;

/// Where bundled and user programs go.
pub const BIN_DIR: &str = "/bin";
/// The control directory the kernel reads.
pub const CONTROL_DIR: &str = "/etc/vmscope";
pub const INIT_FILE: &str = "/etc/vmscope/init";
pub const ARGV_FILE: &str = "/etc/vmscope/argv";
pub const ENVP_FILE: &str = "/etc/vmscope/envp";

/// The fixed environment of the program, in this order. The system tests run the same
/// programs natively with exactly this environment; it is sorted by name because
/// `std::process::Command` passes an environment it was given sorted.
pub const RUN_ENV: &[&str] = &["HOME=/", "PATH=/bin", "TERM=dumb", "VMSCOPE_BIN=/bin"];

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;

/// A newc archive being written: owner 0:0, mtime 0, inode numbers from 1 in order.
pub struct CpioWriter {
    out: Vec<u8>,
    next_ino: u32,
}

impl Default for CpioWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl CpioWriter {
    pub fn new() -> Self {
        CpioWriter {
            out: Vec::new(),
            next_ino: 1,
        }
    }

    fn entry(&mut self, path: &str, mode: u32, nlink: u32, data: &[u8]) -> Result<(), String> {
        // Names are stored relative to the root, as Linux's gen_init_cpio writes them.
        let name = path.trim_start_matches('/');
        let size = u32::try_from(data.len())
            .map_err(|_| format!("{path}: {} bytes is too large for cpio", data.len()))?;
        let mut w = cpio::newc::Builder::new(name)
            .ino(self.next_ino)
            .mode(mode)
            .nlink(nlink)
            .write(&mut self.out, size);
        w.write_all(data)
            .and_then(|_| w.finish().map(|_| ()))
            .map_err(|e| format!("writing the initramfs: {e}"))?;
        self.next_ino += 1;
        Ok(())
    }

    /// A directory with permission bits `perm`.
    pub fn dir(&mut self, path: &str, perm: u32) -> Result<(), String> {
        self.entry(path, S_IFDIR | perm, 2, b"")
    }

    /// A regular file with permission bits `perm`.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> Result<(), String> {
        self.entry(path, S_IFREG | perm, 1, data)
    }

    /// Append the trailer and return the archive.
    pub fn finish(self) -> Vec<u8> {
        cpio::newc::trailer(self.out).unwrap_or_default()
    }
}

/// The environment of `vmscope run`: [`RUN_ENV`] with the `extra` `KEY=VALUE` strings
/// (`--env`) added, or replacing a default of the same name, sorted by name. A string
/// without `=`, with an empty name or with a NUL is an error.
pub fn run_env(extra: &[String]) -> Result<Vec<String>, String> {
    let mut env: std::collections::BTreeMap<String, String> = RUN_ENV
        .iter()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for e in extra {
        let (k, v) = e
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| format!("--env {e:?}: expected NAME=VALUE"))?;
        if e.contains('\0') {
            return Err(format!("--env {e:?}: contains a NUL byte"));
        }
        env.insert(k.to_string(), v.to_string());
    }
    Ok(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

/// The initramfs for running `program` (a name under /bin) with `args` (argv[1..]) and
/// the environment `env` ([`run_env`]). `programs` are all the files for /bin, by name;
/// `program` must be one of them.
pub fn run_image(
    programs: &[(&str, &[u8])],
    program: &str,
    args: &[&[u8]],
    env: &[String],
    support: &std::collections::BTreeMap<String, Vec<u8>>,
) -> Result<Vec<u8>, String> {
    if !programs.iter().any(|(n, _)| *n == program) {
        return Err(format!("{program}: not among the programs to install"));
    }
    let mut w = CpioWriter::new();
    w.dir(BIN_DIR, 0o755)?;
    let mut names: Vec<&(&str, &[u8])> = programs.iter().collect();
    names.sort_by_key(|(n, _)| *n);
    names.dedup_by_key(|(n, _)| *n);
    for (name, image) in names {
        w.file(&format!("{BIN_DIR}/{name}"), 0o755, image)?;
    }
    // Interpreters and shared libraries at their own paths, each directory made once
    // (parents first: the map is sorted, and a parent sorts before its children).
    let mut made: std::collections::BTreeSet<String> = [BIN_DIR.to_string()].into();
    for (path, data) in support {
        let mut dir = String::new();
        for part in path
            .trim_start_matches('/')
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map_or(&[][..], |(_, d)| d)
        {
            dir.push('/');
            dir.push_str(part);
            if made.insert(dir.clone()) {
                w.dir(&dir, 0o755)?;
            }
        }
        if path.starts_with(&format!("{BIN_DIR}/"))
            && programs
                .iter()
                .any(|(n, _)| format!("{BIN_DIR}/{n}") == *path)
        {
            continue;
        }
        w.file(path, 0o755, data)?;
    }
    w.dir("/etc", 0o755)?;
    w.dir(CONTROL_DIR, 0o755)?;
    let init = format!("{BIN_DIR}/{program}");
    w.file(INIT_FILE, 0o644, init.as_bytes())?;
    w.file(
        ARGV_FILE,
        0o644,
        &nul_list(std::iter::once(init.as_bytes()).chain(args.iter().copied())),
    )?;
    w.file(
        ENVP_FILE,
        0o644,
        &nul_list(env.iter().map(|e| e.as_bytes())),
    )?;
    Ok(w.finish())
}

/// Strings, each followed by a NUL.
fn nul_list<'s>(items: impl Iterator<Item = &'s [u8]>) -> Vec<u8> {
    let mut v = Vec::new();
    for s in items {
        v.extend_from_slice(s);
        v.push(0);
    }
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_env_adds_and_replaces_in_name_order() {
        let e =
            super::run_env(&["TZ=Europe/Paris".into(), "HOME=/tmp".into(), "A=".into()]).unwrap();
        assert_eq!(
            e,
            [
                "A=",
                "HOME=/tmp",
                "PATH=/bin",
                "TERM=dumb",
                "TZ=Europe/Paris",
                "VMSCOPE_BIN=/bin"
            ]
        );
        assert!(super::run_env(&["NOEQUALS".into()]).is_err());
        assert!(super::run_env(&["=x".into()]).is_err());
    }

    use super::*;
    use kfs::{FileType, Ramfs};

    fn read(fs: &Ramfs<'_>, path: &str) -> Vec<u8> {
        let ino = fs
            .lookup(path.as_bytes())
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        fs.data(ino).unwrap().to_vec()
    }

    #[test]
    fn run_image_unpacks_with_the_kernel_parser() {
        let programs: [(&str, &[u8]); 3] = [
            ("hello", b"\x7fELF hello"),
            ("args", b"\x7fELF args"),
            ("mine", b"\x7fELF mine"),
        ];
        let img = run_image(
            &programs,
            "mine",
            &[b"a b", b"", b"--x"],
            &run_env(&[]).unwrap(),
            &Default::default(),
        )
        .unwrap();
        let fs = Ramfs::from_cpio(&img).unwrap();
        assert_eq!(read(&fs, "/bin/hello"), b"\x7fELF hello");
        assert_eq!(read(&fs, "/bin/mine"), b"\x7fELF mine");
        let st = fs.stat(fs.lookup(b"/bin/args").unwrap()).unwrap();
        assert_eq!(
            (st.mode, st.uid, st.gid, st.mtime, st.nlink),
            (0o100755, 0, 0, 0, 1)
        );
        assert_eq!(read(&fs, INIT_FILE), b"/bin/mine");
        assert_eq!(read(&fs, ARGV_FILE), b"/bin/mine\0a b\0\0--x\0");
        assert_eq!(
            read(&fs, ENVP_FILE),
            b"HOME=/\0PATH=/bin\0TERM=dumb\0VMSCOPE_BIN=/bin\0"
        );
        let st = fs.stat(fs.lookup(CONTROL_DIR.as_bytes()).unwrap()).unwrap();
        assert_eq!(st.mode, 0o40755);
        let bin: Vec<_> = fs
            .readdir(fs.lookup(b"/bin").unwrap())
            .unwrap()
            .skip(2)
            .map(|e| (String::from_utf8(e.name.to_vec()).unwrap(), e.file_type))
            .collect();
        assert_eq!(
            bin,
            [
                ("args".to_string(), FileType::Regular),
                ("hello".to_string(), FileType::Regular),
                ("mine".to_string(), FileType::Regular)
            ]
        );
    }

    #[test]
    fn deterministic_and_aligned() {
        let programs: [(&str, &[u8]); 2] = [("b", b"12345"), ("a", b"")];
        let one = run_image(
            &programs,
            "a",
            &[],
            &run_env(&[]).unwrap(),
            &Default::default(),
        )
        .unwrap();
        let two = run_image(
            &[programs[1], programs[0]],
            "a",
            &[],
            &run_env(&[]).unwrap(),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(one, two);
        assert_eq!(one.len() % 4, 0);
        // Every header starts with the newc magic, in order: bin, bin/a, bin/b, etc...
        let names: Vec<_> = kfs::cpio::entries(&one)
            .map(|e| String::from_utf8(e.unwrap().name.to_vec()).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/a",
                "bin/b",
                "etc",
                "etc/vmscope",
                "etc/vmscope/init",
                "etc/vmscope/argv",
                "etc/vmscope/envp"
            ]
        );
        let inos: Vec<u32> = kfs::cpio::entries(&one).map(|e| e.unwrap().ino).collect();
        assert_eq!(inos, (1..=8).collect::<Vec<_>>());
        assert!(run_image(
            &programs,
            "c",
            &[],
            &run_env(&[]).unwrap(),
            &Default::default()
        )
        .is_err());
    }

    #[test]
    fn writer_round_trips_any_data_length() {
        let mut w = CpioWriter::new();
        let data: Vec<u8> = (0..=255).collect();
        for len in 0..9 {
            w.file(&format!("f{len}"), 0o600, &data[..len]).unwrap();
        }
        w.dir("/d/", 0o700).unwrap();
        let img = w.finish();
        let fs = Ramfs::from_cpio(&img).unwrap();
        for len in 0..9 {
            assert_eq!(read(&fs, &format!("/f{len}")), &data[..len]);
        }
        assert_eq!(fs.stat(fs.lookup(b"/d").unwrap()).unwrap().mode, 0o40700);
    }
}
