//! Providers: controllers that reconcile managed resources against external systems.
//! (Placeholder until the postgres provider branch merges.)

pub struct Config {
    pub operator_namespace: String,
    pub concurrency: u16,
}

pub mod postgres {
    pub async fn run(_client: kube::Client, _config: super::Config) {
        std::future::pending::<()>().await
    }
}
