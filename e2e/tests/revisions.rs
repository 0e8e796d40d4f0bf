//! Composition revisions end to end (issue 19): Automatic claims follow an
//! edit, a Manual one stays until pinned, re-applying the old spec rolls
//! back, the claim's spec stays the user's; and `dbclaim diff` against the
//! running cluster.

use std::time::{Duration, Instant};

use dbclaim::api::{CompositionRevision, DatabaseClaim};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use crate::claims::{claim_yaml, get_claim, wait_ready};
use crate::support::{
    self, Operator, TestNamespace, kubectl, kubectl_apply, unique_name, wait_for,
};

/// The contract: Automatic claims render the newest revision within 10 s.
const FOLLOW: Duration = Duration::from_secs(10);
const TIMEOUT: Duration = Duration::from_secs(60);
/// The test's field manager: the only one that may own a claim's spec.
const MANAGER: &str = "dbclaim-e2e";

/// A composition of one ConfigMap whose `class` comes from the claim's
/// size through `classes` (the size→class map a platform team edits),
/// always ready, with fixed connection details so claims turn Ready.
fn composition(name: &str, small: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: dbclaim.io/v1alpha1
kind: Composition
metadata: {{name: {name}}}
spec:
  engines: [postgres]
  resources:
  - name: instance
    base:
      apiVersion: v1
      kind: ConfigMap
      data: {{engine: postgres}}
    patches:
    - fromFieldPath: spec.size
      toFieldPath: data.class
      transforms:
      - {{type: map, map: {{small: {small}, medium: db.m6g.large, large: db.r6g.xlarge}}}}
    readinessChecks: [{{type: None}}]
    connectionDetails:
    - {{name: host, value: db.example}}
    - {{name: port, value: "5432"}}
    - {{name: database, value: app}}
    - {{name: username, value: app}}
    - {{name: password, value: not-a-secret}}
{extra}"#
    )
}

/// A second composed object, for a change that removes a resource.
const SETTINGS: &str = r#"  - name: settings
    base:
      apiVersion: v1
      kind: ConfigMap
      data: {tier: standard}
    readinessChecks: [{type: None}]
"#;

struct World {
    _op: Operator,
    ns: TestNamespace,
    _lock: tokio::sync::MutexGuard<'static, ()>,
}

impl World {
    async fn start(prefix: &str) -> World {
        let lock = support::exclusive().await;
        support::apply_crds();
        let ns = TestNamespace::new(prefix);
        let op = Operator::start();
        let port = op.probes_port;
        wait_for(TIMEOUT, "the operator to be ready", || async move {
            Operator::http_get(port, "/readyz").is_some_and(|(code, _)| code == 200)
        })
        .await;
        World {
            _op: op,
            ns,
            _lock: lock,
        }
    }

    fn ns(&self) -> &str {
        self.ns.name()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = kubectl([
            "delete",
            "databaseclaims",
            "--all",
            "-n",
            self.ns.name(),
            "--timeout=60s",
        ]);
    }
}

async fn revisions_of(composition: &str) -> Vec<CompositionRevision> {
    let api: Api<CompositionRevision> = Api::all(support::kube_client().await);
    let lp = ListParams::default().labels(&format!("dbclaim.io/composition-name={composition}"));
    let mut list = api
        .list(&lp)
        .await
        .unwrap_or_else(|e| panic!("list revisions: {e}"))
        .items;
    list.sort_by_key(|r| r.spec.revision);
    list
}

/// The revision of `composition` numbered `number`, once there.
async fn wait_revision(composition: &str, number: i64) -> CompositionRevision {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let all = revisions_of(composition).await;
        if let Some(r) = all.iter().find(|r| r.spec.revision == number) {
            return r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no revision {number} of {composition}: {:?}",
            all.iter()
                .map(|r| (r.name_any(), r.spec.revision))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The claim's composed ConfigMap `instance`.
async fn composed(ns: &str, claim: &str) -> ConfigMap {
    let c = get_claim(ns, claim)
        .await
        .unwrap_or_else(|| panic!("claim {claim} is gone"));
    let name = c
        .recorded_resource_name("instance")
        .unwrap_or_else(|| panic!("claim {claim} records no instance"))
        .to_string();
    let api: Api<ConfigMap> = Api::namespaced(support::kube_client().await, ns);
    api.get(&name)
        .await
        .unwrap_or_else(|e| panic!("ConfigMap {name}: {e}"))
}

fn class(cm: &ConfigMap) -> String {
    cm.data
        .as_ref()
        .and_then(|d| d.get("class"))
        .cloned()
        .unwrap_or_default()
}

/// Waits up to `within` for the claim's object to carry `want` and its
/// status to name revision `revision`.
async fn wait_follows(ns: &str, claim: &str, want: &str, revision: i64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let cm = composed(ns, claim).await;
        let c = get_claim(ns, claim).await;
        let rendered = c
            .as_ref()
            .and_then(|c| c.status.as_ref())
            .and_then(|s| s.composition_revision.as_ref())
            .map(|r| r.revision);
        if class(&cm) == want && rendered == Some(revision) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "claim {claim}: class {:?} (want {want}), revision {rendered:?} (want {revision}) after {within:?}",
            class(&cm)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn rendered_revision(c: &DatabaseClaim) -> Option<(String, i64)> {
    let r = c.status.as_ref()?.composition_revision.as_ref()?;
    Some((r.name.clone(), r.revision))
}

/// Every managedFields entry that owns part of the claim's spec belongs to
/// the test's field manager, and the generation counts only its edits.
fn spec_is_the_users(c: &DatabaseClaim, generation: i64) {
    assert_eq!(c.metadata.generation, Some(generation), "{}", c.name_any());
    for entry in c.metadata.managed_fields.iter().flatten() {
        let fields = entry
            .fields_v1
            .as_ref()
            .map(|f| f.0.to_string())
            .unwrap_or_default();
        if fields.contains("\"f:spec\"") {
            assert_eq!(
                entry.manager.as_deref(),
                Some(MANAGER),
                "{} spec written by {:?}",
                c.name_any(),
                entry.manager
            );
        }
    }
}

#[tokio::test]
async fn automatic_claims_follow_manual_stays_pin_and_roll_back() {
    let world = World::start("revisions").await;
    let ns = world.ns();
    let comp = unique_name("rev");
    let before = composition(&comp, "db.t3.micro", "");
    let after = composition(&comp, "db.t3.small", "");
    kubectl_apply(&before);
    let first = wait_revision(&comp, 1).await;
    assert!(first.name_any().starts_with(&format!("{comp}-")));
    assert_eq!(
        first.labels().get("dbclaim.io/composition-name"),
        Some(&comp)
    );
    let owner = first
        .owner_references()
        .first()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Composition", comp.as_str())
    );

    let pick = format!("  compositionRef: {{name: {comp}}}\n");
    kubectl_apply(&claim_yaml(ns, "auto-a", &pick));
    kubectl_apply(&claim_yaml(ns, "auto-b", &pick));
    let manual_spec = format!("{pick}  compositionUpdatePolicy: Manual\n");
    kubectl_apply(&claim_yaml(ns, "manual", &manual_spec));
    for name in ["auto-a", "auto-b", "manual"] {
        let c = wait_ready(ns, name).await;
        assert_eq!(rendered_revision(&c), Some((first.name_any(), 1)), "{name}");
        assert_eq!(class(&composed(ns, name).await), "db.t3.micro");
    }
    let manual_before = composed(ns, "manual").await;

    // The edit: Automatic claims follow within 10 s, Manual stays.
    kubectl_apply(&after);
    let started = Instant::now();
    let second = wait_revision(&comp, 2).await;
    for name in ["auto-a", "auto-b"] {
        let left = FOLLOW.saturating_sub(started.elapsed());
        wait_follows(ns, name, "db.t3.small", 2, left).await;
    }
    let steady_until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < steady_until {
        let now = composed(ns, "manual").await;
        assert_eq!(now.resource_version(), manual_before.resource_version());
        assert_eq!(now.metadata.generation, manual_before.metadata.generation);
        let c = get_claim(ns, "manual")
            .await
            .unwrap_or_else(|| panic!("gone"));
        assert_eq!(rendered_revision(&c), Some((first.name_any(), 1)));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Pinning the Manual claim to the new revision: it follows.
    let pinned = format!(
        "{manual_spec}  compositionRevisionRef: {{name: {}}}\n",
        second.name_any()
    );
    kubectl_apply(&claim_yaml(ns, "manual", &pinned));
    wait_follows(ns, "manual", "db.t3.small", 2, FOLLOW).await;

    // Rolling back by re-applying the old spec: its revision is the newest
    // again (number 3, same name), Automatic claims return to it.
    kubectl_apply(&before);
    let started = Instant::now();
    let third = wait_revision(&comp, 3).await;
    assert_eq!(third.name_any(), first.name_any());
    assert_eq!(revisions_of(&comp).await.len(), 2);
    for name in ["auto-a", "auto-b"] {
        let left = FOLLOW.saturating_sub(started.elapsed());
        wait_follows(ns, name, "db.t3.micro", 3, left).await;
    }
    // The pinned claim stays where it is pinned.
    wait_follows(ns, "manual", "db.t3.small", 2, FOLLOW).await;

    // The claims' specs were written by the test alone.
    for (name, generation) in [("auto-a", 1), ("auto-b", 1), ("manual", 2)] {
        let c = get_claim(ns, name).await.unwrap_or_else(|| panic!("gone"));
        spec_is_the_users(&c, generation);
    }
}

/// Runs `dbclaim diff` with the test's kubeconfig; (exit code, stdout).
fn diff(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(support::operator::operator_binary())
        .arg("diff")
        .args(args)
        .env("KUBECONFIG", support::kubeconfig())
        .output()
        .unwrap_or_else(|e| panic!("cannot run dbclaim diff: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn diff_previews_a_composition_change_on_the_running_cluster() {
    let world = World::start("revdiff").await;
    let ns = world.ns();
    let comp = unique_name("revdiff");
    kubectl_apply(&composition(&comp, "db.t3.micro", SETTINGS));
    let pick = format!("  compositionRef: {{name: {comp}}}\n");
    kubectl_apply(&claim_yaml(ns, "app", &pick));
    let manual = format!("{pick}  compositionUpdatePolicy: Manual\n");
    kubectl_apply(&claim_yaml(ns, "held", &manual));
    wait_ready(ns, "app").await;
    wait_ready(ns, "held").await;
    let instance = get_claim(ns, "app")
        .await
        .and_then(|c| c.recorded_resource_name("instance").map(str::to_string))
        .unwrap_or_default();
    let settings = get_claim(ns, "app")
        .await
        .and_then(|c| c.recorded_resource_name("settings").map(str::to_string))
        .unwrap_or_default();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("composition.yaml");
    let file_s = file.display().to_string();

    // Unchanged: exit 0.
    std::fs::write(&file, composition(&comp, "db.t3.micro", SETTINGS)).unwrap_or_default();
    let (code, out, err) = diff(&["-C", &file_s]);
    assert_eq!(code, 0, "{out}\n{err}");

    // A harmless change: exit 1, the changed line, the Manual claim pinned.
    std::fs::write(&file, composition(&comp, "db.t3.small", SETTINGS)).unwrap_or_default();
    let (code, out, err) = diff(&["-C", &file_s]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains(&format!("ConfigMap {ns}/{instance}")), "{out}");
    assert!(out.contains("-  class: db.t3.micro"), "{out}");
    assert!(out.contains("+  class: db.t3.small"), "{out}");
    assert!(
        out.contains(&format!("{ns}/held")) && out.contains("pinned"),
        "{out}"
    );
    assert!(
        !out.contains("not-a-secret"),
        "a connection detail leaked: {out}"
    );
    assert!(!out.contains('\u{1b}'), "colour when piped: {out}");

    // A change that removes a resource: exit 3, the object named.
    std::fs::write(&file, composition(&comp, "db.t3.micro", "")).unwrap_or_default();
    let (code, out, err) = diff(&["-C", &file_s]);
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(out.contains(&settings), "{out}");
    assert!(out.contains("DESTRUCTIVE"), "{out}");

    // JSON for CI.
    let (code, out, _) = diff(&["-C", &file_s, "-o", "json"]);
    assert_eq!(code, 3);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["destructive"], true, "{v}");

    // Nothing was changed by the preview.
    let (code, _, _) = diff(&["-C", &file_s]);
    assert_eq!(code, 3);
}
