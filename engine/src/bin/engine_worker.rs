//! The engine's browser entry point: Trunk builds this as the app's Web Worker
//! (`app/index.html`, `data-type="worker"`). See `engine::web::worker`.

#[cfg(target_arch = "wasm32")]
fn main() {
    engine::web::worker::start();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("engine-worker runs inside a browser's Web Worker; natively, use `toddler`.");
    std::process::exit(2);
}
