//! Everything `mke2fs -d` put in an image reads back as in the source tree: file bytes,
//! holes, symlink targets, directory listings and the stat fields the host reports; and
//! `statfs` agrees with `dumpe2fs`.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;
use ext2fs::{Errno, Ext2, MountOptions};

/// Compares the image's subtree at `ino` with the host directory `host`, recursively.
/// Returns the number of objects compared.
fn compare_tree(fs: &mut Ext2<MemDisk>, host: &Path, ino: u32) -> usize {
    let mut count = 1;
    let mut host_names: BTreeSet<Vec<u8>> = [b".".to_vec(), b"..".to_vec()].into();
    if ino == ROOT {
        // mke2fs adds lost+found.
        host_names.insert(b"lost+found".to_vec());
    }
    for e in std::fs::read_dir(host).unwrap() {
        host_names.insert(e.unwrap().file_name().into_encoded_bytes());
    }
    let listed: BTreeSet<Vec<u8>> = list_dir(fs, ino)
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(listed, host_names, "listing of {}", host.display());
    for e in std::fs::read_dir(host).unwrap() {
        let e = e.unwrap();
        let path = e.path();
        let md = std::fs::symlink_metadata(&path).unwrap();
        let child = fs
            .lookup(ino, e.file_name().as_encoded_bytes())
            .unwrap()
            .unwrap();
        let inode = fs.read_inode(child).unwrap();
        let what = path.display();
        assert_eq!(u32::from(inode.mode), md.mode(), "mode of {what}");
        assert_eq!(u64::from(inode.links_count), md.nlink(), "nlink of {what}");
        assert_eq!(inode.uid, md.uid(), "uid of {what}");
        assert_eq!(inode.gid, md.gid(), "gid of {what}");
        assert_eq!(i64::from(inode.mtime), md.mtime(), "mtime of {what}");
        if md.file_type().is_dir() {
            count += compare_tree(fs, &path, child);
        } else if md.file_type().is_symlink() {
            let target = std::fs::read_link(&path)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes();
            assert_eq!(fs.readlink(child).unwrap(), target, "target of {what}");
            assert_eq!(inode.size, md.len(), "size of {what}");
            count += 1;
        } else if md.file_type().is_file() {
            assert_eq!(inode.size, md.len(), "size of {what}");
            assert!(
                read_all(fs, child) == std::fs::read(&path).unwrap(),
                "contents of {what}"
            );
            count += 1;
        } else {
            count += 1;
        }
    }
    count
}

fn check_image(block_size: u32, extra: &[&str]) {
    let (img, src) = standard_image_with(block_size, extra);
    let len = img.len();
    let mut fs = Ext2::mount(
        MemDisk::new(img.clone()),
        MountOptions {
            read_only: true,
            now: NOW,
            device_bytes: len as u64,
        },
    )
    .unwrap();
    assert_eq!(fs.warnings(), Default::default());
    let objects = compare_tree(&mut fs, src.path(), ROOT);
    // 14 files, 4 sparse, 4 symlinks, big/ with 300, nested/ (4 dirs, 2 files), empty/,
    // fifo, and the root; plus lost+found is only in the image (not compared).
    assert_eq!(objects, 14 + 4 + 4 + 1 + 300 + 4 + 2 + 1 + 1 + 1);

    // Holes hold no blocks, and the triple-indirect byte is where it should be.
    let bs = u64::from(block_size);
    let head = lookup_path(&mut fs, "/sparse_head").unwrap();
    assert_eq!(fs.get_block(head, 0, false).unwrap(), None);
    assert!(fs
        .get_block(head, 100 * 1024 / bs, false)
        .unwrap()
        .is_some());
    let tind = lookup_path(&mut fs, "/sparse_tind").unwrap();
    let inode = fs.read_inode(tind).unwrap();
    let levels = if block_size == 1024 { 4 } else { 3 }; // data + indirect levels
    assert_eq!(
        u64::from(inode.blocks),
        levels * bs / 512,
        "i_blocks of sparse_tind"
    );
    if block_size == 1024 {
        assert_ne!(
            inode.block[14], 0,
            "1 KiB blocks: byte 70 MiB is triple indirect"
        );
    }
    let mut byte = [0u8; 2];
    assert_eq!(fs.read_file(tind, TIND_OFFSET, &mut byte).unwrap(), 1);
    assert_eq!(byte[0], b'T');
    let mut zeros = vec![1u8; 4096];
    fs.read_file(tind, TIND_OFFSET - 4096, &mut zeros).unwrap();
    assert!(zeros.iter().all(|&b| b == 0));

    // Fast and slow symlinks are stored as Linux stores them.
    for (name, target) in symlink_targets() {
        let ino = lookup_path(&mut fs, &format!("/{name}")).unwrap();
        let inode = fs.read_inode(ino).unwrap();
        assert_eq!(
            inode.is_fast_symlink(block_size),
            target.len() < 60,
            "{name}"
        );
    }

    // Read-only: writes are refused.
    assert_eq!(fs.create(ROOT, b"new", 0o644, OWNER), Err(Errno::EROFS));
    assert_eq!(fs.write_file(head, 0, b"x"), Err(Errno::EROFS));

    check_statfs(&fs, &img);
}

/// `statfs` against `dumpe2fs`: counts from the header, and f_blocks as the block count
/// less first_data_block, each superblock copy with its descriptor blocks, both bitmaps
/// and the inode table of every group (Linux's ext2_statfs overhead).
fn check_statfs(fs: &Ext2<MemDisk>, img: &[u8]) {
    let (code, text) = run_on_image("dumpe2fs", &[], img);
    assert_eq!(code, 0, "{text}");
    let field = |name: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name}"));
        line.rsplit(' ').next().unwrap().trim().parse().unwrap()
    };
    let span = |l: &str, what: &str| -> u64 {
        let rest = &l[l.find(what).unwrap() + what.len()..];
        let range = rest.split([',', ' ']).find(|s| !s.is_empty()).unwrap();
        let (a, b) = range.split_once('-').unwrap();
        b.parse::<u64>().unwrap() - a.parse::<u64>().unwrap() + 1
    };
    let mut overhead = field("First block:");
    for l in text.lines() {
        let l = l.trim();
        if l.contains("superblock at") {
            overhead += 1 + span(l, "Group descriptors at ");
        }
        if l.starts_with("Inode table at ") {
            overhead += 2 + span(l, "Inode table at ");
        }
    }
    let st = fs.statfs();
    assert_eq!(st.magic, 0xEF53);
    assert_eq!(u64::from(st.bsize), field("Block size:"));
    assert_eq!(st.blocks, field("Block count:") - overhead);
    assert_eq!(st.bfree, field("Free blocks:"));
    assert_eq!(
        st.bavail,
        field("Free blocks:") - field("Reserved block count:")
    );
    assert_eq!(st.files, field("Inode count:"));
    assert_eq!(st.ffree, field("Free inodes:"));
    assert_eq!(st.namelen, 255);
}

#[test]
fn mke2fs_image_reads_back_1k() {
    check_image(1024, &[]);
}

#[test]
fn mke2fs_image_reads_back_1k_eight_groups() {
    check_image(1024, MULTI_GROUP);
}

#[test]
fn mke2fs_image_reads_back_4k() {
    check_image(4096, &[]);
}

/// Resumable readdir: listing one entry per call, restarting from the returned position,
/// gives the same entries as one pass; an offset inside an entry resumes at the next.
#[test]
fn readdir_resumes_at_positions() {
    let (img, _src) = standard_image(1024);
    let mut fs = mount(img);
    let big = lookup_path(&mut fs, "/big").unwrap();
    let all = list_dir(&mut fs, big).unwrap();
    assert_eq!(all.len(), 302);
    let mut pos = 0;
    let mut one_by_one = Vec::new();
    loop {
        let mut got = None;
        let next = fs
            .readdir(big, pos, |e| {
                if got.is_some() {
                    return false;
                }
                got = Some((e.name.to_vec(), e.ino, e.pos, e.next_pos));
                true
            })
            .unwrap();
        match got {
            Some((name, ino, at, after)) => {
                assert!(at >= pos);
                assert_eq!(next, after.max(next).min(next));
                one_by_one.push((name, ino));
                pos = next;
            }
            None => break,
        }
    }
    one_by_one.sort();
    assert_eq!(one_by_one, all);
    // An offset one byte into the first entry (".") resumes at "..".
    let mut first = None;
    fs.readdir(big, 1, |e| {
        first = Some(e.name.to_vec());
        false
    })
    .unwrap();
    assert_eq!(first.as_deref(), Some(&b".."[..]));
}
