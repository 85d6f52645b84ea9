//! Disk images for `--disk PATH[:ro]`: the host file mapped with `memmap2` (shared and
//! writable, or a read-only private map for `:ro`). Guest writes go straight into the
//! shared mapping, i.e. the host's page cache, so another process reading the file sees
//! them at once; `flush` (the guest's FLUSH, and the end of every run: [`Drop`]) makes
//! them durable with msync.

use memmap2::{Mmap, MmapMut, MmapOptions};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

/// Sector size of the block interface (virtio-blk's unit, whatever `blk_size` says).
pub const SECTOR_SIZE: u64 = 512;
/// The suffix of a read-only `--disk` argument.
pub const READ_ONLY_SUFFIX: &str = ":ro";

/// A `--disk` argument: the path and whether the disk is read-only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpec {
    pub path: PathBuf,
    pub read_only: bool,
}

impl DiskSpec {
    /// `PATH` or `PATH:ro`.
    pub fn parse(arg: &str) -> Result<DiskSpec, String> {
        let (path, read_only) = match arg.strip_suffix(READ_ONLY_SUFFIX) {
            Some(p) => (p, true),
            None => (arg, false),
        };
        if path.is_empty() {
            return Err(format!("--disk {arg:?}: no file name"));
        }
        Ok(DiskSpec {
            path: PathBuf::from(path),
            read_only,
        })
    }
}

enum Map {
    Rw(MmapMut),
    Ro(Mmap),
}

/// An open disk image.
pub struct DiskImage {
    path: PathBuf,
    map: Map,
    size: u64,
}

impl DiskImage {
    /// Open and map the image; the error is one line for the user (exit status 2): a
    /// missing or unreadable file, a directory, an empty file or a size that is not a
    /// whole number of 512-byte sectors.
    pub fn open(spec: &DiskSpec) -> Result<DiskImage, String> {
        let p = &spec.path;
        let what = |e: &dyn std::fmt::Display| format!("cannot use disk {}: {e}", p.display());
        let meta = std::fs::metadata(p).map_err(|e| what(&e))?;
        if meta.is_dir() {
            return Err(what(&"is a directory"));
        }
        if !meta.is_file() {
            return Err(what(&"not a regular file"));
        }
        let size = meta.len();
        if size == 0 || size % SECTOR_SIZE != 0 {
            return Err(what(&format_args!(
                "size {size} bytes is not a positive multiple of {SECTOR_SIZE}"
            )));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(!spec.read_only)
            .open(p)
            .map_err(|e| what(&e))?;
        // SAFETY: the mapping is only accessed through bounds-checked slices; another
        // process truncating the file under us would be its own fault (SIGBUS), as with
        // any mmap-based disk.
        let map = unsafe {
            if spec.read_only {
                Map::Ro(
                    MmapOptions::new()
                        .len(size as usize)
                        .map(&file)
                        .map_err(|e| what(&e))?,
                )
            } else {
                Map::Rw(
                    MmapOptions::new()
                        .len(size as usize)
                        .map_mut(&file)
                        .map_err(|e| what(&e))?,
                )
            }
        };
        Ok(DiskImage {
            path: p.clone(),
            map,
            size,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn read_only(&self) -> bool {
        matches!(self.map, Map::Ro(_))
    }

    /// The bytes `off..off+len`, if inside the image.
    pub fn bytes(&self, off: u64, len: usize) -> Option<&[u8]> {
        let end = off.checked_add(len as u64)?;
        if end > self.size {
            return None;
        }
        let m: &[u8] = match &self.map {
            Map::Rw(m) => m,
            Map::Ro(m) => m,
        };
        Some(&m[off as usize..end as usize])
    }

    /// Writable bytes `off..off+len`; `None` outside the image or on a read-only disk.
    pub fn bytes_mut(&mut self, off: u64, len: usize) -> Option<&mut [u8]> {
        let end = off.checked_add(len as u64)?;
        match &mut self.map {
            Map::Rw(m) if end <= self.size => Some(&mut m[off as usize..end as usize]),
            _ => None,
        }
    }

    /// msync: every write so far reaches the file.
    pub fn flush(&self) -> std::io::Result<()> {
        match &self.map {
            Map::Rw(m) => m.flush(),
            Map::Ro(_) => Ok(()),
        }
    }
}

impl Drop for DiskImage {
    /// However the run ends, the guest's writes reach the file.
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            eprintln!("vmscope: error: flushing disk {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_ro_suffix() {
        assert_eq!(
            DiskSpec::parse("a.img:ro").unwrap(),
            DiskSpec {
                path: "a.img".into(),
                read_only: true
            }
        );
        assert!(!DiskSpec::parse("a.img").unwrap().read_only);
        assert!(DiskSpec::parse(":ro").is_err());
    }
}
