//! A book's pictures taken out of the app: a zip with the story's text, or the Web Share sheet.

use stories::Book as BookData;
use wasm_bindgen::JsCast;

use crate::storage;
use crate::studio::book_path;

/// Whether this browser has the Web Share sheet.
pub fn has_share() -> bool {
    web_sys::window()
        .and_then(|window| js_sys::Reflect::get(&window.navigator(), &"share".into()).ok())
        .is_some_and(|share| share.is_function())
}

/// The chosen pictures, in page order, as (file name in the zip, PNG bytes).
async fn chosen_pictures(book: &BookData) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for (index, page) in book.pages.iter().enumerate() {
        if let Some(picture) = page.picture()
            && let Ok(Some(bytes)) = storage::read(&book_path(&book.id, &picture.file)).await
        {
            files.push((format!("page-{:02}.png", index + 1), bytes));
        }
    }
    files
}

/// Downloads `story.txt` and the chosen pictures as one zip.
pub async fn download_zip(book: &BookData) -> Result<(), String> {
    let files = chosen_pictures(book).await;
    let mut text = format!("{}\n\n", book.title);
    for (index, page) in book.pages.iter().enumerate() {
        text.push_str(&format!("Page {}: {}\n", index + 1, page.text));
    }
    let mut entries: Vec<(String, Vec<u8>)> = vec![("story.txt".into(), text.into_bytes())];
    entries.extend(files);
    let zip = crate::zip::stored(&entries);
    storage::download(
        &zip,
        &format!("{}.zip", book.title.replace(['/', '\\'], "-")),
        "application/zip",
    )
}

/// Opens the share sheet with the chosen pictures.
pub async fn share_book(book: &BookData) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let files = js_sys::Array::new();
    for (name, bytes) in chosen_pictures(book).await {
        let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes.as_slice()));
        let options = web_sys::FilePropertyBag::new();
        options.set_type("image/png");
        if let Ok(file) =
            web_sys::File::new_with_u8_array_sequence_and_options(&parts, &name, &options)
        {
            files.push(&file);
        }
    }
    let data = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&data, &"title".into(), &book.title.clone().into());
    let _ = js_sys::Reflect::set(&data, &"files".into(), &files);
    let navigator = window.navigator();
    if let Ok(share) = js_sys::Reflect::get(&navigator, &"share".into())
        && let Ok(promise) = share
            .unchecked_into::<js_sys::Function>()
            .call1(&navigator, &data)
        && let Ok(promise) = promise.dyn_into::<js_sys::Promise>()
    {
        // The parent may dismiss the share sheet: not an error.
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    }
}
