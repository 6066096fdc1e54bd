//! kmod-rs: the library behind the `kmod` multi-call binary.
//!
//! Each module is named for what it is; the command-line layer in [`cli`] only
//! parses arguments, calls the library and prints.

pub mod cli;
pub mod compat;
pub mod compression;
pub mod config;
pub mod depmod;
pub mod diag;
pub mod elf;
pub mod explain;
#[cfg(any(test, feature = "test-util"))]
pub mod fuzzing;
pub mod index;
pub mod json;
pub mod kernel;
pub mod limits;
pub mod modinfo;
pub mod module;
pub mod probe;
pub mod resolve;
pub mod signature;
pub mod signing;
