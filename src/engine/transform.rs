//! Transforms: the steps a patch runs its value through, with Crossplane's
//! patch-and-transform semantics (types, errors and edge cases), except where
//! a comment says otherwise.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use regex::Regex;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::gofmt::{self, FmtError, go_v};
use super::quantity::{self, QuantityError};
use super::value::{Num, describe, float_value, kind_of, quote_short};
use crate::api::composition::{
    ConvertFormat, ConvertToType, MatchFallbackTo, MatchPatternType, MatchTransform, MathTransform,
    MathTransformType, StringConversion, StringTransform, StringTransformType, Transform,
    TransformType,
};

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TransformError {
    #[error("a transform of type {kind} needs its \"{kind}\" settings, e.g. {example}")]
    MissingConfig {
        kind: &'static str,
        example: &'static str,
    },
    #[error("{kind} needs {field}")]
    MissingField { kind: String, field: &'static str },

    #[error("map transform needs a string input, got {got}")]
    MapInput { got: String },
    #[error("map transform has no entry for {key} (it has: {keys})")]
    MapNoEntry { key: String, keys: String },

    #[error("match transform needs a string input, got {got}")]
    MatchInput { got: String },
    #[error("match pattern {index} of type {kind} needs \"{kind}\"")]
    MatchPatternIncomplete { index: usize, kind: &'static str },
    #[error("match transform sets both fallbackValue and fallbackTo: Input; keep one")]
    MatchFallbackBoth,

    #[error("regular expression {regex:?} does not compile: {message}")]
    BadRegex { regex: String, message: String },
    #[error("regexp {regex:?} does not match {input}")]
    RegexpNoMatch { regex: String, input: String },
    #[error(
        "regexp {regex:?} has no group {group} (it has {groups} including group 0, the whole match)"
    )]
    RegexpNoGroup {
        regex: String,
        group: i64,
        groups: usize,
    },

    #[error("string format {fmt:?}: {error}")]
    Format { fmt: String, error: FmtError },
    #[error("FromBase64: the input is not valid base64 ({message})")]
    Base64 { message: String },
    #[error("string transform of type Join needs an array input, got {got}")]
    JoinInput { got: String },

    #[error("math transform needs a number, got {got}")]
    MathInput { got: String },
    #[error("math transform {op}: the result does not fit a 64-bit number")]
    MathOverflow { op: &'static str },

    #[error("convert transform cannot convert {from} to {to}{format}")]
    ConvertUnsupported {
        from: &'static str,
        to: &'static str,
        format: String,
    },
    #[error("convert transform cannot convert {input} to {to}: {message}")]
    ConvertFailed {
        input: String,
        to: &'static str,
        message: String,
    },
}

/// Runs a transform chain. The error carries the index of the failing step.
pub fn apply_all(
    transforms: &[Transform],
    mut value: Value,
) -> Result<Value, (usize, TransformError)> {
    for (i, t) in transforms.iter().enumerate() {
        value = apply(t, value).map_err(|e| (i, e))?;
    }
    Ok(value)
}

pub fn apply(t: &Transform, input: Value) -> Result<Value, TransformError> {
    match t.type_ {
        TransformType::Map => {
            let map = t.map.as_ref().ok_or(TransformError::MissingConfig {
                kind: "map",
                example: "{type: map, map: {small: db.t3.micro}}",
            })?;
            let Value::String(key) = &input else {
                return Err(TransformError::MapInput {
                    got: describe(&input),
                });
            };
            map.get(key)
                .cloned()
                .ok_or_else(|| TransformError::MapNoEntry {
                    key: quote_short(key),
                    keys: list_keys(map.keys()),
                })
        }
        TransformType::Match => {
            let m = t.match_.as_ref().ok_or(TransformError::MissingConfig {
                kind: "match",
                example: "{type: match, match: {patterns: [{type: literal, literal: a, result: b}]}}",
            })?;
            resolve_match(m, input)
        }
        TransformType::String => {
            let s = t.string.as_ref().ok_or(TransformError::MissingConfig {
                kind: "string",
                example: "{type: string, string: {type: Format, fmt: \"db-%s\"}}",
            })?;
            resolve_string(s, input).map(Value::String)
        }
        TransformType::Math => {
            let m = t.math.as_ref().ok_or(TransformError::MissingConfig {
                kind: "math",
                example: "{type: math, math: {type: Multiply, multiply: 1024}}",
            })?;
            resolve_math(m, input)
        }
        TransformType::Convert => {
            let c = t.convert.as_ref().ok_or(TransformError::MissingConfig {
                kind: "convert",
                example: "{type: convert, convert: {toType: string}}",
            })?;
            convert(input, c.to_type, c.format.unwrap_or(ConvertFormat::None))
        }
    }
}

fn list_keys<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let keys: Vec<String> = keys.take(20).map(|k| quote_short(k)).collect();
    if keys.is_empty() {
        "no entries".to_string()
    } else {
        keys.join(", ")
    }
}

pub fn compile(regex: &str) -> Result<Regex, TransformError> {
    // A size limit keeps a pathological pattern from eating memory; real
    // patterns in compositions are tiny.
    regex::RegexBuilder::new(regex)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| TransformError::BadRegex {
            regex: regex.to_string(),
            message: first_line(&e.to_string()),
        })
}

fn first_line(s: &str) -> String {
    // The regex crate's messages span several lines with a caret diagram;
    // a condition message wants the last, explanatory line.
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

fn resolve_match(m: &MatchTransform, input: Value) -> Result<Value, TransformError> {
    for (index, p) in m.patterns.iter().enumerate() {
        let matched = match p.type_ {
            MatchPatternType::Literal => {
                let lit = p
                    .literal
                    .as_ref()
                    .ok_or(TransformError::MatchPatternIncomplete {
                        index,
                        kind: "literal",
                    })?;
                let Value::String(s) = &input else {
                    return Err(TransformError::MatchInput {
                        got: describe(&input),
                    });
                };
                s == lit
            }
            MatchPatternType::Regexp => {
                let re = p
                    .regexp
                    .as_ref()
                    .ok_or(TransformError::MatchPatternIncomplete {
                        index,
                        kind: "regexp",
                    })?;
                let re = compile(re)?;
                let Value::String(s) = &input else {
                    return Err(TransformError::MatchInput {
                        got: describe(&input),
                    });
                };
                re.is_match(s)
            }
        };
        if matched {
            return Ok(p.result.clone());
        }
    }
    match m.fallback_to {
        MatchFallbackTo::Input if m.fallback_value.is_some() => {
            Err(TransformError::MatchFallbackBoth)
        }
        MatchFallbackTo::Input => Ok(input),
        // No fallback value means null, which leaves the target unset.
        MatchFallbackTo::Value => Ok(m.fallback_value.clone().unwrap_or(Value::Null)),
    }
}

fn string_type_name(t: StringTransformType) -> &'static str {
    match t {
        StringTransformType::Format => "Format",
        StringTransformType::Convert => "Convert",
        StringTransformType::TrimPrefix => "TrimPrefix",
        StringTransformType::TrimSuffix => "TrimSuffix",
        StringTransformType::Regexp => "Regexp",
        StringTransformType::Join => "Join",
    }
}

fn resolve_string(s: &StringTransform, input: Value) -> Result<String, TransformError> {
    let missing = |field| TransformError::MissingField {
        kind: format!("string transform of type {}", string_type_name(s.type_)),
        field,
    };
    match s.type_ {
        StringTransformType::Format => {
            let fmt = s
                .fmt
                .as_ref()
                .ok_or(missing("\"fmt\", e.g. fmt: \"db-%s\""))?;
            gofmt::sprintf(fmt, std::slice::from_ref(&input)).map_err(|error| {
                TransformError::Format {
                    fmt: fmt.clone(),
                    error,
                }
            })
        }
        StringTransformType::Convert => {
            let conv = s.convert.ok_or(missing(
                "\"convert\" (ToUpper, ToLower, ToBase64, FromBase64 or ToSha256)",
            ))?;
            // Crossplane converts the input's `%v` text, except that ToSha256
            // hashes non-strings as their JSON.
            let text = go_v(&input);
            Ok(match conv {
                StringConversion::ToUpper => text.to_uppercase(),
                StringConversion::ToLower => text.to_lowercase(),
                StringConversion::ToBase64 => STANDARD.encode(text.as_bytes()),
                StringConversion::FromBase64 => {
                    let bytes =
                        STANDARD
                            .decode(text.as_bytes())
                            .map_err(|e| TransformError::Base64 {
                                message: e.to_string(),
                            })?;
                    String::from_utf8_lossy(&bytes).into_owned()
                }
                StringConversion::ToSha256 => {
                    let bytes = match &input {
                        Value::String(s) => s.as_bytes().to_vec(),
                        other => other.to_string().into_bytes(),
                    };
                    Sha256::digest(&bytes)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect()
                }
            })
        }
        StringTransformType::TrimPrefix | StringTransformType::TrimSuffix => {
            let trim = s.trim.as_ref().ok_or(missing("\"trim\""))?;
            let text = go_v(&input);
            let out = if s.type_ == StringTransformType::TrimPrefix {
                text.strip_prefix(trim.as_str())
            } else {
                text.strip_suffix(trim.as_str())
            };
            Ok(out.map(str::to_string).unwrap_or(text))
        }
        StringTransformType::Regexp => {
            let r = s
                .regexp
                .as_ref()
                .ok_or(missing("\"regexp\" with \"match\""))?;
            let re = compile(&r.match_)?;
            let text = go_v(&input);
            let group = r.group.unwrap_or(0);
            let caps = re
                .captures(&text)
                .ok_or_else(|| TransformError::RegexpNoMatch {
                    regex: r.match_.clone(),
                    input: quote_short(&text),
                })?;
            let index = usize::try_from(group)
                .ok()
                .filter(|g| *g < caps.len())
                .ok_or(TransformError::RegexpNoGroup {
                    regex: r.match_.clone(),
                    group,
                    groups: caps.len(),
                })?;
            // A group that took no part in the match is empty, as in Go.
            Ok(caps
                .get(index)
                .map(|m| m.as_str().to_string())
                .unwrap_or_default())
        }
        StringTransformType::Join => {
            let j = s
                .join
                .as_ref()
                .ok_or(missing("\"join\" with \"separator\""))?;
            let Value::Array(items) = &input else {
                return Err(TransformError::JoinInput {
                    got: describe(&input),
                });
            };
            // Crossplane cuts one byte off the end for any separator, which
            // leaves a stray character for separators longer than one; this
            // joins properly.
            Ok(items
                .iter()
                .map(go_v)
                .collect::<Vec<_>>()
                .join(&j.separator))
        }
    }
}

fn resolve_math(m: &MathTransform, input: Value) -> Result<Value, TransformError> {
    let (op, operand, field) = match m.type_ {
        MathTransformType::Multiply => ("Multiply", m.multiply, "\"multiply\""),
        MathTransformType::ClampMin => ("ClampMin", m.clamp_min, "\"clampMin\""),
        MathTransformType::ClampMax => ("ClampMax", m.clamp_max, "\"clampMax\""),
    };
    let operand = operand.ok_or_else(|| TransformError::MissingField {
        kind: format!("math transform of type {op}"),
        field,
    })?;
    let num = Num::of(&input).ok_or_else(|| TransformError::MathInput {
        got: describe(&input),
    })?;
    let overflow = TransformError::MathOverflow { op };
    match m.type_ {
        // Integers stay integers and floats stay floats, as in Crossplane.
        MathTransformType::Multiply => match num {
            Num::Int(i) => i.checked_mul(operand).map(Value::from).ok_or(overflow),
            Num::Float(f) => float_value(f * operand as f64).ok_or(overflow),
        },
        // Crossplane compares a float input by its integer part and returns
        // the (integer) bound when it applies, the input unchanged otherwise.
        MathTransformType::ClampMin | MathTransformType::ClampMax => {
            let whole = match num {
                Num::Int(i) => i,
                Num::Float(f) => f as i64,
            };
            let clamp = if m.type_ == MathTransformType::ClampMin {
                whole < operand
            } else {
                whole > operand
            };
            Ok(if clamp { Value::from(operand) } else { input })
        }
    }
}

fn type_name(t: ConvertToType) -> &'static str {
    match t {
        ConvertToType::String => "string",
        ConvertToType::Int | ConvertToType::Int64 => "int64",
        ConvertToType::Float64 => "float64",
        ConvertToType::Bool => "bool",
        ConvertToType::Object => "object",
        ConvertToType::Array => "array",
    }
}

fn format_name(f: ConvertFormat) -> &'static str {
    match f {
        ConvertFormat::None => "none",
        ConvertFormat::Quantity => "quantity",
        ConvertFormat::Json => "json",
    }
}

/// The convert transform's type of a JSON value, as Crossplane names it.
fn input_type(v: &Value) -> Option<ConvertToType> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(_) => ConvertToType::Bool,
        Value::String(_) => ConvertToType::String,
        Value::Number(_) => match Num::of(v) {
            Some(Num::Int(_)) => ConvertToType::Int64,
            _ => ConvertToType::Float64,
        },
        Value::Array(_) => ConvertToType::Array,
        Value::Object(_) => ConvertToType::Object,
    })
}

/// Which formats a conversion accepts; every other format is refused, as
/// Crossplane refuses pairs it has no conversion for.
pub fn format_allowed(from: ConvertToType, to: ConvertToType, format: ConvertFormat) -> bool {
    use ConvertToType as T;
    match format {
        ConvertFormat::None => true,
        ConvertFormat::Quantity => {
            from == T::String && matches!(to, T::Int | T::Int64 | T::Float64)
        }
        ConvertFormat::Json => from == T::String && matches!(to, T::Object | T::Array),
    }
}

/// Whether `convert` has a conversion from `from` to `to` with `format`
/// (what `validate` checks when it knows the input's type).
pub fn conversion_supported(from: ConvertToType, to: ConvertToType, format: ConvertFormat) -> bool {
    use ConvertToType as T;
    let norm = |t| if t == T::Int { T::Int64 } else { t };
    let (from, to) = (norm(from), norm(to));
    if from == to {
        return true;
    }
    format_allowed(from, to, format)
        && matches!(
            (from, to),
            (
                T::String,
                T::Int64 | T::Float64 | T::Bool | T::Object | T::Array
            ) | (T::Int64, T::String | T::Float64 | T::Bool)
                | (T::Float64, T::String | T::Int64 | T::Bool)
                | (T::Bool, T::String | T::Int64 | T::Float64)
        )
        && !(from == T::String
            && matches!(to, T::Object | T::Array)
            && format != ConvertFormat::Json)
}

pub fn convert(
    input: Value,
    to: ConvertToType,
    format: ConvertFormat,
) -> Result<Value, TransformError> {
    use ConvertToType as T;
    let to = if to == T::Int { T::Int64 } else { to };
    let Some(from) = input_type(&input) else {
        return Err(TransformError::ConvertFailed {
            input: describe(&input),
            to: type_name(to),
            message: "there is no value to convert".into(),
        });
    };
    // Crossplane returns the input untouched whatever the format when it
    // already has the asked-for type.
    if from == to {
        return Ok(input);
    }
    let unsupported = || TransformError::ConvertUnsupported {
        from: type_name(from),
        to: type_name(to),
        format: match format {
            ConvertFormat::None => String::new(),
            f => format!(" with format {}", format_name(f)),
        },
    };
    if !format_allowed(from, to, format) {
        return Err(unsupported());
    }
    let failed = |message: String| TransformError::ConvertFailed {
        input: describe(&input),
        to: type_name(to),
        message,
    };
    let num = Num::of(&input);
    match (&input, num, to, format) {
        (Value::String(s), _, T::Int64, ConvertFormat::Quantity) => quantity::to_i64(s)
            .map(Value::from)
            .map_err(|e: QuantityError| failed(e.to_string())),
        (Value::String(s), _, T::Float64, ConvertFormat::Quantity) => quantity::to_f64(s)
            .map_err(|e| failed(e.to_string()))
            .and_then(|f| finite(f, &failed)),
        (Value::String(s), _, T::Int64, _) => s
            .parse::<i64>()
            .map(Value::from)
            .map_err(|e| failed(e.to_string())),
        (Value::String(s), _, T::Float64, _) => s
            .parse::<f64>()
            .map_err(|e| failed(e.to_string()))
            .and_then(|f| finite(f, &failed)),
        (Value::String(s), _, T::Bool, _) => match s.as_str() {
            // Go's strconv.ParseBool.
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Value::Bool(true)),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Value::Bool(false)),
            _ => Err(failed("use true, false, 1, 0, t or f".into())),
        },
        (Value::String(s), _, T::Object | T::Array, ConvertFormat::Json) => {
            let parsed: Value = serde_json::from_str(s).map_err(|e| failed(e.to_string()))?;
            if input_type(&parsed) == Some(to) {
                Ok(parsed)
            } else {
                Err(failed(format!("the JSON holds {}", kind_of(&parsed))))
            }
        }
        (_, Some(Num::Int(i)), T::String, _) => Ok(Value::String(i.to_string())),
        (_, Some(Num::Int(i)), T::Float64, _) => finite(i as f64, &failed),
        (_, Some(Num::Int(i)), T::Bool, _) => Ok(Value::Bool(i == 1)),
        // Rust's shortest plain-decimal float text is Go's FormatFloat(f, 'f', -1).
        (_, Some(Num::Float(f)), T::String, _) => Ok(Value::String(format!("{f}"))),
        (_, Some(Num::Float(f)), T::Int64, _) => Ok(Value::from(f.trunc() as i64)),
        (_, Some(Num::Float(f)), T::Bool, _) => Ok(Value::Bool(f == 1.0)),
        (Value::Bool(b), _, T::String, _) => Ok(Value::String(b.to_string())),
        (Value::Bool(b), _, T::Int64, _) => Ok(Value::from(i64::from(*b))),
        (Value::Bool(b), _, T::Float64, _) => finite(if *b { 1.0 } else { 0.0 }, &failed),
        _ => Err(unsupported()),
    }
}

fn finite(f: f64, failed: &dyn Fn(String) -> TransformError) -> Result<Value, TransformError> {
    float_value(f).ok_or_else(|| failed("the result is not a finite number".into()))
}

#[cfg(test)]
pub(crate) mod tests;
