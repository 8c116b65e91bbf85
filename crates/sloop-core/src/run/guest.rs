//! What a grid run does inside the machine, written into the run's seed: place the delegated
//! proxy the site's VM job shares (9p tag `sloop-grid`) exactly where a local machine has it
//! (memory only, same path and variables), keep placing renewals, and, for a batch run, run the
//! command as the user in /analysis, record its exit status and power off.
//!
//! The script goes into the seed base64-encoded and is unpacked into /run (memory) at boot, so
//! nothing of it lands on the machine's disk. It is plain POSIX sh for busybox and Debian alike.

use std::fmt::Write as _;

use base64::Engine as _;

/// The 9p tag under which the site's VM job shares the proxy and trust anchors.
pub const GRID_TAG: &str = "sloop-grid";
/// Where the guest writes the command's exit status, inside the shared /analysis.
pub const EXIT_STATUS: &str = ".sloop/exit-status";
/// The command's output (stdout and stderr), inside the shared /analysis.
pub const COMMAND_LOG: &str = "output/sloop-command.log";

/// The shell script the machine runs once per run.
pub fn script(user: &str, uid: u32, command: Option<&str>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "#!/bin/sh");
    s.push_str(
        "# Sloop grid run, inside the machine (see docs/site-admins.md): the proxy the site shares\n\
         # goes to memory only, as on the laptop; then the command, its exit status, power off.\n",
    );
    let _ = writeln!(s, "uid={uid}");
    let _ = writeln!(s, "user={}", crate::ssh::sh_quote(user));
    let _ = writeln!(s, "grid=/run/sloop/grid");
    let _ = writeln!(s, "secrets={}", super::super::machine::seed::SECRETS_DIR);
    s.push_str(concat!(
        "say() { echo \"sloop-run: $*\"; }\n",
        "mkdir -p \"$grid\"\n",
        "mountpoint -q \"$grid\" || mount -t 9p -o trans=virtio,version=9p2000.L,ro ",
    ));
    let _ = writeln!(
        s,
        "{GRID_TAG} \"$grid\" || say 'the site shares no proxy: none in this run'"
    );
    s.push_str(concat!(
        "home=$(awk -F: -v u=\"$user\" '$1 == u { print $6 }' /etc/passwd)\n",
        "place() {\n",
        "  [ -f \"$grid/x509up\" ] || return 0\n",
        "  cmp -s \"$grid/x509up\" \"$secrets/x509up_u$uid\" && return 0\n",
        "  cp \"$grid/x509up\" \"$secrets/.x509up.new\" && chown \"$uid:$uid\" \"$secrets/.x509up.new\" &&\n",
        "    chmod 600 \"$secrets/.x509up.new\" && mv -f \"$secrets/.x509up.new\" \"$secrets/x509up_u$uid\" &&\n",
        "    say 'proxy placed'\n",
        "}\n",
        "place\n",
        "ln -sfn \"$secrets/x509up_u$uid\" \"/tmp/x509up_u$uid\"\n",
        "g=\"$home/.sloop/grid\"\n",
        "mkdir -p \"$g\" && rm -rf \"$g/certificates\" \"$g/vomsdir\" \"$g/vomses\"\n",
        "env='export X509_USER_PROXY=\"/run/sloop/secrets/x509up_u$(id -u)\"'\n",
        "if [ -d \"$grid/certificates\" ]; then cp -R \"$grid/certificates\" \"$g/\"; env=\"$env\nexport X509_CERT_DIR=\\\"\\$HOME/.sloop/grid/certificates\\\"\"; fi\n",
        "if [ -d \"$grid/vomsdir\" ]; then cp -R \"$grid/vomsdir\" \"$g/\"; env=\"$env\nexport X509_VOMS_DIR=\\\"\\$HOME/.sloop/grid/vomsdir\\\"\"; fi\n",
        "if [ -e \"$grid/vomses\" ]; then cp -R \"$grid/vomses\" \"$g/\"; env=\"$env\nexport VOMS_USERCONF=\\\"\\$HOME/.sloop/grid/vomses\\\" X509_VOMSES=\\\"\\$HOME/.sloop/grid/vomses\\\"\"; fi\n",
        "printf '# Written by Sloop for this grid run.\\n%s\\n' \"$env\" >\"$g/env.sh\"\n",
        "chown -R \"$uid:$uid\" \"$home/.sloop\"\n",
        "grep -qs 'sloop/grid/env.sh' \"$home/.profile\" ||\n",
        "  echo '[ -f \"$HOME/.sloop/grid/env.sh\" ] && . \"$HOME/.sloop/grid/env.sh\"' >>\"$home/.profile\"\n",
        "# A renewed delegation reaches the share; place it within seconds.\n",
        "(while sleep 10; do place; done) &\n",
        "# The uploaded inputs belong to the site's job user: give them to the machine's user.\n",
        "mkdir -p /analysis/output /analysis/.sloop && chown -R \"$uid:$uid\" /analysis\n",
    ));
    match command {
        Some(command) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(command);
            let _ = writeln!(s, "echo {encoded} | base64 -d >/run/sloop/command");
            s.push_str("chmod 644 /run/sloop/command\n");
            s.push_str("say \"running the command as $user in /analysis\"\n");
            let _ = writeln!(
                s,
                "su - \"$user\" -c 'cd /analysis && . \"$HOME/.sloop/grid/env.sh\" && exec sh /run/sloop/command' >/analysis/{COMMAND_LOG} 2>&1"
            );
            s.push_str("status=$?\n");
            let _ = writeln!(
                s,
                "echo \"$status\" >/analysis/{EXIT_STATUS}.new && mv -f /analysis/{EXIT_STATUS}.new /analysis/{EXIT_STATUS}"
            );
            s.push_str(
                "sync\nsay \"the command exited with status $status; powering off\"\npoweroff\n",
            );
        }
        None => {
            s.push_str("say 'interactive run: the machine stays up until it is powered off'\n");
        }
    }
    s
}

/// The `runcmd` item that unpacks [`script`] into memory and starts it in the background (the
/// SSH server of the test image starts after runcmd). No `nohup`: busybox images lack it, and
/// nothing sends the script a hangup (runcmd has no terminal).
pub fn runcmd(script: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(script);
    format!(
        "mkdir -p /run/sloop && echo {encoded} | base64 -d >/run/sloop/run.sh && (sh /run/sloop/run.sh </dev/null >/dev/console 2>&1 &)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn the_script_is_valid_shell() {
        for command in [Some("analyse --fast 'x y' && echo \"$HOME\""), None] {
            let text = script("sloop", 1000, command);
            let output = Command::new("sh")
                .arg("-n")
                .arg("-c")
                .arg(&text)
                .output()
                .unwrap();
            assert!(output.status.success(), "{text}\n{output:?}");
            if let Some(command) = command {
                // The command travels encoded: no quoting of the user's text can break the script.
                assert!(!text.contains(command));
            }
        }
        assert!(runcmd("echo hi").starts_with("mkdir -p /run/sloop && echo "));
    }
}
