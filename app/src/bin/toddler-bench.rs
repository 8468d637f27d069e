//! Entry point of the engine bench (`bench.html`), a developer tool kept out of the app's module.

fn main() {
    app::start_bench();
}
