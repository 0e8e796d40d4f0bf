//! A subset of Go's `fmt.Sprintf`, for `string.fmt` transforms and string
//! combines, so Crossplane compositions render the same text here.
//!
//! Supported: verbs `%s %v %d %f %F %t %q %x %X %%`, flags `-` (left-align),
//! `+` (sign), `0` (zero padding of numbers), ` ` (space for sign), a width,
//! a `.precision`, and explicit argument indexes `%[2]s`.
//!
//! Where Go would print a `%!d(string=x)`-style marker into the output (wrong
//! type, missing or extra values), this returns a typed error instead: the
//! marker would end up in a resource name or a cloud tag, while an error puts
//! a precise message on the claim. `%v` accepts every value, formatted as Go
//! does (`<nil>`, `[a b]`, `map[k:v]`, floats in `%g` form).

use std::fmt::Write;

use serde_json::Value;

use super::value::{Num, describe};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FmtError {
    #[error("%{verb} at position {pos} has no value (only {given} given)")]
    Missing {
        verb: char,
        pos: usize,
        given: usize,
    },
    #[error(
        "{given} value(s) given but the format uses only {used} (add a verb such as %v, or remove the extra values)"
    )]
    Extra { used: usize, given: usize },
    #[error("%{verb} at position {pos} needs {needs}, got {got}{hint}")]
    WrongType {
        verb: char,
        pos: usize,
        needs: &'static str,
        got: String,
        hint: &'static str,
    },
    #[error("%{verb} at position {pos} is not supported (use one of %s %v %d %f %t %q %x %%)")]
    UnsupportedVerb { verb: char, pos: usize },
    #[error(
        "the format ends inside a verb at position {pos} (write %% for a literal percent sign)"
    )]
    Incomplete { pos: usize },
    #[error("bad argument index at position {pos}")]
    BadIndex { pos: usize },
    #[error("width or precision at position {pos} is too large")]
    TooWide { pos: usize },
}

/// Widths and precisions above this are refused: a format cannot make the
/// engine allocate gigabytes.
const MAX_WIDTH: usize = 1024;

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

pub fn sprintf(format: &str, args: &[Value]) -> Result<String, FmtError> {
    let args: Vec<Option<&Value>> = args.iter().map(Some).collect();
    run(format, &args)
}

/// Checks a format statically: the number of values, and the verbs against
/// the values whose type is known (`None` stands for a value of unknown
/// type, which any supported verb accepts).
pub fn check(format: &str, args: &[Option<Value>]) -> Result<(), FmtError> {
    let args: Vec<Option<&Value>> = args.iter().map(Option::as_ref).collect();
    run(format, &args).map(|_| ())
}

fn run(format: &str, args: &[Option<&Value>]) -> Result<String, FmtError> {
    let mut out = String::new();
    let mut next_arg = 0usize;
    let mut reordered = false;
    let bytes = format.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Copy literal text up to the next '%'.
        let Some(off) = format[i..].find('%') else {
            out.push_str(&format[i..]);
            break;
        };
        out.push_str(&format[i..i + off]);
        let start = i + off;
        i = start + 1;
        let mut spec = Spec::default();
        while i < bytes.len() {
            match bytes[i] {
                b'-' => spec.minus = true,
                b'+' => spec.plus = true,
                b'0' => spec.zero = true,
                b' ' => spec.space = true,
                b'#' => {
                    return Err(FmtError::UnsupportedVerb {
                        verb: '#',
                        pos: start,
                    });
                }
                _ => break,
            }
            i += 1;
        }
        if let Some(n) = arg_index(format, &mut i, start)? {
            next_arg = n;
            reordered = true;
        }
        spec.width = number(format, &mut i, start)?;
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            spec.prec = Some(number(format, &mut i, start)?.unwrap_or(0));
        }
        if let Some(n) = arg_index(format, &mut i, start)? {
            next_arg = n;
            reordered = true;
        }
        if bytes.get(i) == Some(&b'*') {
            return Err(FmtError::UnsupportedVerb {
                verb: '*',
                pos: start,
            });
        }
        let Some(verb) = format[i..].chars().next() else {
            return Err(FmtError::Incomplete { pos: start });
        };
        i += verb.len_utf8();
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next_arg) else {
            return Err(FmtError::Missing {
                verb,
                pos: start,
                given: args.len(),
            });
        };
        next_arg += 1;
        let text = match arg {
            Some(arg) => format_one(verb, &spec, arg, start)?,
            None if "svdfFtqxX".contains(verb) => String::new(),
            None => return Err(FmtError::UnsupportedVerb { verb, pos: start }),
        };
        pad(&mut out, &text, &spec, verb);
    }
    // Go reports extra values only when no explicit index reordered them.
    if !reordered && next_arg < args.len() {
        return Err(FmtError::Extra {
            used: next_arg,
            given: args.len(),
        });
    }
    Ok(out)
}

/// `[n]` (1-based) at `i`, moving past it; the 0-based index.
fn arg_index(format: &str, i: &mut usize, start: usize) -> Result<Option<usize>, FmtError> {
    if !format[*i..].starts_with('[') {
        return Ok(None);
    }
    let Some(end) = format[*i..].find(']') else {
        return Err(FmtError::BadIndex { pos: start });
    };
    let n: usize = format[*i + 1..*i + end]
        .parse()
        .map_err(|_| FmtError::BadIndex { pos: start })?;
    if n == 0 {
        return Err(FmtError::BadIndex { pos: start });
    }
    *i += end + 1;
    Ok(Some(n - 1))
}

fn number(format: &str, i: &mut usize, start: usize) -> Result<Option<usize>, FmtError> {
    let digits = format[*i..].bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Ok(None);
    }
    let n = format[*i..*i + digits]
        .parse::<usize>()
        .ok()
        .filter(|n| *n <= MAX_WIDTH);
    *i += digits;
    n.map(Some).ok_or(FmtError::TooWide { pos: start })
}

fn format_one(verb: char, spec: &Spec, arg: &Value, pos: usize) -> Result<String, FmtError> {
    let wrong = |needs: &'static str, hint: &'static str| FmtError::WrongType {
        verb,
        pos,
        needs,
        got: describe(arg),
        hint,
    };
    match verb {
        'v' => Ok(match (arg, spec.prec) {
            (Value::String(s), Some(p)) => s.chars().take(p).collect(),
            (Value::Number(_), _) => with_sign(go_v(arg), spec),
            _ => go_v(arg),
        }),
        's' => match arg {
            Value::String(s) => Ok(match spec.prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            }),
            // Go prints lists and maps of strings with %s as with %v.
            Value::Array(_) | Value::Object(_) => Ok(go_v(arg)),
            _ => Err(wrong(
                "a string",
                " (use %v or %d for numbers, %t for booleans)",
            )),
        },
        'd' => match Num::of(arg) {
            Some(Num::Int(n)) => {
                let mut digits = n.unsigned_abs().to_string();
                if let Some(p) = spec.prec
                    && digits.len() < p
                {
                    digits = format!("{}{digits}", "0".repeat(p - digits.len()));
                }
                Ok(with_sign(
                    if n < 0 { format!("-{digits}") } else { digits },
                    spec,
                ))
            }
            Some(Num::Float(_)) => Err(wrong(
                "an integer",
                " (use %v or %f for numbers with a fraction)",
            )),
            None => Err(wrong("an integer", " (use %s or %v for strings)")),
        },
        'f' | 'F' => match Num::of(arg) {
            Some(Num::Float(f)) => Ok(with_sign(format!("{:.*}", spec.prec.unwrap_or(6), f), spec)),
            Some(Num::Int(_)) => Err(wrong(
                "a floating-point number",
                " (use %d or %v for integers)",
            )),
            None => Err(wrong("a floating-point number", "")),
        },
        't' => match arg {
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(wrong("a boolean", " (use %v for any value)")),
        },
        'q' => match arg {
            Value::String(s) => Ok(go_quote(s)),
            _ => Err(wrong("a string", " (use %v for any value)")),
        },
        'x' | 'X' => {
            let text = match (arg, Num::of(arg)) {
                (Value::String(s), _) => s.bytes().fold(String::new(), |mut acc, b| {
                    let _ = write!(acc, "{b:02x}");
                    acc
                }),
                (_, Some(Num::Int(n))) if n < 0 => format!("-{:x}", n.unsigned_abs()),
                (_, Some(Num::Int(n))) => format!("{n:x}"),
                _ => return Err(wrong("a string or an integer", "")),
            };
            Ok(if verb == 'X' {
                text.to_uppercase()
            } else {
                text
            })
        }
        other => Err(FmtError::UnsupportedVerb { verb: other, pos }),
    }
}

/// Adds `+` or ` ` before a non-negative number when the flags ask for it.
fn with_sign(text: String, spec: &Spec) -> String {
    if text.starts_with('-') {
        text
    } else if spec.plus {
        format!("+{text}")
    } else if spec.space {
        format!(" {text}")
    } else {
        text
    }
}

/// Pads to the width, counted in characters as Go counts runes. Zero padding
/// goes after the sign and applies to numbers only (Go ignores it for strings).
fn pad(out: &mut String, text: &str, spec: &Spec, verb: char) {
    let len = text.chars().count();
    let Some(width) = spec.width.filter(|w| *w > len) else {
        out.push_str(text);
        return;
    };
    let fill = width - len;
    let numeric = matches!(verb, 'd' | 'f' | 'F' | 'x' | 'X')
        && text
            .trim_start_matches(['+', '-', ' '])
            .starts_with(|c: char| c.is_ascii_hexdigit());
    if spec.minus {
        out.push_str(text);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if spec.zero && numeric {
        let sign_len = text.len() - text.trim_start_matches(['+', '-', ' ']).len();
        out.push_str(&text[..sign_len]);
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(&text[sign_len..]);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(text);
    }
}

/// Go's `%v`: strings bare, `<nil>`, lists as `[a b]`, maps as `map[k:v]`
/// with sorted keys, floats in shortest `%g` form.
pub fn go_v(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(_) => match Num::of(v) {
            Some(Num::Int(i)) => i.to_string(),
            Some(Num::Float(f)) => go_g(f),
            None => v.to_string(),
        },
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(go_v).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_v(&m[k.as_str()])))
                .collect();
            format!("map[{}]", items.join(" "))
        }
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` (what `%v` prints): the
/// shortest digits that read back as `f`, in exponent form when the decimal
/// exponent is below -4 or at least 6, so 1234567.0 prints as `1.234567e+06`
/// and 123456.0 as `123456`.
pub fn go_g(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.234567e6".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        // Rust's `{}` prints the same shortest digits without an exponent.
        format!("{f}")
    }
}

/// Go's `strconv.Quote`: double quotes with Go escapes.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn ok(f: &str, args: &[Value]) -> String {
        sprintf(f, args).unwrap_or_else(|e| panic!("{f}: {e}"))
    }

    #[test]
    fn formats_like_go() {
        let cases: Vec<(&str, Vec<Value>, &str)> = vec![
            ("db-%s", vec![json!("orders")], "db-orders"),
            (
                "%s-%s",
                vec![json!("team-a"), json!("orders")],
                "team-a-orders",
            ),
            ("%d GB", vec![json!(20)], "20 GB"),
            ("%v", vec![json!(20)], "20"),
            ("%v", vec![json!(1.5)], "1.5"),
            ("%v", vec![json!(100000.0)], "100000"),
            ("%v", vec![json!(1234567.0)], "1.234567e+06"),
            ("%v", vec![json!(0.00001)], "1e-05"),
            ("%v", vec![json!(0.0001)], "0.0001"),
            ("%v", vec![json!(true)], "true"),
            ("%v", vec![json!(null)], "<nil>"),
            ("%v", vec![json!(["a", 1])], "[a 1]"),
            ("%v", vec![json!({"b": 2, "a": "x"})], "map[a:x b:2]"),
            ("%s", vec![json!(["a", "b"])], "[a b]"),
            ("%f", vec![json!(1.5)], "1.500000"),
            ("%.2f", vec![json!(1.23456)], "1.23"),
            ("%8.3f", vec![json!(1.23456)], "   1.235"),
            ("%t", vec![json!(false)], "false"),
            ("%q", vec![json!("a\"b\n")], "\"a\\\"b\\n\""),
            ("%x", vec![json!("hi")], "6869"),
            ("%X", vec![json!(255)], "FF"),
            ("%x", vec![json!(-255)], "-ff"),
            ("100%%", vec![], "100%"),
            ("%5s|", vec![json!("ab")], "   ab|"),
            ("%-5s|", vec![json!("ab")], "ab   |"),
            ("%05d", vec![json!(-42)], "-0042"),
            ("%+d", vec![json!(5)], "+5"),
            ("%.3d", vec![json!(7)], "007"),
            ("%.2s", vec![json!("abcdef")], "ab"),
            ("%05s", vec![json!("ab")], "   ab"),
            ("%[2]s-%[1]s", vec![json!("a"), json!("b")], "b-a"),
            ("%[1]s-%[1]s", vec![json!("a"), json!("b")], "a-a"),
            ("%3v|", vec![json!("é")], "  é|"),
            ("plain", vec![], "plain"),
        ];
        for (f, args, want) in cases {
            assert_eq!(ok(f, &args), want, "{f} {args:?}");
        }
    }

    #[test]
    fn refuses_what_go_would_mangle() {
        let cases: Vec<(&str, Vec<Value>, &str)> = vec![
            (
                "%d",
                vec![json!("x")],
                "%d at position 0 needs an integer, got the string \"x\"",
            ),
            (
                "%s",
                vec![json!(20)],
                "%s at position 0 needs a string, got the integer 20",
            ),
            ("%f", vec![json!(20)], "needs a floating-point number"),
            ("%t", vec![json!("true")], "needs a boolean"),
            (
                "%s-%s",
                vec![json!("a")],
                "%s at position 3 has no value (only 1 given)",
            ),
            (
                "constant",
                vec![json!("a")],
                "1 value(s) given but the format uses only 0",
            ),
            ("%y", vec![json!("a")], "%y at position 0 is not supported"),
            ("abc%", vec![json!("a")], "ends inside a verb"),
            ("%[0]s", vec![json!("a")], "bad argument index"),
            ("%[x]s", vec![json!("a")], "bad argument index"),
            ("%99999s", vec![json!("a")], "too large"),
            ("%*d", vec![json!(1)], "not supported"),
            ("%#v", vec![json!(1)], "not supported"),
        ];
        for (f, args, want) in cases {
            let err = sprintf(f, &args).expect_err(f).to_string();
            assert!(err.contains(want), "{f}: {err:?} should contain {want:?}");
        }
    }

    #[test]
    fn go_g_matches_go() {
        for (f, want) in [
            (0.0, "0"),
            (-0.5, "-0.5"),
            (1e21, "1e+21"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (1.0e-7, "1e-07"),
            (2.5e-300, "2.5e-300"),
        ] {
            assert_eq!(go_g(f), want, "{f}");
        }
    }

    fn arb_scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| super::super::value::float_value(f).unwrap_or(Value::Null)),
            ".{0,8}".prop_map(Value::String),
        ]
    }

    proptest! {
        #[test]
        fn never_panics(f in ".{0,20}", args in prop::collection::vec(arb_scalar(), 0..4)) {
            let _ = sprintf(&f, &args);
        }

        #[test]
        fn verb_heavy_formats_never_panic(
            f in "([%]?[-+0 #]?[\\[]?[0-9]?[\\]]?[.]?[0-9]?[svdftqxX%*é]?[a-]?){0,5}",
            args in prop::collection::vec(arb_scalar(), 0..4),
        ) {
            let _ = sprintf(&f, &args);
        }
    }
}
