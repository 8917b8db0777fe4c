//! Streaming a rendered result into one S3 object: parts of exactly
//! `part_size` bytes go up as soon as they are full (optionally gzipped on
//! the way), so memory stays at about two parts whatever the result size.
//! A result smaller than one part is written with a single PUT.

use std::io::Write;

use auditx_common::s3::ObjectStore;
use bytes::Bytes;
use flate2::write::GzEncoder;

use crate::error::WorkerError;
use crate::export::parts::PartSplitter;

pub struct ResultUpload<'a> {
    store: &'a ObjectStore,
    bucket: &'a str,
    key: String,
    content_type: &'static str,
    gzip: Option<GzEncoder<Vec<u8>>>,
    splitter: PartSplitter,
    upload_id: Option<String>,
    parts: Vec<(i32, String)>,
    bytes: u64,
}

impl<'a> ResultUpload<'a> {
    pub fn new(
        store: &'a ObjectStore,
        bucket: &'a str,
        key: String,
        content_type: &'static str,
        part_size: u64,
        gzip: bool,
    ) -> Self {
        Self {
            store,
            bucket,
            key,
            content_type,
            gzip: gzip.then(|| GzEncoder::new(Vec::new(), flate2::Compression::default())),
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
        let data = match &mut self.gzip {
            Some(encoder) => {
                encoder.write_all(rendered).map_err(gzip_error)?;
                std::mem::take(encoder.get_mut())
            }
            None => rendered.to_vec(),
        };
        self.push(Bytes::from(data)).await
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
        if let Some(encoder) = self.gzip.take() {
            let tail = encoder.finish().map_err(gzip_error)?;
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

fn gzip_error(e: std::io::Error) -> WorkerError {
    WorkerError::InvalidTask(format!("gzip: {e}"))
}
