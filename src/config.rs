//! modprobe configuration: `modprobe.d` files, the module directory's
//! `modules.softdep`/`modules.weakdep`, and module options on the kernel command line,
//! parsed exactly as libkmod 34.2 parses them. Everything stays bytes: options reach
//! the kernel and commands reach `sh` exactly as written.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::compat::fnmatch::fnmatch_bytes;
use crate::compat::{io_strerror, is_space, until_nul};
use crate::diag::{Priority, Sink};
use crate::resolve::underscores;

/// The directories searched when no `-C` is given, first one winning for a file name.
pub const MODPROBE_DIRS: [&str; 5] = [
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/usr/lib/modprobe.d",
    "/lib/modprobe.d",
];

/// How much of `/proc/cmdline` libkmod reads (its buffer, NUL included).
const KCMDLINE_SIZE: usize = 4096;

/// A `softdep` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Softdep {
    pub name: Vec<u8>,
    pub pre: Vec<Vec<u8>>,
    pub post: Vec<Vec<u8>>,
    /// How `modprobe -c` shows the line (kmod's rendering, quirks included).
    pub shown: Vec<u8>,
}

/// The two kinds of commands modprobe.d can give a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Install,
    Remove,
}

/// A (module name or pattern, text) pair of the configuration.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Everything configuration says, each list in configuration order.
#[derive(Debug, Clone, Default)]
pub struct ModprobeConfig {
    pub blacklist: Vec<Vec<u8>>,
    /// (module pattern, command)
    pub install: Vec<Entry>,
    pub remove: Vec<Entry>,
    /// (alias pattern, module name)
    pub aliases: Vec<Entry>,
    /// (module name, options)
    pub options: Vec<Entry>,
    pub softdeps: Vec<Softdep>,
    /// (module pattern, weak dependencies)
    pub weakdeps: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
}

impl ModprobeConfig {
    /// Reads the configuration files of `paths` (the standard directories when None)
    /// plus `module_dir`'s modules.softdep and modules.weakdep, all sorted by file
    /// name (the first directory wins for a repeated name), then the kernel command
    /// line `cmdline`. Problems are logged to `sink` in libkmod's words.
    pub fn load(
        module_dir: &Path,
        paths: Option<&[PathBuf]>,
        cmdline: Option<&[u8]>,
        sink: &Sink,
    ) -> ModprobeConfig {
        let defaults: Vec<PathBuf> = MODPROBE_DIRS.iter().map(PathBuf::from).collect();
        let mut files: Vec<(Vec<u8>, PathBuf)> = Vec::new();
        for special in ["modules.softdep", "modules.weakdep"] {
            files.push((special.as_bytes().to_vec(), module_dir.join(special)));
        }
        for path in paths.unwrap_or(&defaults) {
            list_files(path, &mut files, sink);
        }
        // A stable sort keeps the first directory's file first among equal names,
        // and the dedup keeps only that one.
        files.sort_by(|a, b| a.0.cmp(&b.0));
        files.dedup_by(|later, earlier| later.0 == earlier.0);
        let mut config = ModprobeConfig::default();
        for (_, path) in files {
            tracing::debug!("parsing file '{}'", path.display());
            if let Ok(bytes) = crate::limits::read_whole(&path) {
                config.parse(&bytes, path.as_os_str().as_bytes(), sink);
            }
        }
        if let Some(cmdline) = cmdline {
            config.parse_cmdline(cmdline, sink);
        }
        config
    }

    /// Parses one configuration file's text; `file` names it in messages.
    pub fn parse(&mut self, text: &[u8], file: &[u8], sink: &Sink) {
        for (line_no, line) in logical_lines(text) {
            // libkmod works on the line as a C string.
            let line = until_nul(&line);
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            let mut rest = line;
            let Some(cmd) = next_token(&mut rest) else {
                continue;
            };
            // The rest of the line after the single separator that ended the module
            // name, extra blanks included (kmod keeps them); None when nothing is left.
            let mut name_and_value = || {
                let name = next_token(&mut rest).and_then(underscores)?;
                let value = (!rest.is_empty()).then(|| rest.to_vec())?;
                Some((name, value))
            };
            let ok = match cmd {
                b"alias" => {
                    let alias = next_token(&mut rest).and_then(underscores);
                    let module = next_token(&mut rest).and_then(underscores);
                    alias
                        .zip(module)
                        .map(|entry| self.aliases.push(entry))
                        .is_some()
                }
                b"blacklist" => next_token(&mut rest)
                    .and_then(underscores)
                    .map(|m| self.blacklist.push(m))
                    .is_some(),
                b"options" => name_and_value()
                    .map(|(m, v)| self.options.push((m, replace_tabs(v))))
                    .is_some(),
                b"install" => name_and_value().map(|e| self.install.push(e)).is_some(),
                b"remove" => name_and_value().map(|e| self.remove.push(e)).is_some(),
                b"softdep" => name_and_value()
                    .map(|(m, v)| self.softdeps.push(parse_softdep(m, &v)))
                    .is_some(),
                b"weakdep" => name_and_value()
                    .map(|(m, v)| {
                        let deps = c_words(&v).map(<[u8]>::to_vec).collect();
                        self.weakdeps.push((m, deps));
                    })
                    .is_some(),
                b"include" | b"config" => {
                    let mut msg = b"kmod_config_parse: ".to_vec();
                    msg.extend_from_slice(file);
                    msg.extend_from_slice(b": command ");
                    msg.extend_from_slice(cmd);
                    msg.extend_from_slice(b" is deprecated and not parsed anymore");
                    sink.log_bytes(Priority::Error, &msg);
                    true
                }
                _ => false,
            };
            if !ok {
                let mut msg = b"kmod_config_parse: ".to_vec();
                msg.extend_from_slice(file);
                msg.extend_from_slice(format!(" line {line_no}: ").as_bytes());
                msg.extend_from_slice(b"ignoring bad line starting with '");
                msg.extend_from_slice(cmd);
                msg.push(b'\'');
                sink.log_bytes(Priority::Error, &msg);
            }
        }
    }

    /// Module options and `modprobe.blacklist=` from the kernel command line, with
    /// libkmod's tokenizer (quotes, grub's re-quoting of `"mod.p=a b"`).
    pub fn parse_cmdline(&mut self, cmdline: &[u8], sink: &Sink) {
        let cmdline = &cmdline[..cmdline.len().min(KCMDLINE_SIZE - 1)];
        for (module, param) in cmdline_options(cmdline) {
            if module == b"modprobe" {
                if let Some(names) = param.strip_prefix(b"blacklist=") {
                    self.blacklist
                        .extend(names.split(|&b| b == b',').map(<[u8]>::to_vec));
                    continue;
                }
            }
            match underscores(&module) {
                Some(m) => self.options.push((m, param)),
                None => {
                    let mut msg = b"kcmdline_parse_result: Ignoring bad option on kernel \
                        command line while parsing module name: '"
                        .to_vec();
                    msg.extend_from_slice(&module);
                    msg.push(b'\'');
                    sink.log_bytes(Priority::Error, &msg);
                }
            }
        }
    }

    /// The configuration part of `modprobe -c`, up to the index dump.
    pub fn dump(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut line = |parts: &[&[u8]]| {
            out.extend_from_slice(&parts.join(&b' '));
            out.push(b'\n');
        };
        for b in &self.blacklist {
            line(&[b"blacklist", b]);
        }
        for (kind, list) in [
            (&b"install"[..], &self.install),
            (b"remove", &self.remove),
            (b"alias", &self.aliases),
            (b"options", &self.options),
        ] {
            for (k, v) in list {
                line(&[kind, k, v]);
            }
        }
        for s in &self.softdeps {
            line(&[b"softdep", &s.name, &s.shown]);
        }
        for (name, deps) in &self.weakdeps {
            line(&[b"weakdep", name, &deps.join(&b' ')]);
        }
        out
    }

    fn commands(&self, kind: Command) -> &[Entry] {
        match kind {
            Command::Install => &self.install,
            Command::Remove => &self.remove,
        }
    }

    /// The command of this kind configured for exactly this name (the lookup chain's
    /// commands step).
    pub fn command(&self, kind: Command, name: &[u8]) -> Option<&[u8]> {
        self.commands(kind)
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, cmd)| &cmd[..])
    }

    /// A module's command of this kind: the first line whose pattern matches its name.
    pub fn matching_command(&self, kind: Command, name: &[u8]) -> Option<&[u8]> {
        self.commands(kind)
            .iter()
            .find(|(pattern, _)| fnmatch_bytes(pattern, name))
            .map(|(_, cmd)| &cmd[..])
    }

    /// The first `softdep` line whose pattern matches the name.
    pub fn matching_softdep(&self, name: &[u8]) -> Option<&Softdep> {
        self.softdeps.iter().find(|s| fnmatch_bytes(&s.name, name))
    }

    /// The weak dependencies of the first `weakdep` line whose pattern matches.
    pub fn matching_weakdeps(&self, name: &[u8]) -> Option<&[Vec<u8>]> {
        self.weakdeps
            .iter()
            .find(|(pattern, _)| fnmatch_bytes(pattern, name))
            .map(|(_, deps)| &deps[..])
    }

    /// Options for a module name or the alias it was reached by, joined by spaces.
    pub fn options_for(&self, name: &[u8], alias: Option<&[u8]>) -> Option<Vec<u8>> {
        let parts: Vec<&[u8]> = self
            .options
            .iter()
            .filter(|(n, _)| n == name || alias == Some(&n[..]))
            .map(|(_, o)| &o[..])
            .filter(|o| !o.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(&b' '))
    }

    pub fn is_blacklisted(&self, name: &[u8]) -> bool {
        self.blacklist.iter().any(|b| b == name)
    }
}

/// Adds the configuration files `path` stands for: the file itself, or a directory's
/// `*.conf` entries (not hidden, not directories), each keyed by its file name.
fn list_files(path: &Path, files: &mut Vec<(Vec<u8>, PathBuf)>, sink: &Sink) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        let name = path.file_name().map_or(&b""[..], OsStr::as_bytes);
        files.push((name.to_vec(), path.to_path_buf()));
        return;
    }
    let dir_shown = path.as_os_str().as_bytes();
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) => {
            let mut msg = b"conf_files_list: opendir(".to_vec();
            msg.extend_from_slice(dir_shown);
            msg.extend_from_slice(format!("): {}", io_strerror(&e)).as_bytes());
            sink.log_bytes(Priority::Error, &msg);
            return;
        }
    };
    let mut listed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.as_bytes();
        if name.starts_with(b".") || name.len() < 6 || !name.ends_with(b".conf") {
            continue;
        }
        let full = path.join(OsStr::from_bytes(name));
        let problem: Option<&[u8]> = match std::fs::metadata(&full) {
            Err(_) => Some(b"Cannot stat directory entry"),
            Ok(m) if m.is_dir() => Some(b"Directories inside directories are not supported"),
            Ok(_) => None,
        };
        match problem {
            None => listed.push((name.to_vec(), full)),
            Some(problem) => {
                let mut msg = b"conf_files_filter_out: ".to_vec();
                msg.extend_from_slice(problem);
                msg.extend_from_slice(b": ");
                msg.extend_from_slice(dir_shown);
                msg.push(b'/');
                msg.extend_from_slice(name);
                sink.log_bytes(Priority::Error, &msg);
            }
        }
    }
    files.extend(listed);
}

/// Options keep their words apart with spaces only (libkmod turns tabs into spaces).
fn replace_tabs(mut value: Vec<u8>) -> Vec<u8> {
    for b in &mut value {
        if *b == b'\t' {
            *b = b' ';
        }
    }
    value
}

/// Words separated by C white space.
fn c_words(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&b| is_space(b)).filter(|w| !w.is_empty())
}

/// Lines joined across backslash-newline; a backslash before any other character is
/// dropped and the character kept. Each comes with the number of its last line.
/// (libkmod and depmod read configuration lines the same way.)
pub fn logical_lines(text: &[u8]) -> Vec<(usize, Vec<u8>)> {
    let mut out = Vec::new();
    let mut line = Vec::new();
    let mut line_no = 0;
    let mut bytes = text.iter().copied();
    while let Some(b) = bytes.next() {
        match b {
            b'\n' => {
                line_no += 1;
                out.push((line_no, std::mem::take(&mut line)));
            }
            b'\\' => match bytes.next() {
                Some(b'\n') => line_no += 1,
                Some(c) => line.push(c),
                None => {}
            },
            c => line.push(c),
        }
    }
    if !line.is_empty() {
        out.push((line_no + 1, line));
    }
    out
}

/// strtok_r with " \t": the next token, leaving `rest` just past the one separator
/// that ended it.
fn next_token<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let start = rest
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(rest.len());
    let s = &rest[start..];
    if s.is_empty() {
        *rest = s;
        return None;
    }
    match s.iter().position(|&b| b == b' ' || b == b'\t') {
        Some(end) => {
            *rest = &s[end + 1..];
            Some(&s[..end])
        }
        None => {
            *rest = &s[s.len()..];
            Some(s)
        }
    }
}

/// Splits a softdep value into its pre and post names, and renders it the way kmod's
/// `-c` does: the pre names as one run of the line from the first to the last pre
/// name, then the post names likewise, with no space between the two parts. (kmod bug,
/// kept because `-c` output is compared byte for byte; the lists used are right.)
fn parse_softdep(name: Vec<u8>, value: &[u8]) -> Softdep {
    #[derive(PartialEq)]
    enum Mode {
        None,
        Pre,
        Post,
    }
    let mut mode = Mode::None;
    let mut words: Vec<(bool, &[u8])> = Vec::new();
    for word in c_words(value) {
        match word {
            b"pre:" => mode = Mode::Pre,
            b"post:" => mode = Mode::Post,
            w if mode != Mode::None => words.push((mode == Mode::Pre, w)),
            _ => {}
        }
    }
    let names = |is_pre: bool| -> Vec<Vec<u8>> {
        words
            .iter()
            .filter(|w| w.0 == is_pre)
            .map(|w| w.1.to_vec())
            .collect()
    };
    let span = |is_pre: bool| -> Option<Vec<u8>> {
        let first = words.iter().position(|w| w.0 == is_pre)?;
        let last = words.iter().rposition(|w| w.0 == is_pre)?;
        let run: Vec<&[u8]> = words[first..=last].iter().map(|w| w.1).collect();
        Some(run.join(&b' '))
    };
    let mut shown = Vec::new();
    if let Some(s) = span(true) {
        shown.extend_from_slice(b"pre: ");
        shown.extend_from_slice(&s);
    }
    if let Some(s) = span(false) {
        shown.extend_from_slice(b"post: ");
        shown.extend_from_slice(&s);
    }
    Softdep {
        name,
        pre: names(true),
        post: names(false),
        shown,
    }
}

/// `(module, param)` pairs from a kernel command line, following libkmod's state
/// machine: `mod.param[=value]` words, double quotes allowed around the value or
/// around the whole word (then moved back onto the value, as grub mangles it).
fn cmdline_options(bytes: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Ignore,
        Modname,
        Param,
        Value,
    }
    let mut out = Vec::new();
    let mut state = State::Modname;
    let mut quoted = false;
    let mut quote_start: Option<usize> = None;
    let (mut modname, mut param, mut value) = (0usize, 0usize, None::<usize>);
    let mut i = 0;
    loop {
        let c = bytes.get(i).copied().unwrap_or(0);
        let mut complete = false;
        match c {
            b'"' => {
                quoted = !quoted;
                if quoted && state == State::Modname && i == modname {
                    quote_start = Some(i);
                    modname = i + 1;
                } else if state != State::Value {
                    state = State::Ignore;
                }
            }
            0 | b' ' | b'\n' | b'\t' | 0x0b | 0x0c | b'\r' => {
                if quoted && state == State::Value {
                } else if quoted {
                    state = State::Ignore;
                } else if state == State::Value || state == State::Param {
                    complete = true;
                } else {
                    modname = i + 1;
                    state = State::Modname;
                    quote_start = None;
                }
            }
            b'.' => {
                if state == State::Modname {
                    param = i + 1;
                    state = State::Param;
                } else if state == State::Param {
                    state = State::Ignore;
                }
            }
            b'=' => {
                if state == State::Param {
                    value = Some(i + 1);
                    state = State::Value;
                } else if state == State::Modname {
                    state = State::Ignore;
                }
            }
            _ => {}
        }
        if complete {
            let module = bytes[modname..param - 1].to_vec();
            let mut text = bytes[param..i].to_vec();
            if let (Some(q), Some(v)) = (quote_start, value) {
                if q < modname {
                    // "mod.p=a b" → p="a b": put the opening quote back before the value.
                    // The closing quote is already at the end of the value.
                    text.insert(v - param, b'"');
                }
            }
            out.push((module, text));
            modname = i + 1;
            state = State::Modname;
            quote_start = None;
            value = None;
        }
        if c == 0 {
            break;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &[u8]) -> ModprobeConfig {
        let mut c = ModprobeConfig::default();
        c.parse(text, b"t.conf", &Sink::silent());
        c
    }

    fn strings(list: &[Vec<u8>]) -> Vec<&str> {
        list.iter()
            .map(|s| std::str::from_utf8(s).unwrap())
            .collect()
    }

    fn pairs(list: &[Entry]) -> Vec<(&str, &str)> {
        list.iter()
            .map(|(a, b)| {
                (
                    std::str::from_utf8(a).unwrap(),
                    std::str::from_utf8(b).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn directives() {
        let c = parse(
            b"# comment\nalias my-alias snd-hda-intel\noptions snd-hda-intel  model=x\tpos=1\n\
             install foo /bin/true $CMDLINE_OPTS\nremove foo /bin/false\nblacklist evil-mod\n\
             softdep a pre: b c post: d\nweakdep e f g\ninclude /x\n  # indented\nbogus line\n\
             options lonely\nalias pci:v[a-f]-x m\nwrap \\\nme\n",
        );
        assert_eq!(
            pairs(&c.aliases),
            [("my_alias", "snd_hda_intel"), ("pci:v[a-f]_x", "m")]
        );
        assert_eq!(pairs(&c.options), [("snd_hda_intel", " model=x pos=1")]);
        assert_eq!(pairs(&c.install), [("foo", "/bin/true $CMDLINE_OPTS")]);
        assert_eq!(strings(&c.blacklist), ["evil_mod"]);
        assert_eq!(strings(&c.softdeps[0].pre), ["b", "c"]);
        assert_eq!(c.softdeps[0].shown, b"pre: b cpost: d");
        assert_eq!(c.weakdeps[0].0, b"e");
        assert_eq!(strings(&c.weakdeps[0].1), ["f", "g"]);
        assert_eq!(
            c.command(Command::Install, b"foo"),
            Some(&b"/bin/true $CMDLINE_OPTS"[..])
        );
        assert_eq!(c.command(Command::Install, b"fo*"), None);
        assert_eq!(
            c.matching_command(Command::Remove, b"foo"),
            Some(&b"/bin/false"[..])
        );
    }

    /// Bytes that are not UTF-8 pass through untouched.
    #[test]
    fn bytes_are_kept() {
        let c = parse(b"options e1000e name=caf\xe9\ninstall x /bin/echo \xff\xfe\n");
        assert_eq!(c.options[0].1, b"name=caf\xe9");
        assert_eq!(c.install[0].1, b"/bin/echo \xff\xfe");
        assert_eq!(
            c.dump(),
            b"install x /bin/echo \xff\xfe\noptions e1000e name=caf\xe9\n"
        );
    }

    /// A NUL ends a line's text, as libkmod works on C strings.
    #[test]
    fn nul_ends_the_line() {
        let c = parse(b"options a x=1\0 y=2\nblacklist b\n");
        assert_eq!(pairs(&c.options), [("a", "x=1")]);
        assert_eq!(strings(&c.blacklist), ["b"]);
    }

    #[test]
    fn softdep_rendering_quirk() {
        let s = parse_softdep(b"x".to_vec(), b"post: a pre: b post: c");
        assert_eq!(strings(&s.pre), ["b"]);
        assert_eq!(strings(&s.post), ["a", "c"]);
        assert_eq!(s.shown, b"pre: bpost: a b c");
        assert_eq!(parse_softdep(b"x".to_vec(), b"junk").shown, b"");
    }

    #[test]
    fn kernel_command_line() {
        let mut c = ModprobeConfig::default();
        c.parse_cmdline(
            b"BOOT_IMAGE=/vmlinuz root=/dev/sda1 snd-hda-intel.model=x modprobe.blacklist=a-b,c quiet x.y \"p.dyndbg=file a.c +p\" e.n=\xe9\n",
            &Sink::silent(),
        );
        assert_eq!(strings(&c.blacklist), ["a-b", "c"]);
        assert_eq!(
            c.options,
            [
                (b"snd_hda_intel".to_vec(), b"model=x".to_vec()),
                (b"x".to_vec(), b"y".to_vec()),
                (b"p".to_vec(), b"dyndbg=\"file a.c +p\"".to_vec()),
                (b"e".to_vec(), b"n=\xe9".to_vec()),
            ]
        );
    }
}
