//! depmod.d: the configuration depmod reads when it scans a whole tree, turned into
//! the [`Rules`] the scan applies. Files, lines and messages as kmod 34.2 has them.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::compat::{io_errno, strerror};
use crate::diag::{Priority, Sink};
use crate::msgf;

use super::{Override, Rules, Search};

/// Where depmod.d files are looked for unless `-C` names others; for a file name
/// found in several, the first directory wins.
pub const CONFIG_DIRS: [&str; 5] = [
    "/etc/depmod.d",
    "/run/depmod.d",
    "/usr/local/lib/depmod.d",
    "/usr/lib/depmod.d",
    "/lib/depmod.d",
];

/// Reads the configuration files of `paths` (files or directories; the standard
/// directories when None) for kernel `version`, in file-name order.
pub fn load_rules(paths: Option<&[PathBuf]>, version: &[u8], log: &Sink) -> Rules {
    let defaults: Vec<PathBuf> = CONFIG_DIRS.iter().map(PathBuf::from).collect();
    let mut files: Vec<(Vec<u8>, PathBuf)> = Vec::new();
    for path in paths.unwrap_or(&defaults) {
        list_files(path, &mut files, log);
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut rules = Rules::default();
    for (_, file) in &files {
        match crate::limits::read_whole(file) {
            Ok(text) => parse(&mut rules, &text, file, version, log),
            Err(e) => log.log_bytes(
                Priority::Error,
                msgf!("file parse {}: {}", file, strerror(io_errno(&e))),
            ),
        }
    }
    rules
}

/// Adds the configuration files `path` stands for, unless a file of the same name is
/// there already.
fn list_files(path: &Path, files: &mut Vec<(Vec<u8>, PathBuf)>, log: &Sink) {
    let mut add = |name: &[u8], file: PathBuf| {
        if !files.iter().any(|(n, _)| n == name) {
            files.push((name.to_vec(), file));
        }
    };
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        let name = path.file_name().map_or(&b""[..], |n| n.as_bytes());
        add(name, path.to_path_buf());
        return;
    }
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) => {
            log.log_bytes(
                Priority::Error,
                msgf!("files list {}: {}", path, strerror(io_errno(&e))),
            );
            return;
        }
    };
    for entry in entries.map_while(Result::ok) {
        let name = entry.file_name();
        let name = name.as_bytes();
        if name.starts_with(b".") {
            continue;
        }
        if name.len() < 6 || !name.ends_with(b".conf") {
            log.log_bytes(
                Priority::Info,
                msgf!("All cfg files need .conf: {}/{}", path, name),
            );
            continue;
        }
        match std::fs::metadata(entry.path()) {
            Err(_) => log.log_bytes(
                Priority::Error,
                msgf!("Cannot stat directory entry: {}{}", path, name),
            ),
            Ok(m) if m.is_dir() => log.log_bytes(
                Priority::Error,
                msgf!(
                    "Directories inside directories are not supported: {}/{}",
                    path,
                    name
                ),
            ),
            Ok(_) => add(name, entry.path()),
        }
    }
}

/// Whether a version pattern of an `override` or `external` line matches: `*`, or a
/// POSIX extended regular expression found anywhere in the version (matched by
/// compat::ere, linear in time and bounded in size, as glibc's engine is not).
fn version_matches(pattern: &[u8], version: &[u8]) -> bool {
    // A pattern regcomp would reject matches nothing, as in kmod.
    pattern == b"*" || crate::compat::ere::is_match(pattern, version).unwrap_or(false)
}

/// The rules one depmod.d file's `text` gives for kernel `version`, with the messages
/// depmod prints for it (the file is named `depmod.conf` in them).
pub fn parse_text(text: &[u8], version: &[u8], log: &Sink) -> Rules {
    let mut rules = Rules::default();
    parse(&mut rules, text, Path::new("depmod.conf"), version, log);
    rules
}

fn parse(rules: &mut Rules, text: &[u8], file: &Path, version: &[u8], log: &Sink) {
    for (number, line) in crate::config::logical_lines(text) {
        if line.first().is_none_or(|&b| b == b'#') {
            continue;
        }
        let mut words = line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|w| !w.is_empty());
        let Some(command) = words.next() else {
            continue;
        };
        let mut arguments = |n: usize| -> Option<Vec<&[u8]>> {
            let args: Vec<&[u8]> = words.by_ref().take(n).collect();
            (args.len() == n).then_some(args)
        };
        let bad = match command {
            b"search" => {
                rules.search.extend(words.by_ref().map(|w| match w {
                    b"built-in" => Search::BuiltIn,
                    b"external" => Search::External,
                    dir => Search::Dir(dir.to_vec()),
                }));
                false
            }
            b"exclude" => {
                rules.excludes.extend(words.by_ref().map(<[u8]>::to_vec));
                false
            }
            b"override" => match arguments(3) {
                None => true,
                Some(args) => {
                    if version_matches(args[1], version) {
                        rules.overrides.push(Override {
                            modname: args[0].to_vec(),
                            subdir: args[2].to_vec(),
                        });
                    } else {
                        log.log_bytes(
                            Priority::Info,
                            msgf!(
                                "{}:{}: override kernel did not match {}",
                                file,
                                number,
                                args[1]
                            ),
                        );
                    }
                    false
                }
            },
            b"external" => match arguments(2) {
                None => true,
                Some(args) => {
                    if version_matches(args[0], version) {
                        rules.externals.push(args[1].to_vec());
                    } else {
                        log.log_bytes(
                            Priority::Info,
                            msgf!(
                                "{}:{}: external directory did not match {}",
                                file,
                                number,
                                args[0]
                            ),
                        );
                    }
                    false
                }
            },
            b"include" | b"make_map_files" => {
                log.log_bytes(
                    Priority::Info,
                    msgf!(
                        "{}:{}: command {} not implemented yet",
                        file,
                        number,
                        command
                    ),
                );
                false
            }
            _ => true,
        };
        if bad {
            log.log_bytes(
                Priority::Error,
                msgf!(
                    "{}:{}: ignoring bad line starting with '{}'",
                    file,
                    number,
                    command
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_lines() {
        let text = b"a \\\nb\n\\#c\nd\\";
        let expected: Vec<(usize, Vec<u8>)> = vec![
            (2, b"a b".to_vec()),
            (3, b"#c".to_vec()),
            (4, b"d".to_vec()),
        ];
        assert_eq!(crate::config::logical_lines(text), expected);
    }

    #[test]
    fn versions() {
        assert!(version_matches(b"*", b"6.1.0"));
        assert!(version_matches(b"4\\.4\\..*", b"4.4.4"));
        assert!(version_matches(b"1", b"6.1.0"));
        assert!(!version_matches(b"^5", b"6.1.0"));
        assert!(!version_matches(b"(", b"6.1.0"));
    }

    /// What fuzzing found against glibc's engine (it took gigabytes, minutes, or
    /// overflowed the stack on these): compat::ere answers each at once.
    #[test]
    fn hostile_version_patterns() {
        let started = std::time::Instant::now();
        for pattern in [
            [&b"6."[..], &[b'+'; 40], b"*"].concat(),
            [&b"(\xff"[..], &[b'|'; 23], b"])+++++"].concat(),
            b"((a{1000}){1000}){1000}".to_vec(),
            b"((|a){1,100}){1,100}".to_vec(),
            vec![b'a'; 3000],
        ] {
            let _ = version_matches(&pattern, b"6.1.0");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        // Back-references are not supported: no match, as for a pattern regcomp refuses.
        assert!(!version_matches(b"(a)\\1", b"aa"));
    }

    #[test]
    fn directives() {
        let log = Sink::silent();
        let mut rules = Rules::default();
        let text = b"search updates built-in\nexternal * /ext\nexternal ^9 /no\n\
                     override a 6.* extra\nexclude build2\n\tsearch external\n";
        parse(&mut rules, text, Path::new("x.conf"), b"6.1", &log);
        assert_eq!(
            rules.search,
            [
                Search::Dir(b"updates".to_vec()),
                Search::BuiltIn,
                Search::External
            ]
        );
        assert_eq!(rules.externals, [b"/ext".to_vec()]);
        assert_eq!(rules.overrides.len(), 1);
        assert_eq!(rules.excludes, [b"build2".to_vec()]);
    }
}
