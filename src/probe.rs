//! Everything modprobe decides: name resolution through configuration and indexes,
//! dependency and softdep expansion, options, install/remove commands, blacklist,
//! and the insert and remove algorithms, as libkmod 34.2 and modprobe do them.
//!
//! Modules live in a pool keyed like libkmod's (`name`, or `name\alias` for modules
//! reached through an alias), and per-module flags (visited, required, ignorecmd)
//! are kept on those pool entries: that is what makes kmod's output, duplicates
//! included, come out the same.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::fnmatch::fnmatch;
use crate::kernel::{self, InitState, InsertFlags, Kernel, StateError};
use crate::resolve::{alias_normalize, IndexKind, ModuleDir};

pub use crate::config::ModprobeConfig as Rules;

pub type ModId = usize;

#[derive(Debug, Default)]
struct Module {
    name: String,
    alias: Option<String>,
    path: Option<PathBuf>,
    dep_done: bool,
    deps: Vec<ModId>,
    builtin: Option<bool>,
    install: Option<Option<String>>,
    remove: Option<Option<String>>,
    visited: bool,
    required: bool,
    ignorecmd: bool,
}

/// Where diagnostics and actions go; the tool decides how to print them.
pub trait Report {
    /// A message at a syslog priority (2 = FATAL, 3 = ERROR, 4 = WARNING, 6 = INFO,
    /// 7 = DEBUG).
    fn log(&mut self, prio: i32, msg: &str);
    /// An action line (`insmod ...`, `install ...`, `builtin ...`, `rmmod ...`,
    /// `remove ...`), printed when showing.
    fn show(&mut self, line: &str);
}

const LOG_ERR: i32 = 3;

/// How to insert.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProbeFlags {
    pub force_modversion: bool,
    pub force_vermagic: bool,
    pub ignore_commands: bool,
    pub ignore_loaded: bool,
    pub dry_run: bool,
    pub fail_on_loaded: bool,
    /// Blacklist applies to modules reached by name too (`-b`), not only by alias.
    pub blacklist_names: bool,
    /// Print actions.
    pub show: bool,
}

/// The result of a successful probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probed {
    Done,
    Blacklisted,
}

/// A module's state in the running kernel, builtin included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Builtin,
    Live,
    Coming,
    Going,
}

pub struct Context<'a> {
    pub dir: ModuleDir,
    pub rules: Rules,
    pub kernel: &'a dyn Kernel,
    modules: Vec<Module>,
    by_key: HashMap<String, ModId>,
}

impl<'a> Context<'a> {
    pub fn new(dir: ModuleDir, rules: Rules, kernel: &'a dyn Kernel) -> Self {
        Context {
            dir,
            rules,
            kernel,
            modules: Vec::new(),
            by_key: HashMap::new(),
        }
    }

    fn module(&mut self, key: String, name: &str, alias: Option<&str>) -> ModId {
        if let Some(&id) = self.by_key.get(&key) {
            return id;
        }
        let id = self.modules.len();
        self.modules.push(Module {
            name: name.to_string(),
            alias: alias.map(str::to_string),
            ..Default::default()
        });
        self.by_key.insert(key, id);
        id
    }

    pub fn name(&self, id: ModId) -> &str {
        &self.modules[id].name
    }

    pub fn module_named(&mut self, name: &str) -> ModId {
        self.module(name.to_string(), name, None)
    }

    fn module_by_alias(&mut self, alias: &str, name: &str) -> ModId {
        self.module(format!("{name}\\{alias}"), name, Some(alias))
    }

    /// A module from a file path (relative paths against the cwd); the name comes
    /// from the file name. Fails like stat(2), or with EEXIST if the pool already has
    /// that module at another path.
    pub fn module_at_path(&mut self, path: &Path, report: &mut dyn Report) -> Result<ModId, Errno> {
        let abs = crate::resolve::absolute(path);
        std::fs::metadata(&abs)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(Errno::ENOENT as i32)))?;
        let name = crate::module::name_from_path(path);
        let id = self.module_named(&name);
        let m = &mut self.modules[id];
        match &m.path {
            None => m.path = Some(abs),
            Some(p) if *p == abs => {}
            Some(p) => {
                let msg = format!(
                    "kmod_module '{name}' already exists with different path: new-path='{}' old-path='{}'",
                    abs.display(),
                    p.display()
                );
                report.log(LOG_ERR, &msg);
                return Err(Errno::EEXIST);
            }
        }
        m.builtin = Some(false);
        Ok(id)
    }

    /// libkmod's lookup chain: config aliases, modules.dep, symbols, install/remove
    /// commands, modules.alias, builtin, builtin aliases; the first that yields wins.
    pub fn lookup(&mut self, given: &str) -> Result<Vec<ModId>, Errno> {
        let alias = alias_normalize(given).ok_or(Errno::EINVAL)?;
        tracing::debug!("input alias={given}, normalized={alias}");
        let matches: Vec<(String, String)> = self
            .rules
            .aliases
            .iter()
            .filter(|(pattern, _)| fnmatch(pattern, &alias))
            .cloned()
            .collect();
        if !matches.is_empty() {
            return Ok(matches
                .iter()
                .map(|(pattern, name)| self.module_by_alias(pattern, name))
                .collect());
        }
        if !alias.contains(':') {
            if let Some(line) = self
                .dir
                .index(IndexKind::Dep)
                .and_then(|i| i.lookup(&alias))
            {
                let id = self.module_named(&alias);
                self.parse_depline(id, &line);
                return Ok(vec![id]);
            }
        }
        if alias.starts_with("symbol:") {
            let found = self.search(IndexKind::Symbols, &alias);
            if !found.is_empty() {
                return Ok(found);
            }
        }
        let command = |list: &[(String, String)]| {
            list.iter()
                .find(|(name, _)| *name == alias)
                .map(|(_, cmd)| cmd.clone())
        };
        if let Some(cmd) = command(&self.rules.install) {
            let id = self.module_named(&alias);
            self.modules[id].install = Some(Some(cmd));
            return Ok(vec![id]);
        }
        if let Some(cmd) = command(&self.rules.remove) {
            let id = self.module_named(&alias);
            self.modules[id].remove = Some(Some(cmd));
            return Ok(vec![id]);
        }
        let found = self.search(IndexKind::Alias, &alias);
        if !found.is_empty() {
            return Ok(found);
        }
        if self.dir.is_builtin(&alias) {
            let id = self.module_named(&alias);
            self.modules[id].builtin = Some(true);
            return Ok(vec![id]);
        }
        let found = self.search(IndexKind::BuiltinAlias, &alias);
        for &id in &found {
            self.modules[id].builtin = Some(true);
        }
        Ok(found)
    }

    fn search(&mut self, kind: IndexKind, alias: &str) -> Vec<ModId> {
        let values = self
            .dir
            .index(kind)
            .map(|i| i.search_wildcard(alias))
            .unwrap_or_default();
        values
            .into_iter()
            .map(|v| self.module_by_alias(alias, &v.value))
            .collect()
    }

    /// Sets path and dependencies from a modules.dep line (once). Dependencies are
    /// kept in load order: the reverse of the line.
    fn parse_depline(&mut self, id: ModId, line: &str) {
        if self.modules[id].dep_done {
            return;
        }
        self.modules[id].dep_done = true;
        let Some((path, deps)) = line.split_once(':') else {
            return;
        };
        if self.modules[id].path.is_none() {
            self.modules[id].path = Some(self.dir.path().join(path));
        }
        let mut list = Vec::new();
        for dep in deps.split([' ', '\t']).filter(|d| !d.is_empty()) {
            let dep_path = self.dir.path().join(dep);
            match self.module_at_path(&dep_path, &mut NoReport) {
                Ok(d) => list.push(d),
                Err(_) => {
                    // libkmod gives up on the whole line and tries again next time.
                    self.modules[id].dep_done = false;
                    return;
                }
            }
        }
        list.reverse();
        self.modules[id].deps = list;
    }

    fn load_deps(&mut self, id: ModId) {
        if !self.modules[id].dep_done {
            let name = self.modules[id].name.clone();
            if let Some(line) = self.dir.index(IndexKind::Dep).and_then(|i| i.lookup(&name)) {
                self.parse_depline(id, &line);
            }
        }
    }

    pub fn path(&mut self, id: ModId) -> Option<PathBuf> {
        if self.modules[id].path.is_none() && !self.modules[id].dep_done {
            self.load_deps(id);
        }
        self.modules[id].path.clone()
    }

    /// Direct and indirect dependencies in load order (most basic first).
    pub fn dependencies(&mut self, id: ModId) -> Vec<ModId> {
        self.load_deps(id);
        self.modules[id].deps.clone()
    }

    pub fn is_builtin(&mut self, id: ModId) -> bool {
        if self.modules[id].builtin.is_none() {
            let builtin = self.dir.is_builtin(&self.modules[id].name);
            self.modules[id].builtin = Some(builtin);
        }
        self.modules[id].builtin == Some(true)
    }

    pub fn state(&mut self, id: ModId) -> Result<State, StateError> {
        if self.is_builtin(id) {
            return Ok(State::Builtin);
        }
        Ok(
            match kernel::initstate(self.kernel, &self.modules[id].name)? {
                InitState::Live => State::Live,
                InitState::Coming => State::Coming,
                InitState::Going => State::Going,
            },
        )
    }

    fn in_kernel(&mut self, id: ModId, report: &mut dyn Report) -> bool {
        match self.state(id) {
            Ok(State::Live | State::Builtin) => true,
            Ok(_) | Err(StateError::NotLoaded) => false,
            Err(e) => {
                report.log(LOG_ERR, &e.to_string());
                false
            }
        }
    }

    /// Options from configuration for the module's name or the alias it was found by.
    pub fn options(&self, id: ModId) -> Option<String> {
        let m = &self.modules[id];
        let parts: Vec<&str> = self
            .rules
            .options
            .iter()
            .filter(|(name, _)| *name == m.name || m.alias.as_deref() == Some(name))
            .map(|(_, o)| o.as_str())
            .filter(|o| !o.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    fn first_command(list: &[(String, String)], name: &str) -> Option<String> {
        list.iter()
            .find(|(pattern, _)| fnmatch(pattern, name))
            .map(|(_, cmd)| cmd.clone())
    }

    pub fn install_command(&mut self, id: ModId) -> Option<String> {
        if self.modules[id].install.is_none() {
            let cmd = Self::first_command(&self.rules.install, &self.modules[id].name);
            self.modules[id].install = Some(cmd);
        }
        self.modules[id].install.clone().flatten()
    }

    pub fn remove_command(&mut self, id: ModId) -> Option<String> {
        if self.modules[id].remove.is_none() {
            let cmd = Self::first_command(&self.rules.remove, &self.modules[id].name);
            self.modules[id].remove = Some(cmd);
        }
        self.modules[id].remove.clone().flatten()
    }

    /// Each softdep name resolved through the lookup chain; unresolvable ones dropped.
    fn resolve_names(&mut self, names: &[String], report: &mut dyn Report) -> Vec<ModId> {
        let mut out = Vec::new();
        for name in names {
            match self.lookup(name) {
                Ok(found) => out.extend(found),
                Err(_) => report.log(
                    LOG_ERR,
                    &format!("failed to lookup dependency '{name}', continuing anyway."),
                ),
            }
        }
        out
    }

    /// The pre and post softdeps of the first matching `softdep` line.
    pub fn softdeps(&mut self, id: ModId, report: &mut dyn Report) -> (Vec<ModId>, Vec<ModId>) {
        let name = self.modules[id].name.clone();
        let Some(softdep) = self
            .rules
            .softdeps
            .iter()
            .find(|s| fnmatch(&s.name, &name))
            .cloned()
        else {
            return (Vec::new(), Vec::new());
        };
        let pre = self.resolve_names(&softdep.pre, report);
        let post = self.resolve_names(&softdep.post, report);
        (pre, post)
    }

    fn fill_softdep(&mut self, id: ModId, list: &mut Vec<ModId>, report: &mut dyn Report) {
        let (pre, post) = self.softdeps(id, report);
        for &m in &pre {
            self.probe_list_rec(m, false, false, list, report);
        }
        list.push(id);
        self.modules[id].ignorecmd = !pre.is_empty() || !post.is_empty();
        for &m in &post {
            self.probe_list_rec(m, false, false, list, report);
        }
    }

    fn probe_list_rec(
        &mut self,
        id: ModId,
        required: bool,
        ignorecmd: bool,
        list: &mut Vec<ModId>,
        report: &mut dyn Report,
    ) {
        if self.modules[id].visited {
            tracing::debug!("Ignore module '{}': already visited", self.modules[id].name);
            return;
        }
        self.modules[id].visited = true;
        let deps = self.dependencies(id);
        if required {
            self.modules[id].required = true;
            for &d in &deps {
                self.modules[d].required = true;
            }
        }
        for &d in &deps {
            self.fill_softdep(d, list, report);
        }
        if ignorecmd {
            list.push(id);
            self.modules[id].ignorecmd = true;
        } else {
            self.fill_softdep(id, list, report);
        }
    }

    /// The modules to load for `id`, in order.
    pub fn probe_list(
        &mut self,
        id: ModId,
        ignorecmd: bool,
        report: &mut dyn Report,
    ) -> Vec<ModId> {
        for m in &mut self.modules {
            m.visited = false;
            m.required = false;
        }
        let mut list = Vec::new();
        self.probe_list_rec(id, true, ignorecmd, &mut list, report);
        list
    }

    pub fn is_blacklisted(&self, id: ModId) -> bool {
        let name = &self.modules[id].name;
        self.rules.blacklist.iter().any(|b| b == name)
    }

    /// Inserts a module with its dependencies and softdeps (kmod's
    /// `kmod_module_probe_insert_module`). Errors are errnos, as modprobe maps them.
    pub fn probe_insert(
        &mut self,
        id: ModId,
        flags: ProbeFlags,
        extra_options: Option<&str>,
        report: &mut dyn Report,
    ) -> Result<Probed, Errno> {
        if !flags.ignore_loaded && self.in_kernel(id, report) {
            return if flags.fail_on_loaded {
                Err(Errno::EEXIST)
            } else {
                Ok(Probed::Done)
            };
        }
        if self.is_blacklisted(id) && (self.modules[id].alias.is_some() || flags.blacklist_names) {
            return Ok(Probed::Blacklisted);
        }
        let list = self.probe_list(id, flags.ignore_commands, report);
        let mut result = Ok(());
        for m in list {
            let mut err: Result<(), Errno> = Ok(());
            if !flags.ignore_loaded && self.in_kernel(m, report) {
                tracing::debug!("Ignoring module '{}': already loaded", self.modules[m].name);
                err = Err(Errno::EEXIST);
            } else {
                let options =
                    concat_options(self.options(m), if m == id { extra_options } else { None });
                let cmd = self.install_command(m);
                match cmd {
                    Some(cmd) if !self.modules[m].ignorecmd => {
                        if flags.show {
                            report.show(&format!("install {cmd} {options}"));
                        }
                        if !flags.dry_run {
                            err = self.run_command(
                                m,
                                "install",
                                &cmd.replace("$CMDLINE_OPTS", &options),
                                report,
                            );
                        }
                    }
                    _ => {
                        let path = self.path(m);
                        if flags.show {
                            match &path {
                                Some(p) => {
                                    report.show(&format!("insmod {} {options}", p.display()))
                                }
                                None if matches!(self.state(m), Ok(State::Builtin)) => {
                                    report.show(&format!("builtin {}", self.modules[m].name))
                                }
                                None => {}
                            }
                        }
                        if !flags.dry_run {
                            err = self.insert_one(m, path.as_deref(), &options, flags, report);
                        }
                    }
                }
            }
            if err == Err(Errno::EEXIST) && m == id && flags.fail_on_loaded {
                result = err;
                break;
            }
            if err == Err(Errno::EEXIST) || !self.modules[m].required {
                continue;
            }
            if err.is_err() {
                result = err;
                break;
            }
        }
        result.map(|()| Probed::Done)
    }

    fn insert_one(
        &mut self,
        id: ModId,
        path: Option<&Path>,
        options: &str,
        flags: ProbeFlags,
        report: &mut dyn Report,
    ) -> Result<(), Errno> {
        let Some(path) = path else {
            let msg = format!("could not find module by name='{}'", self.modules[id].name);
            report.log(LOG_ERR, &msg);
            return Err(Errno::ENOENT);
        };
        let insert_flags = InsertFlags {
            force_vermagic: flags.force_vermagic,
            force_modversion: flags.force_modversion,
        };
        kernel::insert_module(self.kernel, path, options, insert_flags).map_err(|e| {
            report.log(
                6,
                &format!(
                    "Failed to insert module '{}': {}",
                    path.display(),
                    e.errno().desc()
                ),
            );
            if let kernel::InsertError::UnknownKernelCompression(_) = e {
                report.log(LOG_ERR, &e.to_string());
            }
            e.errno()
        })
    }

    /// Runs an install or remove command with `/bin/sh -c`, `MODPROBE_MODULE` set.
    fn run_command(
        &mut self,
        id: ModId,
        kind: &str,
        cmd: &str,
        report: &mut dyn Report,
    ) -> Result<(), Errno> {
        let name = self.modules[id].name.clone();
        let status = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(cmd)
            .env("MODPROBE_MODULE", &name)
            .status();
        match status {
            Err(e) => {
                report.log(
                    LOG_ERR,
                    &format!("Could not run {kind} command '{cmd}' for module {name}: {e}"),
                );
                Err(Errno::EINVAL)
            }
            Ok(s) if s.code() != Some(0) => {
                let code = s.code().unwrap_or(0);
                report.log(
                    LOG_ERR,
                    &format!(
                        "Error running {kind} command '{cmd}' for module {name}: retcode {code}"
                    ),
                );
                Err(Errno::EINVAL)
            }
            Ok(_) => Ok(()),
        }
    }

    pub fn module_alias(&self, id: ModId) -> Option<&str> {
        self.modules[id].alias.as_deref()
    }

    /// Weak dependencies of the first matching `weakdep` line.
    pub fn weakdeps(&mut self, id: ModId, report: &mut dyn Report) -> Vec<ModId> {
        let name = self.modules[id].name.clone();
        let Some((_, names)) = self
            .rules
            .weakdeps
            .iter()
            .find(|(pattern, _)| fnmatch(pattern, &name))
            .cloned()
        else {
            return Vec::new();
        };
        self.resolve_names(&names, report)
    }
}

/// Config options, then the command line's, joined by a space that is there even when
/// the second part is empty (kmod's trailing space, which callers' output shows).
fn concat_options(config: Option<String>, extra: Option<&str>) -> String {
    match (config, extra) {
        (None, None) => String::new(),
        (None, Some(x)) => x.to_string(),
        (Some(c), x) => format!("{c} {}", x.unwrap_or("")),
    }
}

struct NoReport;

impl Report for NoReport {
    fn log(&mut self, _: i32, _: &str) {}
    fn show(&mut self, _: &str) {}
}
