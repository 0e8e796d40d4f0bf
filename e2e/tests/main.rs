//! End-to-end tests against a real API server. Run them with `e2e/run-tests`,
//! which starts a local control plane and sets KUBECONFIG.

mod api_versions;
mod aws;
mod aws_settings;
mod chart;
mod claim_safety;
mod claims;
mod clouds;
mod credentials;
mod drills;
mod isolation;
mod monitoring;
mod ownership;
mod pg_tls;
mod policy;
mod postgres_provider;
mod review;
mod revisions;
mod safety;
mod smoke;
mod support;
