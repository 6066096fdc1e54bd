//! The manual pages and shell completions against the tools' command-line
//! definitions: every option of every tool is documented and completed, nothing else
//! is, the pages render without groff warnings, and the completion scripts work in
//! bash, zsh and fish (each driven the way an interactive shell drives it).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use kmod_rs::cli as tools;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every manual page, by file name.
const PAGES: [&str; 12] = [
    "kmod.8",
    "kmod-sign.8",
    "kmod-verify.8",
    "insmod.8",
    "rmmod.8",
    "lsmod.8",
    "modinfo.8",
    "modprobe.8",
    "depmod.8",
    "modprobe.d.5",
    "depmod.d.5",
    "modules.dep.5",
];

/// The names kmod runs as besides its own, which `kmod` also takes as commands.
const TOOL_NAMES: [&str; 6] = ["insmod", "rmmod", "lsmod", "modinfo", "modprobe", "depmod"];

/// A command line whose options the docs must cover.
struct Tool {
    /// The words that start it (`kmod static-nodes` is two).
    words: &'static [&'static str],
    /// Every spelling of every option: `-x` for shorts, `--long` for longs and aliases.
    options: BTreeSet<String>,
    /// The manual page documenting it.
    page: &'static str,
}

/// The tools with a clap definition, plus the `kmod` front end, whose few options
/// are parsed by hand and read here from its help text.
fn tools() -> Vec<Tool> {
    let clap_tools = [
        (&["insmod"][..], tools::insmod::command(), "insmod.8"),
        (&["rmmod"][..], tools::rmmod::command(), "rmmod.8"),
        (&["lsmod"][..], tools::lsmod::command(), "lsmod.8"),
        (&["modinfo"][..], tools::modinfo::command(), "modinfo.8"),
        (&["modprobe"][..], tools::modprobe::command(), "modprobe.8"),
        (&["depmod"][..], tools::depmod::command(), "depmod.8"),
        (
            &["kmod", "static-nodes"][..],
            tools::static_nodes::command(),
            "kmod.8",
        ),
        (&["kmod", "sign"][..], tools::sign::command(), "kmod-sign.8"),
        (
            &["kmod", "verify"][..],
            tools::verify::command(),
            "kmod-verify.8",
        ),
    ];
    let mut all: Vec<Tool> = clap_tools
        .into_iter()
        .map(|(words, command, page)| Tool {
            words,
            options: spellings(&command),
            page,
        })
        .collect();
    all.push(Tool {
        words: &["kmod"],
        options: kmod_help_section("Options:")
            .iter()
            .flat_map(|line| line.split([',', ' ']))
            .filter(|word| word.starts_with('-'))
            .map(str::to_string)
            .collect(),
        page: "kmod.8",
    });
    all
}

fn spellings(command: &clap::Command) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for arg in command.get_arguments().filter(|a| !a.is_positional()) {
        let shorts = arg.get_short().into_iter();
        for short in shorts.chain(arg.get_all_short_aliases().into_iter().flatten()) {
            out.insert(format!("-{short}"));
        }
        let longs = arg.get_long().into_iter();
        for long in longs.chain(arg.get_all_aliases().into_iter().flatten()) {
            out.insert(format!("--{long}"));
        }
    }
    out
}

/// The lines of a section of `kmod --help` (from its heading to the blank line).
fn kmod_help_section(heading: &str) -> Vec<String> {
    let help = run_ok(Command::new(common::ours("kmod")).arg("--help"));
    help.lines()
        .skip_while(|line| *line != heading)
        .skip(1)
        .take_while(|line| !line.is_empty())
        .map(|line| line.trim().to_string())
        .collect()
}

/// The commands `kmod --help` lists.
fn kmod_commands() -> BTreeSet<String> {
    kmod_help_section("Commands:")
        .iter()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn run_ok(command: &mut Command) -> String {
    let out = command.output().expect("run");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn page_path(page: &str) -> PathBuf {
    Path::new(ROOT).join("man").join(page)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Plain text of a roff line: without its macro name, font escapes and quotes, and
/// with `\-` as the hyphen it stands for.
fn roff_text(line: &str) -> String {
    let mut text = line.replace("\\-", "-").replace('"', " ");
    for escape in ["\\fB", "\\fI", "\\fR", "\\fP", "\\&", "\\%"] {
        text = text.replace(escape, "");
    }
    match text.strip_prefix('.') {
        Some(rest) => rest
            .split_once(' ')
            .map_or("", |(_, args)| args)
            .to_string(),
        None => text,
    }
}

/// The words of the tags of a page's `.TP` and `.TQ` paragraphs, which is where
/// option and command lists name what they describe.
fn tag_words(page: &str) -> Vec<Vec<String>> {
    let text = read(&page_path(page));
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter(|pair| pair[0] == ".TP" || pair[0] == ".TQ")
        .map(|pair| {
            roff_text(pair[1])
                .split(|c: char| c.is_whitespace() || ",=[]|".contains(c))
                .filter(|word| !word.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

fn documented_options(page: &str) -> BTreeSet<String> {
    tag_words(page)
        .into_iter()
        .flatten()
        .filter(|word| word.len() > 1 && word.starts_with('-'))
        .collect()
}

#[test]
fn every_tool_with_a_command_is_checked() {
    let tools = tools();
    let checked: Vec<&str> = tools
        .iter()
        .filter_map(|t| t.words.last().copied())
        .collect();
    let tools_dir = Path::new(ROOT).join("src/cli");
    for line in read(&tools_dir.join("mod.rs")).lines() {
        let Some(module) = line
            .strip_prefix("pub mod ")
            .and_then(|rest| rest.strip_suffix(';'))
        else {
            continue;
        };
        let source = read(&tools_dir.join(format!("{module}.rs")));
        let name = module.replace('_', "-");
        assert!(
            !source.contains("pub fn command()") || checked.contains(&name.as_str()),
            "src/cli/{module}.rs defines command(): add it to tools() in tests/docs.rs, \
             so that its manual page and completions are checked"
        );
    }
}

#[test]
fn every_page_exists_and_is_titled_for_its_file() {
    for page in PAGES {
        let text = read(&page_path(page));
        let (name, section) = page.rsplit_once('.').unwrap();
        let title = format!(".TH {} {section} ", name.to_uppercase());
        assert!(
            text.starts_with(&title),
            "man/{page} must start with `{title}`"
        );
    }
}

#[test]
fn pages_document_every_option_and_no_other() {
    let tools = tools();
    let mut failures = Vec::new();
    for page in PAGES {
        let documented = documented_options(page);
        let ours: Vec<&Tool> = tools.iter().filter(|t| t.page == page).collect();
        for tool in &ours {
            let missing: Vec<&String> = tool.options.difference(&documented).collect();
            if !missing.is_empty() {
                let command = tool.words.join(" ");
                failures.push(format!(
                    "man/{page} lacks options of `{command}`: {missing:?}"
                ));
            }
        }
        // A page whose tool has no clap definition yet is only checked one way.
        if ours.is_empty() {
            continue;
        }
        let known: BTreeSet<&String> = ours.iter().flat_map(|t| &t.options).collect();
        let stale: Vec<&String> = documented.iter().filter(|o| !known.contains(o)).collect();
        if !stale.is_empty() {
            failures.push(format!("man/{page} documents unknown options: {stale:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn kmod_page_documents_every_command() {
    let tagged: BTreeSet<String> = tag_words("kmod.8").into_iter().flatten().collect();
    for command in kmod_commands().iter().map(String::as_str).chain(TOOL_NAMES) {
        assert!(
            tagged.contains(command),
            "man/kmod.8 does not document the command `{command}`"
        );
    }
}

#[test]
fn pages_render_without_warnings() {
    for program in ["man", "groff"] {
        require(
            program,
            "man-db and groff (Debian: apt-get install man-db groff-base)",
        );
    }
    for page in PAGES {
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(page_path(page))
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C")
            .env_remove("MANOPT")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "man --warnings -l man/{page}: {stderr}"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("NAME"), "man/{page} rendered as: {text}");
    }
}

// Completions.

fn completion_file(shell: &str) -> PathBuf {
    let file = match shell {
        "bash" => "bash/kmod",
        "zsh" => "zsh/_kmod",
        _ => "fish/kmod.fish",
    };
    Path::new(ROOT).join("completions").join(file)
}

/// Fails the test when `program` is missing: these checks are never skipped, CI
/// installs what they need.
fn require(program: &str, packages: &str) {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`{program}` is needed for this test: install {packages}"
    );
}

/// A shell with our tools first in PATH and its own scratch home.
fn shell(name: &str) -> Command {
    let mut command = Command::new(name);
    // modinfo completes module parameters; the shells find ours first.
    let links = common::ours("modinfo").parent().unwrap().to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![links];
    dirs.extend(std::env::split_paths(&path));
    command.env("PATH", std::env::join_paths(dirs).unwrap());
    // Shells read and write their per-user files under these.
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    let home = HOME.get_or_init(|| scratch("home"));
    command
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CACHE_HOME", home.join("cache"));
    command
}

/// A new empty directory, never shared: the tests run in parallel.
fn scratch(name: &str) -> PathBuf {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("docs-{}", std::process::id()))
        .join(format!("{name}-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The candidates a shell printed, one a line; any error message fails the test.
fn lines(out: &Output, what: &str) -> BTreeSet<String> {
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // fish follows a candidate with a tab and its description.
        .map(|line| line.split('\t').next().unwrap().to_string())
        .filter(|line| !line.is_empty())
        .collect()
}

/// What bash completes for each command line (the last word is the one being
/// completed), calling the function the script registered for the command with the
/// variables bash sets.
fn bash_complete(cases: &[Vec<String>]) -> Vec<BTreeSet<String>> {
    const DRIVER: &str = r#"
        source "$1" || exit 1
        shift
        COMP_WORDS=("$@")
        COMP_CWORD=$(($# - 1))
        COMP_LINE="$*"
        COMP_POINT=${#COMP_LINE}
        spec=$(complete -p "$1") || exit 1
        function=${spec#*-F }
        function=${function%% *}
        "$function" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    cases
        .iter()
        .map(|words| {
            let out = shell("bash")
                .args(["-c", DRIVER, "bash"])
                .arg(completion_file("bash"))
                .args(words)
                .output()
                .unwrap();
            lines(&out, &format!("bash completion of {words:?}"))
        })
        .collect()
}

/// What fish completes for each command line, with the script installed as it is by
/// `make install` (one file, linked under every command's name) and fish's own
/// completions for these commands out of the way.
fn fish_complete(cases: &[Vec<String>]) -> Vec<BTreeSet<String>> {
    let dir = scratch("fish-completions");
    for name in TOOL_NAMES.iter().chain(&["kmod"]) {
        std::os::unix::fs::symlink(completion_file("fish"), dir.join(format!("{name}.fish")))
            .unwrap();
    }
    cases
        .iter()
        .map(|words| {
            let out = shell("fish")
                .args([
                    "-c",
                    "set -g fish_complete_path $argv[1]; complete -C $argv[2]",
                ])
                .arg(&dir)
                .arg(words.join(" "))
                .output()
                .unwrap();
            lines(&out, &format!("fish completion of {words:?}"))
        })
        .collect()
}

/// What zsh completes for each command line: an interactive zsh on a pseudo-terminal
/// gets each line typed and a Tab, and a wrapper around `compadd` records the matches
/// the completion functions add. Each line is followed, in the same editing session,
/// by a command printing a marker, and the driver waits for the marker and the next
/// prompt before typing on (input typed while a command runs can be discarded).
fn zsh_complete(cases: &[Vec<String>]) -> Vec<BTreeSet<String>> {
    const DRIVER: &str = r#"
        zmodload zsh/zpty || exit 1
        fpath_dir=$1 out=$2
        shift 2
        zpty z zsh -f -i
        zpty -w z "PS1='<ready>'; fpath=(${(q)fpath_dir} \$fpath); autoload -Uz compinit"
        zpty -w z "compinit -u -D; unsetopt autolist beep; bindkey '^I' complete-word"
        zpty -w z 'compadd() {
            if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi
            local -a matches
            builtin compadd -A matches "$@"
            (( $#matches )) && print -rl -- $matches >> $MATCHES
            builtin compadd "$@"
        }'
        zpty -w z "MATCHES=${(q)out}/1; print '<''done-0>'"
        zpty -r z _ '*<done-0>*<ready>*'
        i=0
        for line; do
            (( i++ ))
            zpty -w z "$line"$'\t\C-u'"MATCHES=${(q)out}/$((i + 1)); print '<''done-$i>'"
            zpty -r z _ "*<done-$i>*<ready>*"
        done
        zpty -d z
    "#;
    let out_dir = scratch("zsh-matches");
    let mut zsh = shell("zsh");
    zsh.args(["-f", "-c", DRIVER, "zsh"])
        .arg(completion_file("zsh").parent().unwrap())
        .arg(&out_dir)
        .args(cases.iter().map(|words| words.join(" ")))
        .stdin(Stdio::null());
    let mut child = zsh.spawn().unwrap();
    // A driver stuck waiting for a prompt must fail the test, not hang it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("zsh completion driver timed out");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "zsh completion driver failed");
    (1..=cases.len())
        .map(|i| {
            std::fs::read_to_string(out_dir.join(i.to_string()))
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// A command line to complete (its last word is the one being completed) and
/// exactly what must be offered.
struct Case {
    words: Vec<String>,
    expected: BTreeSet<String>,
}

fn case(words: &[&str], expected: impl IntoIterator<Item = impl ToString>) -> Case {
    Case {
        words: words.iter().map(|w| w.to_string()).collect(),
        expected: expected.into_iter().map(|e| e.to_string()).collect(),
    }
}

/// A module tree with two kernel releases, the first with modules.dep and
/// modules.alias, and a module file with two parameters.
fn fixture() -> (PathBuf, PathBuf) {
    let root = scratch("tree");
    let dir = root.join("lib/modules/1.0");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(root.join("lib/modules/2.0")).unwrap();
    std::fs::write(
        dir.join("modules.dep"),
        "kernel/sound/snd-hda-intel.ko.xz: kernel/sound/snd.ko.xz\n\
         kernel/sound/snd.ko.xz:\n\
         kernel/fs/ext4/ext4.ko.zst:\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("modules.alias"),
        "# Aliases extracted from modules themselves.\n\
         alias pci:v00008086d00000C0Csv*sd*bc*sc*i* snd_hda_intel\n\
         alias snd-card-0 snd_hda_intel\n\
         alias char-major-116-* snd\n\
         alias fs-ext4 ext4\n",
    )
    .unwrap();
    let module = root.join("demo.ko");
    kogen::Module::new("demo")
        .modinfo("parm", "index:Index of the card")
        .modinfo("parmtype", "index:int")
        .modinfo("parm", "debug:Print more")
        .write(&module, kogen::Compression::None)
        .unwrap();
    (root, module)
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for tool in tools() {
        let mut dash = tool.words.to_vec();
        dash.push("-");
        let longs: BTreeSet<&String> = tool
            .options
            .iter()
            .filter(|o| o.starts_with("--"))
            .collect();
        let mut double_dash = tool.words.to_vec();
        double_dash.push("--");
        cases.push(case(&dash, &tool.options));
        cases.push(case(&double_dash, longs));
    }
    // The front end hands the rest of the line to the command.
    let lsmod = spellings(&tools::lsmod::command());
    cases.push(case(&["kmod", "list", "-"], &lsmod));
    let modprobe = spellings(&tools::modprobe::command());
    cases.push(case(&["kmod", "modprobe", "-"], &modprobe));
    let commands = kmod_commands()
        .into_iter()
        .chain(TOOL_NAMES.map(String::from));
    cases.push(case(&["kmod", ""], commands));

    let formats: Vec<String> =
        run_ok(Command::new(common::ours("kmod")).args(["static-nodes", "--help"]))
            .lines()
            .skip_while(|line| *line != "Formats:")
            .skip(1)
            .filter_map(|line| line.split_whitespace().next().map(str::to_string))
            .collect();
    cases.push(case(&["kmod", "static-nodes", "-f", ""], formats));
    // sign's hash comes first, or after -s's raw signature.
    let hashes = ["sha256", "sha384", "sha512"];
    cases.push(case(&["kmod", "sign", ""], hashes));
    cases.push(case(&["kmod", "sign", "-p", "sha"], hashes));
    cases.push(case(&["kmod", "sign", "-s", "raw.p7s", ""], hashes));

    let (root, module) = fixture();
    let (root, module) = (root.to_str().unwrap(), module.to_str().unwrap());
    assert!(
        !root.contains(char::is_whitespace),
        "the shells get these as typed"
    );
    cases.push(case(
        &["modprobe", "-d", root, "-S", "1.0", "snd"],
        ["snd", "snd-hda-intel", "snd-card-0"],
    ));
    cases.push(case(
        &["modinfo", "-b", root, "-k", "1.0", ""],
        ["snd", "snd-hda-intel", "ext4", "snd-card-0", "fs-ext4"],
    ));
    cases.push(case(&["modprobe", "-d", root, "-S", ""], ["1.0", "2.0"]));
    cases.push(case(&["modinfo", "-b", root, "-k", ""], ["1.0", "2.0"]));
    cases.push(case(&["depmod", "-b", root, ""], ["1.0", "2.0"]));
    cases.push(case(&["insmod", module, ""], ["index", "debug"]));
    cases.push(case(&["modprobe", module, ""], ["index", "debug"]));
    let loaded: BTreeSet<String> = std::fs::read_to_string("/proc/modules")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').next().map(str::to_string))
        .collect();
    cases.push(case(&["rmmod", ""], &loaded));
    cases.push(case(&["modprobe", "-r", ""], &loaded));
    cases
}

fn check_completions(shell: &str, complete: fn(&[Vec<String>]) -> Vec<BTreeSet<String>>) {
    require(shell, shell);
    let cases = cases();
    let words: Vec<Vec<String>> = cases.iter().map(|c| c.words.clone()).collect();
    let mut failures = Vec::new();
    for (case, offered) in cases.iter().zip(complete(&words)) {
        // Module parameters are offered as "name=" by bash and fish; zsh adds the "="
        // as a suffix, outside the match.
        let offered: BTreeSet<String> = offered
            .into_iter()
            .map(|o| o.trim_end_matches('=').to_string())
            .collect();
        let missing: Vec<&String> = case.expected.difference(&offered).collect();
        let extra: Vec<&String> = offered.difference(&case.expected).collect();
        if !missing.is_empty() || !extra.is_empty() {
            failures.push(format!(
                "`{}`: missing {missing:?}, unexpected {extra:?}",
                case.words.join(" ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{shell} completions ({}):\n{}",
        completion_file(shell).display(),
        failures.join("\n")
    );
}

#[test]
fn completion_scripts_parse() {
    for name in ["bash", "zsh", "fish"] {
        require(name, name);
        let out = shell(name)
            .arg("-n")
            .arg(completion_file(name))
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{name} -n {}: {}",
            completion_file(name).display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn bash_completes_options_modules_and_values() {
    check_completions("bash", bash_complete);
}

#[test]
fn fish_completes_options_modules_and_values() {
    check_completions("fish", fish_complete);
}

#[test]
fn zsh_completes_options_modules_and_values() {
    check_completions("zsh", zsh_complete);
}
