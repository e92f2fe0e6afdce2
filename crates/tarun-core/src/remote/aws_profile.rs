//! S3 credentials and region from the AWS CLI's files, which object_store 0.12 does not read:
//! `~/.aws/credentials` (`AWS_SHARED_CREDENTIALS_FILE`) and `~/.aws/config` (`AWS_CONFIG_FILE`),
//! profile `AWS_PROFILE`, else `AWS_DEFAULT_PROFILE`, else `default`.
//!
//! As the AWS SDKs order them: keys in the environment win over a profile's; a profile's keys
//! come from the credentials file, else from the config file; the region comes from
//! `AWS_REGION`/`AWS_DEFAULT_REGION`, else from the profile in the config file. In the
//! credentials file a profile is `[name]`; in the config file it is `[profile name]` (and the
//! default profile `[default]`).
//!
//! Read: `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`, `region` and
//! `endpoint_url`. Not supported: SSO (`sso_session`, `sso_start_url`), `credential_process`
//! and role chaining (`role_arn` with `source_profile`); a profile that has only those is
//! reported with the way out (`aws configure export-credentials`).
//!
//! No value read here is ever printed: [`Profile`]'s `Debug` shows which settings are present,
//! not what they are.

use std::path::PathBuf;

use ini::{Ini, ParseOption};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};

/// What a profile gives the S3 client.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The profile's name, and the files it was read from (for messages).
    pub name: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    /// Settings of the profile that tarun cannot use (`credential_process`, `sso_session`, ...).
    pub unsupported: Vec<String>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: &Option<String>| if v.is_some() { "set" } else { "unset" };
        f.debug_struct("Profile")
            .field("name", &self.name)
            .field("access_key_id", &set(&self.access_key_id))
            .field("secret_access_key", &set(&self.secret_access_key))
            .field("session_token", &set(&self.session_token))
            .field("region", &self.region)
            .field("endpoint_url", &set(&self.endpoint_url))
            .field("unsupported", &self.unsupported)
            .finish()
    }
}

/// Where the files are and which profile is meant, as the environment says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sources {
    pub credentials: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub profile: String,
    /// Whether the profile was named (`AWS_PROFILE`/`AWS_DEFAULT_PROFILE`): then it must exist.
    pub named: bool,
}

impl Sources {
    /// From `var` (the environment, in use) and the home directory.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Sources {
        let var = |k: &str| var(k).filter(|v| !v.is_empty());
        let home = var("HOME").map(PathBuf::from);
        let file = |env: &str, name: &str| {
            var(env)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
        };
        let named = var("AWS_PROFILE").or_else(|| var("AWS_DEFAULT_PROFILE"));
        Sources {
            credentials: file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
            config: file("AWS_CONFIG_FILE", "config"),
            profile: named.clone().unwrap_or_else(|| "default".into()),
            named: named.is_some(),
        }
    }
}

/// The settings that are credentials (the rest of a profile is read from either file too).
const KEYS: [&str; 3] = [
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
];

/// Settings that name a way to get credentials which tarun does not implement.
const UNSUPPORTED: [&str; 6] = [
    "credential_process",
    "sso_session",
    "sso_start_url",
    "sso_account_id",
    "role_arn",
    "web_identity_token_file",
];

/// Reads the profile `sources` names. `Ok(None)`: neither file has it (and it was not named).
pub fn read(sources: &Sources) -> Result<Option<Profile>, String> {
    let load = |path: &Option<PathBuf>| -> Result<Option<Ini>, String> {
        let Some(path) = path else { return Ok(None) };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        // Values verbatim: no quotes or backslash escapes, as the AWS CLI reads them.
        let opt = ParseOption {
            enabled_quote: false,
            enabled_escape: false,
            ..ParseOption::default()
        };
        Ini::load_from_str_opt(&text, opt)
            .map(Some)
            .map_err(|e| format!("{} is not an INI file: {e}", path.display()))
    };
    let credentials = load(&sources.credentials)?;
    let config = load(&sources.config)?;
    let name = &sources.profile;
    let in_credentials = credentials
        .as_ref()
        .and_then(|i| i.section(Some(name.as_str())));
    // `[profile NAME]`; the default profile may also be plain `[default]`.
    let in_config = config.as_ref().and_then(|i| {
        i.section(Some(format!("profile {name}"))).or_else(|| {
            (name == "default")
                .then(|| i.section(Some("default")))
                .flatten()
        })
    });
    if in_credentials.is_none() && in_config.is_none() {
        if sources.named {
            let shown = |p: &Option<PathBuf>| {
                p.as_ref()
                    .map_or_else(|| "(no home directory)".into(), |p| p.display().to_string())
            };
            return Err(format!(
                "the AWS profile `{name}` (AWS_PROFILE) is in neither {} nor {}",
                shown(&sources.credentials),
                shown(&sources.config)
            ));
        }
        return Ok(None);
    }
    let get = |key: &str| -> Option<String> {
        let from = |s: Option<&ini::Properties>| {
            s.and_then(|p| p.get(key))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        from(in_credentials).or_else(|| from(in_config))
    };
    // Keys come as a set: a key id from one file and a secret from the other would be neither's.
    let keys_from = if in_credentials.is_some_and(|p| p.contains_key(KEYS[0])) {
        in_credentials
    } else {
        in_config
    };
    let key = |k: &str| {
        keys_from
            .and_then(|p| p.get(k))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let region = in_config
        .and_then(|p| p.get("region"))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    Ok(Some(Profile {
        name: name.clone(),
        access_key_id: key(KEYS[0]),
        secret_access_key: key(KEYS[1]),
        session_token: key(KEYS[2]),
        region,
        endpoint_url: get("endpoint_url"),
        unsupported: UNSUPPORTED
            .iter()
            .filter(|k| get(k).is_some())
            .map(|k| (*k).to_owned())
            .collect(),
    }))
}

/// Completes `builder` (made by `AmazonS3Builder::from_env`) with the profile's settings that
/// the environment did not give. `var` is the environment.
pub fn apply(
    mut builder: AmazonS3Builder,
    var: impl Fn(&str) -> Option<String>,
) -> Result<AmazonS3Builder, String> {
    let var = |k: &str| var(k).filter(|v| !v.is_empty());
    let sources = Sources::from_env(var);
    let Some(profile) = read(&sources)? else {
        return Ok(builder);
    };
    tracing::debug!("AWS profile from the shared files: {profile:?}");
    let env_keys = var("AWS_ACCESS_KEY_ID").is_some();
    if !env_keys {
        match (&profile.access_key_id, &profile.secret_access_key) {
            (Some(id), Some(secret)) => {
                builder = builder
                    .with_config(AmazonS3ConfigKey::AccessKeyId, id)
                    .with_config(AmazonS3ConfigKey::SecretAccessKey, secret);
                if let Some(token) = &profile.session_token {
                    builder = builder.with_config(AmazonS3ConfigKey::Token, token);
                }
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(format!(
                    "the AWS profile `{}` has only one of aws_access_key_id and \
                     aws_secret_access_key",
                    profile.name
                ));
            }
            (None, None) if !profile.unsupported.is_empty() => {
                return Err(format!(
                    "the AWS profile `{}` gets its credentials through {}, which tarun does not \
                     support; export them instead: eval \"$(aws configure export-credentials \
                     --profile {} --format env)\"",
                    profile.name,
                    profile.unsupported.join(", "),
                    profile.name
                ));
            }
            (None, None) => {}
        }
    }
    if var("AWS_REGION").is_none()
        && var("AWS_DEFAULT_REGION").is_none()
        && let Some(region) = &profile.region
    {
        builder = builder.with_config(AmazonS3ConfigKey::Region, region);
    }
    if var("AWS_ENDPOINT").is_none()
        && var("AWS_ENDPOINT_URL").is_none()
        && let Some(endpoint) = &profile.endpoint_url
    {
        builder = builder.with_config(AmazonS3ConfigKey::Endpoint, endpoint);
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const CREDENTIALS: &str = "\
[default]
aws_access_key_id = AKIDEFAULT
aws_secret_access_key = default/secret+key

[dev]
aws_access_key_id=AKIDEV
aws_secret_access_key=dev-secret
aws_session_token = FwoGZXIvYXdzEJr//////////wEaDO=
";

    const CONFIG: &str = "\
# comment
[default]
region = eu-west-1

[profile dev]
region = eu-central-1
endpoint_url = http://127.0.0.1:8333
s3 =
  addressing_style = path

[profile sso]
sso_session = corp
region = us-west-2

[profile keys-in-config]
aws_access_key_id = AKICONFIG
aws_secret_access_key = config-secret
";

    struct Files {
        _dir: tempfile::TempDir,
        env: BTreeMap<String, String>,
    }

    fn files() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let aws = dir.path().join(".aws");
        std::fs::create_dir_all(&aws).unwrap();
        std::fs::write(aws.join("credentials"), CREDENTIALS).unwrap();
        std::fs::write(aws.join("config"), CONFIG).unwrap();
        let mut env = BTreeMap::new();
        env.insert("HOME".into(), dir.path().to_str().unwrap().into());
        Files { _dir: dir, env }
    }

    impl Files {
        fn with(&self, extra: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
            let mut env = self.env.clone();
            for (k, v) in extra {
                env.insert((*k).into(), (*v).into());
            }
            move |k: &str| env.get(k).cloned()
        }
    }

    fn config(b: &AmazonS3Builder, key: AmazonS3ConfigKey) -> Option<String> {
        b.get_config_value(&key)
    }

    #[test]
    fn the_default_profile_gives_keys_and_region() {
        let f = files();
        let b = apply(AmazonS3Builder::new(), f.with(&[])).unwrap();
        assert_eq!(
            config(&b, AmazonS3ConfigKey::AccessKeyId).as_deref(),
            Some("AKIDEFAULT")
        );
        assert_eq!(
            config(&b, AmazonS3ConfigKey::SecretAccessKey).as_deref(),
            Some("default/secret+key")
        );
        assert_eq!(config(&b, AmazonS3ConfigKey::Token), None);
        assert_eq!(
            config(&b, AmazonS3ConfigKey::Region).as_deref(),
            Some("eu-west-1")
        );
    }

    #[test]
    fn aws_profile_names_a_profile_with_a_session_token_and_an_endpoint() {
        let f = files();
        for var in ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"] {
            let b = apply(AmazonS3Builder::new(), f.with(&[(var, "dev")])).unwrap();
            assert_eq!(
                config(&b, AmazonS3ConfigKey::AccessKeyId).as_deref(),
                Some("AKIDEV")
            );
            assert_eq!(
                config(&b, AmazonS3ConfigKey::Token).as_deref(),
                Some("FwoGZXIvYXdzEJr//////////wEaDO=")
            );
            assert_eq!(
                config(&b, AmazonS3ConfigKey::Region).as_deref(),
                Some("eu-central-1")
            );
            assert_eq!(
                config(&b, AmazonS3ConfigKey::Endpoint).as_deref(),
                Some("http://127.0.0.1:8333")
            );
        }
        // AWS_PROFILE wins over AWS_DEFAULT_PROFILE.
        let b = apply(
            AmazonS3Builder::new(),
            f.with(&[
                ("AWS_PROFILE", "keys-in-config"),
                ("AWS_DEFAULT_PROFILE", "dev"),
            ]),
        )
        .unwrap();
        assert_eq!(
            config(&b, AmazonS3ConfigKey::AccessKeyId).as_deref(),
            Some("AKICONFIG")
        );
    }

    #[test]
    fn the_environment_wins_over_the_files() {
        let f = files();
        let env = f.with(&[
            ("AWS_ACCESS_KEY_ID", "AKIENV"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret"),
            ("AWS_REGION", "ap-south-1"),
        ]);
        let b = AmazonS3Builder::new()
            .with_config(AmazonS3ConfigKey::AccessKeyId, "AKIENV")
            .with_config(AmazonS3ConfigKey::SecretAccessKey, "env-secret")
            .with_config(AmazonS3ConfigKey::Region, "ap-south-1");
        let b = apply(b, env).unwrap();
        assert_eq!(
            config(&b, AmazonS3ConfigKey::AccessKeyId).as_deref(),
            Some("AKIENV")
        );
        assert_eq!(
            config(&b, AmazonS3ConfigKey::Region).as_deref(),
            Some("ap-south-1")
        );
    }

    #[test]
    fn other_file_locations_and_a_missing_named_profile() {
        let f = files();
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("creds");
        std::fs::write(
            &creds,
            "[ci]\naws_access_key_id=AKICI\naws_secret_access_key=s\n",
        )
        .unwrap();
        let creds = creds.to_str().unwrap();
        let b = apply(
            AmazonS3Builder::new(),
            f.with(&[
                ("AWS_SHARED_CREDENTIALS_FILE", creds),
                ("AWS_CONFIG_FILE", "/nonexistent/config"),
                ("AWS_PROFILE", "ci"),
            ]),
        )
        .unwrap();
        assert_eq!(
            config(&b, AmazonS3ConfigKey::AccessKeyId).as_deref(),
            Some("AKICI")
        );
        assert_eq!(config(&b, AmazonS3ConfigKey::Region), None);
        let e = apply(AmazonS3Builder::new(), f.with(&[("AWS_PROFILE", "nope")])).unwrap_err();
        assert!(
            e.contains("`nope`") && e.contains(".aws/credentials"),
            "{e}"
        );
        // An unnamed default profile that is nowhere is no error: other sources may serve.
        let b = apply(
            AmazonS3Builder::new(),
            f.with(&[
                ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/c"),
                ("AWS_CONFIG_FILE", "/nonexistent/c"),
            ]),
        )
        .unwrap();
        assert_eq!(config(&b, AmazonS3ConfigKey::AccessKeyId), None);
    }

    #[test]
    fn an_sso_profile_is_refused_with_the_way_out_and_no_secret_is_shown() {
        let f = files();
        let e = apply(AmazonS3Builder::new(), f.with(&[("AWS_PROFILE", "sso")])).unwrap_err();
        assert!(
            e.contains("sso_session") && e.contains("aws configure export-credentials"),
            "{e}"
        );
        let p = read(&Sources::from_env(f.with(&[("AWS_PROFILE", "dev")])))
            .unwrap()
            .unwrap();
        let shown = format!("{p:?}");
        assert!(
            !shown.contains("dev-secret") && !shown.contains("AKIDEV") && !shown.contains("Fwo"),
            "{shown}"
        );
    }
}
