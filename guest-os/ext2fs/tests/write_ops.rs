//! Sequences of writes, creates, appends, truncates, unlinks, mkdir/rmdir, renames, links
//! and symlinks at 1, 2 and 4 KiB blocks (and 1 KiB in eight groups): afterwards
//! `e2fsck -fn` finds the image clean (so bitmaps, counts, link counts, i_blocks and
//! directory structure are right) and `debugfs` shows exactly what was written.

mod common;

use std::collections::BTreeMap;

use common::*;
use ext2fs::{BlockIo, Ext2};

#[derive(Debug, Clone, PartialEq)]
enum Node {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
    Special,
}

/// The expected tree: absolute path to node.
struct Model(BTreeMap<String, Node>);

impl Model {
    fn remove_tree(&mut self, path: &str) {
        let prefix = format!("{path}/");
        self.0.retain(|p, _| p != path && !p.starts_with(&prefix));
    }
    fn rename_tree(&mut self, from: &str, to: &str) {
        self.remove_tree(to);
        let prefix = format!("{from}/");
        let moved: Vec<(String, Node)> = self
            .0
            .iter()
            .filter(|(p, _)| *p == from || p.starts_with(&prefix))
            .map(|(p, n)| (p.clone(), n.clone()))
            .collect();
        self.remove_tree(from);
        for (p, n) in moved {
            self.0.insert(format!("{to}{}", &p[from.len()..]), n);
        }
    }
    fn children(&self, dir: &str) -> Vec<String> {
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        self.0
            .keys()
            .filter(|p| {
                p.starts_with(&prefix) && !p[prefix.len()..].contains('/') && p.len() > prefix.len()
            })
            .map(|p| p[prefix.len()..].to_string())
            .collect()
    }
}

/// The model of the standard tree.
fn standard_model(fs: &mut Ext2<MemDisk>) -> Model {
    let mut m = BTreeMap::new();
    fn walk(fs: &mut Ext2<MemDisk>, dir: u32, path: &str, m: &mut BTreeMap<String, Node>) {
        for (name, ino) in list_dir(fs, dir).unwrap() {
            if name == b"." || name == b".." {
                continue;
            }
            let p = format!(
                "{}/{}",
                if path == "/" { "" } else { path },
                String::from_utf8(name).unwrap()
            );
            let inode = fs.read_inode(ino).unwrap();
            let node = if inode.is_dir() {
                walk(fs, ino, &p, m);
                Node::Dir
            } else if inode.is_reg() {
                Node::File(read_all(fs, ino))
            } else if inode.is_symlink() {
                Node::Symlink(fs.readlink(ino).unwrap())
            } else {
                Node::Special
            };
            m.insert(p, node);
        }
    }
    walk(fs, ROOT, "/", &mut m);
    Model(m)
}

fn write_at(fs: &mut Ext2<MemDisk>, m: &mut Model, path: &str, off: usize, data: &[u8]) {
    let ino = lookup_path(fs, path).unwrap();
    assert_eq!(fs.write_file(ino, off as u64, data).unwrap(), data.len());
    let Some(Node::File(v)) = m.0.get_mut(path) else {
        panic!("{path} not a file in the model")
    };
    if v.len() < off + data.len() {
        v.resize(off + data.len(), 0);
    }
    v[off..off + data.len()].copy_from_slice(data);
}

fn truncate(fs: &mut Ext2<MemDisk>, m: &mut Model, path: &str, size: usize) {
    let ino = lookup_path(fs, path).unwrap();
    fs.truncate(ino, size as u64, true).unwrap();
    let Some(Node::File(v)) = m.0.get_mut(path) else {
        panic!()
    };
    v.resize(size, 0);
}

fn create(fs: &mut Ext2<MemDisk>, m: &mut Model, path: &str) {
    let (dir, name) = parent_of(fs, path);
    fs.create(dir, name.as_bytes(), 0o644, OWNER).unwrap();
    m.0.insert(path.to_string(), Node::File(Vec::new()));
}

fn unlink(fs: &mut Ext2<MemDisk>, m: &mut Model, path: &str) {
    let (dir, name) = parent_of(fs, path);
    let ino = fs.unlink(dir, name.as_bytes()).unwrap();
    fs.evict(ino).unwrap();
    m.0.remove(path);
}

fn mkdir(fs: &mut Ext2<MemDisk>, m: &mut Model, path: &str) {
    let (dir, name) = parent_of(fs, path);
    fs.mkdir(dir, name.as_bytes(), 0o755, OWNER).unwrap();
    m.0.insert(path.to_string(), Node::Dir);
}

fn rename(fs: &mut Ext2<MemDisk>, m: &mut Model, from: &str, to: &str) {
    let (od, on) = parent_of(fs, from);
    let (nd, nn) = parent_of(fs, to);
    if let Some(victim) = fs.rename(od, on.as_bytes(), nd, nn.as_bytes()).unwrap() {
        assert!(fs.evict(victim).unwrap());
    }
    m.rename_tree(from, to);
}

fn run_scenario(block_size: u32, extra: &[&str]) {
    let (img, _src) = standard_image_with(block_size, extra);
    let mut fs = mount(img);
    let mut m = standard_model(&mut fs);
    let free_before = fs.statfs();

    // Creates, writes and appends; a file through double indirect blocks at 1 KiB.
    create(&mut fs, &mut m, "/new1");
    write_at(&mut fs, &mut m, "/new1", 0, &pattern(1000, 5000));
    write_at(&mut fs, &mut m, "/new1", 5000, &pattern(1001, 3000));
    create(&mut fs, &mut m, "/bigwrite");
    let big = pattern(1002, 700_000);
    for (i, chunk) in big.chunks(7000).enumerate() {
        write_at(&mut fs, &mut m, "/bigwrite", i * 7000, chunk);
    }
    write_at(
        &mut fs,
        &mut m,
        "/f_600000",
        300_000,
        &pattern(1003, 10_000),
    );
    // Into holes.
    write_at(
        &mut fs,
        &mut m,
        "/sparse_mid",
        100 * 1024,
        &pattern(1004, 2000),
    );
    write_at(&mut fs, &mut m, "/sparse_tind", 5, b"head");
    write_at(
        &mut fs,
        &mut m,
        "/sparse_tail",
        150 * 1024,
        b"in the trailing hole",
    );

    // Truncates: shrink across the indirect levels, grow into a hole, write past it.
    truncate(&mut fs, &mut m, "/f_275463", 20_000);
    truncate(&mut fs, &mut m, "/f_275463", 400_000);
    write_at(&mut fs, &mut m, "/f_275463", 390_000, b"12345");
    truncate(&mut fs, &mut m, "/f_600000", 0);
    truncate(&mut fs, &mut m, "/sparse_tind", 10);
    truncate(&mut fs, &mut m, "/f_4097", 4097 - 1000);
    truncate(&mut fs, &mut m, "/f_4097", 4097);

    // Unlinks, including a third of the 300-entry directory.
    unlink(&mut fs, &mut m, "/f_4096");
    let big_names = m.children("/big");
    for name in big_names.iter().step_by(3) {
        unlink(&mut fs, &mut m, &format!("/big/{name}"));
    }
    // New entries reuse the freed space.
    for i in 0..40 {
        create(
            &mut fs,
            &mut m,
            &format!("/big/again_{i}_{}", "x".repeat(i * 5)),
        );
    }

    // Directories.
    mkdir(&mut fs, &mut m, "/d1");
    mkdir(&mut fs, &mut m, "/d1/d2");
    create(&mut fs, &mut m, "/d1/d2/inner");
    write_at(&mut fs, &mut m, "/d1/d2/inner", 0, b"inner data");
    let (root, _) = parent_of(&mut fs, "/empty");
    let ino = fs.rmdir(root, b"empty").unwrap();
    assert!(fs.evict(ino).unwrap());
    m.0.remove("/empty");
    mkdir(&mut fs, &mut m, "/grow");
    for i in 0..120 {
        // Long names: the directory grows by several blocks.
        create(&mut fs, &mut m, &format!("/grow/{i:03}_{}", "g".repeat(60)));
    }

    // Renames: across directories, replacing a file, moving a directory (its `..`),
    // replacing an empty directory, within one directory.
    rename(&mut fs, &mut m, "/new1", "/d1/renamed");
    rename(&mut fs, &mut m, "/f_1", "/f_100");
    rename(&mut fs, &mut m, "/d1/d2", "/nested/moved_d2");
    mkdir(&mut fs, &mut m, "/e1");
    rename(&mut fs, &mut m, "/nested/a/b/c", "/e1");
    rename(&mut fs, &mut m, "/f_1023", "/f_1023_renamed");
    mkdir(&mut fs, &mut m, "/nested/a/b/c2");
    mkdir(&mut fs, &mut m, "/nested/a/b/c3");
    rename(&mut fs, &mut m, "/nested/a/b/c2", "/nested/a/b/c3");

    // Links, symlinks, devices.
    let (d1, _) = parent_of(&mut fs, "/d1/x");
    let f1025 = lookup_path(&mut fs, "/f_1025").unwrap();
    fs.link(f1025, d1, b"hard").unwrap();
    m.0.insert("/d1/hard".into(), m.0["/f_1025"].clone());
    fs.symlink(d1, b"sym_fast", b"../f_1025", OWNER).unwrap();
    m.0.insert("/d1/sym_fast".into(), Node::Symlink(b"../f_1025".to_vec()));
    let long = "long/".repeat(40);
    fs.symlink(d1, b"sym_slow", long.as_bytes(), OWNER).unwrap();
    m.0.insert("/d1/sym_slow".into(), Node::Symlink(long.into_bytes()));
    fs.mknod(d1, b"null", 0o020666, (1 << 20) | 3, OWNER)
        .unwrap();
    fs.mknod(d1, b"bigdev", 0o060600, (300 << 20) | 70000, OWNER)
        .unwrap();
    fs.mknod(d1, b"pipe", 0o010644, 0, OWNER).unwrap();
    for n in ["null", "bigdev", "pipe"] {
        m.0.insert(format!("/d1/{n}"), Node::Special);
    }
    // Unlinked while "open": the inode lives until evicted.
    create(&mut fs, &mut m, "/tmpfile");
    write_at(&mut fs, &mut m, "/tmpfile", 0, &pattern(1005, 30_000));
    let tmp = lookup_path(&mut fs, "/tmpfile").unwrap();
    fs.unlink(ROOT, b"tmpfile").unwrap();
    m.0.remove("/tmpfile");
    let mut still = vec![0u8; 30_000];
    fs.read_file(tmp, 0, &mut still).unwrap();
    assert_eq!(still, pattern(1005, 30_000));
    assert!(fs.evict(tmp).unwrap());

    // A block in the triple-indirect range (past 64 MiB at 1 KiB blocks, past 4 GiB at
    // 4 KiB): one data block and three indirect blocks, all freed again by truncate.
    let bfree = fs.statfs().bfree;
    let far = fs.create(ROOT, b"far", 0o644, OWNER).unwrap();
    let apb = u64::from(block_size / 4);
    let tind_block = 12 + apb + apb * apb + 5;
    let off = tind_block * u64::from(block_size) + 17;
    assert_eq!(fs.write_file(far, off, b"far away"), Ok(8));
    let inode = fs.read_inode(far).unwrap();
    assert_ne!(inode.block[14], 0);
    assert_eq!(inode.blocks, 4 * block_size / 512);
    assert_eq!(fs.statfs().bfree, bfree - 4);
    let mut back = [0u8; 10];
    assert_eq!(fs.read_file(far, off - 1, &mut back), Ok(9));
    assert_eq!(&back[..9], b"\0far away");
    fs.truncate(far, 0, true).unwrap();
    assert_eq!(fs.read_inode(far).unwrap().block, [0; 15]);
    assert_eq!(fs.statfs().bfree, bfree);
    fs.unlink(ROOT, b"far").unwrap();
    assert!(fs.evict(far).unwrap());

    // Our own view matches the model before unmounting.
    let now = standard_model(&mut fs);
    assert!(now.0 == m.0, "tree differs from the model");
    assert_ne!(fs.statfs(), free_before);

    let img = unmount(fs);
    assert_fsck_clean(&img);

    // debugfs sees the same tree and bytes.
    check_with_debugfs(&img, &m);
    let (null, big_dev) = (
        debugfs(&img, "stat /d1/null"),
        debugfs(&img, "stat /d1/bigdev"),
    );
    assert!(
        String::from_utf8_lossy(&null).contains("Device major/minor number: 01:03"),
        "{}",
        String::from_utf8_lossy(&null)
    );
    assert!(
        String::from_utf8_lossy(&big_dev).contains("Device major/minor number: 300:70000"),
        "{}",
        String::from_utf8_lossy(&big_dev)
    );
    let hard = String::from_utf8_lossy(&debugfs(&img, "stat /d1/hard")).to_string();
    assert!(hard.contains("Links: 2"), "{hard}");

    // And a fresh mount reads the same.
    let mut fs = mount(img);
    let again = standard_model(&mut fs);
    assert!(again.0 == m.0, "tree differs after remount");
}

/// Every directory's names (`debugfs ls -p`) and link count (`stat`), and, from one
/// `rdump` of the whole tree, every file's bytes and every symlink's target.
fn check_with_debugfs(img: &[u8], m: &Model) {
    let mut dirs = vec!["/".to_string()];
    dirs.extend(
        m.0.iter()
            .filter(|(_, n)| **n == Node::Dir)
            .map(|(p, _)| p.clone()),
    );
    let script: String = dirs
        .iter()
        .map(|d| format!("ls -p {d}\nstat {d}\n"))
        .collect();
    let out = debugfs_script(img, &script);
    for (i, dir) in dirs.iter().enumerate() {
        let ls = &out[2 * i];
        // Lines are /ino/mode/uid/gid/name/size/; unused entries (inode 0) are listed too.
        let mut names: Vec<String> = ls
            .lines()
            .filter(|l| !l.starts_with("/0/"))
            .filter_map(|l| l.split('/').nth(5).map(str::to_string))
            .collect();
        names.retain(|n| n != "." && n != "..");
        names.sort();
        let mut want = m.children(dir);
        want.sort();
        let extra: Vec<_> = names.iter().filter(|n| !want.contains(n)).collect();
        let missing: Vec<_> = want.iter().filter(|n| !names.contains(n)).collect();
        assert!(
            names == want,
            "debugfs ls -p {dir}: extra {extra:?}, missing {missing:?}"
        );
        let base = dir.trim_end_matches('/');
        let subdirs = m
            .children(dir)
            .iter()
            .filter(|c| m.0[&format!("{base}/{c}")] == Node::Dir)
            .count();
        let st = &out[2 * i + 1];
        assert!(
            st.contains(&format!("Links: {}", 2 + subdirs)),
            "links of {dir}: {st}"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("tree");
    std::fs::create_dir(&dump).unwrap();
    debugfs(img, &format!("rdump / {}", dump.display()));
    for (path, node) in &m.0 {
        let host = dump.join(&path[1..]);
        match node {
            Node::File(data) => {
                let got = std::fs::read(&host).unwrap();
                assert!(
                    got == *data,
                    "debugfs rdump {path}: {} bytes, want {}",
                    got.len(),
                    data.len()
                );
            }
            Node::Symlink(target) => {
                let got = std::fs::read_link(&host)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes();
                assert_eq!(got, *target, "{path}");
            }
            Node::Dir => assert!(host.is_dir(), "{path}"),
            Node::Special => {}
        }
    }
}

/// Runs a debugfs command script (`-f`); returns each command's output.
fn debugfs_script(img: &[u8], script: &str) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let (path, cmds) = (tmp.path().join("img"), tmp.path().join("cmds"));
    std::fs::write(&path, img).unwrap();
    std::fs::write(&cmds, script).unwrap();
    let out = std::process::Command::new(tool("debugfs"))
        .arg("-f")
        .arg(&cmds)
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut parts: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("debugfs: ") {
            parts.push(String::new());
        } else if let Some(p) = parts.last_mut() {
            p.push_str(line);
            p.push('\n');
        }
    }
    assert_eq!(
        parts.len(),
        script.lines().count(),
        "debugfs -f output: {text}"
    );
    parts
}

#[test]
fn write_sequence_1k_is_fsck_clean() {
    run_scenario(1024, &[]);
}

#[test]
fn write_sequence_1k_eight_groups_is_fsck_clean() {
    run_scenario(1024, MULTI_GROUP);
}

#[test]
fn write_sequence_2k_is_fsck_clean() {
    run_scenario(2048, &[]);
}

#[test]
fn write_sequence_4k_is_fsck_clean() {
    run_scenario(4096, &[]);
}

/// The kernel's path for file data: the page cache maps each block of a page with
/// `get_block(create)`, writes the page to the disk itself (zeroing what it did not write
/// in blocks that come back `new`), and sets `i_size` with `truncate`. The result is what
/// debugfs reads, and e2fsck finds it clean.
#[test]
fn page_cache_style_writes_through_get_block() {
    for block_size in [1024u32, 4096] {
        let mut fs = mount(mkfs(None, block_size, 4096, &[]));
        let ino = fs.create(ROOT, b"paged", 0o644, OWNER).unwrap();
        let page = 4096usize;
        let bs = block_size as usize;
        // Pages 0, 1 and 70 (a hole between), each written fully but the last one half.
        let mut expected = vec![0u8; 70 * page + page / 2];
        for (index, len) in [(0usize, page), (1, page), (70, page / 2)] {
            let data = pattern(index as u64 + 50, len);
            expected[index * page..index * page + len].copy_from_slice(&data);
            let mut page_buf = vec![0u8; page];
            page_buf[..len].copy_from_slice(&data);
            for b in 0..page / bs {
                let fblk = ((index * page) / bs + b) as u64;
                if b * bs >= len {
                    break; // past what this write covers: not mapped
                }
                let m = fs.get_block(ino, fblk, true).unwrap().unwrap();
                assert!(m.new, "block {fblk} is fresh");
                // A second lookup finds the same block, no longer new.
                assert_eq!(
                    fs.get_block(ino, fblk, false).unwrap().unwrap().block,
                    m.block
                );
                fs.io()
                    .write_block(m.block, &page_buf[b * bs..(b + 1) * bs])
                    .unwrap();
            }
            let end = (index * page + len) as u64;
            if end > fs.read_inode(ino).unwrap().size {
                fs.truncate(ino, end, false).unwrap();
            }
        }
        assert_eq!(
            fs.get_block(ino, (2 * page / bs) as u64, false).unwrap(),
            None,
            "hole"
        );
        assert!(read_all(&mut fs, ino) == expected);
        let img = unmount(fs);
        assert_fsck_clean(&img);
        assert!(
            debugfs(&img, "cat /paged") == expected,
            "debugfs cat at {block_size}"
        );
    }
}
