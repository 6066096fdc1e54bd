//! The index reader and writer against kmod 34.2 on real Debian module trees
//! (scripts/fetch-reference.sh): every `.bin` depmod wrote is rebuilt byte for byte from
//! the text files beside it, read back against those texts and against reference
//! modprobe, and read by reference modprobe in turn. Corrupt copies must never panic.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use common::{reference, run, Tree};
use kmod_rs::index::{Index, IndexBuilder, IndexValue};

/// An index value owned by the test.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Value {
    priority: u32,
    value: Vec<u8>,
}

impl From<IndexValue<'_>> for Value {
    fn from(v: IndexValue<'_>) -> Value {
        Value {
            priority: v.priority,
            value: v.value.to_vec(),
        }
    }
}

const TREES: [&str; 3] = ["trixie-amd64", "bookworm-amd64", "trixie-cloud"];
const BINS: [&str; 5] = [
    "modules.dep.bin",
    "modules.alias.bin",
    "modules.symbols.bin",
    "modules.builtin.bin",
    "modules.builtin.alias.bin",
];

/// What depmod put into each index, recovered from the text files of a tree.
struct Inputs {
    dir: PathBuf,
    /// (key, value, priority) in depmod's insertion order, per index file.
    entries: BTreeMap<&'static str, Vec<(String, String, u32)>>,
}

impl Inputs {
    fn load(tree: &Tree) -> Inputs {
        let dir = tree.module_dir(&tree.ref_root);
        let text = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
        };
        let mut entries = BTreeMap::new();

        // modules.dep: one line per module in index order; the key is the module name.
        let mut idx = HashMap::new();
        let dep: Vec<_> = text("modules.dep")
            .lines()
            .zip(0u32..)
            .map(|(line, i)| {
                let path = line.split(':').next().unwrap();
                let name = modname(path);
                idx.insert(name.clone(), i);
                (name, line.to_string(), i)
            })
            .collect();
        entries.insert("modules.dep.bin", dep);

        // modules.alias: raw aliases in insertion order, normalised for the index.
        let aliases = text("modules.alias")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|line| {
                let rest = line.strip_prefix("alias ").unwrap();
                let (alias, name) = rest.rsplit_once(' ').unwrap();
                Some((alias_normalize(alias)?, name.to_string(), idx[name]))
            })
            .collect();
        entries.insert("modules.alias.bin", aliases);

        let symbols = text("modules.symbols")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|line| {
                let rest = line.strip_prefix("alias ").unwrap();
                let (symbol, name) = rest.rsplit_once(' ').unwrap();
                (symbol.to_string(), name.to_string(), idx[name])
            })
            .collect();
        entries.insert("modules.symbols.bin", symbols);

        // modules.builtin: lines are read with their newline; only those starting with a
        // letter count, keyed by the module name of their base name.
        let builtin = text("modules.builtin")
            .split_inclusive('\n')
            .filter(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()))
            .map(|line| (modname(line), String::new(), 0))
            .collect();
        entries.insert("modules.builtin.bin", builtin);

        let modinfo = std::fs::read(dir.join("modules.builtin.modinfo")).unwrap();
        entries.insert("modules.builtin.alias.bin", builtin_aliases(&modinfo));

        Inputs { dir, entries }
    }

    fn build(&self, file: &str) -> Vec<u8> {
        let mut builder = IndexBuilder::new();
        for (key, value, priority) in &self.entries[file] {
            builder.insert(key.as_bytes(), value.as_bytes(), *priority);
        }
        let mut out = Vec::new();
        builder.write_to(&mut out).unwrap();
        out
    }

    fn open(&self, file: &str) -> Index {
        Index::open(&self.dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    /// Every key with its values in depmod's stored order: ascending priority, later
    /// insertions first among equal priorities.
    fn expected(&self, file: &str) -> BTreeMap<Vec<u8>, Vec<Value>> {
        let mut map: BTreeMap<Vec<u8>, Vec<Value>> = BTreeMap::new();
        for (key, value, priority) in &self.entries[file] {
            let values = map.entry(key.as_bytes().to_vec()).or_default();
            let at = values.partition_point(|v| v.priority < *priority);
            values.insert(
                at,
                Value {
                    priority: *priority,
                    value: value.as_bytes().to_vec(),
                },
            );
        }
        map
    }
}

/// libkmod's module name of a path: the base name up to its first dot, `-` as `_`.
fn modname(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap();
    base.split('.').next().unwrap().replace('-', "_")
}

/// libkmod's alias normalisation; None on an unmatched bracket.
fn alias_normalize(alias: &str) -> Option<String> {
    let mut out = String::with_capacity(alias.len());
    let mut rest = alias;
    while let Some(c) = rest.chars().next() {
        match c {
            '-' => out.push('_'),
            ']' => return None,
            '[' => {
                let end = rest.find(']')?;
                out.push_str(&rest[..=end]);
                rest = &rest[end + 1..];
                continue;
            }
            c => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

/// depmod's reading of modules.builtin.modinfo (`modname.key=value\0` records), with its
/// quirks: each field read stops at its delimiter, a NUL or the end, and only counts if
/// it stopped at its delimiter; a record that is not an alias is skipped up to the next
/// NUL, which swallows the next record when the key itself ended at a NUL.
fn builtin_aliases(data: &[u8]) -> Vec<(String, String, u32)> {
    struct Reader<'a> {
        data: &'a [u8],
        pos: usize,
        eof: bool,
    }
    impl Reader<'_> {
        fn field(&mut self, delimiter: u8) -> &[u8] {
            let start = self.pos;
            loop {
                let Some(&c) = self.data.get(self.pos) else {
                    self.eof = true;
                    return &[];
                };
                self.pos += 1;
                if c == delimiter {
                    return &self.data[start..self.pos - 1];
                }
                if c == 0 {
                    return &[];
                }
            }
        }
    }
    let mut r = Reader {
        data,
        pos: 0,
        eof: false,
    };
    let mut out = Vec::new();
    while !r.eof {
        let name = String::from_utf8(r.field(b'.').to_vec()).unwrap();
        if name.is_empty() {
            continue;
        }
        if r.field(b'=') != b"alias" {
            r.field(0);
            continue;
        }
        let value = String::from_utf8(r.field(0).to_vec()).unwrap();
        if value.is_empty() {
            continue;
        }
        if let Some(alias) = alias_normalize(&value) {
            out.push((alias, name, 0));
        }
    }
    out
}

#[test]
fn writer_matches_depmod_byte_for_byte() {
    for name in TREES {
        let inputs = Inputs::load(&Tree::get(name));
        for file in BINS {
            let ours = inputs.build(file);
            let theirs = std::fs::read(inputs.dir.join(file)).unwrap();
            if ours != theirs {
                let at = ours.iter().zip(&theirs).position(|(a, b)| a != b);
                panic!(
                    "{name}/{file}: ours {} bytes, depmod {} bytes, first difference at {at:?}",
                    ours.len(),
                    theirs.len()
                );
            }
        }
    }
}

#[test]
fn reader_agrees_with_text_files() {
    for name in TREES {
        let inputs = Inputs::load(&Tree::get(name));
        for file in BINS {
            let index = inputs.open(file);
            let expected = inputs.expected(file);
            assert!(!expected.is_empty(), "{name}/{file}: no entries");
            for (key, values) in &expected {
                assert_eq!(
                    index.lookup(key),
                    Some(&values[0].value[..]),
                    "{name}/{file}: lookup({key:?})"
                );
                let all: Vec<Value> = index.lookup_all(key).into_iter().map(Value::from).collect();
                assert_eq!(&all, values, "{name}/{file}: lookup_all({key:?})");
            }
            // The dump walks keys in byte order, each with its values in stored order.
            let mut dumped: Vec<(Vec<u8>, Value)> = Vec::new();
            index.for_each(|k, v| dumped.push((k.to_vec(), v.into())));
            let want: Vec<_> = expected
                .iter()
                .flat_map(|(k, vs)| vs.iter().map(move |v| (k.clone(), v.clone())))
                .collect();
            assert!(dumped == want, "{name}/{file}: for_each order differs");
        }
        let dep = inputs.open("modules.dep.bin");
        assert_eq!(dep.lookup(b"no_such_module"), None);
        assert!(dep.lookup_all(b"").is_empty());
    }
}

#[test]
fn dump_matches_modprobe_show_config() {
    for name in TREES {
        let tree = Tree::get(name);
        let inputs = Inputs::load(&tree);
        // With no configuration, the only `alias` lines are the index dumps.
        let out = run(
            &reference("modprobe"),
            [
                "-C".as_ref(),
                "/nonexistent".as_ref(),
                "-d".as_ref(),
                tree.ref_root.as_os_str(),
                "-S".as_ref(),
                tree.kver.as_ref(),
                "-c".as_ref(),
            ],
        );
        let theirs: Vec<_> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("alias "))
            .map(String::from)
            .collect();
        let mut ours = Vec::new();
        for file in ["modules.alias.bin", "modules.symbols.bin"] {
            inputs.open(file).for_each(|k, v| {
                ours.push(format!(
                    "alias {} {}",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v.value)
                ))
            });
        }
        assert_eq!(ours.len(), theirs.len(), "{name}: modprobe -c alias lines");
        assert!(ours == theirs, "{name}: modprobe -c order differs");
    }
}

/// Real device modaliases, and more made from the stored patterns themselves.
fn modaliases(inputs: &Inputs) -> Vec<String> {
    let mut out: Vec<String> = [
        "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00",
        "pci:v000010DEd00001C82sv00001458sd00003763bc03sc00i00",
        "pci:v00008086d0000A2AFsv00001462sd00007A67bc0Csc03i30",
        "pci:v00008086d00009D71sv000017AAsd0000224Fbc04sc03i00",
        "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
        "pci:v00001B36d0000000Dsv00001AF4sd00001100bc0Csc03i30",
        "usb:v046Dp0A29d0100dc00dsc00dp00ic01isc01ip00in00",
        "usb:v0BDAp8179d0000dc00dsc00dp00icFFiscFFipFFin00",
        "usb:v1D6Bp0002d0612dc09dsc00dp01ic09isc00ip00in00",
        "usb:v0781p5581d0100dc00dsc00dp00ic08isc06ip50in00",
        "usb:v8087p0026d0002dcE0dsc01dp01icE0isc01ip01in00",
        "acpi:PNP0C0A:",
        "acpi:ACPI0003:",
        "platform:serial8250",
        "virtio:d00000001v00001AF4",
        "cpu:type:x86,ven0000fam0006mod009E:feature:,0000,0001,0002,0003,0004,0005,0006,0007,0008,0009,000B,000C,000D,000E,000F,0010,0011,0013,0017,0018,0019,001A,002B,0034,003A,003B,003D,0068,006F,0070,0072,0074,0075,0076,0078,007C,0080,0081,0082,0083,0084,0085,0087,0088,0089,008B,008C,008D,008E,008F,0091,0093,0094,0095,0096,0097,0098,0099,009A,009B,009C,009D,009E,009F,00C0,00C5,00E1,00E3,00E4,00E6,00E7,00EB,00EC,00F0,00F1,00F3,00F5,00F6,00F9,00FA,00FB,00FE,00FF,0100,0101,0102,0103,0104,0111,0120,0121,0123,0125,0126,0127,0128,0129,012A,012D,0140,0160,0161,0162,0163,0165,01C0,01C1,01C2,01C4,01C5,01C6,024A,025A,025B,025C,025F",
        "dmi:bvnLENOVO:bvrN2HET55W(1.38):bd09/11/2020:br1.38:efr1.22:svnLENOVO:pn20QDCTO1WW:pvrThinkPadX1Carbon7th:rvnLENOVO:rn20QDCTO1WW:rvrNotDefined:cvnLENOVO:ct10:cvrNone:skuLENOVO_MT_20QD_BU_Think_FM_ThinkPadX1Carbon7th:",
        "input:b0003v046Dp4024e0111-e0,1,2,4,11,14,k71,72,73,74,75,77,78,79,7A,7B,7C,7D,7E,7F,80,r0,1,6,8,B,C,a20,m4,l0,1,2,3,4,sfw",
        "of:NfooTbarCvendor,device",
        "hid:b0003g0001v0000046Dp0000C52B",
        "no:such:alias",
    ]
    .map(String::from)
    .to_vec();
    // Patterns with their wildcards filled in; the spread keeps the run short.
    let patterns = &inputs.entries["modules.alias.bin"];
    let step = (patterns.len() / 60).max(1);
    for (pattern, _, _) in patterns.iter().step_by(step) {
        let mut s = String::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '*' => s.push_str("00"),
                '?' => s.push('0'),
                '[' => {
                    let class: String = chars.by_ref().take_while(|&c| c != ']').collect();
                    s.push(class.chars().next().unwrap_or('x'));
                }
                c => s.push(c),
            }
        }
        out.push(s);
    }
    out
}

/// Reference `modprobe -R` over ROOT, with no configuration to get in the way.
fn modprobe_resolve(root: &Path, kver: &str, alias: &str) -> Vec<String> {
    let out = run(
        &reference("modprobe"),
        [
            "-C".as_ref(),
            "/nonexistent".as_ref(),
            "-d".as_ref(),
            root.as_os_str(),
            "-S".as_ref(),
            kver.as_ref(),
            "-R".as_ref(),
            alias.as_ref(),
        ],
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn wildcard_search_matches_modprobe() {
    for name in TREES {
        let tree = Tree::get(name);
        let inputs = Inputs::load(&tree);
        let alias = inputs.open("modules.alias.bin");
        let builtin_alias = inputs.open("modules.builtin.alias.bin");
        let symbols = inputs.open("modules.symbols.bin");
        let mut matched = 0;
        for modalias in modaliases(&inputs) {
            let key = alias_normalize(&modalias).unwrap();
            // libkmod tries modules.alias.bin, then modules.builtin.alias.bin.
            let mut ours = alias.search_wildcard(key.as_bytes());
            if ours.is_empty() {
                ours = builtin_alias.search_wildcard(key.as_bytes());
            }
            let ours: Vec<String> = ours
                .into_iter()
                .map(|v| String::from_utf8(v.value.to_vec()).unwrap())
                .collect();
            matched += usize::from(!ours.is_empty());
            let theirs = modprobe_resolve(&tree.ref_root, &tree.kver, &modalias);
            assert_eq!(ours, theirs, "{name}: modprobe -R {modalias}");
        }
        assert!(matched > 40, "{name}: only {matched} modaliases matched");
        for (key, owner, _) in inputs.entries["modules.symbols.bin"].iter().step_by(997) {
            let ours: Vec<String> = symbols
                .search_wildcard(key.as_bytes())
                .into_iter()
                .map(|v| String::from_utf8(v.value.to_vec()).unwrap())
                .collect();
            assert_eq!(&ours, std::slice::from_ref(owner), "{name}: {key}");
            let theirs = modprobe_resolve(&tree.ref_root, &tree.kver, key);
            assert_eq!(ours, theirs, "{name}: modprobe -R {key}");
        }
    }
}

#[test]
fn modprobe_reads_our_indexes() {
    for name in TREES {
        let tree = Tree::get(name);
        let inputs = Inputs::load(&tree);
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("index-roundtrip-{}-{name}", std::process::id()));
        let dir = tree.module_dir(&root);
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&dir).unwrap();
        // The text files come from depmod and the modules are linked in (modprobe reads
        // soft dependencies from them); every index is ours.
        for entry in std::fs::read_dir(&inputs.dir).unwrap() {
            let entry = entry.unwrap();
            let file = entry.file_name().into_string().unwrap();
            if !file.starts_with("modules.") {
                std::os::unix::fs::symlink(entry.path(), dir.join(&file)).unwrap();
            } else if !file.ends_with(".bin") {
                std::fs::copy(entry.path(), dir.join(&file)).unwrap();
            }
        }
        for file in BINS {
            std::fs::write(dir.join(file), inputs.build(file)).unwrap();
        }

        let mut queries: Vec<String> = modaliases(&inputs);
        let dep = &inputs.entries["modules.dep.bin"];
        queries.extend(
            dep.iter()
                .step_by(dep.len() / 25)
                .map(|(m, _, _)| m.clone()),
        );
        let builtin = &inputs.entries["modules.builtin.bin"];
        queries.extend(
            builtin
                .iter()
                .step_by(builtin.len() / 5)
                .map(|(m, _, _)| m.clone()),
        );
        for query in &queries {
            assert_eq!(
                modprobe_resolve(&root, &tree.kver, query),
                modprobe_resolve(&tree.ref_root, &tree.kver, query),
                "{name}: modprobe -R {query}"
            );
        }
        // Dependency chains come from modules.dep.bin; paths differ only by the root.
        let deepest = dep
            .iter()
            .max_by_key(|(_, line, _)| line.split(' ').count())
            .unwrap();
        for (module, _, _) in dep.iter().step_by(dep.len() / 10).chain([deepest]) {
            let show = |r: &Path| {
                let out = run(
                    &reference("modprobe"),
                    [
                        "-C".as_ref(),
                        "/nonexistent".as_ref(),
                        "-d".as_ref(),
                        r.as_os_str(),
                        "-S".as_ref(),
                        tree.kver.as_ref(),
                        "--show-depends".as_ref(),
                        module.as_ref(),
                    ],
                );
                assert!(out.status.success(), "{name}: --show-depends {module}");
                String::from_utf8(out.stdout)
                    .unwrap()
                    .replace(&r.display().to_string(), "ROOT")
            };
            let ours = show(&root);
            assert!(ours.contains("insmod ROOT/"), "{name}: {module}: {ours}");
            assert_eq!(
                ours,
                show(&tree.ref_root),
                "{name}: --show-depends {module}"
            );
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}

/// Runs every reader entry point; only panics (or hangs) matter here.
fn exercise(data: Vec<u8>) {
    let Ok(index) = Index::from_bytes(data) else {
        return;
    };
    for key in [
        "snd_hda_intel",
        "usbcore",
        "",
        "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00",
        "symbol:drm_open",
        "*",
    ] {
        let _ = index.lookup(key.as_bytes());
        let _ = index.lookup_all(key.as_bytes());
        let _ = index.search_wildcard(key.as_bytes());
    }
    let mut n = 0usize;
    index.for_each(|_, _| n += 1);
}

#[test]
fn corrupt_indexes_never_panic() {
    let tree = Tree::get("trixie-cloud");
    let dir = tree.module_dir(&tree.ref_root);
    for file in BINS {
        let data = std::fs::read(dir.join(file)).unwrap();
        // Every cut in the header and first nodes, then cuts spread over the file.
        let cuts = (0..data.len().min(300)).chain((300..data.len()).step_by(data.len() / 150 + 1));
        for len in cuts {
            exercise(data[..len].to_vec());
        }
        // Deterministic pseudo-random byte changes, one to a few at a time.
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..300 {
            let mut bad = data.clone();
            for _ in 0..1 + round % 4 {
                let at = next() as usize % bad.len();
                bad[at] = match next() % 4 {
                    0 => 0,
                    1 => 0xff,
                    2 => bad[at] ^ (1 << (next() % 8)),
                    _ => next() as u8,
                };
            }
            exercise(bad);
        }
    }
    for short in [
        &b""[..],
        b"\xb0\x07\xf4",
        b"\xb0\x07\xf4\x57\x00\x02\x00\x01\x00\x00\x00",
    ] {
        assert!(Index::from_bytes(short.to_vec()).is_err());
    }
    assert!(
        Index::from_bytes(b"\xb0\x07\xf4\x58\x00\x02\x00\x01\x00\x00\x00\x0c".to_vec()).is_err()
    );
    assert!(
        Index::from_bytes(b"\xb0\x07\xf4\x57\x00\x03\x00\x01\x00\x00\x00\x0c".to_vec()).is_err()
    );
}
