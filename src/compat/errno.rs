//! errno texts as glibc's `strerror` words them, whatever C library this binary is
//! linked with: scripts match kmod's messages, and musl (the static build) and nix's
//! table word many of them differently ("I/O error" for EIO).

use std::borrow::Cow;

use nix::errno::Errno;

/// The text of an errno (glibc 2.36's wording). Matched by name, so the numbering of
/// the target architecture (mips and sparc differ) does not matter.
pub fn strerror(errno: Errno) -> Cow<'static, str> {
    let text = match errno {
        Errno::UnknownErrno => "Success",
        Errno::EPERM => "Operation not permitted",
        Errno::ENOENT => "No such file or directory",
        Errno::ESRCH => "No such process",
        Errno::EINTR => "Interrupted system call",
        Errno::EIO => "Input/output error",
        Errno::ENXIO => "No such device or address",
        Errno::E2BIG => "Argument list too long",
        Errno::ENOEXEC => "Exec format error",
        Errno::EBADF => "Bad file descriptor",
        Errno::ECHILD => "No child processes",
        Errno::EAGAIN => "Resource temporarily unavailable",
        Errno::ENOMEM => "Cannot allocate memory",
        Errno::EACCES => "Permission denied",
        Errno::EFAULT => "Bad address",
        Errno::ENOTBLK => "Block device required",
        Errno::EBUSY => "Device or resource busy",
        Errno::EEXIST => "File exists",
        Errno::EXDEV => "Invalid cross-device link",
        Errno::ENODEV => "No such device",
        Errno::ENOTDIR => "Not a directory",
        Errno::EISDIR => "Is a directory",
        Errno::EINVAL => "Invalid argument",
        Errno::ENFILE => "Too many open files in system",
        Errno::EMFILE => "Too many open files",
        Errno::ENOTTY => "Inappropriate ioctl for device",
        Errno::ETXTBSY => "Text file busy",
        Errno::EFBIG => "File too large",
        Errno::ENOSPC => "No space left on device",
        Errno::ESPIPE => "Illegal seek",
        Errno::EROFS => "Read-only file system",
        Errno::EMLINK => "Too many links",
        Errno::EPIPE => "Broken pipe",
        Errno::EDOM => "Numerical argument out of domain",
        Errno::ERANGE => "Numerical result out of range",
        Errno::EDEADLK => "Resource deadlock avoided",
        Errno::ENAMETOOLONG => "File name too long",
        Errno::ENOLCK => "No locks available",
        Errno::ENOSYS => "Function not implemented",
        Errno::ENOTEMPTY => "Directory not empty",
        Errno::ELOOP => "Too many levels of symbolic links",
        Errno::ENOMSG => "No message of desired type",
        Errno::EIDRM => "Identifier removed",
        Errno::ECHRNG => "Channel number out of range",
        Errno::EL2NSYNC => "Level 2 not synchronized",
        Errno::EL3HLT => "Level 3 halted",
        Errno::EL3RST => "Level 3 reset",
        Errno::ELNRNG => "Link number out of range",
        Errno::EUNATCH => "Protocol driver not attached",
        Errno::ENOCSI => "No CSI structure available",
        Errno::EL2HLT => "Level 2 halted",
        Errno::EBADE => "Invalid exchange",
        Errno::EBADR => "Invalid request descriptor",
        Errno::EXFULL => "Exchange full",
        Errno::ENOANO => "No anode",
        Errno::EBADRQC => "Invalid request code",
        Errno::EBADSLT => "Invalid slot",
        Errno::EBFONT => "Bad font file format",
        Errno::ENOSTR => "Device not a stream",
        Errno::ENODATA => "No data available",
        Errno::ETIME => "Timer expired",
        Errno::ENOSR => "Out of streams resources",
        Errno::ENONET => "Machine is not on the network",
        Errno::ENOPKG => "Package not installed",
        Errno::EREMOTE => "Object is remote",
        Errno::ENOLINK => "Link has been severed",
        Errno::EADV => "Advertise error",
        Errno::ESRMNT => "Srmount error",
        Errno::ECOMM => "Communication error on send",
        Errno::EPROTO => "Protocol error",
        Errno::EMULTIHOP => "Multihop attempted",
        Errno::EDOTDOT => "RFS specific error",
        Errno::EBADMSG => "Bad message",
        Errno::EOVERFLOW => "Value too large for defined data type",
        Errno::ENOTUNIQ => "Name not unique on network",
        Errno::EBADFD => "File descriptor in bad state",
        Errno::EREMCHG => "Remote address changed",
        Errno::ELIBACC => "Can not access a needed shared library",
        Errno::ELIBBAD => "Accessing a corrupted shared library",
        Errno::ELIBSCN => ".lib section in a.out corrupted",
        Errno::ELIBMAX => "Attempting to link in too many shared libraries",
        Errno::ELIBEXEC => "Cannot exec a shared library directly",
        Errno::EILSEQ => "Invalid or incomplete multibyte or wide character",
        Errno::ERESTART => "Interrupted system call should be restarted",
        Errno::ESTRPIPE => "Streams pipe error",
        Errno::EUSERS => "Too many users",
        Errno::ENOTSOCK => "Socket operation on non-socket",
        Errno::EDESTADDRREQ => "Destination address required",
        Errno::EMSGSIZE => "Message too long",
        Errno::EPROTOTYPE => "Protocol wrong type for socket",
        Errno::ENOPROTOOPT => "Protocol not available",
        Errno::EPROTONOSUPPORT => "Protocol not supported",
        Errno::ESOCKTNOSUPPORT => "Socket type not supported",
        Errno::ENOTSUP => "Operation not supported",
        Errno::EPFNOSUPPORT => "Protocol family not supported",
        Errno::EAFNOSUPPORT => "Address family not supported by protocol",
        Errno::EADDRINUSE => "Address already in use",
        Errno::EADDRNOTAVAIL => "Cannot assign requested address",
        Errno::ENETDOWN => "Network is down",
        Errno::ENETUNREACH => "Network is unreachable",
        Errno::ENETRESET => "Network dropped connection on reset",
        Errno::ECONNABORTED => "Software caused connection abort",
        Errno::ECONNRESET => "Connection reset by peer",
        Errno::ENOBUFS => "No buffer space available",
        Errno::EISCONN => "Transport endpoint is already connected",
        Errno::ENOTCONN => "Transport endpoint is not connected",
        Errno::ESHUTDOWN => "Cannot send after transport endpoint shutdown",
        Errno::ETOOMANYREFS => "Too many references: cannot splice",
        Errno::ETIMEDOUT => "Connection timed out",
        Errno::ECONNREFUSED => "Connection refused",
        Errno::EHOSTDOWN => "Host is down",
        Errno::EHOSTUNREACH => "No route to host",
        Errno::EALREADY => "Operation already in progress",
        Errno::EINPROGRESS => "Operation now in progress",
        Errno::ESTALE => "Stale file handle",
        Errno::EUCLEAN => "Structure needs cleaning",
        Errno::ENOTNAM => "Not a XENIX named type file",
        Errno::ENAVAIL => "No XENIX semaphores available",
        Errno::EISNAM => "Is a named type file",
        Errno::EREMOTEIO => "Remote I/O error",
        Errno::EDQUOT => "Disk quota exceeded",
        Errno::ENOMEDIUM => "No medium found",
        Errno::EMEDIUMTYPE => "Wrong medium type",
        Errno::ECANCELED => "Operation canceled",
        Errno::ENOKEY => "Required key not available",
        Errno::EKEYEXPIRED => "Key has expired",
        Errno::EKEYREVOKED => "Key has been revoked",
        Errno::EKEYREJECTED => "Key was rejected by service",
        Errno::EOWNERDEAD => "Owner died",
        Errno::ENOTRECOVERABLE => "State not recoverable",
        Errno::ERFKILL => "Operation not possible due to RF-kill",
        Errno::EHWPOISON => "Memory page has hardware error",
        #[allow(unreachable_patterns)]
        _ => return Cow::Owned(format!("Unknown error {}", errno as i32)),
    };
    Cow::Borrowed(text)
}

/// The text of an errno number.
pub fn strerror_code(code: i32) -> Cow<'static, str> {
    if code == 0 {
        return Cow::Borrowed("Success");
    }
    match Errno::from_raw(code) {
        Errno::UnknownErrno => Cow::Owned(format!("Unknown error {code}")),
        errno => strerror(errno),
    }
}

/// The text of an I/O error: its errno's text, or for errors that carry no errno
/// (std's own, such as invalid UTF-8), their description.
pub fn io_strerror(e: &std::io::Error) -> Cow<'static, str> {
    match e.raw_os_error() {
        Some(code) => strerror_code(code),
        None => Cow::Owned(e.to_string()),
    }
}

/// The errno behind an I/O error; EIO for errors that carry none.
pub fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(Errno::EIO as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_wording() {
        assert_eq!(strerror(Errno::EIO), "Input/output error");
        assert_eq!(strerror(Errno::ENOENT), "No such file or directory");
        assert_eq!(strerror(Errno::ENOEXEC), "Exec format error");
        assert_eq!(strerror(Errno::EACCES), "Permission denied");
        assert_eq!(strerror_code(0), "Success");
        assert_eq!(strerror_code(41), "Unknown error 41");
        assert_eq!(strerror_code(4000), "Unknown error 4000");
        let io = std::io::Error::from_raw_os_error(Errno::ENOMEM as i32);
        assert_eq!(io_strerror(&io), "Cannot allocate memory");
    }

    /// The table is glibc's: compare with the C library when it is glibc.
    #[cfg(target_env = "gnu")]
    #[test]
    fn matches_the_c_library() {
        for code in 0..200 {
            // SAFETY: strerror returns a valid C string, and nothing else in this
            // test calls it concurrently.
            let c = unsafe { std::ffi::CStr::from_ptr(nix::libc::strerror(code)) };
            assert_eq!(strerror_code(code), c.to_str().unwrap(), "errno {code}");
        }
    }
}
