// No console window next to the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> std::process::ExitCode {
    match sloop_app::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // Logging may not have started (no data folder): standard error is all there is.
            eprintln!("sloop-app: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
