//! `modprobe`: add or remove modules with their dependencies, as kmod 34.2 does.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use clap::{Arg, ArgAction, ArgMatches, Command};
use nix::errno::Errno;

use kmod_rs::config::ModprobeConfig;
use kmod_rs::kernel::LiveKernel;
use kmod_rs::module::{options_from_words, ModuleFile};
use kmod_rs::probe::{Context, ModId, ProbeFlags, Report, State};
use kmod_rs::resolve::{IndexKind, ModuleDir};

use super::{
    flag, parse, print_version, short_name, value, Logger, LOG_CRIT, LOG_ERR, LOG_WARNING,
};

fn long(id: &'static str, help: &'static str) -> Arg {
    Arg::new(id).long(id).help(help).action(ArgAction::SetTrue)
}

pub fn command() -> Command {
    Command::new("modprobe")
        .about("Add and remove modules from the Linux kernel")
        .arg(flag(
            "all",
            'a',
            "all",
            "Consider every non-argument to be a module name to be inserted or removed (-r)",
        ))
        .arg(flag(
            "remove",
            'r',
            "remove",
            "Remove modules instead of inserting",
        ))
        .arg(
            long(
                "remove-holders",
                "Also remove module holders (use together with -r)",
            )
            .alias("remove-dependencies"),
        )
        .arg(value(
            "wait",
            'w',
            "wait",
            "MSEC",
            "When removing a module, wait up to MSEC for module's refcount to become 0",
        ))
        .arg(long(
            "first-time",
            "Fail if module already inserted or removed",
        ))
        .arg(
            flag(
                "ignore-install",
                'i',
                "ignore-install",
                "Ignore install commands",
            )
            .alias("ignore-remove"),
        )
        .arg(flag(
            "use-blacklist",
            'b',
            "use-blacklist",
            "Apply blacklist to resolved alias.",
        ))
        .arg(flag(
            "force",
            'f',
            "force",
            "Force module insertion or removal.",
        ))
        .arg(long("force-modversion", "Ignore module's version"))
        .arg(long("force-vermagic", "Ignore module's version magic"))
        .arg(flag(
            "resolve-alias",
            'R',
            "resolve-alias",
            "Only lookup and print alias and exit",
        ))
        .arg(flag(
            "show-depends",
            'D',
            "show-depends",
            "Only print module dependencies and exit",
        ))
        .arg(
            flag(
                "showconfig",
                'c',
                "showconfig",
                "Print out known configuration and exit",
            )
            .alias("show-config"),
        )
        .arg(
            long("show-modversions", "Dump module symbol version and exit")
                .alias("dump-modversions"),
        )
        .arg(long(
            "show-exports",
            "Only print module exported symbol versions and exit",
        ))
        .arg(
            flag(
                "dry-run",
                'n',
                "dry-run",
                "Do not execute operations, just print out",
            )
            .alias("show"),
        )
        .arg(value(
            "config",
            'C',
            "config",
            "FILE",
            "Use FILE instead of default search paths",
        ))
        .arg(value(
            "dirname",
            'd',
            "dirname",
            "DIR",
            "Use DIR as filesystem root for /lib/modules",
        ))
        .arg(value(
            "set-version",
            'S',
            "set-version",
            "VERSION",
            "Use VERSION instead of `uname -r`",
        ))
        .arg(flag("syslog", 's', "syslog", "print to syslog, not stderr"))
        .arg(flag("quiet", 'q', "quiet", "disable messages"))
        .arg(flag("verbose", 'v', "verbose", "enables more messages").action(ArgAction::Count))
        .arg(flag("version", 'V', "version", "show version"))
        .arg(flag("help", 'h', "help", "show this help"))
        .arg(
            Arg::new("args")
                .action(ArgAction::Append)
                .value_parser(clap::value_parser!(OsString)),
        )
}

const HELP: &str = "Usage:
\t{0} [options] [-i] [-b] modulename
\t{0} [options] -a [-i] [-b] modulename [modulename...]
\t{0} [options] -r [-i] modulename
\t{0} [options] -r -a [-i] modulename [modulename...]
\t{0} [options] -c
\t{0} [options] --dump-modversions filename
Management Options:
\t-a, --all                   Consider every non-argument to
\t                            be a module name to be inserted
\t                            or removed (-r)
\t-r, --remove                Remove modules instead of inserting
\t    --remove-dependencies   Deprecated: use --remove-holders
\t    --remove-holders        Also remove module holders (use together with -r)
\t-w, --wait=<MSEC>           When removing a module, wait up to MSEC for
\t                            module's refcount to become 0 so it can be
\t                            removed (use together with -r)
\t    --first-time            Fail if module already inserted or removed
\t-i, --ignore-install        Ignore install commands
\t-i, --ignore-remove         Ignore remove commands
\t-b, --use-blacklist         Apply blacklist to resolved alias.
\t-f, --force                 Force module insertion or removal.
\t                            implies --force-modversions and
\t                            --force-vermagic
\t    --force-modversion      Ignore module's version
\t    --force-vermagic        Ignore module's version magic

Query Options:
\t-R, --resolve-alias         Only lookup and print alias and exit
\t-D, --show-depends          Only print module dependencies and exit
\t-c, --showconfig            Print out known configuration and exit
\t-c, --show-config           Same as --showconfig
\t    --show-modversions      Dump module symbol version and exit
\t    --dump-modversions      Same as --show-modversions
\t    --show-exports          Only print module exported symbol versions and exit

General Options:
\t-n, --dry-run               Do not execute operations, just print out
\t-n, --show                  Same as --dry-run
\t-C, --config=FILE           Use FILE instead of default search paths
\t-d, --dirname=DIR           Use DIR as filesystem root for /lib/modules
\t-S, --set-version=VERSION   Use VERSION instead of `uname -r`
\t-s, --syslog                print to syslog, not stderr
\t-q, --quiet                 disable messages
\t-v, --verbose               enables more messages
\t-V, --version               show version
\t-h, --help                  show this help
";

/// Splits `MODPROBE_OPTIONS` into words at spaces; a word may be quoted with `"` or
/// `'`, and quotes inside a word are dropped (kmod's rules). kmod 34.2 also turns
/// every extra space, and the space after a quoted word, into an empty argument that
/// then fails as "Module  not found"; we drop those empty words instead.
fn split_env_options(env: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    for c in env.chars() {
        match quote {
            None if c == ' ' => {
                if started {
                    words.push(std::mem::take(&mut word));
                }
                started = false;
            }
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                started = true;
            }
            None => {
                word.push(c);
                started = true;
            }
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// Prints to stdout and logs like modprobe: FATAL messages end the process unless the
/// threshold hides them.
///
/// stdout is buffered the way C stdio buffers it (by line on a terminal, by block
/// otherwise) and flushed where kmod flushes, so that the output of install commands
/// lands in the same place relative to our own lines when callers capture both.
struct ModprobeReport<'a> {
    log: &'a Logger,
    show: bool,
    out: std::io::BufWriter<std::io::Stdout>,
    tty: bool,
}

impl ModprobeReport<'_> {
    fn print(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
        if self.tty {
            let _ = self.out.flush();
        }
    }

    /// An action line kmod prints and flushes at once (`rmmod`, `remove`).
    fn show_now(&mut self, line: &str) {
        if self.show {
            let _ = writeln!(self.out, "{line}");
            let _ = self.out.flush();
        }
    }

    fn flush(&mut self) -> bool {
        self.out.flush().is_ok()
    }
}

impl Report for ModprobeReport<'_> {
    fn log(&mut self, prio: i32, msg: &str) {
        self.log.log(prio, msg);
        if prio <= LOG_CRIT && self.log.enabled(prio) {
            let _ = self.out.flush();
            std::process::exit(1);
        }
    }

    fn show(&mut self, line: &str) {
        if self.show {
            self.print(line);
        }
    }
}

struct Options {
    remove: bool,
    all: bool,
    lookup_only: bool,
    flags: ProbeFlags,
    force: bool,
    first_time: bool,
    remove_holders: bool,
    wait_msec: u64,
    /// The priority "LOG" messages use: FATAL, or WARNING with -a.
    fail_prio: i32,
}

pub fn run(argv0: &str, args: Vec<OsString>) -> i32 {
    let prog = short_name(argv0).to_string();
    let mut args = args;
    if let Ok(env) = std::env::var("MODPROBE_OPTIONS") {
        let extra = split_env_options(&env).into_iter().map(OsString::from);
        args.splice(1..1, extra);
    }
    let cmd = command();
    let m = match parse(cmd.clone(), argv0, args) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let early = Logger::new(&prog, LOG_WARNING, false);
    let index = |id: &str| m.get_flag(id).then(|| m.index_of(id)).flatten();
    match (index("help"), index("version")) {
        (Some(h), v) if v.is_none_or(|v| h < v) => {
            print!("{}", HELP.replace("{0}", &prog));
            return 0;
        }
        (_, Some(_)) => {
            print_version();
            return 0;
        }
        _ => {}
    }
    // Options a nested modprobe (run by an install command) inherits.
    let mut inherited = Vec::new();
    for path in m.get_many::<String>("config").into_iter().flatten() {
        inherited.push(format!("-C {path}"));
    }
    let wait_msec = match m.get_many::<String>("wait").and_then(|mut v| v.next_back()) {
        None => 0,
        Some(w) => match parse_c_ulong(w) {
            Some(n) => n,
            None => {
                early.error(format_args!("unexpected wait value '{w}'."));
                return 1;
            }
        },
    };
    let quiet = m.get_flag("quiet");
    let verbose_count = m.get_count("verbose") as i32;
    let verbose = verbosity(&m);
    let use_syslog = m.get_flag("syslog") || stderr_unusable();
    if m.get_flag("syslog") {
        inherited.push("-s".into());
    }
    if quiet {
        inherited.push("-q".into());
    }
    for _ in 0..verbose_count {
        inherited.push("-v".into());
    }
    if !inherited.is_empty() {
        let joined = inherited.join(" ");
        let value = match std::env::var("MODPROBE_OPTIONS") {
            Ok(old) => format!("{old} {joined}"),
            Err(_) => joined,
        };
        std::env::set_var("MODPROBE_OPTIONS", value);
    }
    let log = Logger::new(&prog, verbose, use_syslog);
    super::init_debug_log(&prog, verbose);

    let words: Vec<String> = m
        .get_many::<OsString>("args")
        .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let show_config = m.get_flag("showconfig");
    if !show_config && words.is_empty() {
        Logger::new(&prog, LOG_WARNING, use_syslog).error("missing parameters. See -h.");
        return 1;
    }
    let root = m
        .get_many::<String>("dirname")
        .and_then(|mut v| v.next_back().cloned());
    let version = m
        .get_many::<String>("set-version")
        .and_then(|mut v| v.next_back().cloned());
    let dir = if root.is_some() || version.is_some() {
        ModuleDir::for_kernel(root.as_deref(), version.as_deref())
    } else {
        ModuleDir::for_kernel(None, None)
    };
    let dir = match dir {
        Ok(d) => d,
        Err(e) => {
            log.error(format_args!("uname() failed: {e}"));
            return 1;
        }
    };
    let dry_run = m.get_flag("dry-run") || m.get_flag("show-depends");
    // kmod 34.2 prints actions for -D or -v; -n alone prints nothing.
    let show = m.get_flag("show-depends") || verbose > LOG_WARNING;
    let force = m.get_flag("force");
    let opts = Options {
        remove: m.get_flag("remove"),
        all: m.get_flag("all"),
        lookup_only: m.get_flag("resolve-alias"),
        flags: ProbeFlags {
            force_modversion: force || m.get_flag("force-modversion"),
            force_vermagic: force || m.get_flag("force-vermagic"),
            ignore_commands: m.get_flag("ignore-install"),
            ignore_loaded: m.get_flag("show-depends"),
            dry_run,
            fail_on_loaded: m.get_flag("first-time"),
            blacklist_names: m.get_flag("use-blacklist"),
            show,
        },
        force,
        first_time: m.get_flag("first-time"),
        remove_holders: m.get_flag("remove-holders"),
        wait_msec,
        fail_prio: if m.get_flag("all") {
            LOG_WARNING
        } else {
            LOG_CRIT
        },
    };
    let live = LiveKernel::default();
    let config_paths: Option<Vec<std::path::PathBuf>> = m
        .get_many::<String>("config")
        .map(|v| v.map(std::path::PathBuf::from).collect());
    let cmdline = std::fs::read("/proc/cmdline")
        .ok()
        .map(|b| String::from_utf8_lossy(&b[..b.len().min(4095)]).into_owned());
    let mut diagnostics = Vec::new();
    let rules = ModprobeConfig::load(
        dir.path(),
        config_paths.as_deref(),
        cmdline.as_deref(),
        &mut diagnostics,
    );
    super::report_library_diagnostics(&diagnostics);
    let mut ctx = Context::new(dir, rules, &live);
    let mut report = ModprobeReport {
        log: &log,
        show,
        out: std::io::BufWriter::with_capacity(4096, std::io::stdout()),
        tty: nix::unistd::isatty(std::io::stdout()).unwrap_or(false),
    };

    let ok = if show_config {
        show_config_dump(&ctx)
    } else if m.get_flag("show-modversions") {
        show_versions(&mut ctx, &words[0], false, &mut report, &opts)
    } else if m.get_flag("show-exports") {
        show_versions(&mut ctx, &words[0], true, &mut report, &opts)
    } else if opts.remove {
        let mut ok = true;
        for w in &words {
            ok &= remove(&mut ctx, w, &opts, &mut report);
        }
        ok
    } else if opts.all {
        let mut ok = true;
        for w in &words {
            ok &= insert(&mut ctx, w, None, &opts, &mut report);
        }
        ok
    } else {
        let extra = (words.len() > 1).then(|| options_from_words(&words[1..]));
        insert(&mut ctx, &words[0], extra.as_deref(), &opts, &mut report)
    };
    let flushed = report.flush();
    i32::from(!(ok && flushed))
}

/// The log threshold: WARNING plus one per `-v`; `-q` sets it to EMERG, so only `-v`
/// given after `-q` count (clap keeps the position of the last `-v` only, so with
/// both, all `-v` are taken as following `-q` when the last one does).
fn verbosity(m: &ArgMatches) -> i32 {
    let count = i32::from(m.get_count("verbose"));
    if !m.get_flag("quiet") {
        return LOG_WARNING + count;
    }
    let last = |id: &str| m.indices_of(id).and_then(|mut i| i.next_back());
    match (last("quiet"), last("verbose")) {
        (Some(q), Some(v)) if count > 0 && v > q => count,
        _ => 0,
    }
}

/// `strtoul(s, &end, 0)` accepting the whole string only.
fn parse_c_ulong(s: &str) -> Option<u64> {
    let t = s.trim_start();
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let n = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()?
    } else if t.len() > 1 && t.starts_with('0') {
        u64::from_str_radix(&t[1..], 8).ok()?
    } else {
        t.parse().ok()?
    };
    Some(if neg { n.wrapping_neg() } else { n })
}

fn stderr_unusable() -> bool {
    nix::sys::stat::fstat(std::io::stderr()).is_err()
}

fn insert(
    ctx: &mut Context,
    arg: &str,
    extra: Option<&str>,
    opts: &Options,
    report: &mut ModprobeReport,
) -> bool {
    let ids: Vec<ModId> = if arg.starts_with('/') || arg.starts_with("./") {
        match ctx.module_at_path(Path::new(arg), report) {
            Ok(id) => vec![id],
            Err(e) => {
                report.log(
                    opts.fail_prio,
                    &format!("Failed to get module from path {arg}: {}", e.desc()),
                );
                return false;
            }
        }
    } else {
        match ctx.lookup(arg) {
            Ok(ids) if !ids.is_empty() => ids,
            _ => {
                // kmod says only "not found"; say why when the index itself is unusable.
                if let Some(problem) = ctx.dir.index_problem(IndexKind::Dep) {
                    report.log(LOG_WARNING, &format!("{problem} (run depmod)"));
                }
                let dir = ctx.dir.path().display().to_string();
                report.log(
                    opts.fail_prio,
                    &format!("Module {arg} not found in directory {dir}"),
                );
                return false;
            }
        }
    };
    let mut ok = true;
    for id in ids {
        ok = insert_one(ctx, id, extra, opts, report);
    }
    ok
}

fn insert_one(
    ctx: &mut Context,
    id: ModId,
    extra: Option<&str>,
    opts: &Options,
    report: &mut ModprobeReport,
) -> bool {
    if opts.lookup_only {
        report.print(ctx.name(id));
        return true;
    }
    match ctx.probe_insert(id, opts.flags, extra, report) {
        Ok(_) => true,
        Err(e) => {
            let name = ctx.name(id).to_string();
            let reason = match e {
                Errno::EEXIST => "Module already in kernel".to_string(),
                Errno::ENOENT => {
                    "Unknown symbol in module, or unknown parameter (see dmesg)".to_string()
                }
                e => e.desc().to_string(),
            };
            report.log(LOG_ERR, &format!("could not insert '{name}': {reason}"));
            false
        }
    }
}

fn remove(ctx: &mut Context, arg: &str, opts: &Options, report: &mut ModprobeReport) -> bool {
    let ids = match ctx.lookup(arg) {
        Ok(ids) => ids,
        Err(_) => return false,
    };
    if ids.is_empty() {
        report.log(opts.fail_prio, &format!("Module {arg} not found."));
        return false;
    }
    for id in ids {
        if remove_module(ctx, id, opts.remove_holders, false, opts, report).is_err() {
            return false;
        }
    }
    true
}

/// modprobe's removal of one module: post-softdeps, holders, the module, unused
/// dependencies, pre-softdeps.
fn remove_module(
    ctx: &mut Context,
    id: ModId,
    holders: bool,
    ignore_builtin: bool,
    opts: &Options,
    report: &mut ModprobeReport,
) -> Result<(), Errno> {
    let name = ctx.name(id).to_string();
    let (pre, post, cmd) = if opts.flags.ignore_commands {
        (Vec::new(), Vec::new(), None)
    } else {
        let (pre, post) = ctx.softdeps(id, report);
        (pre, post, ctx.remove_command(id))
    };
    if cmd.is_none() && !opts.flags.ignore_loaded {
        match ctx.state(id) {
            Err(_) => {
                if opts.first_time {
                    report.log(opts.fail_prio, &format!("Module {name} is not in kernel."));
                    return Err(Errno::ENOENT);
                }
                return Ok(());
            }
            Ok(State::Builtin) => {
                if ignore_builtin {
                    return Ok(());
                }
                report.log(opts.fail_prio, &format!("Module {name} is builtin."));
                return Err(Errno::ENOENT);
            }
            Ok(_) => {}
        }
    }
    for &p in post.iter().rev() {
        let _ = remove_module(ctx, p, false, true, opts, report);
    }
    if holders {
        let names = ctx.kernel.holders(&name).unwrap_or_default();
        for h in names.iter().rev() {
            let hid = ctx.module_named(h);
            remove_module(ctx, hid, false, true, opts, report)?;
        }
    }
    let in_use = || kmod_rs::kernel::refcnt(ctx.kernel, &name).is_ok_and(|n| n > 0);
    if cmd.is_none() && !opts.flags.ignore_loaded && opts.wait_msec == 0 && in_use() {
        report.log(opts.fail_prio, &format!("Module {name} is in use."));
        return Err(Errno::EBUSY);
    }
    match &cmd {
        None => remove_do(ctx, &name, opts, report)?,
        Some(cmd) => {
            let cmd = cmd.replace("$CMDLINE_OPTS", "");
            report.show_now(&format!("remove {cmd}"));
            if !opts.flags.dry_run {
                let status = std::process::Command::new("/bin/sh")
                    .arg("-c")
                    .arg(&cmd)
                    .env("MODPROBE_MODULE", &name)
                    .status();
                if !status.is_ok_and(|s| s.success()) {
                    report.log(
                        opts.fail_prio,
                        &format!("Error running remove command for {name}"),
                    );
                    return Err(Errno::EINVAL);
                }
            }
        }
    }
    if cmd.is_none() {
        for dep in ctx.dependencies(id) {
            let dep_name = ctx.name(dep).to_string();
            if kmod_rs::kernel::refcnt(ctx.kernel, &dep_name).is_ok_and(|n| n == 0) {
                let _ = remove_do(ctx, &dep_name, opts, report);
            }
        }
    }
    for &p in pre.iter().rev() {
        let _ = remove_module(ctx, p, false, true, opts, report);
    }
    Ok(())
}

/// `rmmod NAME` as modprobe does it, with `--wait` back-off on EAGAIN.
fn remove_do(
    ctx: &mut Context,
    name: &str,
    opts: &Options,
    report: &mut ModprobeReport,
) -> Result<(), Errno> {
    report.show_now(&format!("rmmod {name}"));
    if opts.flags.dry_run {
        return Ok(());
    }
    let start = std::time::Instant::now();
    let mut interval = std::time::Duration::from_millis(1);
    let deadline = std::time::Duration::from_millis(opts.wait_msec);
    loop {
        match kmod_rs::kernel::remove_module(ctx.kernel, name, opts.force) {
            Ok(()) => return Ok(()),
            Err(Errno::EAGAIN) if opts.wait_msec > 0 && start.elapsed() < deadline => {
                let left = deadline.saturating_sub(start.elapsed());
                std::thread::sleep(interval.min(left));
                interval *= 2;
            }
            Err(e) => {
                report.log(LOG_ERR, &format!("could not remove '{name}': {}", e.desc()));
                return Err(e);
            }
        }
    }
}

fn show_versions(
    ctx: &mut Context,
    path: &str,
    exports: bool,
    report: &mut ModprobeReport,
    opts: &Options,
) -> bool {
    if ctx.module_at_path(Path::new(path), report).is_err() {
        report.log(opts.fail_prio, &format!("Module {path} not found."));
        return false;
    }
    let what = if exports { "symbols" } else { "modversions" };
    let file = match ModuleFile::open(Path::new(path)) {
        Ok(f) => f,
        Err(e) => {
            report.log(
                opts.fail_prio,
                &format!("could not get {what} of {path}: {}", e.errno().desc()),
            );
            return false;
        }
    };
    let elf = match file.elf() {
        Ok(e) => e,
        Err(e) => {
            report.log(
                opts.fail_prio,
                &format!("could not get {what} of {path}: {}", e.errno().desc()),
            );
            return false;
        }
    };
    let entries: Vec<(u64, Vec<u8>)> = if exports {
        elf.exported_symbols()
            .into_iter()
            .map(|s| (s.crc, s.name.to_vec()))
            .collect()
    } else {
        match elf.versions() {
            Ok(v) => v.into_iter().map(|(crc, n)| (crc, n.to_vec())).collect(),
            Err(e) => {
                report.log(
                    opts.fail_prio,
                    &format!("could not get {what} of {path}: {}", e.errno().desc()),
                );
                return false;
            }
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (crc, name) in entries {
        let _ = write!(out, "0x{crc:08x}\t");
        let _ = out.write_all(&name);
        let _ = writeln!(out);
    }
    out.flush().is_ok()
}

fn show_config_dump(ctx: &Context) -> bool {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let _ = out.write_all(ctx.rules.dump().as_bytes());
    let _ = writeln!(
        out,
        "\n# End of configuration files. Dumping indexes now:\n"
    );
    for kind in [
        kmod_rs::resolve::IndexKind::Alias,
        kmod_rs::resolve::IndexKind::Symbols,
    ] {
        if let Some(index) = ctx.dir.index(kind) {
            index.for_each_raw(|key, _, value| {
                let _ = out.write_all(b"alias ");
                let _ = out.write_all(key);
                let _ = out.write_all(b" ");
                let _ = out.write_all(value);
                let _ = out.write_all(b"\n");
            });
        }
    }
    out.flush().is_ok()
}

#[cfg(test)]
mod tests {
    use super::{parse_c_ulong, split_env_options};

    #[test]
    fn env_words() {
        assert_eq!(split_env_options("-q  -v"), ["-q", "-v"]);
        assert_eq!(split_env_options("\"-C /x y\" -v"), ["-C /x y", "-v"]);
        assert_eq!(split_env_options("-Ca'b c'd"), ["-Cab cd"]);
        assert_eq!(split_env_options("''"), [""]);
        assert!(split_env_options("").is_empty());
    }

    #[test]
    fn wait_values() {
        assert_eq!(parse_c_ulong("100"), Some(100));
        assert_eq!(parse_c_ulong("0x10"), Some(16));
        assert_eq!(parse_c_ulong("010"), Some(8));
        assert_eq!(parse_c_ulong("12x"), None);
        assert_eq!(parse_c_ulong(""), None);
    }
}
