// Included by the build scripts of the CLI and the app: sets SLOOP_COMMIT, the commit a binary
// was built from, for `sloop --version` and the app's About. SLOOP_COMMIT in the environment
// wins (a build from a source archive); else `git rev-parse` of the checkout; else "unknown".

/// Sets `SLOOP_COMMIT` for the crate being built, from the repository at `repo` (its root).
fn set_commit(repo: &std::path::Path) {
    println!("cargo::rerun-if-env-changed=SLOOP_COMMIT");
    let from_env = std::env::var("SLOOP_COMMIT").ok().filter(|c| !c.is_empty());
    let commit = from_env.unwrap_or_else(|| {
        let git_dir = repo.join(".git");
        // A new commit moves HEAD or the branch it names (loose or packed).
        for file in ["HEAD", "packed-refs"] {
            println!("cargo::rerun-if-changed={}", git_dir.join(file).display());
        }
        if let Ok(head) = std::fs::read_to_string(git_dir.join("HEAD"))
            && let Some(branch) = head.trim().strip_prefix("ref: ")
        {
            println!("cargo::rerun-if-changed={}", git_dir.join(branch).display());
        }
        std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(repo)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "unknown".into())
    });
    println!("cargo::rustc-env=SLOOP_COMMIT={commit}");
}
