//! `kmod static-nodes`: the device nodes modules.devname asks for, in the formats
//! systemd-tmpfiles and udev consume.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use clap::{Arg, ArgAction, Command};

use kmod_rs::resolve::{kernel_release, MODULE_DIRECTORY};

use super::{parse, strerror, value};

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
    module: &'a str,
    devname: &'a str,
    kind: char,
    major: u32,
    minor: u32,
}

fn parse_line(line: &str) -> Option<Node<'_>> {
    let mut words = line.split_whitespace();
    let (module, devname, spec) = (words.next()?, words.next()?, words.next()?);
    let kind = spec.chars().next().filter(|c| matches!(c, 'c' | 'b'))?;
    let (major, minor) = spec[1..].split_once(':')?;
    // Like sscanf's %u, trailing junk after the minor number is ignored.
    let minor_digits = minor.len() - minor.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    Some(Node {
        module,
        devname,
        kind,
        major: major.parse().ok()?,
        minor: minor[..minor_digits].parse().ok()?,
    })
}

fn render(node: &Node, format: &str) -> String {
    match format {
        "tmpfiles" => {
            let mut out = String::new();
            if let Some((dir, _)) = node.devname.rsplit_once('/') {
                out.push_str(&format!("d /dev/{dir} 0755 - - -\n"));
            }
            out.push_str(&format!(
                "{}! /dev/{} 0600 - - - {}:{}\n",
                node.kind, node.devname, node.major, node.minor
            ));
            out
        }
        "devname" => format!(
            "{} {} {}{}:{}\n",
            node.module, node.devname, node.kind, node.major, node.minor
        ),
        _ => format!(
            "Module: {}\n\tDevice node: /dev/{}\n\t\tType: {} device\n\t\tMajor: {}\n\t\tMinor: {}\n",
            node.module,
            node.devname,
            if node.kind == 'c' { "character" } else { "block" },
            node.major,
            node.minor
        ),
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
    let format = m
        .get_many::<String>("format")
        .and_then(|mut v| v.next_back().cloned())
        .unwrap_or_else(|| "human".into());
    if !FORMATS.iter().any(|(name, _)| *name == format) {
        eprintln!("Unknown format: '{format}'.");
        help();
        return 1;
    }
    let Ok(release) = kernel_release() else {
        eprintln!("Error: uname failed!");
        return 1;
    };
    let source = format!("{MODULE_DIRECTORY}/{release}/modules.devname");
    let text = match std::fs::read(&source) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("Warning: {source} not found - ignoring");
            return 0;
        }
        Err(e) => {
            eprintln!("Error: could not open {source} - {}", strerror(&e));
            return 1;
        }
    };
    let output = m
        .get_many::<String>("output")
        .and_then(|mut v| v.next_back().cloned());
    let mut out: Box<dyn Write> = match &output {
        None => Box::new(std::io::stdout().lock()),
        Some(path) => {
            if let Some(parent) = Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                if let Err(e) = std::fs::create_dir_all(parent) {
                    eprintln!(
                        "Error: could not create parent directory for {path} - {}.",
                        strerror(&e)
                    );
                    return 1;
                }
            }
            match std::fs::File::create(path) {
                Ok(f) => Box::new(std::io::BufWriter::new(f)),
                Err(e) => {
                    eprintln!("Error: could not create {path} - {}", strerror(&e));
                    return 1;
                }
            }
        }
    };
    let mut code = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Some(node) => {
                if out.write_all(render(&node, &format).as_bytes()).is_err() {
                    code = 1;
                }
            }
            None => {
                eprint!("Error: invalid devname entry: {line}");
                code = 1;
            }
        }
    }
    if out.flush().is_err() {
        code = 1;
    }
    code
}

#[cfg(test)]
mod tests {
    use super::{parse_line, render};

    #[test]
    fn formats() {
        let n = parse_line("fuse fuse c10:229\n").unwrap();
        assert_eq!(render(&n, "devname"), "fuse fuse c10:229\n");
        assert_eq!(render(&n, "tmpfiles"), "c! /dev/fuse 0600 - - - 10:229\n");
        let n = parse_line("tun net/tun c10:200\n").unwrap();
        assert_eq!(
            render(&n, "tmpfiles"),
            "d /dev/net 0755 - - -\nc! /dev/net/tun 0600 - - - 10:200\n"
        );
        assert!(render(&n, "human").contains("\t\tType: character device\n"));
        assert!(parse_line("x y z1:2\n").is_none());
        assert!(parse_line("x y\n").is_none());
    }
}
