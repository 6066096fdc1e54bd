//! `depmod`: writes modules.dep, the module indexes and the other `modules.*` files
//! of a kernel's module directory, byte for byte as kmod 34.2 does.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::compat::{scan_u32, strerror};
use crate::depmod::{
    is_up_to_date, load_rules, prepare_output_dir, write_files, Depmod, Failure, Settings,
};
use crate::diag::{Priority, Sink};
use crate::msgf;
use crate::resolve::{kernel_release, MODULE_DIRECTORY};

use super::{flag, help_or_version, parse, short_name, value};

const USAGE: &[&str] = &[
    "-[aA] [options] [forced_version]",
    "[options] version filename...",
];

/// Column where option descriptions start in `--help`.
const HELP_WIDTH: usize = 26;

/// kmod refuses paths of PATH_MAX bytes or more.
const PATH_MAX: usize = 4096;

pub fn command() -> Command {
    Command::new("depmod")
        .about("Generate modules.dep and map files")
        .arg(flag(
            "all",
            'a',
            "all",
            "Scan every module (the default without file names)",
        ))
        .arg(flag(
            "quick",
            'A',
            "quick",
            "Do nothing when no module is newer than modules.dep",
        ))
        .arg(flag(
            "errsyms",
            'e',
            "errsyms",
            "Report needed symbols nothing provides",
        ))
        .arg(
            flag(
                "show",
                'n',
                "show",
                "Print the text files on stdout, write nothing",
            )
            .alias("dry-run"),
        )
        .arg(value(
            "symbol-prefix",
            'P',
            "symbol-prefix",
            "CHAR",
            "Ignore this symbol prefix character",
        ))
        .arg(value(
            "config",
            'C',
            "config",
            "PATH",
            "Read depmod.d configuration from PATH",
        ))
        .arg(
            Arg::new("verbose")
                .short('v')
                .long("verbose")
                .help("Print dependencies as they are found; repeat for more messages")
                .action(ArgAction::Count),
        )
        .arg(flag(
            "warn",
            'w',
            "warn",
            "Warn about duplicate index entries",
        ))
        .arg(flag("version", 'V', "version", "Show version"))
        .arg(flag("help", 'h', "help", "Show this help"))
        .arg(value(
            "basedir",
            'b',
            "basedir",
            "DIR",
            "Use DIR as the root of /lib/modules",
        ))
        .arg(value(
            "moduledir",
            'm',
            "moduledir",
            "DIR",
            "Use DIR instead of /lib/modules",
        ))
        .arg(value(
            "outdir",
            'o',
            "outdir",
            "DIR",
            "Write under DIR instead of the root",
        ))
        .arg(
            Arg::new("cache")
                .long("cache")
                .help("Keep what was read of each module in modules.cache and reuse it\n(the default without -b)")
                .action(ArgAction::Count),
        )
        .arg(
            Arg::new("no-cache")
                .long("no-cache")
                .help("Neither read nor write modules.cache (the default with -b DIR)")
                .action(ArgAction::Count),
        )
        .arg(value(
            "filesyms",
            'F',
            "filesyms",
            "FILE",
            "Kernel symbols from a System.map FILE",
        ))
        .arg(value(
            "symvers",
            'E',
            "symvers",
            "FILE",
            "Kernel symbols and CRCs from a Module.symvers FILE",
        ))
        .arg(
            Arg::new("args")
                .action(ArgAction::Append)
                .value_parser(clap::value_parser!(OsString)),
        )
}

fn values(m: &ArgMatches, id: &str) -> Vec<(usize, OsString)> {
    match (m.indices_of(id), m.get_many::<OsString>(id)) {
        (Some(i), Some(v)) => i.zip(v.cloned()).collect(),
        _ => Vec::new(),
    }
}

fn last(m: &ArgMatches, id: &str) -> Option<Vec<u8>> {
    values(m, id).pop().map(|(_, v)| v.into_vec())
}

/// sscanf(s, "%u.%u") == 2: what depmod accepts as a kernel version.
fn is_version_number(s: &[u8]) -> bool {
    scan_u32(s)
        .and_then(|(_, rest)| rest.strip_prefix(b"."))
        .and_then(scan_u32)
        .is_some()
}

fn as_path(bytes: &[u8]) -> &Path {
    Path::new(std::ffi::OsStr::from_bytes(bytes))
}

/// Like C's path_make_absolute_cwd: relative paths are joined to the working directory.
fn absolute(path: &[u8]) -> Vec<u8> {
    crate::resolve::absolute(as_path(path))
        .into_os_string()
        .into_vec()
}

pub fn run(argv0: &str, args: Vec<OsString>) -> i32 {
    let prog = short_name(argv0);
    let cmd = command();
    let m = match parse(cmd.clone(), argv0, args) {
        Ok(m) => m,
        Err(code) => return code,
    };
    // kmod's default threshold is WARNING; each -v lets one more level through.
    let log = Sink::new(
        prog,
        Priority::Warning as i32 + i32::from(m.get_count("verbose")),
        false,
    );

    // getopt acts on -h, -V and a bad -P in the order it meets them.
    let flag_index = |id: &str| m.get_flag(id).then(|| m.index_of(id)).flatten();
    let bad_prefix = values(&m, "symbol-prefix")
        .into_iter()
        .find(|(_, v)| v.len() != 1)
        .map(|(i, _)| i);
    if let Some(bad) = bad_prefix {
        if [flag_index("help"), flag_index("version")]
            .into_iter()
            .flatten()
            .all(|i| i > bad)
        {
            log.log_bytes(Priority::Fatal, msgf!("-P only takes a single char"));
            return 1;
        }
    }
    if let Some(code) = help_or_version(&m, &cmd, prog, USAGE, HELP_WIDTH) {
        return code;
    }

    let positional: Vec<Vec<u8>> = m
        .get_many::<OsString>("args")
        .map(|v| v.map(|s| s.clone().into_vec()).collect())
        .unwrap_or_default();
    let version = match positional.first() {
        Some(v) if !is_version_number(v) => {
            log.log_bytes(Priority::Error, msgf!("Bad version passed {}", v));
            return 1;
        }
        Some(v) => v.clone(),
        None => match kernel_release() {
            Ok(r) => r.into_vec(),
            Err(e) => {
                let errno = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0));
                log.log_bytes(
                    Priority::Fatal,
                    msgf!("uname() failed: {}", strerror(errno)),
                );
                return 1;
            }
        },
    };
    let files = positional.get(1..).unwrap_or_default();

    let Some((dirname, outdir)) = directories(&m, &version, &log) else {
        return 1;
    };

    let dry_run = m.get_flag("show");
    let mut all = m.get_flag("all") || files.is_empty();
    if m.get_flag("quick") {
        if dry_run || is_up_to_date(&dirname, &log) {
            return 0;
        }
        all = true;
    }

    let symvers = last(&m, "symvers");
    let system_map = last(&m, "filesyms");
    let errsyms = m.get_flag("errsyms");
    let settings = Settings {
        dirname: dirname.clone(),
        sym_prefix: last(&m, "symbol-prefix").and_then(|p| p.first().copied()),
        check_symvers: symvers.is_some(),
        print_unknown: errsyms && (symvers.is_some() || system_map.is_some()),
        warn_dups: m.get_flag("warn"),
        show_needs: m.get_count("verbose") > 0,
    };
    let mut depmod = Depmod::new(settings, &log);
    if !load_kernel_symbols(&mut depmod, symvers, system_map, errsyms, &log) {
        return 1;
    }
    // The cache describes a whole tree: runs on listed files neither read nor write it.
    if all && cache_wanted(&m, std::env::var_os("KMOD_DEPMOD_CACHE").as_deref()) {
        depmod.use_cache(&outdir, !dry_run);
    }

    let result = if all {
        // depmod.d is read only when scanning everything; -C replaces its directories.
        let config: Option<Vec<PathBuf>> = m
            .get_many::<OsString>("config")
            .map(|v| v.map(PathBuf::from).collect());
        depmod.scan(&load_rules(config.as_deref(), &version, &log))
    } else {
        files.iter().try_for_each(|f| depmod.add_file(f))
    };
    let result = result.and_then(|()| depmod.build()).and_then(|mut tree| {
        if !dry_run {
            prepare_output_dir(&outdir)?;
        }
        let files = tree.render(&log, dry_run)?;
        if dry_run {
            let mut out = std::io::stdout().lock();
            for f in &files {
                let _ = out.write_all(&f.data);
            }
            let _ = out.flush();
            return Ok(());
        }
        write_files(&outdir, &files, &log)?;
        tree.save_cache(&log);
        Ok(())
    });
    match result {
        Ok(()) => 0,
        Err(Failure::Fatal(msg)) => {
            log.log_bytes(Priority::Fatal, &msg);
            1
        }
        Err(Failure::Reported) => 1,
    }
}

/// Whether to use the module cache: `--cache` or `--no-cache` (the last one given),
/// else `KMOD_DEPMOD_CACHE=1` or `0`, else only for the live module directory (no
/// `-b`, or `-b /`). Trees under another base directory are staging trees that
/// get packed (initramfs images, packages), which must hold what kmod writes.
fn cache_wanted(m: &ArgMatches, env: Option<&std::ffi::OsStr>) -> bool {
    // A counted flag's index is that of its last occurrence.
    let given = |id: &str| {
        (m.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
            .then(|| m.indices_of(id).and_then(Iterator::max))
            .flatten()
    };
    match (given("cache"), given("no-cache")) {
        (Some(on), Some(off)) => return on > off,
        (Some(_), None) => return true,
        (None, Some(_)) => return false,
        (None, None) => {}
    }
    match env {
        Some(v) if v == "1" => return true,
        Some(v) if v == "0" => return false,
        _ => {}
    }
    last(m, "basedir")
        .is_none_or(|b| std::fs::canonicalize(as_path(&b)).is_ok_and(|p| p == Path::new("/")))
}

/// The input and output module directories: `<root>/<moduledir>/<version>` and the
/// same under `-o`'s root, by plain concatenation; None after an error.
fn directories(m: &ArgMatches, version: &[u8], log: &Sink) -> Option<(Vec<u8>, Vec<u8>)> {
    let root = last(m, "basedir").map(|b| absolute(&b)).unwrap_or_default();
    let out_root = last(m, "outdir").map(|o| absolute(&o));
    let moduledir = last(m, "moduledir").unwrap_or_else(|| MODULE_DIRECTORY.as_bytes().to_vec());
    // The module directory is always relative to the root.
    let moduledir = &moduledir[moduledir.iter().take_while(|&&b| b == b'/').count()..];
    let join = |root: &[u8]| [root, b"/", moduledir, b"/", version].concat();
    let dirname = join(&root);
    let outdir = join(out_root.as_deref().unwrap_or(&root));
    for dir in [&dirname, &outdir] {
        if dir.len() >= PATH_MAX {
            log.log_bytes(
                Priority::Error,
                msgf!("Bad directory {}: path too long", dir),
            );
            return None;
        }
    }
    Some((dirname, outdir))
}

/// `-E` or `-F` (the former wins), loaded before any module so that module exports
/// replace these symbols; false after a FATAL error.
fn load_kernel_symbols(
    depmod: &mut Depmod,
    symvers: Option<Vec<u8>>,
    system_map: Option<Vec<u8>>,
    errsyms: bool,
    log: &Sink,
) -> bool {
    let (file, loaded) = match (symvers, system_map) {
        (Some(f), _) => {
            let loaded = depmod.load_symvers(as_path(&f));
            (f, loaded)
        }
        (None, Some(f)) => {
            let loaded = depmod.load_system_map(as_path(&f));
            (f, loaded)
        }
        (None, None) => {
            if errsyms {
                log.log_bytes(Priority::Warning, msgf!("-e needs -E or -F"));
            }
            return true;
        }
    };
    let Err(e) = loaded else {
        return true;
    };
    let errno = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0));
    log.log_bytes(
        Priority::Fatal,
        msgf!("could not load {}: {}", as_path(&file), strerror(errno)),
    );
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(words: &[&str], env: Option<&str>) -> bool {
        let m = command()
            .no_binary_name(true)
            .disable_help_flag(true)
            .disable_version_flag(true)
            .try_get_matches_from(words)
            .unwrap();
        cache_wanted(&m, env.map(std::ffi::OsStr::new))
    }

    #[test]
    fn cache_is_for_the_live_directory_unless_told() {
        assert!(wanted(&[], None));
        assert!(wanted(&["-b", "/"], None));
        assert!(wanted(&["-b", "//."], None));
        assert!(!wanted(&["-b", "/tmp"], None));
        assert!(!wanted(&["-b", "/nonexistent-root"], None));
        assert!(wanted(&["-b", "/tmp"], Some("1")));
        assert!(!wanted(&[], Some("0")));
        assert!(wanted(&[], Some("yes")));
        assert!(wanted(&["-b", "/tmp", "--cache"], Some("0")));
        assert!(!wanted(&["--no-cache"], Some("1")));
        assert!(wanted(&["--no-cache", "-a", "--cache"], None));
        assert!(!wanted(&["--cache", "--no-cache"], None));
        assert!(!wanted(
            &["--cache", "--no-cache", "--cache", "--no-cache"],
            None
        ));
    }
}
