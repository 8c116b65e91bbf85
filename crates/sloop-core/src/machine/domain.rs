//! The libvirt domain XML of a machine.
//!
//! Networking is user-mode only, with SSH forwarded to a port on 127.0.0.1: passt with
//! `<portForward>` where libvirt supports it (9.2 and later, passt installed), QEMU's own SLIRP
//! `hostfwd` through `<qemu:commandline>` otherwise (Debian 12's libvirt 9.0 rejects passt).
//!
//! On `qemu:///system` the domain carries a DAC label with the user's own uid and gid, and no
//! relabelling: QEMU then runs as the user, as it would on `qemu:///session`, so it reads the
//! user's overlay and work directory where they are and files made in /analysis belong to the
//! user, without libvirt changing the owner of anything.

use std::fmt::Write as _;
use std::path::Path;

use crate::types::{Acceleration, ShareKind};

/// XML namespace of Sloop's own metadata in the domain.
pub const METADATA_NS: &str = "https://sloop.invalid/xmlns/machine/1";

/// How SSH reaches the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// QEMU's built-in user networking, `hostfwd=tcp:127.0.0.1:PORT-:22`.
    Slirp { ssh_port: u16 },
    /// libvirt's passt backend with `<portForward>`.
    Passt { ssh_port: u16 },
}

/// The host folder shared into the guest.
#[derive(Debug, Clone, Copy)]
pub struct Share<'a> {
    pub source: &'a Path,
    pub tag: &'a str,
    pub kind: ShareKind,
}

/// Everything the domain XML is made from.
#[derive(Debug, Clone)]
pub struct DomainSpec<'a> {
    /// The libvirt domain name (`sloop-<machine>`).
    pub name: &'a str,
    /// The machine's name, kept in the domain's metadata so Sloop recognises its domains.
    pub machine: &'a str,
    pub uuid: &'a str,
    pub acceleration: Acceleration,
    pub vcpus: u32,
    pub memory_mib: u32,
    /// The machine's disk (vda): an overlay on the base, or a live CD machine's own disk.
    pub overlay: &'a Path,
    /// A live CD machine's base: an ISO attached read-only as the IDE CD it boots from.
    pub live_cd: Option<&'a Path>,
    pub seed: &'a Path,
    pub share: Option<Share<'a>>,
    pub network: Network,
    pub console_log: &'a Path,
    /// Run QEMU as this uid:gid (system URI), see the module docs.
    pub run_as: Option<(u32, u32)>,
}

/// Escapes text for XML content and single-quoted attributes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

fn path(p: &Path) -> String {
    esc(&p.to_string_lossy())
}

impl DomainSpec<'_> {
    /// The domain XML.
    pub fn to_xml(&self) -> String {
        let mut x = String::new();
        let qemu_ns = match self.network {
            Network::Slirp { .. } => " xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'",
            Network::Passt { .. } => "",
        };
        let _ = writeln!(
            x,
            "<domain type='{}'{qemu_ns}>",
            self.acceleration.domain_type()
        );
        let _ = writeln!(x, "  <name>{}</name>", esc(self.name));
        let _ = writeln!(x, "  <uuid>{}</uuid>", esc(self.uuid));
        let _ = writeln!(x, "  <title>Sloop machine {}</title>", esc(self.machine));
        let _ = writeln!(x, "  <metadata>");
        let _ = writeln!(
            x,
            "    <sloop:machine xmlns:sloop='{METADATA_NS}' name='{}'/>",
            esc(self.machine)
        );
        let _ = writeln!(x, "  </metadata>");
        let _ = writeln!(x, "  <memory unit='MiB'>{}</memory>", self.memory_mib);
        let _ = writeln!(x, "  <vcpu>{}</vcpu>", self.vcpus);
        x.push_str("  <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n");
        if self.live_cd.is_some() {
            x.push_str("    <boot dev='cdrom'/>\n");
        }
        x.push_str("    <boot dev='hd'/>\n  </os>\n");
        x.push_str("  <features>\n    <acpi/>\n    <apic/>\n  </features>\n");
        if self.acceleration == Acceleration::Kvm {
            x.push_str("  <cpu mode='host-passthrough'/>\n");
        }
        x.push_str("  <clock offset='utc'/>\n");
        x.push_str("  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  <on_crash>destroy</on_crash>\n");
        x.push_str("  <devices>\n");
        // A live CD machine's disk has no backing file: libvirt is told so, and follows no
        // backing name its header might carry.
        let _ = write!(
            x,
            "    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2' discard='unmap'/>\n      <source file='{}'/>\n{}      <target dev='vda' bus='virtio'/>\n    </disk>\n",
            path(self.overlay),
            if self.live_cd.is_some() {
                "      <backingStore/>\n"
            } else {
                ""
            }
        );
        let _ = write!(
            x,
            "    <disk type='file' device='disk'>\n      <driver name='qemu' type='raw'/>\n      <source file='{}'/>\n      <target dev='vdb' bus='virtio'/>\n      <readonly/>\n    </disk>\n",
            path(self.seed)
        );
        if let Some(iso) = self.live_cd {
            let _ = write!(
                x,
                "    <disk type='file' device='cdrom'>\n      <driver name='qemu' type='raw'/>\n      <source file='{}'/>\n      <target dev='hdc' bus='ide'/>\n      <readonly/>\n    </disk>\n",
                path(iso)
            );
        }
        if let Some(share) = &self.share {
            match share.kind {
                ShareKind::NineP => {
                    let _ = write!(
                        x,
                        "    <filesystem type='mount' accessmode='mapped'>\n      <source dir='{}'/>\n      <target dir='{}'/>\n    </filesystem>\n",
                        path(share.source),
                        esc(share.tag)
                    );
                }
                ShareKind::Virtiofs => {
                    let _ = write!(
                        x,
                        "    <filesystem type='mount' accessmode='passthrough'>\n      <driver type='virtiofs'/>\n      <source dir='{}'/>\n      <target dir='{}'/>\n    </filesystem>\n",
                        path(share.source),
                        esc(share.tag)
                    );
                }
            }
        }
        if let Network::Passt { ssh_port } = self.network {
            let _ = write!(
                x,
                "    <interface type='user'>\n      <backend type='passt'/>\n      <model type='virtio'/>\n      <portForward proto='tcp' address='127.0.0.1'>\n        <range start='{ssh_port}' to='22'/>\n      </portForward>\n    </interface>\n"
            );
        }
        let _ = write!(
            x,
            "    <serial type='pty'>\n      <log file='{}' append='off'/>\n      <target port='0'/>\n    </serial>\n    <console type='pty'>\n      <target type='serial' port='0'/>\n    </console>\n",
            path(self.console_log)
        );
        // Guests generate keys and TLS secrets early in boot; without entropy they stall.
        x.push_str("    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>\n    </rng>\n");
        x.push_str("    <memballoon model='none'/>\n");
        x.push_str("  </devices>\n");
        if self.share.is_some_and(|s| s.kind == ShareKind::Virtiofs) {
            x.push_str("  <memoryBacking>\n    <source type='memfd'/>\n    <access mode='shared'/>\n  </memoryBacking>\n");
        }
        if let Some((uid, gid)) = self.run_as {
            let _ = writeln!(
                x,
                "  <seclabel type='static' model='dac' relabel='no'>\n    <label>+{uid}:+{gid}</label>\n  </seclabel>"
            );
        }
        if let Network::Slirp { ssh_port } = self.network {
            // libvirt does not know this NIC and numbers its own devices from slot 2 up; QEMU
            // would put the NIC in slot 2 first. Slot 0x1e stays free on a machine this small.
            let _ = write!(
                x,
                "  <qemu:commandline>\n    <qemu:arg value='-netdev'/>\n    <qemu:arg value='user,id=sloopnet0,hostfwd=tcp:127.0.0.1:{ssh_port}-:22'/>\n    <qemu:arg value='-device'/>\n    <qemu:arg value='virtio-net-pci,netdev=sloopnet0,romfile=,bus=pci.0,addr=0x1e'/>\n  </qemu:commandline>\n"
            );
        }
        x.push_str("</domain>\n");
        x
    }
}

/// Which network backend this libvirt supports: passt needs libvirt 9.2 (9.0 rejects it, 9.1
/// hides its start-up errors) and the passt program.
pub fn choose_network(libvirt_version: u32, ssh_port: u16) -> Network {
    if libvirt_version >= 9_002_000 && crate::programs::find_program("passt").is_some() {
        Network::Passt { ssh_port }
    } else {
        Network::Slirp { ssh_port }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn spec(network: Network, share: ShareKind, acceleration: Acceleration) -> String {
        spec_on(network, share, acceleration, None)
    }

    fn spec_on(
        network: Network,
        share: ShareKind,
        acceleration: Acceleration,
        live_cd: Option<&Path>,
    ) -> String {
        let dir = PathBuf::from("/home/u/.local/share/sloop/machines/demo");
        let work = PathBuf::from("/home/u/work & play");
        DomainSpec {
            name: "sloop-demo",
            machine: "demo",
            uuid: "9f1c7f4e-6a43-4d2e-9d5c-0d0c2d1c1a11",
            acceleration,
            vcpus: 2,
            memory_mib: 1024,
            overlay: &dir.join("overlay.qcow2"),
            live_cd,
            seed: &dir.join("seed.iso"),
            share: Some(Share {
                source: &work,
                tag: "work",
                kind: share,
            }),
            network,
            console_log: &dir.join("console.log"),
            run_as: Some((1000, 1000)),
        }
        .to_xml()
    }

    #[test]
    fn slirp_9p_tcg() {
        insta::assert_snapshot!(spec(
            Network::Slirp { ssh_port: 40022 },
            ShareKind::NineP,
            Acceleration::Tcg
        ));
    }

    #[test]
    fn passt_virtiofs_kvm() {
        insta::assert_snapshot!(spec(
            Network::Passt { ssh_port: 40022 },
            ShareKind::Virtiofs,
            Acceleration::Kvm
        ));
    }

    /// A machine booted from an ISO: the ISO is a read-only IDE CD, booted before the disk.
    #[test]
    fn live_cd_slirp_9p_tcg() {
        insta::assert_snapshot!(spec_on(
            Network::Slirp { ssh_port: 40022 },
            ShareKind::NineP,
            Acceleration::Tcg,
            Some(Path::new(
                "/home/u/.local/share/sloop/images/bases/ab12.iso"
            )),
        ));
    }

    /// libvirt's own parser accepts the SLIRP form, and accepts passt exactly when
    /// `choose_network`'s version gate says it may be used (test driver: no QEMU needed).
    #[tokio::test]
    async fn libvirt_accepts_the_xml_it_is_given() {
        let conn = crate::libvirt::Connection::open("test:///default")
            .await
            .unwrap();
        let define = |xml: String| {
            conn.run(move |c| {
                let d = c.define_domain_xml(&xml)?;
                let name = d.name()?;
                d.undefine()?;
                Ok(name)
            })
        };
        let slirp = spec(
            Network::Slirp { ssh_port: 40022 },
            ShareKind::NineP,
            Acceleration::Tcg,
        );
        assert_eq!(define(slirp).await.unwrap(), "sloop-demo");
        let live = spec_on(
            Network::Slirp { ssh_port: 40022 },
            ShareKind::NineP,
            Acceleration::Tcg,
            Some(Path::new("/srv/live.iso")),
        );
        assert_eq!(define(live).await.unwrap(), "sloop-demo");
        let version = conn.run(|c| c.lib_version()).await.unwrap();
        let passt = define(spec(
            Network::Passt { ssh_port: 40022 },
            ShareKind::Virtiofs,
            Acceleration::Kvm,
        ))
        .await;
        if version >= 9_002_000 {
            assert_eq!(passt.unwrap(), "sloop-demo");
        } else {
            let error = crate::error_chain(&passt.unwrap_err());
            assert!(
                error.contains("passt"),
                "libvirt {version} should refuse passt: {error}"
            );
        }
    }
}
