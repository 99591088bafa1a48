//! Thumbnails of image attachments, so a list of practices on a phone downloads a few KB per
//! photo instead of the photo itself. A thumbnail is made once, on first request, from the
//! complete blob, and cached beside the blobs:
//!
//! ```text
//! <data dir>/blobs/thumbnails/<pixels>/<hex>.jpg
//! ```
//!
//! It is derived data: written through a temporary file and a rename, removed with its blob,
//! and simply remade if lost. Decoding is bounded so a hostile image (an upload, or another
//! author's attachment) cannot exhaust a Raspberry Pi: its declared dimensions are checked
//! against a pixel budget from the header, before anything is decoded; the decoder's memory is
//! capped; at most [`MAX_DECODES`] images are decoded at once; and a decoder that panics on
//! foreign bytes gives no thumbnail instead of a failed request. The original is served either
//! way.

use std::fs;
use std::io::{BufReader, Cursor, Read, Seek, SeekFrom};
use std::panic::UnwindSafe;
use std::path::PathBuf;
use std::sync::LazyLock;

use image::ImageFormat;
use image::codecs::jpeg::JpegEncoder;
use image::io::{Limits, Reader};
use minga_protocol::BlobHash;

use super::{BlobError, BlobStore};

/// JPEG quality of thumbnails: small files, faces still recognisable.
const QUALITY: u8 = 75;

/// Largest side of an image that is decoded to make a thumbnail.
const MAX_SIDE: u32 = 12_000;

/// Most pixels of an image that is decoded to make a thumbnail: a 40-megapixel photo (today's
/// phone cameras save at most about that) decodes to 160 MB of RGBA.
pub const MAX_PIXELS: u64 = 40_000_000;

/// Most memory a decoder may take: the pixels of the largest image allowed, 4 bytes each.
const MAX_DECODE_BYTES: u64 = MAX_PIXELS * 4;

/// Images decoded at once; further requests wait their turn (with the budget above, at most
/// 320 MB of decoded pixels at any time).
pub const MAX_DECODES: usize = 2;

/// The turns of [`MAX_DECODES`].
static DECODES: LazyLock<tokio::sync::Semaphore> =
    LazyLock::new(|| tokio::sync::Semaphore::new(MAX_DECODES));

/// Why no thumbnail could be made.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("{0} is not an image thumbnails are made of")]
    NotAnImage(BlobHash),
    #[error("the image {hash} cannot be decoded: {reason}")]
    Undecodable { hash: BlobHash, reason: String },
    #[error(
        "the image {hash} is {width}x{height} pixels, over the {MAX_PIXELS} pixels thumbnails are made of"
    )]
    TooLarge {
        hash: BlobHash,
        width: u32,
        height: u32,
    },
}

/// Whether thumbnails are made of images of this type (JPEG, PNG and WebP).
pub fn supported(mime: &str) -> bool {
    format_of(mime).is_some()
}

pub(crate) fn format_of(mime: &str) -> Option<ImageFormat> {
    match mime.trim().to_ascii_lowercase().as_str() {
        "image/jpeg" => Some(ImageFormat::Jpeg),
        "image/png" => Some(ImageFormat::Png),
        "image/webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

impl BlobStore {
    /// [`Self::thumbnail`] for the async threads: a cached thumbnail is read at once; making one
    /// waits for one of the [`MAX_DECODES`] turns and runs on a blocking thread.
    pub async fn thumbnail_async(
        &self,
        hash: BlobHash,
        pixels: u32,
    ) -> Result<Vec<u8>, ThumbnailError> {
        let path = self.thumbnail_path(&hash, pixels);
        if let Ok(bytes) = fs::read(&path) {
            return Ok(bytes);
        }
        let _turn = DECODES
            .acquire()
            .await
            .expect("the decode turns are never closed");
        let blobs = self.clone();
        tokio::task::spawn_blocking(move || blobs.thumbnail(&hash, pixels))
            .await
            .map_err(|e| ThumbnailError::Undecodable {
                hash,
                reason: e.to_string(),
            })?
    }

    /// The JPEG thumbnail of a complete image blob, at most `pixels` on its longest side:
    /// read from the cache, or made and cached. Blocking: call it off the async threads.
    pub fn thumbnail(&self, hash: &BlobHash, pixels: u32) -> Result<Vec<u8>, ThumbnailError> {
        let path = self.thumbnail_path(hash, pixels);
        if let Ok(bytes) = fs::read(&path) {
            return Ok(bytes);
        }
        let (file, record) = self.open_data(hash)?;
        let format = format_of(&record.mime).ok_or(ThumbnailError::NotAnImage(*hash))?;
        let bytes = make_contained(file, format, hash, pixels)?;
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

/// Decodes the image in `file` (after checking its declared size against [`MAX_PIXELS`]) and
/// encodes its thumbnail.
/// [`make`], a panic of the decoder answered as [`ThumbnailError::Undecodable`]: a decoder is
/// third-party code fed foreign bytes, and a panic in it means no thumbnail.
pub(crate) fn make_contained(
    data: impl Read + Seek + UnwindSafe,
    format: ImageFormat,
    hash: &BlobHash,
    pixels: u32,
) -> Result<Vec<u8>, ThumbnailError> {
    std::panic::catch_unwind(|| make(data, format, hash, pixels)).unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(ThumbnailError::Undecodable {
            hash: *hash,
            reason: format!("the decoder panicked: {reason}"),
        })
    })
}

/// The thumbnail of the image `data`: the header's size is checked before anything is decoded,
/// and the decoder is held to [`Limits`].
fn make(
    mut data: impl Read + Seek,
    format: ImageFormat,
    hash: &BlobHash,
    pixels: u32,
) -> Result<Vec<u8>, ThumbnailError> {
    let undecodable = |reason: String| ThumbnailError::Undecodable {
        hash: *hash,
        reason,
    };
    let io = |e: std::io::Error| ThumbnailError::Blob(e.into());
    // The header alone: a few KB of PNG can declare gigabytes of pixels.
    let header = Reader::with_format(BufReader::new(&mut data), format);
    let (width, height) = header
        .into_dimensions()
        .map_err(|e| undecodable(e.to_string()))?;
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ThumbnailError::TooLarge {
            hash: *hash,
            width,
            height,
        });
    }
    data.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut reader = Reader::with_format(BufReader::new(data), format);
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
    Ok(bytes)
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
        let blobs = BlobStore::open(&dir.path().join("blobs"), store.blob_records()).unwrap();
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
    fn an_image_over_the_pixel_budget_gets_no_thumbnail() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 1 << 20).unwrap();
        let blobs = BlobStore::open(&dir.path().join("blobs"), store.blob_records()).unwrap();
        // 9000x9000 of one colour: a few hundred KB of PNG that would decode to 243 MB.
        let bomb = image::GrayImage::new(9000, 9000);
        let mut bytes = Vec::new();
        bomb.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .unwrap();
        assert!(bytes.len() < 1 << 20, "{} bytes", bytes.len());
        drop(bomb);
        let added = blobs.add_reader(bytes.as_slice(), 4 << 20, |_| {}).unwrap();
        assert!(matches!(
            blobs.thumbnail(&added.hash, 640),
            Err(ThumbnailError::TooLarge {
                width: 9000,
                height: 9000,
                ..
            })
        ));
        assert!(!blobs.thumbnail_path(&added.hash, 640).exists());
        // The original is still there to serve.
        assert!(blobs.open_data(&added.hash).is_ok());
    }

    #[tokio::test]
    async fn thumbnails_wait_for_a_decode_turn() {
        use futures::FutureExt;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 1 << 20).unwrap();
        let blobs = BlobStore::open(&dir.path().join("blobs"), store.blob_records()).unwrap();
        let photo = png(300, 200);
        let hash = blobs
            .add_reader(photo.as_slice(), 1 << 20, |_| {})
            .unwrap()
            .hash;
        let busy = DECODES.acquire_many(MAX_DECODES as u32).await.unwrap();
        let mut waiting = Box::pin(blobs.thumbnail_async(hash, 160));
        assert!(
            (&mut waiting).now_or_never().is_none(),
            "every turn is taken"
        );
        drop(busy);
        let thumb = waiting.await.unwrap();
        assert!(image::load_from_memory(&thumb).is_ok());
        // Once cached, no turn is needed.
        let busy = DECODES.acquire_many(MAX_DECODES as u32).await.unwrap();
        assert_eq!(
            blobs
                .thumbnail_async(hash, 160)
                .now_or_never()
                .unwrap()
                .unwrap(),
            thumb
        );
        drop(busy);
    }

    #[test]
    fn text_and_corrupt_images_get_no_thumbnail() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 1 << 20).unwrap();
        let blobs = BlobStore::open(&dir.path().join("blobs"), store.blob_records()).unwrap();
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
