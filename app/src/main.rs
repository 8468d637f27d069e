//! Entry point of the parents' app (`index.html`); everything lives in the library.

fn main() {
    app::start_app();
}
