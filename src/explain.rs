//! Why the kernel refused a module, in words the user can act on.
//!
//! kmod prints one line (`could not insert 'xfs': Unknown symbol in module, or unknown
//! parameter (see dmesg)`) and sends the user to the kernel log. After that unchanged
//! line, insmod and modprobe print what this module explains: what the kernel logged
//! about it during the attempt, which module exports a missing symbol, what a
//! parameter's declared type is, which kernel the module was built for, and whether
//! signatures are enforced and the module is signed.

use std::path::Path;

use nix::errno::Errno;

use crate::compat::io_strerror;
use crate::kernel::{self, InsertError, InsertFlags, Kernel};
use crate::modinfo::{file_fields, params, Field, Param};
use crate::module::ModuleFile;
use crate::msg;
use crate::resolve::{IndexKind, ModuleDir};

/// A module the kernel refused, and what we could find out about why.
#[derive(Debug)]
pub struct Refusal {
    pub error: InsertError,
    /// Lines to print after kmod's own message.
    pub explanation: Vec<Vec<u8>>,
}

/// Inserts a module like [`kernel::insert_module`], reading the kernel's log from
/// just before the attempt; when the kernel refuses the module, explains why.
/// `dir` is the module directory that names the modules exporting missing symbols.
pub fn insert(
    kernel: &dyn Kernel,
    path: &Path,
    params: &[u8],
    flags: InsertFlags,
    dir: Option<&ModuleDir>,
) -> Result<(), Refusal> {
    let mut log = kernel.kernel_log();
    let result = kernel::insert_module(kernel, path, params, flags);
    let Err(error) = result else {
        return Ok(());
    };
    let explanation = match &error {
        InsertError::Kernel(errno) => {
            let logged = log.as_mut().map(|l| l.read_new());
            let fields = file_fields(path).ok();
            // The kernel logs under the module's own name, which a file name like
            // dummy-6.1.0.ko does not give.
            let name = fields
                .as_deref()
                .and_then(|f| f.iter().find(|f| f.key == b"name"))
                .map(|f| f.value.clone())
                .or_else(|| crate::module::name_from_path(path.as_os_str().as_encoded_bytes()))
                .unwrap_or_default();
            Why {
                kernel,
                name: &name,
                fields: fields.as_deref(),
                path,
                params,
                errno: *errno,
                dir,
            }
            .explain(logged.as_ref().map_err(|e| io_strerror(e)))
        }
        _ => Vec::new(),
    };
    Err(Refusal { error, explanation })
}

struct Why<'a> {
    kernel: &'a dyn Kernel,
    name: &'a [u8],
    /// The module's .modinfo, when it could be read.
    fields: Option<&'a [Field]>,
    path: &'a Path,
    params: &'a [u8],
    errno: Errno,
    dir: Option<&'a ModuleDir>,
}

/// What the kernel logged about a module, parsed.
#[derive(Default)]
struct Logged<'a> {
    lines: Vec<&'a [u8]>,
    unknown_symbols: Vec<&'a [u8]>,
    /// (parameter, value)
    bad_values: Vec<(&'a [u8], &'a [u8])>,
    unknown_parameters: Vec<&'a [u8]>,
    /// (the module's, the kernel's)
    vermagic: Option<(&'a [u8], &'a [u8])>,
    disagreeing_symbols: Vec<&'a [u8]>,
    signature: bool,
}

impl<'a> Logged<'a> {
    fn parse(name: &[u8], messages: &'a [Vec<u8>]) -> Logged<'a> {
        let prefix = [name, b": "].concat();
        let mut logged = Logged::default();
        for message in messages {
            let line = &message[..];
            let signature = contains(line, b"Loading of unsigned module is rejected")
                || contains(line, b"module verification failed")
                || contains(line, b"Loading of module with unavailable key is rejected")
                || contains(line, b"Lockdown:") && contains(line, b"unsigned module");
            let Some(rest) = line.strip_prefix(&prefix[..]) else {
                if signature {
                    logged.lines.push(line);
                    logged.signature = true;
                }
                continue;
            };
            logged.lines.push(line);
            logged.signature |= signature;
            if let Some(symbol) = between(rest, b"Unknown symbol ", b" ") {
                logged.unknown_symbols.push(symbol);
            } else if let Some(value) = between(rest, b"`", b"' invalid for parameter `") {
                let param = between(rest, b"' invalid for parameter `", b"'").unwrap_or_default();
                logged.bad_values.push((param, value));
            } else if let Some(param) = between(rest, b"Unknown parameter `", b"'") {
                logged.unknown_parameters.push(param);
            } else if let Some(theirs) = between(rest, b"version magic '", b"' should be '") {
                let ours = between(rest, b"' should be '", b"'").unwrap_or_default();
                logged.vermagic = Some((theirs, ours));
            } else if let Some(symbol) = rest.strip_prefix(b"disagrees about version of symbol ") {
                logged.disagreeing_symbols.push(symbol);
            }
        }
        logged
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The bytes after `start` up to `end` (or the end of the text when `end` is a space
/// and none follows).
fn between<'a>(text: &'a [u8], start: &[u8], end: &[u8]) -> Option<&'a [u8]> {
    let at = text.windows(start.len()).position(|w| w == start)? + start.len();
    let rest = &text[at..];
    let len = rest
        .windows(end.len())
        .position(|w| w == end)
        .or_else(|| (end == b" ").then_some(rest.len()))?;
    Some(&rest[..len])
}

impl Why<'_> {
    fn explain(
        &self,
        logged: Result<&Vec<Vec<u8>>, std::borrow::Cow<'static, str>>,
    ) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let logged = match logged {
            Ok(messages) => {
                let logged = Logged::parse(self.name, messages);
                out.extend(logged.lines.iter().map(|l| msg!["kernel log: ", l]));
                Some(logged)
            }
            Err(e) => {
                out.push(msg!["could not read the kernel log (/dev/kmsg): ", e]);
                None
            }
        };
        let logged = logged.unwrap_or_default();
        self.symbols(&logged, &mut out);
        self.parameters(&logged, self.fields, &mut out);
        self.versions(&logged, self.fields, &mut out);
        if logged.signature
            || matches!(
                self.errno,
                Errno::EKEYREJECTED | Errno::ENOKEY | Errno::EBADMSG
            )
        {
            self.signature(&mut out);
        }
        out
    }

    /// Missing symbols: who exports each; or, without the log, the dependencies that
    /// are not loaded.
    fn symbols(&self, logged: &Logged, out: &mut Vec<Vec<u8>>) {
        let name = self.name;
        let modprobe = msg![
            "`modprobe ",
            name,
            "` loads ",
            name,
            " with its dependencies"
        ];
        let symbols_index = self.dir.and_then(|d| d.index(IndexKind::Symbols));
        for symbol in &logged.unknown_symbols {
            let key = [&b"symbol:"[..], symbol].concat();
            match symbols_index.and_then(|i| i.lookup(&key)) {
                Some(provider) => out.push(msg![
                    symbol,
                    " is exported by ",
                    provider,
                    ", which is not loaded: ",
                    modprobe
                ]),
                None => out.push(msg!["no module of this kernel exports ", symbol]),
            }
        }
        if logged.unknown_symbols.is_empty() && self.errno == Errno::ENOENT {
            let dependencies = self.dependencies();
            let missing: Vec<&[u8]> = dependencies
                .iter()
                .filter(|d| kernel::initstate(self.kernel, d).is_err())
                .map(|d| &d[..])
                .collect();
            if !missing.is_empty() {
                out.push(msg![
                    name,
                    " needs ",
                    missing.join(&b", "[..]),
                    " (modules.dep), not loaded: ",
                    modprobe
                ]);
            }
        }
    }

    /// The names of the modules `name` depends on, from modules.dep.
    fn dependencies(&self) -> Vec<Vec<u8>> {
        let Some(entry) = self.dir.and_then(|d| d.dep_entry(self.name)) else {
            return Vec::new();
        };
        entry
            .deps
            .iter()
            .filter_map(|p| crate::module::name_from_path(p.as_os_str().as_encoded_bytes()))
            .collect()
    }

    /// Parameters the kernel refused, with their declared types; or, without the
    /// log, the given parameters checked against the declared ones.
    fn parameters(&self, logged: &Logged, fields: Option<&[Field]>, out: &mut Vec<Vec<u8>>) {
        let declared: Vec<Param> = fields.map(|f| params(f).0).unwrap_or_default();
        let kind_of = |param: &[u8]| declared.iter().find(|p| p.name == param);
        for (param, value) in &logged.bad_values {
            match kind_of(param).and_then(|p| p.kind.as_deref()) {
                Some(kind) => out.push(msg![
                    "parameter ",
                    param,
                    " is of type ",
                    kind,
                    "; '",
                    value,
                    "' is not one"
                ]),
                None => out.push(msg!["parameter ", param, " does not take '", value, "'"]),
            }
        }
        let known = || {
            let names: Vec<&[u8]> = declared.iter().map(|p| &p.name[..]).collect();
            if names.is_empty() {
                msg![self.name, " declares no parameters"]
            } else {
                msg![self.name, "'s parameters: ", names.join(&b", "[..])]
            }
        };
        for param in &logged.unknown_parameters {
            out.push(msg![self.name, " has no parameter ", param, "; ", known()]);
        }
        let unexplained = logged.bad_values.is_empty() && logged.unknown_parameters.is_empty();
        if unexplained && matches!(self.errno, Errno::EINVAL | Errno::ENOENT) && fields.is_some() {
            for word in self.params.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
                let param = word.split(|&b| b == b'=').next().unwrap_or_default();
                match kind_of(param) {
                    None => out.push(msg![self.name, " has no parameter ", param, "; ", known()]),
                    Some(Param {
                        kind: Some(kind), ..
                    }) => out.push(msg!["parameter ", param, " is of type ", kind]),
                    Some(_) => {}
                }
            }
        }
    }

    /// Version magic and symbol versions that do not match the running kernel.
    fn versions(&self, logged: &Logged, fields: Option<&[Field]>, out: &mut Vec<Vec<u8>>) {
        if let Some((module, kernel)) = logged.vermagic {
            out.push(msg![
                self.name,
                " was built for '",
                module,
                "'; this kernel is '",
                kernel,
                "'"
            ]);
        } else if self.errno == Errno::ENOEXEC {
            let vermagic = fields
                .and_then(|f| f.iter().find(|f| f.key == b"vermagic"))
                .map(|f| f.value.clone());
            if let (Some(vermagic), Ok(release)) = (vermagic, crate::resolve::kernel_release()) {
                out.push(msg![
                    self.name,
                    " was built for '",
                    vermagic,
                    "'; this kernel is ",
                    release
                ]);
            }
        }
        for symbol in &logged.disagreeing_symbols {
            out.push(msg![
                self.name,
                " and this kernel disagree about the version of ",
                symbol,
                ": it was built against other kernel headers"
            ]);
        }
    }

    /// Signature enforcement, and what the module carries.
    fn signature(&self, out: &mut Vec<Vec<u8>>) {
        let enforce = self
            .kernel
            .module_attr(b"module", "parameters/sig_enforce")
            .ok();
        let lockdown = self.kernel.lockdown().ok().and_then(|text| {
            let at = text.iter().position(|&b| b == b'[')?;
            let len = text[at + 1..].iter().position(|&b| b == b']')?;
            Some(text[at + 1..at + 1 + len].to_vec())
        });
        match (enforce.as_deref(), lockdown.as_deref()) {
            (Some(b"Y\n"), _) => {
                out.push(b"module signatures are enforced (module.sig_enforce=Y)".to_vec())
            }
            (_, Some(mode)) if mode != b"none" => out.push(msg![
                "the kernel is locked down (",
                mode,
                "), which requires signed modules"
            ]),
            _ => {}
        }
        let signature = ModuleFile::open(self.path).ok().and_then(|file| {
            let sig = file.signature()?;
            Some((sig.signer.to_vec(), sig.hash_algo.clone()))
        });
        match signature {
            None => out.push(msg![self.name, " is not signed"]),
            Some((signer, hash)) => out.push(msg![
                self.name,
                " is signed by '",
                signer,
                "' (",
                hash,
                "), a key this kernel does not trust: `kmod verify --kernel` checks that"
            ]),
        }
    }
}
