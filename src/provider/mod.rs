//! Providers: controllers that reconcile managed resources against external systems.
