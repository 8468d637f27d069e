//! Entry point: mounts the app. Everything else lives in the library modules.

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

fn main() {
    crash::install();
    leptos::mount::mount_to_body(app::App);
}
