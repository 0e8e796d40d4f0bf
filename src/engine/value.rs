//! Small helpers over JSON values shared by the engine's parts.

use serde_json::Value;

/// "a string", "an object", …: the shape of a value, for messages.
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a floating-point number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as a message shows it: its shape and, for scalars, the value
/// itself (long strings cut), e.g. `the string "huge"`, `the integer 20`.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) if n.is_f64() => format!("the number {n}"),
        Value::Number(n) => format!("the integer {n}"),
        Value::String(s) => format!("the string {}", quote_short(s)),
        Value::Array(a) => format!("an array of {} item(s)", a.len()),
        Value::Object(_) => "an object".to_string(),
    }
}

/// `s` in double quotes, cut to a readable length.
pub fn quote_short(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}

/// A JSON number as Go's Kubernetes JSON decoder sees it: an int64 when it is
/// written without fraction or exponent and fits, a float64 otherwise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    pub fn of(v: &Value) -> Option<Num> {
        let Value::Number(n) = v else { return None };
        if let Some(i) = n.as_i64() {
            return Some(Num::Int(i));
        }
        n.as_f64().map(Num::Float)
    }
}

/// A float as a JSON value; `None` for NaN and infinities, which JSON cannot hold.
pub fn float_value(f: f64) -> Option<Value> {
    serde_json::Number::from_f64(f).map(Value::Number)
}

/// A value as connection-secret bytes: strings as they are, numbers and
/// booleans as their text, anything else as JSON (Crossplane does the same).
pub fn to_secret_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn describes_values() {
        assert_eq!(describe(&json!("huge")), "the string \"huge\"");
        assert_eq!(describe(&json!(20)), "the integer 20");
        assert_eq!(describe(&json!(1.5)), "the number 1.5");
        assert_eq!(describe(&json!(null)), "null");
        assert_eq!(describe(&json!([1, 2])), "an array of 2 item(s)");
        assert!(describe(&json!("x".repeat(100))).ends_with('…'));
    }

    #[test]
    fn numbers_follow_go_json() {
        assert_eq!(Num::of(&json!(20)), Some(Num::Int(20)));
        assert_eq!(Num::of(&json!(-3)), Some(Num::Int(-3)));
        assert_eq!(Num::of(&json!(2.5)), Some(Num::Float(2.5)));
        assert_eq!(Num::of(&json!(u64::MAX)), Some(Num::Float(u64::MAX as f64)));
        assert_eq!(Num::of(&json!("1")), None);
    }

    #[test]
    fn secret_bytes() {
        assert_eq!(to_secret_bytes(&json!("a b")), b"a b");
        assert_eq!(to_secret_bytes(&json!(5432)), b"5432");
        assert_eq!(to_secret_bytes(&json!(true)), b"true");
        assert_eq!(to_secret_bytes(&json!({"a": 1})), br#"{"a":1}"#);
    }
}
