//! The parents' app and the developers' engine bench: two entry points over the same modules,
//! built as two wasm modules so the bench never travels in the parents' download.

mod app;
mod components;
mod crash;
mod engine;
mod estimate;
mod gpu;
mod model_store;
mod opfs;
mod pages;
mod safetensors;
mod service_worker;
mod storage;
mod studio;
mod zip;

/// Mounts the parents' app (`index.html`).
pub fn start_app() {
    crash::install();
    leptos::mount::mount_to_body(app::App);
}

/// Mounts the engine bench (`bench.html`): a developer tool, not part of the app.
pub fn start_bench() {
    crash::install();
    leptos::mount::mount_to_body(pages::bench::Bench);
}
