//! A zip of stored (uncompressed) entries: the book's PNGs are compressed already, so storing
//! them keeps the archive the same size as deflating would, with 60 lines instead of a codec.
//! Format: PKWARE APPNOTE 6.3 (local headers, central directory, end record); CRC-32 (ISO-HDLC,
//! zip's) from the `crc` crate, a byte at a time.

/// Zip's CRC-32, with the crate's default one-table (1 KB) implementation.
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// An archive holding `entries` (name, bytes), in order.
pub fn stored(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut archive = Vec::new();
    let mut directory = Vec::new();
    for (name, bytes) in entries {
        let offset = archive.len() as u32;
        let crc = CRC32.checksum(bytes);
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

/// The entries (name, bytes) of an archive of stored entries, as [`stored`] writes them; a
/// compressed or damaged archive is refused with a reason a parent can read.
pub fn read_stored(archive: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let word = |at: usize| {
        archive
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let long = |at: usize| {
        archive
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let damaged = || "the zip file is damaged or cut short".to_owned();
    let mut entries = Vec::new();
    let mut at = 0;
    while long(at) == Some(0x0403_4b50) {
        let flags = word(at + 6).ok_or_else(damaged)?;
        let method = word(at + 8).ok_or_else(damaged)?;
        if method != 0 || flags & 0x0008 != 0 {
            return Err(
                "the zip file is compressed; this app reads the zip files its Export button makes"
                    .into(),
            );
        }
        let crc = long(at + 14).ok_or_else(damaged)?;
        let size = long(at + 18).ok_or_else(damaged)? as usize;
        let name_length = usize::from(word(at + 26).ok_or_else(damaged)?);
        let extra_length = usize::from(word(at + 28).ok_or_else(damaged)?);
        let name_start = at + 30;
        let data_start = name_start + name_length + extra_length;
        let name = archive
            .get(name_start..name_start + name_length)
            .ok_or_else(damaged)?;
        let data = archive
            .get(data_start..data_start + size)
            .ok_or_else(damaged)?;
        if CRC32.checksum(data) != crc {
            return Err(damaged());
        }
        entries.push((String::from_utf8_lossy(name).into_owned(), data.to_vec()));
        at = data_start + size;
    }
    if entries.is_empty() {
        return Err("this is not a zip file".into());
    }
    Ok(entries)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_and_damage_is_caught() {
        let entries = vec![
            ("learned_embeds.safetensors".to_owned(), vec![1, 2, 3]),
            ("pytorch_lora_weights.safetensors".to_owned(), vec![9; 100]),
        ];
        let archive = stored(&entries);
        assert_eq!(read_stored(&archive).unwrap(), entries);
        let mut damaged = archive.clone();
        damaged[57] ^= 0xff; // in the first entry's bytes
        assert!(read_stored(&damaged).unwrap_err().contains("damaged"));
        assert!(read_stored(&archive[..50]).unwrap_err().contains("damaged"));
        assert!(read_stored(b"not a zip").unwrap_err().contains("not a zip"));
    }
}
