//! Master password rotation: pure decisions and where their state lives.
//! The new password is recorded in the connection Secret (beside the
//! current one, which stays in use) before ModifyDBInstance sends it, and
//! becomes the Secret's `password` only once RDS accepted it; a failed or
//! throttled call leaves the old password in place and is retried with the
//! same new one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use crate::contract::aws::{
    PENDING_PASSWORD_KEY, PENDING_TOKEN_ANNOTATION, ROTATION_DONE_ANNOTATION, ROTATION_MANAGER,
};
use crate::provider::managed::secret::{annotation, apply_rotation_state, text};

/// The rotation state of an instance's connection Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// The token of the last rotation completed.
    pub done: Option<String>,
    /// A rotation under way: (token, new password).
    pub pending: Option<(String, String)>,
}

pub fn read(secret: Option<&Secret>) -> State {
    let pending =
        annotation(secret, PENDING_TOKEN_ANNOTATION).zip(text(secret, PENDING_PASSWORD_KEY));
    State {
        done: annotation(secret, ROTATION_DONE_ANNOTATION),
        pending,
    }
}

/// The token to start a rotation for, if the object asks for one that is
/// neither done nor under way.
pub fn to_start<'a>(state: &State, want: Option<&'a str>) -> Option<&'a str> {
    let want = want.filter(|w| !w.is_empty())?;
    (state.pending.is_none() && state.done.as_deref() != Some(want)).then_some(want)
}

/// The Secret fields the rotation manager owns: `password` is the one the
/// Secret holds after this write, listed in every apply: once a switch made
/// the rotation manager its only owner, an apply without it would delete it
/// (server-side apply), and a crash then would leave no password.
fn fields(state: &State, password: &str) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut annotations = BTreeMap::new();
    let mut data = BTreeMap::from([("password".to_string(), password.to_string())]);
    if let Some(d) = &state.done {
        annotations.insert(ROTATION_DONE_ANNOTATION.to_string(), d.clone());
    }
    if let Some((token, pw)) = &state.pending {
        annotations.insert(PENDING_TOKEN_ANNOTATION.to_string(), token.clone());
        data.insert(PENDING_PASSWORD_KEY.to_string(), pw.clone());
    }
    (annotations, data)
}

/// Records `state` with `password` as the Secret's (the new one once RDS
/// accepted it, else the one it holds).
pub async fn write(
    client: &kube::Client,
    target: &(String, String),
    state: &State,
    password: &str,
) -> Result<(), kube::Error> {
    let (annotations, data) = fields(state, password);
    apply_rotation_state(client, target, ROTATION_MANAGER, annotations, data).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_starts_once_per_token_and_resumes() {
        let none = State::default();
        assert_eq!(to_start(&none, None), None);
        assert_eq!(to_start(&none, Some("")), None);
        assert_eq!(to_start(&none, Some("t1")), Some("t1"));
        let pending = State {
            done: None,
            pending: Some(("t1".into(), "pw".into())),
        };
        // Under way: the recorded password is sent again, no new one.
        assert_eq!(to_start(&pending, Some("t2")), None);
        let done = State {
            done: Some("t1".into()),
            pending: None,
        };
        assert_eq!(to_start(&done, Some("t1")), None);
        assert_eq!(to_start(&done, Some("t2")), Some("t2"));
    }

    #[test]
    fn the_secret_password_changes_only_with_the_switch() {
        let pending = State {
            done: Some("t0".into()),
            pending: Some(("t1".into(), "new".into())),
        };
        let (a, d) = fields(&pending, "old");
        assert_eq!(d.get("password").map(String::as_str), Some("old"));
        assert_eq!(d.get(PENDING_PASSWORD_KEY).map(String::as_str), Some("new"));
        assert_eq!(
            a.get(PENDING_TOKEN_ANNOTATION).map(String::as_str),
            Some("t1")
        );
        let done = State {
            done: Some("t1".into()),
            pending: None,
        };
        let (a, d) = fields(&done, "new");
        assert_eq!(d.get("password").map(String::as_str), Some("new"));
        assert_eq!(d.get(PENDING_PASSWORD_KEY), None);
        assert_eq!(
            a.get(ROTATION_DONE_ANNOTATION).map(String::as_str),
            Some("t1")
        );
    }
}
