//! The Core's watches: what front ends learn without asking. Each runs for as long as its
//! future is polled and reports only through the Core's event stream, so `sloop proxy watch`
//! and the app's window see the same events from the same code.

use std::convert::Infallible;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::event::Event;
use crate::facade::Core;
use crate::proxy::{self, ProxyInfo, watch::WatchError};

/// How often the machines' states are compared with libvirt's. The virt crate wraps libvirt's
/// event loop but not its domain lifecycle events, so the watch asks; asking is cheap (the
/// catalogs' verdicts are cached), and a change shows within this time.
pub const MACHINE_WATCH_EVERY: Duration = Duration::from_secs(2);

/// How often the proxy's time left is looked at, for the expiry warning.
pub const PROXY_CHECK_EVERY: Duration = Duration::from_secs(30);

impl Core {
    /// Emits [`Event::Machines`] whenever the machines' list or states change: through Sloop,
    /// another Sloop (the CLI and the app side by side), virsh, or a guest powering itself off.
    /// The first list is always emitted.
    pub async fn watch_machines(&self) -> Infallible {
        let mut last = None;
        let mut ticker = tokio::time::interval(MACHINE_WATCH_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.machines().await {
                Ok(machines) if last.as_ref() != Some(&machines) => {
                    self.emit(Event::Machines {
                        machines: machines.clone(),
                    });
                    last = Some(machines);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!("machine watch: {}", crate::error_chain(&e)),
            }
        }
    }

    /// Follows the proxy file: whenever it changes (renewed by Sloop or any grid tool,
    /// removed), emits [`Event::Proxy`] and, when the new proxy is valid, places it in every
    /// running attached machine ([`Event::ProxyPlaced`]) and brings it to every grid run that
    /// is at its site ([`Core::renew_runs`]). Also does what
    /// [`Core::watch_proxy_expiry`] does. Fails at once, and only, when the proxy's folder
    /// cannot be watched.
    pub async fn watch_proxy(&self) -> Result<Infallible, WatchError> {
        let (changed, changes) = mpsc::unbounded_channel();
        let _watch = proxy::watch::watch(&proxy::default_path(), move || {
            let _ = changed.send(());
        })?;
        Ok(self.follow_proxy(Some(changes)).await)
    }

    /// Every 30 s, looks at the proxy's time left and, once per proxy, emits
    /// [`Event::ProxyExpiring`] (then [`Event::Proxy`]) when less than the configured warning
    /// time is left, or it has ended. Reads only the proxy, never the keyring (which could ask
    /// to be unlocked).
    pub async fn watch_proxy_expiry(&self) -> Infallible {
        self.follow_proxy(None).await
    }

    async fn follow_proxy(&self, mut changes: Option<mpsc::UnboundedReceiver<()>>) -> Infallible {
        let mut warned_for: Option<String> = None;
        let mut ticker = tokio::time::interval(PROXY_CHECK_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let renewed = tokio::select! {
                _ = ticker.tick() => false,
                Some(()) = async { changes.as_mut()?.recv().await } => true,
            };
            if renewed {
                if let Some(changes) = changes.as_mut() {
                    // Changes that queued up meanwhile are this one.
                    while changes.try_recv().is_ok() {}
                }
                self.emit_proxy_status().await;
            }
            // Read once a round: the placement and the expiry check both go by it.
            let Some(info) = self.readable_proxy().await else {
                continue;
            };
            if renewed && info.seconds_left > 0 {
                // Placements are reported as events by place_proxy itself.
                self.place_proxy().await;
                self.renew_runs().await;
            }
            let warning = self
                .config()
                .map(|c| i64::from(c.proxy_warning_minutes()) * 60)
                .unwrap_or(3600);
            if info.seconds_left < warning && warned_for.as_deref() != Some(info.not_after.as_str())
            {
                warned_for = Some(info.not_after.clone());
                self.emit(Event::ProxyExpiring {
                    seconds_left: info.seconds_left.max(0),
                    not_after: info.not_after.clone(),
                });
                self.emit_proxy_status().await;
            }
        }
    }

    /// The proxy as it is now; `None` when there is none, or it cannot be read (the status
    /// event says why).
    async fn readable_proxy(&self) -> Option<ProxyInfo> {
        self.proxy_info().await.ok().flatten()
    }

    async fn emit_proxy_status(&self) {
        match self.proxy_status().await {
            Ok(status) => self.emit(Event::Proxy {
                status: Box::new(status),
            }),
            Err(e) => tracing::warn!("proxy watch: {}", crate::error_chain(&e)),
        }
    }
}
