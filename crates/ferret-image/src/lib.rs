//! ferret-image: what ferret does with image files before any model sees them.
//!
//! * [`decode`]: JPEG, PNG, WebP and GIF (first frame) to 8-bit RGB, with the EXIF orientation
//!   applied and the pixel count checked *before* pixels are allocated, so a 30,000 × 30,000
//!   PNG is refused without exhausting memory. Errors name the file and say what is wrong.
//! * [`resample`]: resizing exactly as Pillow's `Image.resize` does (separable convolution with
//!   Pillow's filters and its 22-bit fixed-point arithmetic on 8-bit images) — CLIP's
//!   preprocessing is defined by Pillow, and reproducing its pixels is what makes features
//!   match the reference implementation.
//! * [`thumbnail`]: small JPEG previews for hit lists.

mod decode;
mod error;
pub mod resample;
mod thumbnail;

pub use decode::{decode, decode_file, sniff, DecodeLimits, Decoded};
pub use error::ImageError;
pub use image::RgbImage;
pub use thumbnail::thumbnail_jpeg;
