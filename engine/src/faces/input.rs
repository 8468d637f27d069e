//! A picture as the face models take it, exactly as face-api.js' `NetInput.toBatchTensor` makes
//! it.

use burn::tensor::{DType, Device, Tensor, TensorData};
use image::RgbImage;

/// The picture as `[height, width, 3]` floats, padded with black to a square — at the bottom or
/// right (`centred` false), or split around it (`centred`: the larger half after) — and resized
/// to `side`² with TensorFlow's bilinear resize (no corner alignment, no half-pixel centres),
/// then `(value − mean) / 255`, as `[1, 3, side, side]`.
pub(super) fn to_input(
    picture: &RgbImage,
    side: usize,
    centred: bool,
    mean: [f32; 3],
    device: &Device,
) -> Tensor<4> {
    let (width, height) = (picture.width() as usize, picture.height() as usize);
    let square = width.max(height);
    let difference = square - width.min(height);
    let after = if centred {
        (difference as f64 * 0.5).round() as usize
    } else {
        difference
    };
    let before = difference - after;
    let (left, top) = if height > width {
        (before, 0)
    } else {
        (0, before)
    };
    let padded_pixel = |row: usize, col: usize, channel: usize| -> f64 {
        let (r, c) = (row.wrapping_sub(top), col.wrapping_sub(left));
        if r < height && c < width {
            f64::from(picture.get_pixel(c as u32, r as u32)[channel])
        } else {
            0.0
        }
    };
    let ratio = square as f64 / side as f64;
    let mut values = vec![0f32; 3 * side * side];
    for row in 0..side {
        let source_row = ratio * row as f64;
        let top_row = source_row.floor().max(0.0) as usize;
        let row_fraction = source_row - top_row as f64;
        let bottom_row = (source_row.ceil() as usize).min(square - 1);
        for col in 0..side {
            let source_col = ratio * col as f64;
            let left_col = source_col.floor().max(0.0) as usize;
            let col_fraction = source_col - left_col as f64;
            let right_col = (source_col.ceil() as usize).min(square - 1);
            for channel in 0..3 {
                let top_left = padded_pixel(top_row, left_col, channel);
                let top_right = padded_pixel(top_row, right_col, channel);
                let bottom_left = padded_pixel(bottom_row, left_col, channel);
                let bottom_right = padded_pixel(bottom_row, right_col, channel);
                let upper = top_left + (top_right - top_left) * col_fraction;
                let lower = bottom_left + (bottom_right - bottom_left) * col_fraction;
                // tfjs stores the resized picture as f32, then normalises in f32.
                let resized = (upper + (lower - upper) * row_fraction) as f32;
                values[(channel * side + row) * side + col] = (resized - mean[channel]) / 255.0;
            }
        }
    }
    Tensor::from_data(
        TensorData::new(values, [1, 3, side, side]),
        (device, DType::F32),
    )
}
