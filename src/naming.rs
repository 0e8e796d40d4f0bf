//! Names of composed objects and label values: pure, stable across runs.

use sha2::{Digest, Sha256};

/// Longest name that every kind accepts (a DNS-1123 label).
pub const MAX_NAME_LEN: usize = 63;
/// Hex digits of the hash that replaces the cut part of a long name.
const HASH_LEN: usize = 8;

/// `<namespace>-<claim>-<resource>`, cut to a DNS-1123 label with a stable
/// hash of the whole when too long. The same claim always yields the same
/// names, so a restarted operator finds what it made before.
pub fn composed_name(namespace: &str, claim: &str, resource: &str) -> String {
    fit(&format!("{namespace}-{claim}-{resource}"), MAX_NAME_LEN)
}

/// A label value (at most 63 characters) standing for `value`.
pub fn label_value(value: &str) -> String {
    fit(value, MAX_NAME_LEN)
}

/// `value` made a valid DNS-1123 label of at most `max` characters: lower
/// case, `[a-z0-9-]`, alphanumeric at both ends. A value that had to change
/// gets a hash of the original appended, so two different inputs never map
/// to the same output by being cut or cleaned alike.
pub fn fit(value: &str, max: usize) -> String {
    let max = max.max(HASH_LEN + 2);
    if value.len() <= max && is_dns_label(value) {
        return value.to_string();
    }
    let cleaned: String = value
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-') => c,
            _ => '-',
        })
        .collect();
    let keep = max - HASH_LEN - 1;
    let head: String = cleaned.chars().take(keep).collect();
    let head = head.trim_matches('-');
    let hash = short_hash(value);
    if head.is_empty() {
        format!("x-{hash}")
    } else {
        format!("{head}-{hash}")
    }
}

/// The first hex digits of SHA-256: stable across runs and platforms.
pub fn short_hash(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    digest
        .iter()
        .take(HASH_LEN / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `s` is a DNS-1123 label: 1..=63 of `[a-z0-9-]`, alphanumeric ends.
pub fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_names_are_kept() {
        assert_eq!(
            composed_name("team-a", "orders-db", "instance"),
            "team-a-orders-db-instance"
        );
    }

    #[test]
    fn long_names_are_cut_with_a_hash() {
        let long = "a".repeat(100);
        let name = composed_name("team-a", &long, "instance");
        assert_eq!(name.len(), MAX_NAME_LEN);
        assert!(is_dns_label(&name), "{name}");
        assert_eq!(name, composed_name("team-a", &long, "instance"));
        assert_ne!(name, composed_name("team-a", &long, "instance2"));
    }

    #[test]
    fn label_values_fit() {
        assert_eq!(label_value("orders-db"), "orders-db");
        let v = label_value(&"x".repeat(200));
        assert!(v.len() <= 63 && is_dns_label(&v));
    }

    #[test]
    fn a_name_that_only_ends_in_a_hyphen_after_cutting_stays_valid() {
        let ns = format!("{}-", "b".repeat(53));
        let name = composed_name(&ns, "c", "d");
        assert!(is_dns_label(&name), "{name}");
    }

    fn dns_label() -> impl Strategy<Value = String> {
        "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
    }

    fn dns_subdomain() -> impl Strategy<Value = String> {
        "[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"
    }

    proptest! {
        #[test]
        fn names_are_valid_and_stable(ns in dns_label(), claim in dns_subdomain(), res in dns_label()) {
            let name = composed_name(&ns, &claim, &res);
            prop_assert!(is_dns_label(&name), "{}", name);
            prop_assert_eq!(&name, &composed_name(&ns, &claim, &res));
        }

        #[test]
        fn distinct_plain_names_never_collide(
            a in (dns_label(), dns_subdomain(), dns_label()),
            b in (dns_label(), dns_subdomain(), dns_label()),
        ) {
            let plain_a = format!("{}-{}-{}", a.0, a.1, a.2);
            let plain_b = format!("{}-{}-{}", b.0, b.1, b.2);
            prop_assume!(plain_a != plain_b);
            prop_assert_ne!(composed_name(&a.0, &a.1, &a.2), composed_name(&b.0, &b.1, &b.2));
        }

        #[test]
        fn any_string_fits(s in ".{0,300}", max in 10usize..=63) {
            let v = fit(&s, max);
            prop_assert!(is_dns_label(&v) && v.len() <= max, "{:?} -> {:?}", s, v);
        }
    }
}
