//! Streaming a rendered result into one S3 object: parts of exactly
//! `part_size` bytes go up as soon as they are full (gzipped or zipped, then
//! encrypted, on the way as the query asks), so memory stays at about two
//! parts whatever the result size. A result smaller than one part is
//! written with a single PUT.

use std::io::Write;

use auditx_common::result_file::{BlockEncryptor, ZipStream};
use auditx_common::s3::ObjectStore;
use bytes::Bytes;
use flate2::write::GzEncoder;
use rsa::RsaPublicKey;

/// How the rendered bytes are packed before they are stored.
pub enum Packing {
    Plain,
    Gzip,
    /// A ZIP archive whose one entry has this name.
    Zip(String),
}

enum Packer {
    Plain,
    Gzip(Box<GzEncoder<Vec<u8>>>),
    Zip(Box<ZipStream>),
}

impl Packer {
    fn new(packing: Packing) -> Self {
        match packing {
            Packing::Plain => Packer::Plain,
            Packing::Gzip => Packer::Gzip(Box::new(GzEncoder::new(
                Vec::new(),
                flate2::Compression::default(),
            ))),
            Packing::Zip(name) => Packer::Zip(Box::new(ZipStream::new(&name, chrono::Utc::now()))),
        }
    }

    fn update(&mut self, rendered: &[u8]) -> Result<Vec<u8>, WorkerError> {
        match self {
            Packer::Plain => Ok(rendered.to_vec()),
            Packer::Gzip(encoder) => {
                encoder.write_all(rendered).map_err(pack_error)?;
                Ok(std::mem::take(encoder.get_mut()))
            }
            Packer::Zip(zip) => zip.update(rendered).map_err(pack_error),
        }
    }

    fn finish(self) -> Result<Vec<u8>, WorkerError> {
        match self {
            Packer::Plain => Ok(Vec::new()),
            Packer::Gzip(encoder) => (*encoder).finish().map_err(pack_error),
            Packer::Zip(zip) => zip.finish().map_err(pack_error),
        }
    }
}

use crate::error::WorkerError;
use crate::export::parts::PartSplitter;

pub struct ResultUpload<'a> {
    store: &'a ObjectStore,
    bucket: &'a str,
    key: String,
    content_type: &'static str,
    packer: Option<Packer>,
    encryptor: Option<BlockEncryptor>,
    splitter: PartSplitter,
    upload_id: Option<String>,
    parts: Vec<(i32, String)>,
    bytes: u64,
}

impl<'a> ResultUpload<'a> {
    /// An upload to `key`, packing as `packing` then encrypting with
    /// `encryption` (if given).
    pub fn new(
        store: &'a ObjectStore,
        bucket: &'a str,
        key: String,
        content_type: &'static str,
        part_size: u64,
        packing: Packing,
        encryption: Option<RsaPublicKey>,
    ) -> Self {
        Self {
            store,
            bucket,
            key,
            content_type,
            packer: Some(Packer::new(packing)),
            encryptor: encryption.map(BlockEncryptor::new),
            splitter: PartSplitter::new(part_size as usize),
            upload_id: None,
            parts: Vec::new(),
            bytes: 0,
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Appends rendered bytes, uploading every part that fills up.
    pub async fn write(&mut self, rendered: &[u8]) -> Result<(), WorkerError> {
        let packed = match &mut self.packer {
            Some(packer) => packer.update(rendered)?,
            None => {
                return Err(WorkerError::InvalidTask(
                    "result written after its end".into(),
                ))
            }
        };
        let data = self.encrypt(&packed)?;
        self.push(Bytes::from(data)).await
    }

    fn encrypt(&mut self, packed: &[u8]) -> Result<Vec<u8>, WorkerError> {
        match &mut self.encryptor {
            Some(encryptor) => encryptor.update(packed).map_err(encrypt_error),
            None => Ok(packed.to_vec()),
        }
    }

    async fn push(&mut self, mut data: Bytes) -> Result<(), WorkerError> {
        self.bytes += data.len() as u64;
        while let Some(part) = self.splitter.next_part(&mut data) {
            self.upload_part(part).await?;
        }
        Ok(())
    }

    async fn upload_part(&mut self, part: Bytes) -> Result<(), WorkerError> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = self
                    .store
                    .create_multipart(self.bucket, &self.key, self.content_type)
                    .await?;
                self.upload_id.insert(id).clone()
            }
        };
        let number = self.parts.len() as i32 + 1;
        let etag = self
            .store
            .upload_part(self.bucket, &self.key, &upload_id, number, part)
            .await?;
        self.parts.push((number, etag));
        Ok(())
    }

    /// Writes what is left and completes the object; returns its size.
    pub async fn finish(mut self) -> Result<u64, WorkerError> {
        if let Some(packer) = self.packer.take() {
            let tail = packer.finish()?;
            let mut tail = self.encrypt(&tail)?;
            if let Some(encryptor) = self.encryptor.take() {
                tail.extend(encryptor.finish().map_err(encrypt_error)?);
            }
            self.push(Bytes::from(tail)).await?;
        }
        let splitter = std::mem::replace(&mut self.splitter, PartSplitter::new(1));
        let last = splitter.finish().unwrap_or_default();
        match self.upload_id.clone() {
            None => {
                self.store
                    .put(self.bucket, &self.key, last, self.content_type)
                    .await?;
            }
            Some(upload_id) => {
                if !last.is_empty() {
                    self.upload_part(last).await?;
                }
                self.store
                    .complete_multipart(self.bucket, &self.key, &upload_id, &self.parts)
                    .await?;
            }
        }
        Ok(self.bytes)
    }

    /// Drops the upload (a failed, cancelled or timed-out query).
    pub async fn abort(self) {
        if let Some(upload_id) = &self.upload_id {
            if let Err(error) = self
                .store
                .abort_multipart(self.bucket, &self.key, upload_id)
                .await
            {
                tracing::warn!(key = self.key, %error, "result upload not aborted; the bucket's lifecycle rule removes it");
            }
        }
    }
}

fn pack_error(e: std::io::Error) -> WorkerError {
    WorkerError::InvalidTask(format!("compressing the result: {e}"))
}

fn encrypt_error(e: rsa::Error) -> WorkerError {
    WorkerError::InvalidTask(format!("encrypting the result: {e}"))
}
