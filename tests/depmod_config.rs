//! depmod.d against reference kmod 34.2: which of several files of one module name
//! wins (search, override, external), exclude, and how bad lines are reported.

mod common;
mod depmod_support;

use depmod_support::{assert_same, Fixture};
use kogen::Module;

/// `mod-simple` in several places, plus one module that uses it.
fn places(fixture: &Fixture) {
    for dir in [
        "kernel/crypto",
        "updates",
        "foo",
        "foobar",
        "override",
        "built",
        "extra/deep",
    ] {
        let module = Module::new("mod_simple").export(&format!("from_{}", dir.replace('/', "_")));
        fixture.module(&format!("{dir}/mod-simple.ko"), &module);
    }
    fixture.module(
        "kernel/user.ko",
        &Module::new("user")
            .undefined("from_foo")
            .undefined("from_updates"),
    );
}

/// Writes one configuration file and returns its path.
fn config(fixture: &Fixture, name: &str, content: &str) -> String {
    let path = fixture.root.join("conf").join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn search_override_and_external() {
    let fixture = Fixture::new("search");
    places(&fixture);
    let external = fixture.root.join("ext");
    std::fs::create_dir_all(&external).unwrap();
    std::fs::write(
        external.join("mod-simple.ko"),
        Module::new("mod_simple").export("from_ext").build(),
    )
    .unwrap();
    let ext = external.to_str().unwrap();
    for (what, content) in [
        ("no search line", String::new()),
        (
            "search updates built-in",
            "search updates built-in\n".into(),
        ),
        ("same prefix", "search foobar foo built-in\n".into()),
        ("foo first", "search foo foobar\n".into()),
        ("built-in only", "search built-in\n".into()),
        (
            "two lines",
            "search extra\nsearch foo built-in updates\n".into(),
        ),
        (
            "external first",
            format!("external 4\\.4\\..* {ext}\nsearch external foobar foo built-in\n"),
        ),
        (
            "external last",
            format!("external * {ext}\nsearch foobar foo built-in external\n"),
        ),
        (
            "external, no match",
            format!("external ^5 {ext}\nsearch external built-in\n"),
        ),
        (
            "missing external",
            "external * /nonexistent/dir\nsearch external built-in\n".into(),
        ),
        (
            "override",
            "override mod-simple 4.4.4 override\nsearch foo built-in\n".into(),
        ),
        (
            "override as a name",
            "override mod_simple * override\n".into(),
        ),
        (
            "override, other version",
            "override mod-simple ^3 override\nsearch foo\n".into(),
        ),
        (
            "two overrides",
            "override mod-simple * foo\noverride mod-simple * built\n".into(),
        ),
        (
            "exclude",
            "exclude foo updates\nsearch foo foobar built-in\n".into(),
        ),
        ("exclude a file name", "exclude mod-simple.ko\n".into()),
    ] {
        let path = config(&fixture, "test.conf", &content);
        assert_same(what, &fixture, &["-C", &path]);
        assert_same(&format!("{what}, -n"), &fixture, &["-n", "-C", &path]);
    }
}

#[test]
fn bad_lines() {
    let fixture = Fixture::new("badconf");
    places(&fixture);
    let path = config(
        &fixture,
        "bad.conf",
        "# a comment\n\n\
         bogus words here\n\
         override mod-simple 4.4.4\n\
         external 4.4.4\n\
         search\n\
         include /etc/other.conf\n\
         make_map_files\n\
         \tsearch foo\n\
         search \\\n  foobar built-in\n\
         override\n\
         exclude\n\
         SEARCH updates\n",
    );
    for args in [&["-C", &path][..], &["-vv", "-n", "-C", &path]] {
        assert_same(&format!("{args:?}"), &fixture, args);
    }
}

#[test]
fn configuration_files_and_directories() {
    let fixture = Fixture::new("confdirs");
    places(&fixture);
    let first = config(&fixture, "a/10-search.conf", "search foobar\n");
    config(
        &fixture,
        "a/20-override.conf",
        "override mod-simple * built\n",
    );
    config(&fixture, "a/.hidden.conf", "search updates\n");
    config(&fixture, "a/README", "not a configuration file\n");
    config(&fixture, "a/x.conf", "search extra\n");
    std::fs::create_dir_all(fixture.root.join("conf/a/sub.conf")).unwrap();
    config(&fixture, "b/10-search.conf", "search updates\n");
    config(&fixture, "b/05-first.conf", "search foo\n");
    let dir_a = fixture.root.join("conf/a");
    let dir_b = fixture.root.join("conf/b");
    let (a, b) = (dir_a.to_str().unwrap(), dir_b.to_str().unwrap());
    for args in [
        &["-C", a][..],
        &["-C", b, "-C", a],
        &["-C", a, "-C", b],
        &["-C", &first, "-C", b],
        &["-C", "/nonexistent"],
        &["-vv", "-n", "-C", a],
    ] {
        assert_same(&format!("{args:?}"), &fixture, args);
    }
}
