//! `kmod`: one binary that is also insmod, rmmod, lsmod, modinfo, modprobe and depmod,
//! chosen by the name it is invoked as.

use std::ffi::OsString;

use kmod_rs::cli;

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = cli::argv0(&args);
    let code = match cli::short_name(&argv0) {
        "kmod" => cli::run_kmod(&argv0, args),
        // Like kmod, an unknown program name exits 1 without a word.
        name => cli::run_tool(name, &argv0, args).unwrap_or(1),
    };
    std::process::exit(code);
}
