//! Thumbnails for hit lists.

use image::codecs::jpeg::JpegEncoder;
use image::RgbImage;

/// A JPEG no larger than `edge` × `edge` pixels keeping the aspect ratio (images already that
/// small are re-encoded as they are).
pub fn thumbnail_jpeg(rgb: &RgbImage, edge: u32) -> Vec<u8> {
    let (w, h) = rgb.dimensions();
    let scale = (edge as f64 / w.max(h) as f64).min(1.0);
    let (tw, th) = (
        ((w as f64 * scale).round() as u32).max(1),
        ((h as f64 * scale).round() as u32).max(1),
    );
    let small = crate::resample::resize_bicubic(rgb, tw, th);
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 80)
        .encode_image(&small)
        .expect("encoding an RGB image into memory cannot fail");
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn fits_the_box_and_decodes() {
        let img = image::RgbImage::from_pixel(400, 100, image::Rgb([1, 2, 3]));
        let jpeg = super::thumbnail_jpeg(&img, 128);
        let back = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (128, 32));
    }
}
