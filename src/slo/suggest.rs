//! "Did you mean …?" for misspelt keys and values, shared by the SLO spec parser
//! (`slo::spec::yaml`) and the Rollout schema check (`rollout::schema`).

/// The known name closest to a misspelt one, when it is close enough to be a likely typo.
///
/// Case, `_` and `-` are ignored (`errorQuery` finds `error_query`); the distance is
/// Levenshtein's over characters ([`strsim::levenshtein`]), and a name is close enough when
/// at most `max(2, len/4)` edits away. On a tie the first of `known` wins.
pub fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['_', '-'], "");
    let key = norm(key);
    known
        .iter()
        .map(|k| (strsim::levenshtein(&key, &norm(k)), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn suggests_close_names() {
        assert_eq!(
            closest("objectiv", &["name", "objective"]),
            Some("objective")
        );
        assert_eq!(
            closest("errorQuery", &["error_query", "total_query"]),
            Some("error_query")
        );
        assert_eq!(closest("zzz", &["name", "objective"]), None);
        // Case, `_` and `-` do not count as edits.
        assert_eq!(
            closest("ERROR-QUERY", &["error_query"]),
            Some("error_query")
        );
        // Characters, not bytes: `é` for `e` is one edit.
        assert_eq!(closest("stéps", &["steps"]), Some("steps"));
    }

    #[test]
    fn the_limit_grows_with_the_length_of_the_known_name() {
        // Two edits are always allowed; a quarter of the known name's length when more.
        assert_eq!(closest("abxy", &["abcd"]), Some("abcd"));
        assert_eq!(closest("axyz", &["abcd"]), None);
        assert_eq!(
            closest("analysisInterxyz", &["analysisInterval"]),
            Some("analysisInterval")
        );
        assert_eq!(closest("analysisXyzval", &["analysisInterval"]), None);
        assert_eq!(closest("nothing", &[]), None);
    }

    #[test]
    fn the_nearest_wins_and_ties_go_to_the_first() {
        assert_eq!(closest("steps", &["step", "steps"]), Some("steps"));
        assert_eq!(closest("ab", &["ax", "ay"]), Some("ax"));
    }
}
