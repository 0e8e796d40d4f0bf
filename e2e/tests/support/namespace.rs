use super::{kubectl, kubectl_with_stdin, unique_name};

/// A namespace of its own for one test, deleted (without waiting) on Drop.
/// Set DBCLAIM_E2E_KEEP_NAMESPACES=1 to keep them for a post-mortem.
pub struct TestNamespace {
    name: String,
}

impl TestNamespace {
    /// Creates `<prefix>-<unique suffix>`, labelled `dbclaim.io/e2e=true`.
    pub fn new(prefix: &str) -> Self {
        let name = unique_name(prefix);
        let manifest = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels: {{dbclaim.io/e2e: \"true\"}}\n"
        );
        let out = kubectl_with_stdin(["create", "-f", "-"], &manifest);
        assert!(
            out.status.success(),
            "cannot create namespace {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::env::var_os("DBCLAIM_E2E_KEEP_NAMESPACES").is_some_and(|v| v == "1") {
            eprintln!(
                "keeping namespace {} (DBCLAIM_E2E_KEEP_NAMESPACES=1)",
                self.name
            );
            return;
        }
        // Best effort: the plane goes away after the run anyway.
        let out = kubectl([
            "delete",
            "namespace",
            &self.name,
            "--wait=false",
            "--ignore-not-found",
        ]);
        if !out.status.success() {
            eprintln!(
                "warning: could not delete namespace {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
