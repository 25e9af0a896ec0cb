//! Provider-specific id formatting over the neutral indices, reversible so facades can map an id in a
//! URL back to the index. Ids depend on the generator seed, so two orgs with different seeds never
//! share ids (a client that mixes them up is caught).

const M1: u32 = 0x9E37_79B1;
const M2: u32 = 0x85EB_CA6B;

const fn inv(c: u32) -> u32 {
    // Newton iteration for the inverse of an odd number modulo 2^32.
    let mut x = c;
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u32.wrapping_sub(c.wrapping_mul(x)));
        i += 1;
    }
    x
}

const M1_INV: u32 = inv(M1);
const M2_INV: u32 = inv(M2);

fn key32(seed: u64, kind: u8) -> u32 {
    let x = seed ^ (u64::from(kind) << 56) ^ 0x5DEE_CE66_D1CE_4E5B;
    let x = (x ^ (x >> 33)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    let x = (x ^ (x >> 33)).wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    (x ^ (x >> 33)) as u32
}

/// A bijection on u32 keyed by (seed, kind).
pub fn mix32(ix: u32, seed: u64, kind: u8) -> u32 {
    let mut x = ix ^ key32(seed, kind);
    x = x.wrapping_mul(M1);
    x ^= x >> 16;
    x = x.wrapping_mul(M2);
    x ^= x >> 13;
    x
}

/// The inverse of [`mix32`].
pub fn unmix32(v: u32, seed: u64, kind: u8) -> u32 {
    let mut x = v;
    x ^= (x >> 13) ^ (x >> 26);
    x = x.wrapping_mul(M2_INV);
    x ^= x >> 16;
    x = x.wrapping_mul(M1_INV);
    x ^ key32(seed, kind)
}

const B62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn b62_fixed(mut v: u64, width: usize, out: &mut String) {
    let mut buf = vec![b'0'; width];
    for slot in buf.iter_mut().rev() {
        *slot = B62[(v % 62) as usize];
        v /= 62;
    }
    out.extend(buf.iter().map(|&b| b as char));
}

fn b62_parse(s: &str) -> Option<u64> {
    let mut v: u64 = 0;
    for b in s.bytes() {
        let d = B62.iter().position(|&c| c == b)? as u64;
        v = v.checked_mul(62)?.checked_add(d)?;
    }
    Some(v)
}

/// An Okta-shaped id: a 3-character prefix (`00u` users, `00g` groups, `0oa` apps, ...) and 17
/// base62 characters, 20 in all, like `00ub0oNGTSWTBKOLGLNR`.
pub fn okta_id(prefix: &str, seed: u64, kind: u8, ix: u32) -> String {
    let mut s = String::with_capacity(20);
    s.push_str(prefix);
    let tag = u64::from(key32(seed, kind.wrapping_add(101)) & 0xFFFF);
    b62_fixed(tag, 6, &mut s);
    b62_fixed(u64::from(mix32(ix, seed, kind)), 11, &mut s);
    s
}

/// The index behind an id made by [`okta_id`] with the same prefix, seed and kind.
pub fn parse_okta_id(id: &str, prefix: &str, seed: u64, kind: u8) -> Option<u32> {
    let rest = id.strip_prefix(prefix)?;
    if rest.len() != 17 || !rest.is_ascii() {
        return None;
    }
    let tag = b62_parse(&rest[..6])?;
    if tag != u64::from(key32(seed, kind.wrapping_add(101)) & 0xFFFF) {
        return None;
    }
    let v = u32::try_from(b62_parse(&rest[6..])?).ok()?;
    Some(unmix32(v, seed, kind))
}

/// A version-4-shaped GUID (Graph, Keycloak), lower-case hex `8-4-4-4-12`.
pub fn guid(seed: u64, kind: u8, ix: u32) -> String {
    let k = key32(seed, kind.wrapping_add(7));
    let m = mix32(ix, seed, kind);
    let a = k;
    let b = (k >> 16) as u16 ^ 0x5A5A;
    let c = 0x4000 | (u16::from(kind) & 0x0FFF);
    let d = 0x8000 | ((k as u16) & 0x3FFF);
    format!("{a:08x}-{b:04x}-{c:04x}-{d:04x}-{:04x}{m:08x}", (k >> 8) as u16)
}

/// The index behind a GUID made by [`guid`] with the same seed and kind (case-insensitive).
pub fn parse_guid(id: &str, seed: u64, kind: u8) -> Option<u32> {
    let id = id.to_ascii_lowercase();
    if id.len() != 36 {
        return None;
    }
    let m = u32::from_str_radix(id.get(28..36)?, 16).ok()?;
    let ix = unmix32(m, seed, kind);
    (guid(seed, kind, ix) == id).then_some(ix)
}

/// Id kinds used with the functions above (keep ids of different object types disjoint).
pub mod kind {
    /// Users.
    pub const USER: u8 = 1;
    /// Groups.
    pub const GROUP: u8 = 2;
    /// Roles.
    pub const ROLE: u8 = 3;
    /// Applications / clients.
    pub const APP: u8 = 4;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_seed_specific() {
        for ix in [0u32, 1, 2, 99_999, u32::MAX] {
            assert_eq!(unmix32(mix32(ix, 7, 1), 7, 1), ix);
            let o = okta_id("00u", 7, kind::USER, ix);
            assert_eq!(o.len(), 20);
            assert_eq!(parse_okta_id(&o, "00u", 7, kind::USER), Some(ix));
            assert_eq!(parse_okta_id(&o, "00u", 8, kind::USER), None);
            assert_eq!(parse_okta_id(&o, "00g", 7, kind::USER), None);
            let g = guid(7, kind::GROUP, ix);
            assert_eq!(parse_guid(&g, 7, kind::GROUP), Some(ix));
            assert_eq!(parse_guid(&g.to_uppercase(), 7, kind::GROUP), Some(ix));
            assert_eq!(parse_guid(&g, 7, kind::USER), None);
        }
    }
}
