//! The claim controller: its reconcile and watches (`claim`), what every
//! reconcile shares (`context`), composed kinds (`kinds`) and the labels
//! that tie objects to their claim (`labels`). The process around it is
//! `crate::operator`.

pub mod cache;
pub mod claim;
pub mod collector;
pub mod context;
pub mod kinds;
pub mod labels;
pub mod revisions;
pub mod shared_read;
