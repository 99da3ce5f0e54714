//! How a contested name or identity is reported on each claimant: how many
//! claim it and the first few others, never all of them (each claimant
//! listing every other grew as the square of their number: 8,000 rows with
//! one id made gigabytes of errors).

/// Others named in one claimant's error.
pub const SHOWN: usize = 5;

/// "claimed by N entries; also A; B; C; D; E and M more", for one of
/// `claimants` entries; `others` are the rest, in order (only the first
/// [`SHOWN`] are looked at).
pub fn also_claimed_by(claimants: usize, others: impl Iterator<Item = String>) -> String {
    let shown: Vec<String> = others.take(SHOWN).collect();
    let more = claimants.saturating_sub(1 + shown.len());
    let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
    format!("claimed by {claimants} entries; also {}{tail}", shown.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimant_names_at_most_five_others_and_counts_the_rest() {
        let others = (0..7999).map(|i| format!("row {i}"));
        let t = also_claimed_by(8000, others);
        assert_eq!(t, "claimed by 8000 entries; also row 0; row 1; row 2; row 3; row 4 and 7994 more");
        assert_eq!(also_claimed_by(2, std::iter::once("b".to_string())), "claimed by 2 entries; also b");
    }
}
