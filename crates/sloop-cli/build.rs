//! Records the commit the `sloop` binary is built from (see commit.rs).

include!("commit.rs");

fn main() {
    set_commit(std::path::Path::new("../.."));
}
