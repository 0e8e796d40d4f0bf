//! `dbclaim diff`: gathers what a composition change would reach (the
//! cluster's claims and their composed objects, or files) and prints what
//! `crate::preview` decides. Reads only; never writes to the cluster.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use kube::api::{Api, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, ApiResource, Scope as KubeScope};
use kube::{Client, ResourceExt};
use serde_json::Value;

use super::{CliError, parse_claim, parse_composition, read, yaml_documents};
use crate::api::claim::UpdatePolicy;
use crate::api::{CompositionRevision, CompositionSpec, DatabaseClaim};
use crate::engine::{self, Scope};
use crate::preview::{self, ClaimPreview};

#[derive(clap::Args, Debug, Clone)]
pub struct DiffArgs {
    /// The new Composition (or CompositionRevision) manifest.
    #[arg(short = 'C', long)]
    pub composition: PathBuf,
    /// Offline: this DatabaseClaim manifest instead of the cluster's claims.
    #[arg(short = 'c', long)]
    pub claim: Option<PathBuf>,
    /// Offline: the claim's composed objects as they run now (multi-document
    /// YAML). `-o json` (or `-o text`) picks the output format instead.
    #[arg(short = 'o', long = "observed", value_name = "OBSERVED|json|text")]
    pub observed: Option<String>,
    /// Output format.
    #[arg(long, value_enum)]
    pub output: Option<Format>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error(transparent)]
    File(#[from] CliError),
    #[error("-o {0}: an observed file needs -c CLAIM (offline mode)")]
    ObservedWithoutClaim(String),
    #[error("cannot reach the cluster (KUBECONFIG, ~/.kube/config): {0}")]
    Connect(#[source] kube::Error),
    #[error("cannot {what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
}

/// Runs the command; the exit code (0/1/2/3) of its findings.
pub fn run(args: &DiffArgs) -> Result<u8, DiffError> {
    let (observed, format) = match args.observed.as_deref() {
        Some("json") => (None, Some(Format::Json)),
        Some("text") => (None, Some(Format::Text)),
        Some(path) => (Some(PathBuf::from(path)), args.output),
        None => (None, args.output),
    };
    let format = format.unwrap_or(Format::Text);
    let (name, spec) = parse_composition(&args.composition)?;
    let previews = match &args.claim {
        Some(claim) => vec![offline(claim, &name, &spec, observed.as_deref())?],
        None => {
            if let Some(p) = observed {
                return Err(DiffError::ObservedWithoutClaim(p.display().to_string()));
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    DiffError::File(CliError::Read {
                        path: "tokio runtime".into(),
                        source: e,
                    })
                })?;
            runtime.block_on(live(&name, &spec))?
        }
    };
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&preview::json(&previews)).unwrap_or_default()
        ),
        Format::Text => {
            let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            print!("{}", preview::text(&previews, colour));
        }
    }
    Ok(preview::exit_code(&previews))
}

/// Manual and pinned claims: the change does not reach them.
fn pinned(claim: &DatabaseClaim) -> Option<String> {
    let on = claim
        .status
        .as_ref()
        .and_then(|s| s.composition_revision.as_ref())
        .map(|r| format!("{} (revision {})", r.name, r.revision))
        .unwrap_or_else(|| "its first revision".into());
    if let Some(r) = &claim.spec.composition_revision_ref {
        return Some(format!("pinned to {}", r.name));
    }
    match claim.spec.composition_update_policy {
        UpdatePolicy::Manual => Some(format!("Manual, pinned to {on}")),
        UpdatePolicy::Automatic => None,
    }
}

fn claim_label(claim: &DatabaseClaim) -> String {
    format!(
        "{}/{}",
        claim.namespace().unwrap_or_default(),
        claim.name_any()
    )
}

/// The render of `spec` for the claim, by composition resource name.
fn render(
    claim: &DatabaseClaim,
    name: &str,
    spec: &CompositionSpec,
    observed: &BTreeMap<String, engine::Observed>,
    scope: &dyn Fn(&str, &str) -> Scope,
) -> Result<BTreeMap<String, Value>, String> {
    let request = engine::RenderRequest {
        claim,
        composition_name: name,
        composition: spec,
        observed,
        scope,
    };
    let rendered = engine::render(&request).map_err(|e| e.to_string())?;
    Ok(rendered
        .resources
        .into_iter()
        .map(|r| (r.name, r.object))
        .collect())
}

/// What identifies a live object, for one no render has any more.
fn skeleton(live: &Value) -> Value {
    serde_json::json!({
        "apiVersion": live.get("apiVersion"),
        "kind": live.get("kind"),
        "metadata": {"name": live.pointer("/metadata/name"), "namespace": live.pointer("/metadata/namespace")},
        "spec": live.get("spec"),
    })
}

/// Live objects cut to what the renders set (old and new), so fields the
/// API server and providers add are no noise.
fn now_of(
    live: &BTreeMap<String, Value>,
    old: &BTreeMap<String, Value>,
    new: &BTreeMap<String, Value>,
) -> BTreeMap<String, Value> {
    live.iter()
        .map(|(resource, object)| {
            let template = match (old.get(resource), new.get(resource)) {
                (None, None) => skeleton(object),
                (a, b) => preview::union(a.unwrap_or(&Value::Null), b.unwrap_or(&Value::Null)),
            };
            let mut now = preview::project(object, &template);
            if let Some(o) = now.as_object_mut() {
                o.retain(|_, v| !v.is_null());
            }
            (resource.clone(), now)
        })
        .collect()
}

fn observed_of(live: &BTreeMap<String, Value>) -> BTreeMap<String, engine::Observed> {
    live.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                engine::Observed {
                    object: Some(v.clone()),
                    connection: BTreeMap::new(),
                },
            )
        })
        .collect()
}

fn offline(
    claim: &Path,
    name: &str,
    spec: &CompositionSpec,
    observed: Option<&Path>,
) -> Result<ClaimPreview, DiffError> {
    let claim = parse_claim(claim)?;
    let mut preview = ClaimPreview::new(claim_label(&claim));
    if let Some(why) = pinned(&claim) {
        preview.pinned = Some(why);
        return Ok(preview);
    }
    let docs = match observed {
        Some(path) => yaml_documents(&read(path)?).map_err(|message| CliError::Parse {
            path: path.display().to_string(),
            what: "YAML stream",
            message,
        })?,
        None => Vec::new(),
    };
    let live = match_observed(&claim, spec, &docs);
    let new = match render(
        &claim,
        name,
        spec,
        &observed_of(&live),
        &engine::builtin_scope,
    ) {
        Ok(n) => n,
        Err(e) => {
            preview.error = Some(e);
            return Ok(preview);
        }
    };
    preview.objects = preview::compare(&now_of(&live, &BTreeMap::new(), &new), &new);
    Ok(preview)
}

/// Observed documents by the composition resource they belong to: their
/// `dbclaim.io/resource` label, the name the claim's status records, or
/// the name the claim gives the resource.
fn match_observed(
    claim: &DatabaseClaim,
    spec: &CompositionSpec,
    docs: &[Value],
) -> BTreeMap<String, Value> {
    let ns = claim.namespace().unwrap_or_default();
    let mut names: BTreeMap<String, String> = claim
        .status
        .iter()
        .flat_map(|s| &s.resources)
        .map(|r| (r.resource_name.clone(), r.name.clone()))
        .collect();
    for t in &spec.resources {
        let n = crate::naming::object_name(
            &ns,
            &claim.name_any(),
            &t.name,
            claim.recorded_resource_name(&t.name),
        );
        names.entry(n).or_insert_with(|| t.name.clone());
    }
    let mut out = BTreeMap::new();
    for doc in docs {
        let label = doc
            .pointer("/metadata/labels/dbclaim.io~1resource")
            .and_then(Value::as_str);
        let name = doc.pointer("/metadata/name").and_then(Value::as_str);
        let resource = label
            .map(str::to_string)
            .or_else(|| name.and_then(|n| names.get(n).cloned()));
        if let Some(r) = resource {
            out.insert(r, doc.clone());
        }
    }
    out
}

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> DiffError {
    let what = what.into();
    move |source| DiffError::Kube { what, source }
}

/// Every claim whose recorded composition is `name`, from the cluster.
async fn live(name: &str, spec: &CompositionSpec) -> Result<Vec<ClaimPreview>, DiffError> {
    let client = Client::try_default().await.map_err(DiffError::Connect)?;
    let claims: Api<DatabaseClaim> = Api::all(client.clone());
    let mut list: Vec<DatabaseClaim> = claims
        .list(&ListParams::default())
        .await
        .map_err(kube_err("list DatabaseClaims"))?
        .items
        .into_iter()
        .filter(|c| {
            c.status
                .as_ref()
                .and_then(|s| s.composition.as_ref())
                .is_some_and(|r| r.name == name)
        })
        .collect();
    list.sort_by_key(claim_label);
    let revisions: Api<CompositionRevision> = Api::all(client.clone());
    let compositions: Api<crate::api::Composition> = Api::all(client.clone());
    let mut kinds: BTreeMap<(String, String), (ApiResource, KubeScope)> = BTreeMap::new();
    let mut out = Vec::new();
    for claim in list {
        let mut preview = ClaimPreview::new(claim_label(&claim));
        let status = claim.status.clone().unwrap_or_default();
        preview.revision = status
            .composition_revision
            .as_ref()
            .map(|r| format!("{} (revision {})", r.name, r.revision));
        if let Some(why) = pinned(&claim) {
            preview.pinned = Some(why);
            out.push(preview);
            continue;
        }
        // What the claim renders now: its revision, else the live composition.
        let old_spec = match &status.composition_revision {
            Some(r) => revisions
                .get_opt(&r.name)
                .await
                .map_err(kube_err(format!("read CompositionRevision {}", r.name)))?
                .map(|r| r.spec.composition),
            None => compositions
                .get_opt(name)
                .await
                .map_err(kube_err(format!("read Composition {name}")))?
                .map(|c| c.spec),
        };
        let ns = claim.namespace().unwrap_or_default();
        let mut live = BTreeMap::new();
        for r in &status.resources {
            let key = (r.api_version.clone(), r.kind.clone());
            if !kinds.contains_key(&key) {
                let (group, version) = match r.api_version.rsplit_once('/') {
                    Some((g, v)) => (g.to_string(), v.to_string()),
                    None => (String::new(), r.api_version.clone()),
                };
                let gvk = GroupVersionKind::gvk(&group, &version, &r.kind);
                match discovery::pinned_kind(&client, &gvk).await {
                    Ok((ar, caps)) => {
                        kinds.insert(key.clone(), (ar, caps.scope));
                    }
                    Err(e) => {
                        preview.error = Some(format!("kind {} ({}): {e}", r.kind, r.api_version));
                        continue;
                    }
                }
            }
            let Some((ar, scope)) = kinds.get(&key) else {
                continue;
            };
            let api: Api<DynamicObject> = match scope {
                KubeScope::Namespaced => Api::namespaced_with(client.clone(), &ns, ar),
                KubeScope::Cluster => Api::all_with(client.clone(), ar),
            };
            let found = api
                .get_opt(&r.resource_name)
                .await
                .map_err(kube_err(format!("read {} {}", r.kind, r.resource_name)))?;
            if let Some(o) = found {
                live.insert(
                    r.name.clone(),
                    serde_json::to_value(&o).unwrap_or(Value::Null),
                );
            }
        }
        if preview.error.is_some() {
            out.push(preview);
            continue;
        }
        let scopes: BTreeMap<(String, String), Scope> = kinds
            .iter()
            .map(|(k, (_, s))| {
                let s = match s {
                    KubeScope::Namespaced => Scope::Namespaced,
                    KubeScope::Cluster => Scope::Cluster,
                };
                (k.clone(), s)
            })
            .collect();
        let scope = |api_version: &str, kind: &str| {
            scopes
                .get(&(api_version.to_string(), kind.to_string()))
                .copied()
                .unwrap_or_else(|| engine::builtin_scope(api_version, kind))
        };
        let observed = observed_of(&live);
        let new = match render(&claim, name, spec, &observed, &scope) {
            Ok(n) => n,
            Err(e) => {
                preview.error = Some(e);
                out.push(preview);
                continue;
            }
        };
        let old = old_spec
            .and_then(|s| render(&claim, name, &s, &observed, &scope).ok())
            .unwrap_or_default();
        preview.objects = preview::compare(&now_of(&live, &old, &new), &new);
        out.push(preview);
    }
    Ok(out)
}
