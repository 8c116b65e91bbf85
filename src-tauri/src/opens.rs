//! Files and links the desktop hands to Sloop: on the command line of the first launch
//! (double-click on a `.sloop` or `.sloop-tutorial` file, a `sloop://` link), and from every later
//! launch, which the single-instance plugin turns into a call in the running app. They wait here
//! until the window takes them (`open_requests_take`), so none is lost while the window loads.

use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;
use ts_rs::TS;

/// What the window is asked to open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct OpenRequest {
    pub kind: OpenKind,
    /// A file's absolute path, or (for a link) the tutorial's http(s) URL.
    pub location: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum OpenKind {
    /// A bundle file: the window offers to import it.
    Bundle,
    /// A tutorial file the user opened: the window opens it.
    Tutorial,
    /// A `sloop://tutorial?url=…` link from a web page: the window shows the URL and opens it
    /// only when the user says so (a page must not make machines by itself).
    TutorialLink,
}

/// The requests not yet taken by the window.
#[derive(Debug, Default)]
pub struct OpenQueue(Mutex<Vec<OpenRequest>>);

impl OpenQueue {
    /// Queues what `args` (a launch's arguments, without the program) ask for; `cwd` is the
    /// launch's working directory, against which relative paths are read. Returns how many were
    /// queued.
    pub fn push_args<S: AsRef<str>>(&self, args: &[S], cwd: &Path) -> usize {
        let requests: Vec<OpenRequest> = args
            .iter()
            .filter_map(|arg| {
                let arg = arg.as_ref();
                let request = classify(arg, cwd);
                match &request {
                    Some(r) => tracing::info!(kind = ?r.kind, location = %r.location, "the desktop asks to open"),
                    None if !arg.starts_with('-') => {
                        tracing::warn!(argument = arg, "not a bundle, tutorial or sloop:// link");
                    }
                    None => {}
                }
                request
            })
            .collect();
        let count = requests.len();
        self.lock().extend(requests);
        count
    }

    /// Everything queued, oldest first; the queue is empty afterwards.
    pub fn take(&self) -> Vec<OpenRequest> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<OpenRequest>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What one launch argument asks for: a bundle or tutorial file (a path, or a `file://` URI as
/// desktops pass for `%U`), or a `sloop://tutorial?url=https://…` link. Anything else: nothing.
pub fn classify(arg: &str, cwd: &Path) -> Option<OpenRequest> {
    let path = if arg.starts_with("sloop:") {
        return tutorial_link(arg);
    } else if arg.starts_with("file:") {
        url::Url::parse(arg).ok()?.to_file_path().ok()?
    } else if arg.starts_with('-') || arg.contains("://") {
        return None;
    } else {
        cwd.join(arg)
    };
    let kind = match path.extension()?.to_str()? {
        "sloop" => OpenKind::Bundle,
        "sloop-tutorial" => OpenKind::Tutorial,
        _ => return None,
    };
    Some(OpenRequest {
        kind,
        location: path.to_str()?.to_string(),
    })
}

/// `sloop://tutorial?url=<http(s) URL>`: the only link Sloop answers. Links reach Sloop from web
/// pages, so a link names a tutorial on the web, never a file on this computer.
fn tutorial_link(link: &str) -> Option<OpenRequest> {
    let link = url::Url::parse(link).ok()?;
    if link.scheme() != "sloop" || link.host_str() != Some("tutorial") {
        return None;
    }
    let (_, target) = link.query_pairs().find(|(key, _)| key == "url")?;
    let target = url::Url::parse(&target).ok()?;
    if !matches!(target.scheme(), "https" | "http") {
        return None;
    }
    Some(OpenRequest {
        kind: OpenKind::TutorialLink,
        location: target.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: OpenKind, location: &str) -> Option<OpenRequest> {
        Some(OpenRequest {
            kind,
            location: location.to_string(),
        })
    }

    #[test]
    fn files_and_links_are_told_apart_and_everything_else_is_ignored() {
        let cwd = Path::new("/home/ana/Downloads");
        let cases = [
            (
                "course.sloop-tutorial",
                request(
                    OpenKind::Tutorial,
                    "/home/ana/Downloads/course.sloop-tutorial",
                ),
            ),
            (
                "/tmp/ana.sloop",
                request(OpenKind::Bundle, "/tmp/ana.sloop"),
            ),
            (
                "file:///tmp/My%20Course.sloop-tutorial",
                request(OpenKind::Tutorial, "/tmp/My Course.sloop-tutorial"),
            ),
            (
                "sloop://tutorial?url=https%3A%2F%2Fschool.example.org%2Froot.sloop-tutorial",
                request(
                    OpenKind::TutorialLink,
                    "https://school.example.org/root.sloop-tutorial",
                ),
            ),
            // A link never names a local file, nor anything but a tutorial.
            ("sloop://tutorial?url=file%3A%2F%2F%2Fetc%2Fpasswd", None),
            ("sloop://import?url=https%3A%2F%2Fx.org%2Fa.sloop", None),
            ("sloop://tutorial", None),
            ("https://school.example.org/root.sloop-tutorial", None),
            ("notes.txt", None),
            ("--some-flag", None),
            ("file://host/share/a.sloop", None),
        ];
        for (arg, expected) in cases {
            assert_eq!(classify(arg, cwd), expected, "{arg}");
        }
    }

    #[test]
    fn the_queue_hands_out_each_request_once_in_order() {
        let queue = OpenQueue::default();
        let cwd = Path::new("/w");
        assert_eq!(
            queue.push_args(&["a.sloop", "x.txt", "b.sloop-tutorial"], cwd),
            2
        );
        assert_eq!(queue.push_args(&["c.sloop"], cwd), 1);
        let taken: Vec<String> = queue.take().into_iter().map(|r| r.location).collect();
        assert_eq!(taken, ["/w/a.sloop", "/w/b.sloop-tutorial", "/w/c.sloop"]);
        assert!(queue.take().is_empty());
    }
}
