//! Batch files: the tenants an operator hands to the daemon, as `[[tenant]]`
//! entries, validated into [`TenantSpec`]s before anything is sent.
//!
//! ```toml
//! [[tenant]]
//! tenant_id = "contoso.onmicrosoft.com"
//! client_id = "6731de76-14a6-49ae-97bc-6eba6914391e"
//! client_secret_file = "secrets/contoso"   # or client_secret_credential = "contoso"
//! keep = ["admin@contoso.onmicrosoft.com"]
//! subscriptions = "partner-center"         # or "manual"
//! ```

use super::{locate, Error};
use crate::model::{SecretSource, SubscriptionMode, TenantSpec};
use serde::{Deserialize, Deserializer};
use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A validated batch file.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchFile {
    /// The file it was read from (for messages).
    pub file: PathBuf,
    /// One spec per `[[tenant]]` entry, in file order; secret file paths are
    /// absolute, since the daemon resolves them, not the CLI.
    pub tenants: Vec<TenantSpec>,
    /// The line of each tenant's entry (same order), for later messages.
    pub lines: Vec<usize>,
    /// Each tenant's `finish_with` (same order): the keep account who
    /// finishes the closure, if named.
    pub finish_with: Vec<Option<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatch {
    #[serde(default)]
    tenant: Vec<Spanned<RawTenant>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    tenant_id: NonEmpty,
    client_id: NonEmpty,
    #[allow(dead_code)]
    client_secret: Option<InlineSecret>,
    client_secret_file: Option<Spanned<PathBuf>>,
    client_secret_credential: Option<CredentialName>,
    #[serde(deserialize_with = "keep_list")]
    keep: Vec<String>,
    subscriptions: SubscriptionMode,
    /// The keep Global Administrator who deletes the tenant (step 4 leaves
    /// its MFA on); default: the first keep account holding the role.
    finish_with: Option<NonEmpty>,
}

/// A string that must not be empty.
pub(super) struct NonEmpty(pub(super) String);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Err(serde::de::Error::custom("must not be empty"));
        }
        Ok(NonEmpty(s))
    }
}

/// `client_secret = "..."`: always refused, with the reason. The value is
/// never kept.
pub(super) struct InlineSecret;

impl<'de> Deserialize<'de> for InlineSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Err(serde::de::Error::custom(
            "an inline client secret is refused: config and batch files get copied, mailed and \
             committed, and a secret in them leaks; put the secret in a file readable by the \
             daemon only (client_secret_file = \"PATH\") or a systemd credential \
             (client_secret_credential = \"NAME\", loaded with LoadCredential=)",
        ))
    }
}

/// A systemd credential name: a plain file name in `$CREDENTIALS_DIRECTORY`.
pub(super) struct CredentialName(String);

impl<'de> Deserialize<'de> for CredentialName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.contains('/') || s == "." || s == ".." {
            return Err(serde::de::Error::custom(format!(
                "{s:?} is not a credential name (a plain file name as given to LoadCredential=)"
            )));
        }
        Ok(CredentialName(s))
    }
}

/// Exactly one of the two secret sources.
pub(super) fn secret_source(
    file: Option<impl Into<PathBuf>>,
    credential: Option<CredentialName>,
) -> Result<SecretSource, &'static str> {
    match (file, credential) {
        (Some(f), None) => Ok(SecretSource::File(f.into())),
        (None, Some(c)) => Ok(SecretSource::Credential(c.0)),
        (Some(_), Some(_)) => Err("both client_secret_file and client_secret_credential are \
             given: keep exactly one, so that it is clear which secret is used"),
        (None, None) => Err(
            "no client secret source: give client_secret_file = \"PATH\" or \
             client_secret_credential = \"NAME\"",
        ),
    }
}

fn keep_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let keep = Vec::<String>::deserialize(d)?;
    if keep.is_empty() {
        return Err(serde::de::Error::custom(
            "the keep list is empty: name at least one account (UPN or object id) holding the \
             Global Administrator role, which closing the tenant requires",
        ));
    }
    let mut seen = HashSet::new();
    for k in &keep {
        if k.trim().is_empty() {
            return Err(serde::de::Error::custom("the keep list has an empty entry"));
        }
        if !seen.insert(k.to_lowercase()) {
            return Err(serde::de::Error::custom(format!(
                "{k:?} is listed twice in the keep list"
            )));
        }
    }
    Ok(keep)
}

impl BatchFile {
    /// Reads and validates a batch file.
    pub fn load(path: &Path) -> Result<BatchFile, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        BatchFile::parse(&text, path)
    }

    /// Validates batch text read from `file` (named in errors; its directory
    /// anchors relative secret paths). Secret files are not looked at: see
    /// [`BatchFile::check_secret_files`].
    pub fn parse(text: &str, file: &Path) -> Result<BatchFile, Error> {
        let raw: RawBatch = toml::from_str(text).map_err(|e| locate::toml_error(file, text, &e))?;
        if raw.tenant.is_empty() {
            return Err(locate::span_error(
                file,
                text,
                0..0,
                "no [[tenant]] entries: a batch file lists the tenants to close",
            ));
        }
        let dir = locate::base_dir(file);
        let mut seen = HashSet::new();
        let mut tenants = Vec::with_capacity(raw.tenant.len());
        let mut lines = Vec::with_capacity(raw.tenant.len());
        let mut finish_with = Vec::with_capacity(raw.tenant.len());
        for entry in raw.tenant {
            let span = entry.span();
            let t = entry.into_inner();
            if !seen.insert(t.tenant_id.0.to_lowercase()) {
                return Err(locate::span_error(
                    file,
                    text,
                    span,
                    &format!("tenant {:?} is listed twice", t.tenant_id.0),
                ));
            }
            let secret_file = t
                .client_secret_file
                .map(|p| locate::anchor(&dir, p.get_ref()));
            lines.push(locate::line_of(text, span.start));
            let secret = secret_source(secret_file, t.client_secret_credential)
                .map_err(|m| locate::span_error(file, text, span.clone(), m))?;
            if let Some(f) = &t.finish_with {
                if !t.keep.iter().any(|k| k.eq_ignore_ascii_case(&f.0)) {
                    return Err(locate::span_error(
                        file,
                        text,
                        span,
                        &format!(
                            "finish_with {:?} is not in the keep list: the account who finishes the closure must be kept",
                            f.0
                        ),
                    ));
                }
            }
            finish_with.push(t.finish_with.map(|f| f.0));
            tenants.push(TenantSpec {
                tenant_id: t.tenant_id.0,
                client_id: t.client_id.0,
                secret,
                keep: t.keep,
                subscriptions: t.subscriptions,
            });
        }
        Ok(BatchFile {
            file: file.to_path_buf(),
            tenants,
            lines,
            finish_with,
        })
    }

    /// Fails for a `client_secret_file` that does not exist, naming the
    /// tenant's entry. One this user may not read passes: the daemon, which
    /// reads it, may run as another user.
    pub fn check_secret_files(&self) -> Result<(), Error> {
        for (i, t) in self.tenants.iter().enumerate() {
            let SecretSource::File(path) = &t.secret else {
                continue;
            };
            let invalid = |message: String| Error::Invalid {
                file: self.file.clone(),
                line: self.lines.get(i).copied().unwrap_or(1),
                key: format!("tenant[{}].client_secret_file", i + 1),
                message,
            };
            // Only the metadata: a FIFO is never opened here.
            match std::fs::metadata(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(invalid(format!(
                        "secret file {} does not exist (tenant {})",
                        path.display(),
                        t.tenant_id
                    )));
                }
                Err(_) => {}
                Ok(meta) if !meta.is_file() => {
                    return Err(invalid(format!(
                        "secret file {} is not a regular file (tenant {})",
                        path.display(),
                        t.tenant_id
                    )));
                }
                Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                    return Err(invalid(format!(
                        "secret file {} has mode {:04o}: group or others may read it; run `chmod 600 {}` (tenant {})",
                        path.display(),
                        meta.permissions().mode() & 0o7777,
                        path.display(),
                        t.tenant_id
                    )));
                }
                Ok(_) => {}
            }
        }
        Ok(())
    }
}
