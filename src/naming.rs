//! Names of composed objects and label values: pure, stable across runs.

use sha2::{Digest, Sha256};

/// Longest name that every kind accepts (a DNS-1123 label).
pub const MAX_NAME_LEN: usize = 63;
/// Hex digits of the hash that replaces the cut part of a long name.
const HASH_LEN: usize = 8;

/// `<namespace>-<claim>-<resource>-<hash>`, a DNS-1123 label. The hash
/// covers the three parts unambiguously, so namespace `a` with claim `b-c`
/// and namespace `a-b` with claim `c` get different names (the joined text
/// alone is the same). Too long a name keeps its head and the hash. The
/// same claim always yields the same names, so a restarted operator finds
/// what it made before.
pub fn composed_name(namespace: &str, claim: &str, resource: &str) -> String {
    let hash = triple_hash(namespace, claim, resource);
    let cleaned: String = format!("{namespace}-{claim}-{resource}")
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-') => c,
            _ => '-',
        })
        .collect();
    let keep = MAX_NAME_LEN - HASH_LEN - 1;
    let head: String = cleaned.chars().take(keep).collect();
    let head = head.trim_matches('-');
    if head.is_empty() {
        format!("x-{hash}")
    } else {
        format!("{head}-{hash}")
    }
}

/// The name of a composed object: the one recorded in the claim's
/// `status.resources[].resourceName` for `resource` when there is one, so
/// objects made under an earlier naming keep their names; otherwise
/// [`composed_name`]. A recorded name that is not a DNS-1123 label was not
/// written by dbclaim and is ignored.
pub fn object_name(namespace: &str, claim: &str, resource: &str, recorded: Option<&str>) -> String {
    match recorded {
        Some(name) if is_dns_label(name) => name.to_string(),
        _ => composed_name(namespace, claim, resource),
    }
}

/// Hash of (namespace, claim, resource), each part length-prefixed so no
/// two different triples share an encoding.
fn triple_hash(namespace: &str, claim: &str, resource: &str) -> String {
    let mut encoded = String::new();
    for part in [namespace, claim, resource] {
        encoded.push_str(&format!("{}:{part};", part.len()));
    }
    short_hash(&encoded)
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

/// Whether `s` is a DNS-1123 subdomain (the names of most kinds, Secrets
/// among them): at most 253 characters, dot-separated DNS-1123 labels.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dns_subdomains() {
        for ok in [
            "a",
            "a-app",
            "a.b-c.d",
            "x0",
            &format!("{}.b", "a".repeat(63)),
        ] {
            assert!(is_dns_subdomain(ok), "{ok}");
        }
        for bad in [
            "",
            "a-",
            "a.",
            ".a",
            "a..b",
            "a.-b",
            "A",
            "a_b",
            &"a.".repeat(127),
        ] {
            assert!(!is_dns_subdomain(bad), "{bad}");
        }
    }

    #[test]
    fn short_names_read_as_the_claim_plus_a_hash() {
        let name = composed_name("team-a", "orders-db", "instance");
        let (head, hash) = name.split_at(name.len() - HASH_LEN);
        assert_eq!(head, "team-a-orders-db-instance-");
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
        // Pinned: a change here renames every object in every cluster.
        assert_eq!(
            name,
            format!(
                "team-a-orders-db-instance-{}",
                short_hash("6:team-a;9:orders-db;8:instance;")
            )
        );
    }

    #[test]
    fn hyphen_shuffled_triples_differ() {
        // The audit's H5 pair: both joined read "a-b-c-database".
        assert_ne!(
            composed_name("a", "b-c", "database"),
            composed_name("a-b", "c", "database")
        );
        assert_ne!(
            composed_name("a", "b", "c-d"),
            composed_name("a", "b-c", "d")
        );
    }

    #[test]
    fn a_recorded_name_is_kept() {
        assert_eq!(
            object_name(
                "team-a",
                "orders-db",
                "instance",
                Some("team-a-orders-db-instance")
            ),
            "team-a-orders-db-instance"
        );
        assert_eq!(
            object_name("team-a", "orders-db", "instance", None),
            composed_name("team-a", "orders-db", "instance")
        );
        // Garbage in the status is not a name dbclaim wrote.
        for bad in ["", "Team-A", "x/y", &"a".repeat(64)] {
            assert_eq!(
                object_name("team-a", "orders-db", "instance", Some(bad)),
                composed_name("team-a", "orders-db", "instance"),
                "{bad:?}"
            );
        }
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
        fn distinct_triples_never_collide(
            a in (dns_label(), dns_subdomain(), dns_label()),
            b in (dns_label(), dns_subdomain(), dns_label()),
        ) {
            prop_assume!(a != b);
            prop_assert_ne!(composed_name(&a.0, &a.1, &a.2), composed_name(&b.0, &b.1, &b.2));
        }

        /// The same joined text split at different hyphens: the case a
        /// plain join gets wrong.
        #[test]
        fn hyphen_shuffled_triples_never_collide(
            parts in prop::collection::vec("[a-z0-9]{1,12}", 3..8),
            cuts in (any::<prop::sample::Index>(), any::<prop::sample::Index>(),
                     any::<prop::sample::Index>(), any::<prop::sample::Index>()),
        ) {
            // Two ways to cut `parts` into three non-empty hyphen-joined groups.
            let n = parts.len();
            let split = |i: &prop::sample::Index, j: &prop::sample::Index| {
                let first = 1 + i.index(n - 2);
                let second = first + 1 + j.index(n - first - 1);
                (
                    parts[..first].join("-"),
                    parts[first..second].join("-"),
                    parts[second..].join("-"),
                )
            };
            let a = split(&cuts.0, &cuts.1);
            let b = split(&cuts.2, &cuts.3);
            prop_assume!(a != b);
            prop_assert_eq!(
                format!("{}-{}-{}", a.0, a.1, a.2),
                format!("{}-{}-{}", b.0, b.1, b.2)
            );
            prop_assert_ne!(composed_name(&a.0, &a.1, &a.2), composed_name(&b.0, &b.1, &b.2));
        }

        #[test]
        fn any_string_fits(s in ".{0,300}", max in 10usize..=63) {
            let v = fit(&s, max);
            prop_assert!(is_dns_label(&v) && v.len() <= max, "{:?} -> {:?}", s, v);
        }
    }
}
