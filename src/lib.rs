//! kmod-rs: the library behind the `kmod` multi-call binary.
//!
//! Each module is named for what it is; the command-line tools in `src/tools/`
//! only parse arguments and print.

pub mod compression;
pub mod config;
pub mod depmod;
pub mod elf;
pub mod fnmatch;
pub mod index;
pub mod kernel;
pub mod limits;
pub mod module;
pub mod probe;
pub mod resolve;
pub mod signature;
