//! Bounded decoding to RGB.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use crate::ImageError;

/// How much an image may cost to decode.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest width × height accepted (after reading the header, before decoding).
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    /// 100 megapixels: every camera and scan, not a decompression bomb.
    fn default() -> Self {
        DecodeLimits {
            max_pixels: 100_000_000,
        }
    }
}

/// A decoded image and what the file was.
#[derive(Debug)]
pub struct Decoded {
    pub rgb: RgbImage,
    /// `jpeg`, `png`, `webp` or `gif`.
    pub format: &'static str,
}

/// The formats ferret reads, by their magic bytes (not by the file name: a text file named
/// `.jpg` is not a JPEG).
pub fn sniff(bytes: &[u8]) -> Option<(ImageFormat, &'static str)> {
    match image::guess_format(bytes).ok()? {
        ImageFormat::Jpeg => Some((ImageFormat::Jpeg, "jpeg")),
        ImageFormat::Png => Some((ImageFormat::Png, "png")),
        ImageFormat::WebP => Some((ImageFormat::WebP, "webp")),
        ImageFormat::Gif => Some((ImageFormat::Gif, "gif")),
        _ => None,
    }
}

/// Reads and decodes `path`.
pub fn decode_file(path: &Path, limits: DecodeLimits) -> Result<Decoded, ImageError> {
    let bytes = std::fs::read(path).map_err(|source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode(&bytes, path, limits)
}

/// Decodes `bytes` (named `origin` in errors) to 8-bit RGB with the EXIF orientation applied.
/// Alpha is dropped and grey expanded, as Pillow's `convert("RGB")` does.
pub fn decode(bytes: &[u8], origin: &Path, limits: DecodeLimits) -> Result<Decoded, ImageError> {
    let invalid = |message: String| ImageError::Invalid {
        path: origin.to_path_buf(),
        message,
    };
    if bytes.is_empty() {
        return Err(invalid("empty file (0 bytes), not an image".into()));
    }
    let (format, name) = sniff(bytes).ok_or_else(|| match image::guess_format(bytes) {
        Ok(other) => invalid(format!(
            "{other:?} images are not supported (ferret reads JPEG, PNG, WebP and GIF)"
        )),
        Err(_) => invalid(format!(
            "not an image: the file starts with {:02x?}, which is no JPEG, PNG, WebP or GIF signature",
            &bytes[..bytes.len().min(8)]
        )),
    })?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut l = Limits::default();
    // The pixel limit is checked below from the header; this bounds whatever else a decoder
    // allocates (4 bytes per pixel covers RGBA).
    l.max_alloc = Some(limits.max_pixels.saturating_mul(4).max(64 << 20));
    reader.limits(l);
    let broken = |e: image::ImageError| invalid(format!("broken {name} file: {e}"));
    let mut decoder = reader.into_decoder().map_err(broken)?;
    let (width, height) = decoder.dimensions();
    if width as u64 * height as u64 > limits.max_pixels {
        return Err(ImageError::TooLarge {
            path: origin.to_path_buf(),
            width,
            height,
            limit: limits.max_pixels,
        });
    }
    if width == 0 || height == 0 {
        return Err(invalid(format!(
            "{width} × {height} pixels: an empty image"
        )));
    }
    if format == ImageFormat::Jpeg {
        jpeg_is_complete(bytes).map_err(|m| invalid(format!("broken jpeg file: {m}")))?;
    }
    let orientation = decoder.orientation().map_err(broken)?;
    let mut image = match format {
        // libjpeg-turbo's pixels where it can produce them (see `jpeg_like_pillow`).
        ImageFormat::Jpeg => match jpeg_like_pillow(bytes) {
            Ok(rgb) => DynamicImage::ImageRgb8(rgb),
            Err(_) => DynamicImage::from_decoder(decoder).map_err(broken)?,
        },
        _ => DynamicImage::from_decoder(decoder).map_err(broken)?,
    };
    image.apply_orientation(orientation);
    Ok(Decoded {
        rgb: image.into_rgb8(),
        format: name,
    })
}

/// Whether a JPEG's segments lead to its end-of-image marker. JPEG decoders fill a truncated
/// file's missing rows with grey and carry on (libjpeg only warns); a half-downloaded photo must
/// not be indexed as if it were whole (Pillow refuses it too: "image file is truncated").
fn jpeg_is_complete(bytes: &[u8]) -> Result<(), String> {
    let truncated = || Err("truncated: the data ends before the end-of-image marker".to_string());
    let mut i = 2; // past SOI
    loop {
        // Fill bytes (0xFF runs) may precede a marker.
        while bytes.get(i) == Some(&0xFF) && bytes.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        let (Some(&0xFF), Some(&marker)) = (bytes.get(i), bytes.get(i + 1)) else {
            return truncated();
        };
        i += 2;
        match marker {
            0xD9 => return Ok(()),          // EOI
            0x01 | 0xD0..=0xD7 => continue, // no length
            _ => {}
        }
        let (Some(&hi), Some(&lo)) = (bytes.get(i), bytes.get(i + 1)) else {
            return truncated();
        };
        let length = u16::from_be_bytes([hi, lo]) as usize;
        if length < 2 {
            return Err(format!("corrupt segment length {length} at byte {i}"));
        }
        i += length;
        if i > bytes.len() {
            return truncated();
        }
        if marker == 0xDA {
            // Entropy-coded data runs to the next marker that is not a stuffed 0xFF00 or a
            // restart marker.
            loop {
                match (bytes.get(i), bytes.get(i + 1)) {
                    (Some(0xFF), Some(0x00 | 0xD0..=0xD7 | 0xFF)) => i += 1,
                    (Some(0xFF), Some(_)) => break,
                    (Some(_), _) => i += 1,
                    (None, _) => return truncated(),
                }
            }
        }
    }
}

/// A JPEG decoded by libjpeg-turbo's decoder (through mozjpeg, its fork), as Pillow decodes
/// it: the `image` crate's decoder (zune-jpeg) upsamples chroma and converts colours with
/// different rounding — up to 4 levels apart on a fifth of the pixels of a 4:2:0 Flickr
/// photo — which moves CLIP features by 1e-3 where the reference needs 1e-4. Colour spaces
/// libjpeg cannot turn into RGB (CMYK) are an error here and left to the `image` crate.
fn jpeg_like_pillow(bytes: &[u8]) -> Result<RgbImage, String> {
    // mozjpeg reports libjpeg's errors by unwinding (without the panic hook); caught here.
    std::panic::catch_unwind(|| -> std::io::Result<RgbImage> {
        let mut started = mozjpeg::Decompress::new_mem(bytes)?.rgb()?;
        let (w, h) = (started.width() as u32, started.height() as u32);
        let pixels: Vec<u8> = started.read_scanlines()?;
        started.finish()?;
        RgbImage::from_raw(w, h, pixels).ok_or_else(|| std::io::Error::other("short scanlines"))
    })
    .map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "libjpeg error".into())
    })?
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(format: ImageFormat, w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn decodes_png_and_jpeg_to_rgb() {
        let png = decode(
            &encode(ImageFormat::Png, 5, 3),
            Path::new("a.png"),
            DecodeLimits::default(),
        )
        .unwrap();
        assert_eq!(
            (png.rgb.width(), png.rgb.height(), png.format),
            (5, 3, "png")
        );
        assert_eq!(png.rgb.get_pixel(4, 2).0, [4, 2, 7]);
        let jpeg = decode(
            &encode(ImageFormat::Jpeg, 16, 8),
            Path::new("a.jpg"),
            DecodeLimits::default(),
        )
        .unwrap();
        assert_eq!((jpeg.rgb.width(), jpeg.format), (16, "jpeg"));
    }

    #[test]
    fn refuses_what_is_not_an_image_naming_the_file() {
        let limits = DecodeLimits::default();
        let e = decode(b"", Path::new("zero.jpg"), limits)
            .unwrap_err()
            .to_string();
        assert!(e.contains("zero.jpg") && e.contains("empty"), "{e}");
        let e = decode(b"hello, I am text", Path::new("text.jpg"), limits)
            .unwrap_err()
            .to_string();
        assert!(e.contains("text.jpg") && e.contains("not an image"), "{e}");
        let e = decode(b"BM\x3a\0\0\0\0\0\0\0", Path::new("a.bmp"), limits)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Bmp images are not supported"), "{e}");
        let whole = encode(ImageFormat::Jpeg, 64, 64);
        jpeg_is_complete(&whole).unwrap();
        let mut jpeg = whole.clone();
        jpeg.truncate(jpeg.len() / 3);
        let e = decode(&jpeg, Path::new("cut.jpg"), limits)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cut.jpg") && e.contains("broken jpeg"), "{e}");
    }

    #[test]
    fn refuses_too_many_pixels_from_the_header() {
        let png = encode(ImageFormat::Png, 300, 200);
        let e = decode(
            &png,
            Path::new("big.png"),
            DecodeLimits { max_pixels: 50_000 },
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                ImageError::TooLarge {
                    width: 300,
                    height: 200,
                    ..
                }
            ),
            "{e}"
        );
    }
}
