//! `modinfo`: show the information embedded in modules, exactly as kmod prints it.

use std::ffi::OsString;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};

use kmod_rs::elf::ElfError;
use kmod_rs::module::{has_module_suffix, ModuleError, ModuleFile};
use kmod_rs::resolve::{absolute, Found, ModuleDir};
use kmod_rs::signature::hex_wrapped;

use super::{flag, help_or_version, log, parse, short_name, value};

const USAGE: &[&str] = &["[options] <modulename|filename> [args]"];

pub fn command() -> Command {
    Command::new("modinfo")
        .about("Show information about Linux kernel modules")
        .arg(flag("author", 'a', "author", "Print only 'author'"))
        .arg(flag(
            "description",
            'd',
            "description",
            "Print only 'description'",
        ))
        .arg(flag("license", 'l', "license", "Print only 'license'"))
        .arg(flag("parameters", 'p', "parameters", "Print only 'parm'"))
        .arg(flag("filename", 'n', "filename", "Print only 'filename'"))
        .arg(flag("null", '0', "null", "Use \\0 instead of \\n"))
        .arg(flag(
            "modname",
            'm',
            "modname",
            "Handle argument as module name instead of alias or filename",
        ))
        .arg(value(
            "field",
            'F',
            "field",
            "FIELD",
            "Print only provided FIELD",
        ))
        .arg(value(
            "set-version",
            'k',
            "set-version",
            "VERSION",
            "Use VERSION instead of `uname -r`",
        ))
        .arg(value(
            "basedir",
            'b',
            "basedir",
            "DIR",
            "Use DIR as filesystem root for /lib/modules",
        ))
        .arg(flag("version", 'V', "version", "Show version"))
        .arg(flag("help", 'h', "help", "Show this help"))
        .arg(
            Arg::new("modules")
                .action(ArgAction::Append)
                .value_parser(clap::value_parser!(OsString)),
        )
}

pub fn run(argv0: &str, args: Vec<OsString>) -> i32 {
    let prog = short_name(argv0);
    let cmd = command();
    let m = match parse(cmd.clone(), argv0, args) {
        Ok(m) => m,
        Err(code) => return code,
    };
    if let Some(code) = help_or_version(&m, &cmd, prog, USAGE, 28) {
        return code;
    }
    let names: Vec<String> = m
        .get_many::<OsString>("modules")
        .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    if names.is_empty() {
        log(prog, "ERROR", "missing module or filename.");
        return 1;
    }
    let root = last_value(&m, "basedir");
    let version = last_value(&m, "set-version");
    let dir = match ModuleDir::for_kernel(root.as_deref(), version.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            log(prog, "ERROR", format_args!("uname() failed: {e}"));
            return 1;
        }
    };

    let stdout = io::stdout();
    let mut printer = Printer {
        prog,
        out: BufWriter::new(stdout.lock()),
        field: selected_field(&m),
        separator: if m.get_flag("null") { b'\0' } else { b'\n' },
        dir: &dir,
    };
    let by_name = m.get_flag("modname");
    let mut ok = true;
    for name in &names {
        ok &= if by_name {
            printer.by_name(name)
        } else if is_module_file(name) {
            printer.by_path(name)
        } else {
            printer.by_alias(name)
        };
    }
    if printer.out.flush().is_err() {
        return 1;
    }
    i32::from(!ok)
}

fn last_value(m: &ArgMatches, id: &str) -> Option<String> {
    m.get_many::<String>(id)
        .and_then(|mut v| v.next_back().cloned())
}

/// The field to print: the last of `-a -d -l -p -n -F` on the command line wins.
fn selected_field(m: &ArgMatches) -> Option<String> {
    let mut choices: Vec<(usize, String)> = Vec::new();
    for (id, field) in [
        ("author", "author"),
        ("description", "description"),
        ("license", "license"),
        ("parameters", "parm"),
        ("filename", "filename"),
    ] {
        if m.get_flag(id) {
            if let Some(i) = m.indices_of(id).and_then(|mut i| i.next_back()) {
                choices.push((i, field.to_string()));
            }
        }
    }
    if let (Some(indices), Some(values)) = (m.indices_of("field"), m.get_many::<String>("field")) {
        choices.extend(indices.zip(values.cloned()));
    }
    choices.into_iter().max_by_key(|(i, _)| *i).map(|(_, f)| f)
}

/// A module file argument: a module file name ending that names an existing regular file.
fn is_module_file(arg: &str) -> bool {
    has_module_suffix(arg) && std::fs::metadata(arg).is_ok_and(|m| m.is_file())
}

struct Printer<'a, W: Write> {
    prog: &'a str,
    out: W,
    field: Option<String>,
    separator: u8,
    dir: &'a ModuleDir,
}

/// Where a module's information comes from.
enum Source {
    File(PathBuf),
    /// Found by lookup: its modules.dep path if any, and whether it is builtin.
    Lookup {
        path: Option<PathBuf>,
        builtin: bool,
    },
}

impl<W: Write> Printer<'_, W> {
    fn error(&mut self, msg: impl std::fmt::Display) {
        // Keep stdout and stderr in order on a terminal.
        let _ = self.out.flush();
        log(self.prog, "ERROR", msg);
    }

    fn by_path(&mut self, arg: &str) -> bool {
        let name = kmod_rs::module::name_from_path(Path::new(arg));
        self.show(&name, Source::File(absolute(Path::new(arg))))
    }

    fn by_name(&mut self, arg: &str) -> bool {
        match self.dir.lookup_name(arg) {
            Some(found) => self.show_found(found),
            None => {
                self.error(format_args!("Module name {arg} not found."));
                false
            }
        }
    }

    fn by_alias(&mut self, arg: &str) -> bool {
        let found = match self.dir.lookup(arg) {
            Ok(found) => found,
            Err(_) => {
                self.error(format_args!("Module alias {arg} not found."));
                return false;
            }
        };
        if found.is_empty() {
            self.error(format_args!("Module {arg} not found."));
            return false;
        }
        let mut ok = true;
        for f in found {
            ok &= self.show_found(f);
        }
        ok
    }

    fn show_found(&mut self, found: Found) -> bool {
        let path = self.dir.dep_entry(&found.name).map(|d| d.path);
        let builtin = found.builtin || self.dir.is_builtin(&found.name);
        self.show(&found.name, Source::Lookup { path, builtin })
    }

    fn write_padded(&mut self, key: &str, value: &[u8]) {
        let _ = write!(self.out, "{key:<16}");
        let _ = self.out.write_all(value);
        let _ = self.out.write_all(&[self.separator]);
    }

    fn write_value(&mut self, value: &[u8]) {
        let _ = self.out.write_all(value);
        let _ = self.out.write_all(&[self.separator]);
    }

    /// One module's record, following kmod's modinfo field by field.
    fn show(&mut self, name: &str, source: Source) -> bool {
        let field = self.field.clone();
        let field = field.as_deref();
        let path = match &source {
            Source::File(p) => Some(p.clone()),
            Source::Lookup { path, .. } => path.clone(),
        };
        // kmod calls a module without a path builtin, whatever the index says.
        let no_path = path.is_none();
        if no_path {
            match field {
                None => self.write_padded("name:", name.as_bytes()),
                Some("name") => self.write_value(name.as_bytes()),
                Some(_) => {}
            }
        }
        let filename = path.as_ref().map_or_else(
            || b"(builtin)".to_vec(),
            |p| p.as_os_str().as_encoded_bytes().to_vec(),
        );
        match field {
            Some("filename") => {
                self.write_value(&filename);
                return true;
            }
            None => self.write_padded("filename:", &filename),
            Some(_) => {}
        }

        let builtin = matches!(source, Source::Lookup { builtin: true, .. });
        let entries = if builtin {
            match self.dir.builtin_modinfo(name) {
                Ok(strings) => strings
                    .into_iter()
                    .map(|s| split_entry(&s))
                    .collect::<Vec<_>>(),
                // An old kernel without modules.builtin.modinfo: name and filename only.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return true,
                Err(e) => {
                    self.error(format_args!(
                        "could not get modinfo from '{name}': {}",
                        ModuleError::Io(self.dir.path().join("modules.builtin.modinfo"), e)
                    ));
                    return false;
                }
            }
        } else {
            let Some(path) = path else {
                // Neither a file nor builtin: kmod prints the builtin header and stops.
                return true;
            };
            match module_entries(&path) {
                Ok(entries) => entries,
                Err(e) => {
                    self.error(format_args!("could not get modinfo from '{name}': {e}"));
                    return false;
                }
            }
        };
        self.print_entries(field, &entries);
        true
    }

    fn print_entries(&mut self, field: Option<&str>, entries: &[Entry]) {
        if field == Some("parm") {
            let params = self.collect_params(entries);
            for p in params {
                let line = match (&p.description, &p.kind) {
                    (None, kind) => [
                        &p.name[..],
                        b": (",
                        kind.as_deref().unwrap_or_default(),
                        b")",
                    ]
                    .concat(),
                    (Some(d), Some(kind)) => [&p.name[..], b":", d, b" (", kind, b")"].concat(),
                    (Some(d), None) => [&p.name[..], b":", d].concat(),
                };
                self.write_value(&line);
            }
            return;
        }
        if let Some(field) = field {
            for (key, value) in entries {
                if key == field.as_bytes() {
                    self.write_value(value);
                }
            }
            return;
        }
        let params = self.collect_params(entries);
        for (key, value) in entries {
            if key == b"parm" || key == b"parmtype" {
                continue;
            }
            if self.separator == 0 {
                let _ = self.out.write_all(key);
                let _ = self.out.write_all(b"=");
                self.write_value(value);
                continue;
            }
            let _ = self.out.write_all(key);
            let _ = self.out.write_all(b":");
            let pad = 15usize.saturating_sub(key.len());
            let _ = self.out.write_all(&b"               "[..pad]);
            self.write_value(value);
        }
        for p in params {
            let value = match (&p.description, &p.kind) {
                (None, kind) => [&p.name[..], b":", kind.as_deref().unwrap_or_default()].concat(),
                (Some(d), Some(kind)) => [&p.name[..], b":", d, b" (", kind, b")"].concat(),
                (Some(d), None) => [&p.name[..], b":", d].concat(),
            };
            self.write_padded("parm:", &value);
        }
    }

    /// `parm` and `parmtype` entries merged by parameter name, in reverse order of
    /// first appearance (kmod prepends each new name to its list).
    fn collect_params(&mut self, entries: &[Entry]) -> Vec<Param> {
        let mut params: Vec<Param> = Vec::new();
        for (key, value) in entries {
            let is_parm = key == b"parm";
            if !is_parm && key != b"parmtype" {
                continue;
            }
            let Some(colon) = value.iter().position(|&b| b == b':') else {
                self.error(format_args!(
                    "Found invalid \"{}={}\": missing ':'",
                    String::from_utf8_lossy(key),
                    String::from_utf8_lossy(value)
                ));
                continue;
            };
            let (pname, text) = (&value[..colon], value[colon + 1..].to_vec());
            let param = match params.iter_mut().position(|p| p.name == pname) {
                Some(i) => &mut params[i],
                None => {
                    params.push(Param {
                        name: pname.to_vec(),
                        description: None,
                        kind: None,
                    });
                    params.last_mut().expect("just pushed")
                }
            };
            if is_parm {
                param.description = Some(text);
            } else {
                param.kind = Some(text);
            }
        }
        params.reverse();
        params
    }
}

/// A modinfo key and value, as raw bytes.
type Entry = (Vec<u8>, Vec<u8>);

struct Param {
    name: Vec<u8>,
    description: Option<Vec<u8>>,
    kind: Option<Vec<u8>>,
}

/// Splits a modinfo string at its first `=`; a string without one is key and value.
fn split_entry(s: &[u8]) -> (Vec<u8>, Vec<u8>) {
    match s.iter().position(|&b| b == b'=') {
        Some(eq) => (s[..eq].to_vec(), s[eq + 1..].to_vec()),
        None => (s.to_vec(), s.to_vec()),
    }
}

/// A module file's `.modinfo` entries followed by its signature entries.
fn module_entries(path: &Path) -> Result<Vec<Entry>, ModuleError> {
    let file = ModuleFile::open(path)?;
    let elf = file.elf()?;
    let modinfo = elf
        .modinfo()
        .map_err(|e| ModuleError::Elf(path.to_path_buf(), e))?;
    // kmod prints only the filename and signature here and exits 0; the kernel refuses
    // such a module, so it is an error like a missing section (nothing real has one).
    if modinfo.is_empty() {
        return Err(ModuleError::Elf(
            path.to_path_buf(),
            ElfError::EmptySection(".modinfo"),
        ));
    }
    let mut entries: Vec<Entry> = modinfo
        .into_iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    if let Some(sig) = file.signature() {
        // kmod prints these as C strings: anything after a NUL is lost.
        let c_str = |b: &[u8]| b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())].to_vec();
        entries.push((b"sig_id".to_vec(), sig.id_type.name().as_bytes().to_vec()));
        entries.push((b"signer".to_vec(), c_str(sig.signer)));
        entries.push((b"sig_key".to_vec(), hex_wrapped(sig.key_id).into_bytes()));
        entries.push((b"sig_hashalgo".to_vec(), c_str(sig.hash_algo.as_bytes())));
        entries.push((
            b"signature".to_vec(),
            hex_wrapped(sig.signature).into_bytes(),
        ));
    }
    Ok(entries)
}
