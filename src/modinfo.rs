//! What `modinfo` shows about a module: its `.modinfo` strings (or a builtin module's
//! records in `modules.builtin.modinfo`), its signature, and its parameters with
//! `parm` and `parmtype` merged, all as kmod 34.2 derives them, in bytes.

use std::path::Path;

use crate::compat::until_nul;
use crate::elf::ElfError;
use crate::module::{ModuleError, ModuleFile};
use crate::resolve::ModuleDir;
use crate::signature::hex_wrapped;

/// A `key=value` string; a string without `=` is both key and value, as kmod shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

impl Field {
    fn split(s: &[u8]) -> Field {
        match s.iter().position(|&b| b == b'=') {
            Some(eq) => Field {
                key: s[..eq].to_vec(),
                value: s[eq + 1..].to_vec(),
            },
            None => Field {
                key: s.to_vec(),
                value: s.to_vec(),
            },
        }
    }

    fn new(key: &[u8], value: impl Into<Vec<u8>>) -> Field {
        Field {
            key: key.to_vec(),
            value: value.into(),
        }
    }
}

/// A module parameter: its `parm` description and `parmtype` type, either missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: Vec<u8>,
    pub description: Option<Vec<u8>>,
    pub kind: Option<Vec<u8>>,
}

/// A module file's `.modinfo` fields followed by its signature fields.
pub fn file_fields(path: &Path) -> Result<Vec<Field>, ModuleError> {
    let file = ModuleFile::open(path)?;
    let elf = file.elf()?;
    let modinfo = elf
        .modinfo()
        .map_err(|e| ModuleError::Elf(path.to_path_buf(), e))?;
    // kmod prints only the filename and signature here and exits 0; the kernel refuses
    // such a module, so it is an error like a missing section (nothing real has one).
    if modinfo.is_empty() {
        return Err(ModuleError::Elf(
            path.to_path_buf(),
            ElfError::EmptySection(".modinfo"),
        ));
    }
    let mut fields: Vec<Field> = modinfo.into_iter().map(|(k, v)| Field::new(k, v)).collect();
    if let Some(sig) = file.signature() {
        // kmod prints these as C strings: anything after a NUL is lost.
        fields.push(Field::new(b"sig_id", sig.id_type.name()));
        fields.push(Field::new(b"signer", until_nul(sig.signer)));
        fields.push(Field::new(b"sig_key", hex_wrapped(sig.key_id)));
        fields.push(Field::new(
            b"sig_hashalgo",
            until_nul(sig.hash_algo.as_bytes()),
        ));
        fields.push(Field::new(b"signature", hex_wrapped(sig.signature)));
    }
    Ok(fields)
}

/// A builtin module's fields from `modules.builtin.modinfo`.
pub fn builtin_fields(dir: &ModuleDir, name: &[u8]) -> std::io::Result<Vec<Field>> {
    Ok(dir
        .builtin_modinfo(name)?
        .iter()
        .map(|s| Field::split(s))
        .collect())
}

/// The parameters of `fields`: `parm` and `parmtype` entries merged by parameter
/// name, in reverse order of first appearance (kmod prepends each new name to its
/// list). Entries without a `:` are returned apart, for modinfo to complain about.
pub fn params(fields: &[Field]) -> (Vec<Param>, Vec<&Field>) {
    let mut params: Vec<Param> = Vec::new();
    let mut invalid = Vec::new();
    for field in fields {
        let is_description = field.key == b"parm";
        if !is_description && field.key != b"parmtype" {
            continue;
        }
        let Some(colon) = field.value.iter().position(|&b| b == b':') else {
            invalid.push(field);
            continue;
        };
        let (name, text) = (&field.value[..colon], field.value[colon + 1..].to_vec());
        let at = match params.iter().position(|p| p.name == name) {
            Some(i) => i,
            None => {
                params.push(Param {
                    name: name.to_vec(),
                    description: None,
                    kind: None,
                });
                params.len() - 1
            }
        };
        if is_description {
            params[at].description = Some(text);
        } else {
            params[at].kind = Some(text);
        }
    }
    params.reverse();
    (params, invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_merge_in_kmods_order() {
        let fields: Vec<Field> = [
            &b"parm=a:first"[..],
            b"parmtype=b:int",
            b"license=GPL",
            b"parmtype=a:charp",
            b"parm=broken",
            b"parm=c:caf\xe9",
        ]
        .iter()
        .map(|s| Field::split(s))
        .collect();
        let (params, invalid) = params(&fields);
        let names: Vec<&[u8]> = params.iter().map(|p| &p.name[..]).collect();
        assert_eq!(names, [&b"c"[..], b"b", b"a"]);
        assert_eq!(params[2].description.as_deref(), Some(&b"first"[..]));
        assert_eq!(params[2].kind.as_deref(), Some(&b"charp"[..]));
        assert_eq!(params[0].description.as_deref(), Some(&b"caf\xe9"[..]));
        assert_eq!(invalid, [&Field::split(b"parm=broken")]);
        assert_eq!(Field::split(b"flag"), Field::new(b"flag", &b"flag"[..]));
    }
}
