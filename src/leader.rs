//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it.
//!
//! One replica holds the Lease (`holderIdentity`) and renews it
//! (`renewTime`) every retry period; the others poll it. A candidate takes
//! the Lease only once it has seen the same record, unchanged, for the whole
//! `leaseDurationSeconds`, measured on its own clock from the moment it first
//! saw that record (so clock skew between nodes does not matter). Every write
//! is a replace carrying the `resourceVersion` that was read, so two
//! candidates never both win: the API server refuses the second (409).
//!
//! A leader that cannot renew within the renew deadline (shorter than the
//! lease duration) gives up, and `dbclaim run` then exits with an error:
//! it has stopped reconciling before any standby can see the lease expire.
//! Timeline: the leader's last successful renew started at `t`; a standby
//! saw that record no earlier than `t`, so it takes over no earlier than
//! `t + lease duration`, while the leader stops at `t + renew deadline` at the
//! latest.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tracing::{info, warn};

/// Timings of the election; client-go's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timings {
    /// How long a standby waits, after the holder's last change it saw,
    /// before taking the lease.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up.
    pub renew_deadline: Duration,
    /// How often the leader renews and standbys poll.
    pub retry_period: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl Timings {
    /// retry period < renew deadline < lease duration, lease in whole seconds.
    pub fn validate(&self) -> Result<(), String> {
        if self.lease_duration.subsec_nanos() != 0 || self.lease_duration < Duration::from_secs(1) {
            return Err(format!(
                "the leader election lease duration must be a whole number of seconds, at least 1s (got {:?})",
                self.lease_duration
            ));
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "the leader election renew deadline ({:?}) must be shorter than the lease duration ({:?}), so a leader stops before another can start",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err(format!(
                "the leader election retry period ({:?}) must be above zero and shorter than the renew deadline ({:?})",
                self.retry_period, self.renew_deadline
            ));
        }
        Ok(())
    }
}

/// Parses `15s`, `500ms`, `1m30s`, `2h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let bad = || format!("{text:?} is not a duration (examples: 15s, 500ms, 1m30s)");
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => return Err(bad()),
        };
        total += part;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// The part of a Lease that tells whether its holder is alive: any change
/// to it restarts a standby's wait.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub holder: String,
    pub lease_duration_seconds: i32,
    pub acquire_time: Option<Timestamp>,
    pub renew_time: Option<Timestamp>,
    pub transitions: i32,
}

impl Record {
    pub fn from_spec(spec: Option<&LeaseSpec>) -> Self {
        let Some(s) = spec else {
            return Self::default();
        };
        Self {
            holder: s.holder_identity.clone().unwrap_or_default(),
            lease_duration_seconds: s.lease_duration_seconds.unwrap_or(0),
            acquire_time: s.acquire_time.as_ref().map(|t| t.0),
            renew_time: s.renew_time.as_ref().map(|t| t.0),
            transitions: s.lease_transitions.unwrap_or(0),
        }
    }

    fn to_spec(&self) -> LeaseSpec {
        LeaseSpec {
            holder_identity: (!self.holder.is_empty()).then(|| self.holder.clone()),
            lease_duration_seconds: Some(self.lease_duration_seconds),
            acquire_time: self.acquire_time.map(MicroTime),
            renew_time: self.renew_time.map(MicroTime),
            lease_transitions: Some(self.transitions),
            ..Default::default()
        }
    }
}

/// What one election round does with the Lease it read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// We hold it: write a new renew time.
    Renew,
    /// Nobody holds it, or its holder let it expire: take it.
    Acquire,
    /// Someone else holds it and renewed it recently enough.
    Wait { holder: String },
}

/// The pure rule: `unchanged_for` is how long, on our own clock, the record
/// has been seen without any change.
pub fn decide(record: &Record, identity: &str, unchanged_for: Duration) -> Decision {
    if record.holder == identity {
        return Decision::Renew;
    }
    if record.holder.is_empty() {
        return Decision::Acquire;
    }
    let lease = Duration::from_secs(u64::try_from(record.lease_duration_seconds).unwrap_or(0));
    if unchanged_for >= lease {
        Decision::Acquire
    } else {
        Decision::Wait {
            holder: record.holder.clone(),
        }
    }
}

/// The record we write when we take or renew the lease.
pub fn next_record(
    current: Option<&Record>,
    identity: &str,
    lease: Duration,
    now: Timestamp,
) -> Record {
    let seconds = i32::try_from(lease.as_secs()).unwrap_or(i32::MAX);
    match current {
        Some(r) if r.holder == identity => Record {
            lease_duration_seconds: seconds,
            renew_time: Some(now),
            ..r.clone()
        },
        other => Record {
            holder: identity.to_string(),
            lease_duration_seconds: seconds,
            acquire_time: Some(now),
            renew_time: Some(now),
            transitions: other.map_or(0, |r| r.transitions + 1),
        },
    }
}

/// Whether a leader whose last successful renew started at `last_renew`
/// must give up at `now`.
pub fn renew_deadline_passed(last_renew: Instant, now: Instant, deadline: Duration) -> bool {
    now.saturating_duration_since(last_renew) >= deadline
}

/// This process's identity in the Lease: the pod name (a restarted container
/// of the same pod takes its lease back at once), else the host name, plus a
/// random suffix so two processes on one host never share an identity.
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.trim().is_empty()
    {
        return pod.trim().to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "dbclaim".to_string());
    let suffix: u32 = rand::random();
    format!("{host}_{suffix:08x}")
}

/// Why leadership ended.
#[derive(Debug, thiserror::Error)]
pub enum Lost {
    #[error("lease {lease} is now held by {holder}")]
    TakenBy { lease: String, holder: String },
    #[error(
        "could not renew lease {lease} within the renew deadline of {deadline:?}: {last_error}"
    )]
    RenewDeadline {
        lease: String,
        deadline: Duration,
        last_error: String,
    },
}

/// The outcome of one round against the API server.
enum Round {
    Held,
    HeldByOther(String),
    /// Someone wrote between our read and our write; read again.
    Conflict,
}

/// Competes for one Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    namespace: String,
    identity: String,
    timings: Timings,
    /// The record last read and when, on our clock, we first saw it.
    observed: Option<(Record, Instant)>,
}

impl Elector {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: String,
        timings: Timings,
    ) -> Result<Self, String> {
        timings.validate()?;
        Ok(Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            namespace: namespace.to_string(),
            identity,
            timings,
            observed: None,
        })
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn lease_ref(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn observe(&mut self, record: Record) -> Duration {
        match &self.observed {
            Some((seen, at)) if *seen == record => at.elapsed(),
            _ => {
                self.observed = Some((record, Instant::now()));
                Duration::ZERO
            }
        }
    }

    /// One read-decide-write round. A leader (`renewing`) never takes the
    /// lease back from another holder: seeing one means it lost it.
    async fn round(&mut self, renewing: bool) -> Result<Round, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let record = next_record(None, &self.identity, self.timings.lease_duration, now);
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(record.to_spec()),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.observed = Some((record, Instant::now()));
                    Ok(Round::Held)
                }
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Round::Conflict),
                Err(e) => Err(e),
            };
        };
        let record = Record::from_spec(lease.spec.as_ref());
        if renewing && record.holder != self.identity {
            return Ok(Round::HeldByOther(record.holder));
        }
        let unchanged_for = self.observe(record.clone());
        match decide(&record, &self.identity, unchanged_for) {
            Decision::Wait { holder } => return Ok(Round::HeldByOther(holder)),
            Decision::Acquire => info!(
                lease = %self.lease_ref(),
                previous = %record.holder,
                "the lease is free or expired; taking it"
            ),
            Decision::Renew => {}
        }
        let next = next_record(
            Some(&record),
            &self.identity,
            self.timings.lease_duration,
            now,
        );
        lease.spec = Some(next.to_spec());
        // The resourceVersion read above travels with the object: a write
        // by anyone in between makes this a 409, never a silent overwrite.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                self.observed = Some((next, Instant::now()));
                Ok(Round::Held)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Round::Conflict),
            Err(e) => Err(e),
        }
    }

    /// Waits until this process holds the lease.
    pub async fn acquire(mut self) -> Leadership {
        let mut waiting_for = String::new();
        loop {
            let started = Instant::now();
            match self.round(false).await {
                Ok(Round::Held) => {
                    info!(lease = %self.lease_ref(), identity = %self.identity, "became the leader");
                    return Leadership {
                        elector: self,
                        last_renew: started,
                    };
                }
                Ok(Round::HeldByOther(holder)) => {
                    if holder != waiting_for {
                        info!(lease = %self.lease_ref(), %holder, "standing by: another replica leads");
                        waiting_for = holder;
                    }
                }
                Ok(Round::Conflict) => {}
                Err(e) => {
                    warn!(lease = %self.lease_ref(), error = %e, "cannot read or write the leader lease")
                }
            }
            tokio::time::sleep(jitter(self.timings.retry_period)).await;
        }
    }
}

/// Up to 20% more than `base`, so standbys do not poll in lockstep.
fn jitter(base: Duration) -> Duration {
    let extra: f64 = rand::random::<f64>() * 0.2;
    base + base.mul_f64(extra)
}

/// The held lease.
pub struct Leadership {
    elector: Elector,
    /// When the last successful renew (or the acquiring round) started.
    last_renew: Instant,
}

impl Leadership {
    pub fn identity(&self) -> &str {
        self.elector.identity()
    }

    /// Renews every retry period; returns only when leadership is lost:
    /// someone else holds the lease, or no renew succeeded within the
    /// renew deadline. The caller must stop reconciling at once.
    pub async fn hold(&mut self) -> Lost {
        let timings = self.elector.timings;
        let lease = self.elector.lease_ref();
        let mut last_error = String::from("no answer");
        loop {
            tokio::time::sleep(timings.retry_period).await;
            if renew_deadline_passed(self.last_renew, Instant::now(), timings.renew_deadline) {
                return Lost::RenewDeadline {
                    lease,
                    deadline: timings.renew_deadline,
                    last_error,
                };
            }
            let left = timings
                .renew_deadline
                .saturating_sub(self.last_renew.elapsed());
            let started = Instant::now();
            match tokio::time::timeout(left, self.elector.round(true)).await {
                Ok(Ok(Round::Held)) => self.last_renew = started,
                Ok(Ok(Round::HeldByOther(holder))) => {
                    return Lost::TakenBy { lease, holder };
                }
                Ok(Ok(Round::Conflict)) => last_error = "conflicting write to the lease".into(),
                Ok(Err(e)) => {
                    warn!(%lease, error = %e, "cannot renew the leader lease");
                    last_error = e.to_string();
                }
                Err(_) => last_error = "the renew request timed out".into(),
            }
        }
    }

    /// Gives the lease up (at graceful shutdown), so a standby takes over at
    /// its next poll instead of after the lease duration.
    pub async fn release(mut self) {
        let lease = self.elector.lease_ref();
        let identity = self.elector.identity.clone();
        let result = async {
            let Some(mut current) = self.elector.api.get_opt(&self.elector.name).await? else {
                return Ok(());
            };
            if Record::from_spec(current.spec.as_ref()).holder != identity {
                return Ok(());
            }
            let now = Timestamp::now();
            current.spec = Some(LeaseSpec {
                holder_identity: None,
                lease_duration_seconds: Some(1),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                ..current.spec.unwrap_or_default()
            });
            self.elector
                .api
                .replace(&self.elector.name, &PostParams::default(), &current)
                .await
                .map(|_| ())
        }
        .await;
        match result {
            Ok(()) => info!(%lease, "released the leader lease"),
            Err(e) => {
                warn!(%lease, error = %e, "could not release the leader lease; it expires by itself")
            }
        }
        self.elector.observed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str, secs: i32) -> Record {
        Record {
            holder: holder.into(),
            lease_duration_seconds: secs,
            acquire_time: Some(Timestamp::UNIX_EPOCH),
            renew_time: Some(Timestamp::UNIX_EPOCH),
            transitions: 3,
        }
    }

    #[test]
    fn holder_renews_and_others_wait_until_the_record_went_stale() {
        let r = held_by("a", 15);
        assert_eq!(decide(&r, "a", Duration::ZERO), Decision::Renew);
        assert_eq!(
            decide(&r, "b", Duration::from_secs(14)),
            Decision::Wait { holder: "a".into() }
        );
        assert_eq!(decide(&r, "b", Duration::from_secs(15)), Decision::Acquire);
    }

    #[test]
    fn a_free_or_released_lease_is_taken_at_once() {
        assert_eq!(
            decide(&Record::default(), "b", Duration::ZERO),
            Decision::Acquire
        );
        let released = Record {
            holder: String::new(),
            ..held_by("", 1)
        };
        assert_eq!(decide(&released, "b", Duration::ZERO), Decision::Acquire);
    }

    #[test]
    fn renewing_keeps_acquire_time_and_transitions() {
        let now = Timestamp::from_second(1000).unwrap_or(Timestamp::UNIX_EPOCH);
        let r = held_by("a", 15);
        let next = next_record(Some(&r), "a", Duration::from_secs(15), now);
        assert_eq!(next.holder, "a");
        assert_eq!(next.acquire_time, r.acquire_time);
        assert_eq!(next.renew_time, Some(now));
        assert_eq!(next.transitions, 3);
    }

    #[test]
    fn taking_over_counts_a_transition_and_a_fresh_lease_starts_at_zero() {
        let now = Timestamp::from_second(1000).unwrap_or(Timestamp::UNIX_EPOCH);
        let next = next_record(Some(&held_by("a", 15)), "b", Duration::from_secs(10), now);
        assert_eq!(next.holder, "b");
        assert_eq!(next.lease_duration_seconds, 10);
        assert_eq!(next.acquire_time, Some(now));
        assert_eq!(next.transitions, 4);
        let fresh = next_record(None, "b", Duration::from_secs(15), now);
        assert_eq!(fresh.transitions, 0);
        assert_eq!(fresh.to_spec().holder_identity.as_deref(), Some("b"));
        assert_eq!(Record::from_spec(Some(&fresh.to_spec())), fresh);
    }

    #[test]
    fn the_leader_gives_up_before_a_standby_may_take_over() {
        let t = Timings::default();
        let start = Instant::now();
        assert!(!renew_deadline_passed(
            start,
            start + Duration::from_secs(9),
            t.renew_deadline
        ));
        assert!(renew_deadline_passed(
            start,
            start + t.renew_deadline,
            t.renew_deadline
        ));
        // A standby that saw the renewed record no earlier than `start`
        // takes over no earlier than start + lease duration.
        let leader_stops = start + t.renew_deadline;
        let standby_may_take = start + t.lease_duration;
        assert!(leader_stops < standby_may_take);
    }

    #[test]
    fn timings_must_leave_a_gap_between_renew_deadline_and_lease() {
        assert_eq!(Timings::default().validate(), Ok(()));
        let bad = Timings {
            renew_deadline: Duration::from_secs(15),
            ..Timings::default()
        };
        assert!(bad.validate().unwrap_err().contains("renew deadline"));
        let bad = Timings {
            retry_period: Duration::from_secs(10),
            ..Timings::default()
        };
        assert!(bad.validate().unwrap_err().contains("retry period"));
        let bad = Timings {
            lease_duration: Duration::from_millis(15_500),
            ..Timings::default()
        };
        assert!(bad.validate().unwrap_err().contains("whole number"));
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "s", "15x", "1.5s", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn identity_is_the_pod_name_or_unique_per_process() {
        let a = default_identity();
        if std::env::var("POD_NAME").is_err() {
            assert_ne!(a, default_identity());
        }
    }
}
