//! Generated passwords, for every provider: one CSPRNG generator.

use rand::RngExt;
use rand::distr::Alphanumeric;

/// Length of generated passwords: within every supported engine's limits.
pub const LENGTH: usize = 32;

/// 32 characters from `[A-Za-z0-9]` (about 190 bits), drawn from the
/// thread-local CSPRNG (ChaCha, seeded and reseeded from the OS). The charset
/// needs no escaping in a URI, a shell or a connection string.
pub fn generate() -> String {
    generate_len(LENGTH)
}

/// `length` characters from `[A-Za-z0-9]`, as [`generate`].
pub fn generate_len(length: usize) -> String {
    let mut rng = rand::rng();
    assert_crypto(&rng);
    (&mut rng)
        .sample_iter(Alphanumeric)
        .take(length)
        .map(char::from)
        .collect()
}

/// Compile-time proof that the generator is a CSPRNG.
fn assert_crypto<R: rand::CryptoRng>(_: &R) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_and_charset() {
        for _ in 0..200 {
            let p = generate();
            assert_eq!(p.len(), LENGTH);
            assert!(p.chars().all(|c| c.is_ascii_alphanumeric()), "{p}");
            assert!(!p.contains(['/', '"', '@', ' ', '\'', ':', '\\']));
        }
    }

    #[test]
    fn not_repeated() {
        let a: std::collections::HashSet<String> = (0..100).map(|_| generate()).collect();
        assert_eq!(a.len(), 100);
    }
}
