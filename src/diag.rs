//! Diagnostics: every message the tools and the library print goes through a [`Sink`],
//! in kmod's format (`prog: LEVEL: message` on stderr, or to syslog with `-s`), shown
//! when its [`Priority`] is within the run's threshold.
//!
//! A FATAL message that is shown ends a kmod tool with exit status 1; here that is
//! a value, [`Fatal`], that callers return up to the command line (see [`Sink::fail`]).
//! The library's debug-level `tracing` events are printed through the same sink
//! ([`Sink::install_tracing`]).

use std::borrow::Cow;
use std::fmt::Display;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;

/// syslog's priorities, in which kmod counts its thresholds; named as kmod prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    Emergency = 0,
    Alert = 1,
    /// syslog's LOG_CRIT, which kmod prints as FATAL.
    Fatal = 2,
    Error = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

impl Priority {
    /// The level word kmod prints.
    pub fn label(self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Priority::Fatal => "FATAL",
            Priority::Error => "ERROR",
            Priority::Warning => "WARNING",
            Priority::Notice => "NOTICE",
            Priority::Info => "INFO",
            Priority::Debug => "DEBUG",
            other => return Cow::Owned(format!("LOG-{:03}", other as i32)),
        })
    }
}

/// A FATAL message was shown: the run stops with exit status 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stopped after a fatal error")]
pub struct Fatal;

/// Where a run's messages go and which of them are shown. Cheap to clone.
#[derive(Clone)]
pub struct Sink {
    prog: Arc<str>,
    /// Messages of this priority number or lower are shown (`-v` raises it, `-q`
    /// lowers it below every priority).
    threshold: i32,
    syslog: Option<Arc<UnixDatagram>>,
}

impl Sink {
    /// Messages on stderr (or syslog when `use_syslog` and `/dev/log` is reachable)
    /// as `prog: LEVEL: message`.
    pub fn new(prog: &str, threshold: i32, use_syslog: bool) -> Sink {
        let syslog = use_syslog
            .then(|| {
                let sock = UnixDatagram::unbound().ok()?;
                sock.connect("/dev/log").ok()?;
                Some(Arc::new(sock))
            })
            .flatten();
        Sink {
            prog: prog.into(),
            threshold,
            syslog,
        }
    }

    /// A sink that shows nothing.
    pub fn silent() -> Sink {
        Sink::new("", -1, false)
    }

    /// What libkmod prints before a tool installs its own logger (while it reads
    /// configuration): `libkmod: LEVEL: function: message` at the `KMOD_LOG` threshold.
    pub fn libkmod() -> Sink {
        Sink::new("libkmod", kmod_log_threshold(), false)
    }

    pub fn prog(&self) -> &str {
        &self.prog
    }

    pub fn threshold(&self) -> i32 {
        self.threshold
    }

    pub fn enabled(&self, prio: Priority) -> bool {
        prio as i32 <= self.threshold
    }

    pub fn log(&self, prio: Priority, msg: impl Display) {
        if self.enabled(prio) {
            self.log_bytes(prio, msg.to_string().as_bytes());
        }
    }

    /// A message of raw bytes: paths, module names and parameters are not always
    /// UTF-8, and kmod prints them as they are.
    pub fn log_bytes(&self, prio: Priority, msg: impl AsRef<[u8]>) {
        if !self.enabled(prio) {
            return;
        }
        let msg = msg.as_ref();
        let label = prio.label();
        match &self.syslog {
            Some(sock) => {
                const LOG_DAEMON: i32 = 3 << 3;
                let mut line =
                    format!("<{}>{}: {label}: ", LOG_DAEMON | prio as i32, self.prog).into_bytes();
                line.extend_from_slice(msg);
                let _ = sock.send(&line);
            }
            None => {
                let mut line = Vec::with_capacity(self.prog.len() + label.len() + msg.len() + 5);
                line.extend_from_slice(self.prog.as_bytes());
                line.extend_from_slice(b": ");
                line.extend_from_slice(label.as_bytes());
                line.extend_from_slice(b": ");
                line.extend_from_slice(msg);
                line.push(b'\n');
                // Keep what was printed so far ahead of the message on a terminal.
                let _ = std::io::stdout().flush();
                let _ = std::io::stderr().lock().write_all(&line);
            }
        }
    }

    pub fn error(&self, msg: impl Display) {
        self.log(Priority::Error, msg);
    }

    /// kmod's `log_printf`: logs, and when the message is FATAL and shown, the run
    /// must stop (`Err(Fatal)`); a FATAL hidden by `-q` does not stop it.
    pub fn fail(&self, prio: Priority, msg: impl Display) -> Result<(), Fatal> {
        self.fail_bytes(prio, msg.to_string())
    }

    /// [`Sink::fail`] with a message of raw bytes.
    pub fn fail_bytes(&self, prio: Priority, msg: impl AsRef<[u8]>) -> Result<(), Fatal> {
        self.log_bytes(prio, msg);
        if prio <= Priority::Fatal && self.enabled(prio) {
            Err(Fatal)
        } else {
            Ok(())
        }
    }

    /// Prints the library's `tracing` events through this sink when it shows DEBUG
    /// (enough `-v`, or `KMOD_LOG=debug`); otherwise no subscriber is installed and
    /// they cost nothing.
    pub fn install_tracing(&self) {
        use tracing_subscriber::layer::SubscriberExt;
        let mut sink = self.clone();
        sink.threshold = sink.threshold.max(kmod_log_threshold());
        if !sink.enabled(Priority::Debug) {
            return;
        }
        let subscriber = tracing_subscriber::registry().with(TracingLayer { sink });
        let _ = tracing::subscriber::set_global_default(subscriber);
    }
}

/// A piece of a message: text, a number, or the raw bytes of a name or path (which
/// kmod prints as they are, UTF-8 or not).
pub trait MsgArg {
    fn append_to(&self, out: &mut Vec<u8>);
}

macro_rules! bytes_arg {
    ($($t:ty),*) => {$(
        impl MsgArg for $t {
            fn append_to(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(AsRef::<[u8]>::as_ref(self));
            }
        }
    )*};
}
bytes_arg!(str, [u8], String, Vec<u8>);

macro_rules! os_arg {
    ($($t:ty),*) => {$(
        impl MsgArg for $t {
            fn append_to(&self, out: &mut Vec<u8>) {
                use std::os::unix::ffi::OsStrExt;
                out.extend_from_slice(AsRef::<std::ffi::OsStr>::as_ref(self).as_bytes());
            }
        }
    )*};
}
os_arg!(
    std::ffi::OsStr,
    std::ffi::OsString,
    std::path::Path,
    std::path::PathBuf
);

impl MsgArg for Cow<'_, str> {
    fn append_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl<const N: usize> MsgArg for [u8; N] {
    fn append_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl<T: MsgArg + ?Sized> MsgArg for &T {
    fn append_to(&self, out: &mut Vec<u8>) {
        (**self).append_to(out);
    }
}

macro_rules! number_arg {
    ($($t:ty),*) => {$(
        impl MsgArg for $t {
            fn append_to(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(self.to_string().as_bytes());
            }
        }
    )*};
}
number_arg!(i32, i64, u32, u64, usize);

/// A message of bytes from parts that are text, numbers or raw names:
/// `msg!["could not load ", path, ": ", strerror(e)]`.
#[macro_export]
macro_rules! msg {
    ($($part:expr),* $(,)?) => {{
        let mut message: Vec<u8> = Vec::new();
        $( $crate::diag::MsgArg::append_to(&$part, &mut message); )*
        message
    }};
}

/// A message of bytes from a template whose `{}` each take the next argument's
/// bytes (C's `%s`, with names and paths kept as they are):
/// `msgf!("could not open {}: {}", path, strerror(e))`.
#[macro_export]
macro_rules! msgf {
    ($template:literal $(, $arg:expr)* $(,)?) => {{
        let args: &[&dyn $crate::diag::MsgArg] = &[$(&$arg),*];
        $crate::diag::fill_template($template, args)
    }};
}

/// [`msgf!`]'s work: each `{}` of `template` replaced by the next argument.
pub fn fill_template(template: &str, args: &[&dyn MsgArg]) -> Vec<u8> {
    let mut out = Vec::with_capacity(template.len());
    let mut args = args.iter();
    let mut pieces = template.split("{}");
    if let Some(first) = pieces.next() {
        out.extend_from_slice(first.as_bytes());
    }
    for piece in pieces {
        if let Some(arg) = args.next() {
            arg.append_to(&mut out);
        }
        out.extend_from_slice(piece.as_bytes());
    }
    debug_assert!(
        args.next().is_none(),
        "more arguments than {{}} in {template:?}"
    );
    out
}

/// libkmod's default threshold: ERROR, or what `KMOD_LOG` says: a number (followed by
/// nothing or white space), else a word starting with "err", "info" or "debug", else 0.
fn kmod_log_threshold() -> i32 {
    use std::os::unix::ffi::OsStrExt;
    let Some(value) = std::env::var_os("KMOD_LOG") else {
        return Priority::Error as i32;
    };
    let value = value.as_bytes();
    let end = crate::compat::strtoul(value, 10).map_or(0, |n| n.end);
    if value.get(end).is_none_or(|&b| crate::compat::is_space(b)) {
        return crate::compat::strtoul(value, 10).map_or(0, |n| n.value as i32);
    }
    let prio = if value.starts_with(b"err") {
        Priority::Error
    } else if value.starts_with(b"info") {
        Priority::Info
    } else if value.starts_with(b"debug") {
        Priority::Debug
    } else {
        return 0;
    };
    prio as i32
}

struct TracingLayer {
    sink: Sink,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for TracingLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let prio = match *event.metadata().level() {
            tracing::Level::ERROR => Priority::Error,
            tracing::Level::WARN => Priority::Warning,
            tracing::Level::INFO => Priority::Info,
            _ => Priority::Debug,
        };
        self.sink.log(prio, message.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_thresholds() {
        assert_eq!(Priority::Fatal.label(), "FATAL");
        assert_eq!(Priority::Alert.label(), "LOG-001");
        let sink = Sink::new("t", Priority::Warning as i32, false);
        assert!(sink.enabled(Priority::Warning));
        assert!(!sink.enabled(Priority::Notice));
        assert!(Sink::silent().fail(Priority::Fatal, "hidden").is_ok());
        let quiet_fatal = Sink::new("t", Priority::Emergency as i32, false);
        assert!(quiet_fatal.fail(Priority::Fatal, "x").is_ok());
    }

    #[test]
    fn messages_keep_bytes() {
        let raw: std::ffi::OsString =
            std::os::unix::ffi::OsStringExt::from_vec(b"/a\xff.ko".to_vec());
        let path = std::path::PathBuf::from(raw);
        let text = String::from("!");
        assert_eq!(
            crate::msg![
                "could not load ",
                path,
                ": ",
                b"x",
                text,
                Cow::Borrowed("?")
            ],
            b"could not load /a\xff.ko: x!?"
        );
    }
}
