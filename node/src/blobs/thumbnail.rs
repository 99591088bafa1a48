//! Thumbnails of image attachments, so a list of practices on a phone downloads a few KB per
//! photo instead of the photo itself. A thumbnail is made once, on first request, from the
//! complete blob, and cached beside the blobs:
//!
//! ```text
//! <data dir>/blobs/thumbnails/<pixels>/<hex>.jpg
//! ```
//!
//! It is derived data: written through a temporary file and a rename, removed with its blob,
//! and simply remade if lost. Decoding is bounded (dimensions and memory) so a hostile upload
//! cannot exhaust a Raspberry Pi.

use std::fs;
use std::io::{BufReader, Cursor};
use std::path::PathBuf;

use image::ImageFormat;
use image::codecs::jpeg::JpegEncoder;
use image::io::{Limits, Reader};
use minga_protocol::BlobHash;

use super::{BlobError, BlobStore};

/// JPEG quality of thumbnails: small files, faces still recognisable.
const QUALITY: u8 = 75;

/// Largest side of an image that is decoded to make a thumbnail.
const MAX_SIDE: u32 = 12_000;

/// Most memory a decoder may take.
const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;

/// Why no thumbnail could be made.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("{0} is not an image thumbnails are made of")]
    NotAnImage(BlobHash),
    #[error("the image {hash} cannot be decoded: {reason}")]
    Undecodable { hash: BlobHash, reason: String },
}

/// Whether thumbnails are made of images of this type (JPEG, PNG and WebP).
pub fn supported(mime: &str) -> bool {
    format_of(mime).is_some()
}

fn format_of(mime: &str) -> Option<ImageFormat> {
    match mime.trim().to_ascii_lowercase().as_str() {
        "image/jpeg" => Some(ImageFormat::Jpeg),
        "image/png" => Some(ImageFormat::Png),
        "image/webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

impl BlobStore {
    /// The JPEG thumbnail of a complete image blob, at most `pixels` on its longest side:
    /// read from the cache, or made and cached. Blocking: call it off the async threads.
    pub fn thumbnail(&self, hash: &BlobHash, pixels: u32) -> Result<Vec<u8>, ThumbnailError> {
        let path = self.thumbnail_path(hash, pixels);
        if let Ok(bytes) = fs::read(&path) {
            return Ok(bytes);
        }
        let (file, record) = self.open_data(hash)?;
        let format = format_of(&record.mime).ok_or(ThumbnailError::NotAnImage(*hash))?;
        let undecodable = |reason: String| ThumbnailError::Undecodable {
            hash: *hash,
            reason,
        };
        let mut reader = Reader::with_format(BufReader::new(file), format);
        let mut limits = Limits::default();
        limits.max_image_width = Some(MAX_SIDE);
        limits.max_image_height = Some(MAX_SIDE);
        limits.max_alloc = Some(MAX_DECODE_BYTES);
        reader.limits(limits);
        let image = reader.decode().map_err(|e| undecodable(e.to_string()))?;
        let small = image.thumbnail(pixels, pixels).into_rgb8();
        let mut bytes = Vec::new();
        JpegEncoder::new_with_quality(Cursor::new(&mut bytes), QUALITY)
            .encode_image(&small)
            .map_err(|e| undecodable(e.to_string()))?;
        self.cache_thumbnail(&path, &bytes)
            .map_err(|e| ThumbnailError::Blob(e.into()))?;
        Ok(bytes)
    }

    fn cache_thumbnail(&self, path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
        let dir = path.parent().expect("thumbnail paths have a parent");
        fs::create_dir_all(dir)?;
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| std::io::Error::other(e.to_string()))?;
        let tmp = self.root.join("tmp").join(hex::encode(nonce));
        fs::write(&tmp, bytes)?;
        fs::rename(&tmp, path)
    }

    fn thumbnail_path(&self, hash: &BlobHash, pixels: u32) -> PathBuf {
        self.root
            .join("thumbnails")
            .join(pixels.to_string())
            .join(format!("{hash}.jpg"))
    }

    /// Drops every cached thumbnail of a blob (its blob is gone).
    pub(super) fn remove_thumbnails(&self, hash: &BlobHash) -> std::io::Result<()> {
        let Ok(sizes) = fs::read_dir(self.root.join("thumbnails")) else {
            return Ok(());
        };
        for size in sizes {
            match fs::remove_file(size?.path().join(format!("{hash}.jpg"))) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    /// A PNG of `width` x `height` noisy pixels, which compress as badly as a photo's.
    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            let noise = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)).to_le_bytes();
            image::Rgb([noise[0], noise[1], noise[2]])
        });
        let mut bytes = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .unwrap();
        bytes
    }

    #[test]
    fn a_thumbnail_is_small_cached_and_removed_with_its_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 1 << 20).unwrap();
        let blobs = BlobStore::open(&dir.path().join("blobs"), store).unwrap();
        let photo = png(1200, 800);
        let added = blobs
            .add_reader(photo.as_slice(), 16 << 20, |_| {})
            .unwrap();
        let thumb = blobs.thumbnail(&added.hash, 160).unwrap();
        let decoded = image::load_from_memory(&thumb).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (160, 107));
        assert!(thumb.len() < photo.len() / 10, "{} bytes", thumb.len());
        let cached = blobs.thumbnail_path(&added.hash, 160);
        assert_eq!(fs::read(&cached).unwrap(), thumb);
        blobs.remove_thumbnails(&added.hash).unwrap();
        assert!(!cached.exists());
    }

    #[test]
    fn text_and_corrupt_images_get_no_thumbnail() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 1 << 20).unwrap();
        let blobs = BlobStore::open(&dir.path().join("blobs"), store).unwrap();
        let text = b"just words".to_vec();
        let added = blobs.add_reader(text.as_slice(), 1 << 20, |_| {}).unwrap();
        assert!(matches!(
            blobs.thumbnail(&added.hash, 160),
            Err(ThumbnailError::NotAnImage(_))
        ));
        let mut broken = png(50, 50);
        broken.truncate(60);
        let added = blobs
            .add_reader(broken.as_slice(), 1 << 20, |_| {})
            .unwrap();
        assert!(matches!(
            blobs.thumbnail(&added.hash, 160),
            Err(ThumbnailError::Undecodable { .. })
        ));
    }
}
