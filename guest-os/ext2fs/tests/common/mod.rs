//! Shared test support: an in-memory block device, e2fsprogs wrappers (images are made by
//! `mke2fs -d` and judged by `e2fsck -fn` and `debugfs`), path helpers and a seeded PRNG.
#![allow(dead_code)]

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;

use ext2fs::{BlockIo, Errno, Ext2, MountOptions, Owner};

/// Fixed clock for the file system's time stamps (2023-11-14).
pub const NOW: u32 = 1_700_000_000;
pub const ROOT: u32 = 2;
pub const OWNER: Owner = Owner { uid: 0, gid: 0 };

/// A disk image in memory.
pub struct MemDisk {
    pub data: RefCell<Vec<u8>>,
}

impl MemDisk {
    pub fn new(data: Vec<u8>) -> Self {
        MemDisk {
            data: RefCell::new(data),
        }
    }
    pub fn into_inner(self) -> Vec<u8> {
        self.data.into_inner()
    }
}

impl BlockIo for MemDisk {
    fn read_block(&self, blk: u64, buf: &mut [u8]) -> Result<(), Errno> {
        let d = self.data.borrow();
        let off = blk.checked_mul(buf.len() as u64).ok_or(Errno::EIO)? as usize;
        let src = d.get(off..off + buf.len()).ok_or(Errno::EIO)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write_block(&self, blk: u64, buf: &[u8]) -> Result<(), Errno> {
        let mut d = self.data.borrow_mut();
        let off = blk.checked_mul(buf.len() as u64).ok_or(Errno::EIO)? as usize;
        let dst = d.get_mut(off..off + buf.len()).ok_or(Errno::EIO)?;
        dst.copy_from_slice(buf);
        Ok(())
    }
}

/// Finds an e2fsprogs tool on PATH or in the sbin directories, or fails the test saying
/// what to install.
pub fn tool(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/sbin", "/usr/sbin", "/usr/local/sbin"].map(PathBuf::from));
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{name}` not found: the ext2fs tests need e2fsprogs (mke2fs, e2fsck, debugfs; Debian package `e2fsprogs`)");
}

/// `mke2fs -q -F -t ext2 -b BS [-d DIR] [EXTRA...] IMG SIZE_KB`, returned as bytes.
pub fn mkfs(src: Option<&Path>, block_size: u32, size_kb: u32, extra: &[&str]) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("img");
    let mut cmd = Command::new(tool("mke2fs"));
    cmd.args(["-q", "-F", "-t", "ext2", "-b", &block_size.to_string()]);
    // Fixed times and UUID so that images are reproducible.
    cmd.env("E2FSPROGS_FAKE_TIME", NOW.to_string());
    cmd.args([
        "-U",
        "4a8f2a6e-1d4e-4c4b-9a1f-2e6f8c3b5d70",
        "-E",
        "hash_seed=4a8f2a6e-1d4e-4c4b-9a1f-2e6f8c3b5d70",
    ]);
    if let Some(d) = src {
        cmd.arg("-d").arg(d);
    }
    cmd.args(extra).arg(&img).arg(size_kb.to_string());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "mke2fs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&img).unwrap()
}

/// Runs an e2fsprogs tool on a copy of the image; returns (exit status, stdout + stderr).
pub fn run_on_image(tool_name: &str, args: &[&str], img: &[u8]) -> (i32, String) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("img");
    std::fs::write(&path, img).unwrap();
    let out = Command::new(tool(tool_name))
        .args(args)
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// `e2fsck -fn`: panics with its report unless the file system is clean.
pub fn assert_fsck_clean(img: &[u8]) {
    let (code, text) = run_on_image("e2fsck", &["-fn"], img);
    assert_eq!(code, 0, "e2fsck -fn found problems:\n{text}");
}

/// `debugfs -R CMD IMG`'s standard output.
pub fn debugfs(img: &[u8], cmd: &str) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("img");
    std::fs::write(&path, img).unwrap();
    let out = Command::new(tool("debugfs"))
        .arg("-R")
        .arg(cmd)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "debugfs {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn opts(img_len: usize) -> MountOptions {
    MountOptions {
        read_only: false,
        now: NOW,
        device_bytes: img_len as u64,
    }
}

pub fn mount(img: Vec<u8>) -> Ext2<MemDisk> {
    let len = img.len();
    Ext2::mount(MemDisk::new(img), opts(len)).expect("mount")
}

pub fn unmount(fs: Ext2<MemDisk>) -> Vec<u8> {
    fs.unmount().expect("unmount").into_inner()
}

/// Resolves an absolute path without following symlinks.
pub fn lookup_path(fs: &mut Ext2<MemDisk>, path: &str) -> Result<u32, Errno> {
    let mut ino = ROOT;
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        ino = fs.lookup(ino, comp.as_bytes())?.ok_or(Errno::ENOENT)?;
    }
    Ok(ino)
}

/// Splits "/a/b/c" into the inode of "/a/b" and "c".
pub fn parent_of<'a>(fs: &mut Ext2<MemDisk>, path: &'a str) -> (u32, &'a str) {
    let (dir, name) = path.rsplit_once('/').unwrap();
    (lookup_path(fs, dir).unwrap(), name)
}

pub fn read_all(fs: &mut Ext2<MemDisk>, ino: u32) -> Vec<u8> {
    let size = fs.read_inode(ino).unwrap().size as usize;
    let mut buf = vec![0u8; size];
    let n = fs.read_file(ino, 0, &mut buf).unwrap();
    assert_eq!(n, size);
    buf
}

/// Names in a directory (with `.` and `..`), sorted, read in one pass.
pub fn list_dir(fs: &mut Ext2<MemDisk>, dir: u32) -> Result<Vec<(Vec<u8>, u32)>, Errno> {
    let mut out = Vec::new();
    fs.readdir(dir, 0, |e| {
        out.push((e.name.to_vec(), e.ino));
        true
    })?;
    out.sort();
    Ok(out)
}

/// xorshift64*: deterministic test data and choices.
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Pattern data that differs by file and offset.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng::new(seed);
    r.bytes(len)
}

/// Sizes of the regular files in the standard tree: around block boundaries, the end of
/// the direct blocks, and into single and double indirect blocks at 1 KiB blocks (the
/// double-indirect range starts at 268 KiB there).
pub const FILE_SIZES: [usize; 14] = [
    0,
    1,
    100,
    1023,
    1024,
    1025,
    4095,
    4096,
    4097,
    12 * 1024,
    12 * 1024 + 1,
    12 * 4096 + 1,
    269 * 1024 + 7,
    600_000,
];

/// Symlink targets: fast (up to 59 bytes, in i_block) and slow (60 bytes and more).
pub fn symlink_targets() -> Vec<(String, String)> {
    vec![
        ("fast".into(), "f_1".into()),
        ("fast59".into(), "t".repeat(59)),
        ("slow60".into(), "u".repeat(60)),
        ("slow".into(), "nested/a/".repeat(33)),
    ]
}

/// Offset of the one byte of `sparse_tind`: past 64 MiB + 64 KiB + 268 KiB, so in the
/// triple-indirect range at 1 KiB blocks.
pub const TIND_OFFSET: u64 = 70 << 20;

/// Builds the standard source tree for `mke2fs -d`: files of many sizes, sparse files,
/// fast and slow symlinks, a directory with 300 entries, nested and empty directories, a
/// fifo, and some unusual permissions.
pub fn make_tree(root: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::PermissionsExt;
    for (i, &size) in FILE_SIZES.iter().enumerate() {
        std::fs::write(root.join(format!("f_{size}")), pattern(i as u64 + 1, size)).unwrap();
    }
    let mut f = std::fs::File::create(root.join("sparse_head")).unwrap();
    f.seek(SeekFrom::Start(100 * 1024)).unwrap();
    f.write_all(&pattern(100, 5000)).unwrap();
    let mut f = std::fs::File::create(root.join("sparse_mid")).unwrap();
    f.write_all(&pattern(101, 3000)).unwrap();
    f.seek(SeekFrom::Start(300 * 1024)).unwrap();
    f.write_all(&pattern(102, 2000)).unwrap();
    let mut f = std::fs::File::create(root.join("sparse_tail")).unwrap();
    f.write_all(b"0123456789").unwrap();
    f.set_len(200 * 1024).unwrap();
    let mut f = std::fs::File::create(root.join("sparse_tind")).unwrap();
    f.seek(SeekFrom::Start(TIND_OFFSET)).unwrap();
    f.write_all(b"T").unwrap();
    drop(f);
    for (name, target) in symlink_targets() {
        std::os::unix::fs::symlink(target, root.join(name)).unwrap();
    }
    let big = root.join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..300 {
        let name = format!("entry_{i}_{}", "n".repeat(i % 200));
        std::fs::write(big.join(name), format!("{i}")).unwrap();
    }
    std::fs::create_dir_all(root.join("nested/a/b/c")).unwrap();
    std::fs::write(root.join("nested/a/b/c/deep"), b"deep file\n").unwrap();
    std::fs::write(root.join("nested/a/sib"), b"sibling\n").unwrap();
    std::fs::create_dir(root.join("empty")).unwrap();
    std::fs::set_permissions(root.join("f_100"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(root.join("empty"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let st = Command::new("mkfifo")
        .arg(root.join("fifo"))
        .status()
        .unwrap();
    assert!(st.success(), "mkfifo failed");
}

/// The standard tree as an image: (image, source directory kept alive).
pub fn standard_image(block_size: u32) -> (Vec<u8>, tempfile::TempDir) {
    standard_image_with(block_size, &[])
}

/// mke2fs arguments for many block groups: 1 KiB blocks in groups of 1024, so an 8 MiB
/// image has 8 groups (superblock copies in 0, 1, 3, 5, 7) and files cross groups.
pub const MULTI_GROUP: &[&str] = &["-g", "1024"];

/// The standard tree with extra mke2fs arguments.
pub fn standard_image_with(block_size: u32, extra: &[&str]) -> (Vec<u8>, tempfile::TempDir) {
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    // 8 MiB: room for the tree and for the write tests.
    let img = mkfs(Some(src.path()), block_size, 8192, extra);
    (img, src)
}
