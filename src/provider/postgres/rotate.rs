//! Where the two-login state of [`super::logins`] lives: on the Database's
//! connection Secret, as annotations (and the pending password as a key),
//! written by a field manager of its own so the scaffold's applies keep it.
//! The switch writes `username`, `password` and the state in one apply.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;

use super::logins::{Logins, Pending, Retiring};
use crate::contract::postgres::{
    PENDING_LOGIN_ANNOTATION, PENDING_PASSWORD_KEY, PENDING_TOKEN_ANNOTATION,
    RETIRING_AFTER_ANNOTATION, RETIRING_LOGIN_ANNOTATION, ROTATION_DONE_ANNOTATION,
    ROTATION_MANAGER,
};
use crate::provider::managed::secret::{annotation, apply_rotation_state, text as data};

/// The logins of `group` as the Secret records them, and the pending
/// password. A Secret naming any other user (hand-edited) counts as the
/// group's own login.
pub fn read(secret: Option<&Secret>, group: &str) -> (Logins, Option<String>) {
    let names = super::logins::login_names(group);
    let ours = |login: &str| login == group || names.iter().any(|n| n == login);
    let current = data(secret, "username")
        .filter(|u| ours(u))
        .unwrap_or_else(|| group.to_string());
    let pending_password = data(secret, PENDING_PASSWORD_KEY);
    let pending = match (
        annotation(secret, PENDING_TOKEN_ANNOTATION),
        annotation(secret, PENDING_LOGIN_ANNOTATION),
        &pending_password,
    ) {
        (Some(token), Some(login), Some(_)) if ours(&login) && login != current => {
            Some(Pending { token, login })
        }
        _ => None,
    };
    let retiring = match (
        annotation(secret, RETIRING_LOGIN_ANNOTATION),
        annotation(secret, RETIRING_AFTER_ANNOTATION).and_then(|t| t.parse::<Timestamp>().ok()),
    ) {
        (Some(login), Some(after)) if ours(&login) && login != current => {
            Some(Retiring { login, after })
        }
        _ => None,
    };
    let logins = Logins {
        current,
        pending,
        retiring,
        done: annotation(secret, ROTATION_DONE_ANNOTATION),
    };
    (logins, pending_password)
}

/// The Secret fields the rotation manager owns for `logins` (annotations,
/// keys): what it does not list, an apply removes. The Secret's username
/// (`logins.current`) and `password` after this write are listed in every
/// apply,
/// since once a switch made the rotation manager their only owner, an
/// apply without them would delete them (server-side apply), and a crash
/// before the next pass would leave a Secret without credentials.
pub fn desired(
    logins: &Logins,
    pending_password: Option<&str>,
    password: &str,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut annotations = BTreeMap::new();
    if let Some(done) = &logins.done {
        annotations.insert(ROTATION_DONE_ANNOTATION.to_string(), done.clone());
    }
    let mut data = BTreeMap::from([
        ("username".to_string(), logins.current.clone()),
        ("password".to_string(), password.to_string()),
    ]);
    if let (Some(p), Some(password)) = (&logins.pending, pending_password) {
        annotations.insert(PENDING_TOKEN_ANNOTATION.to_string(), p.token.clone());
        annotations.insert(PENDING_LOGIN_ANNOTATION.to_string(), p.login.clone());
        data.insert(PENDING_PASSWORD_KEY.to_string(), password.to_string());
    }
    if let Some(r) = &logins.retiring {
        annotations.insert(RETIRING_LOGIN_ANNOTATION.to_string(), r.login.clone());
        annotations.insert(RETIRING_AFTER_ANNOTATION.to_string(), r.after.to_string());
    }
    (annotations, data)
}

/// Applies [`desired`] to the (existing) connection Secret.
pub async fn write(
    client: &kube::Client,
    target: &(String, String),
    logins: &Logins,
    pending_password: Option<&str>,
    password: &str,
) -> Result<(), kube::Error> {
    let (annotations, data) = desired(logins, pending_password, password);
    apply_rotation_state(client, target, ROTATION_MANAGER, annotations, data).await
}

#[cfg(test)]
mod tests {
    use super::*;

    use k8s_openapi::ByteString;

    fn secret((annotations, data): (BTreeMap<String, String>, BTreeMap<String, String>)) -> Secret {
        Secret {
            metadata: kube::api::ObjectMeta {
                annotations: Some(annotations),
                ..Default::default()
            },
            data: Some(
                data.into_iter()
                    .map(|(k, v)| (k, ByteString(v.into_bytes())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn state_round_trips_through_the_secret() {
        let logins = Logins {
            current: "orders_1".into(),
            pending: Some(Pending {
                token: "t2".into(),
                login: "orders_2".into(),
            }),
            retiring: None,
            done: Some("t1".into()),
        };
        let s = secret(desired(&logins, Some("pw2"), "pw1"));
        assert_eq!(
            s.data.as_ref().and_then(|d| d.get("password")),
            Some(&ByteString(b"pw1".to_vec())),
            "every write lists the credentials it keeps"
        );
        let (read_back, pw) = read(Some(&s), "orders");
        assert_eq!(read_back, logins);
        assert_eq!(pw.as_deref(), Some("pw2"));

        let switched = Logins {
            current: "orders_2".into(),
            pending: None,
            retiring: Some(Retiring {
                login: "orders_1".into(),
                after: Timestamp::from_second(100).unwrap_or_default(),
            }),
            done: Some("t2".into()),
        };
        let s = secret(desired(&switched, None, "pw2"));
        let (read_back, pw) = read(Some(&s), "orders");
        assert_eq!(read_back, switched);
        assert_eq!(pw, None);
    }

    #[test]
    fn a_secret_from_before_two_logins_names_the_group() {
        let (logins, _) = read(None, "orders");
        assert_eq!(logins.current, "orders");
        let s = Secret {
            data: Some(BTreeMap::from([(
                "username".to_string(),
                ByteString(b"someone_else".to_vec()),
            )])),
            ..Default::default()
        };
        assert_eq!(read(Some(&s), "orders").0.current, "orders");
    }
}
