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
//!
//! A partner's one multi-tenant app consented in every customer tenant is
//! named once in `[defaults]` (`client_id` and the credential); a
//! `[[tenant]]` may override either. Each entry may name the tenant's initial
//! domain (`domain = "contoso.onmicrosoft.com"`): closeout then refuses the
//! tenant unless the organization it reaches has both that id and that
//! initial domain, so a typo in an id cannot close another customer.

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
    /// Each tenant's `domain` (same order): the initial domain its
    /// organization must have, if named.
    pub domains: Vec<Option<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatch {
    /// What every `[[tenant]]` inherits unless it says otherwise.
    defaults: Option<Spanned<RawDefaults>>,
    #[serde(default)]
    tenant: Vec<Spanned<RawTenant>>,
}

/// `[defaults]`: one app for many tenants.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    client_id: Option<NonEmpty>,
    #[allow(dead_code)]
    client_secret: Option<InlineSecret>,
    client_secret_file: Option<Spanned<PathBuf>>,
    client_secret_credential: Option<CredentialName>,
    client_certificate_file: Option<Spanned<PathBuf>>,
    client_certificate_credential: Option<CredentialName>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    tenant_id: NonEmpty,
    client_id: Option<NonEmpty>,
    #[allow(dead_code)]
    client_secret: Option<InlineSecret>,
    client_secret_file: Option<Spanned<PathBuf>>,
    client_secret_credential: Option<CredentialName>,
    client_certificate_file: Option<Spanned<PathBuf>>,
    client_certificate_credential: Option<CredentialName>,
    /// The tenant's initial domain, checked against its organization.
    domain: Option<Domain>,
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

/// An initial domain: `name.onmicrosoft.com` (or a national cloud's
/// equivalent), lowercased.
struct Domain(String);

impl<'de> Deserialize<'de> for Domain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = s.len() <= 253
            && s.contains('.')
            && !s.starts_with('.')
            && !s.ends_with('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'));
        if !ok {
            return Err(serde::de::Error::custom(format!(
                "{s:?} is not a domain name (the tenant's initial domain, e.g. \"contoso.onmicrosoft.com\")"
            )));
        }
        Ok(Domain(s.to_ascii_lowercase()))
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

/// Said when neither a tenant nor `[defaults]` names a credential.
pub(super) const NO_CREDENTIAL: &str = "no credential: give client_secret_file = \"PATH\", \
     client_secret_credential = \"NAME\", client_certificate_file = \"PATH\" (a PEM with the \
     private key and the certificate) or client_certificate_credential = \"NAME\"";

/// At most one of the four credential sources: `None` when none is given.
pub(super) fn secret_source(
    file: Option<impl Into<PathBuf>>,
    credential: Option<CredentialName>,
    cert_file: Option<impl Into<PathBuf>>,
    cert_credential: Option<CredentialName>,
) -> Result<Option<SecretSource>, &'static str> {
    let mut found = Vec::with_capacity(1);
    if let Some(f) = file {
        found.push(SecretSource::File(f.into()));
    }
    if let Some(c) = credential {
        found.push(SecretSource::Credential(c.0));
    }
    if let Some(f) = cert_file {
        found.push(SecretSource::CertificateFile(f.into()));
    }
    if let Some(c) = cert_credential {
        found.push(SecretSource::CertificateCredential(c.0));
    }
    if found.len() > 1 {
        return Err("more than one credential is given (client_secret_file, \
             client_secret_credential, client_certificate_file, client_certificate_credential): \
             keep exactly one, so that it is clear which is used");
    }
    Ok(found.pop())
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
    /// Reads and validates a batch file: only a regular file of at most
    /// [`super::MAX_BATCH_BYTES`] is read.
    pub fn load(path: &Path) -> Result<BatchFile, Error> {
        let text = super::read::read_capped(path, "batch file", super::MAX_BATCH_BYTES)?;
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
        let (default_client, default_secret) = match raw.defaults {
            Some(d) => {
                let span = d.span();
                let d = d.into_inner();
                let secret = secret_source(
                    d.client_secret_file
                        .map(|p| locate::anchor(&dir, p.get_ref())),
                    d.client_secret_credential,
                    d.client_certificate_file
                        .map(|p| locate::anchor(&dir, p.get_ref())),
                    d.client_certificate_credential,
                )
                .map_err(|m| locate::span_error(file, text, span, m))?;
                (d.client_id.map(|c| c.0), secret)
            }
            None => (None, None),
        };
        let mut seen = HashSet::new();
        let mut tenants = Vec::with_capacity(raw.tenant.len());
        let mut lines = Vec::with_capacity(raw.tenant.len());
        let mut finish_with = Vec::with_capacity(raw.tenant.len());
        let mut domains = Vec::with_capacity(raw.tenant.len());
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
            let cert_file = t
                .client_certificate_file
                .map(|p| locate::anchor(&dir, p.get_ref()));
            lines.push(locate::line_of(text, span.start));
            let secret = secret_source(
                secret_file,
                t.client_secret_credential,
                cert_file,
                t.client_certificate_credential,
            )
            .map_err(|m| locate::span_error(file, text, span.clone(), m))?
            .or_else(|| default_secret.clone())
            .ok_or_else(|| locate::span_error(file, text, span.clone(), NO_CREDENTIAL))?;
            let client_id = t
                .client_id
                .map(|c| c.0)
                .or_else(|| default_client.clone())
                .ok_or_else(|| {
                    locate::span_error(
                        file,
                        text,
                        span.clone(),
                        "no client_id: give it in the [[tenant]] entry or in [defaults]",
                    )
                })?;
            domains.push(t.domain.map(|d| d.0));
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
                client_id,
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
            domains,
        })
    }

    /// Fails for a `client_secret_file` that does not exist, naming the
    /// tenant's entry. One this user may not read passes: the daemon, which
    /// reads it, may run as another user.
    pub fn check_secret_files(&self) -> Result<(), Error> {
        for (i, t) in self.tenants.iter().enumerate() {
            let Some(path) = t.secret.file() else {
                continue;
            };
            let key = if t.secret.is_certificate() {
                "client_certificate_file"
            } else {
                "client_secret_file"
            };
            let invalid = |message: String| Error::Invalid {
                file: self.file.clone(),
                line: self.lines.get(i).copied().unwrap_or(1),
                key: format!("tenant[{}].{key}", i + 1),
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
