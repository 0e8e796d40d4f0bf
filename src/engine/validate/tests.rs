//! Table tests for `validate`: a good composition passes, each kind of
//! mistake is found with its resource, patch index and a useful message.

use serde_json::{Value, json};

use super::*;

fn comp(resources: Value) -> CompositionSpec {
    serde_json::from_value(json!({"engines": ["postgres"], "resources": resources})).unwrap()
}

fn one(template: Value) -> Vec<Problem> {
    validate(&comp(json!([template])))
}

fn with_patches(patches: Value) -> Vec<Problem> {
    one(
        json!({"name": "instance", "base": {"apiVersion": "aws.dbclaim.io/v1alpha1", "kind": "RDSInstance"}, "patches": patches}),
    )
}

fn texts(problems: &[Problem]) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

#[test]
fn a_good_composition_has_no_problems() {
    let c = comp(json!([{
        "name": "instance",
        "base": {"apiVersion": "aws.dbclaim.io/v1alpha1", "kind": "RDSInstance", "spec": {"forProvider": {}}},
        "patches": [
            {"fromFieldPath": "spec.storageGB", "toFieldPath": "spec.forProvider.allocatedStorage",
             "transforms": [{"type": "math", "math": {"type": "ClampMin", "clampMin": 20}}]},
            {"fromFieldPath": "spec.size", "toFieldPath": "spec.forProvider.dbInstanceClass",
             "transforms": [{"type": "map", "map": {"small": "db.t3.micro", "medium": "db.m6g.large", "large": "db.r6g.xlarge"}}]},
            {"fromFieldPath": "spec.version", "toFieldPath": "spec.forProvider.engineVersion"},
            {"fromFieldPath": "spec.databaseName", "toFieldPath": "spec.forProvider.dbName"},
            {"fromFieldPath": "spec.parameters.multiAZ", "toFieldPath": "spec.forProvider.multiAZ",
             "transforms": [{"type": "convert", "convert": {"toType": "bool"}}]},
            {"fromFieldPath": "spec.parameters.storage", "toFieldPath": "spec.forProvider.bytes",
             "transforms": [{"type": "convert", "convert": {"toType": "int64", "format": "quantity"}}]},
            {"fromFieldPath": "spec.parameters", "toFieldPath": "spec.forProvider.tags"},
            {"fromFieldPath": "metadata.labels['team.io/name']", "toFieldPath": "spec.forProvider.tags.team"},
            {"fromFieldPath": "metadata.uid", "toFieldPath": "spec.forProvider.tags.uid"},
            {"fromFieldPath": "spec.compositionSelector.matchExpressions[0].values[1]", "toFieldPath": "spec.x"},
            {"fromFieldPath": "status.outputs.endpoint.anything", "toFieldPath": "spec.y"},
            {"type": "CombineFromClaim", "combine": {"variables": [
                {"fromFieldPath": "metadata.namespace"}, {"fromFieldPath": "spec.storageGB"}
             ], "strategy": "string", "string": {"fmt": "%s-%dGB"}}, "toFieldPath": "spec.forProvider.tags.claim"},
            {"fromFieldPath": "spec.storageGB", "toFieldPath": "spec.z",
             "transforms": [{"type": "convert", "convert": {"toType": "string"}}, {"type": "string", "string": {"type": "Format", "fmt": "%sGB"}}]},
            {"type": "ToClaimFieldPath", "fromFieldPath": "status.atProvider.endpoint.address", "toFieldPath": "status.outputs.endpoint"},
            {"type": "CombineToClaim", "combine": {"variables": [{"fromFieldPath": "status.a"}, {"fromFieldPath": "status.b"}],
             "string": {"fmt": "%v:%d"}}, "toFieldPath": "status.outputs.hostPort"}
        ],
        "readinessChecks": [
            {"type": "MatchCondition", "matchCondition": {"type": "Ready", "status": "True"}},
            {"type": "NonEmpty", "fieldPath": "status.atProvider.endpoint.address"}
        ],
        "connectionDetails": [
            {"name": "host", "fromFieldPath": "status.atProvider.endpoint.address"},
            {"name": "password", "fromConnectionSecretKey": "password"},
            {"name": "engine", "value": "postgres"}
        ]
    }]));
    assert_eq!(texts(&validate(&c)), Vec::<String>::new());
}

#[test]
fn the_shipped_composition_shapes_validate() {
    // The patches the shipped compositions use (compositions/*.yaml).
    let problems = with_patches(json!([
        {"fromFieldPath": "spec.parameters.backupRetentionDays", "toFieldPath": "spec.forProvider.backupRetentionPeriod",
         "transforms": [{"type": "convert", "convert": {"toType": "int64"}}]},
        {"fromFieldPath": "spec.deletionPolicy", "toFieldPath": "spec.deletionPolicy"},
        {"fromFieldPath": "metadata.namespace", "toFieldPath": "spec.forProvider.tags['dbclaim.io/namespace']"},
        {"type": "CombineFromClaim", "combine": {"variables": [{"fromFieldPath": "metadata.namespace"}, {"fromFieldPath": "spec.databaseName"}],
         "strategy": "string", "string": {"fmt": "%s_%s"}}, "toFieldPath": "spec.forProvider.databaseName",
         "policy": {"fromFieldPath": "Required"}}
    ]));
    assert_eq!(texts(&problems), Vec::<String>::new());
}

#[test]
fn composition_level_problems() {
    let c: CompositionSpec =
        serde_json::from_value(json!({"engines": [], "resources": []})).unwrap();
    assert_eq!(
        texts(&validate(&c)),
        vec![
            "engines is empty: list the engines this composition serves (postgres, mysql)",
            "resources is empty: the composition would compose nothing",
        ]
    );
    let base = json!({"apiVersion": "v1", "kind": "ConfigMap"});
    let problems = validate(&comp(
        json!([{"name": "a", "base": base}, {"name": "a", "base": base}, {"name": "Bad_Name", "base": base}]),
    ));
    assert_eq!(
        texts(&problems),
        vec![
            "resource \"a\": resource names must be unique within a composition; this name appears more than once",
            "resource \"Bad_Name\": the resource name must be a DNS label: lower-case letters, digits and '-', at most 63",
        ]
    );
}

#[test]
fn base_problems() {
    let cases = vec![
        (
            json!({"kind": "X"}),
            "base has no apiVersion (e.g. apiVersion: aws.dbclaim.io/v1alpha1)",
        ),
        (
            json!({"apiVersion": "v1"}),
            "base has no kind (e.g. kind: RDSInstance)",
        ),
        (json!({"apiVersion": "v1", "kind": ""}), "base has no kind"),
        (
            json!({"apiVersion": 1, "kind": "X"}),
            "base apiVersion must be a string, not an integer",
        ),
        (
            json!("text"),
            "base must be an object (a Kubernetes manifest)",
        ),
        (
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "kube-system"}}),
            "base sets metadata.namespace (\"kube-system\")",
        ),
    ];
    for (base, want) in cases {
        let problems = one(json!({"name": "r", "base": base}));
        assert_eq!(problems.len(), 1, "{base}: {problems:?}");
        assert_eq!(problems[0].patch, None);
        assert!(
            problems[0].to_string().starts_with("resource \"r\": "),
            "{}",
            problems[0]
        );
        assert!(
            problems[0].message.contains(want),
            "{base}: {}",
            problems[0]
        );
    }
}

#[test]
fn patch_problems() {
    let cases = vec![
        // Paths.
        (
            json!({"fromFieldPath": "spec..size", "toFieldPath": "x"}),
            "fromFieldPath: field path \"spec..size\" is not valid at position 5",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x["}),
            "toFieldPath: field path \"x[\" is not valid",
        ),
        (
            json!({"fromFieldPath": "spec.sizee", "toFieldPath": "x"}),
            "fromFieldPath spec.sizee does not exist on a DatabaseClaim (spec has: compositionRef, compositionRevisionRef, compositionSelector, compositionUpdatePolicy, credentials, databaseName, deletionPolicy, engine, parameters, size, storageGB, version, writeConnectionSecretToRef)",
        ),
        (
            json!({"fromFieldPath": "specs.size", "toFieldPath": "x"}),
            "specs.size does not exist on a DatabaseClaim (a DatabaseClaim has: apiVersion, kind, metadata, spec, status)",
        ),
        (
            json!({"fromFieldPath": "spec.size[0]", "toFieldPath": "x"}),
            "spec.size[0] does not exist on a DatabaseClaim: spec.size is not an array",
        ),
        (
            json!({"fromFieldPath": "spec.compositionRef.name.x", "toFieldPath": "x"}),
            "spec.compositionRef.name.x does not exist",
        ),
        (
            json!({"fromFieldPath": "metadata.generation", "toFieldPath": "x"}),
            "metadata.generation is not available to patches",
        ),
        (
            json!({"fromFieldPath": "metadata.labels.a.b", "toFieldPath": "x"}),
            "metadata.labels.a.b is not available to patches",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "metadata.namespace"}),
            "toFieldPath metadata.namespace: objects composed for a claim always live in the claim's namespace",
        ),
        (
            json!({"toFieldPath": "x"}),
            "a FromClaimFieldPath patch needs \"fromFieldPath\"",
        ),
        // ToClaim targets.
        (
            json!({"type": "ToClaimFieldPath", "fromFieldPath": "status.a", "toFieldPath": "spec.size"}),
            "ToClaimFieldPath may only write status.outputs.<key> of the claim, not spec.size",
        ),
        (
            json!({"type": "ToClaimFieldPath", "fromFieldPath": "status.a"}),
            "not status.a",
        ),
        // Combines.
        (
            json!({"type": "CombineFromClaim", "toFieldPath": "x"}),
            "a CombineFromClaim patch needs \"combine\"",
        ),
        (
            json!({"type": "CombineFromClaim", "combine": {"variables": [], "string": {"fmt": "x"}}, "toFieldPath": "x"}),
            "combine needs at least one variable",
        ),
        (
            json!({"type": "CombineFromClaim", "combine": {"variables": [{"fromFieldPath": "spec.size"}]}, "toFieldPath": "x"}),
            "combine strategy string needs \"string\" with \"fmt\"",
        ),
        (
            json!({"type": "CombineFromClaim", "combine": {"variables": [{"fromFieldPath": "spec.size"}], "string": {"fmt": "%s"}}}),
            "a CombineFromClaim patch needs \"toFieldPath\"",
        ),
        (
            json!({"type": "CombineFromClaim", "combine": {"variables": [{"fromFieldPath": "spec.size"}, {"fromFieldPath": "metadata.name"}], "string": {"fmt": "%s"}}, "toFieldPath": "x"}),
            "combine format \"%s\": 2 value(s) given but the format uses only 1",
        ),
        (
            json!({"type": "CombineFromClaim", "combine": {"variables": [{"fromFieldPath": "spec.size"}], "string": {"fmt": "%d"}}, "toFieldPath": "x"}),
            "combine format \"%d\": %d at position 0 needs an integer, got the string \"x\"",
        ),
        (
            json!({"type": "CombineFromClaim", "combine": {"variables": [{"fromFieldPath": "spec.nope"}], "string": {"fmt": "%s"}}, "toFieldPath": "x"}),
            "combine variable 0 spec.nope does not exist",
        ),
        (
            json!({"type": "CombineToClaim", "combine": {"variables": [{"fromFieldPath": "status.a"}], "string": {"fmt": "%s %s"}}, "toFieldPath": "status.outputs.x"}),
            "%s at position 3 has no value (only 1 given)",
        ),
        // Transforms, with types followed from the claim schema.
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "map", "map": {"small": "a", "medium": "b"}}]}),
            "map transform has no entry for \"large\", which a claim may set; add it",
        ),
        (
            json!({"fromFieldPath": "spec.storageGB", "toFieldPath": "x", "transforms": [{"type": "map", "map": {"20": "a"}}]}),
            "a map transform needs a string input, but gets an integer",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "math", "math": {"multiply": 2}}]}),
            "a math transform needs a number input, but gets a string",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "string", "string": {"type": "Join", "join": {}}}]}),
            "a string transform needs an array input, but gets a string",
        ),
        (
            json!({"fromFieldPath": "spec.storageGB", "toFieldPath": "x", "transforms": [{"type": "match", "match": {}}]}),
            "a match transform needs a string input, but gets an integer",
        ),
        (
            json!({"fromFieldPath": "spec.storageGB", "toFieldPath": "x", "transforms": [{"type": "string", "string": {"fmt": "%s GB"}}]}),
            "string format \"%s GB\": %s at position 0 needs a string, got the integer 1",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "convert", "convert": {"toType": "int64"}}, {"type": "string", "string": {"fmt": "%s"}}]}),
            "transform 1: string format \"%s\": %s at position 0 needs a string, got the integer 1",
        ),
        (
            json!({"fromFieldPath": "spec.storageGB", "toFieldPath": "x", "transforms": [{"type": "convert", "convert": {"toType": "object"}}]}),
            "convert transform cannot convert an integer to object",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "convert", "convert": {"toType": "object"}}]}),
            "convert transform cannot convert a string to object",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "convert", "convert": {"toType": "bool", "format": "quantity"}}]}),
            "cannot convert a string to boolean with format quantity",
        ),
        (
            json!({"fromFieldPath": "status.outputs.x", "toFieldPath": "x", "transforms": [{"type": "convert", "convert": {"toType": "string", "format": "json"}}]}),
            "cannot convert to string with format json",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "map"}]}),
            "a transform of type map needs its \"map\" settings",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "match"}]}),
            "needs its \"match\" settings",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "string"}]}),
            "needs its \"string\" settings",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "math"}]}),
            "needs its \"math\" settings",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "convert"}]}),
            "needs its \"convert\" settings",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "match", "match": {"patterns": [{"type": "literal", "result": 1}]}}]}),
            "match pattern 0 of type literal needs \"literal\"",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "match", "match": {"patterns": [{"type": "regexp", "result": 1}]}}]}),
            "match pattern 0 of type regexp needs \"regexp\"",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "match", "match": {"patterns": [{"type": "regexp", "regexp": "(", "result": 1}]}}]}),
            "match pattern 0: regular expression \"(\" does not compile",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "match", "match": {"fallbackTo": "Input", "fallbackValue": 1}}]}),
            "sets both fallbackValue and fallbackTo: Input",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "string", "string": {"type": "Format"}}]}),
            "string transform of type Format needs \"fmt\"",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "string", "string": {"type": "Convert"}}]}),
            "string transform of type Convert needs \"convert\"",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "string", "string": {"type": "TrimSuffix"}}]}),
            "string transform of type TrimSuffix needs \"trim\"",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "string", "string": {"type": "Regexp"}}]}),
            "string transform of type Regexp needs \"regexp\"",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "string", "string": {"type": "Regexp", "regexp": {"match": "([a-z"}}}]}),
            "regular expression \"([a-z\" does not compile",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "string", "string": {"type": "Regexp", "regexp": {"match": "(a)", "group": 2}}}]}),
            "regexp \"(a)\" has no group 2 (it has 2",
        ),
        (
            json!({"fromFieldPath": "spec.parameters", "toFieldPath": "x", "transforms": [{"type": "string", "string": {"type": "Join"}}]}),
            "string transform of type Join needs \"join\"",
        ),
        (
            json!({"fromFieldPath": "spec.storageGB", "toFieldPath": "x", "transforms": [{"type": "math", "math": {"type": "ClampMax"}}]}),
            "math transform of type ClampMax needs \"clampMax\"",
        ),
    ];
    for (p, want) in cases {
        let problems =
            with_patches(json!([{"fromFieldPath": "spec.size", "toFieldPath": "spec.s"}, p]));
        assert_eq!(problems.len(), 1, "{p}: {problems:#?}");
        assert_eq!(problems[0].patch, Some(1), "{p}");
        let text = problems[0].to_string();
        assert!(
            text.starts_with("resource \"instance\", patch 1: "),
            "{text}"
        );
        assert!(text.contains(want), "{p}:\n  got  {text}\n  want {want}");
    }
}

#[test]
fn readiness_and_connection_problems() {
    let problems = one(json!({
        "name": "r",
        "base": {"apiVersion": "v1", "kind": "ConfigMap"},
        "readinessChecks": [
            {"type": "None"},
            {"type": "MatchString", "fieldPath": "status.x"},
            {"type": "MatchCondition"},
            {"type": "NonEmpty", "fieldPath": "a..b"}
        ],
        "connectionDetails": [
            {"name": "host"},
            {"name": "port", "type": "FromFieldPath", "value": "5432"},
            {"name": "engine", "value": "postgres"},
            {"name": "engine", "value": "mysql"}
        ]
    }));
    assert_eq!(
        texts(&problems),
        vec![
            "resource \"r\": readiness check 1 (MatchString): a MatchString check needs \"matchString\"",
            "resource \"r\": readiness check 2 (MatchCondition): a MatchCondition check needs \"matchCondition\"",
            "resource \"r\": readiness check 3 (NonEmpty): fieldPath: field path \"a..b\" is not valid at position 2: expected a key, found '.'",
            "resource \"r\": connection detail \"host\": set one of fromConnectionSecretKey, fromFieldPath or value",
            "resource \"r\": connection detail \"port\": type FromFieldPath needs \"fromFieldPath\"",
            "resource \"r\": connection detail \"engine\" is listed twice; the last one wins",
        ]
    );
}

#[test]
fn the_broken_fixture_reports_patch_1_and_2() {
    // tests/fixtures/broken-composition.yaml of the CLI tests.
    let problems = with_patches(json!([
        {"fromFieldPath": "spec.storageGB", "toFieldPath": "spec.forProvider.allocatedStorage"},
        {"fromFieldPath": "spec.sizee", "toFieldPath": "spec.forProvider.dbInstanceClass"},
        {"fromFieldPath": "spec.size", "toFieldPath": "spec.forProvider.dbInstanceClass",
         "transforms": [{"type": "string", "string": {"type": "Regexp", "regexp": {"match": "([a-z"}}}]}
    ]));
    assert_eq!(
        problems.iter().map(|p| p.patch).collect::<Vec<_>>(),
        vec![Some(1), Some(2)]
    );
}

#[test]
fn connection_detail_names_must_be_secret_keys() {
    let problems = one(json!({
        "name": "r",
        "base": {"apiVersion": "v1", "kind": "ConfigMap"},
        "connectionDetails": [
            {"name": "host name", "value": "x"},
            {"name": "..", "value": "x"},
            {"name": "", "value": "x"},
            {"name": "ok-key_1.x", "value": "x"}
        ]
    }));
    let bad = "the name is not a valid Secret key: use letters, digits, '-', '_' and '.' (not \".\" or \"..\"), at most 253 characters";
    assert_eq!(
        texts(&problems),
        vec![
            format!("resource \"r\": connection detail \"host name\": {bad}"),
            format!("resource \"r\": connection detail \"..\": {bad}"),
            format!("resource \"r\": connection detail \"\": {bad}"),
        ]
    );
}

#[test]
fn generate_patches_are_checked() {
    let problems = with_patches(json!([
        {"type": "Generate", "generate": {"type": "Password", "length": 32}, "toFieldPath": "spec.forProvider.password"},
        {"type": "Generate", "generate": {"length": 2}, "toFieldPath": "spec.forProvider.password"},
        {"type": "Generate", "generate": {}, "fromFieldPath": "spec.size", "toFieldPath": "x"},
        {"type": "Generate", "toFieldPath": "x"},
        {"type": "Generate", "generate": {}, "toFieldPath": "metadata.namespace"}
    ]));
    let t = texts(&problems);
    assert_eq!(t.len(), 4, "{t:#?}");
    assert!(
        t[0].contains("patch 1") && t[0].contains("length 2 is out of range"),
        "{t:#?}"
    );
    assert!(
        t[1].contains("patch 2") && t[1].contains("reads nothing"),
        "{t:#?}"
    );
    assert!(
        t[2].contains("patch 3") && t[2].contains("needs \"generate\""),
        "{t:#?}"
    );
    assert!(
        t[3].contains("patch 4") && t[3].contains("metadata.namespace"),
        "{t:#?}"
    );
}

#[test]
fn connection_secret_suffixes_must_make_secret_names() {
    let with = |suffix: &str| {
        texts(&one(json!({
            "name": "cluster",
            "base": {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster"},
            "connectionSecret": {"nameSuffix": suffix},
            "connectionDetails": [{"name": "password", "fromConnectionSecretKey": "password"}]
        })))
    };
    for ok in ["-app", "-superuser", ".credentials", "-a.b"] {
        assert_eq!(with(ok), Vec::<String>::new(), "{ok}");
    }
    for bad in ["-", "-app-", ".", "..x", ".-x", "-APP", "_app"] {
        let t = with(bad);
        assert_eq!(t.len(), 1, "{bad}: {t:#?}");
        assert!(
            t[0].starts_with("resource \"cluster\": connectionSecret.nameSuffix"),
            "{t:#?}"
        );
    }
}
