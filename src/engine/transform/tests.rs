//! Table tests for every transform type and option, and property tests that
//! arbitrary chains on arbitrary values never panic.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn t(v: Value) -> Transform {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn run(tr: Value, input: Value) -> Result<Value, TransformError> {
    apply(&t(tr), input)
}

/// (transform, input, expected output)
fn check_ok(cases: Vec<(Value, Value, Value)>) {
    for (tr, input, want) in cases {
        match run(tr.clone(), input.clone()) {
            Ok(got) => assert_eq!(got, want, "{tr} on {input}"),
            Err(e) => panic!("{tr} on {input}: {e}"),
        }
    }
}

/// (transform, input, text the error must contain)
fn check_err(cases: Vec<(Value, Value, &str)>) {
    for (tr, input, want) in cases {
        match run(tr.clone(), input.clone()) {
            Ok(got) => panic!("{tr} on {input}: expected an error, got {got}"),
            Err(e) => assert!(
                e.to_string().contains(want),
                "{tr} on {input}: {e:?} ⟶ {e} lacks {want:?}"
            ),
        }
    }
}

#[test]
fn map() {
    let m = json!({"type": "map", "map": {"small": "db.t3.micro", "large": {"class": "db.r6g"}, "n": 5}});
    check_ok(vec![
        (m.clone(), json!("small"), json!("db.t3.micro")),
        (m.clone(), json!("large"), json!({"class": "db.r6g"})),
        (m.clone(), json!("n"), json!(5)),
    ]);
    check_err(vec![
        (
            m.clone(),
            json!("huge"),
            "map transform has no entry for \"huge\" (it has: \"large\", \"n\", \"small\")",
        ),
        (
            m.clone(),
            json!(1),
            "map transform needs a string input, got the integer 1",
        ),
        (
            json!({"type": "map"}),
            json!("a"),
            "a transform of type map needs its \"map\" settings",
        ),
        (
            json!({"type": "map", "map": {}}),
            json!("a"),
            "(it has: no entries)",
        ),
    ]);
}

#[test]
fn match_() {
    let m = json!({"type": "match", "match": {
        "patterns": [
            {"type": "literal", "literal": "small", "result": 1},
            {"type": "regexp", "regexp": "^l", "result": {"big": true}},
            {"type": "literal", "literal": "medium", "result": 2}
        ],
        "fallbackValue": "other"
    }});
    check_ok(vec![
        (m.clone(), json!("small"), json!(1)),
        (m.clone(), json!("large"), json!({"big": true})),
        (m.clone(), json!("medium"), json!(2)),
        (m.clone(), json!("tiny"), json!("other")),
        (
            json!({"type": "match", "match": {"patterns": [{"type": "literal", "literal": "a", "result": 1}], "fallbackTo": "Input"}}),
            json!("zzz"),
            json!("zzz"),
        ),
        (
            json!({"type": "match", "match": {"patterns": [{"type": "literal", "literal": "a", "result": 1}]}}),
            json!("zzz"),
            json!(null),
        ),
        (
            json!({"type": "match", "match": {"fallbackValue": 7}}),
            json!(3),
            json!(7),
        ),
    ]);
    check_err(vec![
        (
            m.clone(),
            json!(5),
            "match transform needs a string input, got the integer 5",
        ),
        (
            json!({"type": "match", "match": {"patterns": [{"type": "literal", "result": 1}]}}),
            json!("a"),
            "match pattern 0 of type literal needs \"literal\"",
        ),
        (
            json!({"type": "match", "match": {"patterns": [{"type": "regexp", "result": 1}]}}),
            json!("a"),
            "match pattern 0 of type regexp needs \"regexp\"",
        ),
        (
            json!({"type": "match", "match": {"patterns": [{"type": "regexp", "regexp": "(", "result": 1}]}}),
            json!("a"),
            "regular expression \"(\" does not compile",
        ),
        (
            json!({"type": "match", "match": {"fallbackTo": "Input", "fallbackValue": 1}}),
            json!("a"),
            "sets both fallbackValue and fallbackTo: Input",
        ),
        (
            json!({"type": "match"}),
            json!("a"),
            "needs its \"match\" settings",
        ),
    ]);
}

#[test]
fn string_format() {
    let f = |fmt: &str| json!({"type": "string", "string": {"type": "Format", "fmt": fmt}});
    check_ok(vec![
        (f("db-%s"), json!("orders"), json!("db-orders")),
        (f("%d GB"), json!(20), json!("20 GB")),
        (f("%v"), json!(true), json!("true")),
        // Format is the default string type.
        (
            json!({"type": "string", "string": {"fmt": "x-%s"}}),
            json!("a"),
            json!("x-a"),
        ),
    ]);
    check_err(vec![
        (
            f("%d"),
            json!("x"),
            "string format \"%d\": %d at position 0 needs an integer, got the string \"x\"",
        ),
        (f("%s-%s"), json!("x"), "has no value"),
        (
            json!({"type": "string", "string": {"type": "Format"}}),
            json!("a"),
            "string transform of type Format needs \"fmt\"",
        ),
        (
            json!({"type": "string"}),
            json!("a"),
            "needs its \"string\" settings",
        ),
    ]);
}

#[test]
fn string_convert() {
    let c = |conv: &str| json!({"type": "string", "string": {"type": "Convert", "convert": conv}});
    check_ok(vec![
        (c("ToUpper"), json!("abc"), json!("ABC")),
        (c("ToLower"), json!("AbC"), json!("abc")),
        (c("ToUpper"), json!(12), json!("12")),
        (c("ToBase64"), json!("hello"), json!("aGVsbG8=")),
        (c("FromBase64"), json!("aGVsbG8="), json!("hello")),
        (
            c("ToSha256"),
            json!("abc"),
            json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ),
        // Non-strings hash as their JSON: sha256("5").
        (
            c("ToSha256"),
            json!(5),
            json!("ef2d127de37b942baad06145e54b0c619a1f22327b2ebbcfbec78f5564afe39d"),
        ),
    ]);
    check_err(vec![
        (
            c("FromBase64"),
            json!("not base64!"),
            "FromBase64: the input is not valid base64",
        ),
        (
            json!({"type": "string", "string": {"type": "Convert"}}),
            json!("a"),
            "string transform of type Convert needs \"convert\"",
        ),
    ]);
}

#[test]
fn string_trim_regexp_join() {
    check_ok(vec![
        (
            json!({"type": "string", "string": {"type": "TrimPrefix", "trim": "db-"}}),
            json!("db-orders"),
            json!("orders"),
        ),
        (
            json!({"type": "string", "string": {"type": "TrimPrefix", "trim": "x"}}),
            json!("db-orders"),
            json!("db-orders"),
        ),
        (
            json!({"type": "string", "string": {"type": "TrimSuffix", "trim": "-db"}}),
            json!("orders-db"),
            json!("orders"),
        ),
        (
            json!({"type": "string", "string": {"type": "Regexp", "regexp": {"match": "^arn:aws:rds:([a-z0-9-]+):"}}}),
            json!("arn:aws:rds:us-east-1:123:db:x"),
            json!("arn:aws:rds:us-east-1:"),
        ),
        (
            json!({"type": "string", "string": {"type": "Regexp", "regexp": {"match": "^arn:aws:rds:([a-z0-9-]+):", "group": 1}}}),
            json!("arn:aws:rds:us-east-1:123:db:x"),
            json!("us-east-1"),
        ),
        (
            json!({"type": "string", "string": {"type": "Regexp", "regexp": {"match": "a(x)?b", "group": 1}}}),
            json!("ab"),
            json!(""),
        ),
        (
            json!({"type": "string", "string": {"type": "Join", "join": {"separator": ", "}}}),
            json!(["a", 1, true]),
            json!("a, 1, true"),
        ),
        (
            json!({"type": "string", "string": {"type": "Join", "join": {}}}),
            json!(["a", "b"]),
            json!("ab"),
        ),
        (
            json!({"type": "string", "string": {"type": "Join", "join": {"separator": "-"}}}),
            json!([]),
            json!(""),
        ),
    ]);
    check_err(vec![
        (
            json!({"type": "string", "string": {"type": "TrimPrefix"}}),
            json!("a"),
            "TrimPrefix needs \"trim\"",
        ),
        (
            json!({"type": "string", "string": {"type": "TrimSuffix"}}),
            json!("a"),
            "TrimSuffix needs \"trim\"",
        ),
        (
            json!({"type": "string", "string": {"type": "Regexp"}}),
            json!("a"),
            "Regexp needs \"regexp\"",
        ),
        (
            json!({"type": "string", "string": {"type": "Regexp", "regexp": {"match": "^z"}}}),
            json!("abc"),
            "regexp \"^z\" does not match \"abc\"",
        ),
        (
            json!({"type": "string", "string": {"type": "Regexp", "regexp": {"match": "a", "group": 2}}}),
            json!("abc"),
            "has no group 2 (it has 1",
        ),
        (
            json!({"type": "string", "string": {"type": "Regexp", "regexp": {"match": "a", "group": -1}}}),
            json!("abc"),
            "has no group -1",
        ),
        (
            json!({"type": "string", "string": {"type": "Regexp", "regexp": {"match": "[z"}}}),
            json!("a"),
            "does not compile",
        ),
        (
            json!({"type": "string", "string": {"type": "Join"}}),
            json!(["a"]),
            "Join needs \"join\"",
        ),
        (
            json!({"type": "string", "string": {"type": "Join", "join": {"separator": ","}}}),
            json!("a"),
            "Join needs an array input, got the string \"a\"",
        ),
    ]);
}

#[test]
fn math() {
    let mul = json!({"type": "math", "math": {"type": "Multiply", "multiply": 1024}});
    let min = json!({"type": "math", "math": {"type": "ClampMin", "clampMin": 20}});
    let max = json!({"type": "math", "math": {"type": "ClampMax", "clampMax": 100}});
    check_ok(vec![
        (mul.clone(), json!(20), json!(20480)),
        (mul.clone(), json!(0.5), json!(512.0)),
        (mul.clone(), json!(-2), json!(-2048)),
        // Multiply is the default math type.
        (
            json!({"type": "math", "math": {"multiply": 3}}),
            json!(2),
            json!(6),
        ),
        (min.clone(), json!(5), json!(20)),
        (min.clone(), json!(50), json!(50)),
        (min.clone(), json!(19.9), json!(20)),
        (min.clone(), json!(20.5), json!(20.5)),
        (max.clone(), json!(500), json!(100)),
        (max.clone(), json!(50), json!(50)),
        (max.clone(), json!(100.9), json!(100.9)),
    ]);
    check_err(vec![
        (
            mul.clone(),
            json!("20"),
            "math transform needs a number, got the string \"20\"",
        ),
        (
            mul.clone(),
            json!(null),
            "math transform needs a number, got null",
        ),
        (
            mul.clone(),
            json!(i64::MAX),
            "Multiply: the result does not fit",
        ),
        (
            json!({"type": "math", "math": {"type": "Multiply", "multiply": 10}}),
            json!(1e308),
            "does not fit",
        ),
        (
            json!({"type": "math", "math": {"type": "Multiply"}}),
            json!(1),
            "math transform of type Multiply needs \"multiply\"",
        ),
        (
            json!({"type": "math", "math": {"type": "ClampMin"}}),
            json!(1),
            "ClampMin needs \"clampMin\"",
        ),
        (
            json!({"type": "math", "math": {"type": "ClampMax"}}),
            json!(1),
            "ClampMax needs \"clampMax\"",
        ),
        (
            json!({"type": "math"}),
            json!(1),
            "needs its \"math\" settings",
        ),
    ]);
}

#[test]
fn convert_() {
    let c = |to: &str| json!({"type": "convert", "convert": {"toType": to}});
    let cf = |to: &str, f: &str| json!({"type": "convert", "convert": {"toType": to, "format": f}});
    check_ok(vec![
        (c("string"), json!(20), json!("20")),
        (c("string"), json!(1.5), json!("1.5")),
        (c("string"), json!(1e21), json!("1000000000000000000000")),
        (c("string"), json!(true), json!("true")),
        (c("string"), json!("same"), json!("same")),
        (c("int"), json!("42"), json!(42)),
        (c("int64"), json!("-42"), json!(-42)),
        (c("int64"), json!(3.9), json!(3)),
        (c("int64"), json!(true), json!(1)),
        (c("int64"), json!(7), json!(7)),
        (c("float64"), json!("2.5"), json!(2.5)),
        (c("float64"), json!(2), json!(2.0)),
        (c("float64"), json!(false), json!(0.0)),
        (c("bool"), json!("true"), json!(true)),
        (c("bool"), json!("F"), json!(false)),
        (c("bool"), json!(1), json!(true)),
        (c("bool"), json!(2), json!(false)),
        (c("bool"), json!(1.0), json!(true)),
        (cf("int64", "quantity"), json!("1Gi"), json!(1073741824)),
        (cf("int64", "quantity"), json!("500M"), json!(500000000)),
        (cf("float64", "quantity"), json!("1.5k"), json!(1500.0)),
        (
            cf("object", "json"),
            json!(r#"{"a": [1]}"#),
            json!({"a": [1]}),
        ),
        (cf("array", "json"), json!(r#"[1, "b"]"#), json!([1, "b"])),
        // Already the asked-for type: returned as is, whatever the format.
        (cf("int64", "json"), json!(5), json!(5)),
        (c("object"), json!({"a": 1}), json!({"a": 1})),
    ]);
    check_err(vec![
        (
            c("int64"),
            json!("abc"),
            "cannot convert the string \"abc\" to int64: invalid digit",
        ),
        (
            c("float64"),
            json!("x"),
            "cannot convert the string \"x\" to float64",
        ),
        (c("float64"), json!("inf"), "not a finite number"),
        (c("bool"), json!("yes"), "use true, false"),
        (
            c("int64"),
            json!(null),
            "cannot convert null to int64: there is no value to convert",
        ),
        (c("object"), json!("{}"), "cannot convert string to object"),
        (c("array"), json!(1), "cannot convert int64 to array"),
        (
            c("string"),
            json!({"a": 1}),
            "cannot convert object to string",
        ),
        (cf("int64", "quantity"), json!("1 Gi"), "is not a quantity"),
        (
            cf("int64", "json"),
            json!("1"),
            "cannot convert string to int64 with format json",
        ),
        (cf("object", "quantity"), json!("1"), "with format quantity"),
        (
            cf("string", "quantity"),
            json!(1),
            "cannot convert int64 to string with format quantity",
        ),
        (
            cf("object", "json"),
            json!("[1]"),
            "the JSON holds an array",
        ),
        (
            cf("array", "json"),
            json!("{nope"),
            "cannot convert the string \"{nope\" to array",
        ),
        (
            json!({"type": "convert"}),
            json!(1),
            "needs its \"convert\" settings",
        ),
    ]);
}

#[test]
fn conversion_table_matches_convert() {
    use ConvertToType as T;
    let types = [
        T::String,
        T::Int,
        T::Int64,
        T::Float64,
        T::Bool,
        T::Object,
        T::Array,
    ];
    let formats = [
        ConvertFormat::None,
        ConvertFormat::Quantity,
        ConvertFormat::Json,
    ];
    // A sample of each type that every supported conversion accepts.
    let sample = |t: T, f: ConvertFormat| match (t, f) {
        (T::String, ConvertFormat::Json) => json!("{}"),
        (T::String, _) => json!("1"),
        (T::Int | T::Int64, _) => json!(1),
        (T::Float64, _) => json!(1.5),
        (T::Bool, _) => json!(true),
        (T::Object, _) => json!({}),
        (T::Array, _) => json!([]),
    };
    for from in types {
        for to in types {
            for f in formats {
                let supported = conversion_supported(from, to, f);
                let result = convert(sample(from, f), to, f);
                let refused = matches!(result, Err(TransformError::ConvertUnsupported { .. }));
                // A supported pair may still fail on this sample (e.g. "{}" to array).
                assert_eq!(
                    supported, !refused,
                    "{from:?} -> {to:?} ({f:?}): {result:?}"
                );
            }
        }
    }
}

#[test]
fn chains_report_the_failing_step() {
    let chain: Vec<Transform> = vec![
        t(json!({"type": "string", "string": {"type": "Convert", "convert": "ToLower"}})),
        t(json!({"type": "map", "map": {"small": "db.t3.micro"}})),
    ];
    assert_eq!(apply_all(&chain, json!("SMALL")), Ok(json!("db.t3.micro")));
    let (i, e) = apply_all(&chain, json!("HUGE")).unwrap_err();
    assert_eq!(i, 1);
    assert!(matches!(e, TransformError::MapNoEntry { .. }));
    assert_eq!(apply_all(&[], json!(1)), Ok(json!(1)));
}

/// Arbitrary JSON values, a few levels deep.
pub fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| crate::engine::value::float_value(f).unwrap_or(Value::Null)),
        "[a-zA-Z0-9 %._-]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("1Gi"),
            Just("500M"),
            Just("{\"a\":1}"),
            Just("[1]"),
            Just("true"),
            Just("42"),
            Just("aGk=")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Arbitrary transforms: JSON of a transform's shape with random settings,
/// kept only when it deserialises.
fn arb_transform() -> impl Strategy<Value = Transform> {
    let ty = prop_oneof![
        Just("map"),
        Just("match"),
        Just("string"),
        Just("math"),
        Just("convert")
    ];
    let string_type = prop_oneof![
        Just("Format"),
        Just("Convert"),
        Just("TrimPrefix"),
        Just("TrimSuffix"),
        Just("Regexp"),
        Just("Join")
    ];
    let conv = prop_oneof![
        Just("ToUpper"),
        Just("ToLower"),
        Just("ToBase64"),
        Just("FromBase64"),
        Just("ToSha256")
    ];
    let to_type = prop_oneof![
        Just("string"),
        Just("int"),
        Just("int64"),
        Just("float64"),
        Just("bool"),
        Just("object"),
        Just("array")
    ];
    let format = prop_oneof![Just("none"), Just("quantity"), Just("json")];
    let math_type = prop_oneof![Just("Multiply"), Just("ClampMin"), Just("ClampMax")];
    (
        ty,
        string_type,
        conv,
        to_type,
        format,
        math_type,
        any::<i64>(),
        "[%a-z.()^$\\[\\]*+?|0-9sdvq-]{0,8}",
        arb_json(),
        any::<u8>(),
    )
        .prop_filter_map("not a transform", |(ty, st, conv, to, format, mt, n, text, val, mask)| {
            let opt = |bit: u8, v: Value| if mask & (1 << bit) != 0 { v } else { Value::Null };
            let v = json!({
                "type": ty,
                "map": opt(0, json!({"a": val.clone(), text.clone(): 1})),
                "match": opt(1, json!({
                    "patterns": [
                        {"type": "literal", "literal": text.clone(), "result": val.clone()},
                        {"type": "regexp", "regexp": text.clone(), "result": 2}
                    ],
                    "fallbackValue": opt(2, val.clone()),
                    "fallbackTo": if mask & 8 != 0 { "Input" } else { "Value" }
                })),
                "string": opt(4, json!({
                    "type": st, "fmt": text.clone(), "convert": conv, "trim": text.clone(),
                    "regexp": {"match": text.clone(), "group": n % 3}, "join": {"separator": text.clone()}
                })),
                "math": opt(5, json!({"type": mt, "multiply": n, "clampMin": n, "clampMax": n})),
                "convert": opt(6, json!({"toType": to, "format": format})),
            });
            let mut v = v;
            if let Value::Object(m) = &mut v {
                m.retain(|_, x| !x.is_null());
            }
            serde_json::from_value::<Transform>(v).ok()
        })
}

proptest! {
    #[test]
    fn arbitrary_chains_never_panic(chain in prop::collection::vec(arb_transform(), 0..4), input in arb_json()) {
        let _ = apply_all(&chain, input);
    }
}
