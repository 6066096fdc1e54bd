//! modprobe configuration: `modprobe.d` files, the module directory's
//! `modules.softdep`/`modules.weakdep`, and module options on the kernel command line,
//! parsed exactly as libkmod 34.2 parses them.

use std::path::{Path, PathBuf};

/// The directories searched when no `-C` is given, first one winning for a file name.
pub const MODPROBE_DIRS: [&str; 5] = [
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/usr/lib/modprobe.d",
    "/lib/modprobe.d",
];

/// A `softdep` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Softdep {
    pub name: String,
    pub pre: Vec<String>,
    pub post: Vec<String>,
    /// How `modprobe -c` shows the line (kmod's rendering, quirks included).
    pub shown: String,
}

/// Everything configuration says, each list in configuration order.
#[derive(Debug, Clone, Default)]
pub struct ModprobeConfig {
    pub blacklist: Vec<String>,
    /// (module pattern, command)
    pub install: Vec<(String, String)>,
    pub remove: Vec<(String, String)>,
    /// (alias pattern, module name)
    pub aliases: Vec<(String, String)>,
    /// (module name, options)
    pub options: Vec<(String, String)>,
    pub softdeps: Vec<Softdep>,
    /// (module pattern, weak dependencies)
    pub weakdeps: Vec<(String, Vec<String>)>,
}

/// A message libkmod logs while reading configuration, already worded as kmod words
/// it (`libkmod: ERROR: ...` is the caller's prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub function: &'static str,
    pub message: String,
}

impl ModprobeConfig {
    /// Reads the configuration files of `paths` (the standard directories when None)
    /// plus `module_dir`'s modules.softdep and modules.weakdep, all sorted by file
    /// name (the first directory wins for a repeated name), then `cmdline`.
    pub fn load(
        module_dir: &Path,
        paths: Option<&[PathBuf]>,
        cmdline: Option<&str>,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> ModprobeConfig {
        let defaults: Vec<PathBuf> = MODPROBE_DIRS.iter().map(PathBuf::from).collect();
        let paths = paths.unwrap_or(&defaults);
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        let mut add = |name: String, path: PathBuf| {
            if !files.iter().any(|(n, _)| *n == name) {
                files.push((name, path));
            }
        };
        for special in ["modules.softdep", "modules.weakdep"] {
            add(special.to_string(), module_dir.join(special));
        }
        for path in paths {
            let Ok(meta) = std::fs::metadata(path) else {
                continue;
            };
            if !meta.is_dir() {
                let name = path
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                add(name, path.clone());
                continue;
            }
            let Ok(entries) = std::fs::read_dir(path) else {
                diagnostics.push(Diagnostic {
                    function: "conf_files_list",
                    message: format!("opendir({}): Permission denied", path.display()),
                });
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || name.len() < 6 || !name.ends_with(".conf") {
                    continue;
                }
                let full = path.join(&name);
                match std::fs::metadata(&full) {
                    Err(_) => diagnostics.push(Diagnostic {
                        function: "conf_files_filter_out",
                        message: format!("Cannot stat directory entry: {}/{name}", path.display()),
                    }),
                    Ok(m) if m.is_dir() => diagnostics.push(Diagnostic {
                        function: "conf_files_filter_out",
                        message: format!(
                            "Directories inside directories are not supported: {}/{name}",
                            path.display()
                        ),
                    }),
                    Ok(_) => add(name, full),
                }
            }
        }
        files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut config = ModprobeConfig::default();
        for (_, path) in files {
            tracing::debug!("parsing file '{}'", path.display());
            if let Ok(bytes) = std::fs::read(&path) {
                config.parse(&bytes, &path.to_string_lossy(), diagnostics);
            }
        }
        if let Some(cmdline) = cmdline {
            config.parse_cmdline(cmdline, diagnostics);
        }
        config
    }

    /// Parses one configuration file's text.
    pub fn parse(&mut self, text: &[u8], file: &str, diagnostics: &mut Vec<Diagnostic>) {
        for (line_no, line) in logical_lines(text) {
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut rest = line.as_str();
            let Some(cmd) = next_token(&mut rest) else {
                continue;
            };
            let ok = match cmd {
                "alias" => {
                    let alias = next_token(&mut rest).and_then(underscores);
                    let module = next_token(&mut rest).and_then(underscores);
                    match (alias, module) {
                        (Some(a), Some(m)) => {
                            self.aliases.push((a, m));
                            true
                        }
                        _ => false,
                    }
                }
                "blacklist" => match next_token(&mut rest).and_then(underscores) {
                    Some(m) => {
                        self.blacklist.push(m);
                        true
                    }
                    None => false,
                },
                "options" | "install" | "remove" | "softdep" | "weakdep" => {
                    let module = next_token(&mut rest).and_then(underscores);
                    // The rest of the line after the single separator that ended the
                    // module name, extra blanks included (kmod keeps them).
                    let value = (!rest.is_empty()).then_some(rest);
                    match (module, value) {
                        (Some(m), Some(v)) => {
                            self.add(cmd, m, v);
                            true
                        }
                        _ => false,
                    }
                }
                "include" | "config" => {
                    diagnostics.push(Diagnostic {
                        function: "kmod_config_parse",
                        message: format!(
                            "{file}: command {cmd} is deprecated and not parsed anymore"
                        ),
                    });
                    true
                }
                _ => false,
            };
            if !ok {
                diagnostics.push(Diagnostic {
                    function: "kmod_config_parse",
                    message: format!(
                        "{file} line {line_no}: ignoring bad line starting with '{cmd}'"
                    ),
                });
            }
        }
    }

    fn add(&mut self, directive: &str, module: String, value: &str) {
        match directive {
            "options" => self.options.push((module, value.replace('\t', " "))),
            "install" => self.install.push((module, value.to_string())),
            "remove" => self.remove.push((module, value.to_string())),
            "softdep" => self.softdeps.push(parse_softdep(module, value)),
            _ => self.weakdeps.push((
                module,
                value
                    .split(is_c_space)
                    .filter(|w| !w.is_empty())
                    .map(String::from)
                    .collect(),
            )),
        }
    }

    /// Module options and `modprobe.blacklist=` from the kernel command line, with
    /// libkmod's tokenizer (quotes, grub's re-quoting of `"mod.p=a b"`).
    pub fn parse_cmdline(&mut self, cmdline: &str, diagnostics: &mut Vec<Diagnostic>) {
        for (module, param) in cmdline_options(cmdline) {
            if module == "modprobe" && param.starts_with("blacklist=") {
                for name in param["blacklist=".len()..].split(',') {
                    self.blacklist.push(name.to_string());
                }
                continue;
            }
            match underscores(&module) {
                Some(m) => self.options.push((m, param)),
                None => diagnostics.push(Diagnostic {
                    function: "kcmdline_parse_result",
                    message: format!(
                        "Ignoring bad option on kernel command line while parsing module name: '{module}'"
                    ),
                }),
            }
        }
    }

    /// The configuration part of `modprobe -c`, up to the index dump.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for b in &self.blacklist {
            out.push_str(&format!("blacklist {b}\n"));
        }
        for (kind, list) in [
            ("install", &self.install),
            ("remove", &self.remove),
            ("alias", &self.aliases),
            ("options", &self.options),
        ] {
            for (k, v) in list {
                out.push_str(&format!("{kind} {k} {v}\n"));
            }
        }
        for s in &self.softdeps {
            out.push_str(&format!("softdep {} {}\n", s.name, s.shown));
        }
        for (name, deps) in &self.weakdeps {
            out.push_str(&format!("weakdep {name} {}\n", deps.join(" ")));
        }
        out
    }
}

/// C's isspace in the C locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Lines joined across backslash-newline; a backslash before any other character is
/// dropped and the character kept. Each comes with the number of its last line.
/// (libkmod and depmod read configuration lines the same way.)
pub fn logical_lines(text: &[u8]) -> Vec<(usize, Vec<u8>)> {
    let mut out = Vec::new();
    let mut line = Vec::new();
    let mut line_no = 0;
    let mut bytes = text.iter().copied().peekable();
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
fn next_token<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let s = rest.trim_start_matches([' ', '\t']);
    if s.is_empty() {
        *rest = s;
        return None;
    }
    match s.find([' ', '\t']) {
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

/// `-` → `_` outside brackets; None for an unbalanced `]` or `[` (kmod's underscores()).
pub fn underscores(s: &str) -> Option<String> {
    crate::resolve::alias_normalize(s)
}

/// Splits a softdep value into its pre and post names, and renders it the way kmod's
/// `-c` does: the pre names as one run of the line from the first to the last pre
/// name, then the post names likewise, with no space between the two parts. (kmod bug,
/// kept because `-c` output is compared byte for byte; the lists used are right.)
fn parse_softdep(name: String, value: &str) -> Softdep {
    #[derive(PartialEq)]
    enum Mode {
        None,
        Pre,
        Post,
    }
    let mut mode = Mode::None;
    let mut words: Vec<(bool, &str)> = Vec::new();
    for word in value.split(is_c_space).filter(|w| !w.is_empty()) {
        match word {
            "pre:" => mode = Mode::Pre,
            "post:" => mode = Mode::Post,
            w if mode != Mode::None => words.push((mode == Mode::Pre, w)),
            _ => {}
        }
    }
    let pre: Vec<String> = words
        .iter()
        .filter(|w| w.0)
        .map(|w| w.1.to_string())
        .collect();
    let post: Vec<String> = words
        .iter()
        .filter(|w| !w.0)
        .map(|w| w.1.to_string())
        .collect();
    let span = |is_pre: bool| -> Option<String> {
        let first = words.iter().position(|w| w.0 == is_pre)?;
        let last = words.iter().rposition(|w| w.0 == is_pre)?;
        Some(
            words[first..=last]
                .iter()
                .map(|w| w.1)
                .collect::<Vec<_>>()
                .join(" "),
        )
    };
    let mut shown = String::new();
    if let Some(s) = span(true) {
        shown.push_str("pre: ");
        shown.push_str(&s);
    }
    if let Some(s) = span(false) {
        shown.push_str("post: ");
        shown.push_str(&s);
    }
    Softdep {
        name,
        pre,
        post,
        shown,
    }
}

/// `(module, param)` pairs from a kernel command line, following libkmod's state
/// machine: `mod.param[=value]` words, double quotes allowed around the value or
/// around the whole word (then moved back onto the value, as grub mangles it).
fn cmdline_options(cmdline: &str) -> Vec<(String, String)> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Ignore,
        Modname,
        Param,
        Value,
    }
    let bytes = cmdline.as_bytes();
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
            let module = String::from_utf8_lossy(&bytes[modname..param - 1]).into_owned();
            let mut text = String::from_utf8_lossy(&bytes[param..i]).into_owned();
            if let (Some(q), Some(v)) = (quote_start, value) {
                if q < modname {
                    // "mod.p=a b" → p="a b": put the opening quote back before the value.
                    // The closing quote is already at the end of the value.
                    let split = v - param;
                    text = format!("{}\"{}", &text[..split], &text[split..]);
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

    fn parse(text: &str) -> (ModprobeConfig, Vec<Diagnostic>) {
        let mut c = ModprobeConfig::default();
        let mut d = Vec::new();
        c.parse(text.as_bytes(), "t.conf", &mut d);
        (c, d)
    }

    #[test]
    fn directives() {
        let (c, d) = parse(
            "# comment\nalias my-alias snd-hda-intel\noptions snd-hda-intel  model=x\tpos=1\n\
             install foo /bin/true $CMDLINE_OPTS\nremove foo /bin/false\nblacklist evil-mod\n\
             softdep a pre: b c post: d\nweakdep e f g\ninclude /x\n  # indented\nbogus line\n\
             options lonely\nalias pci:v[a-f]-x m\nwrap \\\nme\n",
        );
        assert_eq!(
            c.aliases,
            [
                ("my_alias".into(), "snd_hda_intel".into()),
                ("pci:v[a-f]_x".into(), "m".into())
            ]
        );
        assert_eq!(
            c.options,
            [("snd_hda_intel".to_string(), " model=x pos=1".to_string())]
        );
        assert_eq!(
            c.install,
            [("foo".to_string(), "/bin/true $CMDLINE_OPTS".to_string())]
        );
        assert_eq!(c.blacklist, ["evil_mod"]);
        assert_eq!(c.softdeps[0].pre, ["b", "c"]);
        assert_eq!(c.softdeps[0].shown, "pre: b cpost: d");
        assert_eq!(
            c.weakdeps,
            [("e".to_string(), vec!["f".to_string(), "g".to_string()])]
        );
        let messages: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "t.conf: command include is deprecated and not parsed anymore",
                "t.conf line 10: ignoring bad line starting with '#'",
                "t.conf line 11: ignoring bad line starting with 'bogus'",
                "t.conf line 12: ignoring bad line starting with 'options'",
                "t.conf line 15: ignoring bad line starting with 'wrap'",
            ]
        );
    }

    #[test]
    fn softdep_rendering_quirk() {
        let s = parse_softdep("x".into(), "post: a pre: b post: c");
        assert_eq!(
            (s.pre.clone(), s.post.clone()),
            (
                vec!["b".to_string()],
                vec!["a".to_string(), "c".to_string()]
            )
        );
        assert_eq!(s.shown, "pre: bpost: a b c");
        assert_eq!(parse_softdep("x".into(), "junk").shown, "");
    }

    #[test]
    fn kernel_command_line() {
        let mut c = ModprobeConfig::default();
        let mut d = Vec::new();
        c.parse_cmdline(
            "BOOT_IMAGE=/vmlinuz root=/dev/sda1 snd-hda-intel.model=x modprobe.blacklist=a-b,c quiet x.y \"p.dyndbg=file a.c +p\"\n",
            &mut d,
        );
        assert_eq!(c.blacklist, ["a-b", "c"]);
        assert_eq!(
            c.options,
            [
                ("snd_hda_intel".to_string(), "model=x".to_string()),
                ("x".to_string(), "y".to_string()),
                ("p".to_string(), "dyndbg=\"file a.c +p\"".to_string()),
            ]
        );
    }
}
