//! `kmod static-nodes`: the device nodes modules.devname asks for, in the formats
//! systemd-tmpfiles and udev consume.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use clap::{Arg, ArgAction, Command};

use crate::resolve::{kernel_release, MODULE_DIRECTORY};

use crate::compat::{fgets_lines, io_strerror, is_space, scan_u32};
use crate::msg;

use super::{last_value, parse, value};

/// kmod reads modules.devname with fgets into a PATH_MAX buffer.
const PATH_MAX: usize = 4096;

const FORMATS: [(&str, &str); 3] = [
    ("human", "(default) a human readable format. Do not parse."),
    (
        "tmpfiles",
        "the tmpfiles.d(5) format used by systemd-tmpfiles.",
    ),
    ("devname", "the modules.devname format."),
];

pub fn command() -> Command {
    Command::new("static-nodes")
        .about("output the static-node information installed with the currently running kernel")
        .arg(value(
            "format",
            'f',
            "format",
            "FORMAT",
            "choose format to use: see \"Formats\"",
        ))
        .arg(value(
            "output",
            'o',
            "output",
            "FILE",
            "write output to file",
        ))
        .arg(
            Arg::new("help")
                .short('h')
                .long("help")
                .help("show this help")
                .action(ArgAction::SetTrue),
        )
}

fn help() {
    print!(
        "Usage:\n\tkmod static-nodes [options]\n\n\
         kmod static-nodes outputs the static-node information of the currently running kernel.\n\n\
         Options:\n\
         \t-f, --format=FORMAT  choose format to use: see \"Formats\"\n\
         \t-o, --output=FILE    write output to file\n\
         \t-h, --help           show this help\n\nFormats:\n"
    );
    for (name, description) in FORMATS {
        println!("\t{name:<12} {description}");
    }
}

/// One line of modules.devname: `name devname c|bMAJ:MIN`.
struct Node<'a> {
    module: &'a [u8],
    devname: &'a [u8],
    kind: u8,
    major: u32,
    minor: u32,
}

/// sscanf(line, "%s %s %c%u:%u") with all five conversions made, and a `c` or `b`.
fn parse_line(line: &[u8]) -> Option<Node<'_>> {
    fn skip_space(s: &[u8]) -> &[u8] {
        &s[s.iter().position(|&b| !is_space(b)).unwrap_or(s.len())..]
    }
    let word = |s: &[u8]| -> Option<(usize, usize)> {
        let start = s.iter().position(|&b| !is_space(b))?;
        let len = s[start..].iter().take_while(|&&b| !is_space(b)).count();
        Some((start, start + len))
    };
    let (start, end) = word(line)?;
    let module = &line[start..end];
    let rest = &line[end..];
    let (start, end) = word(rest)?;
    let devname = &rest[start..end];
    let rest = skip_space(&rest[end..]);
    let (&kind, rest) = rest.split_first()?;
    let (major, rest) = scan_u32(rest)?;
    let (minor, _) = scan_u32(rest.strip_prefix(b":")?)?;
    matches!(kind, b'c' | b'b').then_some(Node {
        module,
        devname,
        kind,
        major,
        minor,
    })
}

fn render(node: &Node, format: &str) -> Vec<u8> {
    let numbers = format!("{}:{}", node.major, node.minor);
    let kind = [node.kind];
    match format {
        "tmpfiles" => {
            let mut out = Vec::new();
            if let Some(slash) = node.devname.iter().rposition(|&b| b == b'/') {
                out.extend(msg!["d /dev/", &node.devname[..slash], " 0755 - - -\n"]);
            }
            out.extend(msg![
                kind,
                "! /dev/",
                node.devname,
                " 0600 - - - ",
                numbers,
                "\n"
            ]);
            out
        }
        "devname" => msg![node.module, " ", node.devname, " ", kind, numbers, "\n"],
        _ => {
            let kind = if node.kind == b'c' {
                "character"
            } else {
                "block"
            };
            msg![
                "Module: ",
                node.module,
                "\n\tDevice node: /dev/",
                node.devname,
                format!(
                    "\n\t\tType: {kind} device\n\t\tMajor: {}\n\t\tMinor: {}\n",
                    node.major, node.minor
                )
            ]
        }
    }
}

pub fn run(argv0: &str, args: Vec<OsString>) -> i32 {
    let m = match parse(command(), argv0, args) {
        Ok(m) => m,
        Err(code) => return code,
    };
    if m.get_flag("help") {
        help();
        return 0;
    }
    let format = last_value(&m, "format").unwrap_or_else(|| "human".into());
    let Some(format) = FORMATS
        .iter()
        .map(|(name, _)| *name)
        .find(|name| format.as_bytes() == name.as_bytes())
    else {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(&msg!["Unknown format: '", format, "'.\n"]);
        help();
        return 1;
    };
    let Ok(release) = kernel_release() else {
        eprintln!("Error: uname failed!");
        return 1;
    };
    let source = PathBuf::from(OsString::from_vec(msg![
        MODULE_DIRECTORY,
        "/",
        release,
        "/modules.devname"
    ]));
    let text = match crate::limits::read_whole(&source) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprint_bytes(&msg!["Warning: ", source, " not found - ignoring\n"]);
            return 0;
        }
        Err(e) => {
            eprint_bytes(&msg![
                "Error: could not open ",
                source,
                " - ",
                io_strerror(&e),
                "\n"
            ]);
            return 1;
        }
    };
    let mut out: Box<dyn Write> = match last_value(&m, "output") {
        None => Box::new(std::io::stdout().lock()),
        Some(path) => {
            let path = PathBuf::from(path);
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                if let Err(e) = std::fs::create_dir_all(parent) {
                    eprint_bytes(&msg![
                        "Error: could not create parent directory for ",
                        path,
                        " - ",
                        io_strerror(&e),
                        ".\n"
                    ]);
                    return 1;
                }
            }
            match std::fs::File::create(&path) {
                Ok(f) => Box::new(std::io::BufWriter::new(f)),
                Err(e) => {
                    eprint_bytes(&msg![
                        "Error: could not create ",
                        path,
                        " - ",
                        io_strerror(&e),
                        "\n"
                    ]);
                    return 1;
                }
            }
        }
    };
    let mut code = 0;
    for line in fgets_lines(&text, PATH_MAX) {
        if line.starts_with(b"#") {
            continue;
        }
        match parse_line(line) {
            Some(node) => {
                if out.write_all(&render(&node, format)).is_err() {
                    code = 1;
                }
            }
            None => {
                eprint_bytes(&msg!["Error: invalid devname entry: ", line]);
                code = 1;
            }
        }
    }
    if out.flush().is_err() {
        code = 1;
    }
    code
}

fn eprint_bytes(bytes: &[u8]) {
    let _ = std::io::stderr().lock().write_all(bytes);
}

#[cfg(test)]
mod tests {
    use super::{parse_line, render};

    #[test]
    fn formats() {
        let n = parse_line(b"fuse fuse c10:229\n").unwrap();
        assert_eq!(render(&n, "devname"), b"fuse fuse c10:229\n");
        assert_eq!(render(&n, "tmpfiles"), b"c! /dev/fuse 0600 - - - 10:229\n");
        let n = parse_line(b"tun net/tun c10:200\n").unwrap();
        assert_eq!(
            render(&n, "tmpfiles"),
            b"d /dev/net 0755 - - -\nc! /dev/net/tun 0600 - - - 10:200\n"
        );
        let human = String::from_utf8(render(&n, "human")).unwrap();
        assert!(human.contains("\t\tType: character device\n"));
        assert!(parse_line(b"x y z1:2\n").is_none());
        assert!(parse_line(b"x y\n").is_none());
        // sscanf skips white space before %c and %u.
        assert!(parse_line(b"a b  c 10: 2junk\n").is_some_and(|n| n.minor == 2));
    }
}
