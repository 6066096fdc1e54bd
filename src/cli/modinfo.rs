//! `modinfo`: show the information embedded in modules, exactly as kmod prints it.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::config::ModprobeConfig;
use crate::diag::{Priority, Sink};
use crate::json::Json;
use crate::modinfo::{builtin_fields, file_fields, params, Field, Param};
use crate::module::{has_module_suffix, name_from_path, ModuleError};
use crate::msg;
use crate::resolve::{self, absolute, Found, ModuleDir, ALIAS_CHAIN};

use super::{flag, help_or_version, json_flag, module_dir, parse, short_name, value};

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
        .arg(json_flag("Print every field as JSON (see modinfo(8))"))
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
    let names: Vec<&OsStr> = m
        .get_many::<OsString>("modules")
        .map(|v| v.map(OsString::as_os_str).collect())
        .unwrap_or_default();
    let sink = Sink::new(prog, Priority::Warning as i32, false);
    if names.is_empty() {
        sink.error("missing module or filename.");
        return 1;
    }
    if m.get_flag("json") && (selected_field(&m).is_some() || m.get_flag("null")) {
        sink.error("--json prints every field: no -F, -a, -d, -l, -p, -n or -0 with it.");
        return 1;
    }
    let Some(dir) = module_dir(&m, "basedir", "set-version", &sink) else {
        return 1;
    };

    let stdout = io::stdout();
    let mut printer = Printer {
        sink: &sink,
        out: BufWriter::new(stdout.lock()),
        field: selected_field(&m),
        separator: if m.get_flag("null") { b'\0' } else { b'\n' },
        dir: &dir,
        json: m.get_flag("json").then(Vec::new),
    };
    let by_name = m.get_flag("modname");
    let mut ok = true;
    for name in names {
        ok &= if by_name {
            printer.by_name(name.as_bytes())
        } else if is_module_file(name) {
            printer.by_path(name)
        } else {
            printer.by_alias(name.as_bytes())
        };
    }
    if let Some(records) = printer.json.take() {
        let _ = printer.out.write_all(&Json::Array(records).to_line());
    }
    if printer.out.flush().is_err() {
        return 1;
    }
    i32::from(!ok)
}

/// `modinfo --json`'s object for one module: `name` (for a module without a file,
/// whose name modinfo prints first), `filename`, then each field in order of first
/// appearance as an array of its values in file order, and `parm` as objects with
/// the parameter's name, type and description (null when not declared).
fn json_record(header: Option<&[u8]>, filename: &[u8], fields: &[Field]) -> Json {
    let mut members: Vec<(Cow<'static, [u8]>, Json)> = Vec::new();
    let mut values: Vec<(Vec<u8>, Vec<Json>)> = Vec::new();
    if let Some(name) = header {
        values.push((b"name".to_vec(), vec![Json::text(name)]));
    }
    for f in fields
        .iter()
        .filter(|f| f.key != b"parm" && f.key != b"parmtype")
    {
        let value = Json::text(&f.value[..]);
        match values.iter_mut().find(|(k, _)| *k == f.key) {
            Some((_, list)) => list.push(value),
            None => values.push((f.key.clone(), vec![value])),
        }
    }
    let mut values = values.into_iter().peekable();
    if let Some((_, name)) = values.next_if(|(k, _)| header.is_some() && k == b"name") {
        members.push((Cow::Borrowed(b"name"), Json::Array(name)));
    }
    members.push((Cow::Borrowed(b"filename"), Json::text(filename)));
    members.extend(values.map(|(k, v)| (Cow::Owned(k), Json::Array(v))));
    let (params, _) = params(fields);
    if !params.is_empty() {
        let params = params.into_iter().map(|p| {
            Json::obj(vec![
                ("name", Json::text(p.name)),
                ("type", Json::opt_text(p.kind)),
                ("description", Json::opt_text(p.description)),
            ])
        });
        members.push((Cow::Borrowed(b"parm"), Json::Array(params.collect())));
    }
    Json::Object(members)
}

/// The field to print: the last of `-a -d -l -p -n -F` on the command line wins.
fn selected_field(m: &ArgMatches) -> Option<Vec<u8>> {
    let mut choices: Vec<(usize, Vec<u8>)> = Vec::new();
    for (id, field) in [
        ("author", "author"),
        ("description", "description"),
        ("license", "license"),
        ("parameters", "parm"),
        ("filename", "filename"),
    ] {
        if m.get_flag(id) {
            if let Some(i) = m.indices_of(id).and_then(|mut i| i.next_back()) {
                choices.push((i, field.as_bytes().to_vec()));
            }
        }
    }
    if let (Some(indices), Some(values)) = (m.indices_of("field"), m.get_many::<OsString>("field"))
    {
        choices.extend(indices.zip(values.map(|v| v.as_bytes().to_vec())));
    }
    choices.into_iter().max_by_key(|(i, _)| *i).map(|(_, f)| f)
}

/// A module file argument: a module file name ending that names an existing regular file.
fn is_module_file(arg: &OsStr) -> bool {
    has_module_suffix(arg.as_bytes()) && std::fs::metadata(arg).is_ok_and(|m| m.is_file())
}

struct Printer<'a, W: Write> {
    sink: &'a Sink,
    out: W,
    field: Option<Vec<u8>>,
    separator: u8,
    dir: &'a ModuleDir,
    /// With `--json`, the records, printed as one array at the end.
    json: Option<Vec<Json>>,
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
    fn error(&mut self, msg: Vec<u8>) {
        // Keep stdout and stderr in order on a terminal.
        let _ = self.out.flush();
        self.sink.log_bytes(Priority::Error, msg);
    }

    fn by_path(&mut self, arg: &OsStr) -> bool {
        let name = name_from_path(arg.as_bytes()).unwrap_or_default();
        self.show(&name, Source::File(absolute(Path::new(arg))))
    }

    fn by_name(&mut self, arg: &[u8]) -> bool {
        match resolve::lookup_name(self.dir, arg) {
            Some(found) => self.show_found(found),
            None => {
                self.error(msg!["Module name ", arg, " not found."]);
                false
            }
        }
    }

    fn by_alias(&mut self, arg: &[u8]) -> bool {
        // kmod's modinfo reads no modprobe.d configuration.
        let found = match resolve::lookup(self.dir, &ModprobeConfig::default(), arg, &ALIAS_CHAIN) {
            Ok(found) => found,
            Err(_) => {
                self.error(msg!["Module alias ", arg, " not found."]);
                return false;
            }
        };
        if found.is_empty() {
            self.error(msg!["Module ", arg, " not found."]);
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
        let builtin = found.builtin() || self.dir.is_builtin(&found.name);
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
    fn show(&mut self, name: &[u8], source: Source) -> bool {
        let field = self.field.clone();
        let field = field.as_deref();
        let path = match &source {
            Source::File(p) => Some(p.clone()),
            Source::Lookup { path, .. } => path.clone(),
        };
        let filename = path
            .as_ref()
            .map_or(&b"(builtin)"[..], |p| p.as_os_str().as_bytes())
            .to_vec();
        if self.json.is_none() {
            // kmod calls a module without a path builtin, whatever the index says.
            if path.is_none() {
                match field {
                    None => self.write_padded("name:", name),
                    Some(b"name") => self.write_value(name),
                    Some(_) => {}
                }
            }
            match field {
                Some(b"filename") => {
                    self.write_value(&filename);
                    return true;
                }
                None => self.write_padded("filename:", &filename),
                Some(_) => {}
            }
        }
        let builtin = matches!(source, Source::Lookup { builtin: true, .. });
        let fields = match self.fields(name, builtin, path.as_deref()) {
            Ok(fields) => fields,
            Err(()) => return false,
        };
        match &mut self.json {
            Some(records) => {
                let header = path.is_none().then_some(name);
                let record = json_record(header, &filename, fields.as_deref().unwrap_or_default());
                records.push(record);
            }
            None => {
                if let Some(fields) = fields {
                    self.print_fields(field, &fields);
                }
            }
        }
        true
    }

    /// The module's fields: from modules.builtin.modinfo for a builtin module, else
    /// from its file. None when there are none to show (an old kernel without
    /// modules.builtin.modinfo, or neither a file nor builtin: kmod prints the header
    /// only); Err after reporting why they cannot be read.
    fn fields(
        &mut self,
        name: &[u8],
        builtin: bool,
        path: Option<&Path>,
    ) -> Result<Option<Vec<Field>>, ()> {
        let result = if builtin {
            match builtin_fields(self.dir, name) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                other => other.map_err(|e| {
                    ModuleError::Io(self.dir.path().join("modules.builtin.modinfo"), e)
                }),
            }
        } else {
            let Some(path) = path else {
                return Ok(None);
            };
            file_fields(path)
        };
        match result {
            Ok(fields) => Ok(Some(fields)),
            Err(e) => {
                self.error(msg![
                    "could not get modinfo from '",
                    name,
                    "': ",
                    e.message()
                ]);
                Err(())
            }
        }
    }

    fn print_fields(&mut self, field: Option<&[u8]>, fields: &[Field]) {
        if field == Some(b"parm") {
            for p in self.params(fields) {
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
            for f in fields.iter().filter(|f| f.key == field) {
                self.write_value(&f.value);
            }
            return;
        }
        let params = self.params(fields);
        for f in fields {
            if f.key == b"parm" || f.key == b"parmtype" {
                continue;
            }
            if self.separator == 0 {
                let _ = self.out.write_all(&f.key);
                let _ = self.out.write_all(b"=");
                self.write_value(&f.value);
                continue;
            }
            let _ = self.out.write_all(&f.key);
            let _ = self.out.write_all(b":");
            let pad = 15usize.saturating_sub(f.key.len());
            let _ = self.out.write_all(&b"               "[..pad]);
            self.write_value(&f.value);
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

    /// The merged parameters; each `parm` without a `:` is reported, as kmod does.
    fn params(&mut self, fields: &[Field]) -> Vec<Param> {
        let (params, invalid) = params(fields);
        for f in invalid {
            self.error(msg![
                "Found invalid \"",
                f.key,
                "=",
                f.value,
                "\": missing ':'"
            ]);
        }
        params
    }
}
