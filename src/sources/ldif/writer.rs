//! Writes entries as RFC 2849 LDIF: plain values when they are SAFE-STRINGs,
//! base64 otherwise (non-ASCII, binary, leading space, colon or `<`, trailing
//! space, control characters), lines folded at 76 bytes. What [`super::Reader`]
//! reads back is the same entry (a property test below checks it).

use base64::Engine;

use crate::model::{AttrValue, RawEntry};

const WIDTH: usize = 76;

/// Appends one record (and the blank line after it) to `out`.
pub fn write_entry(out: &mut String, e: &RawEntry) {
    line(out, "dn", e.dn.as_bytes());
    for (name, values) in &e.attrs {
        for v in values {
            line(out, name, v.bytes());
        }
    }
    out.push('\n');
}

fn is_safe(v: &[u8]) -> bool {
    match v.first() {
        None => true,
        Some(b' ' | b':' | b'<') => false,
        Some(_) => v.last() != Some(&b' ') && v.iter().all(|&b| (0x01..0x80).contains(&b) && b != b'\n' && b != b'\r'),
    }
}

fn line(out: &mut String, name: &str, v: &[u8]) {
    let text = if is_safe(v) {
        format!("{name}: {}", std::str::from_utf8(v).expect("ASCII"))
    } else {
        format!("{name}:: {}", base64::engine::general_purpose::STANDARD.encode(v))
    };
    // The text is ASCII, so any byte is a char boundary.
    let mut rest = text.as_str();
    let mut first = true;
    while !rest.is_empty() {
        let width = if first { WIDTH } else { WIDTH - 1 };
        let (head, tail) = rest.split_at(rest.len().min(width));
        if !first {
            out.push(' ');
        }
        out.push_str(head);
        out.push('\n');
        rest = tail;
        first = false;
    }
}

/// Whether a value written by [`write_entry`] reads back as itself: text that
/// is valid UTF-8 comes back as text, other bytes as binary.
pub fn reads_back_as(v: &AttrValue) -> AttrValue {
    match std::str::from_utf8(v.bytes()) {
        Ok(s) => AttrValue::Text(s.to_string()),
        Err(_) => AttrValue::Binary(v.bytes().to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::ldif::reader::read_all;

    /// xorshift64*: a fixed seed, so a failure reproduces.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545F4914F6CDD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn bytes(&mut self, max: usize) -> Vec<u8> {
            const PICK: &[&[u8]] = &[
                b"a",
                b"Z",
                b"9",
                b" ",
                b":",
                b"<",
                b"=",
                b",",
                b"#",
                b"\\",
                b"\xc3\xa9",
                b"\xe2\x80\x8b",
                b"\xff",
                b"\x00",
                b"\r",
                b"\n",
                b"\t",
                b"-",
            ];
            let n = self.below(max + 1);
            let mut v = Vec::new();
            for _ in 0..n {
                v.extend_from_slice(PICK[self.below(PICK.len())]);
            }
            v
        }
    }

    fn random_entry(rng: &mut Rng) -> RawEntry {
        let dn = String::from_utf8_lossy(&rng.bytes(120)).into_owned();
        let mut e = RawEntry::new(dn);
        let names = 1 + rng.below(6);
        for i in 0..names {
            let name = format!("attr{i}x{}", rng.below(3));
            if e.attrs.iter().any(|(n, _)| *n == name) {
                continue;
            }
            let values = (0..1 + rng.below(3)).map(|_| reads_back_as(&AttrValue::Binary(rng.bytes(200)))).collect();
            e.attrs.push((name, values));
        }
        e
    }

    #[test]
    fn ldif_written_and_read_back_round_trips() {
        let mut rng = Rng(0x9E3779B97F4A7C15);
        for case in 0..3000 {
            let entries: Vec<RawEntry> = (0..1 + rng.below(3)).map(|_| random_entry(&mut rng)).collect();
            let mut text = String::from("version: 1\n\n");
            for e in &entries {
                write_entry(&mut text, e);
            }
            let back = read_all(text.as_bytes()).unwrap_or_else(|m| panic!("case {case}: {m}\n{text}"));
            assert_eq!(back, entries, "case {case}:\n{text}");
        }
    }

    #[test]
    fn plain_values_stay_readable_and_long_lines_fold() {
        let mut e = RawEntry::new("uid=a,dc=t");
        e.push("cn", AttrValue::Text("Plain".into()));
        e.push("description", AttrValue::Text("x".repeat(200)));
        e.push("sn", AttrValue::Text(" lead".into()));
        let mut out = String::new();
        write_entry(&mut out, &e);
        assert!(out.contains("\ncn: Plain\n"), "{out}");
        assert!(out.contains("\nsn:: IGxlYWQ=\n"), "{out}");
        assert!(out.lines().all(|l| l.len() <= WIDTH), "{out}");
    }
}
