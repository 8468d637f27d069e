//! Reusable pieces shared by the screens.

pub mod device_check;
pub mod empty_state;
pub mod error_note;
pub mod icon;
pub mod nav;
pub mod photo_crop;
pub mod stored_picture;
pub mod update_banner;
