//! Master passwords: generated once (the providers' shared CSPRNG
//! generator), checked against the engine's rules (RDS refuses what moto
//! accepts).

pub use crate::provider::password::{LENGTH, generate};

/// Characters RDS refuses in a master password, whatever the engine.
pub const FORBIDDEN: [char; 4] = ['/', '"', '@', ' '];

/// The allowed length of a master password for `engine` (RDS rules).
pub fn length_range(engine: &str) -> std::ops::RangeInclusive<usize> {
    match engine {
        "mysql" | "mariadb" => 8..=41,
        // postgres, and the bound the other engines share at least
        _ => 8..=128,
    }
}

/// Why RDS would refuse `password` for `engine`, or None. Never includes the
/// password itself.
pub fn problem(engine: &str, password: &str) -> Option<String> {
    let range = length_range(engine);
    let len = password.chars().count();
    if !range.contains(&len) {
        return Some(format!(
            "the password in the connection Secret has {len} characters; {engine} needs {} to {}",
            range.start(),
            range.end()
        ));
    }
    if password.contains(FORBIDDEN) {
        return Some(
            "the password in the connection Secret contains /, \", @ or a space, which RDS refuses"
                .to_string(),
        );
    }
    if !password.chars().all(|c| c.is_ascii_graphic()) {
        return Some(
            "the password in the connection Secret must be printable ASCII characters".to_string(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_fit_every_engine() {
        for _ in 0..200 {
            let p = generate();
            assert_eq!(p.len(), LENGTH);
            for engine in ["postgres", "mysql", "mariadb"] {
                assert_eq!(problem(engine, &p), None, "{engine}");
            }
        }
    }

    #[test]
    fn never_repeated() {
        let set: std::collections::HashSet<String> = (0..200).map(|_| generate()).collect();
        assert_eq!(set.len(), 200);
    }

    #[test]
    fn engine_rules() {
        assert!(problem("postgres", "short").is_some());
        assert!(problem("postgres", &"a".repeat(8)).is_none());
        assert!(problem("postgres", &"a".repeat(128)).is_none());
        assert!(problem("postgres", &"a".repeat(129)).is_some());
        assert!(problem("mysql", &"a".repeat(41)).is_none());
        assert!(problem("mysql", &"a".repeat(42)).is_some());
        assert!(problem("mariadb", &"a".repeat(42)).is_some());
        for bad in [
            "abcdefg/h",
            "abcdefg\"h",
            "abcdefg@h",
            "abcdefg h",
            "abcdefgh\u{e9}",
        ] {
            let why = problem("postgres", bad).expect(bad);
            assert!(!why.contains(bad), "the message must not echo the password");
        }
    }
}
