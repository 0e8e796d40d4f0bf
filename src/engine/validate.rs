//! Static checks of a composition, for `dbclaim validate`.

use std::fmt;

use crate::api::CompositionSpec;

/// One thing wrong with a composition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub resource: String,
    pub patch: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.patch {
            Some(i) => write!(
                f,
                "resource \"{}\", patch {i}: {}",
                self.resource, self.message
            ),
            None => write!(f, "resource \"{}\": {}", self.resource, self.message),
        }
    }
}

pub fn validate(_spec: &CompositionSpec) -> Vec<Problem> {
    Vec::new()
}
