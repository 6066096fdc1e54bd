//! `modprobe`: add or remove modules with their dependencies, as kmod 34.2 does.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command};
use nix::errno::Errno;

use crate::compat::{strerror, strtoul_whole};
use crate::config::ModprobeConfig;
use crate::diag::{Fatal, Priority, Sink};
use crate::json::Json;
use crate::kernel::LiveKernel;
use crate::module::{options_from_words, ModuleFile};
use crate::msg;
use crate::msgf;
use crate::probe::{Action, Actions, Context, ModId, ProbeFlags, RemoveError, RemoveFlags};
use crate::resolve::IndexKind;

use super::{flag, json_flag, last_value, module_dir, parse, print_version, short_name, value};

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
        .arg(json_flag("With -D, -R or -c: print JSON (see modprobe(8))"))
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
fn split_env_options(env: &[u8]) -> Vec<OsString> {
    let mut words = Vec::new();
    let mut word = Vec::new();
    let mut quote: Option<u8> = None;
    let mut started = false;
    for &c in env {
        match quote {
            None if c == b' ' => {
                if started {
                    words.push(OsString::from_vec(std::mem::take(&mut word)));
                }
                started = false;
            }
            None if c == b'"' || c == b'\'' => {
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
        words.push(OsString::from_vec(word));
    }
    words
}

/// modprobe's stdout: buffered the way C stdio buffers it (by line on a terminal, by
/// block otherwise) and flushed where kmod flushes, so that the output of install
/// commands lands in the same place relative to our own lines when callers capture
/// both.
///
/// With `--json`, what would be printed is collected and written at the end as one
/// JSON array.
struct Stdout {
    out: std::io::BufWriter<std::io::Stdout>,
    tty: bool,
    json: Option<Vec<Json>>,
}

impl Stdout {
    fn new(json: bool) -> Stdout {
        Stdout {
            out: std::io::BufWriter::with_capacity(4096, std::io::stdout()),
            tty: nix::unistd::isatty(std::io::stdout()).unwrap_or(false),
            json: json.then(Vec::new),
        }
    }

    /// A line of output (`-R`'s module names), or its JSON value.
    fn print(&mut self, line: &[u8], json: impl FnOnce() -> Json) {
        match &mut self.json {
            Some(values) => values.push(json()),
            None => {
                let _ = self.out.write_all(line);
                let _ = self.out.write_all(b"\n");
                if self.tty {
                    let _ = self.out.flush();
                }
            }
        }
    }

    fn flush(&mut self) -> bool {
        if let Some(values) = self.json.take() {
            let _ = self.out.write_all(&Json::Array(values).to_line());
        }
        self.out.flush().is_ok()
    }
}

impl Actions for Stdout {
    fn show(&mut self, action: Action<'_>) {
        self.print(&action.line(), || action.json());
        if action.flushed() {
            let _ = self.out.flush();
        }
    }
}

/// What the command line asks for, besides where modules come from.
struct Options {
    all: bool,
    lookup_only: bool,
    probe: ProbeFlags,
    remove: RemoveFlags,
    /// The priority of messages after which modprobe gives up: FATAL, or WARNING
    /// with -a (kmod's `LOG`).
    fail_priority: Priority,
}

pub fn run(argv0: &str, mut args: Vec<OsString>) -> i32 {
    let prog = short_name(argv0).to_string();
    if let Some(env) = std::env::var_os("MODPROBE_OPTIONS") {
        args.splice(1..1, split_env_options(env.as_bytes()));
    }
    let cmd = command();
    let m = match parse(cmd.clone(), argv0, args) {
        Ok(m) => m,
        Err(code) => return code,
    };
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
    let early = Sink::new(&prog, Priority::Warning as i32, false);
    let wait = match last_value(&m, "wait") {
        None => Duration::ZERO,
        Some(w) => match strtoul_whole(w.as_bytes(), 0) {
            Some(ms) => Duration::from_millis(ms),
            None => {
                early.log_bytes(Priority::Error, msgf!("unexpected wait value '{}'.", w));
                return 1;
            }
        },
    };
    let verbose = verbosity(&m);
    let use_syslog = m.get_flag("syslog") || stderr_unusable();
    let sink = Sink::new(&prog, verbose, use_syslog);
    sink.install_tracing();

    let words: Vec<Vec<u8>> = m
        .get_many::<OsString>("args")
        .map(|v| v.map(|s| s.as_bytes().to_vec()).collect())
        .unwrap_or_default();
    let show_config = m.get_flag("showconfig");
    if !show_config && words.is_empty() {
        Sink::new(&prog, Priority::Warning as i32, use_syslog).error("missing parameters. See -h.");
        return 1;
    }
    let json = m.get_flag("json");
    let queries = ["show-depends", "resolve-alias", "showconfig"];
    if json && !queries.iter().any(|q| m.get_flag(q)) {
        sink.error("--json goes with --show-depends, --resolve-alias or --show-config.");
        return 1;
    }
    let Some(dir) = module_dir(&m, "dirname", "set-version", &sink) else {
        return 1;
    };
    let opts = options(&m, verbose, wait);
    let live = LiveKernel::default();
    let config_paths: Option<Vec<PathBuf>> = m
        .get_many::<OsString>("config")
        .map(|v| v.map(PathBuf::from).collect());
    // libkmod reads at most a page of the kernel command line.
    let cmdline = std::fs::File::open("/proc/cmdline").ok().and_then(|file| {
        let mut text = Vec::new();
        crate::limits::read_limited(std::io::Read::take(file, 4096), &mut text, 4096).ok()?;
        Some(text)
    });
    let config = ModprobeConfig::load(
        dir.path(),
        config_paths.as_deref(),
        cmdline.as_deref(),
        &Sink::libkmod(),
    );
    let mut ctx = Context::new(dir, config, &live, sink.clone());
    if let Some(env) = inherited_options(&m) {
        ctx.set_command_env("MODPROBE_OPTIONS", env);
    }
    // -c --json writes its own object; the others collect into one array.
    let mut out = Stdout::new(json && !show_config);

    let result = if show_config {
        Ok(show_config_dump(&ctx, json))
    } else if m.get_flag("show-modversions") {
        show_versions(&mut ctx, &words[0], false, &opts, &sink)
    } else if m.get_flag("show-exports") {
        show_versions(&mut ctx, &words[0], true, &opts, &sink)
    } else if m.get_flag("remove") {
        let mut ok = Ok(true);
        for w in &words {
            match remove(&mut ctx, w, &opts, &mut out, &sink) {
                Ok(one) => ok = ok.map(|all| all && one),
                Err(fatal) => {
                    ok = Err(fatal);
                    break;
                }
            }
        }
        ok
    } else if opts.all {
        let mut ok = Ok(true);
        for w in &words {
            match insert(&mut ctx, w, None, &opts, &mut out, &sink) {
                Ok(one) => ok = ok.map(|all| all && one),
                Err(fatal) => {
                    ok = Err(fatal);
                    break;
                }
            }
        }
        ok
    } else {
        let extra = (words.len() > 1).then(|| options_from_words(&words[1..]));
        insert(
            &mut ctx,
            &words[0],
            extra.as_deref(),
            &opts,
            &mut out,
            &sink,
        )
    };
    let flushed = out.flush();
    i32::from(!(result == Ok(true) && flushed))
}

/// The options a nested modprobe (run by an install or remove command) inherits
/// through `MODPROBE_OPTIONS`, appended to the current value in command-line order.
fn inherited_options(m: &ArgMatches) -> Option<OsString> {
    let mut inherited: Vec<(usize, Vec<u8>)> = Vec::new();
    if let (Some(at), Some(paths)) = (m.indices_of("config"), m.get_many::<OsString>("config")) {
        for (i, path) in at.zip(paths) {
            inherited.push((i, [&b"-C "[..], path.as_bytes()].concat()));
        }
    }
    for (id, word) in [("syslog", "-s"), ("quiet", "-q"), ("verbose", "-v")] {
        let given = m.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
        if given {
            for i in m.indices_of(id).into_iter().flatten() {
                inherited.push((i, word.as_bytes().to_vec()));
            }
        }
    }
    if inherited.is_empty() {
        return None;
    }
    inherited.sort_by_key(|(i, _)| *i);
    let mut value = std::env::var_os("MODPROBE_OPTIONS")
        .map(OsString::into_vec)
        .unwrap_or_default();
    for (_, word) in inherited {
        if !value.is_empty() {
            value.push(b' ');
        }
        value.extend_from_slice(&word);
    }
    Some(OsString::from_vec(value))
}

fn options(m: &ArgMatches, verbose: i32, wait: Duration) -> Options {
    let dry_run = m.get_flag("dry-run") || m.get_flag("show-depends");
    // kmod 34.2 prints actions for -D or -v; -n alone prints nothing.
    let show = m.get_flag("show-depends") || verbose > Priority::Warning as i32;
    let force = m.get_flag("force");
    let ignore_commands = m.get_flag("ignore-install");
    let ignore_loaded = m.get_flag("show-depends");
    let first_time = m.get_flag("first-time");
    let fail_priority = if m.get_flag("all") {
        Priority::Warning
    } else {
        Priority::Fatal
    };
    Options {
        all: m.get_flag("all"),
        lookup_only: m.get_flag("resolve-alias"),
        probe: ProbeFlags {
            force_modversion: force || m.get_flag("force-modversion"),
            force_vermagic: force || m.get_flag("force-vermagic"),
            ignore_commands,
            ignore_loaded,
            dry_run,
            fail_on_loaded: first_time,
            blacklist_names: m.get_flag("use-blacklist"),
            show,
        },
        remove: RemoveFlags {
            ignore_commands,
            ignore_loaded,
            dry_run,
            first_time,
            remove_holders: m.get_flag("remove-holders"),
            force,
            wait,
            show,
            fail_priority,
        },
        fail_priority,
    }
}

/// The log threshold: WARNING plus one per `-v`; `-q` sets it to EMERG, so only `-v`
/// given after `-q` count (clap keeps the position of the last `-v` only, so with
/// both, all `-v` are taken as following `-q` when the last one does).
fn verbosity(m: &ArgMatches) -> i32 {
    let count = i32::from(m.get_count("verbose"));
    if !m.get_flag("quiet") {
        return Priority::Warning as i32 + count;
    }
    let last = |id: &str| m.indices_of(id).and_then(|mut i| i.next_back());
    match (last("quiet"), last("verbose")) {
        (Some(q), Some(v)) if count > 0 && v > q => count,
        _ => 0,
    }
}

fn stderr_unusable() -> bool {
    nix::sys::stat::fstat(std::io::stderr()).is_err()
}

/// modprobe NAME|PATH: Ok(false) after a failure, Err when a FATAL message stops
/// modprobe.
fn insert(
    ctx: &mut Context,
    arg: &[u8],
    extra: Option<&[u8]>,
    opts: &Options,
    out: &mut Stdout,
    sink: &Sink,
) -> Result<bool, Fatal> {
    let ids: Vec<ModId> = if arg.starts_with(b"/") || arg.starts_with(b"./") {
        match ctx.module_at_path(Path::new(OsStr::from_bytes(arg))) {
            Ok(id) => vec![id],
            Err(e) => {
                sink.fail_bytes(
                    opts.fail_priority,
                    msg!["Failed to get module from path ", arg, ": ", strerror(e)],
                )?;
                return Ok(false);
            }
        }
    } else {
        match ctx.lookup(arg) {
            Ok(ids) if !ids.is_empty() => ids,
            _ => {
                // kmod says only "not found"; say why when the index itself is unusable.
                if let Some(problem) = ctx.dir.index_problem(IndexKind::Dep) {
                    sink.log(Priority::Warning, format_args!("{problem} (run depmod)"));
                }
                sink.fail_bytes(
                    opts.fail_priority,
                    msg!["Module ", arg, " not found in directory ", ctx.dir.path()],
                )?;
                return Ok(false);
            }
        }
    };
    let mut ok = true;
    for id in ids {
        ok = insert_one(ctx, id, extra, opts, out, sink);
    }
    Ok(ok)
}

fn insert_one(
    ctx: &mut Context,
    id: ModId,
    extra: Option<&[u8]>,
    opts: &Options,
    out: &mut Stdout,
    sink: &Sink,
) -> bool {
    if opts.lookup_only {
        let name = ctx.name(id);
        out.print(name, || Json::text(name));
        return true;
    }
    match ctx.probe_insert(id, opts.probe, extra, out) {
        Ok(_) => true,
        Err(e) => {
            let reason = match e {
                Errno::EEXIST => "Module already in kernel".into(),
                Errno::ENOENT => {
                    "Unknown symbol in module, or unknown parameter (see dmesg)".into()
                }
                e => strerror(e),
            };
            sink.log_bytes(
                Priority::Error,
                msg!["could not insert '", ctx.name(id), "': ", reason],
            );
            for line in ctx.take_explanation() {
                sink.log_bytes(Priority::Error, line);
            }
            false
        }
    }
}

/// modprobe -r NAME: Ok(false) after a failure, Err when a FATAL message stops
/// modprobe.
fn remove(
    ctx: &mut Context,
    arg: &[u8],
    opts: &Options,
    out: &mut Stdout,
    sink: &Sink,
) -> Result<bool, Fatal> {
    let Ok(ids) = ctx.lookup(arg) else {
        return Ok(false);
    };
    if ids.is_empty() {
        sink.fail_bytes(opts.fail_priority, msg!["Module ", arg, " not found."])?;
        return Ok(false);
    }
    for id in ids {
        match ctx.remove(id, &opts.remove, out) {
            Ok(()) => {}
            Err(RemoveError::Stopped(fatal)) => return Err(fatal),
            Err(RemoveError::Failed(_)) => return Ok(false),
        }
    }
    Ok(true)
}

/// `--show-modversions` and `--show-exports`: a module file's symbol CRCs.
fn show_versions(
    ctx: &mut Context,
    path: &[u8],
    exports: bool,
    opts: &Options,
    sink: &Sink,
) -> Result<bool, Fatal> {
    let path = Path::new(OsStr::from_bytes(path));
    if ctx.module_at_path(path).is_err() {
        sink.fail_bytes(opts.fail_priority, msg!["Module ", path, " not found."])?;
        return Ok(false);
    }
    let what = if exports { "symbols" } else { "modversions" };
    let entries = ModuleFile::open(path).and_then(|file| {
        let elf = file.elf()?;
        let entries: Vec<(u64, Vec<u8>)> = if exports {
            elf.exported_symbols()
                .into_iter()
                .map(|s| (s.crc, s.name.to_vec()))
                .collect()
        } else {
            elf.versions()
                .map_err(|e| crate::module::ModuleError::Elf(path.to_path_buf(), e))?
                .into_iter()
                .map(|(crc, n)| (crc, n.to_vec()))
                .collect()
        };
        Ok(entries)
    });
    let entries = match entries {
        Ok(entries) => entries,
        Err(e) => {
            sink.fail_bytes(
                opts.fail_priority,
                msg![
                    "could not get ",
                    what,
                    " of ",
                    path,
                    ": ",
                    strerror(e.errno())
                ],
            )?;
            return Ok(false);
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (crc, name) in entries {
        let _ = write!(out, "0x{crc:08x}\t");
        let _ = out.write_all(&name);
        let _ = writeln!(out);
    }
    Ok(out.flush().is_ok())
}

/// `modprobe -c`: the configuration, then the alias and symbol indexes.
fn show_config_dump(ctx: &Context, json: bool) -> bool {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        let _ = out.write_all(&config_json(ctx).to_line());
        return out.flush().is_ok();
    }
    let _ = out.write_all(&ctx.config.dump());
    let _ = writeln!(
        out,
        "\n# End of configuration files. Dumping indexes now:\n"
    );
    for kind in [IndexKind::Alias, IndexKind::Symbols] {
        if let Some(index) = ctx.dir.index(kind) {
            index.for_each(|key, v| {
                let _ = out.write_all(b"alias ");
                let _ = out.write_all(key);
                let _ = out.write_all(b" ");
                let _ = out.write_all(v.value);
                let _ = out.write_all(b"\n");
            });
        }
    }
    out.flush().is_ok()
}

/// `modprobe -c --json`: every directive of the configuration, then the indexes'
/// aliases.
fn config_json(ctx: &Context) -> Json {
    let config = &ctx.config;
    let pairs = |list: &[(Vec<u8>, Vec<u8>)], key: &'static str, value: &'static str| {
        Json::Array(
            list.iter()
                .map(|(k, v)| {
                    Json::obj(vec![(key, Json::text(&k[..])), (value, Json::text(&v[..]))])
                })
                .collect(),
        )
    };
    let index = |kind| {
        let mut aliases = Vec::new();
        if let Some(index) = ctx.dir.index(kind) {
            index.for_each(|key, v| {
                aliases.push(Json::obj(vec![
                    ("alias", Json::text(key)),
                    ("module", Json::text(v.value)),
                ]))
            });
        }
        Json::Array(aliases)
    };
    Json::obj(vec![
        (
            "blacklist",
            Json::texts(config.blacklist.iter().map(|b| &b[..])),
        ),
        ("install", pairs(&config.install, "module", "command")),
        ("remove", pairs(&config.remove, "module", "command")),
        ("alias", pairs(&config.aliases, "alias", "module")),
        ("options", pairs(&config.options, "module", "options")),
        (
            "softdep",
            Json::Array(
                config
                    .softdeps
                    .iter()
                    .map(|s| {
                        Json::obj(vec![
                            ("module", Json::text(&s.name[..])),
                            ("pre", Json::texts(s.pre.iter().map(|n| &n[..]))),
                            ("post", Json::texts(s.post.iter().map(|n| &n[..]))),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "weakdep",
            Json::Array(
                config
                    .weakdeps
                    .iter()
                    .map(|(name, deps)| {
                        Json::obj(vec![
                            ("module", Json::text(&name[..])),
                            ("deps", Json::texts(deps.iter().map(|n| &n[..]))),
                        ])
                    })
                    .collect(),
            ),
        ),
        ("aliases", index(IndexKind::Alias)),
        ("symbols", index(IndexKind::Symbols)),
    ])
}

#[cfg(test)]
mod tests {
    use super::split_env_options;

    #[test]
    fn env_words() {
        let words = |s: &[u8]| -> Vec<Vec<u8>> {
            split_env_options(s)
                .into_iter()
                .map(|w| w.into_encoded_bytes())
                .collect()
        };
        assert_eq!(words(b"-q  -v"), [b"-q".to_vec(), b"-v".to_vec()]);
        assert_eq!(
            words(b"\"-C /x y\" -v"),
            [b"-C /x y".to_vec(), b"-v".to_vec()]
        );
        assert_eq!(words(b"-Ca'b c'd"), [b"-Cab cd".to_vec()]);
        assert_eq!(words(b"''"), [Vec::<u8>::new()]);
        assert_eq!(
            words(b"-C /caf\xe9"),
            [b"-C".to_vec(), b"/caf\xe9".to_vec()]
        );
        assert!(words(b"").is_empty());
    }
}
