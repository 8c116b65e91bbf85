//! The commands the window invokes, one file per area. Each is a few lines: get state, call the
//! core, map the result.

pub mod app;
pub mod bundles;
pub mod catalog;
pub mod desktop;
pub mod grid;
pub mod host;
pub mod images;
pub mod logs;
pub mod machines;
pub mod proxy;
pub mod terminal;
pub mod tutorials;
