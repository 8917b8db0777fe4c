//! The byte transforms of a data query's result file, each streaming (it
//! takes the rendered result piece by piece and hands back what is ready,
//! so a result of any size goes through in about one part's memory):
//!
//! - [`ZipStream`]: `compression: ZIP`, a ZIP archive holding the result
//!   as its one entry, deflated. The entry's CRC and sizes follow its data
//!   (a data descriptor, general purpose flag bit 3) and are repeated in
//!   the central directory; ZIP64 records are added when a size or offset
//!   passes 4 GiB.
//! - [`BlockEncryptor`]: `encryptionKey`, the (compressed, if asked) file
//!   encrypted with the caller's RSA public key: the plaintext is cut into
//!   blocks of `k - 11` bytes (`k` = the modulus in bytes: 117 for the
//!   1024-bit keys Data Query takes) and each is encrypted with RSAES-PKCS1-v1_5
//!   into `k` bytes. To decrypt, cut the file into `k`-byte blocks, decrypt
//!   each with the private key and concatenate (docs/data-query.md).

use std::io::Write;

use base64::Engine;
use flate2::write::DeflateEncoder;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Encrypt, RsaPublicKey};

/// Smallest and largest RSA modulus `encryptionKey` may have, in bits (Data
/// Query documents 1024-bit keys; larger ones work the same way).
pub const MIN_KEY_BITS: usize = 1024;
pub const MAX_KEY_BITS: usize = 4096;

/// Why an `encryptionKey` is refused; the text is the caller's message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("not base64")]
    NotBase64,
    #[error("not an RSA public key (base64 of its DER: SubjectPublicKeyInfo or PKCS#1)")]
    NotRsa,
    #[error("an RSA key of {0} bits; the key must have 1024 to 4096 bits")]
    Size(usize),
}

/// Parses `encryptionKey`: the base64 of an RSA public key's DER, as
/// SubjectPublicKeyInfo (`MIGfMA0G...`, what `openssl rsa -pubout` writes)
/// or PKCS#1. Whitespace in the text is ignored.
pub fn parse_public_key(base64_der: &str) -> Result<RsaPublicKey, KeyError> {
    let compact: String = base64_der.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| KeyError::NotBase64)?;
    let key = RsaPublicKey::from_public_key_der(&der)
        .or_else(|_| RsaPublicKey::from_pkcs1_der(&der))
        .map_err(|_| KeyError::NotRsa)?;
    let bits = key.size() * 8;
    if !(MIN_KEY_BITS..=MAX_KEY_BITS).contains(&bits) {
        return Err(KeyError::Size(bits));
    }
    Ok(key)
}

/// Encrypts a stream block by block (see the module docs).
pub struct BlockEncryptor {
    key: RsaPublicKey,
    /// Plaintext bytes of a block not yet full.
    pending: Vec<u8>,
}

impl BlockEncryptor {
    pub fn new(key: RsaPublicKey) -> Self {
        Self {
            key,
            pending: Vec::new(),
        }
    }

    /// Plaintext bytes per block: the modulus size less PKCS#1 v1.5's 11.
    pub fn block_plaintext(&self) -> usize {
        self.key.size() - 11
    }

    /// Takes `data`, returns the ciphertext of the blocks it completed.
    pub fn update(&mut self, data: &[u8]) -> Result<Vec<u8>, rsa::Error> {
        let block = self.block_plaintext();
        self.pending.extend_from_slice(data);
        let full = self.pending.len() / block * block;
        let mut out = Vec::with_capacity(full / block * self.key.size());
        for plain in self.pending[..full].chunks(block) {
            out.extend_from_slice(&self.encrypt(plain)?);
        }
        self.pending.drain(..full);
        Ok(out)
    }

    /// The ciphertext of the last, short block (nothing if none is left).
    pub fn finish(mut self) -> Result<Vec<u8>, rsa::Error> {
        if self.pending.is_empty() {
            return Ok(Vec::new());
        }
        let last = std::mem::take(&mut self.pending);
        self.encrypt(&last)
    }

    fn encrypt(&self, plain: &[u8]) -> Result<Vec<u8>, rsa::Error> {
        self.key
            .encrypt(&mut rand::thread_rng(), Pkcs1v15Encrypt, plain)
    }
}

const LOCAL_HEADER: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const ZIP64_END: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const END: u32 = 0x0605_4b50;
/// Bit 3: CRC and sizes in the data descriptor; bit 11: the name is UTF-8.
const FLAGS: u16 = 0x0808;
const DEFLATE: u16 = 8;
const VERSION: u16 = 20;
const VERSION_ZIP64: u16 = 45;
const U32_MAX: u64 = u32::MAX as u64;

/// A ZIP archive of one deflated entry, written as a stream (see the
/// module docs).
pub struct ZipStream {
    name: Vec<u8>,
    /// MS-DOS time and date of the entry.
    time: u16,
    date: u16,
    deflate: DeflateEncoder<Vec<u8>>,
    crc: crc32fast::Hasher,
    size: u64,
    compressed: u64,
    header_written: bool,
}

impl ZipStream {
    /// An archive whose one entry is `name`, dated `modified` (UTC).
    pub fn new(name: &str, modified: chrono::DateTime<chrono::Utc>) -> Self {
        let (time, date) = dos_time(modified);
        Self {
            name: name.as_bytes().to_vec(),
            time,
            date,
            deflate: DeflateEncoder::new(Vec::new(), flate2::Compression::default()),
            crc: crc32fast::Hasher::new(),
            size: 0,
            compressed: 0,
            header_written: false,
        }
    }

    /// Takes entry bytes; returns archive bytes ready to go out.
    pub fn update(&mut self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = self.local_header();
        self.crc.update(data);
        self.size += data.len() as u64;
        self.deflate.write_all(data)?;
        let deflated = std::mem::take(self.deflate.get_mut());
        self.compressed += deflated.len() as u64;
        out.extend_from_slice(&deflated);
        Ok(out)
    }

    /// The rest of the archive: the deflate stream's end, the data
    /// descriptor, the central directory and its end records.
    pub fn finish(mut self) -> std::io::Result<Vec<u8>> {
        let mut out = self.local_header();
        let deflate = std::mem::replace(
            &mut self.deflate,
            DeflateEncoder::new(Vec::new(), flate2::Compression::none()),
        );
        let tail = deflate.finish()?;
        self.compressed += tail.len() as u64;
        out.extend_from_slice(&tail);
        let crc = self.crc.clone().finalize();
        let zip64 = self.size >= U32_MAX || self.compressed >= U32_MAX;

        out.extend_from_slice(&DATA_DESCRIPTOR.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        if zip64 {
            out.extend_from_slice(&self.compressed.to_le_bytes());
            out.extend_from_slice(&self.size.to_le_bytes());
        } else {
            out.extend_from_slice(&(self.compressed as u32).to_le_bytes());
            out.extend_from_slice(&(self.size as u32).to_le_bytes());
        }
        let descriptor_len = if zip64 { 24 } else { 16 };
        let central_offset = self.local_header_len() + self.compressed + descriptor_len;

        // The central directory: one header (the local header is at 0).
        let mut extra = Vec::new();
        if zip64 {
            extra.extend_from_slice(&1u16.to_le_bytes());
            extra.extend_from_slice(&16u16.to_le_bytes());
            extra.extend_from_slice(&self.size.to_le_bytes());
            extra.extend_from_slice(&self.compressed.to_le_bytes());
        }
        let needed = if zip64 { VERSION_ZIP64 } else { VERSION };
        let mut central = Vec::new();
        central.extend_from_slice(&CENTRAL_HEADER.to_le_bytes());
        central.extend_from_slice(&needed.to_le_bytes()); // made by (MS-DOS)
        central.extend_from_slice(&needed.to_le_bytes());
        central.extend_from_slice(&FLAGS.to_le_bytes());
        central.extend_from_slice(&DEFLATE.to_le_bytes());
        central.extend_from_slice(&self.time.to_le_bytes());
        central.extend_from_slice(&self.date.to_le_bytes());
        central.extend_from_slice(&crc.to_le_bytes());
        let (compressed, size) = if zip64 {
            (u32::MAX, u32::MAX)
        } else {
            (self.compressed as u32, self.size as u32)
        };
        central.extend_from_slice(&compressed.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&(self.name.len() as u16).to_le_bytes());
        central.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes()); // comment
        central.extend_from_slice(&0u16.to_le_bytes()); // disk
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // local header offset
        central.extend_from_slice(&self.name);
        central.extend_from_slice(&extra);
        let central_len = central.len() as u64;
        out.extend_from_slice(&central);

        let end_zip64 = central_offset >= U32_MAX;
        if end_zip64 {
            let record = central_offset + central_len;
            out.extend_from_slice(&ZIP64_END.to_le_bytes());
            out.extend_from_slice(&44u64.to_le_bytes());
            out.extend_from_slice(&VERSION_ZIP64.to_le_bytes());
            out.extend_from_slice(&VERSION_ZIP64.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&1u64.to_le_bytes());
            out.extend_from_slice(&1u64.to_le_bytes());
            out.extend_from_slice(&central_len.to_le_bytes());
            out.extend_from_slice(&central_offset.to_le_bytes());
            out.extend_from_slice(&ZIP64_LOCATOR.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&record.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
        }
        out.extend_from_slice(&END.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&(central_len as u32).to_le_bytes());
        let offset = if end_zip64 {
            u32::MAX
        } else {
            central_offset as u32
        };
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        Ok(out)
    }

    fn local_header_len(&self) -> u64 {
        30 + self.name.len() as u64
    }

    /// The local header, the first time only.
    fn local_header(&mut self) -> Vec<u8> {
        if self.header_written {
            return Vec::new();
        }
        self.header_written = true;
        let mut out = Vec::with_capacity(self.local_header_len() as usize);
        out.extend_from_slice(&LOCAL_HEADER.to_le_bytes());
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&FLAGS.to_le_bytes());
        out.extend_from_slice(&DEFLATE.to_le_bytes());
        out.extend_from_slice(&self.time.to_le_bytes());
        out.extend_from_slice(&self.date.to_le_bytes());
        out.extend_from_slice(&[0; 12]); // CRC and sizes: in the descriptor
        out.extend_from_slice(&(self.name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&self.name);
        out
    }
}

/// MS-DOS `(time, date)` of `at`; years before 1980 become 1980-01-01.
fn dos_time(at: chrono::DateTime<chrono::Utc>) -> (u16, u16) {
    use chrono::{Datelike, Timelike};
    if at.year() < 1980 || at.year() > 2107 {
        return (0, 0x21);
    }
    let time = ((at.hour() << 11) | (at.minute() << 5) | (at.second() / 2)) as u16;
    let date = ((((at.year() - 1980) as u32) << 9) | (at.month() << 5) | at.day()) as u16;
    (time, date)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use rsa::pkcs8::EncodePublicKey;
    use rsa::RsaPrivateKey;

    use super::*;

    fn zip_of(name: &str, pieces: &[&[u8]]) -> Vec<u8> {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-05T10:20:30Z")
            .unwrap()
            .to_utc();
        let mut zip = ZipStream::new(name, at);
        let mut out = Vec::new();
        for piece in pieces {
            out.extend(zip.update(piece).unwrap());
        }
        out.extend(zip.finish().unwrap());
        out
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn a_zip_holds_one_deflated_entry_with_its_crc_and_sizes() {
        let text = "a,b\n1,2\n".repeat(1000);
        let (head, tail) = text.as_bytes().split_at(3001);
        let zip = zip_of("result.csv", &[head, b"", tail]);
        assert_eq!(u32_at(&zip, 0), LOCAL_HEADER);
        assert_eq!(&zip[30..40], b"result.csv");
        // The end record points at the central directory, which holds the
        // entry's CRC and sizes.
        let end = zip.len() - 22;
        assert_eq!(u32_at(&zip, end), END);
        let central = u32_at(&zip, end + 16) as usize;
        assert_eq!(u32_at(&zip, central), CENTRAL_HEADER);
        assert_eq!(u32_at(&zip, central + 16), crc32fast::hash(text.as_bytes()));
        let compressed = u32_at(&zip, central + 20) as usize;
        assert_eq!(u32_at(&zip, central + 24) as usize, text.len());
        assert!(compressed < text.len() / 10, "{compressed}");
        let mut inflated = String::new();
        flate2::read::DeflateDecoder::new(&zip[40..40 + compressed])
            .read_to_string(&mut inflated)
            .unwrap();
        assert_eq!(inflated, text);
        // The descriptor follows the data.
        assert_eq!(u32_at(&zip, 40 + compressed), DATA_DESCRIPTOR);
        assert_eq!(central, 40 + compressed + 16);
        let epoch = chrono::DateTime::from_timestamp(0, 0).unwrap();
        assert_eq!(dos_time(epoch), (0, 0x21));
    }

    #[test]
    fn blocks_decrypt_with_the_private_key() {
        let private = RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
        let public = private.to_public_key();
        let der = public.to_public_key_der().unwrap();
        let text = base64::engine::general_purpose::STANDARD.encode(der.as_bytes());
        let key = parse_public_key(&text).unwrap();
        let mut encryptor = BlockEncryptor::new(key);
        assert_eq!(encryptor.block_plaintext(), 117);
        let plain: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut sealed = encryptor.update(&plain[..200]).unwrap();
        assert_eq!(sealed.len(), 128, "one full block out");
        sealed.extend(encryptor.update(&plain[200..]).unwrap());
        sealed.extend(encryptor.finish().unwrap());
        assert_eq!(sealed.len(), 1000usize.div_ceil(117) * 128);
        let mut opened = Vec::new();
        for block in sealed.chunks(128) {
            opened.extend(private.decrypt(Pkcs1v15Encrypt, block).unwrap());
        }
        assert_eq!(opened, plain);
    }

    #[test]
    fn keys_are_checked() {
        assert_eq!(
            parse_public_key("not base64!").unwrap_err(),
            KeyError::NotBase64
        );
        assert_eq!(parse_public_key("AAAA").unwrap_err(), KeyError::NotRsa);
        let small = RsaPrivateKey::new(&mut rand::thread_rng(), 512).unwrap();
        let der = small.to_public_key().to_public_key_der().unwrap();
        let text = base64::engine::general_purpose::STANDARD.encode(der.as_bytes());
        assert_eq!(parse_public_key(&text).unwrap_err(), KeyError::Size(512));
        // The encryption doc's sample key.
        let sample = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCHRHXrqriUa5nkXP6tvCv3uQtH5fYezHFZ8kXeK2LWTmY6i7FGzRcDlDpuY72iLTPTqbYKyky1EhTlr/UaMn1tugb+wVbWJ81AnisAxCDmnkbMwkfqPHxNlu+Tg2OXtgFd4QCENAgHt/DOqD9HQV+5KHp59DdoD2BzpNf63b3D1QIDAQAB";
        assert_eq!(parse_public_key(sample).unwrap().size(), 128);
    }
}
