//! sloop-core's integration tests: real libvirt and QEMU, real test images, real SSH.
//! One binary for the crate (see STYLE.md). Needs `scripts/libvirt-up.sh` to have run where no
//! init system starts libvirt; the README's test command does that.

// Test helpers panic on failure by design: that is how a test fails.
#![allow(clippy::unwrap_used)]

mod bundle;
mod catalog;
mod https;
mod machine;
mod proxy;
mod support;
mod vm;
mod voms;
