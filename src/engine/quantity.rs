//! Kubernetes resource quantities ("1Gi", "500M", "1.5e3", "100m") for the
//! `convert` transform's `format: quantity`.
//!
//! Grammar (k8s.io/apimachinery `resource.Quantity`):
//! `[+-]digits[.digits][suffix]` where the suffix is a binary SI suffix
//! (Ki Mi Gi Ti Pi Ei), a decimal SI suffix (m, none, k, M, G, T, P, E) or a
//! decimal exponent (`e`/`E` followed by a signed integer).

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("{0:?} is not a quantity (examples: 20, 1Gi, 500M, 1.5e3)")]
    Syntax(String),
    #[error("{0:?} is too large for a 64-bit integer or has too many digits")]
    OutOfRange(String),
}

/// A parsed quantity: `±digits × 10^-frac × scale`.
struct Parsed {
    negative: bool,
    /// All mantissa digits, integer and fraction parts together.
    digits: String,
    /// How many of `digits` are after the decimal point.
    frac: u32,
    scale: Scale,
}

enum Scale {
    /// × 2^n
    Binary(u32),
    /// × 10^n
    Decimal(i32),
}

fn parse(s: &str) -> Result<Parsed, QuantityError> {
    let syntax = || QuantityError::Syntax(s.to_string());
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (int_part, rest) = rest.split_at(int_len);
    let (frac_part, suffix) = match rest.strip_prefix('.') {
        Some(after) => {
            let n = after.bytes().take_while(u8::is_ascii_digit).count();
            after.split_at(n)
        }
        None => ("", rest),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(syntax());
    }
    let scale = match suffix {
        "Ki" => Scale::Binary(10),
        "Mi" => Scale::Binary(20),
        "Gi" => Scale::Binary(30),
        "Ti" => Scale::Binary(40),
        "Pi" => Scale::Binary(50),
        "Ei" => Scale::Binary(60),
        "m" => Scale::Decimal(-3),
        "" => Scale::Decimal(0),
        "k" => Scale::Decimal(3),
        "M" => Scale::Decimal(6),
        "G" => Scale::Decimal(9),
        "T" => Scale::Decimal(12),
        "P" => Scale::Decimal(15),
        "E" => Scale::Decimal(18),
        other => {
            let exp = other.strip_prefix(['e', 'E']).ok_or_else(syntax)?;
            let digits = exp.trim_start_matches(['+', '-']);
            if digits.is_empty()
                || !digits.bytes().all(|b| b.is_ascii_digit())
                || exp.len() - digits.len() > 1
            {
                return Err(syntax());
            }
            Scale::Decimal(exp.parse::<i32>().map_err(|_| syntax())?)
        }
    };
    let frac = u32::try_from(frac_part.len()).map_err(|_| syntax())?;
    Ok(Parsed {
        negative,
        digits: format!("{int_part}{frac_part}"),
        frac,
        scale,
    })
}

/// The quantity as an integer, rounded up as `Quantity.Value()` does.
pub fn to_i64(s: &str) -> Result<i64, QuantityError> {
    to_i64_rounded(s).map(|(value, _)| value)
}

/// The quantity as an integer when it is one exactly (`1.5` is not; `1.5Ki` is).
pub fn to_i64_exact(s: &str) -> Result<Option<i64>, QuantityError> {
    to_i64_rounded(s).map(|(value, exact)| exact.then_some(value))
}

/// The quantity rounded up, and whether no rounding happened.
fn to_i64_rounded(s: &str) -> Result<(i64, bool), QuantityError> {
    let q = parse(s)?;
    let range = || QuantityError::OutOfRange(s.to_string());
    let digits = q.digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok((0, true));
    }
    // 38 digits always fit an i128; a quantity with more significant digits
    // is refused rather than rounded.
    if digits.len() > 38 {
        return Err(range());
    }
    let mut num: i128 = digits.parse().map_err(|_| range())?;
    // value = num × 2^bin × 10^exp10, computed exactly, then rounded up.
    let mut exp10 = -i64::from(q.frac);
    match q.scale {
        Scale::Binary(n) => num = num.checked_mul(1i128 << n).ok_or_else(range)?,
        Scale::Decimal(e) => exp10 += i64::from(e),
    }
    let (whole, exact) = if exp10 >= 0 {
        let factor = u32::try_from(exp10)
            .ok()
            .and_then(|e| 10i128.checked_pow(e))
            .ok_or_else(range)?;
        (num.checked_mul(factor).ok_or_else(range)?, true)
    } else {
        match u32::try_from(-exp10)
            .ok()
            .and_then(|e| 10i128.checked_pow(e))
        {
            Some(den) => (num / den, num % den == 0),
            // The divisor exceeds i128, so num (< 10^38) is a fraction of it.
            None => (0, false),
        }
    };
    // Rounding up moves a positive value away from zero and a negative one
    // toward it, so only positive inexact values gain one.
    let value = if q.negative {
        -whole
    } else if exact {
        whole
    } else {
        whole + 1
    };
    i64::try_from(value)
        .map(|v| (v, exact))
        .map_err(|_| range())
}

/// The quantity as a float, as `Quantity.AsApproximateFloat64()` does.
pub fn to_f64(s: &str) -> Result<f64, QuantityError> {
    let q = parse(s)?;
    let mantissa: f64 = if q.digits.is_empty() {
        0.0
    } else {
        q.digits
            .parse()
            .map_err(|_| QuantityError::Syntax(s.to_string()))?
    };
    if mantissa == 0.0 {
        return Ok(0.0);
    }
    let frac = i32::try_from(q.frac).unwrap_or(i32::MAX);
    let value = match q.scale {
        Scale::Binary(n) => mantissa * 2f64.powi(n as i32) / 10f64.powi(frac),
        Scale::Decimal(e) => mantissa * 10f64.powi(e.saturating_sub(frac)),
    };
    let value = if q.negative { -value } else { value };
    if value.is_finite() {
        Ok(value)
    } else {
        Err(QuantityError::OutOfRange(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn integers() {
        for (s, want) in [
            ("20", 20),
            ("1Gi", 1 << 30),
            ("1.5Gi", 1_610_612_736),
            ("500M", 500_000_000),
            ("1k", 1000),
            ("1Ki", 1024),
            ("100m", 1),
            ("1500m", 2),
            ("1e3", 1000),
            ("1E3", 1000),
            ("1.5e-1", 1),
            ("+5", 5),
            ("-5", -5),
            ("-1.5", -1),
            (".5", 1),
            ("5.", 5),
            ("0", 0),
            ("0.000", 0),
            ("0e999999", 0),
            ("1e-999999", 1),
            ("-1e-999999", 0),
            ("0.000000000000000000000000000000000000000000001", 1),
            ("7Ei", 7 << 60),
        ] {
            assert_eq!(to_i64(s), Ok(want), "{s}");
        }
        // 8Ei is 2^63, one past i64::MAX.
        assert!(matches!(to_i64("8Ei"), Err(QuantityError::OutOfRange(_))));
    }

    #[test]
    fn floats() {
        for (s, want) in [
            ("1Gi", 1073741824.0),
            ("500M", 5e8),
            ("1.5", 1.5),
            ("100m", 0.1),
            ("2.5e2", 250.0),
        ] {
            let got = to_f64(s).unwrap();
            assert!(
                (got - want).abs() < 1e-9 * want.abs().max(1.0),
                "{s}: {got}"
            );
        }
    }

    #[test]
    fn rejects_bad_quantities() {
        for s in [
            "", "Gi", "1 Gi", "1gi", "1.2.3", "abc", "1e", "1e+-3", "--1", "1Gix", "1e3.5",
        ] {
            assert!(matches!(to_i64(s), Err(QuantityError::Syntax(_))), "{s:?}");
            assert!(to_f64(s).is_err(), "{s:?}");
        }
        assert!(matches!(to_i64("1e40"), Err(QuantityError::OutOfRange(_))));
        assert!(matches!(
            to_i64("99999999999999999999999999999999999999999"),
            Err(QuantityError::OutOfRange(_))
        ));
        assert!(to_f64("1e400").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in "[-+]?[0-9.]{0,45}([KMGTPE]i?|[eE][-+]?[0-9]{0,12}|m|k)?") {
            let _ = to_i64(&s);
            let _ = to_f64(&s);
        }
    }
}
