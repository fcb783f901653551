//! Images as stored: the type checked from the bytes, decoding bounded, large ones scaled down and
//! re-encoded (PNG), and a thumbnail (PNG) for every image.

use crate::error::{AssetError, Result};
use bytes::Bytes;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use std::io::Cursor;

/// The most pixels an image may decode to (a small file can expand to gigabytes: a decompression
/// bomb is refused here).
const MAX_PIXELS: u64 = 64 * 1024 * 1024;

/// An image ready to store.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// The file (the original when it was small enough, else re-encoded).
    pub bytes: Bytes,
    /// Its media type.
    pub media_type: &'static str,
    /// The thumbnail (PNG).
    pub thumbnail: Bytes,
    /// Its size in pixels.
    pub width: u32,
    pub height: u32,
}

/// The format of `bytes` read from their signature (PNG, JPEG, GIF or WebP), never from a name or
/// a claimed type.
fn sniff(bytes: &[u8]) -> Option<(ImageFormat, &'static str)> {
    let t = gaia_core::storage::sniff_image_type(bytes)?;
    Some(match t {
        "image/png" => (ImageFormat::Png, t),
        "image/jpeg" => (ImageFormat::Jpeg, t),
        "image/gif" => (ImageFormat::Gif, t),
        _ => (ImageFormat::WebP, t),
    })
}

fn encode_png(img: &DynamicImage) -> Result<Bytes> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png)
        .map_err(|e| AssetError::Invalid(format!("cannot encode the image: {e}")))?;
    Ok(Bytes::from(out.into_inner()))
}

/// Checks, bounds and thumbnails an image (CPU work: call it off the async threads).
pub(crate) fn prepare(bytes: Bytes, max_side: u32, thumb_side: u32) -> Result<Prepared> {
    let (format, media_type) =
        sniff(&bytes).ok_or_else(|| AssetError::Unsupported("the image is not PNG, JPEG, GIF or WebP".into()))?;
    let mut reader = ImageReader::with_format(Cursor::new(&bytes[..]), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(16_384);
    limits.max_image_height = Some(16_384);
    limits.max_alloc = Some(MAX_PIXELS * 4);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| AssetError::Invalid(format!("the image cannot be decoded: {e}")))?;
    let (width, height) = (img.width(), img.height());
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(AssetError::TooLarge("the image has too many pixels".into()));
    }
    let (bytes, media_type, width, height) = if width.max(height) > max_side {
        let scaled = img.resize(max_side, max_side, image::imageops::FilterType::Triangle);
        let (w, h) = (scaled.width(), scaled.height());
        (encode_png(&scaled)?, "image/png", w, h)
    } else {
        (bytes, media_type, width, height)
    };
    let thumbnail = encode_png(&img.thumbnail(thumb_side, thumb_side))?;
    Ok(Prepared { bytes, media_type, thumbnail, width, height })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Bytes {
        gaia_providers::mock::media::png(w, h, [200, 10, 10])
    }

    #[test]
    fn large_images_are_scaled_and_every_one_gets_a_thumbnail() {
        let p = prepare(png(600, 300), 400, 64).unwrap();
        assert_eq!((p.width, p.height, p.media_type), (400, 200, "image/png"));
        let t = image::load_from_memory(&p.thumbnail).unwrap();
        assert_eq!((t.width(), t.height()), (64, 32));
        let small = png(100, 50);
        let p = prepare(small.clone(), 400, 64).unwrap();
        assert_eq!(p.bytes, small, "small enough: kept as it came");
    }

    #[test]
    fn what_is_not_an_image_is_refused_by_its_bytes() {
        assert!(matches!(
            prepare(Bytes::from_static(b"<svg onload=alert(1)>"), 400, 64),
            Err(AssetError::Unsupported(_))
        ));
        let mut broken = png(10, 10).to_vec();
        broken.truncate(30);
        assert!(matches!(prepare(Bytes::from(broken), 400, 64), Err(AssetError::Invalid(_))));
    }
}
