//! Two logins per database, for rotations without a failed connection:
//! pure. The database's owner role (named after the database) becomes the
//! group role; two login roles, `<name>_1` and `<name>_2`, are members of
//! it and act as it (`SET ROLE` on login), so whatever either creates is
//! owned by the group and stays usable by the other.
//!
//! A rotation, each step persisted before the next so a crash anywhere
//! leaves credentials that log in:
//!
//! 1. [`Step::Prepare`]: a new password for the idle login is recorded
//!    with the rotation's token (in the provider's connection Secret,
//!    beside the current credentials, which stay in use).
//! 2. [`Step::SetPasswordAndSwitch`]: the idle login gets that password
//!    (idempotent: a crash repeats it), then the Secret switches
//!    `username` and `password` together and records the previous login
//!    as retiring after the grace period.
//! 3. [`Step::Disable`]: once the grace period is over, the previous login
//!    is refused (NOLOGIN). The next rotation waits for that.
//!
//! A database from before two logins (the owner role logs in itself)
//! moves on its first rotation: the owner is the "previous login", and
//! keeps owning every object.

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Role names are at most 63 bytes; the suffix needs two.
const MAX_GROUP_PREFIX: usize = 61;

/// Where a database's logins stand, as recorded with its connection Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Logins {
    /// The login the Secret names now: the group role itself before the
    /// first rotation.
    pub current: String,
    /// A rotation under way: its new password is recorded, the switch not
    /// made yet.
    pub pending: Option<Pending>,
    /// The previous login, refused once its grace period is over.
    pub retiring: Option<Retiring>,
    /// The token of the last rotation that completed.
    pub done: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub token: String,
    pub login: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retiring {
    pub login: String,
    pub after: Timestamp,
}

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to rotate.
    Idle,
    /// Record a new password for `login` with `token`, before the server
    /// sees it.
    Prepare { token: String, login: String },
    /// Give the pending login the recorded password (LOGIN, member of the
    /// group, acting as it), then switch the Secret to it; `retiring` is the
    /// login the Secret named until now.
    SetPasswordAndSwitch {
        login: String,
        token: String,
        retiring: Retiring,
    },
    /// The grace period of `login` is over: refuse it.
    Disable { login: String },
    /// A grace period runs; look again at this time.
    WaitUntil(Timestamp),
}

/// The two login roles of the group role `group`.
pub fn login_names(group: &str) -> [String; 2] {
    let prefix: String = group.chars().take(MAX_GROUP_PREFIX).collect();
    [format!("{prefix}_1"), format!("{prefix}_2")]
}

/// The login a rotation sets up: the one the Secret does not name.
pub fn idle_login(group: &str, current: &str) -> String {
    let [one, two] = login_names(group);
    if current == one { two } else { one }
}

/// The next step for `logins` of `group`, when the Database asks for the
/// rotation `want` (its token), at `now`, with `grace` for the previous login.
pub fn next(
    group: &str,
    logins: &Logins,
    want: Option<&str>,
    now: Timestamp,
    grace: SignedDuration,
) -> Step {
    if let Some(p) = &logins.pending {
        // Resumed whatever the token says now: the recorded password may
        // already be on the server, and the Secret must end up naming it.
        return Step::SetPasswordAndSwitch {
            login: p.login.clone(),
            token: p.token.clone(),
            retiring: Retiring {
                login: logins.current.clone(),
                after: now.checked_add(grace).unwrap_or(now),
            },
        };
    }
    if let Some(r) = &logins.retiring {
        return match now >= r.after {
            true => Step::Disable {
                login: r.login.clone(),
            },
            // The retiring login is the next idle one: a new rotation waits.
            false => Step::WaitUntil(r.after),
        };
    }
    match want {
        Some(token) if !token.is_empty() && logins.done.as_deref() != Some(token) => {
            Step::Prepare {
                token: token.to_string(),
                login: idle_login(group, &logins.current),
            }
        }
        _ => Step::Idle,
    }
}

/// `logins` after `step` was carried out.
pub fn after(logins: &Logins, step: &Step) -> Logins {
    let mut out = logins.clone();
    match step {
        Step::Idle | Step::WaitUntil(_) => {}
        Step::Prepare { token, login } => {
            out.pending = Some(Pending {
                token: token.clone(),
                login: login.clone(),
            });
        }
        Step::SetPasswordAndSwitch {
            login,
            token,
            retiring,
        } => {
            out.current = login.clone();
            out.pending = None;
            out.done = Some(token.clone());
            out.retiring = Some(retiring.clone());
        }
        Step::Disable { .. } => out.retiring = None,
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap_or_default()
    }

    const GRACE: SignedDuration = SignedDuration::from_secs(600);

    /// Runs steps until the machine rests or waits; returns them.
    fn run(logins: &mut Logins, want: Option<&str>, now: Timestamp) -> Vec<Step> {
        let mut steps = Vec::new();
        for _ in 0..10 {
            let step = next("orders", logins, want, now, GRACE);
            if matches!(step, Step::Idle | Step::WaitUntil(_)) {
                steps.push(step);
                break;
            }
            *logins = after(logins, &step);
            steps.push(step);
        }
        steps
    }

    #[test]
    fn names_fit_postgres_limits() {
        assert_eq!(login_names("orders"), ["orders_1", "orders_2"]);
        let long = "x".repeat(63);
        for n in login_names(&long) {
            assert_eq!(n.len(), 63);
        }
        assert_eq!(idle_login("orders", "orders"), "orders_1");
        assert_eq!(idle_login("orders", "orders_1"), "orders_2");
        assert_eq!(idle_login("orders", "orders_2"), "orders_1");
    }

    #[test]
    fn nothing_happens_without_a_new_token() {
        let logins = Logins {
            current: "orders".into(),
            ..Default::default()
        };
        assert_eq!(next("orders", &logins, None, t(0), GRACE), Step::Idle);
        let done = Logins {
            done: Some("t1".into()),
            ..logins
        };
        assert_eq!(next("orders", &done, Some("t1"), t(0), GRACE), Step::Idle);
    }

    #[test]
    fn a_one_role_database_moves_to_two_logins_and_alternates() {
        let mut logins = Logins {
            current: "orders".into(),
            ..Default::default()
        };
        // First rotation: the owner is the previous login.
        let steps = run(&mut logins, Some("t1"), t(0));
        assert_eq!(
            steps,
            vec![
                Step::Prepare {
                    token: "t1".into(),
                    login: "orders_1".into()
                },
                Step::SetPasswordAndSwitch {
                    login: "orders_1".into(),
                    token: "t1".into(),
                    retiring: Retiring {
                        login: "orders".into(),
                        after: t(600)
                    }
                },
                Step::WaitUntil(t(600)),
            ]
        );
        assert_eq!(logins.current, "orders_1");
        // Within the grace period a new rotation waits; after it, the
        // previous login is refused first, then the other login rotates.
        assert_eq!(
            next("orders", &logins, Some("t2"), t(300), GRACE),
            Step::WaitUntil(t(600))
        );
        let steps = run(&mut logins, Some("t2"), t(601));
        assert_eq!(
            steps[0],
            Step::Disable {
                login: "orders".into()
            }
        );
        assert_eq!(
            steps[1],
            Step::Prepare {
                token: "t2".into(),
                login: "orders_2".into()
            }
        );
        assert_eq!(logins.current, "orders_2");
        let steps = run(&mut logins, Some("t3"), t(2000));
        assert_eq!(
            steps[0],
            Step::Disable {
                login: "orders_1".into()
            }
        );
        assert_eq!(logins.current, "orders_1");
        assert_eq!(logins.done.as_deref(), Some("t3"));
    }

    #[test]
    fn a_crash_after_any_step_resumes_the_same_rotation() {
        let start = Logins {
            current: "orders_1".into(),
            done: Some("t1".into()),
            ..Default::default()
        };
        // Crash after Prepare: the pending password is set and switched to,
        // even if the token moved on meanwhile (the next one follows).
        let prepared = after(&start, &next("orders", &start, Some("t2"), t(0), GRACE));
        assert_eq!(
            prepared.current, "orders_1",
            "the Secret still names the working login"
        );
        for want in [Some("t2"), Some("t3"), None] {
            match next("orders", &prepared, want, t(5), GRACE) {
                Step::SetPasswordAndSwitch {
                    login,
                    token,
                    retiring,
                } => {
                    assert_eq!(login, "orders_2");
                    assert_eq!(token, "t2");
                    assert_eq!(retiring.login, "orders_1");
                }
                other => panic!("{other:?}"),
            }
        }
        // Crash after the switch: only the grace period and the disable are left.
        let switched = after(
            &prepared,
            &next("orders", &prepared, Some("t2"), t(5), GRACE),
        );
        assert_eq!(
            next("orders", &switched, Some("t2"), t(10), GRACE),
            Step::WaitUntil(t(605))
        );
        let disabled = after(
            &switched,
            &next("orders", &switched, Some("t2"), t(700), GRACE),
        );
        assert_eq!(
            next("orders", &disabled, Some("t2"), t(700), GRACE),
            Step::Idle
        );
    }
}
