//! The photo decoder's front end: format sniffing, the size check before pixels, EXIF
//! orientation, decoding (JPEG, PNG, WebP).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = engine::photos::decode(data, Path::new("photo.jpg"));
});
