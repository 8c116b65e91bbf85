//! Shared set-up for the integration tests: test images, libvirt, clean-up.

use sloop_core::config::Config;
use sloop_core::libvirt::Connection;

pub use sloop_testkit::{GridUser, TestImage, mode_of, set_mode, sha512_file, test_image};

/// The libvirt connection the tests use: the user's default URI (root: qemu:///system).
pub async fn libvirt() -> Connection {
    let uri = Config::default().libvirt_uri();
    match Connection::open(&uri).await {
        Ok(conn) => conn,
        Err(e) => panic!("{e}\n(run scripts/libvirt-up.sh first)"),
    }
}

/// VMs share two cores: one at a time keeps boot times meaningful.
pub static ONE_VM_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Undefines a test domain when the test ends, also when it panics.
pub struct DomainGuard {
    pub uri: String,
    pub name: String,
}

impl Drop for DomainGuard {
    fn drop(&mut self) {
        // Runs during unwinding too: plain blocking libvirt calls, no runtime needed.
        if let Ok(conn) = virt::connect::Connect::open(Some(&self.uri))
            && let Ok(domain) = conn.lookup_domain_by_name(&self.name)
        {
            let _ = domain.destroy();
            let _ = domain.undefine();
        }
    }
}
