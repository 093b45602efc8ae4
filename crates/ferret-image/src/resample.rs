//! Resizing as Pillow does it, to the bit.
//!
//! Pillow's `Image.resize(size, BICUBIC)` (libImaging/Resample.c): a separable convolution,
//! one pass per axis, each output pixel a weighted sum of the input pixels under
//! the filter stretched by the downscaling factor (antialiasing), the weights normalised in
//! double precision, then converted to 22-bit fixed point; each pass rounds and clamps to 8
//! bits. No Rust crate reproduces this (the `image` crate's filters differ in support,
//! normalisation and rounding), and CLIP checkpoints were trained on Pillow's pixels.

use image::RgbImage;

/// Fixed-point precision of the 8-bit path (Pillow's `PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's bicubic kernel (a = −0.5), support 2.
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per output position: the first input index and the fixed-point weights from there.
struct Coefficients {
    bounds: Vec<(usize, usize)>,
    weights: Vec<Vec<i32>>,
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for `in_size` → `out_size`.
fn coefficients(in_size: usize, out_size: usize) -> Coefficients {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) truncates toward zero, then negative starts are clamped.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let k: Vec<f64> = (xmin..xmax)
            .map(|x| bicubic((x as f64 - center + 0.5) * ss))
            .collect();
        let ww: f64 = k.iter().sum();
        let fixed = k
            .iter()
            .map(|&w| {
                let w = if ww != 0.0 { w / ww } else { w };
                let v = w * (1u32 << PRECISION_BITS) as f64;
                (if v < 0.0 { v - 0.5 } else { v + 0.5 }) as i32
            })
            .collect();
        bounds.push((xmin, xmax - xmin));
        weights.push(fixed);
    }
    Coefficients { bounds, weights }
}

fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// `Image.resize((width, height), Image.BICUBIC)` of an RGB image.
pub fn resize_bicubic(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    if src.dimensions() == (width, height) {
        return src.clone(); // Pillow returns a copy for the same size
    }
    // Pillow 13 (python-pillow/Pillow#9549) resizes vertically first when the height shrinks
    // by more than twice as many pixels as the width; the passes round to 8 bits in between,
    // so the order shows in the pixels. This is the rule as measured against Pillow 13.0 on
    // square and non-square images (earlier Pillow always went horizontal first).
    let (w0, h0) = (src.width() as i64, src.height() as i64);
    let (w, h) = (width as i64, height as i64);
    if h < h0 && h0 - h > 2 * (w0 - w) {
        return transpose(&resize_horizontal_first(&transpose(src), height, width));
    }
    resize_horizontal_first(src, width, height)
}

fn transpose(src: &RgbImage) -> RgbImage {
    RgbImage::from_fn(src.height(), src.width(), |x, y| *src.get_pixel(y, x))
}

/// The horizontal pass (if the width changes), then the vertical one.
fn resize_horizontal_first(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w0, h0) = (src.width() as usize, src.height() as usize);
    let horizontal = coefficients(w0, width as usize);
    let vertical = coefficients(h0, height as usize);
    let half = 1i64 << (PRECISION_BITS - 1);
    let input = src.as_raw();
    // Horizontal pass (when the width changes) into [h0, width].
    let (mid, mid_w) = if w0 != width as usize {
        let mut mid = vec![0u8; h0 * width as usize * 3];
        for y in 0..h0 {
            let row = &input[y * w0 * 3..][..w0 * 3];
            for (xx, ((start, n), k)) in horizontal
                .bounds
                .iter()
                .zip(&horizontal.weights)
                .enumerate()
            {
                let mut ss = [half; 3];
                for (i, &w) in k.iter().enumerate().take(*n) {
                    let p = &row[(start + i) * 3..][..3];
                    for c in 0..3 {
                        ss[c] += p[c] as i64 * w as i64;
                    }
                }
                let out = &mut mid[(y * width as usize + xx) * 3..][..3];
                for c in 0..3 {
                    out[c] = clip8(ss[c]);
                }
            }
        }
        (mid, width as usize)
    } else {
        (input.to_vec(), w0)
    };
    if h0 == height as usize {
        return RgbImage::from_raw(width, height, mid).expect("sized");
    }
    let mut out = vec![0u8; height as usize * mid_w * 3];
    for (yy, ((start, n), k)) in vertical.bounds.iter().zip(&vertical.weights).enumerate() {
        for x in 0..mid_w {
            let mut ss = [half; 3];
            for (i, &w) in k.iter().enumerate().take(*n) {
                let p = &mid[((start + i) * mid_w + x) * 3..][..3];
                for c in 0..3 {
                    ss[c] += p[c] as i64 * w as i64;
                }
            }
            let o = &mut out[(yy * mid_w + x) * 3..][..3];
            for c in 0..3 {
                o[c] = clip8(ss[c]);
            }
        }
    }
    RgbImage::from_raw(width, height, out).expect("sized")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (a, b) in [(300, 224), (224, 300), (200, 224), (1000, 7)] {
            let c = coefficients(a, b);
            for k in &c.weights {
                let s: i64 = k.iter().map(|&w| w as i64).sum();
                assert!(
                    (s - (1 << PRECISION_BITS)).abs() <= k.len() as i64,
                    "{a}->{b}: {s}"
                );
            }
        }
    }

    /// Pillow 13.0's `resize(size, BICUBIC)` of a 9×8 image with pixel bytes i·37 mod 256:
    /// to 10×3 (vertical pass first) and 5×2 (horizontal first).
    #[test]
    fn matches_pillow_in_both_pass_orders() {
        let bytes: Vec<u8> = (0..9 * 8 * 3).map(|i| (i * 37 % 256) as u8).collect();
        let img = RgbImage::from_raw(9, 8, bytes).unwrap();
        #[rustfmt::skip]
        let to_10x3: [u8; 90] = [153, 84, 52, 84, 119, 155, 186, 154, 103, 87, 100, 111, 108, 159, 152, 139, 135, 123, 97, 75, 127, 142, 162, 179, 154, 95, 54, 90, 136, 175, 178, 213, 203, 74, 68, 103, 119, 158, 197, 126, 102, 101, 99, 102, 126, 158, 135, 137, 170, 109, 85, 77, 129, 142, 178, 207, 120, 71, 59, 106, 100, 140, 187, 206, 180, 43, 92, 115, 122, 160, 187, 103, 103, 132, 86, 77, 125, 166, 134, 151, 175, 83, 51, 94, 126, 149, 188, 223, 86, 37];
        #[rustfmt::skip]
        let to_5x2: [u8; 30] = [125, 122, 125, 119, 125, 130, 123, 124, 130, 134, 122, 128, 119, 129, 117, 139, 150, 135, 128, 139, 112, 114, 131, 126, 113, 118, 138, 149, 116, 114];
        assert_eq!(
            resize_bicubic(&img, 10, 3).as_raw().as_slice(),
            &to_10x3[..]
        );
        assert_eq!(resize_bicubic(&img, 5, 2).as_raw().as_slice(), &to_5x2[..]);
    }

    #[test]
    fn a_flat_image_stays_flat_and_sizes_are_kept() {
        let img = RgbImage::from_pixel(37, 23, image::Rgb([200, 10, 99]));
        let out = resize_bicubic(&img, 50, 11);
        assert_eq!(out.dimensions(), (50, 11));
        assert!(out.pixels().all(|p| p.0 == [200, 10, 99]));
    }
}
