//! Plain types several modules share. This module depends on nothing else in the crate, so that
//! any module can use them without reaching into another module's workings.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// How guests are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
#[ts(export)]
pub enum Acceleration {
    /// Hardware virtualisation: libvirt `<domain type='kvm'>`.
    Kvm,
    /// QEMU's software emulation: libvirt `<domain type='qemu'>`. Works everywhere, slower.
    Tcg,
}

impl Acceleration {
    /// How people name it: "KVM", "TCG".
    pub fn label(self) -> &'static str {
        match self {
            Self::Kvm => "KVM",
            Self::Tcg => "TCG",
        }
    }

    /// The word `config.toml` uses for it.
    pub fn config_name(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Tcg => "tcg",
        }
    }

    /// The libvirt domain type for this acceleration.
    pub fn domain_type(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Tcg => "qemu",
        }
    }
}

/// How the user's work directory is shared into machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "lowercase")]
#[ts(export)]
pub enum ShareKind {
    Virtiofs,
    #[serde(rename = "9p")]
    NineP,
}

/// How a machine's disks are laid out: part of its portable description (this manifest, a
/// bundle's manifest, the site job's arguments). Which one follows from the base: an ISO image is
/// booted as a CD, any other image is a disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "kebab-case")]
#[ts(export)]
pub enum DiskLayout {
    /// The machine boots from its disk, a qcow2 overlay whose backing file is the read-only
    /// base: the overlay holds only the user's changes.
    #[default]
    Overlay,
    /// The machine boots from the base, an ISO attached as a read-only CD; its disk is an empty
    /// qcow2 of its own (no backing file), which the guest formats and keeps its changes on
    /// (µCernVM's scratch disk).
    LiveCd,
}

impl DiskLayout {
    /// One word for people: `overlay` or `live-cd`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Overlay => "overlay",
            Self::LiveCd => "live-cd",
        }
    }
}
