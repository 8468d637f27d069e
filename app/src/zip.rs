//! A zip of stored (uncompressed) entries: the book's PNGs are compressed already, so storing
//! them keeps the archive the same size as deflating would, with 60 lines instead of a codec.
//! Format: PKWARE APPNOTE 6.3 (local headers, central directory, end record); CRC-32 from
//! `crc32fast` (already in the build through `png`).

/// An archive holding `entries` (name, bytes), in order.
pub fn stored(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut archive = Vec::new();
    let mut directory = Vec::new();
    for (name, bytes) in entries {
        let offset = archive.len() as u32;
        let crc = crc32fast::hash(bytes);
        let size = bytes.len() as u32;
        // Local file header.
        archive.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        archive.extend_from_slice(&common_fields(crc, size, name));
        archive.extend_from_slice(name.as_bytes());
        archive.extend_from_slice(bytes);
        // Its central directory record.
        directory.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        directory.extend_from_slice(&20u16.to_le_bytes()); // made by: version 2.0
        directory.extend_from_slice(&common_fields(crc, size, name));
        directory.extend_from_slice(&[0; 8]); // comment length, disk, internal attributes
        directory.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        directory.extend_from_slice(&offset.to_le_bytes());
        directory.extend_from_slice(name.as_bytes());
    }
    let directory_offset = archive.len() as u32;
    archive.extend_from_slice(&directory);
    archive.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    archive.extend_from_slice(&[0; 4]); // this disk, directory's disk
    let count = entries.len() as u16;
    archive.extend_from_slice(&count.to_le_bytes());
    archive.extend_from_slice(&count.to_le_bytes());
    archive.extend_from_slice(&(directory.len() as u32).to_le_bytes());
    archive.extend_from_slice(&directory_offset.to_le_bytes());
    archive.extend_from_slice(&0u16.to_le_bytes()); // comment length
    archive
}

/// The fields local headers and directory records share, from "version needed" to "extra length".
fn common_fields(crc: u32, size: u32, name: &str) -> Vec<u8> {
    let mut fields = Vec::with_capacity(26);
    fields.extend_from_slice(&20u16.to_le_bytes()); // version needed
    fields.extend_from_slice(&0x0800u16.to_le_bytes()); // flags: UTF-8 names
    fields.extend_from_slice(&0u16.to_le_bytes()); // method: stored
    fields.extend_from_slice(&[0, 0, 0x21, 0]); // time 00:00, date 1980-01-01
    fields.extend_from_slice(&crc.to_le_bytes());
    fields.extend_from_slice(&size.to_le_bytes()); // compressed
    fields.extend_from_slice(&size.to_le_bytes()); // uncompressed
    fields.extend_from_slice(&(name.len() as u16).to_le_bytes());
    fields.extend_from_slice(&0u16.to_le_bytes()); // extra length
    fields
}
