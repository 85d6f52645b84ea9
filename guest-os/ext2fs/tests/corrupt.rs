//! Corrupt images: many seeds, each overwriting blocks of a populated image (anywhere, or
//! aimed at the superblock, group descriptors, bitmaps, inode table, directory blocks and
//! indirect blocks), then mounting and walking, reading and writing everything. Only `Ok`
//! and `Err` may come back: never a panic, and every seed finishes in bounded time. Plus
//! hand-made damage with the error it must give.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use ext2fs::{Errno, Ext2, MountOptions};

/// Block numbers of an image's metadata and of its directory and indirect blocks, found on
/// the clean image before damaging it.
struct Targets {
    block_size: usize,
    gdt: Vec<u64>,
    bitmaps: Vec<u64>,
    inode_tables: Vec<u64>,
    dir_blocks: Vec<u64>,
    indirect: Vec<u64>,
}

fn find_targets(img: &[u8], block_size: u32) -> Targets {
    let (code, text) = run_on_image("dumpe2fs", &[], img);
    assert_eq!(code, 0, "{text}");
    let mut t = Targets {
        block_size: block_size as usize,
        gdt: Vec::new(),
        bitmaps: Vec::new(),
        inode_tables: Vec::new(),
        dir_blocks: Vec::new(),
        indirect: Vec::new(),
    };
    let range = |s: &str| -> (u64, u64) {
        let r = s.split([' ', ',']).next().unwrap();
        match r.split_once('-') {
            Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
            None => (r.parse().unwrap(), r.parse().unwrap()),
        }
    };
    for l in text.lines().map(str::trim) {
        if let Some(i) = l.find("Group descriptors at ") {
            let (a, b) = range(&l[i + 21..]);
            t.gdt.extend(a..=b);
        }
        for key in ["Block bitmap at ", "Inode bitmap at "] {
            if let Some(rest) = l.strip_prefix(key) {
                t.bitmaps.push(range(rest).0);
            }
        }
        if let Some(rest) = l.strip_prefix("Inode table at ") {
            let (a, b) = range(rest);
            t.inode_tables.extend(a..=b);
        }
    }
    // Directory blocks and indirect blocks, through the crate on the clean image.
    let mut fs = Ext2::mount(
        MemDisk::new(img.to_vec()),
        MountOptions {
            read_only: true,
            now: NOW,
            device_bytes: img.len() as u64,
        },
    )
    .unwrap();
    let mut stack = vec![ROOT];
    while let Some(dir) = stack.pop() {
        let size = fs.read_inode(dir).unwrap().size;
        for i in 0..size / u64::from(block_size) {
            t.dir_blocks
                .push(fs.get_block(dir, i, false).unwrap().unwrap().block);
        }
        for (name, ino) in list_dir(&mut fs, dir).unwrap() {
            if name == b"." || name == b".." {
                continue;
            }
            let inode = fs.read_inode(ino).unwrap();
            if inode.is_dir() {
                stack.push(ino);
            }
            if inode.is_dir() || inode.is_reg() {
                t.indirect.extend(
                    inode.block[12..]
                        .iter()
                        .filter(|&&b| b != 0)
                        .map(|&b| u64::from(b)),
                );
            }
        }
    }
    assert!(!t.dir_blocks.is_empty() && !t.indirect.is_empty() && !t.inode_tables.is_empty());
    t
}

/// Damages `img` in one of several ways chosen by the seed.
fn damage(img: &mut [u8], t: &Targets, rng: &mut Rng) -> &'static str {
    let bs = t.block_size;
    let nblocks = (img.len() / bs) as u64;
    let pick = |rng: &mut Rng, v: &[u64]| v[rng.below(v.len() as u64) as usize];
    // A block number that means something here (so damage links structures together).
    let plausible = |rng: &mut Rng| -> u32 {
        match rng.below(4) {
            0 => rng.below(nblocks) as u32,
            1 => 0,
            2 => u32::MAX - rng.below(4) as u32,
            _ => rng.next() as u32,
        }
    };
    let scribble = |img: &mut [u8], rng: &mut Rng, blk: u64, words: u64| {
        for _ in 0..words {
            let off = blk as usize * bs + (rng.below(bs as u64 / 4) * 4) as usize;
            let v = plausible(rng);
            img[off..off + 4].copy_from_slice(&v.to_le_bytes());
        }
    };
    let randomize = |img: &mut [u8], rng: &mut Rng, blk: u64| {
        let off = blk as usize * bs;
        let bytes = rng.bytes(bs);
        img[off..off + bs].copy_from_slice(&bytes);
    };
    match rng.below(9) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let b = rng.below(nblocks);
                randomize(img, rng, b);
            }
            "random blocks"
        }
        1 => {
            // Superblock fields (the first 256 bytes hold every field mount reads).
            for _ in 0..1 + rng.below(3) {
                let off = 1024 + (rng.below(64) * 4) as usize;
                let v = plausible(rng);
                img[off..off + 4].copy_from_slice(&v.to_le_bytes());
            }
            "superblock fields"
        }
        2 => {
            let b = pick(rng, &t.gdt);
            {
                let n = 1 + rng.below(4);
                scribble(img, rng, b, n)
            };
            "group descriptors"
        }
        3 => {
            let b = pick(rng, &t.inode_tables);
            if rng.below(2) == 0 {
                randomize(img, rng, b);
            } else {
                {
                    let n = 1 + rng.below(16);
                    scribble(img, rng, b, n)
                };
            }
            "inode table"
        }
        4 => {
            let b = pick(rng, &t.dir_blocks);
            match rng.below(3) {
                0 => randomize(img, rng, b),
                1 => {
                    let n = 1 + rng.below(8);
                    scribble(img, rng, b, n)
                }
                _ => {
                    // rec_len and name_len of the first entries: 0, misaligned, too
                    // short, past the block.
                    let off = b as usize * bs + 4 + (rng.below(4) * 12) as usize;
                    let v = [0u16, 4, 13, bs as u16, 0xfffc][rng.below(5) as usize];
                    img[off..off + 2].copy_from_slice(&v.to_le_bytes());
                    img[off + 2] = rng.next() as u8;
                }
            }
            "directory block"
        }
        5 => {
            let b = pick(rng, &t.indirect);
            match rng.below(3) {
                0 => randomize(img, rng, b),
                1 => {
                    let n = 1 + rng.below(32);
                    scribble(img, rng, b, n)
                }
                _ => {
                    // Point entries at the block itself or at another indirect block.
                    for _ in 0..1 + rng.below(8) {
                        let off = b as usize * bs + (rng.below(bs as u64 / 4) * 4) as usize;
                        let target = if rng.below(2) == 0 {
                            b
                        } else {
                            pick(rng, &t.indirect)
                        };
                        img[off..off + 4].copy_from_slice(&(target as u32).to_le_bytes());
                    }
                }
            }
            "indirect block"
        }
        6 => {
            let b = pick(rng, &t.bitmaps);
            randomize(img, rng, b);
            "bitmap"
        }
        7 => {
            // Directory entries naming other inodes: the root, a directory, anything.
            let b = pick(rng, &t.dir_blocks);
            for _ in 0..1 + rng.below(4) {
                let off = b as usize * bs + (rng.below(bs as u64 / 4) * 4) as usize;
                let v = [2u32, 11, 12, rng.below(2048) as u32][rng.below(4) as usize];
                img[off..off + 4].copy_from_slice(&v.to_le_bytes());
            }
            "directory inode numbers"
        }
        _ => {
            // A bit of everything.
            for v in [&t.gdt, &t.inode_tables, &t.dir_blocks, &t.indirect] {
                let b = pick(rng, v);
                {
                    let n = 1 + rng.below(4);
                    scribble(img, rng, b, n)
                };
            }
            "mixed"
        }
    }
}

/// Walks the tree (each directory once, bounded depth), reads every file, lists every
/// directory, reads every link; then creates, writes, truncates, renames, unlinks and
/// evicts. Results are ignored: only panics and hangs matter. Returns the operations
/// that succeeded, to show the walk got somewhere.
fn exercise<D: ext2fs::BlockIo>(fs: &mut Ext2<D>, rng: &mut Rng) -> usize {
    let mut ok = 0usize;
    let mut seen = HashSet::new();
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    let mut stack = vec![(ROOT, 0u32)];
    let mut buf = vec![0u8; 64 * 1024];
    while let Some((dir, depth)) = stack.pop() {
        if !seen.insert(dir) || depth > 16 {
            continue;
        }
        dirs.push(dir);
        let mut entries = Vec::new();
        let _ = fs.readdir(dir, 0, |e| {
            entries.push((e.name.to_vec(), e.ino));
            entries.len() < 4096
        });
        for (name, ino) in entries {
            if fs.lookup(dir, &name).is_ok() {
                ok += 1;
            }
            let Ok(inode) = fs.iget(ino) else { continue };
            if inode.is_dir() {
                stack.push((ino, depth + 1));
            } else if inode.is_symlink() {
                ok += usize::from(fs.readlink(ino).is_ok());
            } else if inode.is_reg() {
                files.push((dir, name, ino));
                ok += usize::from(fs.read_file(ino, 0, &mut buf).is_ok());
                let _ = fs.read_file(ino, inode.size.saturating_sub(100), &mut buf[..100]);
                let _ = fs.read_file(ino, inode.size / 2, &mut buf[..4096]);
            }
        }
    }
    // Mutations.
    let data = rng.bytes(20_000);
    for (i, &dir) in dirs.iter().take(6).enumerate() {
        let name = format!("new{i}");
        if let Ok(f) = fs.create(dir, name.as_bytes(), 0o644, OWNER) {
            ok += 1;
            let _ = fs.write_file(f, rng.below(300_000), &data);
            let _ = fs.truncate(f, rng.below(30_000), true);
        }
        if fs
            .mkdir(dir, format!("dir{i}").as_bytes(), 0o755, OWNER)
            .is_ok()
        {
            ok += 1;
        }
        let _ = fs.symlink(dir, format!("sl{i}").as_bytes(), &[b's'; 300], OWNER);
        let _ = fs.rename(dir, name.as_bytes(), ROOT, format!("moved{i}").as_bytes());
    }
    for (k, (dir, name, ino)) in files.iter().enumerate().take(40) {
        match k % 4 {
            0 => {
                let _ = fs.write_file(*ino, rng.below(1 << 20), &data[..3000]);
            }
            1 => {
                let _ = fs.truncate(*ino, rng.below(100_000), true);
            }
            2 => {
                if let Ok(v) = fs.unlink(*dir, name) {
                    ok += 1;
                    let _ = fs.evict(v);
                }
            }
            _ => {
                let target = dirs[rng.below(dirs.len() as u64) as usize];
                if let Ok(Some(v)) = fs.rename(*dir, name, target, b"renamed") {
                    let _ = fs.evict(v);
                }
            }
        }
    }
    for &dir in dirs.iter().skip(1).take(10) {
        let _ = fs.rmdir(ROOT, format!("dir{dir}").as_bytes());
        let _ = fs.get_block(dir, rng.below(1 << 20), true);
    }
    let _ = fs.statfs();
    let _ = fs.sync();
    ok
}

fn run_seeds(block_size: u32, extra: &[&str], seeds: std::ops::Range<u64>) {
    let (clean, _src) = standard_image_with(block_size, extra);
    let targets = find_targets(&clean, block_size);
    let (mut mounted, mut useful) = (0, 0);
    let mut kinds = std::collections::BTreeMap::new();
    for seed in seeds.clone() {
        let started = Instant::now();
        let mut rng = Rng::new(seed * 7919 + u64::from(block_size));
        let mut img = clean.clone();
        let kind = damage(&mut img, &targets, &mut rng);
        *kinds.entry(kind).or_insert(0) += 1;
        let len = img.len() as u64;
        if let Ok(mut fs) = Ext2::mount(
            MemDisk::new(img),
            MountOptions {
                read_only: false,
                now: NOW,
                device_bytes: len,
            },
        ) {
            mounted += 1;
            if exercise(&mut fs, &mut rng) > 100 {
                useful += 1;
            }
            if let Ok(io) = fs.unmount() {
                // Whatever is left mounts again (or is refused) and walks.
                if let Ok(mut fs) = Ext2::mount(
                    io,
                    MountOptions {
                        read_only: true,
                        now: NOW,
                        device_bytes: len,
                    },
                ) {
                    exercise(&mut fs, &mut rng);
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "seed {seed} ({kind}) took {:?}",
            started.elapsed()
        );
    }
    let n = seeds.end - seeds.start;
    eprintln!("{block_size}-byte blocks {extra:?}: {n} seeds, {mounted} mounted, {useful} walked far, kinds {kinds:?}");
    // Most damage leaves the file system mountable and most of the tree reachable: the
    // test exercises the damaged structures rather than stopping at mount.
    assert!(mounted * 2 > n, "only {mounted} of {n} mounted");
    assert!(useful * 2 > n, "only {useful} of {n} walked far");
}

/// Seeds per block size: 150, or EXT2_CORRUPT_SEEDS for longer runs.
fn seed_count() -> u64 {
    std::env::var("EXT2_CORRUPT_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150)
}

#[test]
fn corrupt_images_never_panic_1k() {
    run_seeds(1024, &[], 0..seed_count());
}

#[test]
fn corrupt_images_never_panic_1k_eight_groups() {
    run_seeds(1024, MULTI_GROUP, 2_000_000..2_000_000 + seed_count() / 2);
}

#[test]
fn corrupt_images_never_panic_4k() {
    run_seeds(4096, &[], 1_000_000..1_000_000 + seed_count());
}

/// Hand-made damage and the errors it gives.
#[test]
fn specific_damage_gives_euclean() {
    let (clean, _src) = standard_image(1024);
    let t = find_targets(&clean, 1024);
    let bs = 1024usize;

    // A directory block whose first rec_len is 0 (a chain that would loop forever).
    let mut img = clean.clone();
    let mut fs = mount(img.clone());
    let big = lookup_path(&mut fs, "/big").unwrap();
    let blk0 = fs.get_block(big, 0, false).unwrap().unwrap().block as usize;
    drop(fs);
    img[blk0 * bs + 4..blk0 * bs + 6].copy_from_slice(&0u16.to_le_bytes());
    let mut fs = mount(img);
    assert_eq!(fs.lookup(big, b"x"), Err(Errno::EUCLEAN));
    assert_eq!(list_dir(&mut fs, big), Err(Errno::EUCLEAN));
    assert_eq!(fs.create(big, b"x", 0o644, OWNER), Err(Errno::EUCLEAN));
    let img = unmount(fs);
    // The error is recorded in the superblock.
    assert_ne!(
        img[1024 + ext2fs::layout::S_STATE] & ext2fs::layout::EXT2_ERROR_FS as u8,
        0
    );

    // An indirect block whose entries all point at itself: reads give its bytes (as Linux
    // would), truncate and evict finish, and freeing the same block twice is caught.
    let mut img = clean.clone();
    let mut fs = mount(img.clone());
    let f = lookup_path(&mut fs, "/f_275463").unwrap();
    let ind = fs.read_inode(f).unwrap().block[12] as usize;
    drop(fs);
    for i in 0..bs / 4 {
        img[ind * bs + i * 4..ind * bs + i * 4 + 4].copy_from_slice(&(ind as u32).to_le_bytes());
    }
    let mut fs = mount(img);
    let mut buf = vec![0u8; 300_000];
    assert!(fs.read_file(f, 0, &mut buf).is_ok());
    assert_eq!(fs.truncate(f, 0, true), Err(Errno::EUCLEAN));
    assert_eq!(fs.read_inode(f).unwrap().block, [0; 15]);

    // Block pointers out of range or into the inode table.
    let mut img = clean.clone();
    let mut fs = mount(img.clone());
    let f = lookup_path(&mut fs, "/f_12289").unwrap();
    drop(fs);
    let itable = t.inode_tables[0] as usize;
    let (blk, off) = inode_offset(&clean, f);
    img[blk * bs + off + 40..blk * bs + off + 44].copy_from_slice(&0xfff_ffffu32.to_le_bytes());
    img[blk * bs + off + 44..blk * bs + off + 48].copy_from_slice(&(itable as u32).to_le_bytes());
    let mut fs = mount(img);
    let mut buf = vec![0u8; 2048];
    assert_eq!(fs.read_file(f, 0, &mut buf), Err(Errno::EUCLEAN));
    assert_eq!(fs.read_file(f, 1024, &mut buf), Err(Errno::EUCLEAN));
    assert_eq!(fs.get_block(f, 1, true), Err(Errno::EUCLEAN));

    // A subdirectory entry naming the root: a cycle for a walker, nothing special here.
    let mut img = clean.clone();
    let d = t.dir_blocks[0] as usize; // root's first block: ".", "..", then entries
    let third = 12 + 12;
    img[d * bs + third..d * bs + third + 4].copy_from_slice(&2u32.to_le_bytes());
    let mut fs = mount(img);
    assert!(list_dir(&mut fs, ROOT).is_ok());
    // Inode numbers beyond the count are damage.
    let mut img = clean.clone();
    img[d * bs + third..d * bs + third + 4].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let mut fs = mount(img);
    assert_eq!(list_dir(&mut fs, ROOT), Err(Errno::EUCLEAN));
}

/// (block, offset) of an inode in a 1 KiB-block image with one group.
fn inode_offset(img: &[u8], ino: u32) -> (usize, usize) {
    let gdt = 2 * 1024;
    let table = u32::from_le_bytes(img[gdt + 8..gdt + 12].try_into().unwrap()) as usize;
    let isz = u16::from_le_bytes([img[1024 + 88], img[1024 + 89]]) as usize;
    let byte = (ino as usize - 1) * isz;
    (table + byte / 1024, byte % 1024)
}

/// A disk whose reads or writes start failing after a number of requests: every
/// operation returns `EIO` (or succeeds) without panicking, whatever step it failed in.
struct FailingDisk {
    inner: MemDisk,
    left: std::cell::Cell<u64>,
    fail_reads: bool,
}

impl ext2fs::BlockIo for FailingDisk {
    fn read_block(&self, blk: u64, buf: &mut [u8]) -> Result<(), Errno> {
        if self.fail_reads {
            if self.left.get() == 0 {
                return Err(Errno::EIO);
            }
            self.left.set(self.left.get() - 1);
        }
        self.inner.read_block(blk, buf)
    }
    fn write_block(&self, blk: u64, buf: &[u8]) -> Result<(), Errno> {
        if self.left.get() == 0 {
            return Err(Errno::EIO);
        }
        self.left.set(self.left.get() - 1);
        self.inner.write_block(blk, buf)
    }
}

#[test]
fn io_errors_at_every_step_never_panic() {
    let (clean, _src) = standard_image(1024);
    let mut eio = 0;
    for (i, budget) in (0..400).step_by(7).enumerate() {
        let disk = FailingDisk {
            inner: MemDisk::new(clean.clone()),
            left: std::cell::Cell::new(budget),
            fail_reads: i % 2 == 1,
        };
        let len = clean.len() as u64;
        let Ok(mut fs) = Ext2::mount(
            disk,
            MountOptions {
                read_only: false,
                now: NOW,
                device_bytes: len,
            },
        ) else {
            eio += 1;
            continue;
        };
        let mut rng = Rng::new(budget);
        exercise(&mut fs, &mut rng);
        let f = fs.create(ROOT, b"late", 0o644, OWNER);
        if f.is_err() {
            eio += 1;
        }
        let _ = fs.unmount();
    }
    // The budgets span failures during mount through failures late in the work.
    assert!(eio > 10, "{eio}");
}
