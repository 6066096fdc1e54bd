//! Reading what the module tools need from a kernel module's ELF image.
//!
//! The header, section headers, symbols and words are read through `object`'s typed
//! ELF structures, in the file's own byte order, so 32/64-bit and either endianness
//! work on any host. Which section is which follows libkmod's rules: sections are
//! found by name (first match wins), a section reaching past the end of the file
//! counts as absent, and the symbol table is `.symtab` with names in `.strtab`.

use object::elf::{
    FileHeader32, FileHeader64, Machine, SectionHeader32, SectionHeader64, Sym32, Sym64,
    SymbolBind, SymbolSection, SymbolType, EM_SPARC, EM_SPARCV9, SHF_ALLOC, SHN_ABS, SHN_UNDEF,
    STB_WEAK, STT_SPARC_REGISTER,
};
use object::read::elf::{FileHeader, SectionHeader, Sym};
use object::{pod, Endianness, U32, U64};

use crate::limits::{self, LimitError};

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
    /// No memory for a modified copy of the image.
    #[error(transparent)]
    Limit(#[from] LimitError),
}

impl ElfError {
    /// The errno libkmod fails with for this problem: callers print its text.
    pub fn errno(&self) -> nix::errno::Errno {
        match self {
            ElfError::NotElf => nix::errno::Errno::ENOEXEC,
            ElfError::MissingSection(_) | ElfError::EmptySection(_) => nix::errno::Errno::ENODATA,
            ElfError::BadHeader(_) | ElfError::BadSection(..) => nix::errno::Errno::EINVAL,
            ElfError::Limit(e) => e.errno(),
        }
    }
}

#[derive(Debug, Clone)]
struct Section {
    /// The name's range in the file (empty when `sh_name` is outside the name table).
    name: (usize, usize),
    offset: u64,
    size: u64,
    /// Where the section header itself is in the file.
    header_offset: usize,
}

/// A parsed module image. Borrows the (decompressed) file contents.
pub struct ModuleElf<'a> {
    data: &'a [u8],
    class: Class,
    endian: Endianness,
    machine: Machine,
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

/// A `struct modversion_info` in `__versions`: a CRC the size of the class's word,
/// then the NUL-padded symbol name.
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

        // section_headers() checked that the table lies inside `data`.
        let shoff = header.e_shoff(endian).into() as usize;
        let entsize = std::mem::size_of::<H::SectionHeader>();
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
                header_offset: shoff + i * entsize,
            });
        }
        Ok(ModuleElf {
            data,
            class,
            endian,
            machine: header.e_machine(endian),
            sections,
        })
    }

    pub fn class(&self) -> Class {
        self.class
    }

    pub fn is_big_endian(&self) -> bool {
        self.endian == Endianness::Big
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
        section
            .chunks_exact(VERSION_ENTRY_SIZE)
            .map(|entry| {
                let (crc, field) = self.read_class_word(entry);
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
        let mut out = Vec::new();
        for sym in self.symbols()? {
            let Some(name) = sym.name.strip_prefix(b"__crc_") else {
                continue;
            };
            // The CRC is the symbol's value, or (in a relocatable module) a 32-bit word
            // at that offset in the symbol's section; all ones when that is unreadable.
            let crc = if sym.shndx == SHN_ABS || sym.shndx == SHN_UNDEF {
                sym.value
            } else {
                self.section_range(usize::from(sym.shndx.0))
                    .and_then(|(start, end)| {
                        let at = usize::try_from(sym.value).ok()?;
                        let word = self.data[start..end].get(at..)?;
                        let (crc, _) = pod::from_bytes::<U32<Endianness>>(word).ok()?;
                        Some(u64::from(crc.get(self.endian)))
                    })
                    .unwrap_or(u64::from(u32::MAX))
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
        for sym in self.symbols().into_iter().flatten() {
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
        (self.machine == EM_SPARC || self.machine == EM_SPARCV9) && sym.kind == STT_SPARC_REGISTER
    }

    /// Whether libkmod would find a symbol table: `.strtab`, and `.symtab` made of
    /// whole entries.
    pub fn has_symbol_table(&self) -> bool {
        self.symbols().is_some()
    }

    /// Every `.symtab` entry but index 0 whose name lies inside `.strtab`; None
    /// without a usable symbol table.
    fn symbols(&self) -> Option<impl Iterator<Item = Symbol<'a>> + 'a> {
        let symtab = self.section(".symtab")?;
        let strtab = self.section(".strtab")?;
        let endian = self.endian;
        // Only the slice of this file's class is non-empty.
        let (elf32, elf64): (&[Sym32<Endianness>], &[Sym64<Endianness>]) = match self.class {
            Class::Elf32 => (pod::slice_from_all_bytes(symtab).ok()?, &[]),
            Class::Elf64 => (&[], pod::slice_from_all_bytes(symtab).ok()?),
        };
        let elf32 = elf32.iter().skip(1).map(move |s| RawSymbol::new(s, endian));
        let elf64 = elf64.iter().skip(1).map(move |s| RawSymbol::new(s, endian));
        Some(elf32.chain(elf64).filter_map(move |raw| raw.named(strtab)))
    }

    /// A word of the file's class (32 or 64 bits) in its byte order at the start of
    /// `bytes`, and what follows it. `bytes` must hold the word.
    fn read_class_word<'b>(&self, bytes: &'b [u8]) -> (u64, &'b [u8]) {
        let word = match self.class {
            Class::Elf32 => pod::from_bytes::<U32<Endianness>>(bytes)
                .map(|(w, rest)| (u64::from(w.get(self.endian)), rest)),
            Class::Elf64 => pod::from_bytes::<U64<Endianness>>(bytes)
                .map(|(w, rest)| (w.get(self.endian), rest)),
        };
        word.unwrap_or((0, &[]))
    }

    /// A copy of the image with `__versions` no longer `SHF_ALLOC`, so the kernel skips
    /// symbol version checks (what `--force-modversion` does without finit_module).
    pub fn strip_modversions(&self) -> Result<Vec<u8>, ElfError> {
        let mut out = limits::copy(self.data)?;
        if let Some(index) = self.section_index("__versions") {
            let header = &mut out[self.sections[index].header_offset..];
            let endian = self.endian;
            // parse() read this header from the same bytes, so it is there.
            match self.class {
                Class::Elf32 => {
                    if let Ok((sh, _)) = pod::from_bytes_mut::<SectionHeader32<Endianness>>(header)
                    {
                        let flags = sh.sh_flags.get_u64(endian).without(SHF_ALLOC);
                        sh.sh_flags.set_u64_truncate(endian, flags);
                    }
                }
                Class::Elf64 => {
                    if let Ok((sh, _)) = pod::from_bytes_mut::<SectionHeader64<Endianness>>(header)
                    {
                        let flags = sh.sh_flags.get(endian).without(SHF_ALLOC);
                        sh.sh_flags.set(endian, flags);
                    }
                }
            }
        }
        Ok(out)
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
        let mut out = limits::copy(self.data)?;
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

/// A symbol table entry with its name resolved.
struct Symbol<'a> {
    name: &'a [u8],
    value: u64,
    shndx: SymbolSection,
    bind: SymbolBind,
    kind: SymbolType,
}

/// The fields of an `Elf32_Sym` or `Elf64_Sym` that matter here.
struct RawSymbol {
    name: u32,
    value: u64,
    shndx: SymbolSection,
    bind: SymbolBind,
    kind: SymbolType,
}

impl RawSymbol {
    fn new<S: Sym<Endian = Endianness>>(sym: &S, endian: Endianness) -> Self {
        RawSymbol {
            name: sym.st_name(endian),
            value: sym.st_value(endian).into(),
            shndx: sym.st_shndx(endian),
            bind: sym.st_bind(),
            kind: sym.st_type(),
        }
    }

    /// The symbol with its name: from its offset in `strtab` up to a NUL or the end of
    /// the table. None when the offset is outside the table.
    fn named(self, strtab: &[u8]) -> Option<Symbol<'_>> {
        let rest = strtab.get(usize::try_from(self.name).ok()?..)?;
        if rest.is_empty() {
            return None;
        }
        let name = &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())];
        Some(Symbol {
            name,
            value: self.value,
            shndx: self.shndx,
            bind: self.bind,
            kind: self.kind,
        })
    }
}
