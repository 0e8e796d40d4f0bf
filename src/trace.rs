//! `dbclaim trace dbc/NAME -n NS`: a claim and everything it composed, as a
//! tree, read with the user's own credentials. The tree is built from what
//! the API server returns ([`collect`], the edge) and printed by pure code
//! ([`Node::render`], [`first_broken`]); what the user may not read shows
//! as forbidden, not as an error.

use std::io::IsTerminal;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use kube::{Client, ResourceExt};
use serde::Serialize;
use serde_json::Value;

use crate::engine::connection::REQUIRED_KEYS as CONNECTION_SECRET_KEYS;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the cluster: {0}")]
    Client(#[source] kube::Error),
    #[error("DatabaseClaim {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    #[error("cannot read DatabaseClaim {namespace}/{name}: {source}")]
    Claim {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot encode the tree: {0}")]
    Json(#[from] serde_json::Error),
}

/// Output formats of `dbclaim trace`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Wide,
    Json,
}

/// The claim a user names: `dbc/NAME`, `databaseclaim/NAME`,
/// `databaseclaims.dbclaim.io/NAME` or a bare `NAME`.
pub fn parse_target(s: &str) -> Result<String, String> {
    let name = match s.split_once('/') {
        None => s,
        Some((kind, name)) => {
            let kind = kind.to_ascii_lowercase();
            let kind = kind.strip_suffix(".dbclaim.io").unwrap_or(&kind);
            if !["dbc", "databaseclaim", "databaseclaims"].contains(&kind) {
                return Err(format!(
                    "{s}: dbclaim trace follows DatabaseClaims: dbc/NAME"
                ));
            }
            name
        }
    };
    if name.is_empty() || name.contains('/') {
        return Err(format!("{s}: expected dbc/NAME"));
    }
    Ok(name.to_string())
}

/// Whether the user could read a node's object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Access {
    #[default]
    Read,
    /// The user's RBAC does not allow reading it.
    Forbidden,
    /// It does not exist (yet, or any more).
    NotFound,
    /// The API server answered something else.
    Error,
}

/// A condition as trace shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Cond {
    pub status: String,
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// One object of the tree.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub access: Access,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<Cond>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synced: Option<Cond>,
    /// What the node says in words (external state, Secret keys, a problem).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// Details for `-o wide` (the composition's resource name, endpoint, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<(String, String)>,
    /// Whether this node is broken: a condition False, missing, or a
    /// Secret without a key a connection needs.
    pub broken: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Node>,
}

impl Node {
    fn new(kind: &str, name: &str) -> Self {
        Node {
            kind: kind.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    /// The nodes in print order (depth first).
    fn walk<'a>(&'a self, out: &mut Vec<&'a Node>) {
        out.push(self);
        for c in &self.children {
            c.walk(out);
        }
    }

    /// The tree as text: one line per node, `NAME SYNCED READY STATUS`, the
    /// first broken node marked (and red on a terminal). `wide` shows whole
    /// messages and the details.
    pub fn render(&self, wide: bool, color: bool) -> String {
        let mut rows: Vec<[String; 4]> = Vec::new();
        let first = first_broken(self).map(|n| n as *const Node);
        let mut marks = Vec::new();
        self.rows("", "", wide, &mut rows);
        let mut all = Vec::new();
        self.walk(&mut all);
        for n in &all {
            marks.push(first == Some(*n as *const Node));
        }
        let headers = ["NAME", "SYNCED", "READY", "STATUS"].map(String::from);
        let widths: Vec<usize> = (0..3)
            .map(|i| {
                rows.iter()
                    .chain(std::iter::once(&headers))
                    .map(|r| r[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let line = |r: &[String; 4]| {
            let mut l = String::new();
            for (i, w) in widths.iter().enumerate() {
                l.push_str(&r[i]);
                l.push_str(&" ".repeat(w - r[i].chars().count() + 2));
            }
            l.push_str(&r[3]);
            l.trim_end().to_string()
        };
        out.push_str(&line(&headers));
        out.push('\n');
        for (r, first) in rows.iter().zip(marks) {
            let mut l = line(r);
            if first {
                l.push_str("  <- first problem");
                if color {
                    l = format!("\x1b[1;31m{l}\x1b[0m");
                }
            }
            out.push_str(&l);
            out.push('\n');
        }
        out
    }

    fn rows(&self, prefix: &str, child_prefix: &str, wide: bool, out: &mut Vec<[String; 4]>) {
        let mut name = format!("{prefix}{}/{}", self.kind, self.name);
        if let Some(ns) = &self.namespace {
            name.push_str(&format!(" ({ns})"));
        }
        let cell = |c: &Option<Cond>| c.as_ref().map_or("-".to_string(), |c| c.status.clone());
        let mut status = self.status_text(wide);
        if wide && !self.details.is_empty() {
            let details: Vec<String> = self
                .details
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            status = match status.is_empty() {
                true => details.join(" "),
                false => format!("{status} [{}]", details.join(" ")),
            };
        }
        out.push([name, cell(&self.synced), cell(&self.ready), status]);
        let n = self.children.len();
        for (i, c) in self.children.iter().enumerate() {
            let last = i + 1 == n;
            let (branch, cont) = if last {
                ("└─ ", "   ")
            } else {
                ("├─ ", "│  ")
            };
            c.rows(
                &format!("{child_prefix}{branch}"),
                &format!("{child_prefix}{cont}"),
                wide,
                out,
            );
        }
    }

    /// STATUS: access problems, else the failing condition's reason and
    /// message, else Ready's reason, then the node's own words.
    fn status_text(&self, wide: bool) -> String {
        let mut parts = Vec::new();
        match self.access {
            Access::Forbidden => parts.push("forbidden: you cannot read this object".to_string()),
            Access::NotFound => parts.push("not found".to_string()),
            Access::Error | Access::Read => {}
        }
        let failing = [&self.synced, &self.ready]
            .into_iter()
            .flatten()
            .find(|c| c.status != "True");
        let cond = failing.or(self.ready.as_ref());
        if let Some(c) = cond {
            let text = match c.message.is_empty() || c.status == "True" {
                true => c.reason.clone(),
                false => format!("{}: {}", c.reason, c.message),
            };
            parts.push(text);
        }
        if !self.status.is_empty() {
            parts.push(self.status.clone());
        }
        let text = parts.join("; ");
        match wide {
            true => text,
            false => truncate(&text, 96),
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.chars().count() > max {
        true => format!("{}...", s.chars().take(max - 3).collect::<String>()),
        false => s.to_string(),
    }
}

/// Where to look, depth first: the first node that cannot reconcile
/// (Synced=False) with none below it that cannot either (a claim that
/// reports its Database's provider error points at the Database), else the
/// first broken node with nothing broken below it.
pub fn first_broken(root: &Node) -> Option<&Node> {
    let mut all = Vec::new();
    root.walk(&mut all);
    all.iter()
        .find(|n| refused(n) && !below(n, &refused))
        .or_else(|| all.iter().find(|n| n.broken && !below(n, &|c| c.broken)))
        .copied()
}

fn refused(n: &Node) -> bool {
    n.synced.as_ref().is_some_and(|c| c.status == "False")
}

/// Whether a node under `n` matches `test`.
fn below(n: &Node, test: &dyn Fn(&Node) -> bool) -> bool {
    n.children.iter().any(|c| test(c) || below(c, test))
}

fn cond_of(obj: &Value, type_: &str) -> Option<Cond> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        .map(|c| {
            let s = |k: &str| {
                c.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            Cond {
                status: s("status"),
                reason: s("reason"),
                message: s("message"),
            }
        })
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// A node for an object read as JSON: its conditions, broken when one of
/// them is False.
fn object_node(kind: &str, name: &str, namespace: Option<&str>, obj: &Value) -> Node {
    let mut n = Node::new(kind, name);
    n.namespace = namespace.map(str::to_string);
    n.api_version = str_at(obj, "/apiVersion").map(str::to_string);
    n.ready = cond_of(obj, "Ready");
    n.synced = cond_of(obj, "Synced");
    n.broken = [&n.ready, &n.synced]
        .into_iter()
        .flatten()
        .any(|c| c.status == "False");
    n
}

/// The claim's node from its JSON, with its composition node (revision in
/// its status), before the composed objects are read.
pub fn claim_node(claim: &Value) -> Node {
    let name = str_at(claim, "/metadata/name").unwrap_or_default();
    let ns = str_at(claim, "/metadata/namespace");
    let mut n = object_node("DatabaseClaim", name, ns, claim);
    if let Some(drills) = claim.pointer("/status/drills").and_then(Value::as_array)
        && let Some(last) = drills.first()
    {
        let s = |k: &str| {
            last.get(k)
                .and_then(Value::as_str)
                .unwrap_or("-")
                .to_string()
        };
        n.details.push((
            "lastDrill".into(),
            format!("{}/{}:{}", s("type"), s("id"), s("result")),
        ));
    }
    n
}

/// Words for a managed resource's external state, from its `atProvider`.
pub fn external_state(obj: &Value) -> Option<Node> {
    let at = obj.pointer("/status/atProvider")?.as_object()?;
    let s = |k: &str| at.get(k).and_then(Value::as_str);
    let mut n = if let Some(id) = s("dbInstanceIdentifier") {
        let mut n = Node::new("RDS", id);
        n.status = format!(
            "DB instance {}",
            s("dbInstanceStatus").unwrap_or("status unknown")
        );
        if let Some(addr) = at
            .get("endpoint")
            .and_then(|e| e.get("address"))
            .and_then(Value::as_str)
        {
            n.details.push(("endpoint".into(), addr.to_string()));
        }
        if let Some(v) = s("engineVersion") {
            n.details.push(("engineVersion".into(), v.to_string()));
        }
        n
    } else if let Some(db) = s("databaseName") {
        let mut n = Node::new("PostgreSQL", db);
        n.status = match s("roleName") {
            Some(role) => format!("database {db}, owner role {role}"),
            None => format!("database {db}"),
        };
        n
    } else {
        let mut n = Node::new("External", "-");
        n.status = at
            .iter()
            .filter_map(|(k, v)| Some(format!("{k}={}", scalar(v)?)))
            .collect::<Vec<_>>()
            .join(" ");
        n
    };
    n.access = Access::Read;
    Some(n)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The connection Secret's node: keys only, never values; broken when a
/// key a connection needs is missing.
pub fn secret_node(name: &str, namespace: &str, secret: Option<&Secret>) -> Node {
    let mut n = Node::new("Secret", name);
    n.namespace = Some(namespace.to_string());
    let Some(secret) = secret else {
        n.access = Access::NotFound;
        n.broken = true;
        return n;
    };
    let keys: Vec<&str> = secret
        .data
        .iter()
        .flat_map(|d| d.keys())
        .map(String::as_str)
        .collect();
    let missing: Vec<&str> = CONNECTION_SECRET_KEYS
        .iter()
        .copied()
        .filter(|k| !keys.contains(k))
        .collect();
    n.status = format!("keys: {}", keys.join(", "));
    if !missing.is_empty() {
        n.broken = true;
        n.status
            .push_str(&format!("; missing: {}", missing.join(", ")));
    }
    n
}

fn access_of(e: &kube::Error) -> Access {
    match e {
        kube::Error::Api(s) if s.code == 403 || s.code == 401 => Access::Forbidden,
        kube::Error::Api(s) if s.code == 404 => Access::NotFound,
        _ => Access::Error,
    }
}

/// A node for an object that could not be read.
fn unread(kind: &str, name: &str, namespace: Option<&str>, e: &kube::Error) -> Node {
    let mut n = Node::new(kind, name);
    n.namespace = namespace.map(str::to_string);
    n.access = access_of(e);
    if n.access == Access::Error {
        n.status = e.to_string();
    }
    // Missing is broken; forbidden is only unknown.
    n.broken = n.access == Access::NotFound;
    n
}

/// Reads the claim and what it composed with `client`, as far as the
/// user's RBAC allows.
pub async fn collect(client: &Client, namespace: &str, name: &str) -> Result<Node, Error> {
    let claims_ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("dbclaim.io", "v1alpha1", "DatabaseClaim"),
        "databaseclaims",
    );
    let claims: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &claims_ar);
    let claim = match claims.get_opt(name).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(Error::NotFound {
                namespace: namespace.into(),
                name: name.into(),
            });
        }
        Err(source) => {
            return Err(Error::Claim {
                namespace: namespace.into(),
                name: name.into(),
                source,
            });
        }
    };
    let claim = serde_json::to_value(&claim)?;
    let mut root = claim_node(&claim);

    // The composition (cluster-scoped: a tenant may not read it).
    if let Some(comp) = str_at(&claim, "/status/composition/name") {
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("dbclaim.io", "v1alpha1", "Composition"),
            "compositions",
        );
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let mut node = match api.get(comp).await {
            Ok(_) => Node::new("Composition", comp),
            Err(e) => unread("Composition", comp, None, &e),
        };
        if let Some(rev) = str_at(&claim, "/status/compositionRevision/name") {
            let number = claim
                .pointer("/status/compositionRevision/revision")
                .and_then(Value::as_i64);
            node.status = match number {
                Some(n) => format!("revision {n} ({rev})"),
                None => format!("revision {rev}"),
            };
        }
        root.children.push(node);
    } else {
        let mut node = Node::new("Composition", "-");
        node.status = "none selected yet".into();
        root.children.push(node);
    }

    // Each composed object, and its managed resource's external state.
    let resources = claim
        .pointer("/status/resources")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for r in &resources {
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default();
        let node = composed_node(
            client,
            namespace,
            s("apiVersion"),
            s("kind"),
            s("resourceName"),
            s("name"),
        )
        .await;
        match root.children.first_mut() {
            Some(comp) => comp.children.push(node),
            None => root.children.push(node),
        }
    }

    // The connection Secret in the claim's namespace.
    let secret_name = str_at(&claim, "/status/connectionSecretRef/name")
        .map(str::to_string)
        .or_else(|| str_at(&claim, "/spec/writeConnectionSecretToRef/name").map(str::to_string))
        .unwrap_or_else(|| format!("{name}-connection"));
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let node = match secrets.get_opt(&secret_name).await {
        Ok(s) => secret_node(&secret_name, namespace, s.as_ref()),
        Err(e) => unread("Secret", &secret_name, Some(namespace), &e),
    };
    root.children.push(node);
    Ok(root)
}

async fn composed_node(
    client: &Client,
    namespace: &str,
    api_version: &str,
    kind: &str,
    name: &str,
    resource: &str,
) -> Node {
    let gvk = match api_version.split_once('/') {
        Some((g, v)) => GroupVersionKind::gvk(g, v, kind),
        None => GroupVersionKind::gvk("", api_version, kind),
    };
    let (ar, caps) = match kube::discovery::pinned_kind(client, &gvk).await {
        Ok(found) => found,
        Err(e) => {
            let mut n = unread(kind, name, None, &e);
            if n.access == Access::NotFound {
                n.status = format!("kind {api_version} {kind} is not served");
            }
            n.details.push(("resource".into(), resource.into()));
            return n;
        }
    };
    let ns = (caps.scope == Scope::Namespaced).then_some(namespace);
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let mut n = match api.get(name).await {
        Ok(obj) => {
            let value = serde_json::to_value(&obj).unwrap_or(Value::Null);
            let mut n = object_node(kind, &obj.name_any(), ns, &value);
            if let Some(ext) = external_state(&value) {
                n.children.push(ext);
            }
            n
        }
        Err(e) => unread(kind, name, ns, &e),
    };
    n.details.insert(0, ("resource".into(), resource.into()));
    n
}

/// `dbclaim trace`: the tree as text (or JSON), for stdout.
pub fn run_blocking(
    namespace: Option<&str>,
    name: &str,
    format: Option<Format>,
) -> Result<String, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(async {
        let client = Client::try_default().await.map_err(Error::Client)?;
        let namespace = namespace.unwrap_or(client.default_namespace()).to_string();
        let root = collect(&client, &namespace, name).await?;
        Ok(match format {
            Some(Format::Json) => format!("{}\n", serde_json::to_string_pretty(&root)?),
            Some(Format::Wide) => root.render(true, std::io::stdout().is_terminal()),
            None => root.render(false, std::io::stdout().is_terminal()),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim(ready: (&str, &str, &str), synced: (&str, &str, &str)) -> Value {
        json!({
            "apiVersion": "dbclaim.io/v1alpha1",
            "kind": "DatabaseClaim",
            "metadata": {"name": "orders", "namespace": "team-a"},
            "status": {"conditions": [
                {"type": "Ready", "status": ready.0, "reason": ready.1, "message": ready.2},
                {"type": "Synced", "status": synced.0, "reason": synced.1, "message": synced.2},
            ]}
        })
    }

    #[test]
    fn targets() {
        assert_eq!(parse_target("dbc/orders"), Ok("orders".into()));
        assert_eq!(
            parse_target("databaseclaim.dbclaim.io/orders"),
            Ok("orders".into())
        );
        assert_eq!(parse_target("orders"), Ok("orders".into()));
        assert!(parse_target("pod/orders").is_err());
        assert!(parse_target("dbc/").is_err());
    }

    #[test]
    fn a_ready_tree_renders_without_a_problem() {
        let mut root = claim_node(&claim(
            ("True", "Available", ""),
            ("True", "ReconcileSuccess", ""),
        ));
        let mut db = object_node(
            "Database",
            "team-a-orders-database",
            None,
            &json!({"status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "Available"}],
                "atProvider": {"databaseName": "team_a_orders", "roleName": "team_a_orders"}}}),
        );
        db.children.push(external_state(&json!({"status": {"atProvider": {"databaseName": "team_a_orders", "roleName": "team_a_orders"}}})).unwrap_or_default());
        let mut comp = Node::new("Composition", "shared-postgres");
        comp.children.push(db);
        root.children.push(comp);
        let secret = Secret {
            data: Some(
                CONNECTION_SECRET_KEYS
                    .iter()
                    .map(|k| (k.to_string(), k8s_openapi::ByteString(b"sekrit".to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        root.children
            .push(secret_node("orders-connection", "team-a", Some(&secret)));
        assert!(first_broken(&root).is_none());
        let text = root.render(false, false);
        assert!(!text.contains("sekrit"), "{text}");
        assert!(!text.contains("first problem"), "{text}");
        assert!(
            text.contains("│  └─ Database/team-a-orders-database"),
            "{text}"
        );
        assert!(text.contains("│     └─ PostgreSQL/team_a_orders"), "{text}");
        assert!(
            text.contains("└─ Secret/orders-connection (team-a)"),
            "{text}"
        );
        let json = serde_json::to_string(&root).unwrap_or_default();
        assert!(!json.contains("sekrit"));
    }

    #[test]
    fn the_first_broken_node_is_marked_and_forbidden_is_not_broken() {
        let mut root = claim_node(&claim(
            ("False", "Creating", "waiting for: Database x"),
            ("True", "ReconcileSuccess", ""),
        ));
        let mut comp = Node::new("Composition", "shared-postgres");
        comp.access = Access::Forbidden;
        let db = object_node(
            "Database",
            "x",
            None,
            &json!({"status": {"conditions": [{"type": "Synced", "status": "False", "reason": "ProviderError", "message": "cannot connect"}]}}),
        );
        comp.children.push(db);
        root.children.push(comp);
        // The Database that cannot reconcile, not the claim waiting on it.
        let first = first_broken(&root).map(|n| n.name.clone());
        assert_eq!(first.as_deref(), Some("x"));
        let text = root.render(false, true);
        assert!(text.contains("\x1b[1;31m"), "{text}");
        assert!(text.contains("forbidden"), "{text}");
        let plain = root.render(true, false);
        let marked: Vec<&str> = plain
            .lines()
            .filter(|l| l.contains("first problem"))
            .collect();
        assert_eq!(marked.len(), 1, "{plain}");
        assert!(marked[0].contains("Database/x"), "{plain}");
        // A refused claim is its own problem.
        let refused = claim_node(&claim(
            ("False", "Creating", ""),
            ("False", "PolicyViolation", "size large"),
        ));
        assert_eq!(
            first_broken(&refused).map(|n| n.kind.as_str()),
            Some("DatabaseClaim")
        );
    }

    #[test]
    fn a_secret_missing_keys_is_broken() {
        let n = secret_node("s", "ns", Some(&Secret::default()));
        assert!(n.broken);
        assert!(n.status.contains("missing: host"), "{}", n.status);
        assert!(secret_node("s", "ns", None).broken);
    }
}
