//! Defining, starting, stopping and removing a machine's libvirt domain.

use std::time::{Duration, Instant};

use crate::libvirt::{Connection, LibvirtError, NO_DOMAIN};
use crate::machine::MachineState;

/// How often the state is looked at while waiting for a guest to power off. libvirt's lifecycle
/// events would avoid polling; this is short enough not to add noticeable delay.
const POLL: Duration = Duration::from_millis(100);

/// Defines (or redefines) the persistent domain from `xml`; returns its name.
pub async fn define(conn: &Connection, xml: String) -> Result<String, LibvirtError> {
    conn.run(move |c| c.define_domain_xml(&xml)?.name()).await
}

/// Starts domain `name`.
pub async fn start(conn: &Connection, name: &str) -> Result<(), LibvirtError> {
    let name = name.to_string();
    conn.run(move |c| c.lookup_domain_by_name(&name)?.create())
        .await
}

/// Asks the guest to power off (ACPI) and waits up to `grace`; then pulls the plug.
/// Returns true when the guest shut down by itself.
pub async fn shutdown(
    conn: &Connection,
    name: &str,
    grace: Duration,
) -> Result<bool, LibvirtError> {
    let owned = name.to_string();
    conn.run(move |c| c.lookup_domain_by_name(&owned)?.shutdown())
        .await?;
    let started = Instant::now();
    while started.elapsed() < grace {
        if crate::machine::domain_state(conn, name).await? == MachineState::Stopped {
            return Ok(true);
        }
        tokio::time::sleep(POLL).await;
    }
    tracing::warn!(
        domain = name,
        "guest did not power off in time; forcing it off"
    );
    force_off(conn, name).await?;
    Ok(false)
}

/// Stops domain `name` at once, like pulling the power cord. A stopped domain is left alone.
pub async fn force_off(conn: &Connection, name: &str) -> Result<(), LibvirtError> {
    let name = name.to_string();
    conn.run(move |c| {
        let domain = c.lookup_domain_by_name(&name)?;
        if domain.is_active()? {
            domain.destroy()?;
        }
        Ok(())
    })
    .await
}

/// Removes the domain's definition (stopping it first). A domain libvirt does not know is fine.
pub async fn undefine(conn: &Connection, name: &str) -> Result<(), LibvirtError> {
    let name = name.to_string();
    conn.run(move |c| {
        let domain = match c.lookup_domain_by_name(&name) {
            Ok(domain) => domain,
            Err(e) if e.code().to_raw() == NO_DOMAIN => return Ok(()),
            Err(e) => return Err(e),
        };
        if domain.is_active()? {
            domain.destroy()?;
        }
        domain.undefine()
    })
    .await
}

/// Whether libvirt knows domain `name`.
pub async fn is_defined(conn: &Connection, name: &str) -> Result<bool, LibvirtError> {
    Ok(crate::machine::domain_state(conn, name).await? != MachineState::Undefined)
}
