//! Tenant isolation (issue 14): injective composed names and the upgrade
//! from the earlier naming, a burst against maxTotalStorageGB, ClaimPolicy
//! parameters limits, and the CEL rules that keep managed resources in
//! place.

use std::collections::BTreeSet;
use std::time::Duration;

use dbclaim::naming::composed_name;

use crate::claims::{
    claim_yaml, condition, databases_like, get_claim, psql, secret_data, setup_shared_postgres,
    wait_condition, wait_ready,
};
use crate::support::{
    self, Operator, Postgres, TestNamespace, kubectl, kubectl_apply, kubectl_ok,
    kubectl_with_stdin, wait_for,
};

const DATABASES: &str = "databases.postgres.dbclaim.io";

fn create_namespace(name: &str) {
    kubectl_apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {{dbclaim.io/e2e: \"true\"}}}}\n"
    ));
}

/// The Database objects composed for claims of `ns`, by name.
fn composed_databases(ns: &str) -> BTreeSet<String> {
    kubectl_ok([
        "get",
        DATABASES,
        "-l",
        &format!("dbclaim.io/claim-namespace={ns}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

/// The audit's H5 pair: namespace `<x>` with claim `b-c` and namespace
/// `<x>-b` with claim `c` joined to one name before. Now both are Ready,
/// each with its own object, database and role, and neither tenant's
/// credentials open the other's database.
#[tokio::test]
async fn hyphen_shuffled_claims_get_their_own_databases() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start();
    let outer = support::unique_name("iso");
    let inner = format!("{outer}-b");
    for ns in [&outer, &inner] {
        create_namespace(ns);
    }
    let pair = [(outer.as_str(), "b-c"), (inner.as_str(), "c")];
    for (ns, claim) in pair {
        kubectl_apply(&claim_yaml(ns, claim, ""));
    }
    let mut tenants = Vec::new();
    for (ns, claim) in pair {
        let c = wait_ready(ns, claim).await;
        let resources = c.status.map(|s| s.resources).unwrap_or_default();
        assert_eq!(resources.len(), 1, "{ns}/{claim}");
        assert_eq!(
            resources[0].resource_name,
            composed_name(ns, claim, "database")
        );
        let data = secret_data(ns, &format!("{claim}-connection"))
            .await
            .unwrap_or_default();
        assert!(
            data.contains_key("uri") && data.contains_key("database"),
            "{ns}/{claim}: {:?}",
            data.keys()
        );
        tenants.push((resources[0].resource_name.clone(), data));
    }
    let (a, b) = (&tenants[0], &tenants[1]);
    assert_ne!(a.0, b.0, "distinct composed objects");
    assert_ne!(a.1["database"], b.1["database"], "distinct databases");
    assert_ne!(a.1["username"], b.1["username"], "distinct roles");
    let found = databases_like(&pg, &outer).await;
    for (_, data) in &tenants {
        assert!(found.contains(&data["database"]), "{found:?}");
    }
    for (mine, theirs) in [(&a.1, &b.1), (&b.1, &a.1)] {
        assert_eq!(psql(&mine["uri"], "SELECT 1").as_deref(), Ok("1"));
        let crossed = mine["uri"].replace(
            &format!("/{}", mine["database"]),
            &format!("/{}", theirs["database"]),
        );
        assert_ne!(crossed, mine["uri"], "the uri names its database");
        let refused = psql(&crossed, "SELECT 1");
        assert!(
            refused.is_err(),
            "{} reached {}: {refused:?}",
            mine["username"],
            theirs["database"]
        );
    }
    for (ns, claim) in pair {
        kubectl_ok(["delete", "dbc", claim, "-n", ns]);
    }
    for ns in [&outer, &inner] {
        kubectl(["delete", "namespace", ns, "--wait=false"]);
    }
}

/// 20 claims of 20 GB applied at once against a 100 GB total, in the same
/// apply as the policy and right after the namespace got the label the
/// policy selects: however the operator's workers and watches interleave,
/// the claims holding a composed object never sum beyond the limit, and the
/// refused ones say why.
#[tokio::test]
async fn a_burst_of_claims_never_passes_max_total_storage() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start();
    let ns = TestNamespace::new("burst");
    let ns = ns.name();
    let team = support::unique_name("burst");
    kubectl_ok(["label", "namespace", ns, &format!("team={team}")]);
    let policy = support::unique_name("burst-quota");
    // The policy and the burst in one apply, the policy first: the claims
    // reach the operator while the policy may still be in flight on its
    // watch; a new claim is judged by the policies the API server holds.
    let names: Vec<String> = (1..=20).map(|i| format!("b{i:02}")).collect();
    let mut docs = vec![format!(
        "apiVersion: dbclaim.io/v1alpha1\nkind: ClaimPolicy\nmetadata: {{name: {policy}}}\nspec:\n  namespaceSelector: {{matchLabels: {{team: {team}}}}}\n  maxTotalStorageGB: 100\n"
    )];
    docs.extend(names.iter().map(|n| claim_yaml(ns, n, "  storageGB: 20\n")));
    kubectl_apply(&docs.join("---\n"));

    // Watch the composed objects while the operator works through the burst.
    let mut most = 0;
    let all = &names;
    wait_for(Duration::from_secs(120), "every claim decided", || {
        let now = composed_databases(ns).len();
        most = most.max(now);
        assert!(
            now <= 5,
            "{now} composed objects: more than 100 GB admitted"
        );
        let names = all;
        async move {
            let mut decided = 0;
            for n in names {
                let Some(c) = get_claim(ns, n).await else {
                    continue;
                };
                let ready = condition(&c, "Ready").is_some_and(|r| r.0 == "True");
                let refused = condition(&c, "Synced")
                    .is_some_and(|s| s.0 == "False" && s.1 == "PolicyViolation");
                if ready || refused {
                    decided += 1;
                }
            }
            decided == names.len()
        }
    })
    .await;
    assert!(most <= 5, "at most {most} composed objects at once");
    let mut admitted = 0;
    for n in &names {
        let c = get_claim(ns, n).await.unwrap_or_else(|| panic!("{n}"));
        let (status, reason, message) = condition(&c, "Synced").unwrap_or_default();
        if status == "True" {
            admitted += 20;
        } else {
            assert_eq!(reason, "PolicyViolation", "{n}: {message}");
            assert!(
                message.contains(&policy) && message.contains("maxTotalStorageGB"),
                "{n}: {message}"
            );
        }
    }
    assert!(admitted <= 100, "{admitted} GB admitted");
    // Exactly the first five by creation (the file's order) hold the budget.
    assert_eq!(
        composed_databases(ns),
        names[..5]
            .iter()
            .map(|n| composed_name(ns, n, "database"))
            .collect::<BTreeSet<_>>()
    );
    assert_eq!(
        databases_like(&pg, &format!("{ns}_b")).await.len(),
        5,
        "five databases on the server"
    );
    kubectl_ok(["delete", "claimpolicy", &policy]);
    let _ = kubectl(["delete", "dbc", "--all", "-n", ns, "--wait=false"]);
}

/// `parameters` limits: the controller refuses with PolicyViolation naming
/// the policy and the limit; with the chart's admission policy on,
/// `kubectl apply` refuses at once.
#[tokio::test]
async fn parameter_limits_are_refused_by_the_controller_and_at_admission() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let op = Operator::start();
    let ns = TestNamespace::new("params");
    let ns = ns.name();
    let team = support::unique_name("params");
    kubectl_ok(["label", "namespace", ns, &format!("team={team}")]);
    let policy = support::unique_name("params-limits");
    kubectl_apply(&format!(
        "apiVersion: dbclaim.io/v1alpha1\nkind: ClaimPolicy\nmetadata: {{name: {policy}}}\nspec:\n  namespaceSelector: {{matchLabels: {{team: {team}}}}}\n  parameters:\n    tier: {{allowed: [\"bronze\", \"silver\"]}}\n    connectionLimit: {{min: 1, max: 10}}\n"
    ));
    for (name, params, needle) in [
        ("too-many", "{connectionLimit: \"50\"}", "at most 10"),
        (
            "not-a-number",
            "{connectionLimit: \"lots\"}",
            "whole number",
        ),
        ("gold", "{tier: gold}", "tier only as [bronze, silver]"),
    ] {
        kubectl_apply(&claim_yaml(ns, name, &format!("  parameters: {params}\n")));
        let c = wait_condition(ns, name, "Synced", "False", Some("PolicyViolation")).await;
        let (_, _, message) = condition(&c, "Synced").unwrap_or_default();
        assert!(
            message.contains(&policy) && message.contains(needle),
            "{name}: {message}"
        );
        assert!(
            !composed_databases(ns).contains(&composed_name(ns, name, "database")),
            "{name} was provisioned"
        );
    }
    kubectl_apply(&claim_yaml(
        ns,
        "within",
        "  parameters: {connectionLimit: \"10\", tier: silver, free: anything}\n",
    ));
    wait_ready(ns, "within").await;
    let limit = databases_like(&pg, &format!("{ns}_within")).await;
    assert_eq!(limit.len(), 1);
    drop(op);

    // The admission policy refuses the same before anything is stored.
    let release = support::unique_name("vap-params");
    let rendered = crate::chart::template(
        &release,
        "dbclaim-system",
        "admissionPolicy: {enabled: true}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let docs: Vec<String> = rendered
        .split("\n---")
        .filter(|d| d.contains("kind: ValidatingAdmissionPolicy"))
        .map(str::to_string)
        .collect();
    assert_eq!(docs.len(), 2, "the policy and its binding:\n{rendered}");
    kubectl_apply(&docs.join("\n---\n"));
    let dry_run = |name: &str, params: &str| {
        let yaml = claim_yaml(ns, name, &format!("  parameters: {params}\n"));
        kubectl_with_stdin(["apply", "--dry-run=server", "-f", "-"], &yaml)
    };
    wait_for(
        Duration::from_secs(30),
        "the admission policy to take effect",
        || async { !dry_run("probe", "{tier: gold}").status.success() },
    )
    .await;
    for (params, refused) in [
        ("{tier: gold}", true),
        ("{connectionLimit: \"0\"}", true),
        ("{connectionLimit: \"11\"}", true),
        ("{connectionLimit: \"ten\"}", true),
        ("{connectionLimit: \"10\", tier: bronze, other: x}", false),
    ] {
        let out = dry_run("vap", params);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(!out.status.success(), refused, "{params}: {stderr}");
        if refused {
            assert!(
                stderr.contains(&policy) && stderr.contains("limits parameters"),
                "{params}: {stderr}"
            );
        }
    }
    for d in &docs {
        let _ = kubectl_with_stdin(["delete", "-f", "-"], d);
    }
    kubectl_ok(["delete", "claimpolicy", &policy]);
    let _ = kubectl(["delete", "dbc", "--all", "-n", ns, "--wait=false"]);
}

/// A schema bound: too many parameters or too long a value never reaches
/// the operator's cache.
#[tokio::test]
async fn oversized_claims_are_refused_by_the_schema() {
    support::apply_crds();
    let ns = TestNamespace::new("bounds");
    let ns = ns.name();
    let many: Vec<String> = (0..65).map(|i| format!("p{i}: x")).collect();
    let long = "x".repeat(1025);
    for (what, params) in [
        ("65 parameters", format!("{{{}}}", many.join(", "))),
        ("a 1025-byte value", format!("{{big: {long}}}")),
        ("a bad name", "{\"a b\": x}".to_string()),
    ] {
        let yaml = claim_yaml(ns, "big", &format!("  parameters: {params}\n"));
        let out = kubectl_with_stdin(["apply", "--dry-run=server", "-f", "-"], &yaml);
        assert!(!out.status.success(), "{what} was accepted");
    }
    let ok: Vec<String> = (0..64).map(|i| format!("p{i}: x")).collect();
    let yaml = claim_yaml(ns, "ok", &format!("  parameters: {{{}}}\n", ok.join(", ")));
    let out = kubectl_with_stdin(["apply", "--dry-run=server", "-f", "-"], &yaml);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `region` and `providerConfigRef` cannot be edited once set: an edit
/// would make a second instance or database and leak the first.
#[tokio::test]
async fn region_and_provider_config_edits_are_refused() {
    // No operator: the API server alone decides. The lock keeps other
    // tests' operators from reconciling these objects meanwhile.
    let _lock = support::exclusive().await;
    support::apply_crds();
    let rds = support::unique_name("iso-cel-rds");
    let pc = support::unique_name("no-such-config");
    let instance = |region: &str, config: &str| {
        format!(
            "apiVersion: aws.dbclaim.io/v1alpha1\nkind: RDSInstance\nmetadata: {{name: {rds}}}\nspec:\n  providerConfigRef: {{name: {config}}}\n  forProvider: {{{region}dbInstanceClass: db.t3.micro, engine: postgres, allocatedStorage: 20}}\n"
        )
    };
    let apply = |yaml: &str| {
        kubectl_with_stdin(
            [
                "apply",
                "--server-side",
                "--field-manager=dbclaim-e2e",
                "-f",
                "-",
            ],
            yaml,
        )
    };
    kubectl_apply(&instance("region: us-east-1, ", &pc));
    for (what, yaml, needle) in [
        (
            "another region",
            instance("region: eu-west-1, ", &pc),
            "region is immutable",
        ),
        ("no region", instance("", &pc), "region is immutable"),
        (
            "another provider config",
            instance("region: us-east-1, ", "other"),
            "providerConfigRef is immutable",
        ),
    ] {
        let out = apply(&yaml);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what} was accepted");
        assert!(stderr.contains(needle), "{what}: {stderr}");
    }
    // Other fields stay editable.
    let grown = instance("region: us-east-1, ", &pc)
        .replace("allocatedStorage: 20", "allocatedStorage: 30");
    let out = apply(&grown);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An RDSInstance without a region may not get one later either.
    let unset = support::unique_name("iso-cel-noregion");
    kubectl_apply(&instance("", &pc).replace(&rds, &unset));
    let out = apply(&instance("region: eu-west-1, ", &pc).replace(&rds, &unset));
    assert!(!out.status.success(), "a region added later was accepted");

    let db = support::unique_name("iso-cel-db");
    let database = |config: &str| {
        format!(
            "apiVersion: postgres.dbclaim.io/v1alpha1\nkind: Database\nmetadata: {{name: {db}}}\nspec:\n  providerConfigRef: {{name: {config}}}\n  forProvider: {{databaseName: iso_cel}}\n"
        )
    };
    kubectl_apply(&database(&pc));
    let out = apply(&database("other"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a Database moved to another server");
    assert!(
        stderr.contains("providerConfigRef is immutable"),
        "{stderr}"
    );

    for (kind, name) in [
        ("rdsinstances.aws.dbclaim.io", &rds),
        ("rdsinstances.aws.dbclaim.io", &unset),
        (DATABASES, &db),
    ] {
        let _ = kubectl(["delete", kind, name.as_str(), "--wait=false"]);
    }
}

/// A claim whose object was made under the earlier naming
/// (`<ns>-<claim>-<resource>`, no hash) keeps that object after the
/// upgrade: no second object, no replacement, the same database and
/// credentials; deleting the claim still cleans it up.
#[tokio::test]
async fn a_claim_from_the_previous_naming_keeps_its_object() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let ns = TestNamespace::new("upgrade");
    let ns = ns.name();
    let old = format!("{ns}-legacy-database");
    let new = composed_name(ns, "legacy", "database");
    assert_ne!(old, new);
    let db = format!("{ns}_legacy");

    // What the previous release left: the claim, its status naming the
    // object, and the object with the claim's labels.
    kubectl_apply(&claim_yaml(ns, "legacy", ""));
    kubectl_apply(&format!(
        r#"apiVersion: postgres.dbclaim.io/v1alpha1
kind: Database
metadata:
  name: {old}
  labels:
    dbclaim.io/claim-name: legacy
    dbclaim.io/claim-namespace: {ns}
    dbclaim.io/composition: shared-postgres
    dbclaim.io/resource: database
spec:
  providerConfigRef: {{name: default}}
  forProvider: {{databaseName: {db}, connectionLimit: 20}}
"#
    ));
    let uid_before = kubectl_ok(["get", DATABASES, &old, "-o", "jsonpath={.metadata.uid}"]);
    kubectl_ok([
        "patch",
        "dbc",
        "legacy",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        &format!(
            r#"{{"status":{{"composition":{{"name":"shared-postgres"}},"resources":[{{"name":"database","apiVersion":"postgres.dbclaim.io/v1alpha1","kind":"Database","resourceName":"{old}","ready":false}}]}}}}"#
        ),
    ]);

    // The new release starts.
    let _op = Operator::start();
    let c = wait_ready(ns, "legacy").await;
    let resources = c.status.map(|s| s.resources).unwrap_or_default();
    assert_eq!(resources.len(), 1);
    assert_eq!(resources[0].resource_name, old, "the recorded name is kept");
    assert_eq!(
        composed_databases(ns),
        BTreeSet::from([old.clone()]),
        "no second object under the new name"
    );
    let uid_after = kubectl_ok(["get", DATABASES, &old, "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(uid_before, uid_after, "the object was not replaced");
    let data = secret_data(ns, "legacy-connection")
        .await
        .unwrap_or_default();
    assert_eq!(data.get("database"), Some(&db));
    assert_eq!(psql(&data["uri"], "SELECT 1").as_deref(), Ok("1"));
    assert_eq!(databases_like(&pg, &db).await, vec![db.clone()]);

    // A pass later nothing has moved.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(composed_databases(ns), BTreeSet::from([old.clone()]));

    // Deleting the claim cleans up the object it recorded.
    kubectl_ok(["delete", "dbc", "legacy", "-n", ns, "--timeout=90s"]);
    wait_for(Duration::from_secs(60), "the old object gone", || async {
        !kubectl(["get", DATABASES, &old]).status.success()
    })
    .await;
    wait_for(Duration::from_secs(60), "the database dropped", || async {
        databases_like(&pg, &db).await.is_empty()
    })
    .await;
}
