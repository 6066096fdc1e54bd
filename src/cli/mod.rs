//! The command-line tools: argument parsing (clap, behaving like glibc's
//! `getopt_long` where callers can tell) and printing. Logic lives in the library.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::diag::{Priority, Sink};
use crate::resolve::ModuleDir;

pub mod depmod;
pub mod insmod;
pub mod lsmod;
pub mod modinfo;
pub mod modprobe;
pub mod rmmod;
pub mod sign;
pub mod static_nodes;
pub mod verify;

/// Version line kept in kmod's layout (`kmod version N`), which scripts parse; the
/// feature line lists what this build supports in kmod's order and spelling.
/// OPENSSL stands for "PKCS#7 signature details", which we decode natively.
const VERSION_TEXT: &str = "kmod version 34.2\n+ZSTD +XZ +ZLIB +OPENSSL\n";

pub fn print_version() {
    print!("{VERSION_TEXT}");
}

/// `kmod --version` also names this implementation, on a line of its own so the two
/// lines scripts parse keep kmod's layout.
fn print_kmod_version() {
    println!("{VERSION_TEXT}kmod-rs {}", env!("CARGO_PKG_VERSION"));
}

/// The program name messages use: argv[0] as given. Lossy, for display only: the
/// tools' names are ASCII, and the name is only ever printed.
pub fn argv0(args: &[OsString]) -> String {
    args.first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The tools reachable through argv[0] or `kmod <tool>`.
pub fn run_tool(name: &str, argv0: &str, args: Vec<OsString>) -> Option<i32> {
    let code = match name {
        "modinfo" => modinfo::run(argv0, args),
        "insmod" => insmod::run(argv0, args),
        "rmmod" => rmmod::run(argv0, args),
        "lsmod" => lsmod::run(argv0, args),
        "modprobe" => modprobe::run(argv0, args),
        "depmod" => depmod::run(argv0, args),
        _ => return None,
    };
    Some(code)
}

/// Front end for a program called `kmod`: `kmod [-h|-V] command [args]`.
pub fn run_kmod(argv0: &str, args: Vec<OsString>) -> i32 {
    let mut rest = args.into_iter().skip(1).peekable();
    // Options stop at the first non-option (getopt's "+" mode), and every option
    // kmod itself has ends the run, so only the first word can be one.
    if let Some(arg) = rest.peek().and_then(|a| a.to_str()) {
        match arg {
            "-h" | "--help" => {
                kmod_help();
                return 0;
            }
            "-V" | "--version" => {
                print_kmod_version();
                return 0;
            }
            "--" => {
                rest.next();
            }
            a if a.starts_with('-') && a.len() > 1 => {
                report_unknown_option(argv0, a, &["help", "version"]);
                return 1;
            }
            _ => {}
        }
    }
    let Some(command) = rest.next() else {
        eprintln!("missing command");
        kmod_help();
        return 1;
    };
    // Every command's name is ASCII; any other word is an invalid one, printed as given.
    let Some(name) = command.to_str().map(str::to_owned) else {
        return invalid_command(command.as_bytes());
    };
    let args: Vec<OsString> = std::iter::once(command).chain(rest).collect();
    match name.as_str() {
        "help" => {
            kmod_help();
            0
        }
        "list" => lsmod::run(argv0, args),
        "static-nodes" => static_nodes::run(argv0, args),
        "sign" => sign::run(argv0, args),
        "verify" => verify::run(argv0, args),
        _ => run_tool(&name, &name, args).unwrap_or_else(|| invalid_command(name.as_bytes())),
    }
}

fn invalid_command(command: &[u8]) -> i32 {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(&crate::msg!["invalid command '", command, "'\n"]);
    drop(err);
    kmod_help();
    1
}

fn kmod_help() {
    print!(
        "kmod - Manage kernel modules: list, load, unload, etc\n\
         Usage:\n\
         \tkmod [options] command [command_options]\n\n\
         Options:\n\
         \t-V, --version     show version\n\
         \t-h, --help        show this help\n\n\
         Commands:\n  \
         help         show help message\n  \
         list         list currently loaded modules\n  \
         static-nodes output the static-node information installed with the currently running kernel\n  \
         sign         sign a module, as the kernel's scripts/sign-file\n  \
         verify       check module signatures against trusted certificates\n\
         \nkmod also handles gracefully if called from following symlinks:\n  \
         lsmod        compat lsmod command\n  \
         rmmod        compat rmmod command\n  \
         insmod       compat insmod command\n  \
         modinfo      compat modinfo command\n  \
         modprobe     compat modprobe command\n  \
         depmod       compat depmod command\n"
    );
}

/// Long and short option names of a command, for help and error texts.
fn long_names(cmd: &Command) -> Vec<&str> {
    cmd.get_arguments().filter_map(|a| a.get_long()).collect()
}

/// Parses `args` (argv[0] first) with `cmd`; on a usage error prints glibc's message
/// with the full argv[0] and returns Err(exit code 1).
pub fn parse(cmd: Command, argv0: &str, args: Vec<OsString>) -> Result<ArgMatches, i32> {
    let cmd = cmd
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .infer_long_args(true)
        .dont_collapse_args_in_usage(true);
    let words: Vec<OsString> = args.into_iter().skip(1).collect();
    let last_is_long = words
        .last()
        .is_some_and(|w| w.as_bytes().starts_with(b"--"));
    match cmd.clone().try_get_matches_from(&words) {
        Ok(m) => Ok(m),
        Err(e) => {
            // getopt acts on -h/-V when it reaches them, before any later bad option.
            if let Some(m) = early_help_or_version(&cmd, &words, &e) {
                return Ok(m);
            }
            report_clap_error(&cmd, argv0, &e, last_is_long);
            Err(1)
        }
    }
}

/// Matches for a lone `-h`/`-V` (or long form) that comes before the word clap
/// rejected.
fn early_help_or_version(cmd: &Command, words: &[OsString], e: &clap::Error) -> Option<ArgMatches> {
    let invalid = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.split([' ', '=']).next().unwrap_or_default().to_string(),
        _ => return None,
    };
    for word in words {
        let word = word.to_str()?;
        if word == "--" || word.starts_with(&invalid) {
            return None;
        }
        let is_long_of =
            |name: &str| word.len() > 3 && name.starts_with(word.trim_start_matches("--"));
        let early = matches!(word, "-h" | "-V")
            || (word.starts_with("--") && (is_long_of("help") || is_long_of("version")));
        if early {
            return cmd.clone().try_get_matches_from([word]).ok();
        }
    }
    None
}

fn report_clap_error(cmd: &Command, argv0: &str, e: &clap::Error, last_is_long: bool) {
    let invalid = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    match e.kind() {
        ErrorKind::UnknownArgument => {
            report_unknown_option(argv0, &invalid, &long_names(cmd));
        }
        ErrorKind::InvalidValue | ErrorKind::NoEquals => {
            // A missing value is always the last word on the command line.
            let arg = cmd
                .get_arguments()
                .find(|a| invalid.starts_with(&arg_display(a)));
            match arg {
                Some(a) if last_is_long => {
                    eprintln!(
                        "{argv0}: option '--{}' requires an argument",
                        a.get_long().unwrap_or_default()
                    )
                }
                Some(a) => eprintln!(
                    "{argv0}: option requires an argument -- '{}'",
                    a.get_short().unwrap_or('?')
                ),
                None => eprintln!("{argv0}: {}", first_line(e)),
            }
        }
        ErrorKind::TooManyValues => {
            let long = invalid.trim_start_matches('-');
            let long = long.split([' ', '=']).next().unwrap_or(long);
            eprintln!("{argv0}: option '--{long}' doesn't allow an argument");
        }
        _ => eprintln!("{argv0}: {}", first_line(e)),
    }
}

fn arg_display(a: &Arg) -> String {
    match (a.get_long(), a.get_short()) {
        (Some(l), _) => format!("--{l}"),
        (None, Some(s)) => format!("-{s}"),
        _ => String::new(),
    }
}

fn first_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    text.lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string()
}

/// glibc's texts for an unknown short option, an unknown long one, and an ambiguous
/// long-option prefix.
fn report_unknown_option(argv0: &str, word: &str, longs: &[&str]) {
    if let Some(long) = word.strip_prefix("--") {
        let prefix = long.split('=').next().unwrap_or(long);
        let candidates: Vec<&&str> = longs.iter().filter(|l| l.starts_with(prefix)).collect();
        if candidates.len() > 1 {
            let list: Vec<String> = candidates.iter().map(|c| format!("'--{c}'")).collect();
            eprintln!(
                "{argv0}: option '--{prefix}' is ambiguous; possibilities: {}",
                list.join(" ")
            );
        } else {
            eprintln!("{argv0}: unrecognized option '--{prefix}'");
        }
    } else {
        let c = word.trim_start_matches('-').chars().next().unwrap_or('?');
        eprintln!("{argv0}: invalid option -- '{c}'");
    }
}

/// `-s`, `-v`, `-V` and `-h`, which insmod, rmmod and lsmod share, and a positional
/// list `args`.
pub fn with_common_flags(cmd: Command) -> Command {
    cmd.arg(flag("syslog", 's', "syslog", "print to syslog, not stderr"))
        .arg(flag("verbose", 'v', "verbose", "enables more messages").action(ArgAction::Count))
        .arg(flag("version", 'V', "version", "show version"))
        .arg(flag("help", 'h', "help", "show this help"))
        .arg(positional_args())
}

/// Positional arguments, kept as raw OS strings.
pub fn positional_args() -> Arg {
    Arg::new("args")
        .action(ArgAction::Append)
        .value_parser(clap::value_parser!(OsString))
}

/// The positional words.
pub fn words(m: &ArgMatches) -> Vec<OsString> {
    m.get_many::<OsString>("args")
        .map(|v| v.cloned().collect())
        .unwrap_or_default()
}

/// Parses a tool's command line and handles `-h`/`-V`: Ok(matches) to go on, or the
/// exit code.
pub fn start(
    cmd: &Command,
    argv0: &str,
    args: Vec<OsString>,
    usages: &[&str],
    width: usize,
) -> Result<ArgMatches, i32> {
    let m = parse(cmd.clone(), argv0, args)?;
    match help_or_version(&m, cmd, short_name(argv0), usages, width) {
        Some(code) => Err(code),
        None => Ok(m),
    }
}

/// [`start`] for insmod, rmmod and lsmod, with the sink their `-s` and `-v` ask for.
pub fn start_tool(
    cmd: &Command,
    argv0: &str,
    args: Vec<OsString>,
    usages: &[&str],
) -> Result<(ArgMatches, Sink), i32> {
    let m = start(cmd, argv0, args, usages, 18)?;
    let sink = tool_sink(short_name(argv0), &m);
    Ok((m, sink))
}

/// The last value given for an option (getopt: a later one replaces an earlier one).
pub fn last_value(m: &ArgMatches, id: &str) -> Option<OsString> {
    m.get_many::<OsString>(id)
        .and_then(|mut v| v.next_back().cloned())
}

/// The module directory of `-b`/`-d ROOT` and `-k`/`-S VERSION` (ids `root` and
/// `version`), the running kernel's by default; None after logging why uname failed.
pub fn module_dir(m: &ArgMatches, root: &str, version: &str, sink: &Sink) -> Option<ModuleDir> {
    let root = last_value(m, root);
    let version = last_value(m, version);
    match ModuleDir::for_kernel(root.as_deref(), version.as_deref()) {
        Ok(dir) => Some(dir),
        Err(e) => {
            sink.error(format_args!(
                "uname() failed: {}",
                crate::compat::io_strerror(&e)
            ));
            None
        }
    }
}

/// The sink of a tool with `-s` and `-v`: ERROR plus one level per `-v`.
pub fn tool_sink(prog: &str, m: &ArgMatches) -> Sink {
    Sink::new(
        prog,
        Priority::Error as i32 + i32::from(m.get_count("verbose")),
        m.get_flag("syslog"),
    )
}

/// `--json`: a long option only, kept out of `--help` (whose text is kmod's);
/// documented in the manual pages.
pub fn json_flag(help: &'static str) -> Arg {
    Arg::new("json")
        .long("json")
        .help(help)
        .hide(true)
        .action(ArgAction::SetTrue)
}

/// A boolean option.
pub fn flag(id: &'static str, short: char, long: &'static str, help: &'static str) -> Arg {
    Arg::new(id)
        .short(short)
        .long(long)
        .help(help)
        .action(ArgAction::SetTrue)
}

/// An option taking a value; like getopt, the value may start with `-`.
pub fn value(
    id: &'static str,
    short: char,
    long: &'static str,
    name: &'static str,
    help: &'static str,
) -> Arg {
    Arg::new(id)
        .short(short)
        .long(long)
        .value_name(name)
        .help(help)
        .value_parser(clap::value_parser!(OsString))
        .allow_hyphen_values(true)
        .action(ArgAction::Append)
}

/// Help text in kmod's layout, generated from the clap definition so the two never
/// drift: `\t-x, --long=VALUE` padded to `width` columns, then the description (whose
/// further lines are indented to the same column).
pub fn help_text(cmd: &Command, prog: &str, usages: &[&str], width: usize) -> String {
    let mut out = String::from("Usage:\n");
    for usage in usages {
        out.push_str(&format!("\t{prog} {usage}\n"));
    }
    out.push_str("Options:\n");
    for a in cmd
        .get_arguments()
        .filter(|a| !a.is_positional() && !a.is_hide_set())
    {
        let mut spec = String::new();
        if let Some(s) = a.get_short() {
            spec.push_str(&format!("-{s}, "));
        }
        if let Some(l) = a.get_long() {
            spec.push_str(&format!("--{l}"));
        }
        if let Some(v) = a.get_value_names().and_then(|v| v.first()) {
            spec.push_str(&format!("={v}"));
        }
        let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
        for (i, line) in help.lines().enumerate() {
            let lead = if i == 0 { spec.as_str() } else { "" };
            out.push_str(&format!("\t{lead:<width$}{line}\n"));
        }
    }
    out
}

/// Handles `-h` and `-V` (the earlier one wins, as getopt acts on whichever it meets
/// first); Some(exit code) when one was given.
pub fn help_or_version(
    m: &ArgMatches,
    cmd: &Command,
    prog: &str,
    usages: &[&str],
    width: usize,
) -> Option<i32> {
    let index = |id: &str| m.get_flag(id).then(|| m.index_of(id)).flatten();
    match (index("help"), index("version")) {
        (Some(h), v) if v.is_none_or(|v| h < v) => {
            print!("{}", help_text(cmd, prog, usages, width));
            Some(0)
        }
        (_, Some(_)) => {
            print_version();
            Some(0)
        }
        _ => None,
    }
}

/// The basename kmod uses in messages.
pub fn short_name(argv0: &str) -> &str {
    argv0.rsplit('/').next().unwrap_or(argv0)
}
