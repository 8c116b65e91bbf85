//! Writes a signed HEPiX image list naming one image, for tests outside Rust (the app-window
//! E2E): `sloop-test-list IMAGE URL DIR` writes `DIR/list.image_list` and the endorser's fresh CA
//! into `DIR/anchors/`, and prints the two paths, one per line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [image, url, dir] = args.as_slice() else {
        eprintln!("usage: sloop-test-list IMAGE URL DIR");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("sloop-test-list: cannot make {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let (list, anchors) = sloop_testkit::signed_list(&PathBuf::from(image), url, &dir);
    let printed = writeln!(
        std::io::stdout(),
        "{}\n{}",
        list.display(),
        anchors.display()
    );
    if printed.is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
