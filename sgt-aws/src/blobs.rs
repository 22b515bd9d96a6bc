//! Blobs in an S3 bucket, under a key prefix.

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use sgt_core::blobs::{BlobKey, BlobStore};
use sgt_core::{Error, Result};

use crate::errors::{classify, code};

const BACKEND: &str = "s3";
/// Multipart parts are this large (S3 wants at least 5 MiB for all but the last).
const PART_BYTES: usize = 8 * 1024 * 1024;

/// Blobs as objects of one bucket, keys under `prefix/`.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl S3BlobStore {
    /// A store in `bucket`, every key under `prefix` (which may be empty).
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        S3BlobStore {
            client,
            bucket: bucket.into(),
            prefix: prefix.into().trim_matches('/').to_owned(),
        }
    }

    /// A store built from the process's one SDK configuration.
    pub fn from_config(config: &aws_config::SdkConfig, bucket: &str, prefix: &str) -> Self {
        Self::new(crate::s3_client(config), bucket, prefix)
    }

    fn key(&self, key: &BlobKey) -> String {
        if self.prefix.is_empty() {
            key.as_str().to_owned()
        } else {
            format!("{}/{}", self.prefix, key.as_str())
        }
    }

    async fn read_all(&self, key: &BlobKey) -> Result<Bytes> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
            .map_err(|e| classify(BACKEND, "blob", e))?;
        let data = object
            .body
            .collect()
            .await
            .map_err(|e| Error::unavailable(format!("s3 body read failed: {e}")))?;
        Ok(data.into_bytes())
    }

    /// Uploads `parts` joined as `target` in [`PART_BYTES`] pieces; at most one piece plus one
    /// part is in memory.
    async fn multipart_concat(&self, target: &str, parts: &[BlobKey]) -> Result<u64> {
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(target)
            .send()
            .await
            .map_err(|e| classify(BACKEND, "blob", e))?;
        let upload_id = upload
            .upload_id()
            .ok_or_else(|| Error::backend(BACKEND, "multipart upload without an id"))?
            .to_owned();
        let result = async {
            let mut completed = Vec::new();
            let mut buffer = BytesMut::new();
            let mut size = 0u64;
            for (i, part) in parts.iter().enumerate() {
                let data = self.read_all(part).await?;
                size += data.len() as u64;
                buffer.extend_from_slice(&data);
                let last = i + 1 == parts.len();
                while buffer.len() >= PART_BYTES || (last && !buffer.is_empty()) {
                    let take = buffer.len().min(PART_BYTES);
                    let piece = buffer.split_to(take).freeze();
                    let number = completed.len() as i32 + 1;
                    let uploaded = self
                        .client
                        .upload_part()
                        .bucket(&self.bucket)
                        .key(target)
                        .upload_id(&upload_id)
                        .part_number(number)
                        .body(ByteStream::from(piece))
                        .send()
                        .await
                        .map_err(|e| classify(BACKEND, "blob", e))?;
                    completed.push(
                        CompletedPart::builder()
                            .part_number(number)
                            .set_e_tag(uploaded.e_tag().map(str::to_owned))
                            .build(),
                    );
                }
            }
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(target)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(completed))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| classify(BACKEND, "blob", e))?;
            Ok(size)
        }
        .await;
        if result.is_err() {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(target)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, key: &BlobKey, data: Bytes) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| classify(BACKEND, "blob", e))?;
        Ok(())
    }

    async fn get(&self, key: &BlobKey) -> Result<Bytes> {
        self.read_all(key).await
    }

    async fn size(&self, key: &BlobKey) -> Result<u64> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
            .map_err(|e| classify(BACKEND, "blob", e))?;
        Ok(head.content_length().unwrap_or(0).max(0) as u64)
    }

    async fn read_range(&self, key: &BlobKey, offset: u64, len: u64) -> Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let range = format!("bytes={offset}-{}", offset + len - 1);
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .range(range)
            .send()
            .await
        {
            Ok(object) => Ok(object
                .body
                .collect()
                .await
                .map_err(|e| Error::unavailable(format!("s3 body read failed: {e}")))?
                .into_bytes()),
            // A range starting past the end: nothing to read.
            Err(e) if code(&e) == Some("InvalidRange") => Ok(Bytes::new()),
            Err(e) => Err(classify(BACKEND, "blob", e)),
        }
    }

    async fn concat(&self, target: &BlobKey, parts: &[BlobKey]) -> Result<u64> {
        let target = self.key(target);
        // Small results go up in one piece; multipart needs 5 MiB parts.
        let mut total = 0u64;
        for part in parts {
            total += self.size(part).await?;
        }
        if total < PART_BYTES as u64 {
            let mut joined = BytesMut::with_capacity(total as usize);
            for part in parts {
                joined.extend_from_slice(&self.read_all(part).await?);
            }
            let size = joined.len() as u64;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&target)
                .body(ByteStream::from(joined.freeze()))
                .send()
                .await
                .map_err(|e| classify(BACKEND, "blob", e))?;
            return Ok(size);
        }
        self.multipart_concat(&target, parts).await
    }

    async fn delete(&self, key: &BlobKey) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
            .map_err(|e| classify(BACKEND, "blob", e))?;
        Ok(())
    }
}
