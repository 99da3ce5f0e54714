//! Generated values (`[codes]`): random print codes that are unique across
//! all users and not guessable from one another, and numbers allocated from a
//! range (the lowest one not in use). The values in use are read once, inside
//! the transaction that assigns the new ones.

use std::collections::HashSet;

use crate::config::{Charset, CodeSpec};
use crate::store::{StoreError, StoreTx};

#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error("codes.{field}: every number in {lo}-{hi} is in use; widen the range")]
    Exhausted { field: String, lo: u64, hi: u64 },
    #[error("codes.{field}: no unused code left ({tries} random tries, then a full search); lengthen the codes")]
    Crowded { field: String, tries: u32 },
    #[error("the system's random source failed: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Hands out values for one field within one transaction.
pub struct Generator {
    field: String,
    spec: CodeSpec,
    used: HashSet<String>,
    next: u64,
}

impl Generator {
    pub fn load(tx: &mut dyn StoreTx, field: &str, spec: &CodeSpec) -> Result<Generator, CodeError> {
        let used: HashSet<String> = tx.field_values(field)?.into_iter().collect();
        let next = match spec {
            CodeSpec::Allocate { lo, .. } => *lo,
            CodeSpec::Random { .. } => 0,
        };
        Ok(Generator { field: field.to_string(), spec: spec.clone(), used, next })
    }

    /// The next value; it counts as in use from now on.
    pub fn next_value(&mut self) -> Result<String, CodeError> {
        let value = match &self.spec {
            CodeSpec::Allocate { lo, hi } => {
                let mut n = self.next.max(*lo);
                while n <= *hi && self.used.contains(&n.to_string()) {
                    n += 1;
                }
                if n > *hi {
                    return Err(CodeError::Exhausted { field: self.field.clone(), lo: *lo, hi: *hi });
                }
                self.next = n + 1;
                n.to_string()
            }
            CodeSpec::Random { length, charset, unique } => {
                const TRIES: u32 = 100;
                let mut tries = 0;
                loop {
                    let code = random_code(*length, *charset)?;
                    if !unique || !self.used.contains(&code) {
                        break code;
                    }
                    tries += 1;
                    if tries >= TRIES {
                        // Nearly full: pick uniformly among the free codes, if
                        // the space is small enough to list.
                        break self.random_free(*length, *charset, tries)?;
                    }
                }
            }
        };
        self.used.insert(value.clone());
        Ok(value)
    }
}

impl Generator {
    fn random_free(&self, length: usize, charset: Charset, tries: u32) -> Result<String, CodeError> {
        let symbols = charset.symbols();
        let space = (symbols.len() as u64).checked_pow(length as u32).filter(|n| *n <= 10_000_000);
        let crowded = || CodeError::Crowded { field: self.field.clone(), tries };
        let Some(space) = space else { return Err(crowded()) };
        let code_of = |mut n: u64| {
            let mut s = vec![b'0'; length];
            for slot in s.iter_mut().rev() {
                *slot = symbols[(n % symbols.len() as u64) as usize];
                n /= symbols.len() as u64;
            }
            String::from_utf8(s).expect("ASCII symbols")
        };
        let free: Vec<u64> = (0..space).filter(|&n| !self.used.contains(&code_of(n))).collect();
        if free.is_empty() {
            return Err(crowded());
        }
        let mut r = [0u8; 8];
        getrandom::fill(&mut r).map_err(|e| CodeError::Random(e.to_string()))?;
        Ok(code_of(free[(u64::from_le_bytes(r) % free.len() as u64) as usize]))
    }
}

/// `length` symbols drawn uniformly from the OS's random source (rejection
/// sampling: no modulo bias).
pub fn random_code(length: usize, charset: Charset) -> Result<String, CodeError> {
    let symbols = charset.symbols();
    let limit = 256 - (256 % symbols.len());
    let mut out = String::with_capacity(length);
    let mut buf = [0u8; 64];
    while out.len() < length {
        getrandom::fill(&mut buf).map_err(|e| CodeError::Random(e.to_string()))?;
        for &b in &buf {
            if (b as usize) < limit && out.len() < length {
                out.push(symbols[b as usize % symbols.len()] as char);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_codes_have_the_shape_asked_and_vary() {
        let a = random_code(6, Charset::Digits).unwrap();
        assert_eq!(a.len(), 6);
        assert!(a.chars().all(|c| c.is_ascii_digit()));
        let b = random_code(12, Charset::Alphanumeric).unwrap();
        assert!(
            b.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) && !b.contains('0') && !b.contains('O')
        );
        let many: HashSet<String> = (0..200).map(|_| random_code(8, Charset::Digits).unwrap()).collect();
        assert!(many.len() > 195, "8-digit codes should almost never repeat in 200 draws");
        // Not a sequence: consecutive codes are not consecutive numbers.
        let nums: Vec<u64> = (0..20).map(|_| random_code(8, Charset::Digits).unwrap().parse().unwrap()).collect();
        assert!(nums.windows(2).filter(|w| w[1] == w[0] + 1).count() < 2);
    }

    #[test]
    fn allocation_takes_the_lowest_free_number_and_says_when_exhausted() {
        let mut g = Generator {
            field: "extension".into(),
            spec: CodeSpec::Allocate { lo: 2000, hi: 2003 },
            used: ["2000", "2002", "abc"].iter().map(|s| s.to_string()).collect(),
            next: 2000,
        };
        assert_eq!(g.next_value().unwrap(), "2001");
        assert_eq!(g.next_value().unwrap(), "2003");
        let e = g.next_value().unwrap_err().to_string();
        assert!(e.contains("every number in 2000-2003 is in use"), "{e}");
    }

    #[test]
    fn unique_random_codes_avoid_codes_in_use() {
        let spec = CodeSpec::Random { length: 4, charset: Charset::Digits, unique: true };
        let used: HashSet<String> = (0..9990).map(|n| format!("{n:04}")).collect();
        let mut g = Generator { field: "pin".into(), spec, used, next: 0 };
        for _ in 0..10 {
            let v = g.next_value().unwrap();
            assert!(v.parse::<u32>().unwrap() >= 9990, "{v}");
        }
        assert!(matches!(g.next_value(), Err(CodeError::Crowded { .. })));
    }
}
