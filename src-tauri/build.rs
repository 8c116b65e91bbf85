//! Tauri's build step, and the commit the app is built from for its About (see
//! crates/sloop-cli/commit.rs).

include!("../crates/sloop-cli/commit.rs");

fn main() {
    set_commit(std::path::Path::new(".."));
    tauri_build::build();
}
