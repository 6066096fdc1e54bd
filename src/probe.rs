//! Everything modprobe decides: name resolution through configuration and indexes,
//! dependency and softdep expansion, options, install/remove commands, blacklist,
//! and the insert and remove algorithms, as libkmod 34.2 and modprobe do them.
//!
//! Modules live in a pool keyed like libkmod's (`name`, or `name\alias` for modules
//! reached through an alias), and per-module flags (visited, required, ignorecmd)
//! are kept on those pool entries: that is what makes kmod's output, duplicates
//! included, come out the same. Names, options and commands are bytes throughout.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::compat::{io_strerror, strerror};
use crate::config::{Command, ModprobeConfig};
use crate::diag::{Fatal, Priority, Sink};
use crate::explain;
use crate::json::Json;
use crate::kernel::{self, InitState, InsertFlags, Kernel, StateError};
use crate::msg;
use crate::resolve::{self, ModuleDir, Step, ALIAS_CHAIN};

pub type ModId = usize;

#[derive(Debug, Default)]
struct Module {
    name: Vec<u8>,
    alias: Option<Vec<u8>>,
    path: Option<PathBuf>,
    dep_done: bool,
    deps: Vec<ModId>,
    builtin: Option<bool>,
    /// Install and remove commands (by [`Command`] index), once known.
    commands: [Option<Option<Vec<u8>>>; 2],
    visited: bool,
    required: bool,
    ignorecmd: bool,
}

/// A step modprobe takes, or shows with `-v`/`--show-depends`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// A module file inserted with these options.
    Insmod { path: &'a Path, options: &'a [u8] },
    /// A module built into the kernel: nothing to do.
    Builtin { name: &'a [u8] },
    /// An install command run instead of inserting (options before substitution).
    Install {
        command: &'a [u8],
        options: &'a [u8],
    },
    /// A module removed.
    Rmmod { name: &'a [u8] },
    /// A remove command run instead of removing.
    Remove { command: &'a [u8] },
}

impl Action<'_> {
    /// The line kmod prints for it.
    pub fn line(&self) -> Vec<u8> {
        match self {
            Action::Insmod { path, options } => msg!["insmod ", path, " ", options],
            Action::Builtin { name } => msg!["builtin ", name],
            Action::Install { command, options } => msg!["install ", command, " ", options],
            Action::Rmmod { name } => msg!["rmmod ", name],
            Action::Remove { command } => msg!["remove ", command],
        }
    }

    /// kmod flushes its output before removals, so that what a remove command prints
    /// comes after the line announcing it.
    pub fn flushed(&self) -> bool {
        matches!(self, Action::Rmmod { .. } | Action::Remove { .. })
    }

    /// The step as JSON (`modprobe --show-depends --json`).
    pub fn json(&self) -> Json {
        match self {
            Action::Insmod { path, options } => Json::obj(vec![
                ("action", Json::text("insmod")),
                ("path", Json::text(path.as_os_str().as_bytes())),
                ("options", Json::text(*options)),
            ]),
            Action::Builtin { name } => Json::obj(vec![
                ("action", Json::text("builtin")),
                ("name", Json::text(*name)),
            ]),
            Action::Install { command, options } => Json::obj(vec![
                ("action", Json::text("install")),
                ("command", Json::text(*command)),
                ("options", Json::text(*options)),
            ]),
            Action::Rmmod { name } => Json::obj(vec![
                ("action", Json::text("rmmod")),
                ("name", Json::text(*name)),
            ]),
            Action::Remove { command } => Json::obj(vec![
                ("action", Json::text("remove")),
                ("command", Json::text(*command)),
            ]),
        }
    }
}

/// Where modprobe's actions are shown.
pub trait Actions {
    fn show(&mut self, action: Action<'_>);
}

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

/// How to remove (`modprobe -r`).
#[derive(Debug, Clone, Copy)]
pub struct RemoveFlags {
    pub ignore_commands: bool,
    /// `-D`: act as if nothing were loaded.
    pub ignore_loaded: bool,
    pub dry_run: bool,
    /// `--first-time`: a module that is not loaded is an error.
    pub first_time: bool,
    /// `--remove-holders`: remove the modules holding it first.
    pub remove_holders: bool,
    /// `-f`: `delete_module` with O_TRUNC.
    pub force: bool,
    /// `--wait`: retry a busy module with back-off for this long.
    pub wait: Duration,
    /// Print actions.
    pub show: bool,
    /// The priority of messages after which modprobe gives up: FATAL, or WARNING
    /// with `-a` (kmod's `LOG`).
    pub fail_priority: Priority,
}

/// Why a removal failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RemoveError {
    /// A FATAL message was shown: modprobe stops.
    #[error(transparent)]
    Stopped(#[from] Fatal),
    #[error("{}", strerror(*.0))]
    Failed(Errno),
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
    pub config: ModprobeConfig,
    pub kernel: &'a dyn Kernel,
    sink: Sink,
    /// Environment for install and remove commands (a nested modprobe inherits
    /// options through `MODPROBE_OPTIONS`).
    command_env: Vec<(OsString, OsString)>,
    /// Why the kernel refused the last module it refused ([`Context::take_explanation`]).
    explanation: Vec<Vec<u8>>,
    modules: Vec<Module>,
    by_key: HashMap<Vec<u8>, ModId>,
}

impl<'a> Context<'a> {
    pub fn new(dir: ModuleDir, config: ModprobeConfig, kernel: &'a dyn Kernel, sink: Sink) -> Self {
        Context {
            dir,
            config,
            kernel,
            sink,
            command_env: Vec::new(),
            explanation: Vec::new(),
            modules: Vec::new(),
            by_key: HashMap::new(),
        }
    }

    /// What explains the kernel's last refusal of a module, to print after the
    /// failure is reported (see [`explain`]).
    pub fn take_explanation(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.explanation)
    }

    /// Sets an environment variable for the commands this context runs.
    pub fn set_command_env(&mut self, key: impl Into<OsString>, value: impl Into<OsString>) {
        self.command_env.push((key.into(), value.into()));
    }

    fn module(&mut self, key: Vec<u8>, name: &[u8], alias: Option<&[u8]>) -> ModId {
        if let Some(&id) = self.by_key.get(&key) {
            return id;
        }
        let id = self.modules.len();
        self.modules.push(Module {
            name: name.to_vec(),
            alias: alias.map(<[u8]>::to_vec),
            ..Default::default()
        });
        self.by_key.insert(key, id);
        id
    }

    pub fn name(&self, id: ModId) -> &[u8] {
        &self.modules[id].name
    }

    pub fn module_named(&mut self, name: &[u8]) -> ModId {
        self.module(name.to_vec(), name, None)
    }

    fn module_by_alias(&mut self, alias: &[u8], name: &[u8]) -> ModId {
        let key = [name, b"\\", alias].concat();
        self.module(key, name, Some(alias))
    }

    /// A module from a file path (relative paths against the cwd); the name comes
    /// from the file name. Fails like stat(2), or with EEXIST if the pool already has
    /// that module at another path.
    pub fn module_at_path(&mut self, path: &Path) -> Result<ModId, Errno> {
        let abs = resolve::absolute(path);
        std::fs::metadata(&abs).map_err(|e| crate::compat::io_errno(&e))?;
        let name =
            crate::module::name_from_path(path.as_os_str().as_bytes()).ok_or(Errno::ENOENT)?;
        let id = self.module_named(&name);
        let m = &mut self.modules[id];
        match &m.path {
            None => m.path = Some(abs),
            Some(p) if *p == abs => {}
            Some(p) => {
                self.sink.log_bytes(
                    Priority::Error,
                    msg![
                        "kmod_module '",
                        name,
                        "' already exists with different path: new-path='",
                        abs,
                        "' old-path='",
                        p,
                        "'"
                    ],
                );
                return Err(Errno::EEXIST);
            }
        }
        m.builtin = Some(false);
        Ok(id)
    }

    /// libkmod's lookup chain ([`resolve::lookup`]), its results made pool modules
    /// with what each step already told about them.
    pub fn lookup(&mut self, given: &[u8]) -> Result<Vec<ModId>, Errno> {
        let found = resolve::lookup(&self.dir, &self.config, given, &ALIAS_CHAIN)
            .map_err(|_| Errno::EINVAL)?;
        let mut ids = Vec::with_capacity(found.len());
        for f in found {
            let id = match (&f.alias, f.step) {
                (Some(alias), _) => self.module_by_alias(alias, &f.name),
                (None, _) => self.module_named(&f.name),
            };
            match f.step {
                Step::ModulesDep => self.load_deps(id),
                Step::Commands => {
                    // An install command wins; else the step found a remove command.
                    let kind = match self.config.command(Command::Install, &f.name) {
                        Some(_) => Command::Install,
                        None => Command::Remove,
                    };
                    let cmd = self.config.command(kind, &f.name).map(<[u8]>::to_vec);
                    self.modules[id].commands[kind as usize] = Some(cmd);
                }
                Step::Builtin | Step::BuiltinAliases => self.modules[id].builtin = Some(true),
                _ => {}
            }
            ids.push(id);
        }
        Ok(ids)
    }

    /// Sets path and dependencies from the module's modules.dep line (once).
    /// Dependencies are kept in load order: the reverse of the line.
    fn load_deps(&mut self, id: ModId) {
        if self.modules[id].dep_done {
            return;
        }
        let Some(line) = self
            .dir
            .dep_line(&self.modules[id].name)
            .map(<[u8]>::to_vec)
        else {
            return;
        };
        self.modules[id].dep_done = true;
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return;
        };
        if self.modules[id].path.is_none() {
            self.modules[id].path = Some(self.dir.join(&line[..colon]));
        }
        let mut list = Vec::new();
        for dep in resolve::dep_words(&line[colon + 1..]) {
            let dep_path = self.dir.join(dep);
            match self.module_at_path(&dep_path) {
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

    pub fn path(&mut self, id: ModId) -> Option<PathBuf> {
        if self.modules[id].path.is_none() {
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

    fn in_kernel(&mut self, id: ModId) -> bool {
        match self.state(id) {
            Ok(State::Live | State::Builtin) => true,
            Ok(_) | Err(StateError::NotLoaded) => false,
            Err(e) => {
                self.sink.log_bytes(Priority::Error, e.message());
                false
            }
        }
    }

    /// Options from configuration for the module's name or the alias it was found by.
    pub fn options(&self, id: ModId) -> Option<Vec<u8>> {
        let m = &self.modules[id];
        self.config.options_for(&m.name, m.alias.as_deref())
    }

    /// The module's command of a kind: one the lookup found it by, else the first
    /// line of that kind matching its name.
    pub fn command(&mut self, id: ModId, kind: Command) -> Option<Vec<u8>> {
        let m = &mut self.modules[id];
        m.commands[kind as usize]
            .get_or_insert_with(|| {
                self.config
                    .matching_command(kind, &m.name)
                    .map(<[u8]>::to_vec)
            })
            .clone()
    }

    /// The pre and post softdeps of the first matching `softdep` line, each name
    /// resolved through the lookup chain (unresolvable ones dropped).
    pub fn softdeps(&mut self, id: ModId) -> (Vec<ModId>, Vec<ModId>) {
        let Some(softdep) = self
            .config
            .matching_softdep(&self.modules[id].name)
            .cloned()
        else {
            return (Vec::new(), Vec::new());
        };
        (
            self.resolve_names(&softdep.pre),
            self.resolve_names(&softdep.post),
        )
    }

    fn resolve_names(&mut self, names: &[Vec<u8>]) -> Vec<ModId> {
        let mut out = Vec::new();
        for name in names {
            match self.lookup(name) {
                Ok(found) => out.extend(found),
                Err(_) => self.sink.log_bytes(
                    Priority::Error,
                    msg![
                        "failed to lookup dependency '",
                        name,
                        "', continuing anyway."
                    ],
                ),
            }
        }
        out
    }

    fn fill_softdep(&mut self, id: ModId, list: &mut Vec<ModId>) {
        let (pre, post) = self.softdeps(id);
        for &m in &pre {
            self.probe_list_rec(m, false, false, list);
        }
        list.push(id);
        self.modules[id].ignorecmd = !pre.is_empty() || !post.is_empty();
        for &m in &post {
            self.probe_list_rec(m, false, false, list);
        }
    }

    fn probe_list_rec(
        &mut self,
        id: ModId,
        required: bool,
        ignorecmd: bool,
        list: &mut Vec<ModId>,
    ) {
        if self.modules[id].visited {
            // Debug log, text (display only).
            tracing::debug!(
                "Ignore module '{}': already visited",
                String::from_utf8_lossy(&self.modules[id].name)
            );
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
            self.fill_softdep(d, list);
        }
        if ignorecmd {
            list.push(id);
            self.modules[id].ignorecmd = true;
        } else {
            self.fill_softdep(id, list);
        }
    }

    /// The modules to load for `id`, in order.
    pub fn probe_list(&mut self, id: ModId, ignorecmd: bool) -> Vec<ModId> {
        for m in &mut self.modules {
            m.visited = false;
            m.required = false;
        }
        let mut list = Vec::new();
        self.probe_list_rec(id, true, ignorecmd, &mut list);
        list
    }

    pub fn is_blacklisted(&self, id: ModId) -> bool {
        self.config.is_blacklisted(&self.modules[id].name)
    }

    /// Inserts a module with its dependencies and softdeps (kmod's
    /// `kmod_module_probe_insert_module`). Errors are errnos, as modprobe maps them.
    pub fn probe_insert(
        &mut self,
        id: ModId,
        flags: ProbeFlags,
        extra_options: Option<&[u8]>,
        actions: &mut dyn Actions,
    ) -> Result<Probed, Errno> {
        if !flags.ignore_loaded && self.in_kernel(id) {
            return if flags.fail_on_loaded {
                Err(Errno::EEXIST)
            } else {
                Ok(Probed::Done)
            };
        }
        if self.is_blacklisted(id) && (self.modules[id].alias.is_some() || flags.blacklist_names) {
            return Ok(Probed::Blacklisted);
        }
        let list = self.probe_list(id, flags.ignore_commands);
        let mut result = Ok(());
        for m in list {
            let err = if !flags.ignore_loaded && self.in_kernel(m) {
                // Debug log, text (display only).
                tracing::debug!(
                    "Ignoring module '{}': already loaded",
                    String::from_utf8_lossy(&self.modules[m].name)
                );
                Err(Errno::EEXIST)
            } else {
                let extra = if m == id { extra_options } else { None };
                let options = concat_options(self.options(m), extra);
                self.insert_step(m, &options, flags, actions)
            };
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

    /// One module of a probe list: its install command, or the module itself.
    fn insert_step(
        &mut self,
        m: ModId,
        options: &[u8],
        flags: ProbeFlags,
        actions: &mut dyn Actions,
    ) -> Result<(), Errno> {
        if let Some(cmd) = self
            .command(m, Command::Install)
            .filter(|_| !self.modules[m].ignorecmd)
        {
            if flags.show {
                actions.show(Action::Install {
                    command: &cmd,
                    options,
                });
            }
            if flags.dry_run {
                return Ok(());
            }
            let cmd = replace_all(&cmd, b"$CMDLINE_OPTS", options);
            return self.run_install_command(m, &cmd);
        }
        let path = self.path(m);
        if flags.show {
            match &path {
                Some(path) => actions.show(Action::Insmod { path, options }),
                None if matches!(self.state(m), Ok(State::Builtin)) => {
                    actions.show(Action::Builtin {
                        name: &self.modules[m].name,
                    })
                }
                None => {}
            }
        }
        if flags.dry_run {
            return Ok(());
        }
        self.insert_file(m, path.as_deref(), options, flags)
    }

    fn insert_file(
        &mut self,
        id: ModId,
        path: Option<&Path>,
        options: &[u8],
        flags: ProbeFlags,
    ) -> Result<(), Errno> {
        let Some(path) = path else {
            self.sink.log_bytes(
                Priority::Error,
                msg![
                    "could not find module by name='",
                    self.modules[id].name,
                    "'"
                ],
            );
            return Err(Errno::ENOENT);
        };
        let insert_flags = InsertFlags {
            force_vermagic: flags.force_vermagic,
            force_modversion: flags.force_modversion,
        };
        let refusal =
            match explain::insert(self.kernel, path, options, insert_flags, Some(&self.dir)) {
                Ok(()) => return Ok(()),
                Err(refusal) => refusal,
            };
        let e = refusal.error;
        self.sink.log_bytes(
            Priority::Info,
            msg![
                "Failed to insert module '",
                path,
                "': ",
                strerror(e.errno())
            ],
        );
        if let kernel::InsertError::UnknownKernelCompression(_) = e {
            self.sink.error(&e);
        }
        self.explanation = refusal.explanation;
        Err(e.errno())
    }

    /// libkmod's install command run: `sh -c` with `MODPROBE_MODULE` set; a failure
    /// is logged with the command and its exit code.
    fn run_install_command(&mut self, id: ModId, cmd: &[u8]) -> Result<(), Errno> {
        let name = self.modules[id].name.clone();
        let problem = match self.run_shell(cmd, &name) {
            Ok(0) => return Ok(()),
            Err(e) => msg![
                "Could not run install command '",
                cmd,
                "' for module ",
                name,
                ": ",
                io_strerror(&e)
            ],
            Ok(code) => msg![
                "Error running install command '",
                cmd,
                "' for module ",
                name,
                format!(": retcode {code}")
            ],
        };
        self.sink.log_bytes(Priority::Error, problem);
        Err(Errno::EINVAL)
    }

    /// C's `system(cmd)` with `MODPROBE_MODULE=name`: the exit code as `WEXITSTATUS`
    /// gives it (0 for a shell killed by a signal).
    fn run_shell(&self, cmd: &[u8], name: &[u8]) -> std::io::Result<i32> {
        let status = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(OsStr::from_bytes(cmd))
            .envs(self.command_env.iter().map(|(k, v)| (k, v)))
            .env("MODPROBE_MODULE", OsStr::from_bytes(name))
            .status()?;
        Ok((status.into_raw() >> 8) & 0xff)
    }

    /// Removes a module as `modprobe -r` does: its post-softdeps, its holders (with
    /// `--remove-holders`), the module (or its remove command), the dependencies that
    /// became unused, then its pre-softdeps.
    pub fn remove(
        &mut self,
        id: ModId,
        flags: &RemoveFlags,
        actions: &mut dyn Actions,
    ) -> Result<(), RemoveError> {
        self.remove_module(id, flags.remove_holders, false, flags, actions)
    }

    fn remove_module(
        &mut self,
        id: ModId,
        holders: bool,
        ignore_builtin: bool,
        flags: &RemoveFlags,
        actions: &mut dyn Actions,
    ) -> Result<(), RemoveError> {
        let name = self.modules[id].name.clone();
        let (pre, post, cmd) = if flags.ignore_commands {
            (Vec::new(), Vec::new(), None)
        } else {
            let (pre, post) = self.softdeps(id);
            (pre, post, self.command(id, Command::Remove))
        };
        if cmd.is_none() && !flags.ignore_loaded {
            match self.state(id) {
                Err(_) if flags.first_time => {
                    self.sink.fail_bytes(
                        flags.fail_priority,
                        msg!["Module ", name, " is not in kernel."],
                    )?;
                    return Err(RemoveError::Failed(Errno::ENOENT));
                }
                Err(_) => return Ok(()),
                Ok(State::Builtin) if ignore_builtin => return Ok(()),
                Ok(State::Builtin) => {
                    self.sink
                        .fail_bytes(flags.fail_priority, msg!["Module ", name, " is builtin."])?;
                    return Err(RemoveError::Failed(Errno::ENOENT));
                }
                Ok(_) => {}
            }
        }
        // Softdeps and unused dependencies are removed where possible; only a
        // FATAL message stops modprobe there.
        let best_effort = |r: Result<(), RemoveError>| match r {
            Err(RemoveError::Stopped(f)) => Err(f),
            _ => Ok(()),
        };
        for &p in post.iter().rev() {
            best_effort(self.remove_module(p, false, true, flags, actions))?;
        }
        if holders {
            let names = self.kernel.holders(&name).unwrap_or_default();
            for h in names.iter().rev() {
                let hid = self.module_named(h);
                self.remove_module(hid, false, true, flags, actions)?;
            }
        }
        let in_use = || kernel::refcnt(self.kernel, &name).is_ok_and(|n| n > 0);
        if cmd.is_none() && !flags.ignore_loaded && flags.wait.is_zero() && in_use() {
            self.sink
                .fail_bytes(flags.fail_priority, msg!["Module ", name, " is in use."])?;
            return Err(RemoveError::Failed(Errno::EBUSY));
        }
        match &cmd {
            None => self.delete(&name, flags, actions)?,
            Some(cmd) => {
                let cmd = replace_all(cmd, b"$CMDLINE_OPTS", b"");
                if flags.show {
                    actions.show(Action::Remove { command: &cmd });
                }
                if !flags.dry_run && !matches!(self.run_shell(&cmd, &name), Ok(0)) {
                    self.sink.fail_bytes(
                        flags.fail_priority,
                        msg!["Error running remove command for ", name],
                    )?;
                    return Err(RemoveError::Failed(Errno::EINVAL));
                }
            }
        }
        if cmd.is_none() {
            for dep in self.dependencies(id) {
                let dep_name = self.modules[dep].name.clone();
                if kernel::refcnt(self.kernel, &dep_name).is_ok_and(|n| n == 0) {
                    best_effort(self.delete(&dep_name, flags, actions))?;
                }
            }
        }
        for &p in pre.iter().rev() {
            best_effort(self.remove_module(p, false, true, flags, actions))?;
        }
        Ok(())
    }

    /// `delete_module` as modprobe calls it, retrying a busy module with back-off
    /// for `--wait`.
    fn delete(
        &mut self,
        name: &[u8],
        flags: &RemoveFlags,
        actions: &mut dyn Actions,
    ) -> Result<(), RemoveError> {
        if flags.show {
            actions.show(Action::Rmmod { name });
        }
        if flags.dry_run {
            return Ok(());
        }
        let start = Instant::now();
        let mut interval = Duration::from_millis(1);
        loop {
            match kernel::remove_module(self.kernel, name, flags.force) {
                Ok(()) => return Ok(()),
                Err(Errno::EAGAIN) if start.elapsed() < flags.wait => {
                    let left = flags.wait.saturating_sub(start.elapsed());
                    std::thread::sleep(interval.min(left));
                    interval *= 2;
                }
                Err(e) => {
                    self.sink.log_bytes(
                        Priority::Error,
                        msg!["could not remove '", name, "': ", strerror(e)],
                    );
                    return Err(RemoveError::Failed(e));
                }
            }
        }
    }
}

/// Config options, then the command line's, joined by a space that is there even when
/// the second part is empty (kmod's trailing space, which callers' output shows).
fn concat_options(config: Option<Vec<u8>>, extra: Option<&[u8]>) -> Vec<u8> {
    match (config, extra) {
        (None, None) => Vec::new(),
        (None, Some(x)) => x.to_vec(),
        (Some(c), x) => [&c[..], b" ", x.unwrap_or_default()].concat(),
    }
}

/// Every occurrence of `pattern` in `text` replaced, left to right.
fn replace_all(text: &[u8], pattern: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.windows(pattern.len()).position(|w| w == pattern) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + pattern.len()..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_substitution() {
        assert_eq!(
            replace_all(
                b"a $CMDLINE_OPTS b$CMDLINE_OPTS",
                b"$CMDLINE_OPTS",
                b"x=\xe9"
            ),
            b"a x=\xe9 bx=\xe9"
        );
        assert_eq!(replace_all(b"none", b"$CMDLINE_OPTS", b"x"), b"none");
        assert_eq!(concat_options(Some(b"a=1".to_vec()), None), b"a=1 ");
        assert_eq!(concat_options(None, Some(b"b")), b"b");
    }
}
