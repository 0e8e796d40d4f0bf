//! AWS failures, reduced to what the controller does about them.
//!
//! [`ApiFailure`] is the SDK's error with only the facts kept (operation,
//! error code, HTTP status, transport problem); [`classify`] is pure and maps
//! it to a [`Class`], which decides retry and wording.

/// One failed AWS call, stripped of the SDK's types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiFailure {
    /// The API operation, e.g. `CreateDBInstance`.
    pub operation: &'static str,
    /// The AWS error code (`<Code>` of the response), when AWS answered.
    pub code: Option<String>,
    /// AWS's message, when it answered.
    pub message: Option<String>,
    /// HTTP status, when a response arrived.
    pub http_status: Option<u16>,
    /// Set when no usable response arrived.
    pub transport: Option<Transport>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Connect or read timed out.
    Timeout,
    /// Connection refused, reset, DNS, TLS: the endpoint cannot be reached.
    Io(String),
    /// The request could not be built or signed (credentials missing, …).
    Construction(String),
    /// A response arrived that could not be parsed.
    BadResponse(String),
    /// Anything else the SDK reports.
    Other(String),
}

/// What kind of failure it is, which decides retry and wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Throttling: retried with jittered backoff.
    Throttled,
    /// 5xx or an internal failure on AWS's side: retried with backoff.
    ServerError,
    /// The endpoint cannot be reached or timed out: retried with backoff.
    Unreachable,
    /// DBInstanceNotFound (or the resource of a tag call).
    NotFound,
    /// DBInstanceAlreadyExists.
    AlreadyExists,
    /// InvalidDBInstanceState and friends: the instance is busy; wait.
    InvalidState,
    /// The credentials are refused (unknown key, bad signature, expired).
    BadCredentials,
    /// The credentials are valid but lack a permission.
    AccessDenied,
    /// A parameter value or combination AWS refuses: the spec must change.
    InvalidParameter,
    /// An account quota is exhausted.
    Quota,
    /// AWS has no capacity for the class in the zone.
    Capacity,
    /// The final snapshot name is taken.
    SnapshotExists,
    /// The KMS key cannot be used.
    Kms,
    /// A referenced AWS resource (subnet group, parameter group, …) is missing
    /// or not in a usable state.
    Dependency,
    /// Anything else.
    Other,
}

pub use crate::provider::managed::Retry;

/// Throttling codes of the AWS query protocol and the SDK's classifier.
pub const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "LimitExceededException",
];

/// Codes of failures on AWS's side.
pub const SERVER_CODES: &[&str] = &[
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
    "RequestExpired",
];

/// Codes of refused credentials.
pub const CREDENTIAL_CODES: &[&str] = &[
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "ExpiredToken",
    "ExpiredTokenException",
    "AuthFailure",
    "InvalidAccessKeyId",
];

/// Codes of missing permissions.
pub const ACCESS_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "NotAuthorized",
    "UnauthorizedOperation",
    "OptInRequired",
    "AuthorizationNotFound",
];

/// Codes of refused parameters.
pub const PARAMETER_CODES: &[&str] = &[
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "InvalidParameter",
    "MissingParameter",
    "ValidationError",
    "InvalidQueryParameter",
    "MalformedQueryString",
    "InvalidAction",
    "MissingAction",
    "StorageTypeNotSupported",
    "StorageTypeNotSupportedFault",
    "NetworkTypeNotSupported",
    "DBUpgradeDependencyFailure",
    "ProvisionedIopsNotAvailableInAZFault",
    "InvalidDBClusterStateFault",
];

/// Codes of exhausted quotas.
pub const QUOTA_CODES: &[&str] = &[
    "InstanceQuotaExceeded",
    "StorageQuotaExceeded",
    "SnapshotQuotaExceeded",
    "TenantDatabaseQuotaExceeded",
    "DBInstanceAutomatedBackupQuotaExceeded",
];

/// Codes of a busy instance or account-level state that passes.
pub const STATE_CODES: &[&str] = &[
    "InvalidDBInstanceState",
    "InvalidDBInstanceStateFault",
    "InvalidDBSecurityGroupState",
    "InvalidDBClusterEndpointStateFault",
];

/// Codes of missing or unusable resources an instance refers to.
pub const DEPENDENCY_CODES: &[&str] = &[
    "BackupPolicyNotFoundFault",
    "CertificateNotFound",
    "DBClusterNotFoundFault",
    "DBParameterGroupNotFound",
    "DBSecurityGroupNotFound",
    "DBSubnetGroupDoesNotCoverEnoughAZs",
    "DBSubnetGroupNotFoundFault",
    "DomainNotFoundFault",
    "OptionGroupNotFoundFault",
    "InvalidSubnet",
    "InvalidVPCNetworkStateFault",
    "BlueGreenDeploymentNotFoundFault",
    "DBProxyNotFoundFault",
    "DBProxyEndpointNotFoundFault",
    "DBProxyTargetGroupNotFoundFault",
    "DBShardGroupNotFound",
    "DBSnapshotNotFound",
    "IntegrationNotFoundFault",
    "TenantDatabaseNotFound",
];

pub fn classify(f: &ApiFailure) -> Class {
    if let Some(t) = &f.transport {
        return match t {
            Transport::Timeout | Transport::Io(_) => Class::Unreachable,
            Transport::Construction(_) => Class::BadCredentials,
            Transport::BadResponse(_) => match f.http_status {
                Some(s) if s >= 500 => Class::ServerError,
                Some(429) => Class::Throttled,
                _ => Class::Other,
            },
            Transport::Other(_) => Class::Other,
        };
    }
    let code = f.code.as_deref().unwrap_or("");
    let is = |list: &[&str]| list.contains(&code);
    match code {
        "DBInstanceNotFound" | "DBInstanceNotFoundFault" => Class::NotFound,
        "DBInstanceAlreadyExists" | "DBInstanceAlreadyExistsFault" => Class::AlreadyExists,
        "DBSnapshotAlreadyExists" | "DBSnapshotAlreadyExistsFault" => Class::SnapshotExists,
        "KMSKeyNotAccessibleFault" => Class::Kms,
        "InsufficientDBInstanceCapacity" => Class::Capacity,
        _ if is(THROTTLING_CODES) => Class::Throttled,
        _ if is(SERVER_CODES) => Class::ServerError,
        _ if is(CREDENTIAL_CODES) => Class::BadCredentials,
        _ if is(ACCESS_CODES) => Class::AccessDenied,
        _ if is(PARAMETER_CODES) => Class::InvalidParameter,
        _ if is(QUOTA_CODES) => Class::Quota,
        _ if is(STATE_CODES) => Class::InvalidState,
        _ if is(DEPENDENCY_CODES) => Class::Dependency,
        _ => match f.http_status {
            Some(429) => Class::Throttled,
            Some(s) if s >= 500 => Class::ServerError,
            Some(401) => Class::BadCredentials,
            Some(403) => Class::AccessDenied,
            _ => Class::Other,
        },
    }
}

pub fn retry(class: Class) -> Retry {
    match class {
        Class::Throttled | Class::ServerError | Class::Unreachable | Class::Other => Retry::Backoff,
        Class::InvalidState | Class::NotFound | Class::AlreadyExists => Retry::Wait,
        Class::Capacity => Retry::Backoff,
        Class::BadCredentials
        | Class::AccessDenied
        | Class::InvalidParameter
        | Class::Quota
        | Class::SnapshotExists
        | Class::Kms
        | Class::Dependency => Retry::Slow,
    }
}

/// The failure in plain words, with what to do. `endpoint` is where the
/// call went (the ProviderConfig's endpoint, or AWS's), for reachability.
pub fn describe(f: &ApiFailure, endpoint: &str) -> String {
    let aws = match (&f.code, &f.message) {
        (Some(c), Some(m)) if !m.is_empty() => format!("{c}: {m}"),
        (Some(c), _) => c.clone(),
        (None, Some(m)) => m.clone(),
        (None, None) => String::new(),
    };
    let op = f.operation;
    match classify(f) {
        Class::Throttled => format!("AWS is throttling {op} ({aws}); retrying with backoff"),
        Class::ServerError => {
            let status = f
                .http_status
                .map(|s| format!("HTTP {s}"))
                .unwrap_or_default();
            let what = [status, aws]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>();
            format!(
                "the RDS API failed on {op} ({}); retrying with backoff",
                what.join(", ")
            )
        }
        Class::Unreachable => {
            let why = match &f.transport {
                Some(Transport::Timeout) => "timed out".to_string(),
                Some(Transport::Io(e)) => e.clone(),
                _ => "no answer".to_string(),
            };
            format!(
                "cannot reach the RDS API at {endpoint} ({why}); retrying with backoff. Check spec.endpoint and spec.region of the ProviderConfig and the network"
            )
        }
        Class::NotFound => format!("{op}: the DB instance does not exist ({aws})"),
        Class::AlreadyExists => {
            format!("{op}: a DB instance of this identifier already exists ({aws})")
        }
        Class::InvalidState => format!("{op}: the DB instance is busy ({aws}); waiting"),
        Class::BadCredentials => {
            let detail = match &f.transport {
                Some(Transport::Construction(e)) => e.clone(),
                _ => aws,
            };
            format!(
                "AWS refused the credentials ({detail}): fix the access key in the ProviderConfig's credentials Secret"
            )
        }
        Class::AccessDenied => format!(
            "the AWS credentials may not call rds:{op} ({aws}): grant it to the IAM user or role of the ProviderConfig"
        ),
        Class::InvalidParameter => format!(
            "RDS refused the values of {op} ({aws}): change spec.forProvider (or the claim's size, version or parameters)"
        ),
        Class::Quota => format!(
            "an AWS account quota is exhausted ({aws}): delete unused instances or snapshots, or ask AWS for a higher quota"
        ),
        Class::Capacity => format!(
            "AWS has no capacity for this instance class right now ({aws}); retrying. Choose another size if it persists"
        ),
        Class::SnapshotExists => format!(
            "the final snapshot cannot be taken: {aws}. Delete or rename that snapshot in AWS, or set spec.forProvider.skipFinalSnapshot to true"
        ),
        Class::Kms => {
            format!("RDS cannot use the KMS key ({aws}): enable the key or grant RDS access to it")
        }
        Class::Dependency => format!(
            "an AWS resource the instance needs is missing or unusable ({aws}): create or fix it in AWS"
        ),
        Class::Other => {
            let detail = match &f.transport {
                Some(Transport::BadResponse(e) | Transport::Other(e)) if aws.is_empty() => {
                    e.clone()
                }
                _ => aws,
            };
            format!("{op} failed ({detail}); retrying with backoff")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(code: &str, status: u16) -> ApiFailure {
        ApiFailure {
            operation: "CreateDBInstance",
            code: Some(code.to_string()),
            message: Some("m".into()),
            http_status: Some(status),
            transport: None,
        }
    }

    fn transport(t: Transport) -> ApiFailure {
        ApiFailure {
            operation: "DescribeDBInstances",
            code: None,
            message: None,
            http_status: None,
            transport: Some(t),
        }
    }

    /// Every error code the SDK models for the operations dbclaim calls
    /// (CreateDBInstance, DescribeDBInstances, ModifyDBInstance,
    /// DeleteDBInstance, ListTagsForResource, AddTagsToResource,
    /// RemoveTagsFromResource), with the class it must get.
    const MODELED: &[(&str, Class)] = &[
        ("AuthorizationNotFound", Class::AccessDenied),
        ("BackupPolicyNotFoundFault", Class::Dependency),
        ("BlueGreenDeploymentNotFoundFault", Class::Dependency),
        ("CertificateNotFound", Class::Dependency),
        ("DBClusterNotFoundFault", Class::Dependency),
        ("DBInstanceAlreadyExists", Class::AlreadyExists),
        ("DBInstanceNotFound", Class::NotFound),
        ("DBParameterGroupNotFound", Class::Dependency),
        ("DBProxyEndpointNotFoundFault", Class::Dependency),
        ("DBProxyNotFoundFault", Class::Dependency),
        ("DBProxyTargetGroupNotFoundFault", Class::Dependency),
        ("DBSecurityGroupNotFound", Class::Dependency),
        ("DBShardGroupNotFound", Class::Dependency),
        ("DBSnapshotAlreadyExists", Class::SnapshotExists),
        ("DBSnapshotNotFound", Class::Dependency),
        ("DBSubnetGroupDoesNotCoverEnoughAZs", Class::Dependency),
        ("DBSubnetGroupNotFoundFault", Class::Dependency),
        ("DBUpgradeDependencyFailure", Class::InvalidParameter),
        ("DomainNotFoundFault", Class::Dependency),
        ("InstanceQuotaExceeded", Class::Quota),
        ("InsufficientDBInstanceCapacity", Class::Capacity),
        ("IntegrationNotFoundFault", Class::Dependency),
        ("InvalidDBClusterEndpointStateFault", Class::InvalidState),
        ("InvalidDBClusterStateFault", Class::InvalidParameter),
        ("InvalidDBInstanceState", Class::InvalidState),
        ("InvalidDBSecurityGroupState", Class::InvalidState),
        ("InvalidSubnet", Class::Dependency),
        ("InvalidVPCNetworkStateFault", Class::Dependency),
        ("KMSKeyNotAccessibleFault", Class::Kms),
        ("NetworkTypeNotSupported", Class::InvalidParameter),
        ("OptionGroupNotFoundFault", Class::Dependency),
        ("SnapshotQuotaExceeded", Class::Quota),
        ("StorageQuotaExceeded", Class::Quota),
        ("StorageTypeNotSupported", Class::InvalidParameter),
        ("TenantDatabaseNotFound", Class::Dependency),
        ("TenantDatabaseQuotaExceeded", Class::Quota),
    ];

    /// The common errors of every AWS query API (the RDS API reference's
    /// "Common Errors"), with the class they must get.
    const COMMON: &[(&str, u16, Class)] = &[
        ("AccessDeniedException", 400, Class::AccessDenied),
        ("AccessDenied", 403, Class::AccessDenied),
        ("IncompleteSignature", 400, Class::BadCredentials),
        ("InternalFailure", 500, Class::ServerError),
        ("InvalidAction", 400, Class::InvalidParameter),
        ("InvalidClientTokenId", 403, Class::BadCredentials),
        ("InvalidParameterCombination", 400, Class::InvalidParameter),
        ("InvalidParameterValue", 400, Class::InvalidParameter),
        ("InvalidQueryParameter", 400, Class::InvalidParameter),
        ("MalformedQueryString", 404, Class::InvalidParameter),
        ("MissingAction", 400, Class::InvalidParameter),
        ("MissingAuthenticationToken", 403, Class::BadCredentials),
        ("MissingParameter", 400, Class::InvalidParameter),
        ("NotAuthorized", 400, Class::AccessDenied),
        ("OptInRequired", 403, Class::AccessDenied),
        ("RequestExpired", 400, Class::ServerError),
        ("ServiceUnavailable", 503, Class::ServerError),
        ("ThrottlingException", 400, Class::Throttled),
        ("Throttling", 400, Class::Throttled),
        ("ValidationError", 400, Class::InvalidParameter),
        ("SignatureDoesNotMatch", 403, Class::BadCredentials),
        ("ExpiredToken", 400, Class::BadCredentials),
        ("UnrecognizedClientException", 400, Class::BadCredentials),
        ("RequestLimitExceeded", 400, Class::Throttled),
    ];

    #[test]
    fn modeled_codes() {
        for (code, want) in MODELED {
            assert_eq!(classify(&answered(code, 400)), *want, "{code}");
        }
    }

    #[test]
    fn common_codes() {
        for (code, status, want) in COMMON {
            assert_eq!(classify(&answered(code, *status)), *want, "{code}");
        }
    }

    #[test]
    fn every_code_list_entry_is_classified_as_its_list() {
        let lists: &[(&[&str], Class)] = &[
            (THROTTLING_CODES, Class::Throttled),
            (SERVER_CODES, Class::ServerError),
            (CREDENTIAL_CODES, Class::BadCredentials),
            (ACCESS_CODES, Class::AccessDenied),
            (PARAMETER_CODES, Class::InvalidParameter),
            (QUOTA_CODES, Class::Quota),
            (STATE_CODES, Class::InvalidState),
            (DEPENDENCY_CODES, Class::Dependency),
        ];
        for (list, want) in lists {
            for code in *list {
                assert_eq!(classify(&answered(code, 400)), *want, "{code}");
            }
        }
    }

    #[test]
    fn unknown_codes_fall_back_to_http_status() {
        assert_eq!(classify(&answered("Weird", 503)), Class::ServerError);
        assert_eq!(classify(&answered("Weird", 502)), Class::ServerError);
        assert_eq!(classify(&answered("Weird", 429)), Class::Throttled);
        assert_eq!(classify(&answered("Weird", 403)), Class::AccessDenied);
        assert_eq!(classify(&answered("Weird", 401)), Class::BadCredentials);
        assert_eq!(classify(&answered("Weird", 400)), Class::Other);
    }

    #[test]
    fn transport_failures() {
        assert_eq!(classify(&transport(Transport::Timeout)), Class::Unreachable);
        assert_eq!(
            classify(&transport(Transport::Io("connection refused".into()))),
            Class::Unreachable
        );
        assert_eq!(
            classify(&transport(Transport::Construction("no credentials".into()))),
            Class::BadCredentials
        );
        let mut bad = transport(Transport::BadResponse("not xml".into()));
        assert_eq!(classify(&bad), Class::Other);
        bad.http_status = Some(503);
        assert_eq!(classify(&bad), Class::ServerError);
        bad.http_status = Some(429);
        assert_eq!(classify(&bad), Class::Throttled);
    }

    #[test]
    fn retry_policy() {
        assert_eq!(retry(Class::Throttled), Retry::Backoff);
        assert_eq!(retry(Class::ServerError), Retry::Backoff);
        assert_eq!(retry(Class::Unreachable), Retry::Backoff);
        assert_eq!(retry(Class::InvalidState), Retry::Wait);
        for c in [
            Class::AccessDenied,
            Class::BadCredentials,
            Class::InvalidParameter,
            Class::Quota,
            Class::SnapshotExists,
        ] {
            assert_eq!(retry(c), Retry::Slow, "{c:?}: no retry storm");
        }
    }

    #[test]
    fn messages_say_what_to_do() {
        let m = describe(
            &answered("AccessDenied", 403),
            "https://rds.us-east-1.amazonaws.com",
        );
        assert!(m.contains("rds:CreateDBInstance"), "{m}");
        assert!(m.contains("grant"), "{m}");
        let m = describe(&answered("InvalidClientTokenId", 403), "x");
        assert!(m.contains("credentials Secret"), "{m}");
        let m = describe(
            &transport(Transport::Io("connection refused".into())),
            "http://127.0.0.1:1",
        );
        assert!(m.contains("http://127.0.0.1:1"), "{m}");
        assert!(m.contains("connection refused"), "{m}");
        let m = describe(&answered("DBSnapshotAlreadyExists", 400), "x");
        assert!(m.contains("skipFinalSnapshot"), "{m}");
        let m = describe(&answered("ServiceUnavailable", 503), "x");
        assert!(m.contains("HTTP 503"), "{m}");
        for (code, _) in MODELED {
            assert!(!describe(&answered(code, 400), "x").is_empty());
        }
    }
}
