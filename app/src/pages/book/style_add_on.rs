//! The book's picture style add-on (a style LoRA) in the editor.

use leptos::prelude::*;
use stories::Book as BookData;

use crate::storage;
use crate::studio;

/// The book's picture style LoRA: add one (a `.safetensors` made for this model), set its
/// strength, remove it. The file is stored beside the book; every page is drawn with it.
#[component]
pub fn StyleAddOn(
    book: RwSignal<Option<BookData>>,
    edit: StoredValue<impl Fn(Box<dyn FnOnce(&mut BookData)>) + Send + Sync + 'static>,
    error: RwSignal<Option<String>>,
) -> impl IntoView {
    let add = move |event: leptos::ev::Event| {
        let Some(file) = storage::chosen_files(&event).into_iter().next() else {
            return;
        };
        let Some(id) = book.with_untracked(|book| book.as_ref().map(|book| book.id.clone())) else {
            return;
        };
        leptos::task::spawn_local(async move {
            let added = async {
                let bytes = storage::file_bytes(&file).await?;
                if !crate::safetensors::looks_like_lora(&bytes) {
                    return Err(format!(
                        "{} is not a LoRA file. Style add-ons are .safetensors files made for this picture model.",
                        file.name()
                    ));
                }
                studio::check_file(&bytes, &file.name(), protocol::FileKind::Lora)
                    .await
                    .map_err(|message| {
                        format!(
                            "{} cannot be used as a style add-on: it {message}",
                            file.name()
                        )
                    })?;
                storage::write(&studio::book_path(&id, BookData::STYLE_LORA_FILE), &bytes).await?;
                Ok(file.name().trim_end_matches(".safetensors").to_owned())
            };
            match added.await {
                Ok(name) => edit.with_value(|edit| {
                    edit(Box::new(move |book| {
                        book.style_lora = Some(stories::StyleLora { name, scale: 1.0 })
                    }))
                }),
                Err(message) => {
                    error.try_set(Some(message));
                }
            }
        });
    };
    let remove = move |_| {
        edit.with_value(|edit| edit(Box::new(|book| book.style_lora = None)));
    };
    let style = move || book.with(|book| book.as_ref().and_then(|book| book.style_lora.clone()));
    view! {
        <section class="card style-addon" data-testid="style-lora">
            <h2>"Picture style add-on"</h2>
            {move || match style() {
                None => view! {
                    <p class="muted">
                        "A style LoRA (a .safetensors file made for this picture model, such as a watercolour look) "
                        "changes how every picture of this book is drawn. It stays on this device."
                    </p>
                    <label class="button">
                        "Add a style LoRA…"
                        <input type="file" class="visually-hidden" accept=".safetensors" on:change=add />
                    </label>
                }.into_any(),
                Some(style) => view! {
                    <p data-testid="style-name">{format!("Drawn in the style “{}”.", style.name)}</p>
                    <label>
                        {format!("Style strength: {:.1}", style.scale)}
                        <input type="range" min="0" max="1.5" step="0.1" prop:value=style.scale.to_string()
                            on:change=move |event| {
                                let scale: f64 = event_target_value(&event).parse().unwrap_or(1.0);
                                edit.with_value(|edit| edit(Box::new(move |book| {
                                    if let Some(style) = &mut book.style_lora {
                                        style.scale = scale;
                                    }
                                })));
                            } />
                    </label>
                    <button class="button" on:click=remove>"Remove the style"</button>
                }.into_any(),
            }}
        </section>
    }
}
