//! Connection details: what each composed resource publishes, and the
//! claim's connection Secret assembled from them.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};

use super::Observed;
use super::fieldpath::{FieldPath, PathError};
use super::value::to_secret_bytes;
use crate::api::Engine;
use crate::api::composition::{ConnectionDetail, ConnectionDetailType};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DetailError {
    #[error("set one of fromConnectionSecretKey, fromFieldPath or value")]
    NoSource,
    #[error("type {detail_type} needs \"{field}\"")]
    MissingField {
        detail_type: &'static str,
        field: &'static str,
    },
    #[error("fromFieldPath: {0}")]
    BadPath(PathError),
    #[error(
        "the name is not a valid Secret key: use letters, digits, '-', '_' and '.' (not \".\" or \"..\"), at most 253 characters"
    )]
    BadKey,
}

/// Whether `key` may be a key of a Secret (Kubernetes' IsConfigMapKey):
/// the API server refuses the whole Secret otherwise.
pub fn is_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && key != "."
        && !key.starts_with("..")
}

/// Where a detail's value comes from, its `type` resolved.
pub enum Source<'a> {
    SecretKey(&'a str),
    Field(FieldPath),
    Value(&'a str),
}

/// Resolves a detail's source. Without `type`, it is inferred from the field
/// that is set, in Crossplane's order: value, fromConnectionSecretKey,
/// fromFieldPath.
pub fn source(d: &ConnectionDetail) -> Result<Source<'_>, DetailError> {
    if !is_secret_key(&d.name) {
        return Err(DetailError::BadKey);
    }
    let path = |p: &str| {
        FieldPath::parse(p)
            .map(Source::Field)
            .map_err(DetailError::BadPath)
    };
    let missing = |detail_type, field| DetailError::MissingField { detail_type, field };
    match d.type_ {
        Some(ConnectionDetailType::FromValue) => d
            .value
            .as_deref()
            .map(Source::Value)
            .ok_or(missing("FromValue", "value")),
        Some(ConnectionDetailType::FromConnectionSecretKey) => d
            .from_connection_secret_key
            .as_deref()
            .map(Source::SecretKey)
            .ok_or(missing(
                "FromConnectionSecretKey",
                "fromConnectionSecretKey",
            )),
        Some(ConnectionDetailType::FromFieldPath) => path(
            d.from_field_path
                .as_deref()
                .ok_or(missing("FromFieldPath", "fromFieldPath"))?,
        ),
        None => match (&d.value, &d.from_connection_secret_key, &d.from_field_path) {
            (Some(v), _, _) => Ok(Source::Value(v)),
            (None, Some(k), _) => Ok(Source::SecretKey(k)),
            (None, None, Some(p)) => path(p),
            (None, None, None) => Err(DetailError::NoSource),
        },
    }
}

/// The details one resource publishes. Sources that are not there yet (the
/// object not observed, the key or field missing) are skipped: the claim then
/// reports which keys it still waits for. Errors name the detail.
pub fn extract(
    details: &[ConnectionDetail],
    observed: Option<&Observed>,
) -> Result<BTreeMap<String, Vec<u8>>, (String, DetailError)> {
    let mut out = BTreeMap::new();
    for d in details {
        let value = match source(d).map_err(|e| (d.name.clone(), e))? {
            Source::Value(v) => Some(v.as_bytes().to_vec()),
            // A composed Secret publishes its own keys.
            Source::SecretKey(k) => observed.and_then(|o| {
                o.connection.get(k).cloned().or_else(|| {
                    o.object
                        .as_ref()
                        .and_then(|obj| super::generate::secret_key(obj, k))
                })
            }),
            Source::Field(p) => observed
                .and_then(|o| o.object.as_ref())
                .and_then(|obj| p.get(obj).ok().flatten())
                .map(to_secret_bytes),
        };
        if let Some(v) = value {
            out.insert(d.name.clone(), v);
        }
    }
    Ok(out)
}

/// The keys a claim's Secret needs before the claim is Ready, in this order.
pub const REQUIRED_KEYS: [&str; 5] = ["host", "port", "database", "username", "password"];

/// The claim's connection Secret, ready to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionSecret {
    pub data: BTreeMap<String, Vec<u8>>,
    /// Which of host, port, database, username, password are absent (or
    /// empty), in that order; empty when the Secret is complete.
    pub missing: Vec<&'static str>,
    /// The Secret's `type`: `servicebinding.io/postgresql` or `servicebinding.io/mysql`.
    pub secret_type: &'static str,
}

/// The Secret `type` for an engine (Service Binding for Kubernetes).
pub fn secret_type(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "servicebinding.io/postgresql",
        Engine::Mysql => "servicebinding.io/mysql",
    }
}

/// Characters left as they are in the user, password and database parts of
/// a URI: RFC 3986 unreserved ones. Everything else is percent-encoded.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode(bytes: &[u8]) -> String {
    percent_encode(bytes, URI_COMPONENT).to_string()
}

/// Assembles the claim's connection Secret: every published detail, plus
/// `type`, `provider` (the composition's name) and, once host, port,
/// database, username and password are all there, `uri`. The fixed keys win
/// over details of the same name; a composition's own `uri` is kept only
/// while the computed one cannot be built.
pub fn connection_secret(
    engine: Engine,
    provider: &str,
    details: &BTreeMap<String, Vec<u8>>,
) -> ConnectionSecret {
    let mut data = details.clone();
    let binding = engine.binding_type();
    data.insert("type".into(), binding.as_bytes().to_vec());
    data.insert("provider".into(), provider.as_bytes().to_vec());
    let get = |k: &str| details.get(k).filter(|v| !v.is_empty());
    let missing: Vec<&'static str> = REQUIRED_KEYS
        .into_iter()
        .filter(|k| get(k).is_none())
        .collect();
    if let [Some(host), Some(port), Some(db), Some(user), Some(pass)] = REQUIRED_KEYS.map(get) {
        let host = String::from_utf8_lossy(host);
        // An IPv6 address needs brackets to be told apart from the port.
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.into_owned()
        };
        let uri = format!(
            "{binding}://{}:{}@{host}:{}/{}",
            encode(user),
            encode(pass),
            String::from_utf8_lossy(port),
            encode(db)
        );
        data.insert("uri".into(), uri.into_bytes());
    }
    ConnectionSecret {
        data,
        missing,
        secret_type: secret_type(engine),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn secret_keys_follow_kubernetes() {
        for ok in [
            "host",
            "a.b",
            "_x",
            "-",
            "A-Z_0.9",
            "..a"[1..].as_ref(),
            &"k".repeat(253),
        ] {
            assert!(is_secret_key(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "..x",
            "a b",
            "a/b",
            "é",
            "a:b",
            &"k".repeat(254),
        ] {
            assert!(!is_secret_key(bad), "{bad}");
        }
    }

    #[test]
    fn a_bad_key_is_refused_at_render() {
        let d = details(json!([{"name": "my key", "value": "x"}]));
        assert_eq!(
            extract(&d, None).err(),
            Some(("my key".to_string(), DetailError::BadKey))
        );
    }

    fn details(v: Value) -> Vec<ConnectionDetail> {
        serde_json::from_value(v).unwrap()
    }

    fn bytes(m: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        m.iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn observed() -> Observed {
        Observed {
            object: Some(json!({"status": {"atProvider": {
                "endpoint": {"address": "db.example.com", "port": 5432},
                "multiAZ": false,
                "tags": {"a": "b"}
            }}})),
            connection: bytes(&[("password", "s3cret"), ("username", "admin")]),
        }
    }

    #[test]
    fn every_source() {
        let d = details(json!([
            {"name": "host", "fromFieldPath": "status.atProvider.endpoint.address"},
            {"name": "port", "fromFieldPath": "status.atProvider.endpoint.port"},
            {"name": "multiAZ", "type": "FromFieldPath", "fromFieldPath": "status.atProvider.multiAZ"},
            {"name": "tags", "fromFieldPath": "status.atProvider.tags"},
            {"name": "password", "fromConnectionSecretKey": "password"},
            {"name": "user", "type": "FromConnectionSecretKey", "fromConnectionSecretKey": "username"},
            {"name": "engine", "value": "postgres"},
            {"name": "sslmode", "type": "FromValue", "value": "require"}
        ]));
        let got = extract(&d, Some(&observed())).unwrap();
        assert_eq!(
            got,
            bytes(&[
                ("host", "db.example.com"),
                ("port", "5432"),
                ("multiAZ", "false"),
                ("tags", r#"{"a":"b"}"#),
                ("password", "s3cret"),
                ("user", "admin"),
                ("engine", "postgres"),
                ("sslmode", "require"),
            ])
        );
    }

    #[test]
    fn missing_sources_are_skipped() {
        let d = details(json!([
            {"name": "host", "fromFieldPath": "status.atProvider.nothing"},
            {"name": "bad", "fromFieldPath": "status.atProvider.endpoint.address.deeper"},
            {"name": "password", "fromConnectionSecretKey": "nope"},
            {"name": "engine", "value": "postgres"}
        ]));
        assert_eq!(
            extract(&d, Some(&observed())).unwrap(),
            bytes(&[("engine", "postgres")])
        );
        // Not observed: only literal values.
        assert_eq!(extract(&d, None).unwrap(), bytes(&[("engine", "postgres")]));
        let no_object = Observed {
            object: None,
            connection: bytes(&[("nope", "x")]),
        };
        assert_eq!(
            extract(&d, Some(&no_object)).unwrap(),
            bytes(&[("password", "x"), ("engine", "postgres")])
        );
    }

    #[test]
    fn inference_order_is_crossplanes() {
        let d = details(
            json!([{"name": "x", "value": "v", "fromConnectionSecretKey": "password", "fromFieldPath": "a"}]),
        );
        assert_eq!(
            extract(&d, Some(&observed())).unwrap(),
            bytes(&[("x", "v")])
        );
        let d = details(
            json!([{"name": "x", "fromConnectionSecretKey": "password", "fromFieldPath": "status"}]),
        );
        assert_eq!(
            extract(&d, Some(&observed())).unwrap(),
            bytes(&[("x", "s3cret")])
        );
    }

    #[test]
    fn ill_formed_details_are_errors() {
        let cases = vec![
            (
                json!([{"name": "a"}]),
                "set one of fromConnectionSecretKey, fromFieldPath or value",
            ),
            (
                json!([{"name": "a", "type": "FromValue", "fromFieldPath": "x"}]),
                "type FromValue needs \"value\"",
            ),
            (
                json!([{"name": "a", "type": "FromConnectionSecretKey"}]),
                "needs \"fromConnectionSecretKey\"",
            ),
            (
                json!([{"name": "a", "type": "FromFieldPath"}]),
                "type FromFieldPath needs \"fromFieldPath\"",
            ),
            (
                json!([{"name": "a", "fromFieldPath": "x[0"}]),
                "fromFieldPath: field path \"x[0\" is not valid",
            ),
        ];
        for (d, want) in cases {
            let (name, e) = extract(&details(d.clone()), None).unwrap_err();
            assert_eq!(name, "a");
            assert!(e.to_string().contains(want), "{d}: {e}");
        }
    }

    #[test]
    fn complete_secret_has_a_uri() {
        let d = bytes(&[
            ("host", "db.example.com"),
            ("port", "5432"),
            ("database", "my db"),
            ("username", "app@team"),
            ("password", "p:a/s?s#w%rd"),
            ("sslmode", "require"),
            ("type", "overridden"),
        ]);
        let s = connection_secret(Engine::Postgres, "aws-rds-postgres", &d);
        assert_eq!(s.missing, Vec::<&str>::new());
        assert_eq!(s.secret_type, "servicebinding.io/postgresql");
        assert_eq!(s.data["type"], b"postgresql");
        assert_eq!(s.data["provider"], b"aws-rds-postgres");
        assert_eq!(s.data["sslmode"], b"require");
        assert_eq!(
            String::from_utf8_lossy(&s.data["uri"]),
            "postgresql://app%40team:p%3Aa%2Fs%3Fs%23w%25rd@db.example.com:5432/my%20db"
        );
        let m = connection_secret(
            Engine::Mysql,
            "p",
            &bytes(&[
                ("host", "::1"),
                ("port", "3306"),
                ("database", "d"),
                ("username", "u"),
                ("password", "p"),
            ]),
        );
        assert_eq!(m.secret_type, "servicebinding.io/mysql");
        assert_eq!(m.data["type"], b"mysql");
        assert_eq!(
            String::from_utf8_lossy(&m.data["uri"]),
            "mysql://u:p@[::1]:3306/d"
        );
    }

    #[test]
    fn incomplete_secret_lists_what_is_missing() {
        let d = bytes(&[
            ("host", "h"),
            ("database", "d"),
            ("password", ""),
            ("uri", "postgresql://custom"),
        ]);
        let s = connection_secret(Engine::Postgres, "p", &d);
        assert_eq!(s.missing, vec!["port", "username", "password"]);
        // The composition's own uri stays while ours cannot be built.
        assert_eq!(s.data["uri"], b"postgresql://custom");
        let empty = connection_secret(Engine::Postgres, "p", &BTreeMap::new());
        assert_eq!(empty.missing, REQUIRED_KEYS.to_vec());
        assert_eq!(
            empty.data.keys().collect::<Vec<_>>(),
            vec!["provider", "type"]
        );
    }
}
