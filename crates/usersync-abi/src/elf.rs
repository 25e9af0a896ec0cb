//! A minimal ELF reader: the names of the symbols a shared library defines in its dynamic symbol
//! table (`.dynsym`). The loader uses it to find the plugin's per-crate root module symbol
//! (see [`PLUGIN_SYMBOL_PREFIX`](crate::PLUGIN_SYMBOL_PREFIX)) before opening the library.
//!
//! Handles ELF32/ELF64, little and big endian. Anything else (not ELF, truncated, no section
//! headers) yields `None`: the caller then treats the file as having no usersync symbol.

struct Reader<'a> {
    b: &'a [u8],
    little: bool,
}

impl Reader<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        self.b.get(at..at.checked_add(N)?)?.try_into().ok()
    }
    fn u16(&self, at: usize) -> Option<u64> {
        let a = self.bytes::<2>(at)?;
        Some(if self.little {
            u16::from_le_bytes(a)
        } else {
            u16::from_be_bytes(a)
        } as u64)
    }
    fn u32(&self, at: usize) -> Option<u64> {
        let a = self.bytes::<4>(at)?;
        Some(if self.little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        } as u64)
    }
    fn u64(&self, at: usize) -> Option<u64> {
        let a = self.bytes::<8>(at)?;
        Some(if self.little {
            u64::from_le_bytes(a)
        } else {
            u64::from_be_bytes(a)
        })
    }
}

fn idx(v: u64) -> Option<usize> {
    usize::try_from(v).ok()
}

/// Names of the defined (not undefined/imported) symbols in `.dynsym`.
pub fn defined_dynamic_symbols(file: &[u8]) -> Option<Vec<String>> {
    if file.len() < 0x40 || &file[..4] != b"\x7fELF" {
        return None;
    }
    let is64 = match file[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let r = Reader {
        b: file,
        little: match file[5] {
            1 => true,
            2 => false,
            _ => return None,
        },
    };
    let (shoff, shentsize, shnum) = if is64 {
        (r.u64(0x28)?, r.u16(0x3A)?, r.u16(0x3C)?)
    } else {
        (r.u32(0x20)?, r.u16(0x2E)?, r.u16(0x30)?)
    };
    // (type, offset, size, link, entsize) of section `i`
    let section = |i: u64| -> Option<(u64, u64, u64, u64, u64)> {
        let base = idx(shoff.checked_add(i.checked_mul(shentsize)?)?)?;
        if base.checked_add(if is64 { 0x40 } else { 0x28 })? > file.len() {
            return None;
        }
        if is64 {
            Some((
                r.u32(base + 4)?,
                r.u64(base + 0x18)?,
                r.u64(base + 0x20)?,
                r.u32(base + 0x28)?,
                r.u64(base + 0x38)?,
            ))
        } else {
            Some((
                r.u32(base + 4)?,
                r.u32(base + 0x10)?,
                r.u32(base + 0x14)?,
                r.u32(base + 0x18)?,
                r.u32(base + 0x24)?,
            ))
        }
    };
    const SHT_DYNSYM: u64 = 11;
    let mut names = Vec::new();
    for i in 0..shnum {
        let (kind, off, size, link, entsize) = section(i)?;
        if kind != SHT_DYNSYM || entsize == 0 {
            continue;
        }
        let (_, str_off, str_size, _, _) = section(link)?;
        let strtab = file.get(idx(str_off)?..idx(str_off.checked_add(str_size)?)?)?;
        for s in 0..size / entsize {
            let at = idx(off.checked_add(s.checked_mul(entsize)?)?)?;
            if at.checked_add(if is64 { 24 } else { 16 })? > file.len() {
                return None;
            }
            let (name, shndx) = if is64 {
                (r.u32(at)?, r.u16(at + 6)?)
            } else {
                (r.u32(at)?, r.u16(at + 14)?)
            };
            if shndx == 0 || name == 0 {
                continue; // undefined (imported) or unnamed
            }
            let start = idx(name)?;
            let rest = strtab.get(start..)?;
            let end = rest.iter().position(|&c| c == 0)?;
            names.push(String::from_utf8_lossy(&rest[..end]).into_owned());
        }
    }
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_dynamic_symbols_of_a_real_library() {
        // libc of the test machine: always present on Linux and defines `malloc`.
        let candidates = [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib64/libc.so.6",
            "/usr/lib/libc.so.6",
        ];
        let Some(bytes) = candidates.iter().find_map(|p| std::fs::read(p).ok()) else {
            return; // not a glibc system: nothing to check against
        };
        let names = defined_dynamic_symbols(&bytes).expect("an ELF file");
        assert!(names.iter().any(|n| n == "malloc"), "{} symbols", names.len());
    }

    #[test]
    fn garbage_is_not_elf() {
        assert_eq!(defined_dynamic_symbols(b"#!/bin/sh\necho hi\n"), None);
        let mut truncated = b"\x7fELF\x02\x01".to_vec();
        truncated.resize(0x40, 0xff);
        assert_eq!(defined_dynamic_symbols(&truncated), None);
    }
}
