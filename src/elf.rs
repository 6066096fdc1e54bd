//! Reading what the module tools need from a kernel module's ELF image.
//!
//! The header and section table are validated with `object`; everything else
//! follows libkmod's rules (sections found by name, first match wins, a section
//! reaching past the end of the file counts as absent), in the file's own byte
//! order, so 32/64-bit and either endianness work on any host.

use object::elf::{FileHeader32, FileHeader64, SHN_ABS, SHN_UNDEF, STB_WEAK};
use object::read::elf::{FileHeader, SectionHeader};
use object::Endianness;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Elf32,
    Elf64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    #[error("not an ELF file")]
    NotElf,
    #[error("invalid ELF header: {0}")]
    BadHeader(&'static str),
    #[error("invalid section '{0}': {1}")]
    BadSection(&'static str, &'static str),
    #[error("no {0} section")]
    MissingSection(&'static str),
    #[error("empty {0} section")]
    EmptySection(&'static str),
}

impl ElfError {
    /// The errno libkmod fails with for this problem: callers print its text.
    pub fn errno(&self) -> nix::errno::Errno {
        match self {
            ElfError::NotElf => nix::errno::Errno::ENOEXEC,
            ElfError::MissingSection(_) | ElfError::EmptySection(_) => nix::errno::Errno::ENODATA,
            ElfError::BadHeader(_) | ElfError::BadSection(..) => nix::errno::Errno::EINVAL,
        }
    }
}

#[derive(Debug, Clone)]
struct Section {
    name: (usize, usize),
    offset: u64,
    size: u64,
    flags_offset: usize,
}

/// A parsed module image. Borrows the (decompressed) file contents.
pub struct ModuleElf<'a> {
    data: &'a [u8],
    class: Class,
    big_endian: bool,
    machine: u16,
    sections: Vec<Section>,
}

/// A `.modinfo` string split into key and value.
pub type ModinfoEntry<'a> = (&'a [u8], &'a [u8]);

/// A symbol a module needs from another module or the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencySymbol<'a> {
    pub name: &'a [u8],
    pub crc: u64,
    pub weak: bool,
}

/// A symbol a module exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedSymbol<'a> {
    pub name: &'a [u8],
    pub crc: u64,
}

const VERSION_ENTRY_SIZE: usize = 64;

impl<'a> ModuleElf<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self, ElfError> {
        if data.len() < 6 || &data[..4] != b"\x7fELF" {
            return Err(ElfError::NotElf);
        }
        match data[4] {
            1 => Self::parse_class::<FileHeader32<Endianness>>(data, Class::Elf32),
            2 => Self::parse_class::<FileHeader64<Endianness>>(data, Class::Elf64),
            _ => Err(ElfError::BadHeader("unknown ELF class")),
        }
    }

    fn parse_class<H: FileHeader<Endian = Endianness>>(
        data: &'a [u8],
        class: Class,
    ) -> Result<Self, ElfError> {
        let header = H::parse(data).map_err(|_| ElfError::BadHeader("truncated or malformed"))?;
        let endian = header
            .endian()
            .map_err(|_| ElfError::BadHeader("unknown byte order"))?;
        let headers = header
            .section_headers(endian, data)
            .map_err(|_| ElfError::BadHeader("section headers outside the file"))?;
        let shstrndx = header
            .shstrndx(endian, data)
            .map_err(|_| ElfError::BadHeader("invalid section name table index"))?
            as usize;
        let shstr = headers
            .get(shstrndx)
            .filter(|_| shstrndx != 0)
            .ok_or(ElfError::BadHeader("invalid section name table index"))?;
        let strtab_range = file_range(
            data,
            shstr.sh_offset(endian).into(),
            shstr.sh_size(endian).into(),
        )
        .ok_or(ElfError::BadHeader("section name table outside the file"))?;
        if strtab_range.1 == strtab_range.0 || data[strtab_range.1 - 1] != 0 {
            return Err(ElfError::BadHeader("section name table not NUL-terminated"));
        }

        let shoff: u64 = header.e_shoff(endian).into();
        let entsize = std::mem::size_of::<H::SectionHeader>();
        // sh_flags follows sh_name and sh_type in both classes.
        let flags_field = 8;
        let mut sections = Vec::with_capacity(headers.len());
        for (i, sh) in headers.iter().enumerate() {
            let name_off = strtab_range.0 + sh.sh_name(endian) as usize;
            let name = if name_off < strtab_range.1 {
                let len = data[name_off..strtab_range.1]
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(0);
                (name_off, name_off + len)
            } else {
                (0, 0)
            };
            sections.push(Section {
                name,
                offset: sh.sh_offset(endian).into(),
                size: sh.sh_size(endian).into(),
                flags_offset: shoff as usize + i * entsize + flags_field,
            });
        }
        Ok(ModuleElf {
            data,
            class,
            big_endian: endian == Endianness::Big,
            machine: header.e_machine(endian),
            sections,
        })
    }

    pub fn class(&self) -> Class {
        self.class
    }

    pub fn is_big_endian(&self) -> bool {
        self.big_endian
    }

    pub fn machine(&self) -> u16 {
        self.machine
    }

    fn section_index(&self, name: &str) -> Option<usize> {
        self.sections
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, s)| &self.data[s.name.0..s.name.1] == name.as_bytes())
            .map(|(i, _)| i)
    }

    fn section_range(&self, index: usize) -> Option<(usize, usize)> {
        let s = self.sections.get(index)?;
        file_range(self.data, s.offset, s.size)
    }

    /// The contents of the first section called `name`, if it lies inside the file.
    pub fn section(&self, name: &str) -> Option<&'a [u8]> {
        let (start, end) = self.section_range(self.section_index(name)?)?;
        Some(&self.data[start..end])
    }

    /// The `.modinfo` strings in section order, split into (key, value) at the first `=`;
    /// a string without `=` is both key and value, as kmod shows it.
    pub fn modinfo(&self) -> Result<Vec<ModinfoEntry<'a>>, ElfError> {
        let section = self
            .section(".modinfo")
            .ok_or(ElfError::MissingSection(".modinfo"))?;
        Ok(split_strings(section)
            .map(|entry| match entry.iter().position(|&b| b == b'=') {
                Some(eq) => (&entry[..eq], &entry[eq + 1..]),
                None => (entry, entry),
            })
            .collect())
    }

    /// The `__versions` table: (CRC, symbol name) in section order.
    pub fn versions(&self) -> Result<Vec<(u64, &'a [u8])>, ElfError> {
        let section = self
            .section("__versions")
            .ok_or(ElfError::MissingSection("__versions"))?;
        if section.len() % VERSION_ENTRY_SIZE != 0 {
            return Err(ElfError::BadSection(
                "__versions",
                "size is not a multiple of 64",
            ));
        }
        let crc_len = match self.class {
            Class::Elf32 => 4,
            Class::Elf64 => 8,
        };
        section
            .chunks_exact(VERSION_ENTRY_SIZE)
            .map(|entry| {
                let crc = self.read_word(entry, 0, crc_len);
                let field = &entry[crc_len..];
                let len = field
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or(ElfError::BadSection(
                        "__versions",
                        "symbol name not terminated",
                    ))?;
                let name = &field[..len];
                Ok((crc, name.strip_prefix(b".").unwrap_or(name)))
            })
            .collect()
    }

    /// Exported symbols: `__crc_*` symbols of `.symtab` when there are any, else the
    /// names in `__ksymtab_strings` with CRC 0 (libkmod's order of preference).
    pub fn exported_symbols(&self) -> Vec<ExportedSymbol<'a>> {
        if let Some(symbols) = self.crc_symbols().filter(|s| !s.is_empty()) {
            return symbols;
        }
        self.section("__ksymtab_strings")
            .map(|s| {
                split_strings(s)
                    .map(|name| ExportedSymbol { name, crc: 0 })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn crc_symbols(&self) -> Option<Vec<ExportedSymbol<'a>>> {
        let symtab = self.symtab()?;
        let mut out = Vec::new();
        for sym in symtab.iter() {
            let Some(name) = sym.name.strip_prefix(b"__crc_") else {
                continue;
            };
            let crc = if sym.shndx == SHN_ABS || sym.shndx == SHN_UNDEF {
                sym.value
            } else {
                self.section_range(sym.shndx as usize)
                    .filter(|(start, end)| {
                        end - start >= 4 && sym.value <= (end - start - 4) as u64
                    })
                    .map_or(u32::MAX as u64, |(start, _)| {
                        self.read_word(self.data, start + sym.value as usize, 4)
                    })
            };
            out.push(ExportedSymbol { name, crc });
        }
        Some(out)
    }

    /// Symbols this module needs: undefined `.symtab` entries (CRC from `__versions`),
    /// then the `__versions` entries no undefined symbol matched.
    pub fn dependency_symbols(&self) -> Vec<DependencySymbol<'a>> {
        let versions = self.versions().unwrap_or_default();
        let mut matched = vec![false; versions.len()];
        // Each name's first entry, so that lookups stay cheap with many symbols.
        let mut first: std::collections::HashMap<&[u8], usize> =
            std::collections::HashMap::with_capacity(versions.len());
        for (i, (_, name)) in versions.iter().enumerate() {
            first.entry(name).or_insert(i);
        }
        let mut out = Vec::new();
        if let Some(symtab) = self.symtab() {
            for sym in symtab.iter() {
                if sym.shndx != SHN_UNDEF || sym.name.is_empty() || self.is_sparc_register(&sym) {
                    continue;
                }
                let crc = match first.get(sym.name).copied() {
                    Some(i) => {
                        matched[i] = true;
                        versions[i].0
                    }
                    None => 0,
                };
                out.push(DependencySymbol {
                    name: sym.name,
                    crc,
                    weak: sym.bind == STB_WEAK,
                });
            }
        }
        for (i, (crc, name)) in versions.iter().enumerate() {
            if !matched[i] {
                out.push(DependencySymbol {
                    name,
                    crc: *crc,
                    weak: false,
                });
            }
        }
        out
    }

    fn is_sparc_register(&self, sym: &Symbol) -> bool {
        const STT_SPARC_REGISTER: u8 = 13;
        matches!(
            self.machine,
            object::elf::EM_SPARC | object::elf::EM_SPARCV9
        ) && sym.kind == STT_SPARC_REGISTER
    }

    fn symtab(&self) -> Option<SymbolTable<'_, 'a>> {
        let symtab = self.section(".symtab")?;
        let strtab = self.section(".strtab")?;
        let entsize = match self.class {
            Class::Elf32 => 16,
            Class::Elf64 => 24,
        };
        if symtab.len() % entsize != 0 {
            return None;
        }
        Some(SymbolTable {
            elf: self,
            symtab,
            strtab,
            entsize,
        })
    }

    /// Reads an unsigned integer of `len` bytes (2, 4 or 8) at `off` in file byte order.
    fn read_word(&self, buf: &[u8], off: usize, len: usize) -> u64 {
        let bytes = &buf[off..off + len];
        let mut v = 0u64;
        if self.big_endian {
            for &b in bytes {
                v = (v << 8) | b as u64;
            }
        } else {
            for &b in bytes.iter().rev() {
                v = (v << 8) | b as u64;
            }
        }
        v
    }

    /// A copy of the image with `__versions` no longer `SHF_ALLOC`, so the kernel skips
    /// symbol version checks (what `--force-modversion` does without finit_module).
    pub fn strip_modversions(&self) -> Vec<u8> {
        let mut out = self.data.to_vec();
        if let Some(index) = self.section_index("__versions") {
            const SHF_ALLOC: u64 = 2;
            let off = self.sections[index].flags_offset;
            let len = match self.class {
                Class::Elf32 => 4,
                Class::Elf64 => 8,
            };
            let flags = self.read_word(&out, off, len) & !SHF_ALLOC;
            let bytes = flags.to_be_bytes();
            let field = &mut out[off..off + len];
            field.copy_from_slice(&bytes[8 - len..]);
            if !self.big_endian {
                field.reverse();
            }
        }
        out
    }

    /// A copy of the image with the `vermagic=` string of `.modinfo` blanked out, so the
    /// kernel skips the vermagic check (what `--force-vermagic` does without finit_module).
    pub fn strip_vermagic(&self) -> Result<Vec<u8>, ElfError> {
        let index = self
            .section_index(".modinfo")
            .ok_or(ElfError::MissingSection(".modinfo"))?;
        let (start, _) = self
            .section_range(index)
            .ok_or(ElfError::MissingSection(".modinfo"))?;
        let section = self.section(".modinfo").unwrap_or_default();
        let entry = split_strings(section)
            .find(|s| s.starts_with(b"vermagic="))
            .ok_or(ElfError::MissingSection("vermagic"))?;
        let off = start + (entry.as_ptr() as usize - section.as_ptr() as usize);
        let mut out = self.data.to_vec();
        out[off..off + entry.len()].fill(0);
        Ok(out)
    }
}

/// `offset..offset+size` as a range inside `data`, or None when it reaches past the end.
fn file_range(data: &[u8], offset: u64, size: u64) -> Option<(usize, usize)> {
    let end = offset.checked_add(size)?;
    (end <= data.len() as u64).then_some((offset as usize, end as usize))
}

/// Non-empty NUL-separated strings; runs of NULs count as one separator and a final
/// unterminated string is still returned.
pub fn split_strings(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == 0).filter(|s| !s.is_empty())
}

struct Symbol<'a> {
    name: &'a [u8],
    value: u64,
    shndx: u16,
    bind: u8,
    kind: u8,
}

struct SymbolTable<'e, 'a> {
    elf: &'e ModuleElf<'a>,
    symtab: &'a [u8],
    strtab: &'a [u8],
    entsize: usize,
}

impl<'a> SymbolTable<'_, 'a> {
    /// Every symbol but index 0 whose name lies inside `.strtab`.
    fn iter(&self) -> impl Iterator<Item = Symbol<'a>> + '_ {
        self.symtab
            .chunks_exact(self.entsize)
            .skip(1)
            .filter_map(move |entry| {
                let elf = self.elf;
                // Elf32_Sym: name, value, size, info, other, shndx
                // Elf64_Sym: name, info, other, shndx, value, size
                let (name_off, value, info, shndx) = match elf.class {
                    Class::Elf32 => (
                        elf.read_word(entry, 0, 4),
                        elf.read_word(entry, 4, 4),
                        entry[12],
                        elf.read_word(entry, 14, 2),
                    ),
                    Class::Elf64 => (
                        elf.read_word(entry, 0, 4),
                        elf.read_word(entry, 8, 8),
                        entry[4],
                        elf.read_word(entry, 6, 2),
                    ),
                };
                let name_off = name_off as usize;
                if name_off >= self.strtab.len() {
                    return None;
                }
                let rest = &self.strtab[name_off..];
                let name = &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())];
                Some(Symbol {
                    name,
                    value,
                    shndx: shndx as u16,
                    bind: info >> 4,
                    kind: info & 0xf,
                })
            })
    }
}
