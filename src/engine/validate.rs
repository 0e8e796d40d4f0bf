//! Static checks of a composition, for `dbclaim validate`: everything that
//! can be known wrong without a claim — paths that do not parse or do not
//! exist on a DatabaseClaim, ill-formed transforms, checks and details,
//! formats that cannot match their values, map transforms missing a value
//! the claim's schema allows, objects aimed at another namespace.
//!
//! Types are followed through a patch where they are known: a claim field's
//! type and enum come from the DatabaseClaim CRD schema, and each transform
//! says what it produces. An unknown type (the observed composed object's
//! fields, a map of mixed values) simply checks less.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kube::CustomResourceExt;
use serde_json::{Value, json};

use super::connection;
use super::fieldpath::{FieldPath, Segment};
use super::gofmt;
use super::patch::{self, is_to_claim};
use super::readiness;
use super::transform::{compile, conversion_supported, format_allowed};
use crate::api::CompositionSpec;
use crate::api::DatabaseClaim;
use crate::api::composition::{
    ComposedTemplate, ConvertFormat, ConvertToType, MatchFallbackTo, MatchPatternType,
    MathTransformType, Patch, PatchType, StringTransformType, Transform, TransformType,
};
use crate::naming::is_dns_label;

/// One thing wrong with a composition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The resource (template) name; empty for the composition as a whole.
    pub resource: String,
    pub patch: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.resource.is_empty(), self.patch) {
            (true, _) => f.write_str(&self.message),
            (false, Some(i)) => write!(
                f,
                "resource \"{}\", patch {i}: {}",
                self.resource, self.message
            ),
            (false, None) => write!(f, "resource \"{}\": {}", self.resource, self.message),
        }
    }
}

/// Every problem found in the composition, in document order; empty when
/// the composition is fine.
pub fn validate(spec: &CompositionSpec) -> Vec<Problem> {
    validator(spec).problems
}

/// What a patch writes into its composed object, as far as the claim's
/// schema and the transforms tell: a JSON schema type and, when known, the
/// values it can take.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PatchOutput {
    pub json: Option<&'static str>,
    pub values: Option<Vec<Value>>,
}

/// The output of every patch that writes into a composed object, by
/// (resource name, patch index).
pub fn patch_outputs(spec: &CompositionSpec) -> BTreeMap<(String, usize), PatchOutput> {
    validator(spec)
        .outputs
        .into_iter()
        .map(|(k, t)| {
            (
                k,
                PatchOutput {
                    json: t.json,
                    values: t.values,
                },
            )
        })
        .collect()
}

fn validator(spec: &CompositionSpec) -> Validator {
    let mut v = Validator {
        schema: claim_schema(),
        resources: spec.resources.iter().map(|t| t.name.clone()).collect(),
        problems: Vec::new(),
        outputs: BTreeMap::new(),
    };
    if spec.engines.is_empty() {
        v.add(
            "",
            None,
            "engines is empty: list the engines this composition serves (postgres, mysql)",
        );
    }
    if spec.resources.is_empty() {
        v.add(
            "",
            None,
            "resources is empty: the composition would compose nothing",
        );
    }
    let mut seen = BTreeSet::new();
    for t in &spec.resources {
        if !seen.insert(t.name.as_str()) {
            v.add(&t.name, None, "resource names must be unique within a composition; this name appears more than once");
        }
        v.template(t);
    }
    v
}

struct Validator {
    /// The DatabaseClaim's openAPIV3Schema, as JSON.
    schema: Value,
    /// The composition's resource names (`metadata.resourceNames.<name>`).
    resources: BTreeSet<String>,
    problems: Vec<Problem>,
    /// What each patch writes, by (resource, patch index).
    outputs: BTreeMap<(String, usize), Ty>,
}

fn claim_schema() -> Value {
    let crd = DatabaseClaim::crd();
    crd.spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}

/// What is known of a value's type as it flows through a patch.
#[derive(Clone, Debug, Default, PartialEq)]
struct Ty {
    /// JSON schema type: string, integer, number, boolean, object, array.
    json: Option<&'static str>,
    /// The values it can take, when the schema says (an enum).
    values: Option<Vec<Value>>,
}

impl Ty {
    fn of(json: &'static str) -> Self {
        Ty {
            json: Some(json),
            values: None,
        }
    }

    fn unknown() -> Self {
        Ty::default()
    }

    /// A sample value of this type, for checking formats.
    fn sample(&self) -> Option<Value> {
        Some(match self.json? {
            "string" => json!("x"),
            "integer" => json!(1),
            // A schema "number" may hold an integer or not: a format
            // cannot be checked against it.
            "number" => return None,
            "boolean" => json!(true),
            "object" => json!({}),
            "array" => json!([]),
            _ => return None,
        })
    }

    fn convert_type(&self) -> Option<ConvertToType> {
        Some(match self.json? {
            "string" => ConvertToType::String,
            "integer" => ConvertToType::Int64,
            "boolean" => ConvertToType::Bool,
            "object" => ConvertToType::Object,
            "array" => ConvertToType::Array,
            _ => return None,
        })
    }
}

fn json_type_of(v: &Value) -> Option<&'static str> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    })
}

/// The common JSON type of some values, if they share one.
fn common_type<'a>(values: impl IntoIterator<Item = &'a Value>) -> Ty {
    let mut types = values.into_iter().map(json_type_of);
    match types.next() {
        Some(Some(first)) if types.all(|t| t == Some(first)) => Ty::of(first),
        _ => Ty::unknown(),
    }
}

fn convert_json_type(t: ConvertToType) -> &'static str {
    match t {
        ConvertToType::String => "string",
        ConvertToType::Int | ConvertToType::Int64 => "integer",
        ConvertToType::Float64 => "number",
        ConvertToType::Bool => "boolean",
        ConvertToType::Object => "object",
        ConvertToType::Array => "array",
    }
}

fn article(json: &str) -> &'static str {
    match json {
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "a boolean",
        "object" => "an object",
        "array" => "an array",
        _ => "a value",
    }
}

impl Validator {
    fn add(&mut self, resource: &str, patch: Option<usize>, message: impl Into<String>) {
        self.problems.push(Problem {
            resource: resource.to_string(),
            patch,
            message: message.into(),
        });
    }

    fn template(&mut self, t: &ComposedTemplate) {
        let r = t.name.as_str();
        if !is_dns_label(r) {
            self.add(r, None, "the resource name must be a DNS label: lower-case letters, digits and '-', at most 63");
        }
        self.base(t);
        for (i, p) in t.patches.iter().enumerate() {
            self.patch(r, i, p);
        }
        for (i, c) in t.readiness_checks.iter().enumerate() {
            if let Err(e) = readiness::check_config(c) {
                self.add(
                    r,
                    None,
                    format!(
                        "readiness check {i} ({}): {e}",
                        readiness::type_name(c.type_)
                    ),
                );
            }
        }
        // Composed names end in an alphanumeric: "a" stands for any of them.
        if let Some(cs) = &t.connection_secret
            && !crate::naming::is_dns_subdomain(&format!("a{}", cs.name_suffix))
        {
            self.add(
                r,
                None,
                format!(
                    "connectionSecret.nameSuffix {:?} does not make a valid Secret name: use \
                     lowercase letters, digits, '-' and '.', alphanumeric next to every '.' and at the end",
                    cs.name_suffix
                ),
            );
        }
        let mut names = BTreeSet::new();
        for d in &t.connection_details {
            if let Err(e) = connection::source(d) {
                self.add(r, None, format!("connection detail \"{}\": {e}", d.name));
            }
            if !names.insert(d.name.as_str()) {
                self.add(
                    r,
                    None,
                    format!(
                        "connection detail \"{}\" is listed twice; the last one wins",
                        d.name
                    ),
                );
            }
        }
    }

    fn base(&mut self, t: &ComposedTemplate) {
        let r = t.name.as_str();
        let Value::Object(base) = &t.base else {
            self.add(r, None, "base must be an object (a Kubernetes manifest)");
            return;
        };
        for (field, example) in [
            ("apiVersion", "aws.dbclaim.io/v1alpha1"),
            ("kind", "RDSInstance"),
        ] {
            match base.get(field) {
                Some(Value::String(s)) if !s.is_empty() => {}
                Some(Value::String(_)) | None | Some(Value::Null) => self.add(
                    r,
                    None,
                    format!("base has no {field} (e.g. {field}: {example})"),
                ),
                Some(other) => self.add(
                    r,
                    None,
                    format!(
                        "base {field} must be a string, not {}",
                        article(json_type_of(other).unwrap_or(""))
                    ),
                ),
            }
        }
        if let Some(ns) = base
            .get("metadata")
            .and_then(|m| m.get("namespace"))
            .filter(|n| !n.is_null())
        {
            self.add(
                r,
                None,
                format!(
                    "base sets metadata.namespace ({ns}): objects composed for a claim always live in the claim's \
                     namespace (or none, for cluster-scoped kinds); remove it"
                ),
            );
        }
    }

    fn patch(&mut self, r: &str, i: usize, p: &Patch) {
        if p.type_ == PatchType::Generate {
            match super::generate::check(p) {
                Ok(_) => {
                    self.target(r, i, p);
                    self.outputs.insert((r.to_string(), i), Ty::of("string"));
                }
                Err(e) => self.add(r, Some(i), e.to_string()),
            }
            return;
        }
        let to_claim = is_to_claim(p);
        let combine = matches!(
            p.type_,
            PatchType::CombineFromClaim | PatchType::CombineToClaim
        );
        // Where the patch reads: the claim (whose schema we know) or the
        // observed composed object (whose schema we do not).
        let read = |v: &mut Validator, field: &str, text: &str| -> Option<Ty> {
            match FieldPath::parse(text) {
                Err(e) => {
                    v.add(r, Some(i), format!("{field}: {e}"));
                    None
                }
                Ok(_) if to_claim => Some(Ty::unknown()),
                Ok(path) => match v.claim_field(&path) {
                    Ok(ty) => Some(ty),
                    Err(msg) => {
                        v.add(r, Some(i), format!("{field} {msg}"));
                        None
                    }
                },
            }
        };
        let ty = if combine {
            let Some(c) = &p.combine else {
                self.add(
                    r,
                    Some(i),
                    format!("a {} patch needs \"combine\"", patch::type_name(p.type_)),
                );
                return;
            };
            if c.variables.is_empty() {
                self.add(r, Some(i), "combine needs at least one variable");
            }
            let vars: Vec<Option<Ty>> = c
                .variables
                .iter()
                .enumerate()
                .map(|(n, var)| read(self, &format!("combine variable {n}"), &var.from_field_path))
                .collect();
            match &c.string {
                None => self.add(r, Some(i), "combine strategy string needs \"string\" with \"fmt\", e.g. string: {fmt: \"%s-%s\"}"),
                Some(s) => {
                    let samples: Vec<Option<Value>> = vars.iter().map(|t| t.as_ref().and_then(Ty::sample)).collect();
                    if let Err(e) = gofmt::check(&s.fmt, &samples) {
                        self.add(r, Some(i), format!("combine format {:?}: {e}", s.fmt));
                    }
                }
            }
            Some(Ty::of("string"))
        } else {
            match &p.from_field_path {
                None => {
                    self.add(
                        r,
                        Some(i),
                        format!(
                            "a {} patch needs \"fromFieldPath\"",
                            patch::type_name(p.type_)
                        ),
                    );
                    None
                }
                Some(text) => read(self, "fromFieldPath", text),
            }
        };
        self.target(r, i, p);
        let mut ty = ty.unwrap_or_default();
        for (n, t) in p.transforms.iter().enumerate() {
            let prefix = if p.transforms.len() > 1 {
                format!("transform {n}: ")
            } else {
                String::new()
            };
            match self.transform(t, &ty) {
                Ok(next) => ty = next,
                Err(msg) => {
                    self.add(r, Some(i), format!("{prefix}{msg}"));
                    ty = Ty::unknown();
                }
            }
        }
        if !to_claim {
            self.outputs.insert((r.to_string(), i), ty);
        }
    }

    /// The patch's target: status.outputs.<key> for ToClaim patches; for
    /// FromClaim patches a parseable path that does not move the object to
    /// another namespace.
    fn target(&mut self, r: &str, i: usize, p: &Patch) {
        if is_to_claim(p) {
            if let Err(e) = patch::to_claim_target(p) {
                self.add(r, Some(i), e.to_string());
            }
            return;
        }
        let text = match (&p.to_field_path, &p.from_field_path, p.type_) {
            (Some(t), _, _) => t,
            (None, Some(f), PatchType::FromClaimFieldPath) => f,
            (None, _, PatchType::FromClaimFieldPath) => return,
            (None, _, _) => {
                self.add(
                    r,
                    Some(i),
                    format!(
                        "a {} patch needs \"toFieldPath\"",
                        patch::type_name(p.type_)
                    ),
                );
                return;
            }
        };
        match FieldPath::parse(text) {
            Err(e) => self.add(r, Some(i), format!("toFieldPath: {e}")),
            Ok(path) => {
                if let [Segment::Field(m), Segment::Field(n), ..] = path.segments()
                    && m == "metadata"
                    && n == "namespace"
                {
                    self.add(
                        r,
                        Some(i),
                        "toFieldPath metadata.namespace: objects composed for a claim always live in the claim's \
                         namespace; dbclaim sets it",
                    );
                }
            }
        }
    }

    /// Checks one transform against the type flowing in; returns the type
    /// flowing out, or what is wrong.
    fn transform(&self, t: &Transform, input: &Ty) -> Result<Ty, String> {
        let needs = |what: &str| -> Result<(), String> {
            match input.json {
                Some(j) if j != what && !(what == "number" && j == "integer") => Err(format!(
                    "a {} transform needs {} input, but gets {}",
                    type_label(t),
                    article(what),
                    article(j)
                )),
                _ => Ok(()),
            }
        };
        let missing = |kind: &str, example: &str| {
            format!("a transform of type {kind} needs its \"{kind}\" settings, e.g. {example}")
        };
        match t.type_ {
            TransformType::Map => {
                let map = t
                    .map
                    .as_ref()
                    .ok_or_else(|| missing("map", "{type: map, map: {small: db.t3.micro}}"))?;
                needs("string")?;
                if let Some(values) = &input.values {
                    let absent: Vec<String> = values
                        .iter()
                        .filter_map(Value::as_str)
                        .filter(|v| !map.contains_key(*v))
                        .map(|v| format!("{v:?}"))
                        .collect();
                    if !absent.is_empty() {
                        return Err(format!(
                            "map transform has no entry for {}, which a claim may set; add {}",
                            absent.join(", "),
                            if absent.len() == 1 { "it" } else { "them" }
                        ));
                    }
                }
                // The values are known too: an enum of the target can be
                // checked against them (`validate --crds`).
                Ok(Ty {
                    values: Some(map.values().cloned().collect()),
                    ..common_type(map.values())
                })
            }
            TransformType::Match => {
                let m = t.match_.as_ref().ok_or_else(|| {
                    missing("match", "{type: match, match: {patterns: [{type: literal, literal: a, result: b}]}}")
                })?;
                needs("string")?;
                for (n, pat) in m.patterns.iter().enumerate() {
                    match pat.type_ {
                        MatchPatternType::Literal if pat.literal.is_none() => {
                            return Err(format!(
                                "match pattern {n} of type literal needs \"literal\""
                            ));
                        }
                        MatchPatternType::Regexp => match &pat.regexp {
                            None => {
                                return Err(format!(
                                    "match pattern {n} of type regexp needs \"regexp\""
                                ));
                            }
                            Some(re) => {
                                compile(re).map_err(|e| format!("match pattern {n}: {e}"))?;
                            }
                        },
                        MatchPatternType::Literal => {}
                    }
                }
                if m.fallback_to == MatchFallbackTo::Input && m.fallback_value.is_some() {
                    return Err(
                        "match transform sets both fallbackValue and fallbackTo: Input; keep one"
                            .into(),
                    );
                }
                let mut results: Vec<&Value> = m.patterns.iter().map(|p| &p.result).collect();
                results.extend(m.fallback_value.as_ref());
                let out = common_type(results);
                Ok(
                    if m.fallback_to == MatchFallbackTo::Input && out.json != input.json {
                        Ty::unknown()
                    } else {
                        out
                    },
                )
            }
            TransformType::String => {
                let s = t.string.as_ref().ok_or_else(|| {
                    missing(
                        "string",
                        "{type: string, string: {type: Format, fmt: \"db-%s\"}}",
                    )
                })?;
                // Run the transform's own configuration check by applying it
                // to a sample; only configuration errors are reported.
                let kind = format!("string transform of type {}", string_type_label(s.type_));
                match s.type_ {
                    StringTransformType::Format => {
                        let fmt = s
                            .fmt
                            .as_ref()
                            .ok_or_else(|| format!("{kind} needs \"fmt\", e.g. fmt: \"db-%s\""))?;
                        gofmt::check(fmt, &[input.sample()])
                            .map_err(|e| format!("string format {fmt:?}: {e}"))?;
                    }
                    StringTransformType::Convert if s.convert.is_none() => {
                        return Err(format!(
                            "{kind} needs \"convert\" (ToUpper, ToLower, ToBase64, FromBase64 or ToSha256)"
                        ));
                    }
                    StringTransformType::TrimPrefix | StringTransformType::TrimSuffix
                        if s.trim.is_none() =>
                    {
                        return Err(format!("{kind} needs \"trim\""));
                    }
                    StringTransformType::Regexp => {
                        let re = s
                            .regexp
                            .as_ref()
                            .ok_or_else(|| format!("{kind} needs \"regexp\" with \"match\""))?;
                        let compiled = compile(&re.match_).map_err(|e| e.to_string())?;
                        if let Some(g) = re.group
                            && (g < 0 || g as usize >= compiled.captures_len())
                        {
                            return Err(format!(
                                "regexp {:?} has no group {g} (it has {} including group 0, the whole match)",
                                re.match_,
                                compiled.captures_len()
                            ));
                        }
                    }
                    StringTransformType::Join => {
                        if s.join.is_none() {
                            return Err(format!("{kind} needs \"join\" with \"separator\""));
                        }
                        needs("array")?;
                    }
                    _ => {}
                }
                Ok(Ty::of("string"))
            }
            TransformType::Math => {
                let m = t.math.as_ref().ok_or_else(|| {
                    missing(
                        "math",
                        "{type: math, math: {type: Multiply, multiply: 1024}}",
                    )
                })?;
                let (op, operand, field) = match m.type_ {
                    MathTransformType::Multiply => ("Multiply", m.multiply, "multiply"),
                    MathTransformType::ClampMin => ("ClampMin", m.clamp_min, "clampMin"),
                    MathTransformType::ClampMax => ("ClampMax", m.clamp_max, "clampMax"),
                };
                if operand.is_none() {
                    return Err(format!("math transform of type {op} needs \"{field}\""));
                }
                needs("number")?;
                Ok(Ty {
                    json: input.json,
                    values: None,
                })
            }
            TransformType::Convert => {
                let c = t.convert.as_ref().ok_or_else(|| {
                    missing("convert", "{type: convert, convert: {toType: string}}")
                })?;
                let format = c.format.unwrap_or(ConvertFormat::None);
                let from = input.convert_type();
                let allowed = match from {
                    Some(from) => conversion_supported(from, c.to_type, format),
                    // Unknown input: the format must at least suit some input.
                    None => format_allowed(ConvertToType::String, c.to_type, format),
                };
                if !allowed {
                    let from = input
                        .json
                        .map(|j| format!("{} ", article(j)))
                        .unwrap_or_default();
                    let with = match format {
                        ConvertFormat::None => String::new(),
                        ConvertFormat::Quantity => " with format quantity".into(),
                        ConvertFormat::Json => " with format json".into(),
                    };
                    return Err(format!(
                        "convert transform cannot convert {from}to {}{with}",
                        convert_json_type(c.to_type)
                    ));
                }
                Ok(Ty::of(convert_json_type(c.to_type)))
            }
        }
    }

    /// The type of a claim field patches may read, or why it does not exist.
    fn claim_field(&self, path: &FieldPath) -> Result<Ty, String> {
        let segs = path.segments();
        fn field(s: &Segment) -> Option<&str> {
            match s {
                Segment::Field(f) => Some(f.as_str()),
                Segment::Index(_) => None,
            }
        }
        match segs.first().and_then(field) {
            Some("apiVersion" | "kind") if segs.len() == 1 => return Ok(Ty::of("string")),
            Some("metadata") => {
                let rest: Vec<Option<&str>> = segs[1..].iter().map(field).collect();
                return match rest.as_slice() {
                    [] | [Some("labels" | "annotations")] => Ok(Ty::of("object")),
                    [Some("resourceNames")] => Ok(Ty::of("object")),
                    [Some("resourceNames"), Some(r)] if !self.resources.contains(*r) => Err(
                        format!("{path}: the composition has no resource named {r:?}"),
                    ),
                    [Some("name" | "namespace" | "uid")]
                    | [Some("labels" | "annotations" | "resourceNames"), Some(_)] => {
                        Ok(Ty::of("string"))
                    }
                    _ => Err(format!(
                        "{path} is not available to patches; use metadata.name, metadata.namespace, metadata.uid, \
                         metadata.labels.<key>, metadata.annotations.<key> or metadata.resourceNames.<resource>"
                    )),
                };
            }
            _ => {}
        }
        let mut node = &self.schema;
        for (n, seg) in segs.iter().enumerate() {
            let here = || FieldPath::from_segments(segs[..n].to_vec()).map(|p| p.to_string());
            if node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
                && node.get("properties").is_none()
            {
                return Ok(Ty::unknown());
            }
            node = match seg {
                Segment::Field(k) => match (
                    node.get("properties").and_then(|p| p.get(k)),
                    node.get("additionalProperties"),
                ) {
                    (Some(child), _) => child,
                    (None, Some(Value::Bool(true))) => return Ok(Ty::unknown()),
                    (None, Some(child @ Value::Object(_))) => child,
                    _ => {
                        let known: Vec<&str> = node
                            .get("properties")
                            .and_then(Value::as_object)
                            .map(|m| m.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        let whose = here().unwrap_or_else(|| "a DatabaseClaim".to_string());
                        let mut msg = format!("{path} does not exist on a DatabaseClaim");
                        if !known.is_empty() {
                            let known = if n == 0 {
                                "apiVersion, kind, metadata, ".to_string() + &known.join(", ")
                            } else {
                                known.join(", ")
                            };
                            msg.push_str(&format!(" ({whose} has: {known})"));
                        }
                        return Err(msg);
                    }
                },
                Segment::Index(_) => {
                    match (node.get("type").and_then(Value::as_str), node.get("items")) {
                        (Some("array"), Some(items)) => items,
                        (Some("array"), None) => return Ok(Ty::unknown()),
                        _ => {
                            return Err(format!(
                                "{path} does not exist on a DatabaseClaim: {} is not an array",
                                here().unwrap_or_default()
                            ));
                        }
                    }
                }
            };
        }
        let json = match node.get("type").and_then(Value::as_str) {
            Some("string") => Some("string"),
            Some("integer") => Some("integer"),
            Some("number") => Some("number"),
            Some("boolean") => Some("boolean"),
            Some("object") => Some("object"),
            Some("array") => Some("array"),
            _ => None,
        };
        let values = node.get("enum").and_then(Value::as_array).cloned();
        Ok(Ty { json, values })
    }
}

fn type_label(t: &Transform) -> &'static str {
    match t.type_ {
        TransformType::Map => "map",
        TransformType::Match => "match",
        TransformType::String => "string",
        TransformType::Math => "math",
        TransformType::Convert => "convert",
    }
}

fn string_type_label(t: StringTransformType) -> &'static str {
    match t {
        StringTransformType::Format => "Format",
        StringTransformType::Convert => "Convert",
        StringTransformType::TrimPrefix => "TrimPrefix",
        StringTransformType::TrimSuffix => "TrimSuffix",
        StringTransformType::Regexp => "Regexp",
        StringTransformType::Join => "Join",
    }
}

#[cfg(test)]
mod tests;
