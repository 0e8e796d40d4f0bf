//! Runs the built `dbclaim` binary as a user would: crds, render, validate,
//! and bad usage. Render outputs are compared with checked-in snapshots;
//! `UPDATE_SNAPSHOTS=1 cargo test --test cli` rewrites them after a change
//! that is meant.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dbclaim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dbclaim"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run dbclaim: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn check_snapshot(name: &str, actual: &str) {
    let path = root().join("tests/snapshots").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("{e}"));
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_SNAPSHOTS=1)", path.display()));
    pretty_assertions::assert_eq!(expected, actual, "snapshot {name} differs");
}

#[test]
fn crds_directory_matches_the_code() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dbclaim(&["crds", "--output-dir", &dir.path().display().to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut generated: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.file_name())
        .collect();
    generated.sort();
    let mut checked_in: Vec<_> = std::fs::read_dir(root().join("crds"))
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.file_name())
        .collect();
    checked_in.sort();
    assert_eq!(
        generated, checked_in,
        "crds/ holds other files than `dbclaim crds` writes"
    );
    for name in generated {
        let fresh =
            std::fs::read_to_string(dir.path().join(&name)).unwrap_or_else(|e| panic!("{e}"));
        let kept = std::fs::read_to_string(root().join("crds").join(&name))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            fresh == kept,
            "crds/{} is stale: run `cargo run -- crds --output-dir crds`",
            name.to_string_lossy()
        );
    }
    // The printed form holds every CRD too.
    let printed = text(&dbclaim(&["crds"]).stdout);
    assert_eq!(printed.matches("kind: CustomResourceDefinition").count(), 8);
}

#[test]
fn chart_crds_match_crds_directory() {
    let chart = root().join("charts/dbclaim/crds");
    if !chart.exists() {
        // The chart arrives with its own issue; until then there is nothing to drift.
        assert!(
            !root().join("charts/dbclaim/Chart.yaml").exists(),
            "the chart exists but has no crds/ folder"
        );
        return;
    }
    for entry in std::fs::read_dir(root().join("crds"))
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
    {
        let kept = std::fs::read_to_string(entry.path()).unwrap_or_else(|e| panic!("{e}"));
        let in_chart = std::fs::read_to_string(chart.join(entry.file_name())).unwrap_or_default();
        assert!(
            kept == in_chart,
            "charts/dbclaim/crds/{} differs from crds/",
            entry.file_name().to_string_lossy()
        );
    }
}

/// The chart ships the repository's compositions verbatim, no stale or
/// extra CRDs, and deploys the crate's version.
#[test]
fn chart_follows_the_repository() {
    let chart = root().join("charts/dbclaim");
    let names = |dir: PathBuf| {
        let mut v: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.file_name())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(chart.join("crds")), names(root().join("crds")));
    let shipped = names(root().join("compositions"));
    assert_eq!(names(chart.join("files/compositions")), shipped);
    for name in shipped {
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            read(root().join("compositions").join(&name))
                == read(chart.join("files/compositions").join(&name)),
            "charts/dbclaim/files/compositions/{} differs from compositions/",
            name.to_string_lossy()
        );
    }
    let chart_yaml =
        std::fs::read_to_string(chart.join("Chart.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let app_version = format!("appVersion: \"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(
        chart_yaml.lines().any(|l| l == app_version),
        "Chart.yaml must say {app_version} (the crate version)"
    );
}

fn compositions() -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(root().join("compositions"))
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_composition_validates() {
    let files = compositions();
    assert!(files.len() >= 3, "expected the shipped compositions");
    for f in files {
        let out = dbclaim(&["validate", &f.display().to_string()]);
        assert!(
            out.status.success(),
            "{}: {}{}",
            f.display(),
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

#[test]
fn every_shipped_composition_renders_as_its_snapshot() {
    for f in compositions() {
        let stem = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let claim = if stem.contains("mysql") {
            "tests/fixtures/claim-mysql.yaml"
        } else {
            "examples/claim.yaml"
        };
        let out = dbclaim(&["render", "-c", claim, "-C", &f.display().to_string()]);
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            text(&out.stderr)
        );
        check_snapshot(&format!("{stem}.yaml"), &text(&out.stdout));
    }
}

#[test]
fn render_follows_size_and_storage() {
    let out = dbclaim(&[
        "render",
        "-c",
        "examples/claim.yaml",
        "-C",
        "compositions/aws-rds-postgres.yaml",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let docs: Vec<serde_json::Value> =
        dbclaim::cli::yaml_documents(&text(&out.stdout)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(docs.len(), 2, "the claim, then one RDSInstance");
    assert_eq!(docs[0]["kind"], "DatabaseClaim");
    assert_eq!(docs[0]["status"]["composition"]["name"], "aws-rds-postgres");
    let rds = &docs[1];
    assert_eq!(rds["kind"], "RDSInstance");
    assert_eq!(
        rds["metadata"]["name"],
        dbclaim::naming::composed_name("team-a", "orders-db", "instance").as_str()
    );
    assert_eq!(
        rds["spec"]["forProvider"]["dbInstanceClass"],
        "db.m6g.large"
    );
    assert_eq!(rds["spec"]["forProvider"]["allocatedStorage"], 50);
    assert_eq!(
        rds["metadata"]["labels"]["dbclaim.io/claim-namespace"],
        "team-a"
    );
}

#[test]
fn render_with_observed_objects_reads_them() {
    let out = dbclaim(&[
        "render",
        "-c",
        "examples/claim.yaml",
        "-C",
        "compositions/aws-rds-postgres.yaml",
        "-o",
        "tests/fixtures/observed-rds.yaml",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let docs = dbclaim::cli::yaml_documents(&text(&out.stdout)).unwrap_or_else(|e| panic!("{e}"));
    let status = &docs[0]["status"];
    assert_eq!(
        status["outputs"]["endpoint"],
        "orders.abc.us-east-1.rds.amazonaws.com"
    );
    assert_eq!(status["resources"][0]["ready"], true);
}

#[test]
fn validate_reports_the_resource_and_patch_of_a_broken_composition() {
    let out = dbclaim(&["validate", "tests/fixtures/broken-composition.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("broken-composition.yaml"), "{stdout}");
    assert!(
        stdout.contains("resource \"instance\", patch 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("resource \"instance\", patch 2"),
        "{stdout}"
    );
}

#[test]
fn render_of_a_missing_file_fails_with_exit_1() {
    let out = dbclaim(&[
        "render",
        "-c",
        "no/such/claim.yaml",
        "-C",
        "compositions/shared-postgres.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no/such/claim.yaml"));
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        &["render"][..],
        &["frobnicate"],
        &["validate"],
        &["run", "--concurrency", "0"],
        &["trace"],
        &["trace", "pod/orders"],
        &["trace", "dbc/orders", "-o", "yaml"],
    ] {
        let out = dbclaim(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

/// The shipped shared-postgres composition never renders a Database name
/// that the Database CRD refuses (^[a-z_][a-z0-9_-]{0,62}$), and leaves a
/// name that already fits as it is.
#[test]
fn shared_postgres_database_names_always_fit_the_database_crd() {
    let pattern = regex::Regex::new(r"^[a-z_][a-z0-9_-]{0,62}$").unwrap_or_else(|e| panic!("{e}"));
    let long_ns = format!("t{}", "e".repeat(62));
    let long_db = format!("d{}", "b".repeat(62));
    let cases: Vec<(String, String, Option<String>, Option<&str>)> = vec![
        // (namespace, claim name, databaseName, expected name when it fits)
        (
            "team-a".into(),
            "orders-db".into(),
            Some("orders".into()),
            Some("team-a_orders"),
        ),
        (
            "team-a".into(),
            "orders-db".into(),
            None,
            Some("team-a_orders_db"),
        ),
        (long_ns.clone(), "c".into(), Some(long_db), None),
        (long_ns, "orders".into(), None, None),
        ("1team".into(), "orders".into(), None, Some("team_orders")),
        ("42".into(), "orders".into(), None, Some("_orders")),
        (
            "team-a".into(),
            "orders.v2".into(),
            None,
            Some("team-a_orders"),
        ),
        ("9-x".into(), "a.b.c".into(), None, Some("x_a")),
    ];
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (i, (ns, name, db, want)) in cases.into_iter().enumerate() {
        let db_line = db
            .map(|d| format!("  databaseName: {d}\n"))
            .unwrap_or_default();
        let claim = format!(
            "apiVersion: dbclaim.io/v1alpha1\nkind: DatabaseClaim\nmetadata:\n  name: {name}\n  namespace: \"{ns}\"\nspec:\n  engine: postgres\n{db_line}"
        );
        let path = dir.path().join(format!("claim-{i}.yaml"));
        std::fs::write(&path, claim).unwrap_or_else(|e| panic!("{e}"));
        let out = dbclaim(&[
            "render",
            "-c",
            &path.display().to_string(),
            "-C",
            "compositions/shared-postgres.yaml",
        ]);
        assert!(out.status.success(), "{ns}/{name}: {}", text(&out.stderr));
        let docs: Vec<serde_json::Value> =
            dbclaim::cli::yaml_documents(&text(&out.stdout)).unwrap_or_else(|e| panic!("{e}"));
        let got = docs[1]["spec"]["forProvider"]["databaseName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            pattern.is_match(&got),
            "{ns}/{name}: {got:?} does not fit the CRD"
        );
        if let Some(want) = want {
            assert_eq!(got, want, "{ns}/{name}");
        }
    }
}

#[test]
fn validate_refuses_connection_detail_names_that_are_not_secret_keys() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("bad-key.yaml");
    std::fs::write(
        &path,
        "apiVersion: dbclaim.io/v1alpha1\nkind: Composition\nmetadata:\n  name: bad-key\nspec:\n  engines: [postgres]\n  resources:\n  - name: cm\n    base:\n      apiVersion: v1\n      kind: ConfigMap\n    connectionDetails:\n    - name: \"db host\"\n      value: x\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = dbclaim(&["validate", &path.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        all.contains("connection detail \"db host\"") && all.contains("not a valid Secret key"),
        "{all}"
    );
    // And render refuses it too, as the claim controller would.
    let out = dbclaim(&[
        "render",
        "-c",
        "examples/claim.yaml",
        "-C",
        &path.display().to_string(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not a valid Secret key"),
        "{}",
        text(&out.stderr)
    );
}

/// The shipped compositions give tenants only what a platform team would
/// allow by default: connectionLimit 1..100, backupRetentionDays 1..35.
#[test]
fn shipped_compositions_clamp_tenant_knobs() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let render = |composition: &str, params: &str| {
        let path = dir.path().join("claim.yaml");
        std::fs::write(
            &path,
            format!(
                "apiVersion: dbclaim.io/v1alpha1\nkind: DatabaseClaim\nmetadata: {{name: app, namespace: team-a}}\nspec:\n  engine: postgres\n  parameters: {params}\n"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let out = dbclaim(&[
            "render",
            "-c",
            &path.display().to_string(),
            "-C",
            composition,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let docs =
            dbclaim::cli::yaml_documents(&text(&out.stdout)).unwrap_or_else(|e| panic!("{e}"));
        docs[1]["spec"]["forProvider"].clone()
    };
    for (given, got) in [("-1", 1), ("0", 1), ("50", 50), ("100000", 100)] {
        let fp = render(
            "compositions/shared-postgres.yaml",
            &format!("{{connectionLimit: \"{given}\"}}"),
        );
        assert_eq!(fp["connectionLimit"], got, "connectionLimit {given}");
    }
    for comp in [
        "compositions/aws-rds-postgres.yaml",
        "compositions/aws-rds-mysql.yaml",
    ] {
        for (given, got) in [("0", 1), ("14", 14), ("400", 35)] {
            let fp = render(comp, &format!("{{backupRetentionDays: \"{given}\"}}"));
            assert_eq!(fp["backupRetentionPeriod"], got, "{comp} {given}");
        }
    }
}

#[test]
fn validate_with_crds_names_the_resource_patch_and_path_of_a_mismatch() {
    let out = dbclaim(&[
        "validate",
        "--crds",
        "tests/fixtures/crds",
        "tests/fixtures/crd-mismatch-composition.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "composition \"crd-mismatch\": resource \"instance\", patch 1: toFieldPath spec.diskSizeGb: \
             field \"diskSizeGb\" does not exist"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "resource \"instance\", patch 2: toFieldPath spec.diskSize: the CRD wants integer, the patch writes string"
        ),
        "{stdout}"
    );
    // Without --crds the same composition passes: only the CRDs know.
    let out = dbclaim(&["validate", "tests/fixtures/crd-mismatch-composition.yaml"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
}

#[test]
fn validate_with_crds_refuses_kinds_without_a_crd_and_checks_dbclaims_own() {
    // The shipped AWS composition against dbclaim's own CRDs: passes.
    let out = dbclaim(&[
        "validate",
        "--crds",
        "crds",
        "compositions/aws-rds-postgres.yaml",
        "compositions/shared-postgres.yaml",
    ]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    // Against a directory without its kinds: each composed kind is named.
    let out = dbclaim(&[
        "validate",
        "--crds",
        "tests/fixtures/crds",
        "compositions/aws-rds-postgres.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains(
            "resource \"instance\": no CRD defines RDSInstance in aws.dbclaim.io/v1alpha1"
        ),
        "{}",
        text(&out.stdout)
    );
    // A directory with no CRD at all is a mistake, not a pass.
    let out = dbclaim(&[
        "validate",
        "--crds",
        "tests/snapshots",
        "compositions/aws-rds-postgres.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("no CustomResourceDefinition found"),
        "{}",
        text(&out.stdout)
    );
}

/// The shipped AWS compositions place instances as a platform runs
/// production: the platform's subnet group and security group, gp3 with an
/// autoscaling ceiling of twice storageGB, encryption, Performance
/// Insights; `large` adds deletion protection, a final snapshot and changes
/// deferred to the maintenance window.
#[test]
fn aws_compositions_place_instances_for_production() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let render = |composition: &str, engine: &str, size: &str, storage: u32| {
        let path = dir.path().join("claim.yaml");
        std::fs::write(
            &path,
            format!(
                "apiVersion: dbclaim.io/v1alpha1\nkind: DatabaseClaim\nmetadata: {{name: app, namespace: team-a}}\nspec:\n  engine: {engine}\n  size: {size}\n  storageGB: {storage}\n"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let out = dbclaim(&[
            "render",
            "-c",
            &path.display().to_string(),
            "-C",
            composition,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let docs =
            dbclaim::cli::yaml_documents(&text(&out.stdout)).unwrap_or_else(|e| panic!("{e}"));
        let spec: dbclaim::api::aws::RDSInstanceSpec =
            serde_json::from_value(docs[1]["spec"].clone())
                .unwrap_or_else(|e| panic!("{composition} {size}: not an RDSInstance spec: {e}"));
        spec.for_provider
    };
    for (composition, engine) in [
        ("compositions/aws-rds-postgres.yaml", "postgres"),
        ("compositions/aws-rds-mysql.yaml", "mysql"),
    ] {
        for (size, production) in [("small", false), ("medium", false), ("large", true)] {
            let fp = render(composition, engine, size, 50);
            let s = &fp.settings;
            let what = format!("{composition} {size}");
            assert_eq!(
                s.db_subnet_group_name.as_deref(),
                Some("dbclaim-private"),
                "{what}"
            );
            assert!(
                s.vpc_security_group_ids
                    .as_ref()
                    .is_some_and(|g| !g.is_empty()),
                "{what}"
            );
            assert_eq!(
                s.storage_type,
                Some(dbclaim::api::aws::StorageType::Gp3),
                "{what}"
            );
            assert_eq!(fp.allocated_storage, 50, "{what}");
            assert_eq!(s.max_allocated_storage, Some(100), "{what}");
            assert!(fp.storage_encrypted, "{what}");
            assert!(!fp.publicly_accessible, "{what}");
            // RDS for MySQL has none on micro classes
            let insights = engine == "postgres" || size != "small";
            assert_eq!(s.enable_performance_insights, Some(insights), "{what}");
            assert!(s.preferred_backup_window.is_some(), "{what}");
            assert!(s.preferred_maintenance_window.is_some(), "{what}");
            assert_eq!(fp.deletion_protection, production, "{what}");
            assert_eq!(fp.skip_final_snapshot, !production, "{what}");
            assert_eq!(s.apply_immediately, !production, "{what}");
            // what the CRD's CEL rules refuse never renders
            assert!(s.iops.is_none() && s.storage_throughput.is_none(), "{what}");
            assert!(s.monitoring_interval.is_none_or(|i| i == 0), "{what}");
        }
        // the ceiling follows the claim and stays within RDS's maximum
        assert_eq!(
            render(composition, engine, "small", 40000)
                .settings
                .max_allocated_storage,
            Some(65536)
        );
    }
}

// ------------------------------------------------------------------ diff

/// `dbclaim diff` offline: (exit code, stdout, stderr).
fn diff(args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["diff"];
    all.extend_from_slice(args);
    let out = dbclaim(&all);
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[test]
fn diff_offline_snapshots_and_exit_codes() {
    let cases = [
        (
            "compositions/aws-rds-postgres.yaml",
            0,
            "diff-unchanged.txt",
        ),
        (
            "tests/fixtures/diff/class-change.yaml",
            1,
            "diff-class-change.txt",
        ),
        (
            "tests/fixtures/diff/new-master-user.yaml",
            3,
            "diff-new-master-user.txt",
        ),
    ];
    for (composition, code, snapshot) in cases {
        let (got, out, err) = diff(&[
            "-C",
            composition,
            "-c",
            "examples/claim.yaml",
            "-o",
            "tests/fixtures/diff/observed.yaml",
        ]);
        assert_eq!(got, code, "{composition}: {out}{err}");
        // Piped: no colour.
        assert!(!out.contains('\u{1b}'), "{out}");
        check_snapshot(snapshot, &out);
    }
}

#[test]
fn diff_json_for_ci() {
    let (code, out, err) = diff(&[
        "-C",
        "tests/fixtures/diff/new-master-user.yaml",
        "-c",
        "examples/claim.yaml",
        "--observed",
        "tests/fixtures/diff/observed.yaml",
        "--output",
        "json",
    ]);
    assert_eq!(code, 3, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["destructive"], true);
    assert_eq!(v["changed"], true);
    assert_eq!(v["claims"][0]["claim"], "team-a/orders-db");
    assert_eq!(v["claims"][0]["objects"][0]["action"], "changed");
    // `-o json` is the format where no observed file is meant.
    let (code, out, _) = diff(&[
        "-C",
        "compositions/aws-rds-postgres.yaml",
        "-c",
        "examples/claim.yaml",
        "-o",
        "json",
    ]);
    assert_eq!(code, 1, "without observed objects everything is created");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["claims"][0]["objects"][0]["action"], "created");
}

#[test]
fn diff_bad_usage_and_errors_exit_2() {
    assert_eq!(diff(&[]).0, 2, "no -C");
    assert_eq!(
        diff(&["-C", "no-such-file.yaml", "-c", "examples/claim.yaml"]).0,
        2
    );
    let (code, _, err) = diff(&[
        "-C",
        "compositions/aws-rds-postgres.yaml",
        "-o",
        "observed.yaml",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("needs -c CLAIM"), "{err}");
}

#[test]
fn diff_of_a_manual_claim_says_it_is_pinned() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let claim = dir.path().join("claim.yaml");
    let manual = std::fs::read_to_string(root().join("examples/claim.yaml"))
        .unwrap_or_else(|e| panic!("{e}"))
        + "  compositionUpdatePolicy: Manual\n";
    std::fs::write(&claim, manual).unwrap_or_else(|e| panic!("{e}"));
    let (code, out, _) = diff(&[
        "-C",
        "tests/fixtures/diff/class-change.yaml",
        "-c",
        &claim.display().to_string(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("team-a/orders-db: Manual, pinned to"), "{out}");
    assert!(out.contains("unaffected"), "{out}");
}

// ------------------------------------------------------------- revisions

/// A CompositionRevision manifest of the shipped aws-rds-postgres spec.
fn revision_manifest(name: &str) -> String {
    let composition = std::fs::read_to_string(root().join("compositions/aws-rds-postgres.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let spec = composition
        .split_once("\nspec:\n")
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("no spec"));
    format!(
        "apiVersion: dbclaim.io/v1alpha1\nkind: CompositionRevision\nmetadata:\n  name: {name}\n  labels: {{dbclaim.io/composition-name: aws-rds-postgres}}\nspec:\n  revision: 2\n{spec}"
    )
}

#[test]
fn validate_checks_a_revision_and_render_accepts_one() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("rev.yaml");
    let p = path.display().to_string();
    // A name that is not the spec's: edited, or made by hand.
    std::fs::write(&path, revision_manifest("aws-rds-postgres-0000000"))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = dbclaim(&["validate", &p]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("revisions are immutable"), "{stdout}");
    let expected = stdout
        .split("is named ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_string();
    assert!(
        expected.starts_with("aws-rds-postgres-") && expected.len() == 24,
        "{expected}"
    );
    // Named as the operator names it: valid.
    std::fs::write(&path, revision_manifest(&expected)).unwrap_or_else(|e| panic!("{e}"));
    let out = dbclaim(&["validate", &p]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    // Rendering a revision renders its spec, as the composition does.
    let from_revision = dbclaim(&["render", "-c", "examples/claim.yaml", "-C", &p]);
    let from_composition = dbclaim(&[
        "render",
        "-c",
        "examples/claim.yaml",
        "-C",
        "compositions/aws-rds-postgres.yaml",
    ]);
    assert!(
        from_revision.status.success(),
        "{}",
        text(&from_revision.stderr)
    );
    assert_eq!(text(&from_revision.stdout), text(&from_composition.stdout));
    // A revision without its label, or with a broken spec, is reported.
    let unlabelled = revision_manifest(&expected).replace(
        "  labels: {dbclaim.io/composition-name: aws-rds-postgres}\n",
        "",
    );
    std::fs::write(&path, unlabelled).unwrap_or_else(|e| panic!("{e}"));
    let out = dbclaim(&["validate", &p]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("belongs to no composition"));
}

// ---- crds --check-compat ---------------------------------------------------

#[test]
fn crds_are_compatible_with_the_baseline() {
    let out = dbclaim(&["crds", "--check-compat", "compat/baseline"]);
    assert!(
        out.status.success(),
        "today's CRDs break the baseline:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// compat/baseline with its DatabaseClaim CRD edited by `edit`, in a temp dir.
fn baseline_with(edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for entry in std::fs::read_dir(root().join("compat/baseline")).unwrap_or_else(|e| panic!("{e}"))
    {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap_or_default()))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let file = dir.path().join("databaseclaims.dbclaim.io.yaml");
    let mut crd: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
    edit(&mut crd);
    std::fs::write(
        &file,
        serde_yaml::to_string(&crd).unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    dir
}

fn spec_schema(crd: &mut serde_json::Value) -> &mut serde_json::Value {
    &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
}

#[test]
fn check_compat_fails_with_one_line_per_break() {
    type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "removed served version",
            Box::new(|crd| {
                let mut old = crd["spec"]["versions"][0].clone();
                old["name"] = "v1alpha0".into();
                old["storage"] = false.into();
                crd["spec"]["versions"].as_array_mut().unwrap().push(old);
            }),
            "databaseclaims.dbclaim.io: served version v1alpha0 removed",
        ),
        (
            "stored version no longer served",
            Box::new(|crd| {
                crd["status"] = serde_json::json!({"storedVersions": ["v1alpha0", "v1alpha1"]})
            }),
            "databaseclaims.dbclaim.io: stored version v1alpha0 is no longer served",
        ),
        (
            "removed field",
            Box::new(|crd| {
                spec_schema(crd)["properties"]["legacy"] = serde_json::json!({"type": "string"});
            }),
            "databaseclaims.dbclaim.io v1alpha1: .spec.legacy: field removed",
        ),
        (
            "narrowed enum",
            Box::new(|crd| {
                spec_schema(crd)["properties"]["size"]["enum"]
                    .as_array_mut()
                    .unwrap()
                    .push("xlarge".into());
            }),
            "databaseclaims.dbclaim.io v1alpha1: .spec.size: enum narrowed: no longer accepts \"xlarge\"",
        ),
        (
            "narrowed pattern",
            Box::new(|crd| {
                spec_schema(crd)["properties"]["databaseName"]["pattern"] = "^.*$".into();
            }),
            "databaseclaims.dbclaim.io v1alpha1: .spec.databaseName: pattern changed",
        ),
        (
            "narrowed range",
            Box::new(|crd| {
                spec_schema(crd)["properties"]["storageGB"]["maximum"] = 100000.0.into();
            }),
            "databaseclaims.dbclaim.io v1alpha1: .spec.storageGB: maximum lowered to 65536 (was 100000.0)",
        ),
        (
            "new required field",
            Box::new(|crd| {
                spec_schema(crd)["required"] = serde_json::json!([]);
            }),
            "databaseclaims.dbclaim.io v1alpha1: .spec: new required field engine",
        ),
        (
            "changed type",
            Box::new(|crd| {
                spec_schema(crd)["properties"]["storageGB"] = serde_json::json!({"type": "string"});
            }),
            "databaseclaims.dbclaim.io v1alpha1: .spec.storageGB: type changed from \"string\" to \"integer\"",
        ),
    ];
    for (kind, edit, line) in cases {
        let dir = baseline_with(edit);
        let out = dbclaim(&["crds", "--check-compat", &dir.path().display().to_string()]);
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{kind}: {stdout}{}",
            text(&out.stderr)
        );
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 1, "{kind}: one line per break:\n{stdout}");
        assert!(lines[0].starts_with(line), "{kind}:\n{stdout}");
        assert!(
            text(&out.stderr).contains("1 incompatible change"),
            "{kind}"
        );
    }
}

#[test]
fn check_compat_passes_an_additive_change() {
    // The old release lacked parameters and knew fewer kinds: today adds them.
    let dir = baseline_with(|crd| {
        spec_schema(crd)["properties"]
            .as_object_mut()
            .unwrap()
            .remove("parameters");
    });
    std::fs::remove_file(dir.path().join("rdsinstances.aws.dbclaim.io.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = dbclaim(&["crds", "--check-compat", &dir.path().display().to_string()]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

// ---- API versions ------------------------------------------------------------

#[test]
fn render_takes_a_v1beta1_claim_and_composes_the_same_objects() {
    let composition = "compositions/aws-rds-postgres.yaml";
    let old = dbclaim(&["render", "-c", "examples/claim.yaml", "-C", composition]);
    let new = dbclaim(&[
        "render",
        "-c",
        "examples/claim-v1beta1.yaml",
        "-C",
        composition,
    ]);
    assert!(
        old.status.success() && new.status.success(),
        "{}",
        text(&new.stderr)
    );
    let (old, new) = (text(&old.stdout), text(&new.stdout));
    // The claim is printed in its own version, the composed objects alike.
    let body = |s: &str| s.splitn(3, "---\n").nth(2).unwrap_or_default().to_string();
    assert_eq!(body(&old), body(&new));
    assert!(new.contains("apiVersion: dbclaim.io/v1beta1") && new.contains("storage: 50Gi"));
}

#[test]
fn validate_checks_paths_against_the_declared_claim_version() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let comp = |version: &str, field: &str| {
        format!(
            r#"apiVersion: dbclaim.io/v1alpha1
kind: Composition
metadata: {{name: c}}
spec:
  claimAPIVersion: {version}
  engines: [postgres]
  resources:
  - name: cm
    base: {{apiVersion: v1, kind: ConfigMap}}
    patches:
    - {{fromFieldPath: spec.{field}, toFieldPath: data.storage, transforms: [{{type: convert, convert: {{toType: string}}}}]}}
"#
        )
    };
    for (version, field, ok) in [
        ("dbclaim.io/v1alpha1", "storageGB", true),
        ("dbclaim.io/v1beta1", "storage", true),
        ("dbclaim.io/v1beta1", "storageGB", false),
        ("dbclaim.io/v1alpha1", "storage", false),
    ] {
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, comp(version, field)).unwrap_or_else(|e| panic!("{e}"));
        let out = dbclaim(&["validate", &file.display().to_string()]);
        assert_eq!(
            out.status.success(),
            ok,
            "{version} {field}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}
