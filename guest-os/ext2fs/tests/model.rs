//! Property test: random sequences of name-space and data operations, each result checked
//! against an in-memory model of the tree (including the errno Linux would give), the
//! whole tree compared with the model at the end, and the image `e2fsck -fn` clean.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use common::*;
use ext2fs::{Errno, Ext2};
use proptest::prelude::*;

const NAMES: [&str; 6] = [
    "a",
    "b",
    "c",
    "d",
    "e",
    "a_rather_long_name_that_takes_more_room_in_a_directory_block_than_the_others_do",
];

#[derive(Debug, Clone)]
enum Op {
    Create(u8, u8),
    Mkdir(u8, u8),
    Write(u8, u32, u16, u8),
    Truncate(u8, u32),
    Unlink(u8, u8),
    Rmdir(u8, u8),
    Rename(u8, u8, u8, u8),
    Link(u8, u8, u8),
    Symlink(u8, u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let i = any::<u8>;
    prop_oneof![
        3 => (i(), i()).prop_map(|(d, n)| Op::Create(d, n)),
        2 => (i(), i()).prop_map(|(d, n)| Op::Mkdir(d, n)),
        4 => (i(), 0u32..200_000, 0u16..9000, i()).prop_map(|(f, o, l, s)| Op::Write(f, o, l, s)),
        2 => (i(), 0u32..200_000).prop_map(|(f, s)| Op::Truncate(f, s)),
        2 => (i(), i()).prop_map(|(d, n)| Op::Unlink(d, n)),
        1 => (i(), i()).prop_map(|(d, n)| Op::Rmdir(d, n)),
        3 => (i(), i(), i(), i()).prop_map(|(a, b, c, d)| Op::Rename(a, b, c, d)),
        1 => (i(), i(), i()).prop_map(|(f, d, n)| Op::Link(f, d, n)),
        1 => (i(), i(), i()).prop_map(|(d, n, l)| Op::Symlink(d, n, l)),
    ]
}

#[derive(Debug, Clone)]
enum Node {
    File {
        data: Vec<u8>,
        nlink: u16,
    },
    Dir {
        entries: BTreeMap<Vec<u8>, usize>,
        parent: usize,
    },
    Symlink(Vec<u8>),
}

/// The model: nodes by id (0 is the root) and their inode numbers in the file system.
struct Model {
    nodes: HashMap<usize, Node>,
    ino: HashMap<usize, u32>,
    next: usize,
}

impl Model {
    fn ids(&self, want_dir: bool) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .nodes
            .iter()
            .filter(|(_, n)| {
                matches!(n, Node::Dir { .. }) == want_dir && !matches!(n, Node::Symlink(_))
            })
            .map(|(&id, _)| id)
            .collect();
        v.sort();
        v
    }
    fn entries(&mut self, dir: usize) -> &mut BTreeMap<Vec<u8>, usize> {
        match self.nodes.get_mut(&dir) {
            Some(Node::Dir { entries, .. }) => entries,
            _ => panic!("not a dir"),
        }
    }
    fn get(&self, dir: usize, name: &[u8]) -> Option<usize> {
        match &self.nodes[&dir] {
            Node::Dir { entries, .. } => entries.get(name).copied(),
            _ => None,
        }
    }
    fn is_dir(&self, id: usize) -> bool {
        matches!(self.nodes[&id], Node::Dir { .. })
    }
    fn is_empty_dir(&self, id: usize) -> bool {
        matches!(&self.nodes[&id], Node::Dir { entries, .. } if entries.is_empty())
    }
    /// Whether `id` is `anc` or below it.
    fn within(&self, mut id: usize, anc: usize) -> bool {
        loop {
            if id == anc {
                return true;
            }
            match &self.nodes[&id] {
                Node::Dir { parent, .. } if *parent != id => id = *parent,
                _ => return false,
            }
        }
    }
    fn add(&mut self, node: Node, ino: u32) -> usize {
        let id = self.next;
        self.next += 1;
        self.nodes.insert(id, node);
        self.ino.insert(id, ino);
        id
    }
    /// Drops a link to `id`; returns whether the inode is gone.
    fn drop_link(&mut self, id: usize) -> bool {
        let gone = match self.nodes.get_mut(&id) {
            Some(Node::File { nlink, .. }) => {
                *nlink -= 1;
                *nlink == 0
            }
            _ => true,
        };
        if gone {
            self.nodes.remove(&id);
        }
        gone
    }
}

/// Empty 16 MiB images: 1 KiB blocks (two groups), 2 KiB and 4 KiB blocks (one group),
/// and 1 KiB blocks in 16 groups of 1024 blocks.
const CONFIGS: [(u32, &[&str]); 4] = [(1024, &[]), (2048, &[]), (4096, &[]), (1024, MULTI_GROUP)];

fn base_image(config: usize) -> &'static Vec<u8> {
    static IMAGES: [OnceLock<Vec<u8>>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    let (block_size, extra) = CONFIGS[config];
    IMAGES[config].get_or_init(|| mkfs(None, block_size, 16384, extra))
}

fn expect(got: Result<impl std::fmt::Debug, Errno>, want: Result<(), Errno>, what: &Op) {
    match (&got, want) {
        (Ok(_), Ok(())) => {}
        (Err(e), Err(w)) if *e == w => {}
        _ => panic!("{what:?}: got {got:?}, model says {want:?}"),
    }
}

fn run(config: usize, ops: &[Op]) {
    let mut fs = mount(base_image(config).clone());
    let lost_found = fs.lookup(ROOT, b"lost+found").unwrap().unwrap();
    let mut m = Model {
        nodes: HashMap::new(),
        ino: HashMap::new(),
        next: 0,
    };
    m.add(
        Node::Dir {
            entries: BTreeMap::new(),
            parent: 0,
        },
        ROOT,
    );
    let lf = m.add(
        Node::Dir {
            entries: BTreeMap::new(),
            parent: 0,
        },
        lost_found,
    );
    m.entries(0).insert(b"lost+found".to_vec(), lf);
    for op in ops {
        let dirs = m.ids(true);
        let files = m.ids(false);
        let dir = |i: u8| dirs[usize::from(i) % dirs.len()];
        let name = |i: u8| NAMES[usize::from(i) % NAMES.len()].as_bytes().to_vec();
        match *op {
            Op::Create(d, n) | Op::Mkdir(d, n) | Op::Symlink(d, n, _) => {
                let (d, n) = (dir(d), name(n));
                let dino = m.ino[&d];
                let target = match *op {
                    Op::Symlink(_, _, l) => Some(vec![b'l'; 1 + usize::from(l) * 3]),
                    _ => None,
                };
                let got = match *op {
                    Op::Create(..) => fs.create(dino, &n, 0o644, OWNER),
                    Op::Mkdir(..) => fs.mkdir(dino, &n, 0o755, OWNER),
                    _ => fs.symlink(dino, &n, target.as_ref().unwrap(), OWNER),
                };
                if m.get(d, &n).is_some() {
                    expect(got, Err(Errno::EEXIST), op);
                } else {
                    expect(got, Ok(()), op);
                    let node = match *op {
                        Op::Create(..) => Node::File {
                            data: Vec::new(),
                            nlink: 1,
                        },
                        Op::Mkdir(..) => Node::Dir {
                            entries: BTreeMap::new(),
                            parent: d,
                        },
                        _ => Node::Symlink(target.unwrap()),
                    };
                    let id = m.add(node, got.unwrap());
                    m.entries(d).insert(n, id);
                }
            }
            Op::Write(f, off, len, seed) => {
                if files.is_empty() {
                    continue;
                }
                let f = files[usize::from(f) % files.len()];
                let data = pattern(u64::from(seed), usize::from(len));
                expect(fs.write_file(m.ino[&f], u64::from(off), &data), Ok(()), op);
                if let Some(Node::File { data: v, .. }) = m.nodes.get_mut(&f) {
                    let end = off as usize + data.len();
                    if v.len() < end && !data.is_empty() {
                        v.resize(end, 0);
                    }
                    v[off as usize..off as usize + data.len()].copy_from_slice(&data);
                }
            }
            Op::Truncate(f, size) => {
                if files.is_empty() {
                    continue;
                }
                let f = files[usize::from(f) % files.len()];
                expect(fs.truncate(m.ino[&f], u64::from(size), true), Ok(()), op);
                if let Some(Node::File { data, .. }) = m.nodes.get_mut(&f) {
                    data.resize(size as usize, 0);
                }
            }
            Op::Unlink(d, n) | Op::Rmdir(d, n) => {
                let (d, n) = (dir(d), name(n));
                let dino = m.ino[&d];
                let rmdir = matches!(op, Op::Rmdir(..));
                let got = if rmdir {
                    fs.rmdir(dino, &n)
                } else {
                    fs.unlink(dino, &n)
                };
                let want = match m.get(d, &n) {
                    None => Err(Errno::ENOENT),
                    Some(id) if rmdir && !m.is_dir(id) => Err(Errno::ENOTDIR),
                    Some(id) if rmdir && !m.is_empty_dir(id) => Err(Errno::ENOTEMPTY),
                    Some(id) if !rmdir && m.is_dir(id) => Err(Errno::EISDIR),
                    Some(_) => Ok(()),
                };
                expect(got, want, op);
                if want.is_ok() {
                    let id = m.entries(d).remove(&n).unwrap();
                    let gone = m.drop_link(id);
                    assert_eq!(fs.evict(got.unwrap()).unwrap(), gone, "{op:?}: evict");
                }
            }
            Op::Rename(d1, n1, d2, n2) => {
                let (d1, n1, d2, n2) = (dir(d1), name(n1), dir(d2), name(n2));
                let src = m.get(d1, &n1);
                if let Some(s) = src {
                    if m.is_dir(s) && m.within(d2, s) {
                        // Into its own subtree: refused by the VFS before ext2 sees it.
                        continue;
                    }
                }
                let got = fs.rename(m.ino[&d1], &n1, m.ino[&d2], &n2);
                let tgt = m.get(d2, &n2);
                let want = match (src, tgt) {
                    (None, _) => Err(Errno::ENOENT),
                    (Some(s), Some(t)) if s == t => Ok(()),
                    (Some(s), Some(t)) if m.is_dir(s) && !m.is_dir(t) => Err(Errno::ENOTDIR),
                    (Some(s), Some(t)) if m.is_dir(s) && !m.is_empty_dir(t) => {
                        Err(Errno::ENOTEMPTY)
                    }
                    (Some(s), Some(t)) if !m.is_dir(s) && m.is_dir(t) => Err(Errno::EISDIR),
                    _ => Ok(()),
                };
                expect(got, want, op);
                if want.is_ok() && src != tgt {
                    let s = src.unwrap();
                    let replaced = got.unwrap();
                    if let Some(t) = tgt {
                        m.entries(d2).remove(&n2);
                        let gone = m.drop_link(t);
                        assert_eq!(replaced.is_some(), gone, "{op:?}: replaced inode");
                        if let Some(v) = replaced {
                            assert!(fs.evict(v).unwrap());
                        }
                    } else {
                        assert_eq!(replaced, None);
                    }
                    m.entries(d1).remove(&n1);
                    m.entries(d2).insert(n2, s);
                    if let Some(Node::Dir { parent, .. }) = m.nodes.get_mut(&s) {
                        *parent = d2;
                    }
                }
            }
            Op::Link(f, d, n) => {
                if files.is_empty() {
                    continue;
                }
                let (f, d, n) = (files[usize::from(f) % files.len()], dir(d), name(n));
                let got = fs.link(m.ino[&f], m.ino[&d], &n);
                if m.get(d, &n).is_some() {
                    expect(got, Err(Errno::EEXIST), op);
                } else {
                    expect(got, Ok(()), op);
                    m.entries(d).insert(n, f);
                    if let Some(Node::File { nlink, .. }) = m.nodes.get_mut(&f) {
                        *nlink += 1;
                    }
                }
            }
        }
    }
    compare(&mut fs, &m, 0);
    let img = unmount(fs);
    assert_fsck_clean(&img);
}

/// The file system's tree under model node `id` equals the model.
fn compare(fs: &mut Ext2<MemDisk>, m: &Model, id: usize) {
    let ino = m.ino[&id];
    let inode = fs.read_inode(ino).unwrap();
    match &m.nodes[&id] {
        Node::Dir { entries, parent } => {
            let listed = list_dir(fs, ino).unwrap();
            let mut want: Vec<(Vec<u8>, u32)> =
                entries.iter().map(|(n, c)| (n.clone(), m.ino[c])).collect();
            want.push((b".".to_vec(), ino));
            want.push((b"..".to_vec(), m.ino[parent]));
            want.sort();
            assert_eq!(listed, want, "directory {ino}");
            let subdirs = entries.values().filter(|c| m.is_dir(**c)).count();
            assert_eq!(
                usize::from(inode.links_count),
                2 + subdirs,
                "links of directory {ino}"
            );
            for c in entries.values() {
                compare(fs, m, *c);
            }
        }
        Node::File { data, nlink } => {
            assert_eq!(inode.links_count, *nlink, "links of {ino}");
            assert!(read_all(fs, ino) == *data, "contents of {ino}");
        }
        Node::Symlink(t) => assert_eq!(fs.readlink(ino).unwrap(), *t),
    }
}

proptest! {
    // 24 cases by default; EXT2_MODEL_CASES=N runs more.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("EXT2_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_operations_match_model(config in 0..CONFIGS.len(), ops in prop::collection::vec(op(), 1..60)) {
        run(config, &ops);
    }
}
