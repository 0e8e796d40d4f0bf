//! DB instance identifiers: the RDS rules, and the stable derivation from an
//! object's name.
//!
//! RDS: 1 to 63 characters; letters, digits and hyphens; a letter first; no
//! two hyphens in a row; no hyphen at the end. Identifiers are not case
//! sensitive (RDS stores them in lower case), so dbclaim only makes lower
//! case ones.

use crate::naming::short_hash;

/// Longest identifier RDS accepts.
pub const MAX_LEN: usize = 63;

/// Whether RDS accepts `id` as a DB instance identifier.
pub fn is_valid(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LEN
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && !id.contains("--")
        && !id.ends_with('-')
}

/// Why RDS would refuse `id`, in words, or None when it is valid.
pub fn problem(id: &str) -> Option<String> {
    if is_valid(id) {
        return None;
    }
    let why = if id.is_empty() {
        "it is empty"
    } else if id.len() > MAX_LEN {
        "it is longer than 63 characters"
    } else if !id.as_bytes()[0].is_ascii_alphabetic() {
        "it must start with a letter"
    } else if id.contains("--") {
        "it must not contain two hyphens in a row"
    } else if id.ends_with('-') {
        "it must not end with a hyphen"
    } else {
        "it may contain only letters, digits and hyphens"
    };
    Some(format!(
        "\"{id}\" is not a valid DB instance identifier: {why}"
    ))
}

/// The identifier dbclaim gives the instance of the object named `name`.
///
/// A name that is already a valid lower-case identifier is kept as it is.
/// Any other name (dots, a digit first, too long) is cleaned and cut, and
/// gets a hash of the whole name appended, so two names never share an
/// identifier by being cleaned or cut alike, and the same name always yields
/// the same identifier.
pub fn derive(name: &str) -> String {
    if is_valid(name) && !name.bytes().any(|b| b.is_ascii_uppercase()) {
        return name.to_string();
    }
    cleaned_with_hash(name, &short_hash(name))
}

/// The identifier for the object named `name` in the cluster `cluster`,
/// when [`derive`]'s is taken by another cluster on the same AWS account
/// (two clusters that compose the same object name): the cleaned name and a
/// hash of the cluster and the name, so each cluster gets an instance of
/// its own and the same cluster always finds the same one.
pub fn for_cluster(name: &str, cluster: &str) -> String {
    cleaned_with_hash(name, &short_hash(&format!("{cluster}/{name}")))
}

/// `name` cleaned (lower case; letters, digits and single hyphens; a letter
/// first) and cut, then `-<hash>`.
fn cleaned_with_hash(name: &str, hash: &str) -> String {
    let mut cleaned = String::with_capacity(name.len());
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if c == '-' && (cleaned.is_empty() || cleaned.ends_with('-')) {
            continue;
        }
        cleaned.push(c);
    }
    if !cleaned.starts_with(|c: char| c.is_ascii_lowercase()) {
        cleaned.insert_str(0, "db-");
    }
    let keep = MAX_LEN - hash.len() - 1;
    cleaned.truncate(keep);
    let head = cleaned.trim_end_matches('-');
    format!("{head}-{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_names_are_kept() {
        for n in ["a", "team-a-orders-db-instance", "x1-2-3", &"a".repeat(63)] {
            assert_eq!(derive(n), n);
        }
    }

    #[test]
    fn rules() {
        assert!(is_valid("a"));
        assert!(is_valid("db-1"));
        assert!(!is_valid(""));
        assert!(!is_valid("1db"));
        assert!(!is_valid("-db"));
        assert!(!is_valid("db-"));
        assert!(!is_valid("db--x"));
        assert!(!is_valid("db.x"));
        assert!(!is_valid("db_x"));
        assert!(!is_valid(&"a".repeat(64)));
        for bad in ["", "1db", "db-", "db--x", "db.x", &"a".repeat(64)] {
            assert!(problem(bad).is_some(), "{bad}");
        }
        assert_eq!(problem("fine"), None);
    }

    #[test]
    fn invalid_names_are_cleaned_with_a_hash() {
        let id = derive("1-team.a--x");
        assert!(is_valid(&id), "{id}");
        assert!(id.starts_with("db-1-team-a-x-"), "{id}");
        let long = "a".repeat(100);
        let id = derive(&long);
        assert_eq!(id.len(), 63);
        assert!(is_valid(&id));
        assert_eq!(derive(&long), id, "stable");
        // cleaned alike, still distinct
        assert_ne!(derive("a.b"), derive("a_b"));
        assert_ne!(derive("a.b"), "a-b");
        // a cut landing on a hyphen leaves none at the end
        let name = format!("{}-{}", "a".repeat(53), "b".repeat(20));
        let id = derive(&name);
        assert!(is_valid(&id), "{id}");
        assert!(derive("Upper").starts_with("upper-"));
    }

    #[test]
    fn another_clusters_name_gets_a_cluster_hash() {
        let name = "team-a-orders-db-instance-1a2b3c4d";
        let a = for_cluster(name, "cluster-a");
        assert!(is_valid(&a), "{a}");
        assert!(a.starts_with(&format!("{name}-")), "{a}");
        assert_eq!(for_cluster(name, "cluster-a"), a, "stable");
        assert_ne!(for_cluster(name, "cluster-b"), a);
        assert_ne!(a, derive(name));
        assert!(is_valid(&for_cluster(&"A.".repeat(60), "c")));
    }

    proptest! {
        #[test]
        fn always_valid_and_stable(name in "[a-z0-9.-]{1,253}") {
            let id = derive(&name);
            prop_assert!(is_valid(&id), "{} -> {}", name, id);
            prop_assert_eq!(derive(&name), id);
        }
    }
}
