//! Error returns where Linux gives them (ENOENT, EEXIST, ENOTEMPTY, ENOTDIR, EISDIR,
//! EMLINK, ENAMETOOLONG, EPERM, EFBIG, ENOSPC), each leaving the file system consistent;
//! and the mount rules (features, state, geometry, revision 0, htree directories).

mod common;

use common::*;
use ext2fs::{layout, Errno, Ext2, MountOptions};

#[test]
fn namespace_errors_match_linux() {
    let (img, _src) = standard_image(1024);
    let mut fs = mount(img);
    let file = lookup_path(&mut fs, "/f_100").unwrap();
    let nested = lookup_path(&mut fs, "/nested").unwrap();
    let empty = lookup_path(&mut fs, "/empty").unwrap();

    // ENOENT
    assert_eq!(fs.lookup(ROOT, b"missing"), Ok(None));
    assert_eq!(fs.unlink(ROOT, b"missing"), Err(Errno::ENOENT));
    assert_eq!(fs.rmdir(ROOT, b"missing"), Err(Errno::ENOENT));
    assert_eq!(fs.rename(ROOT, b"missing", ROOT, b"x"), Err(Errno::ENOENT));
    // EEXIST
    assert_eq!(fs.create(ROOT, b"f_100", 0o644, OWNER), Err(Errno::EEXIST));
    assert_eq!(fs.mkdir(ROOT, b"nested", 0o755, OWNER), Err(Errno::EEXIST));
    assert_eq!(fs.symlink(ROOT, b"fast", b"x", OWNER), Err(Errno::EEXIST));
    assert_eq!(fs.link(file, ROOT, b"f_0"), Err(Errno::EEXIST));
    assert_eq!(fs.mkdir(ROOT, b".", 0o755, OWNER), Err(Errno::EEXIST));
    // ENOTEMPTY
    assert_eq!(fs.rmdir(ROOT, b"nested"), Err(Errno::ENOTEMPTY));
    assert_eq!(
        fs.rename(ROOT, b"empty", ROOT, b"nested"),
        Err(Errno::ENOTEMPTY)
    );
    // ENOTDIR
    assert_eq!(fs.rmdir(ROOT, b"f_100"), Err(Errno::ENOTDIR));
    assert_eq!(fs.lookup(file, b"x"), Err(Errno::ENOTDIR));
    assert_eq!(fs.create(file, b"x", 0o644, OWNER), Err(Errno::ENOTDIR));
    assert_eq!(
        fs.rename(ROOT, b"empty", ROOT, b"f_100"),
        Err(Errno::ENOTDIR)
    );
    // EISDIR
    assert_eq!(fs.unlink(ROOT, b"nested"), Err(Errno::EISDIR));
    assert_eq!(
        fs.rename(ROOT, b"f_100", ROOT, b"empty"),
        Err(Errno::EISDIR)
    );
    assert_eq!(fs.write_file(nested, 0, b"x"), Err(Errno::EISDIR));
    assert_eq!(fs.truncate(nested, 0, true), Err(Errno::EISDIR));
    // EPERM: no hard links to directories.
    assert_eq!(fs.link(nested, ROOT, b"dirlink"), Err(Errno::EPERM));
    // ENAMETOOLONG: 255 bytes is the limit for names; a symlink target must fit a block.
    let long = vec![b'n'; 256];
    assert_eq!(
        fs.create(ROOT, &long, 0o644, OWNER),
        Err(Errno::ENAMETOOLONG)
    );
    assert_eq!(fs.lookup(ROOT, &long), Err(Errno::ENAMETOOLONG));
    let max = fs.create(ROOT, &long[..255], 0o644, OWNER).unwrap();
    assert_eq!(fs.lookup(ROOT, &long[..255]), Ok(Some(max)));
    assert_eq!(
        fs.symlink(ROOT, b"toolong", &vec![b't'; 1024], OWNER),
        Err(Errno::ENAMETOOLONG)
    );
    let s = fs
        .symlink(ROOT, b"longest", &vec![b't'; 1023], OWNER)
        .unwrap();
    assert_eq!(fs.readlink(s).unwrap().len(), 1023);
    // EMLINK: at EXT2_LINK_MAX links, for link, mkdir and a directory moving in.
    let mut inode = fs.read_inode(file).unwrap();
    let saved = inode.links_count;
    inode.links_count = layout::EXT2_LINK_MAX;
    fs.write_inode(file, &inode).unwrap();
    assert_eq!(fs.link(file, ROOT, b"one_more"), Err(Errno::EMLINK));
    inode.links_count = saved;
    fs.write_inode(file, &inode).unwrap();
    let mut dinode = fs.read_inode(nested).unwrap();
    let saved = dinode.links_count;
    dinode.links_count = layout::EXT2_LINK_MAX;
    fs.write_inode(nested, &dinode).unwrap();
    assert_eq!(fs.mkdir(nested, b"sub", 0o755, OWNER), Err(Errno::EMLINK));
    assert_eq!(
        fs.rename(ROOT, b"empty", nested, b"moved"),
        Err(Errno::EMLINK)
    );
    dinode.links_count = saved;
    fs.write_inode(nested, &dinode).unwrap();
    // EFBIG past the maximum file size.
    let limit = fs.max_file_size();
    assert_eq!(fs.write_file(file, limit, b"x"), Err(Errno::EFBIG));
    assert_eq!(fs.truncate(file, limit + 1, false), Err(Errno::EFBIG));
    // Renaming onto another link of the same inode does nothing.
    fs.link(file, ROOT, b"same").unwrap();
    assert_eq!(fs.rename(ROOT, b"same", ROOT, b"f_100"), Ok(None));
    assert_eq!(fs.lookup(ROOT, b"same"), Ok(Some(file)));
    assert_eq!(fs.lookup(ROOT, b"empty"), Ok(Some(empty)));

    // A removed directory that is still someone's working directory lists nothing and
    // cannot gain entries; eviction frees it.
    let gone = fs.mkdir(ROOT, b"gone", 0o755, OWNER).unwrap();
    assert_eq!(fs.rmdir(ROOT, b"gone"), Ok(gone));
    assert_eq!(list_dir(&mut fs, gone), Ok(vec![]));
    assert_eq!(fs.lookup(gone, b".."), Ok(None));
    assert_eq!(fs.create(gone, b"f", 0o644, OWNER), Err(Errno::ENOENT));
    assert_eq!(fs.mkdir(gone, b"d", 0o755, OWNER), Err(Errno::ENOENT));
    assert_eq!(fs.rename(ROOT, b"f_0", gone, b"f"), Err(Errno::ENOENT));
    assert_eq!(fs.evict(gone), Ok(true));

    // An unlinked file that is still open cannot be linked back (ENOENT).
    let tmp = fs.create(ROOT, b"tmp", 0o644, OWNER).unwrap();
    assert_eq!(fs.unlink(ROOT, b"tmp"), Ok(tmp));
    assert_eq!(fs.link(tmp, ROOT, b"back"), Err(Errno::ENOENT));
    assert_eq!(fs.evict(tmp), Ok(true));

    let img = unmount(fs);
    assert_fsck_clean(&img);
}

/// Filling the disk: ENOSPC for blocks, then for inodes; every failure leaves the file
/// system consistent and cleaning up restores the free counts.
#[test]
fn enospc_then_cleanup_is_clean() {
    for bs in [1024, 4096] {
        let img = mkfs(None, bs, 1024, &["-N", "64"]);
        let mut fs = mount(img);
        let initial = fs.statfs();
        // Blocks.
        let f = fs.create(ROOT, b"filler", 0o644, OWNER).unwrap();
        let chunk = pattern(7, 64 * 1024);
        let mut off = 0u64;
        let err = loop {
            match fs.write_file(f, off, &chunk) {
                Ok(n) => off += n as u64,
                Err(e) => break e,
            }
        };
        assert_eq!(err, Errno::ENOSPC);
        assert_eq!(fs.statfs().bfree, 0);
        assert_eq!(fs.read_inode(f).unwrap().size, off);
        // A directory needs a block: ENOSPC, and its inode is given back.
        let ffree = fs.statfs().ffree;
        assert_eq!(fs.mkdir(ROOT, b"d", 0o755, OWNER), Err(Errno::ENOSPC));
        assert_eq!(fs.statfs().ffree, ffree);
        assert_eq!(
            fs.symlink(ROOT, b"s", &[b'x'; 100], OWNER),
            Err(Errno::ENOSPC)
        );
        assert_eq!(fs.statfs().ffree, ffree);
        let mut back = vec![0u8; off as usize];
        fs.read_file(f, 0, &mut back).unwrap();
        assert!(back.chunks(chunk.len()).all(|c| c == &chunk[..c.len()]));
        let img = unmount(fs);
        assert_fsck_clean(&img);
        let mut fs = mount(img);
        let ino = fs.unlink(ROOT, b"filler").unwrap();
        assert!(fs.evict(ino).unwrap());
        assert_eq!(fs.statfs(), initial);
        // Inodes.
        let mut made = 0;
        let err = loop {
            match fs.create(ROOT, format!("file{made}").as_bytes(), 0o644, OWNER) {
                Ok(_) => made += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(err, Errno::ENOSPC);
        assert_eq!(made, initial.ffree);
        assert_eq!(fs.statfs().ffree, 0);
        for i in 0..made {
            let ino = fs.unlink(ROOT, format!("file{i}").as_bytes()).unwrap();
            assert!(fs.evict(ino).unwrap());
        }
        let after = fs.statfs();
        assert_eq!(after.ffree, initial.ffree);
        // The root directory grew by the blocks the names needed.
        let root_blocks = fs.read_inode(ROOT).unwrap().size / u64::from(bs);
        assert_eq!(after.bfree + root_blocks - 1, initial.bfree, "bs {bs}");
        let img = unmount(fs);
        assert_fsck_clean(&img);
    }
}

fn sb_field32(img: &mut [u8], off: usize, f: impl FnOnce(u32) -> u32) {
    let at = 1024 + off;
    let v = u32::from_le_bytes(img[at..at + 4].try_into().unwrap());
    img[at..at + 4].copy_from_slice(&f(v).to_le_bytes());
}

fn sb_field16(img: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([img[1024 + off], img[1025 + off]])
}

fn try_mount(img: Vec<u8>) -> Result<Ext2<MemDisk>, Errno> {
    let len = img.len() as u64;
    Ext2::mount(
        MemDisk::new(img),
        MountOptions {
            read_only: false,
            now: NOW,
            device_bytes: len,
        },
    )
}

#[test]
fn mount_rules() {
    let base = mkfs(None, 1024, 2048, &[]);
    // Bad magic, unknown INCOMPAT feature, bad block size, inode count that lies, device
    // too small: refused.
    let mut img = base.clone();
    img[1024 + layout::S_MAGIC] ^= 1;
    assert_eq!(try_mount(img).err(), Some(Errno::EINVAL));
    let mut img = base.clone();
    sb_field32(&mut img, layout::S_FEATURE_INCOMPAT, |v| v | 0x8000);
    assert_eq!(try_mount(img).err(), Some(Errno::EINVAL));
    let mut img = base.clone();
    sb_field32(&mut img, layout::S_LOG_BLOCK_SIZE, |_| 7);
    assert_eq!(try_mount(img).err(), Some(Errno::EINVAL));
    let mut img = base.clone();
    sb_field32(&mut img, layout::S_INODES_COUNT, |v| v + 8);
    assert_eq!(try_mount(img).err(), Some(Errno::EINVAL));
    let short = base[..base.len() - 1024].to_vec();
    assert_eq!(try_mount(short).err(), Some(Errno::EINVAL));
    // Unknown RO_COMPAT feature: mounted read-only.
    let mut img = base.clone();
    sb_field32(&mut img, layout::S_FEATURE_RO_COMPAT, |v| v | 0x8000);
    let mut fs = try_mount(img).unwrap();
    assert!(fs.is_read_only() && fs.warnings().forced_read_only);
    assert_eq!(fs.mkdir(ROOT, b"d", 0o755, OWNER), Err(Errno::EROFS));

    // A read-write mount marks the file system not clean and counts the mount; unmount
    // restores the clean state.
    let fs = mount(base.clone());
    assert_eq!(fs.warnings(), Default::default());
    let mounted = fs.io().data.borrow().clone();
    assert_eq!(
        sb_field16(&mounted, layout::S_STATE) & layout::EXT2_VALID_FS,
        0
    );
    assert_eq!(
        sb_field16(&mounted, layout::S_MNT_COUNT),
        sb_field16(&base, layout::S_MNT_COUNT) + 1
    );
    let img = unmount(fs);
    assert_eq!(sb_field16(&img, layout::S_STATE), layout::EXT2_VALID_FS);
    // Not unmounted (a crash after sync): the next mount warns and keeps it not clean.
    let mut fs = mount(img);
    fs.sync().unwrap();
    let crashed = fs.io().data.borrow().clone();
    // Metadata is written as it changes, so even without a final sync e2fsck finds the
    // image consistent (it is only marked not clean).
    let mut fs = mount(crashed.clone());
    let f = fs.create(ROOT, b"unsynced", 0o644, OWNER).unwrap();
    fs.write_file(f, 0, &pattern(9, 100_000)).unwrap();
    fs.mkdir(ROOT, b"dir", 0o755, OWNER).unwrap();
    assert_fsck_clean(&fs.io().data.borrow());
    drop(fs);
    let fs = mount(crashed);
    assert!(fs.warnings().not_clean);
    let img = unmount(fs);
    assert_eq!(sb_field16(&img, layout::S_STATE) & layout::EXT2_VALID_FS, 0);
    // Recorded errors are reported.
    let mut img = base.clone();
    img[1024 + layout::S_STATE] |= layout::EXT2_ERROR_FS as u8;
    assert!(try_mount(img).unwrap().warnings().has_errors);
}

/// Revision 0 (no FILETYPE: directory entries without types) works read-write.
#[test]
fn revision_0_read_write() {
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("d")).unwrap();
    std::fs::write(src.path().join("d/f"), b"rev0").unwrap();
    let img = mkfs(Some(src.path()), 1024, 2048, &["-r", "0"]);
    let mut fs = mount(img);
    let d = lookup_path(&mut fs, "/d").unwrap();
    let mut types = Vec::new();
    fs.readdir(d, 0, |e| {
        types.push(e.file_type);
        true
    })
    .unwrap();
    assert!(types.iter().all(|&t| t == layout::FT_UNKNOWN));
    let n = fs.mkdir(d, b"sub", 0o755, OWNER).unwrap();
    let f = fs.create(n, b"g", 0o644, OWNER).unwrap();
    fs.write_file(f, 0, &pattern(3, 5000)).unwrap();
    fs.rename(d, b"sub", ROOT, b"moved").unwrap();
    fs.symlink(ROOT, b"l", b"moved/g", OWNER).unwrap();
    let img = unmount(fs);
    assert_fsck_clean(&img);
    assert_eq!(debugfs(&img, "cat /moved/g"), pattern(3, 5000));
    assert_eq!(debugfs(&img, "cat /d/f"), b"rev0");
}

/// A directory indexed by `e2fsck -D` (htree) reads linearly, and modifying it clears the
/// index flag, as Linux's ext2 does, leaving a file system e2fsck finds clean.
#[test]
fn htree_directory_read_write() {
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("big")).unwrap();
    for i in 0..400 {
        std::fs::write(
            src.path()
                .join(format!("big/file_{i:04}_{}", "z".repeat(i % 40))),
            b"",
        )
        .unwrap();
    }
    let img = mkfs(Some(src.path()), 1024, 4096, &[]);
    let (code, text) = {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("img");
        std::fs::write(&p, &img).unwrap();
        let out = std::process::Command::new(tool("e2fsck"))
            .args(["-fyD"])
            .arg(&p)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (
            out.status.code().unwrap_or(-1),
            (text, std::fs::read(&p).unwrap()),
        )
    };
    assert!(code <= 1, "e2fsck -fyD: {}", text.0);
    let img = text.1;
    let mut fs = mount(img);
    let big = lookup_path(&mut fs, "/big").unwrap();
    assert_ne!(
        fs.read_inode(big).unwrap().flags & layout::EXT2_INDEX_FL,
        0,
        "e2fsck -D indexed it"
    );
    let names = list_dir(&mut fs, big).unwrap();
    assert_eq!(names.len(), 402);
    for i in (0..400).step_by(7) {
        let name = format!("file_{i:04}_{}", "z".repeat(i % 40));
        assert!(fs.lookup(big, name.as_bytes()).unwrap().is_some(), "{name}");
        let ino = fs.unlink(big, name.as_bytes()).unwrap();
        fs.evict(ino).unwrap();
    }
    for i in 0..50 {
        fs.create(big, format!("new_{i}").as_bytes(), 0o644, OWNER)
            .unwrap();
    }
    assert_eq!(fs.read_inode(big).unwrap().flags & layout::EXT2_INDEX_FL, 0);
    let img = unmount(fs);
    assert_fsck_clean(&img);
}

/// Inode placement on an eight-group image, as Linux's allocators place them: top-level
/// directories spread over the groups (Orlov), subdirectories and files stay in their
/// parent's group while it has room.
#[test]
fn orlov_spreads_top_level_directories() {
    let img = mkfs(None, 1024, 8192, MULTI_GROUP);
    // Orlov's candidates for top-level directories: groups with at least the average
    // free blocks and inodes (here, those without superblock copies and reserved
    // descriptor blocks), from dumpe2fs's "N free blocks, M free inodes, ..." lines.
    let (_, text) = run_on_image("dumpe2fs", &[], &img);
    let per_group: Vec<(u64, u64)> = text
        .lines()
        .filter(|l| {
            l.trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
                && l.contains(" free blocks, ")
        })
        .map(|l| {
            let n: Vec<u64> = l
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            (n[0], n[1])
        })
        .collect();
    assert_eq!(per_group.len(), 8);
    let (avg_b, avg_i) = (
        per_group.iter().map(|g| g.0).sum::<u64>() / 8,
        per_group.iter().map(|g| g.1).sum::<u64>() / 8,
    );
    let candidates: std::collections::BTreeSet<u32> = (0..8)
        .filter(|&g| per_group[g as usize].0 >= avg_b && per_group[g as usize].1 >= avg_i)
        .collect();
    assert!(
        candidates.len() >= 2 && candidates.len() < 8,
        "{candidates:?}"
    );

    let mut fs = mount(img);
    let ipg = (fs.statfs().files / 8) as u32;
    let group = |ino: u32| (ino - 1) / ipg;
    let tops: Vec<u32> = (0..8)
        .map(|i| {
            fs.mkdir(ROOT, format!("top{i}").as_bytes(), 0o755, OWNER)
                .unwrap()
        })
        .collect();
    let groups: std::collections::BTreeSet<u32> = tops.iter().map(|&d| group(d)).collect();
    // Fewest directories first: every candidate gets one before any gets two.
    assert_eq!(
        groups, candidates,
        "top-level directories in groups {groups:?}"
    );
    for &top in &tops {
        let sub = fs.mkdir(top, b"sub", 0o755, OWNER).unwrap();
        assert_eq!(group(sub), group(top), "subdirectory near its parent");
        let f = fs.create(sub, b"file", 0o644, OWNER).unwrap();
        assert_eq!(group(f), group(top), "file in its directory's group");
        fs.write_file(f, 0, &pattern(1, 3000)).unwrap();
        let blk = fs.get_block(f, 0, false).unwrap().unwrap().block;
        assert_eq!(
            (blk - 1) / 1024,
            u64::from(group(top)),
            "data in the inode's group"
        );
    }
    let img = unmount(fs);
    assert_fsck_clean(&img);
}
