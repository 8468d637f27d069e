//! One chosen photo and the square the avatar learns from: the parent drags it onto the child's
//! face and drags its corner to resize it (or uses the arrow keys, + and −). A first look at the
//! square ([`stories::photo_check`]) shows advice under it; nothing here leaves the page.

use leptos::html;
use leptos::prelude::*;
use protocol::PhotoCrop;
use stories::photo_check::{SAMPLE_SIDE, check_photo};
use wasm_bindgen::JsCast;

/// A photo the parent chose, before it is stored with the avatar.
#[derive(Clone, Debug)]
pub struct ChosenPhoto {
    /// Stays the same while others are added and removed (the list's key).
    pub key: u32,
    pub file: web_sys::File,
    url: String,
    /// The photo's size as shown (EXIF orientation applied), once it has loaded.
    size: RwSignal<Option<(f64, f64)>>,
    crop: RwSignal<Option<PhotoCrop>>,
    advice: RwSignal<Option<&'static str>>,
    /// Whether the face finder saw a face in it: `None` until it has looked (or if it could not).
    face: RwSignal<Option<bool>>,
}

impl ChosenPhoto {
    pub fn new(key: u32, file: web_sys::File) -> Option<ChosenPhoto> {
        let url = web_sys::Url::create_object_url_with_blob(&file).ok()?;
        Some(ChosenPhoto {
            key,
            file,
            url,
            size: RwSignal::new(None),
            crop: RwSignal::new(None),
            advice: RwSignal::new(None),
            face: RwSignal::new(None),
        })
    }

    /// The photo's object URL (the engine worker reads it to look for a face).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What the face finder saw; ignored once the form is gone.
    pub fn set_face_found(&self, found: bool) {
        self.face.try_set(Some(found));
    }

    /// The parent's square; `None` until the photo has loaded (the engine then uses the same
    /// default).
    pub fn crop(&self) -> Option<PhotoCrop> {
        self.crop.get_untracked()
    }

    /// Frees the photo's object URL (once it is removed or stored).
    pub fn release(&self) {
        let _ = web_sys::Url::revoke_object_url(&self.url);
    }
}

/// Where a drag started: the pointer, the square then, and the frame's size on screen.
#[derive(Clone, Copy)]
struct Drag {
    x: f64,
    y: f64,
    from: PhotoCrop,
    resizing: bool,
    frame_width: f64,
    frame_height: f64,
}

/// Arrow keys move the square by this much of the photo; + and − resize by [`KEY_GROW`].
const KEY_STEP: f64 = 0.02;
const KEY_GROW: f64 = 0.05;

#[component]
pub fn PhotoCropper(
    photo: ChosenPhoto,
    /// 1-based, for labels.
    number: usize,
    /// The training resolution (a small square is flagged against it).
    resolution: usize,
    on_remove: Callback<u32>,
    /// The browser could not show the file as a picture.
    on_unreadable: Callback<u32>,
) -> impl IntoView {
    let ChosenPhoto {
        key,
        url,
        size,
        crop,
        advice,
        face,
        ..
    } = photo;
    let frame = NodeRef::<html::Div>::new();
    let image = NodeRef::<html::Img>::new();
    let drag = StoredValue::new(None::<Drag>);

    let look = move || {
        if let (Some(image), Some(square), Some((width, height))) = (
            image.get_untracked(),
            crop.get_untracked(),
            size.get_untracked(),
        ) {
            advice.set(inspect(&image, square, width, height, resolution));
        }
    };
    let loaded = move |_| {
        let Some(element) = image.get_untracked() else {
            return;
        };
        let (width, height) = (
            f64::from(element.natural_width()),
            f64::from(element.natural_height()),
        );
        if width > 0.0 && height > 0.0 {
            size.set(Some((width, height)));
            if crop.get_untracked().is_none() {
                crop.set(Some(PhotoCrop::centred(width, height)));
            }
            look();
        }
    };
    let begin = move |event: web_sys::PointerEvent, resizing: bool| {
        let (Some(frame), Some(from)) = (frame.get_untracked(), crop.get_untracked()) else {
            return;
        };
        event.prevent_default();
        event.stop_propagation();
        if let Some(target) = event
            .current_target()
            .and_then(|target| target.dyn_into::<web_sys::Element>().ok())
        {
            // Later moves come here even when the finger leaves the square.
            let _ = target.set_pointer_capture(event.pointer_id());
        }
        let rect = frame.get_bounding_client_rect();
        drag.set_value(Some(Drag {
            x: f64::from(event.client_x()),
            y: f64::from(event.client_y()),
            from,
            resizing,
            frame_width: rect.width().max(1.0),
            frame_height: rect.height().max(1.0),
        }));
    };
    let moving = move |event: web_sys::PointerEvent| {
        let (Some(drag), Some((width, height))) = (drag.get_value(), size.get_untracked()) else {
            return;
        };
        let dx = (f64::from(event.client_x()) - drag.x) / drag.frame_width;
        let dy = (f64::from(event.client_y()) - drag.y) / drag.frame_height;
        let next = if drag.resizing {
            // The corner follows the pointer: grow by the larger of the two moves.
            let shorter = width.min(height);
            let grow = (dx * width).max(dy * height) / shorter;
            drag.from.adjusted(0.0, 0.0, grow, width, height)
        } else {
            drag.from.adjusted(dx, dy, 0.0, width, height)
        };
        crop.set(Some(next));
    };
    let end = move |_: web_sys::PointerEvent| {
        if drag.get_value().is_some() {
            drag.set_value(None);
            look();
        }
    };
    let keys = move |event: web_sys::KeyboardEvent| {
        let (Some(from), Some((width, height))) = (crop.get_untracked(), size.get_untracked())
        else {
            return;
        };
        let (dx, dy, grow) = match event.key().as_str() {
            "ArrowLeft" => (-KEY_STEP, 0.0, 0.0),
            "ArrowRight" => (KEY_STEP, 0.0, 0.0),
            "ArrowUp" => (0.0, -KEY_STEP, 0.0),
            "ArrowDown" => (0.0, KEY_STEP, 0.0),
            "+" | "=" => (0.0, 0.0, KEY_GROW),
            "-" | "_" => (0.0, 0.0, -KEY_GROW),
            _ => return,
        };
        event.prevent_default();
        crop.set(Some(from.adjusted(dx, dy, grow, width, height)));
        look();
    };
    // Set through the CSSOM (`style:`), which the app's CSP allows where inline styles are not.
    let spans = move || {
        let (square, (width, height)) = (crop.get()?, size.get()?);
        let (across, down) = square.spans(width, height);
        Some((square.left, square.top, across, down))
    };
    let percent = move |pick: fn((f64, f64, f64, f64)) -> f64| {
        move || {
            spans()
                .map(|spans| format!("{:.3}%", pick(spans) * 100.0))
                .unwrap_or_default()
        }
    };

    view! {
        <li class="photo-crop" data-testid="chosen-photo">
            <div class="crop-frame" node_ref=frame on:pointermove=moving on:pointerup=end on:pointercancel=end>
                <img node_ref=image src=url alt=format!("Photo {number}") draggable="false"
                    on:load=loaded on:error=move |_| on_unreadable.run(key) />
                <div class="crop-square" tabindex="0" class:hidden=move || spans().is_none()
                    style:left=percent(|spans| spans.0) style:top=percent(|spans| spans.1)
                    style:width=percent(|spans| spans.2) style:height=percent(|spans| spans.3) role="group" data-testid="crop-square"
                    aria-label=format!("The part of photo {number} the avatar learns from. Arrow keys move it; plus and minus resize it.")
                    on:pointerdown=move |event| begin(event, false) on:keydown=keys>
                    <span class="crop-handle" aria-hidden="true" on:pointerdown=move |event| begin(event, true)></span>
                </div>
            </div>
            {move || advice.get().map(|text| view! { <p class="photo-advice" data-testid="photo-advice">{text}</p> })}
            {move || (face.get() == Some(false)).then(|| view! {
                <p class="photo-advice" data-testid="no-face-advice">
                    "No face found in this photo. Choose one where your child's face is clear, lit and "
                    "towards the camera, not tiny or half hidden. (The face finder is less sure with small "
                    "children: keep the photo if you can see the face well.)"
                </p>
            })}
            <button type="button" class="button small" on:click=move |_| on_remove.run(key)
                aria-label=format!("Remove photo {number}")>"Remove"</button>
        </li>
    }
}

/// Draws the square small and asks [`check_photo`] about it.
fn inspect(
    image: &web_sys::HtmlImageElement,
    square: PhotoCrop,
    width: f64,
    height: f64,
    resolution: usize,
) -> Option<&'static str> {
    let canvas: web_sys::HtmlCanvasElement = web_sys::window()?
        .document()?
        .create_element("canvas")
        .ok()?
        .dyn_into()
        .ok()?;
    let side = SAMPLE_SIDE as u32;
    canvas.set_width(side);
    canvas.set_height(side);
    let context: web_sys::CanvasRenderingContext2d =
        canvas.get_context("2d").ok()??.dyn_into().ok()?;
    let (x, y, crop_side) = square.in_pixels(width as u32, height as u32);
    context
        .draw_image_with_html_image_element_and_sw_and_sh_and_dx_and_dy_and_dw_and_dh(
            image,
            f64::from(x),
            f64::from(y),
            f64::from(crop_side),
            f64::from(crop_side),
            0.0,
            0.0,
            f64::from(side),
            f64::from(side),
        )
        .ok()?;
    let pixels = context
        .get_image_data(0.0, 0.0, f64::from(side), f64::from(side))
        .ok()?
        .data();
    check_photo(&pixels, SAMPLE_SIDE, f64::from(crop_side), resolution)
        .map(|problem| problem.advice())
}
