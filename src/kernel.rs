//! The running kernel: module syscalls, `/proc/modules` and `/sys/module`.
//!
//! Everything goes through the [`Kernel`] trait so the logic above it (insmod,
//! rmmod, lsmod, modprobe) is testable without root or a real kernel.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::kmod::DeleteModuleFlags;

use crate::compat::{io_strerror, until_nul};
use crate::msg;

use crate::compression::{self, Compression};
use crate::elf::ModuleElf;
use crate::module::ModuleFile;

/// What the module tools need from a kernel. Module names are bytes, as they reach
/// us from the command line; the kernel's own names are ASCII.
pub trait Kernel {
    /// The text of `/proc/modules`.
    fn proc_modules(&self) -> io::Result<Vec<u8>>;
    /// The text of `/sys/module/<module>/<attr>`.
    fn module_attr(&self, module: &[u8], attr: &str) -> io::Result<Vec<u8>>;
    /// Whether `/sys/module/<module>` exists.
    fn module_dir_exists(&self, module: &[u8]) -> bool;
    /// Names in `/sys/module/<module>/holders`, in directory order.
    fn holders(&self, module: &[u8]) -> io::Result<Vec<Vec<u8>>>;
    /// The text of `/sys/module/compression` (in-kernel decompression support).
    fn compression(&self) -> io::Result<Vec<u8>>;
    fn finit_module(&self, file: &File, params: &CStr, flags: u32) -> Result<(), Errno>;
    fn init_module(&self, image: &[u8], params: &CStr) -> Result<(), Errno>;
    fn delete_module(&self, name: &CStr, flags: DeleteModuleFlags) -> Result<(), Errno>;
    /// The kernel's log from now on (`/dev/kmsg`, read without blocking).
    fn kernel_log(&self) -> io::Result<Box<dyn KernelLog>>;
    /// The text of `/sys/kernel/security/lockdown` (`[none] integrity confidentiality`).
    fn lockdown(&self) -> io::Result<Vec<u8>>;
}

/// Messages the kernel logs.
pub trait KernelLog {
    /// The messages logged since the last call (or since the log was opened).
    fn read_new(&mut self) -> Vec<Vec<u8>>;
}

/// `/dev/kmsg`, positioned at its end when opened.
struct Kmsg(File);

impl Kmsg {
    fn open() -> io::Result<Kmsg> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open("/dev/kmsg")?;
        nix::unistd::lseek(&file, 0, nix::unistd::Whence::SeekEnd)?;
        Ok(Kmsg(file))
    }
}

impl KernelLog for Kmsg {
    fn read_new(&mut self) -> Vec<Vec<u8>> {
        use std::io::Read;
        // One record per read: `prio,seq,time,flags;message`, then key=value lines.
        const MAX_RECORDS: usize = 4096;
        let mut buf = vec![0u8; 8192];
        let mut out = Vec::new();
        while out.len() < MAX_RECORDS {
            match self.0.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let record = &buf[..n];
                    let Some(start) = record.iter().position(|&b| b == b';') else {
                        continue;
                    };
                    let text = &record[start + 1..];
                    let end = text.iter().position(|&b| b == b'\n').unwrap_or(text.len());
                    out.push(text[..end].to_vec());
                }
                // Records overwritten before we read them: go on with the next.
                Err(e) if e.raw_os_error() == Some(Errno::EPIPE as i32) => {}
                Err(_) => break,
            }
        }
        out
    }
}

/// The kernel this process runs on (`/proc` and `/sys` at their usual places).
pub struct LiveKernel {
    sys_module: PathBuf,
    proc_modules: PathBuf,
}

impl Default for LiveKernel {
    fn default() -> Self {
        LiveKernel {
            sys_module: PathBuf::from("/sys/module"),
            proc_modules: PathBuf::from("/proc/modules"),
        }
    }
}

impl LiveKernel {
    fn module_path(&self, module: &[u8]) -> PathBuf {
        self.sys_module.join(OsStr::from_bytes(module))
    }
}

impl Kernel for LiveKernel {
    fn proc_modules(&self) -> io::Result<Vec<u8>> {
        crate::limits::read_whole(&self.proc_modules)
    }

    fn module_attr(&self, module: &[u8], attr: &str) -> io::Result<Vec<u8>> {
        crate::limits::read_whole(&self.module_path(module).join(attr))
    }

    fn module_dir_exists(&self, module: &[u8]) -> bool {
        self.module_path(module).is_dir()
    }

    fn holders(&self, module: &[u8]) -> io::Result<Vec<Vec<u8>>> {
        std::fs::read_dir(self.module_path(module).join("holders"))?
            .map(|e| e.map(|e| e.file_name().into_vec()))
            .collect()
    }

    fn compression(&self) -> io::Result<Vec<u8>> {
        crate::limits::read_whole(&self.sys_module.join("compression"))
    }

    fn finit_module(&self, file: &File, params: &CStr, flags: u32) -> Result<(), Errno> {
        let flags = nix::kmod::ModuleInitFlags::from_bits_retain(flags);
        nix::kmod::finit_module(file.as_fd(), params, flags)
    }

    fn init_module(&self, image: &[u8], params: &CStr) -> Result<(), Errno> {
        nix::kmod::init_module(image, params)
    }

    fn delete_module(&self, name: &CStr, flags: DeleteModuleFlags) -> Result<(), Errno> {
        nix::kmod::delete_module(name, flags)
    }

    fn kernel_log(&self) -> io::Result<Box<dyn KernelLog>> {
        Ok(Box::new(Kmsg::open()?))
    }

    fn lockdown(&self) -> io::Result<Vec<u8>> {
        crate::limits::read_whole(std::path::Path::new("/sys/kernel/security/lockdown"))
    }
}

/// `finit_module` flags.
pub const MODULE_INIT_IGNORE_MODVERSIONS: u32 = 1;
pub const MODULE_INIT_IGNORE_VERMAGIC: u32 = 2;
pub const MODULE_INIT_COMPRESSED_FILE: u32 = 4;

/// A loaded module's state, from `/sys/module/<name>/initstate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitState {
    Live,
    Coming,
    Going,
}

#[derive(Debug)]
pub enum StateError {
    NotLoaded,
    Unknown(Vec<u8>, Vec<u8>),
    Io(Vec<u8>, io::Error),
}

impl StateError {
    /// The message, with the module's name and the file's text as they are.
    pub fn message(&self) -> Vec<u8> {
        match self {
            StateError::NotLoaded => b"not loaded".to_vec(),
            StateError::Unknown(module, text) => {
                msg!["unknown /sys/module/", module, "/initstate: '", text, "'"]
            }
            StateError::Io(module, e) => {
                msg![
                    "could not read /sys/module/",
                    module,
                    "/initstate: ",
                    io_strerror(e)
                ]
            }
        }
    }
}

/// Kernel text inside an io::Error or an error's Display, which are text: a bad
/// refcnt, an unknown compression name in sysfs (display only).
fn show(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// The initstate of `module`; a module directory without the file is still coming.
pub fn initstate(kernel: &dyn Kernel, module: &[u8]) -> Result<InitState, StateError> {
    match kernel.module_attr(module, "initstate") {
        Ok(text) => match &text[..] {
            b"live\n" => Ok(InitState::Live),
            b"coming\n" => Ok(InitState::Coming),
            b"going\n" => Ok(InitState::Going),
            _ => Err(StateError::Unknown(module.into(), text)),
        },
        Err(_) if kernel.module_dir_exists(module) => Ok(InitState::Coming),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StateError::NotLoaded),
        Err(e) => Err(StateError::Io(module.into(), e)),
    }
}

/// A sysfs number: decimal, surrounded by optional white space.
fn parse_number(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.trim().parse().ok()
}

/// `/sys/module/<module>/refcnt`.
pub fn refcnt(kernel: &dyn Kernel, module: &[u8]) -> io::Result<i64> {
    let text = kernel.module_attr(module, "refcnt")?;
    parse_number(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad refcnt '{}'", show(&text).trim()),
        )
    })
}

/// Why rmmod refuses to remove a module without `--force`.
#[derive(Debug)]
pub enum Refusal {
    Builtin(Vec<u8>),
    NotLoaded(Vec<u8>),
    State(StateError),
    /// Holders in directory order, on one line, as kmod 34.2 prints them.
    Holders(Vec<u8>, Vec<Vec<u8>>),
    InUse(Vec<u8>),
    UnloadingUnsupported,
}

impl Refusal {
    /// kmod's message, with the module's name as given.
    pub fn message(&self) -> Vec<u8> {
        match self {
            Refusal::Builtin(m) => msg!["Module ", m, " is builtin."],
            Refusal::NotLoaded(m) => msg!["Module ", m, " is not currently loaded"],
            Refusal::State(e) => e.message(),
            Refusal::Holders(m, holders) => {
                msg!["Module ", m, " is in use by: ", holders.join(&b' ')]
            }
            Refusal::InUse(m) => msg!["Module ", m, " is in use"],
            Refusal::UnloadingUnsupported => b"Module unloading is not supported".to_vec(),
        }
    }
}

/// rmmod's checks before `delete_module`: builtin, loaded, held, in use.
pub fn check_removable(kernel: &dyn Kernel, name: &[u8], builtin: bool) -> Result<(), Refusal> {
    if builtin {
        return Err(Refusal::Builtin(name.to_vec()));
    }
    match initstate(kernel, name) {
        Ok(_) => {}
        Err(StateError::NotLoaded) => return Err(Refusal::NotLoaded(name.to_vec())),
        Err(e) => return Err(Refusal::State(e)),
    }
    let holders = kernel.holders(name).unwrap_or_default();
    if !holders.is_empty() {
        return Err(Refusal::Holders(name.to_vec(), holders));
    }
    match refcnt(kernel, name) {
        Ok(n) if n > 0 => Err(Refusal::InUse(name.to_vec())),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Refusal::UnloadingUnsupported),
        Err(_) => Ok(()),
    }
}

/// A row of `lsmod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedModule {
    pub name: Vec<u8>,
    /// `coresize`, else the size column of /proc/modules.
    pub size: u64,
    /// The refcnt, or a negative errno when it cannot be read (as kmod prints it).
    pub use_count: i64,
    pub holders: Vec<Vec<u8>>,
    /// `/sys/module/<name>/initstate`, when it can be read.
    pub state: Option<InitState>,
    /// `/sys/module/<name>/taint` without its newline (taint flags such as `OE`; empty
    /// when the module taints nothing), when it can be read.
    pub taint: Option<Vec<u8>>,
}

impl InitState {
    /// The word `/sys/module/<name>/initstate` holds.
    pub fn name(self) -> &'static str {
        match self {
            InitState::Live => "live",
            InitState::Coming => "coming",
            InitState::Going => "going",
        }
    }
}

/// Loaded modules in `/proc/modules` order with sizes, use counts and holders.
pub fn loaded_modules(kernel: &dyn Kernel) -> io::Result<Vec<LoadedModule>> {
    let text = kernel.proc_modules()?;
    Ok(text
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let mut cols = line
                .split(|&b| crate::compat::is_space(b))
                .filter(|c| !c.is_empty());
            let name = cols.next()?.to_vec();
            let proc_size = cols
                .next()
                .and_then(parse_number)
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0);
            let size = kernel
                .module_attr(&name, "coresize")
                .ok()
                .and_then(|s| parse_number(&s))
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(proc_size);
            let use_count = match refcnt(kernel, &name) {
                Ok(n) => n,
                Err(e) => -i64::from(e.raw_os_error().unwrap_or(Errno::EINVAL as i32)),
            };
            let holders = kernel.holders(&name).unwrap_or_default();
            let state = initstate(kernel, &name).ok();
            let taint = kernel.module_attr(&name, "taint").ok().map(|mut t| {
                if t.last() == Some(&b'\n') {
                    t.pop();
                }
                t
            });
            Some(LoadedModule {
                name,
                size,
                use_count,
                holders,
                state,
                taint,
            })
        })
        .collect())
}

/// How to insert a module.
#[derive(Debug, Clone, Copy, Default)]
pub struct InsertFlags {
    pub force_vermagic: bool,
    pub force_modversion: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("{0}")]
    Open(#[source] crate::module::ModuleError),
    #[error("Failed to strip version information: {0}")]
    Strip(Errno),
    #[error("unknown kernel compression {}", show(.0))]
    UnknownKernelCompression(Vec<u8>),
    /// The kernel refused the module.
    #[error("{0}")]
    Kernel(Errno),
}

impl InsertError {
    pub fn errno(&self) -> Errno {
        match self {
            InsertError::Open(e) => e.errno(),
            InsertError::Strip(e) | InsertError::Kernel(e) => *e,
            InsertError::UnknownKernelCompression(_) => Errno::EINVAL,
        }
    }
}

/// Loads a module file: `finit_module` on the file itself when the kernel can take
/// it as is (uncompressed, or compressed the way the kernel decompresses), else the
/// decompressed image through `init_module`, which is also the fallback when the
/// kernel lacks `finit_module`.
pub fn insert_module(
    kernel: &dyn Kernel,
    path: &std::path::Path,
    params: &[u8],
    flags: InsertFlags,
) -> Result<(), InsertError> {
    // The kernel takes the options as a C string.
    let params = CString::new(until_nul(params)).unwrap_or_default();
    let file = File::open(path)
        .map_err(|e| InsertError::Open(crate::module::ModuleError::Io(path.into(), e)))?;
    let mut head = [0u8; compression::MIN_FILE_SIZE];
    let read = read_head(&file, &mut head)
        .map_err(|e| InsertError::Open(crate::module::ModuleError::Io(path.into(), e)))?;
    if read < head.len() {
        // kmod reads six magic bytes first; a shorter file is EINVAL.
        return Err(InsertError::Kernel(Errno::EINVAL));
    }
    let kind = Compression::detect(&head);
    let kernel_kind = match kernel.compression() {
        Ok(text) => Some(
            std::str::from_utf8(&text)
                .ok()
                .and_then(Compression::from_kernel_name)
                .ok_or_else(|| {
                    let end = text.iter().rposition(|&b| b != b'\n').map_or(0, |i| i + 1);
                    InsertError::UnknownKernelCompression(text[..end].to_vec())
                })?,
        ),
        Err(_) => None,
    };
    if kind == Compression::None || Some(kind) == kernel_kind {
        let mut kflags = 0;
        if kind != Compression::None {
            kflags |= MODULE_INIT_COMPRESSED_FILE;
        }
        if flags.force_vermagic {
            kflags |= MODULE_INIT_IGNORE_VERMAGIC;
        }
        if flags.force_modversion {
            kflags |= MODULE_INIT_IGNORE_MODVERSIONS;
        }
        // Debug log, text (display only).
        tracing::debug!(
            "finit_module {} flags={kflags:#x} params='{}'",
            path.display(),
            params.to_string_lossy()
        );
        match kernel.finit_module(&file, &params, kflags) {
            Err(Errno::ENOSYS) => {}
            other => return other.map_err(InsertError::Kernel),
        }
    }
    tracing::debug!(
        "init_module {}: decompressing in user space",
        path.display()
    );
    let module = ModuleFile::open(path).map_err(InsertError::Open)?;
    if !(flags.force_vermagic || flags.force_modversion) {
        return kernel
            .init_module(module.data(), &params)
            .map_err(InsertError::Kernel);
    }
    let elf = ModuleElf::parse(module.data()).map_err(|e| InsertError::Strip(e.errno()))?;
    let mut image = if flags.force_modversion {
        elf.strip_modversions()
            .map_err(|e| InsertError::Strip(e.errno()))?
    } else {
        crate::limits::copy(module.data()).map_err(|e| InsertError::Strip(e.errno()))?
    };
    if flags.force_vermagic {
        let stripped = ModuleElf::parse(&image)
            .map_err(|e| InsertError::Strip(e.errno()))?
            .strip_vermagic()
            .map_err(|e| InsertError::Strip(e.errno()))?;
        image = stripped;
    }
    kernel
        .init_module(&image, &params)
        .map_err(InsertError::Kernel)
}

fn read_head(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], done as u64)? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}

/// `delete_module` as kmod calls it: never waiting (`O_NONBLOCK`), and with `O_TRUNC`
/// when forced (which needs CONFIG_MODULE_FORCE_UNLOAD). The flags' values are the
/// architecture's own `O_*` constants, which differ on alpha, mips, parisc and sparc.
pub fn remove_module(kernel: &dyn Kernel, name: &[u8], force: bool) -> Result<(), Errno> {
    let name = CString::new(name).map_err(|_| Errno::EINVAL)?;
    let mut flags = DeleteModuleFlags::O_NONBLOCK;
    if force {
        flags |= DeleteModuleFlags::O_TRUNC;
    }
    kernel.delete_module(&name, flags)
}

#[cfg(any(test, feature = "test-util"))]
pub mod fake {
    //! An in-memory kernel for tests (the `test-util` feature makes it available to
    //! integration tests).
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    #[derive(Default)]
    pub struct FakeKernel {
        pub proc_modules: Option<Vec<u8>>,
        /// (module, attr) → content; a module with any entry has a directory.
        pub attrs: BTreeMap<(Vec<u8>, String), Vec<u8>>,
        pub holders: BTreeMap<Vec<u8>, Vec<Vec<u8>>>,
        pub compression: Option<Vec<u8>>,
        pub finit_result: Option<Errno>,
        pub init_result: Option<Errno>,
        pub delete_result: Option<Errno>,
        /// What the kernel logs during a failed insertion; None: the log is unreadable.
        pub log_on_failure: Option<Vec<Vec<u8>>>,
        pub lockdown: Option<Vec<u8>>,
        /// Every syscall made, in order, in a readable form.
        pub calls: RefCell<Vec<String>>,
    }

    /// The fake log: what `log_on_failure` holds, once.
    struct FakeLog(Vec<Vec<u8>>);

    impl KernelLog for FakeLog {
        fn read_new(&mut self) -> Vec<Vec<u8>> {
            std::mem::take(&mut self.0)
        }
    }

    impl FakeKernel {
        /// Sets `/sys/module/<module>/<attr>`.
        pub fn attr(&mut self, module: &str, attr: &str, value: &str) -> &mut Self {
            self.attrs
                .insert((module.into(), attr.into()), value.into());
            self
        }

        /// A loaded module with its refcnt.
        pub fn loaded(&mut self, module: &str, refcnt: u32) -> &mut Self {
            self.attr(module, "initstate", "live\n")
                .attr(module, "refcnt", &format!("{refcnt}\n"))
        }
    }

    impl Kernel for FakeKernel {
        fn proc_modules(&self) -> io::Result<Vec<u8>> {
            self.proc_modules
                .clone()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }
        fn module_attr(&self, module: &[u8], attr: &str) -> io::Result<Vec<u8>> {
            self.attrs
                .get(&(module.to_vec(), attr.to_string()))
                .cloned()
                .ok_or_else(|| io::Error::from_raw_os_error(Errno::ENOENT as i32))
        }
        fn module_dir_exists(&self, module: &[u8]) -> bool {
            self.attrs.keys().any(|(m, _)| m == module)
        }
        fn holders(&self, module: &[u8]) -> io::Result<Vec<Vec<u8>>> {
            Ok(self.holders.get(module).cloned().unwrap_or_default())
        }
        fn compression(&self) -> io::Result<Vec<u8>> {
            self.compression
                .clone()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }
        fn finit_module(&self, _: &File, params: &CStr, flags: u32) -> Result<(), Errno> {
            self.calls
                .borrow_mut()
                .push(format!("finit_module({params:?}, {flags})"));
            self.finit_result.map_or(Ok(()), Err)
        }
        fn init_module(&self, image: &[u8], params: &CStr) -> Result<(), Errno> {
            self.calls
                .borrow_mut()
                .push(format!("init_module({} bytes, {params:?})", image.len()));
            self.init_result.map_or(Ok(()), Err)
        }
        fn delete_module(&self, name: &CStr, flags: DeleteModuleFlags) -> Result<(), Errno> {
            self.calls
                .borrow_mut()
                .push(format!("delete_module({name:?}, {flags:?})"));
            self.delete_result.map_or(Ok(()), Err)
        }
        fn kernel_log(&self) -> io::Result<Box<dyn KernelLog>> {
            match &self.log_on_failure {
                Some(lines) => Ok(Box::new(FakeLog(lines.clone()))),
                None => Err(io::Error::from_raw_os_error(Errno::EACCES as i32)),
            }
        }
        fn lockdown(&self) -> io::Result<Vec<u8>> {
            self.lockdown
                .clone()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeKernel;
    use super::*;

    #[test]
    fn lsmod_rows_follow_proc_modules() {
        let mut k = FakeKernel {
            proc_modules: Some(
                b"btusb 65536 0 - Live 0x0\nbluetooth 1000000 3 btusb, Live 0x0\ngone 10 0 - Live 0x0\n"
                    .to_vec(),
            ),
            ..Default::default()
        };
        k.attr("btusb", "coresize", "11216\n")
            .attr("btusb", "refcnt", "0\n")
            .attr("bluetooth", "coresize", "577536\n")
            .attr("bluetooth", "refcnt", "31\n");
        k.holders.insert(
            b"bluetooth".to_vec(),
            vec![b"btrtl".to_vec(), b"btusb".to_vec()],
        );
        let rows = loaded_modules(&k).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].size, rows[0].use_count), (11216, 0));
        assert_eq!(rows[1].holders, [b"btrtl".to_vec(), b"btusb".to_vec()]);
        // No sysfs entry: size from /proc/modules, refcnt as -ENOENT.
        assert_eq!((rows[2].size, rows[2].use_count), (10, -2));
    }

    #[test]
    fn initstates() {
        let mut k = FakeKernel::default();
        k.attr("a", "initstate", "live\n")
            .attr("b", "refcnt", "0\n")
            .attr("c", "initstate", "weird\n");
        assert_eq!(initstate(&k, b"a").unwrap(), InitState::Live);
        assert_eq!(initstate(&k, b"b").unwrap(), InitState::Coming);
        assert!(matches!(initstate(&k, b"c"), Err(StateError::Unknown(..))));
        assert!(matches!(initstate(&k, b"d"), Err(StateError::NotLoaded)));
    }

    fn temp_file(name: &str, data: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("kmod-rs-kernel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        path
    }

    fn xz(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn insert_paths() {
        let plain = temp_file("plain.ko", b"\x7fELF-not-really-but-the-kernel-decides");
        let packed = temp_file("packed.ko.xz", &xz(b"\x7fELF-payload"));
        let none = InsertFlags::default();

        // Plain file: finit_module on the file.
        let k = FakeKernel::default();
        insert_module(&k, &plain, b"a=1", none).unwrap();
        assert_eq!(*k.calls.borrow(), ["finit_module(\"a=1\", 0)"]);

        // Compressed like the kernel decompresses: finit_module with COMPRESSED_FILE.
        let k = FakeKernel {
            compression: Some(b"xz\n".to_vec()),
            ..Default::default()
        };
        insert_module(&k, &packed, b"", none).unwrap();
        assert_eq!(*k.calls.borrow(), ["finit_module(\"\", 4)"]);

        // The kernel cannot decompress it: we do, then init_module.
        let k = FakeKernel {
            compression: Some(b"zstd\n".to_vec()),
            ..Default::default()
        };
        insert_module(&k, &packed, b"", none).unwrap();
        assert_eq!(*k.calls.borrow(), ["init_module(12 bytes, \"\")"]);

        // No finit_module in the kernel: fall back to init_module.
        let k = FakeKernel {
            finit_result: Some(Errno::ENOSYS),
            ..Default::default()
        };
        insert_module(&k, &plain, b"", none).unwrap();
        assert_eq!(k.calls.borrow().len(), 2);

        // Any other refusal is final.
        let k = FakeKernel {
            finit_result: Some(Errno::EEXIST),
            ..Default::default()
        };
        assert!(matches!(
            insert_module(&k, &plain, b"", none),
            Err(InsertError::Kernel(Errno::EEXIST))
        ));

        // Unknown kernel compression text.
        let k = FakeKernel {
            compression: Some(b"lz4\n".to_vec()),
            ..Default::default()
        };
        assert!(matches!(
            insert_module(&k, &packed, b"", none),
            Err(InsertError::UnknownKernelCompression(_))
        ));

        // A truncated compressed file is an error before any syscall.
        let broken = temp_file("broken.ko.xz", &xz(b"\x7fELF-payload")[..20]);
        let k = FakeKernel::default();
        assert!(matches!(
            insert_module(&k, &broken, b"", none),
            Err(InsertError::Open(_))
        ));
        assert!(k.calls.borrow().is_empty());
    }

    #[test]
    fn delete_never_blocks() {
        let k = FakeKernel::default();
        remove_module(&k, b"dummy", false).unwrap();
        remove_module(&k, b"dummy", true).unwrap();
        assert_eq!(
            *k.calls.borrow(),
            [
                "delete_module(\"dummy\", DeleteModuleFlags(O_NONBLOCK))",
                "delete_module(\"dummy\", DeleteModuleFlags(O_NONBLOCK | O_TRUNC))"
            ]
        );
        // The kernel reads these as the target's open(2) flags.
        assert_eq!(
            (DeleteModuleFlags::O_NONBLOCK | DeleteModuleFlags::O_TRUNC).bits(),
            nix::libc::O_NONBLOCK | nix::libc::O_TRUNC
        );
    }

    #[test]
    fn removal_checks() {
        let mut k = FakeKernel::default();
        k.loaded("m", 0).loaded("used", 2);
        k.attr("nounload", "initstate", "live\n");
        k.holders
            .insert(b"held".to_vec(), vec![b"a".to_vec(), b"b".to_vec()]);
        k.loaded("held", 0);
        let refusal = |name: &str, builtin| {
            check_removable(&k, name.as_bytes(), builtin)
                .err()
                .map(|e| String::from_utf8(e.message()).unwrap())
        };
        assert_eq!(refusal("m", true).as_deref(), Some("Module m is builtin."));
        assert_eq!(
            refusal("x", false).as_deref(),
            Some("Module x is not currently loaded")
        );
        assert_eq!(
            refusal("held", false).as_deref(),
            Some("Module held is in use by: a b")
        );
        assert_eq!(
            refusal("used", false).as_deref(),
            Some("Module used is in use")
        );
        assert_eq!(
            refusal("nounload", false).as_deref(),
            Some("Module unloading is not supported")
        );
        assert_eq!(refusal("m", false), None);
    }
}
