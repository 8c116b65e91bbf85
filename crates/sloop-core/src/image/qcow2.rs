//! A qcow2 file written from a stream of raw disk bytes, in one pass: how a compressed raw image
//! becomes a runnable base without a second full copy on disk (base.rs).
//!
//! The layout is qcow2 version 3 with 64 KiB clusters and 16-bit refcounts, in the order the
//! bytes arrive: cluster 0 is the header (written last), then each guest cluster that holds
//! anything but zeros, then the L2 tables, the L1 table, the refcount blocks and the refcount
//! table. Clusters of zeros are not allocated (they read as zeros). Every allocated cluster has
//! refcount 1, so every L1 and L2 entry carries the COPIED flag. `qemu-img check` finds such a
//! file clean; base.rs runs it on every file this writes.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};

const CLUSTER_BITS: u32 = 16;
const CLUSTER: u64 = 1 << CLUSTER_BITS;
/// Entries of one L2 table (8 bytes each, one cluster).
const L2_ENTRIES: u64 = CLUSTER / 8;
/// Refcounts of one refcount block (16 bits each, one cluster).
const REFCOUNTS_PER_BLOCK: u64 = CLUSTER / 2;
/// The entry's cluster has refcount 1 and may be written in place.
const COPIED: u64 = 1 << 63;

/// Writes a qcow2 file from guest bytes given in order.
#[derive(Debug)]
pub struct StreamWriter {
    out: File,
    /// Guest bytes received so far.
    length: u64,
    /// The partly filled guest cluster.
    pending: Vec<u8>,
    /// Host offset of each allocated guest cluster, by guest cluster index.
    mapped: Vec<(u64, u64)>,
    /// The next free host cluster.
    next_host: u64,
}

impl StreamWriter {
    /// Starts the file `out` (empty, opened for writing).
    pub fn new(out: File) -> Self {
        Self {
            out,
            length: 0,
            pending: Vec::with_capacity(CLUSTER as usize),
            mapped: Vec::new(),
            next_host: 1,
        }
    }

    /// Appends guest bytes.
    pub fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let room = CLUSTER as usize - self.pending.len();
            let take = room.min(data.len());
            if self.pending.is_empty() && take == CLUSTER as usize {
                // A whole cluster straight from the caller's buffer.
                self.cluster(&data[..take])?;
            } else {
                self.pending.extend_from_slice(&data[..take]);
                if self.pending.len() == CLUSTER as usize {
                    let full = std::mem::take(&mut self.pending);
                    self.cluster(&full)?;
                    self.pending = full;
                    self.pending.clear();
                }
            }
            self.length += take as u64;
            data = &data[take..];
        }
        Ok(())
    }

    fn cluster(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        static ZEROS: [u8; CLUSTER as usize] = [0; CLUSTER as usize];
        let guest = self.length / CLUSTER;
        if bytes != &ZEROS[..bytes.len()] {
            let host = self.next_host * CLUSTER;
            self.out.seek(SeekFrom::Start(host))?;
            self.out.write_all(bytes)?;
            self.mapped.push((guest, host));
            self.next_host += 1;
        }
        Ok(())
    }

    /// Writes the tables and the header; the disk's virtual size is the bytes given (rounded up
    /// to 512). Returns it.
    pub fn finish(mut self) -> std::io::Result<u64> {
        if !self.pending.is_empty() {
            let mut last = std::mem::take(&mut self.pending);
            let given = last.len() as u64;
            last.resize(CLUSTER as usize, 0);
            // `cluster` reads the guest index from `length`, which already counts these bytes.
            self.length -= given;
            self.cluster(&last)?;
            self.length += given;
        }
        let size = self.length.div_ceil(512) * 512;
        let guest_clusters = size.div_ceil(CLUSTER);
        let l1_size = guest_clusters.div_ceil(L2_ENTRIES);

        // L2 tables, for the ranges that hold data.
        let mut l1 = vec![0u64; l1_size as usize];
        let mut tables: Vec<(u64, Vec<u64>)> = Vec::new();
        for &(guest, host) in &self.mapped {
            let index = guest / L2_ENTRIES;
            if tables.last().is_none_or(|(i, _)| *i != index) {
                tables.push((index, vec![0u64; L2_ENTRIES as usize]));
            }
            if let Some((_, table)) = tables.last_mut() {
                table[(guest % L2_ENTRIES) as usize] = host | COPIED;
            }
        }
        for (index, table) in &tables {
            let host = self.next_host * CLUSTER;
            self.out.seek(SeekFrom::Start(host))?;
            self.out.write_all(&be_u64s(table))?;
            l1[*index as usize] = host | COPIED;
            self.next_host += 1;
        }

        // The L1 table.
        let l1_offset = self.next_host * CLUSTER;
        let l1_clusters = (l1_size * 8).div_ceil(CLUSTER).max(1);
        self.out.seek(SeekFrom::Start(l1_offset))?;
        self.out.write_all(&be_u64s(&l1))?;
        self.next_host += l1_clusters;

        // Refcounts: every cluster so far, the refcount blocks and the table itself, all 1.
        let (blocks, table_clusters) = {
            let mut blocks: u64 = 1;
            loop {
                let table_clusters = (blocks * 8).div_ceil(CLUSTER);
                let total = self.next_host + blocks + table_clusters;
                let needed = total.div_ceil(REFCOUNTS_PER_BLOCK);
                if needed <= blocks {
                    break (blocks, table_clusters);
                }
                blocks = needed;
            }
        };
        let total = self.next_host + blocks + table_clusters;
        let first_block = self.next_host;
        let mut refcount_table = Vec::with_capacity(blocks as usize);
        for b in 0..blocks {
            let mut block = vec![0u8; CLUSTER as usize];
            let start = b * REFCOUNTS_PER_BLOCK;
            let end = ((b + 1) * REFCOUNTS_PER_BLOCK).min(total);
            for cluster in start..end {
                let at = ((cluster - start) * 2) as usize;
                block[at..at + 2].copy_from_slice(&1u16.to_be_bytes());
            }
            let host = (first_block + b) * CLUSTER;
            self.out.seek(SeekFrom::Start(host))?;
            self.out.write_all(&block)?;
            refcount_table.push(host);
        }
        let table_offset = (first_block + blocks) * CLUSTER;
        let mut table = be_u64s(&refcount_table);
        table.resize((table_clusters * CLUSTER) as usize, 0);
        self.out.seek(SeekFrom::Start(table_offset))?;
        self.out.write_all(&table)?;

        // The header, last: until now the file is no qcow2 at all.
        let mut header = Vec::with_capacity(112);
        header.extend_from_slice(b"QFI\xfb");
        header.extend_from_slice(&3u32.to_be_bytes()); // version
        header.extend_from_slice(&0u64.to_be_bytes()); // backing file offset
        header.extend_from_slice(&0u32.to_be_bytes()); // backing file name length
        header.extend_from_slice(&CLUSTER_BITS.to_be_bytes());
        header.extend_from_slice(&size.to_be_bytes());
        header.extend_from_slice(&0u32.to_be_bytes()); // no encryption
        header.extend_from_slice(&(l1_size as u32).to_be_bytes());
        header.extend_from_slice(&l1_offset.to_be_bytes());
        header.extend_from_slice(&table_offset.to_be_bytes());
        header.extend_from_slice(&(table_clusters as u32).to_be_bytes());
        header.extend_from_slice(&0u32.to_be_bytes()); // snapshots
        header.extend_from_slice(&0u64.to_be_bytes()); // snapshots offset
        header.extend_from_slice(&0u64.to_be_bytes()); // incompatible features
        header.extend_from_slice(&0u64.to_be_bytes()); // compatible features
        header.extend_from_slice(&0u64.to_be_bytes()); // autoclear features
        header.extend_from_slice(&4u32.to_be_bytes()); // refcount order: 16 bits
        header.extend_from_slice(&104u32.to_be_bytes()); // header length
        header.extend_from_slice(&[0u8; 8]); // end of header extensions
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header)?;
        // The file ends with its last cluster whole.
        self.out.set_len(total * CLUSTER)?;
        self.out.sync_all()?;
        Ok(size)
    }
}

fn be_u64s(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sloop_testkit::run_in;

    /// Disks of several shapes (empty, one byte, data across L2 tables, a tail that is not a
    /// whole cluster), written by the stream writer: `qemu-img check` finds each clean and
    /// `qemu-img compare` finds it the same disk as the raw bytes.
    #[test]
    fn streamed_files_are_clean_qcow2_with_the_same_disk() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mib = 1u64 << 20;
        /// A disk's name, size and what is written where.
        type Shape<'a> = (&'a str, u64, Vec<(u64, &'a [u8])>);
        let shapes: Vec<Shape<'_>> = vec![
            ("empty", 4 * mib, vec![]),
            ("one-byte", 4 * mib, vec![(5, b"x")]),
            (
                "spread",
                520 * mib,
                vec![
                    (0, b"start"),
                    (515 * mib + 3, b"past the first L2 table"),
                    (520 * mib - 7, b"the end"),
                ],
            ),
            (
                "tail",
                3 * mib + 512,
                vec![(3 * mib + 100, b"in the last, partial cluster")],
            ),
        ];
        for (name, size, writes) in shapes {
            let raw = d.join(format!("{name}.raw"));
            {
                let mut file = File::create(&raw).unwrap();
                file.set_len(size).unwrap();
                for (at, data) in &writes {
                    file.seek(SeekFrom::Start(*at)).unwrap();
                    file.write_all(data).unwrap();
                }
            }
            let qcow2 = d.join(format!("{name}.qcow2"));
            let mut writer = StreamWriter::new(File::create(&qcow2).unwrap());
            // In odd pieces, as a pipe delivers them.
            let mut input = File::open(&raw).unwrap();
            let mut piece = vec![0u8; 100_003];
            loop {
                let n = std::io::Read::read(&mut input, &mut piece).unwrap();
                if n == 0 {
                    break;
                }
                writer.write(&piece[..n]).unwrap();
            }
            assert_eq!(writer.finish().unwrap(), size, "{name}");
            let file = qcow2.to_string_lossy().into_owned();
            run_in(d, "qemu-img", &["check", "-f", "qcow2", &file]);
            sloop_testkit::assert_same_disk(&raw, &qcow2);
            let allocated = {
                use std::os::unix::fs::MetadataExt;
                std::fs::metadata(&qcow2).unwrap().blocks() * 512
            };
            assert!(
                allocated < 2 * mib,
                "{name}: {allocated} bytes for a nearly empty disk"
            );
        }
    }
}
