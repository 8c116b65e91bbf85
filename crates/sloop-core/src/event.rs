//! The one event type front ends receive: the CLI draws progress bars from it and the app
//! forwards it to the window as-is. It sits above the modules whose news it carries.

use serde::Serialize;
use ts_rs::TS;

use crate::logging::LogLine;
use crate::progress::Progress;

/// Everything the core tells front ends without being asked.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "type", rename_all = "camelCase")]
#[ts(export)]
pub enum Event {
    Progress(Progress),
    Log(LogLine),
    /// A task ended; `error` is its one-line reason when it failed.
    Finished {
        task: String,
        error: Option<String>,
    },
    /// The machines changed (state, added, removed), whoever changed them.
    Machines {
        machines: Vec<crate::machine::MachineSummary>,
    },
    /// The proxy file changed (renewed by any tool, removed), or it nears its end.
    Proxy {
        status: Box<crate::proxy::ProxyStatus>,
    },
    /// The proxy ends within the configured warning time, or has ended; sent once per proxy.
    ProxyExpiring {
        #[serde(rename = "secondsLeft")]
        #[ts(type = "number")]
        seconds_left: i64,
        /// When it ends (RFC 3339).
        #[serde(rename = "notAfter")]
        not_after: String,
    },
    /// A renewed proxy was placed in attached machines, or could not be.
    ProxyPlaced {
        placed: Vec<crate::proxy::attach::Placed>,
        /// `machine: reason` for each machine it could not be placed in.
        failed: Vec<String>,
    },
}
