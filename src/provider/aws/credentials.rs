//! AWS shared-credentials profiles (the `~/.aws/credentials` format) as held
//! in a ProviderConfig's Secret, parsed without touching the file system or
//! the environment.
//!
//! ```ini
//! [default]
//! aws_access_key_id = AKIA...
//! aws_secret_access_key = ...
//! aws_session_token = ...        ; optional
//! ```
//!
//! The `default` profile is used; a Secret holding exactly one profile may
//! name it anything.

use std::collections::BTreeMap;

/// Static credentials from a profile. Debug never shows the secret parts.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Why a profile cannot be used. Never contains a secret value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error(
        "it holds no profile: expected a [default] section with aws_access_key_id and aws_secret_access_key"
    )]
    Empty,
    #[error("it holds several profiles ({0}) but none named default")]
    NoDefault(String),
    #[error("profile [{profile}] has no {key}")]
    Missing { profile: String, key: &'static str },
    #[error("line {0} is neither a [section], a key = value pair nor a comment")]
    Syntax(usize),
}

/// Parses the profile text and picks the profile to use.
pub fn parse(text: &str) -> Result<StaticCredentials, ProfileError> {
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or(ProfileError::Syntax(i + 1))?
                .trim();
            // the config-file spelling `[profile name]` is accepted too
            let name = name.strip_prefix("profile ").unwrap_or(name).trim();
            sections.entry(name.to_string()).or_default();
            current = Some(name.to_string());
            continue;
        }
        let (k, v) = line.split_once('=').ok_or(ProfileError::Syntax(i + 1))?;
        let Some(section) = &current else {
            return Err(ProfileError::Syntax(i + 1));
        };
        let value = v.trim();
        // an inline comment needs whitespace before it, as in the AWS CLI
        let value = value
            .split_once(" #")
            .or_else(|| value.split_once(" ;"))
            .map(|(v, _)| v.trim_end())
            .unwrap_or(value);
        sections
            .entry(section.clone())
            .or_default()
            .insert(k.trim().to_ascii_lowercase(), value.to_string());
    }
    let (name, profile) = match sections.get("default") {
        Some(p) => ("default".to_string(), p),
        None => match sections.len() {
            0 => return Err(ProfileError::Empty),
            1 => {
                let (n, p) = sections.iter().next().ok_or(ProfileError::Empty)?;
                (n.clone(), p)
            }
            _ => {
                let names: Vec<&str> = sections.keys().map(String::as_str).collect();
                return Err(ProfileError::NoDefault(names.join(", ")));
            }
        },
    };
    let get = |key: &'static str| {
        profile
            .get(key)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or(ProfileError::Missing {
                profile: name.clone(),
                key,
            })
    };
    Ok(StaticCredentials {
        access_key_id: get("aws_access_key_id")?,
        secret_access_key: get("aws_secret_access_key")?,
        session_token: profile
            .get("aws_session_token")
            .filter(|v| !v.is_empty())
            .cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_profile() {
        let c = parse(
            "# comment\n[other]\naws_access_key_id=X\naws_secret_access_key=Y\n\n[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = s3cr3t/+= ; inline\naws_session_token = sesstoken42\nregion = us-east-1\n",
        )
        .expect("parses");
        assert_eq!(c.access_key_id, "AKIAEXAMPLE");
        assert_eq!(c.secret_access_key, "s3cr3t/+=");
        assert_eq!(c.session_token.as_deref(), Some("sesstoken42"));
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("sesstoken42"),
            "{shown}"
        );
    }

    #[test]
    fn single_profile_of_any_name() {
        let c = parse("[profile ci]\nAWS_ACCESS_KEY_ID=a\nAWS_SECRET_ACCESS_KEY=b\r\n")
            .expect("parses");
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("a", "b")
        );
        assert_eq!(c.session_token, None);
    }

    #[test]
    fn errors() {
        assert_eq!(parse(""), Err(ProfileError::Empty));
        assert_eq!(parse("# nothing\n"), Err(ProfileError::Empty));
        assert!(matches!(
            parse("[a]\naws_access_key_id=x\n[b]\naws_access_key_id=y\n"),
            Err(ProfileError::NoDefault(_))
        ));
        assert_eq!(
            parse("[default]\naws_access_key_id=x\n"),
            Err(ProfileError::Missing {
                profile: "default".into(),
                key: "aws_secret_access_key"
            })
        );
        assert_eq!(
            parse("[default]\naws_access_key_id=\naws_secret_access_key=y\n"),
            Err(ProfileError::Missing {
                profile: "default".into(),
                key: "aws_access_key_id"
            })
        );
        assert_eq!(parse("aws_access_key_id=x\n"), Err(ProfileError::Syntax(1)));
        assert_eq!(parse("[default\n"), Err(ProfileError::Syntax(1)));
        assert_eq!(parse("[default]\njunk\n"), Err(ProfileError::Syntax(2)));
        let e = parse("[default]\naws_access_key_id=x\naws_secret_access_key\n").unwrap_err();
        assert_eq!(e, ProfileError::Syntax(3));
    }
}
