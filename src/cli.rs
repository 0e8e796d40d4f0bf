//! The `dbclaim` command line: argument shapes and the offline commands.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use kube::ResourceExt;
use serde::Deserialize;

use crate::api::{self, Composition, CompositionRevision, CompositionSpec, DatabaseClaim};
use crate::engine;

pub mod diff;
pub use diff::DiffArgs;

#[derive(Parser, Debug)]
#[command(
    name = "dbclaim",
    version,
    about = "Self-service databases for Kubernetes"
)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controller.
    Run(Box<RunArgs>),
    /// Print every CRD as YAML.
    Crds {
        /// Write one file per CRD into this directory instead of printing.
        #[arg(long)]
        output_dir: Option<PathBuf>,
        #[command(flatten)]
        conversion: ConversionTarget,
        /// Instead of printing: compare today's CRDs with those of an earlier
        /// release in DIR and fail with one line per incompatible change.
        #[arg(long, value_name = "DIR", conflicts_with = "output_dir")]
        check_compat: Option<PathBuf>,
    },
    /// Print the objects a claim composes to, offline.
    Render {
        /// The DatabaseClaim manifest.
        #[arg(short = 'c', long)]
        claim: PathBuf,
        /// The Composition (or CompositionRevision) manifest.
        #[arg(short = 'C', long)]
        composition: PathBuf,
        /// Observed composed objects (multi-document YAML), for readiness,
        /// ToClaimFieldPath patches and connection details.
        #[arg(short = 'o', long)]
        observed: Option<PathBuf>,
    },
    /// Check compositions and composition revisions: paths, transforms, kinds.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also check the composed objects against the CRDs (YAML files of
        /// CustomResourceDefinitions) in this directory; may be repeated.
        #[arg(long = "crds", value_name = "DIR")]
        crds: Vec<PathBuf>,
    },
    /// What a composition change does to the claims it reaches: a unified
    /// diff per composed object and a summary per claim. Exit 0 no change,
    /// 1 changes, 2 bad usage or error, 3 at least one destructive change.
    Diff(DiffArgs),
    /// The DatabaseClaim conversion webhook alone, without the controllers
    /// (`dbclaim run` serves it too).
    #[command(hide = true)]
    Webhook {
        #[arg(long, default_value = "0.0.0.0:9443")]
        webhook_bind_address: SocketAddr,
        #[arg(long, default_value = DEFAULT_WEBHOOK_CERT_DIR)]
        webhook_cert_dir: PathBuf,
    },
    /// A claim and everything it composed, as a tree (your own RBAC).
    Trace {
        /// The claim: dbc/NAME.
        #[arg(value_parser = crate::trace::parse_target)]
        claim: String,
        /// The claim's namespace; default: the kubeconfig context's.
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// Output format: wide (whole messages and details) or json.
        #[arg(short = 'o', long, value_enum)]
        output: Option<crate::trace::Format>,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Watch claims in this namespace only.
    #[arg(long, env = "DBCLAIM_NAMESPACE")]
    pub namespace: Option<String>,
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_bind_address: SocketAddr,
    #[arg(long, default_value = "0.0.0.0:8081")]
    pub health_probe_bind_address: SocketAddr,
    /// Reconcile only while holding the leader lease.
    #[arg(long)]
    pub leader_elect: bool,
    /// Name of the leader election Lease.
    #[arg(long, default_value = "dbclaim-leader")]
    pub leader_election_id: String,
    /// Namespace of the leader election Lease; defaults to the operator namespace.
    #[arg(long)]
    pub leader_election_namespace: Option<String>,
    /// How long a standby waits for a silent leader before taking over.
    #[arg(long, default_value = "15s", value_parser = crate::leader::parse_duration)]
    pub leader_election_lease_duration: std::time::Duration,
    /// How long the leader retries renewing before it exits; below the lease duration.
    #[arg(long, default_value = "10s", value_parser = crate::leader::parse_duration)]
    pub leader_election_renew_deadline: std::time::Duration,
    /// How often the leader renews and standbys poll.
    #[arg(long, default_value = "2s", value_parser = crate::leader::parse_duration)]
    pub leader_election_retry_period: std::time::Duration,
    /// Most reconciles running at once, per controller. A pass mostly waits
    /// on the API server (reads come from caches), so when the API server
    /// slows down, more passes in flight keep throughput up.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// The namespace the operator runs in: provider connection Secrets go
    /// there. Defaults to the service account's namespace, else dbclaim-system.
    #[arg(long, env = "POD_NAMESPACE")]
    pub operator_namespace: Option<String>,
    /// This cluster's identity in the ownership marks on external objects
    /// (RDS tag `dbclaim.io/owner`, PostgreSQL comments): unique per cluster
    /// sharing an AWS account or a PostgreSQL server, and never changed.
    /// Empty: the UID of the kube-system namespace.
    #[arg(long, env = "DBCLAIM_CLUSTER_ID", default_value = "")]
    pub cluster_id: String,
    /// Where the DatabaseClaim conversion webhook listens (HTTPS).
    #[arg(long, default_value = "0.0.0.0:9443")]
    pub webhook_bind_address: SocketAddr,
    /// The webhook's certificate and key: tls.crt and tls.key, re-read when they change.
    #[arg(long, default_value = DEFAULT_WEBHOOK_CERT_DIR)]
    pub webhook_cert_dir: PathBuf,
    /// NAMESPACE/NAME of the Service in front of the webhook: the operator
    /// points the DatabaseClaim CRD's conversion at it, trusting the ca.crt
    /// in --webhook-cert-dir (the chart sets it). Unset: the CRD is left as is.
    #[arg(long, value_parser = crate::webhook::parse_service)]
    pub webhook_service: Option<(String, String)>,
}

/// controller-runtime's default, which cert-manager docs and charts follow.
pub const DEFAULT_WEBHOOK_CERT_DIR: &str = "/tmp/k8s-webhook-server/serving-certs";

/// A failure of an offline command, reported with exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a valid {what}: {message}")]
    Parse {
        path: String,
        what: &'static str,
        message: String,
    },
    #[error("{0}")]
    Render(String),
    #[error("{0} problem(s) found")]
    Invalid(usize),
    #[error(
        "{0} incompatible change(s): manifests or stored objects of the earlier release would break"
    )]
    Incompatible(usize),
}

pub(crate) fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Every YAML document in `text`, skipping empty ones.
pub fn yaml_documents(text: &str) -> Result<Vec<serde_json::Value>, String> {
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(doc).map_err(|e| e.to_string())?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn parse_one<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &'static str,
) -> Result<T, CliError> {
    let docs = yaml_documents(&read(path)?).map_err(|message| CliError::Parse {
        path: path.display().to_string(),
        what,
        message,
    })?;
    let [doc] = docs.as_slice() else {
        return Err(CliError::Parse {
            path: path.display().to_string(),
            what,
            message: format!("expected one document, found {}", docs.len()),
        });
    };
    serde_json::from_value(doc.clone()).map_err(|e| CliError::Parse {
        path: path.display().to_string(),
        what,
        message: e.to_string(),
    })
}

/// Where the API server reaches the conversion webhook when it is not the
/// chart's Service (`dbclaim crds --conversion-url`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConversionTarget {
    /// The webhook's URL, e.g. https://127.0.0.1:9443/convert.
    #[arg(long, hide = true, requires = "conversion_ca_file")]
    pub conversion_url: Option<String>,
    /// PEM CA bundle the API server trusts the webhook's certificate by.
    #[arg(long, hide = true, requires = "conversion_url")]
    pub conversion_ca_file: Option<PathBuf>,
}

pub fn print_crds(output_dir: Option<&Path>, target: &ConversionTarget) -> Result<(), CliError> {
    let ca = match &target.conversion_ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|source| CliError::Read {
            path: path.display().to_string(),
            source,
        })?),
        None => None,
    };
    for crd in api::crds() {
        let crd = match (&target.conversion_url, &ca) {
            (Some(url), Some(ca)) if crd.spec.conversion.is_some() => {
                api::with_conversion_url(crd, url, ca)
            }
            _ => crd,
        };
        let yaml = serde_yaml::to_string(&crd).map_err(|e| CliError::Render(e.to_string()))?;
        match output_dir {
            Some(dir) => {
                let path = dir.join(format!("{}.yaml", crd.name_any()));
                std::fs::write(&path, yaml).map_err(|source| CliError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
            }
            None => print!("---\n{yaml}"),
        }
    }
    Ok(())
}

/// A claim manifest of either version (a v1beta1 one is converted), in the
/// namespace `default` when it names none.
pub fn parse_claim(path: &Path) -> Result<DatabaseClaim, CliError> {
    let mut doc: serde_json::Value = parse_one(path, "DatabaseClaim")?;
    if doc.get("apiVersion").and_then(|v| v.as_str()) == Some(crate::conversion::V1BETA1) {
        doc = crate::conversion::convert(&doc, crate::conversion::V1ALPHA1).map_err(|e| {
            CliError::Parse {
                path: path.display().to_string(),
                what: "DatabaseClaim",
                message: e.to_string(),
            }
        })?;
    }
    let mut claim: DatabaseClaim = serde_json::from_value(doc).map_err(|e| CliError::Parse {
        path: path.display().to_string(),
        what: "DatabaseClaim",
        message: e.to_string(),
    })?;
    if claim.metadata.namespace.is_none() {
        claim.metadata.namespace = Some("default".into());
    }
    Ok(claim)
}

/// A Composition manifest, or a CompositionRevision one (its composition's
/// name and the spec it holds): (composition name, spec).
pub fn parse_composition(path: &Path) -> Result<(String, CompositionSpec), CliError> {
    let docs = yaml_documents(&read(path)?).map_err(|message| CliError::Parse {
        path: path.display().to_string(),
        what: "Composition",
        message,
    })?;
    let kind = docs
        .first()
        .and_then(|d| d.get("kind"))
        .and_then(|k| k.as_str());
    if kind == Some("CompositionRevision") {
        let revision: CompositionRevision = parse_one(path, "CompositionRevision")?;
        let name = revision
            .composition_name()
            .map(str::to_string)
            .unwrap_or_else(|| revision.name_any());
        return Ok((name, revision.spec.composition));
    }
    let composition: Composition = parse_one(path, "Composition")?;
    Ok((composition.name_any(), composition.spec))
}

pub fn render(
    claim: &Path,
    composition: &Path,
    observed: Option<&Path>,
) -> Result<String, CliError> {
    let as_v1beta1 = parse_one::<serde_json::Value>(claim, "DatabaseClaim")?
        .get("apiVersion")
        .and_then(|v| v.as_str())
        == Some(crate::conversion::V1BETA1);
    let mut claim = parse_claim(claim)?;
    let (name, spec) = parse_composition(composition)?;
    let composition = Composition::new(&name, spec);
    let observed = match observed {
        Some(path) => observed_by_resource(&claim, &composition, path)?,
        None => BTreeMap::new(),
    };
    let name = composition.name_any();
    let req = engine::RenderRequest {
        claim: &claim,
        composition_name: &name,
        composition: &composition.spec,
        observed: &observed,
        scope: &engine::builtin_scope,
        generator: engine::Generator::Placeholder,
    };
    let rendered = engine::render(&req).map_err(|e| CliError::Render(e.to_string()))?;
    // As `crossplane render` does: the claim first, with the status the
    // controller would write, then the composed objects.
    let mut status = claim.status.clone().unwrap_or_default();
    status.composition = Some(api::NameRef { name: name.clone() });
    status.outputs = rendered.outputs.clone();
    status.resources = rendered
        .resources
        .iter()
        .map(|r| api::claim::ResourceStatus {
            name: r.name.clone(),
            api_version: r
                .object
                .get("apiVersion")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
            kind: r
                .object
                .get("kind")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
            resource_name: r
                .object
                .pointer("/metadata/name")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
            ready: r.readiness.ready,
        })
        .collect();
    claim.status = Some(status);
    // The claim in the version it was given in.
    let claim_yaml = if as_v1beta1 {
        let doc = serde_json::to_value(&claim).map_err(|e| CliError::Render(e.to_string()))?;
        let doc = crate::conversion::convert(&doc, crate::conversion::V1BETA1)
            .map_err(|e| CliError::Render(e.to_string()))?;
        let typed: api::v1beta1::DatabaseClaim =
            serde_json::from_value(doc).map_err(|e| CliError::Render(e.to_string()))?;
        serde_yaml::to_string(&typed)
    } else {
        serde_yaml::to_string(&claim)
    }
    .map_err(|e| CliError::Render(e.to_string()))?;
    let mut out = format!("---\n{claim_yaml}");
    for r in &rendered.resources {
        out.push_str("---\n");
        out.push_str(
            &serde_yaml::to_string(&r.object).map_err(|e| CliError::Render(e.to_string()))?,
        );
    }
    Ok(out)
}

/// Observed objects matched to the composition's resources by the name the
/// claim gives them, or by their `dbclaim.io/resource` label.
fn observed_by_resource(
    claim: &DatabaseClaim,
    composition: &Composition,
    path: &Path,
) -> Result<BTreeMap<String, engine::Observed>, CliError> {
    let docs = yaml_documents(&read(path)?).map_err(|message| CliError::Parse {
        path: path.display().to_string(),
        what: "YAML stream",
        message,
    })?;
    let ns = claim.namespace().unwrap_or_default();
    let mut out = BTreeMap::new();
    for t in &composition.spec.resources {
        let name = crate::naming::object_name(
            &ns,
            &claim.name_any(),
            &t.name,
            claim.recorded_resource_name(&t.name),
        );
        let found = docs.iter().find(|d| {
            d.pointer("/metadata/name").and_then(|v| v.as_str()) == Some(name.as_str())
                || d.pointer("/metadata/labels/dbclaim.io~1resource")
                    .and_then(|v| v.as_str())
                    == Some(t.name.as_str())
        });
        if let Some(obj) = found {
            out.insert(
                t.name.clone(),
                engine::Observed {
                    object: Some(obj.clone()),
                    connection: BTreeMap::new(),
                },
            );
        }
    }
    Ok(out)
}

/// The `.yaml`, `.yml` and `.json` files of `dir` (not recursing), sorted.
fn crd_files(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let entries = std::fs::read_dir(dir).map_err(|source| CliError::Read {
        path: dir.display().to_string(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// `dbclaim crds --check-compat DIR`: one line per way today's CRDs break
/// those in `dir` (an earlier release's).
pub fn check_compat(dir: &Path) -> Result<Vec<String>, CliError> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let mut old = Vec::new();
    for f in crd_files(dir)? {
        let parse = |message: String| CliError::Parse {
            path: f.display().to_string(),
            what: "CustomResourceDefinition",
            message,
        };
        for doc in yaml_documents(&read(&f)?).map_err(parse)? {
            if doc.get("kind").and_then(|k| k.as_str()) == Some("CustomResourceDefinition") {
                let crd: CustomResourceDefinition =
                    serde_json::from_value(doc).map_err(|e| parse(e.to_string()))?;
                old.push(crd);
            }
        }
    }
    if old.is_empty() {
        return Err(CliError::Parse {
            path: dir.display().to_string(),
            what: "CRD directory",
            message: "no CustomResourceDefinition found".into(),
        });
    }
    Ok(crate::compat::breaks(&old, &api::crds()))
}

/// Reads the CustomResourceDefinitions of every `.yaml`, `.yml` and
/// `.json` file in `dirs` (not recursing).
pub fn load_crds(dirs: &[PathBuf]) -> Result<crate::crdcheck::Schemas, CliError> {
    let mut schemas = crate::crdcheck::Schemas::default();
    for dir in dirs {
        let shown = dir.display().to_string();
        let mut added = 0;
        for f in crd_files(dir)? {
            let docs = yaml_documents(&read(&f)?).map_err(|message| CliError::Parse {
                path: f.display().to_string(),
                what: "YAML stream",
                message,
            })?;
            added += schemas.add_documents(&docs);
        }
        if added == 0 {
            return Err(CliError::Parse {
                path: shown,
                what: "CRD directory",
                message: "no CustomResourceDefinition found".into(),
            });
        }
    }
    Ok(schemas)
}

/// Checks every Composition in `files`, against the CRDs in `crds` too when
/// any are given; returns the lines to print.
pub fn validate(files: &[PathBuf], crds: &[PathBuf]) -> (Vec<String>, usize) {
    let mut lines = Vec::new();
    let mut problems = 0;
    let schemas = match load_crds(crds) {
        Ok(s) => s,
        Err(e) => return (vec![e.to_string()], 1),
    };
    for path in files {
        let file = path.display().to_string();
        let docs = match read(path).and_then(|t| {
            yaml_documents(&t).map_err(|message| CliError::Parse {
                path: file.clone(),
                what: "YAML stream",
                message,
            })
        }) {
            Ok(d) => d,
            Err(e) => {
                lines.push(e.to_string());
                problems += 1;
                continue;
            }
        };
        for doc in docs {
            let kind = doc.get("kind").and_then(|k| k.as_str());
            let name = doc
                .pointer("/metadata/name")
                .and_then(|v| v.as_str())
                .unwrap_or("<unnamed>")
                .to_string();
            if kind == Some("CompositionRevision") {
                let found = validate_revision(doc);
                problems += found.len();
                lines.extend(
                    found
                        .iter()
                        .map(|p| format!("{file}: composition revision {name:?}: {p}")),
                );
                continue;
            }
            if kind != Some("Composition") {
                continue;
            }
            match serde_json::from_value::<Composition>(doc) {
                Err(e) => {
                    lines.push(format!(
                        "{file}: composition {name:?}: not a valid Composition: {e}"
                    ));
                    problems += 1;
                }
                Ok(c) => {
                    let found = engine::validate(&c.spec);
                    problems += found.len();
                    lines.extend(
                        found
                            .iter()
                            .map(|p| format!("{file}: composition {name:?}: {p}")),
                    );
                    if !schemas.is_empty() {
                        let found = crate::crdcheck::check(&c.spec, &schemas);
                        problems += found.len();
                        lines.extend(
                            found
                                .iter()
                                .map(|p| format!("{file}: composition {name:?}: {p}")),
                        );
                    }
                }
            }
        }
    }
    (lines, problems)
}

/// The problems of a CompositionRevision manifest: its shape, its spec (as
/// a composition's), its label, and a name that no longer matches its spec
/// (revisions are immutable: an edited one is a different spec).
fn validate_revision(doc: serde_json::Value) -> Vec<String> {
    let revision = match serde_json::from_value::<CompositionRevision>(doc) {
        Ok(r) => r,
        Err(e) => return vec![format!("not a valid CompositionRevision: {e}")],
    };
    let mut found: Vec<String> = engine::validate(&revision.spec.composition)
        .iter()
        .map(|p| p.to_string())
        .collect();
    if revision.spec.revision < 1 {
        found.push(format!(
            "spec.revision is {}: revisions are numbered from 1",
            revision.spec.revision
        ));
    }
    match revision.composition_name() {
        None => found.push(format!(
            "no label {}: the revision belongs to no composition",
            crate::contract::LABEL_COMPOSITION_NAME
        )),
        Some(composition) => {
            let expected = crate::revision::name(composition, &revision.spec.composition);
            if revision.name_any() != expected {
                found.push(format!(
                    "its name does not match its spec (a revision of this spec is named {expected}): revisions are immutable, edit the Composition instead"
                ));
            }
        }
    }
    found
}
