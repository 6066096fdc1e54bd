//! `make install` into a staging directory, as a package build does it: the binary,
//! the tool links that run it, the manual pages and the completions, and
//! `make uninstall` taking all of them away again. The binary is the one cargo built
//! for the tests (KMOD_BIN), since a release build would take minutes.

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const TOOLS: [&str; 6] = ["depmod", "insmod", "lsmod", "modinfo", "modprobe", "rmmod"];

fn destdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("install-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn make(target: &str, destdir: &Path, vars: &[&str]) {
    let out = Command::new("make")
        .arg("-C")
        .arg(ROOT)
        .arg(target)
        .arg(format!("DESTDIR={}", destdir.display()))
        .arg(format!("KMOD_BIN={}", env!("CARGO_BIN_EXE_kmod")))
        .args(vars)
        .output()
        .expect("make is needed to test the installation (apt-get install make)");
    assert!(
        out.status.success(),
        "make {target} {vars:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn link_target(path: &Path) -> String {
    std::fs::read_link(path)
        .unwrap_or_else(|e| panic!("{} is not a link: {e}", path.display()))
        .display()
        .to_string()
}

/// The first line `tool --version` prints, run through its installed path.
fn version_line(tool: &Path) -> String {
    let out = Command::new(tool).arg("--version").output().unwrap();
    assert!(out.status.success(), "{} --version failed", tool.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Regular files and links under `dir`, relative to it.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.is_symlink() {
                pending.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn make_install_stages_binary_links_pages_and_completions() {
    let dest = destdir("usr");
    make("install", &dest, &["PREFIX=/usr"]);
    let usr = dest.join("usr");

    let kmod = std::fs::read(usr.join("bin/kmod")).unwrap();
    assert_eq!(kmod, std::fs::read(env!("CARGO_BIN_EXE_kmod")).unwrap());
    for tool in TOOLS {
        assert_eq!(link_target(&usr.join("sbin").join(tool)), "../bin/kmod");
    }
    assert_eq!(
        version_line(&usr.join("sbin/modprobe")),
        "kmod version 34.2"
    );

    for entry in std::fs::read_dir(Path::new(ROOT).join("man")).unwrap() {
        let page = entry.unwrap().path();
        let name = page.file_name().unwrap().to_str().unwrap();
        let section = name.rsplit('.').next().unwrap();
        let installed = usr.join(format!("share/man/man{section}/{name}"));
        assert_eq!(
            std::fs::read(&installed).unwrap_or_default(),
            std::fs::read(&page).unwrap(),
            "{} is not man/{name}",
            installed.display()
        );
    }
    assert_eq!(
        link_target(&usr.join("share/man/man5/modules.dep.bin.5")),
        "modules.dep.5"
    );

    let bash = usr.join("share/bash-completion/completions");
    let zsh = usr.join("share/zsh/site-functions");
    let fish = usr.join("share/fish/vendor_completions.d");
    for (installed, source) in [
        (bash.join("kmod"), "bash/kmod"),
        (zsh.join("_kmod"), "zsh/_kmod"),
        (fish.join("kmod.fish"), "fish/kmod.fish"),
    ] {
        let source = Path::new(ROOT).join("completions").join(source);
        assert_eq!(
            std::fs::read(&installed).unwrap_or_default(),
            std::fs::read(source).unwrap(),
            "{}",
            installed.display()
        );
    }
    for tool in TOOLS {
        assert_eq!(link_target(&bash.join(tool)), "kmod");
        assert_eq!(link_target(&fish.join(format!("{tool}.fish"))), "kmod.fish");
    }

    make("uninstall", &dest, &["PREFIX=/usr"]);
    assert_eq!(
        files(&dest),
        Vec::<PathBuf>::new(),
        "left behind by uninstall"
    );
}

#[test]
fn tool_links_follow_a_custom_layout() {
    // Distributions that merged sbin into bin put the tools next to the binary.
    let dest = destdir("merged");
    make("install", &dest, &["PREFIX=/usr", "SBINDIR=/usr/bin"]);
    let modprobe = dest.join("usr/bin/modprobe");
    assert_eq!(link_target(&modprobe), "kmod");
    assert_eq!(version_line(&modprobe), "kmod version 34.2");
}
