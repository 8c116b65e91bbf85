//! The `sloop` binary's integration tests, run as a user would run it: bad input, the demo
//! catalog, a machine's whole life on a real tiny VM, and the grid proxy. One binary for the
//! crate (see STYLE.md); the tests that boot a VM take turns (`support::one_vm_at_a_time`).

// Test helpers panic on failure by design: that is how a test fails.
#![allow(clippy::unwrap_used)]

mod bundle;
mod cli;
mod formats;
mod grid;
mod machine;
mod proxy;
mod support;
mod tutorial;
