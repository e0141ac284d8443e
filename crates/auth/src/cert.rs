//! Certificate credentials: a PEM file with an RSA private key and its X.509
//! certificate, turned into the signed client assertion of Microsoft's
//! "Microsoft identity platform application authentication certificate
//! credentials" page
//! (https://learn.microsoft.com/entra/identity-platform/certificate-credentials):
//! a JWT with header `alg` PS256, `typ` JWT and `x5t#S256` (the base64url
//! SHA-256 thumbprint of the certificate's DER), claims `aud` (the token
//! endpoint), `iss` = `sub` = the client id, a fresh `jti`, `nbf`/`iat` now
//! and a short `exp`, signed with PSS padding. It is sent as
//! `client_assertion` with `client_assertion_type =
//! urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
//!
//! The simulator checks assertions with [`Registered::verify`], real RSA
//! signatures against the certificate registered for the app, so the tests
//! exercise the same cryptography as Entra ID.
//!
//! The private key is held only as zeroized DER bytes ([`Certificate`]'s
//! `Debug` shows the thumbprint alone); ring parses it for the moment of a
//! signature. Nothing but the thumbprint is ever logged or recorded.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{self, RsaKeyPair, UnparsedPublicKey};
use x509_cert::der::{Decode, Encode};
use zeroize::Zeroizing;

/// `client_assertion_type` of a JWT assertion.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid: the page asks for 5-10 minutes at most.
pub const ASSERTION_LIFETIME_SECS: u64 = 600;

/// Why a certificate file or an assertion is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// No `-----BEGIN CERTIFICATE-----` block.
    #[error("no certificate in the pem (a -----BEGIN CERTIFICATE----- block is needed)")]
    NoCertificate,
    /// No private key block.
    #[error("no private key in the pem (a -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY----- block is needed; an encrypted key is not supported)")]
    NoKey,
    /// A block is not valid PEM or DER.
    #[error("invalid pem or der: {0}")]
    Malformed(String),
    /// The key is not an RSA key ring accepts (2048 to 8192 bits).
    #[error("the private key is not an rsa key of 2048 to 8192 bits: {0}")]
    BadKey(String),
    /// The key does not belong to the certificate.
    #[error("the private key does not match the certificate's public key")]
    KeyMismatch,
    /// Signing the client assertion with the private key (PS256) failed.
    #[error("signing the client assertion failed")]
    Sign,
}

/// A certificate credential: the certificate and its private key.
pub struct Certificate {
    /// The private key, PKCS#8 or PKCS#1 DER, wiped on drop.
    key: Zeroizing<Vec<u8>>,
    /// Whether `key` is PKCS#8 (else PKCS#1).
    pkcs8: bool,
    /// What everyone may see about the certificate.
    pub public: Registered,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("thumbprint", &self.public.thumbprint_hex())
            .finish_non_exhaustive()
    }
}

/// A certificate without its key: what an app registration holds
/// (`keyCredentials`), and what closeout records (its thumbprint).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registered {
    /// The certificate's DER encoding.
    pub der: Vec<u8>,
    /// The RSA public key (PKCS#1 DER, the SPKI bit string's content).
    rsa_public: Vec<u8>,
    /// `notBefore`, Unix seconds.
    pub not_before: u64,
    /// `notAfter`, Unix seconds.
    pub not_after: u64,
}

/// One PEM block: its label and its DER, wiped on drop.
type Block = (String, Zeroizing<Vec<u8>>);

/// The PEM blocks of a text.
fn blocks(text: &str) -> Result<Vec<Block>, Error> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start..];
        let label_end = after[11..]
            .find("-----")
            .ok_or_else(|| Error::Malformed("unterminated begin line".into()))?;
        let label = &after[11..11 + label_end];
        let end_marker = format!("-----END {label}-----");
        let end = after
            .find(&end_marker)
            .ok_or_else(|| Error::Malformed(format!("no end line for {label}")))?;
        let block = &after[..end + end_marker.len()];
        let (l, der) = x509_cert::der::pem::decode_vec(block.as_bytes())
            .map_err(|e| Error::Malformed(format!("{label}: {e}")))?;
        out.push((l.to_string(), Zeroizing::new(der)));
        rest = &after[end + end_marker.len()..];
    }
    Ok(out)
}

impl Certificate {
    /// Reads a PEM holding a private key (`PRIVATE KEY` or `RSA PRIVATE
    /// KEY`) and a certificate (the first one is the app's), and checks that
    /// they belong together.
    pub fn from_pem(text: &str) -> Result<Certificate, Error> {
        let mut key = None;
        let mut cert = None;
        for (label, der) in blocks(text)? {
            match label.as_str() {
                "PRIVATE KEY" if key.is_none() => key = Some((der, true)),
                "RSA PRIVATE KEY" if key.is_none() => key = Some((der, false)),
                "CERTIFICATE" if cert.is_none() => cert = Some(der),
                "ENCRYPTED PRIVATE KEY" => return Err(Error::NoKey),
                _ => {}
            }
        }
        let (key, pkcs8) = key.ok_or(Error::NoKey)?;
        let public = Registered::from_der(&cert.ok_or(Error::NoCertificate)?)?;
        let c = Certificate { key, pkcs8, public };
        let pair = c.pair()?;
        use ring::signature::KeyPair as _;
        if pair.public_key().as_ref() != c.public.rsa_public.as_slice() {
            return Err(Error::KeyMismatch);
        }
        Ok(c)
    }

    fn pair(&self) -> Result<RsaKeyPair, Error> {
        let r = if self.pkcs8 {
            RsaKeyPair::from_pkcs8(&self.key)
        } else {
            RsaKeyPair::from_der(&self.key)
        };
        r.map_err(|e| Error::BadKey(e.to_string()))
    }

    /// The signed client assertion for `client_id` at the token endpoint
    /// `audience`, issued at `now` (Unix seconds) with the unique `jti`.
    pub fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: u64,
        jti: &str,
    ) -> Result<String, Error> {
        let header = serde_json::json!({
            "alg": "PS256",
            "typ": "JWT",
            "x5t#S256": self.public.thumbprint_b64url(),
        });
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": jti,
            "nbf": now,
            "iat": now,
            "exp": now.saturating_add(ASSERTION_LIFETIME_SECS),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let pair = self.pair()?;
        let mut sig = vec![0u8; pair.public().modulus_len()];
        pair.sign(
            &signature::RSA_PSS_SHA256,
            &ring::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut sig,
        )
        .map_err(|_| Error::Sign)?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// A decoded assertion: header and claims, as JSON.
#[derive(Debug)]
pub struct Assertion {
    /// The JOSE header (`alg`, `typ`, `x5t#S256`).
    pub header: serde_json::Value,
    /// The claims (`aud`, `iss`, `sub`, `jti`, `nbf`, `exp`).
    pub claims: serde_json::Value,
    /// `header.payload`, the signed bytes.
    signing_input: String,
    /// The signature over `signing_input`, decoded from base64url.
    signature: Vec<u8>,
}

impl Assertion {
    /// Splits and decodes a compact JWT; `None` when it is not one.
    pub fn parse(jwt: &str) -> Option<Assertion> {
        let mut parts = jwt.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let json = |p: &str| -> Option<serde_json::Value> {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
        };
        Some(Assertion {
            header: json(h)?,
            claims: json(c)?,
            signing_input: format!("{h}.{c}"),
            signature: URL_SAFE_NO_PAD.decode(s).ok()?,
        })
    }

    /// A claim as text.
    pub fn claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name)?.as_str()
    }

    /// A numeric claim.
    pub fn time(&self, name: &str) -> Option<u64> {
        self.claims.get(name)?.as_u64()
    }
}

impl Registered {
    /// Parses a certificate's DER.
    pub fn from_der(der: &[u8]) -> Result<Registered, Error> {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| Error::Malformed(format!("certificate: {e}")))?;
        let tbs = &cert.tbs_certificate;
        let rsa_public = tbs
            .subject_public_key_info
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| Error::Malformed("certificate: public key bit string".into()))?
            .to_vec();
        Ok(Registered {
            der: cert
                .to_der()
                .map_err(|e| Error::Malformed(format!("certificate: {e}")))?,
            rsa_public,
            not_before: tbs.validity.not_before.to_unix_duration().as_secs(),
            not_after: tbs.validity.not_after.to_unix_duration().as_secs(),
        })
    }

    /// Parses the first certificate of a PEM text (a key in it is ignored).
    pub fn from_pem(text: &str) -> Result<Registered, Error> {
        let der = blocks(text)?
            .into_iter()
            .find(|(l, _)| l == "CERTIFICATE")
            .ok_or(Error::NoCertificate)?
            .1;
        Registered::from_der(&der)
    }

    /// SHA-256 of the DER.
    fn sha256(&self) -> ring::digest::Digest {
        ring::digest::digest(&ring::digest::SHA256, &self.der)
    }

    /// The `x5t#S256` header value.
    pub fn thumbprint_b64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.sha256())
    }

    /// The SHA-256 thumbprint in upper-case hex: what closeout logs and
    /// records about a certificate.
    pub fn thumbprint_hex(&self) -> String {
        self.sha256()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    }

    /// The SHA-1 thumbprint as base64url (`x5t`, which the page's older
    /// RS256 form names; the admin center shows SHA-1 thumbprints).
    pub fn x5t_sha1(&self) -> String {
        URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            &self.der,
        ))
    }

    /// Whether `a`'s header names this certificate and its signature is
    /// this certificate's key's, for PS256 or RS256.
    pub fn verify(&self, a: &Assertion) -> bool {
        let names_me = a.header.get("x5t#S256").and_then(|v| v.as_str())
            == Some(self.thumbprint_b64url().as_str())
            || a.header.get("x5t").and_then(|v| v.as_str()) == Some(self.x5t_sha1().as_str());
        if !names_me {
            return false;
        }
        let alg: &dyn signature::VerificationAlgorithm =
            match a.header.get("alg").and_then(|v| v.as_str()) {
                Some("PS256") => &signature::RSA_PSS_2048_8192_SHA256,
                Some("RS256") => &signature::RSA_PKCS1_2048_8192_SHA256,
                _ => return false,
            };
        UnparsedPublicKey::new(alg, &self.rsa_public)
            .verify(a.signing_input.as_bytes(), &a.signature)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = include_str!("../../../tests/fixtures/certs/closeout.pem");
    const OTHER: &str = include_str!("../../../tests/fixtures/certs/other.pem");

    #[test]
    fn an_assertion_verifies_against_its_certificate_only() {
        let c = Certificate::from_pem(GOOD).unwrap();
        let other = Certificate::from_pem(OTHER).unwrap();
        let jwt = c
            .assertion(
                "app",
                "https://login/t/oauth2/v2.0/token",
                1_700_000_000,
                "j1",
            )
            .unwrap();
        let a = Assertion::parse(&jwt).unwrap();
        assert_eq!(a.header["alg"], "PS256");
        assert_eq!(a.claim("iss"), Some("app"));
        assert_eq!(a.time("exp"), Some(1_700_000_600));
        assert!(c.public.verify(&a));
        assert!(!other.public.verify(&a));
        // A changed claim breaks the signature.
        let mut parts: Vec<&str> = jwt.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(r#"{"iss":"evil"}"#);
        parts[1] = &forged;
        assert!(!c
            .public
            .verify(&Assertion::parse(&parts.join(".")).unwrap()));
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let key_of_other = OTHER.split("-----BEGIN CERTIFICATE").next().unwrap();
        let cert_of_good = &GOOD[GOOD.find("-----BEGIN CERTIFICATE").unwrap()..];
        let e = Certificate::from_pem(&format!("{key_of_other}{cert_of_good}")).unwrap_err();
        assert_eq!(e, Error::KeyMismatch);
        assert_eq!(
            Certificate::from_pem(cert_of_good).unwrap_err(),
            Error::NoKey
        );
        assert!(format!("{:?}", Certificate::from_pem(GOOD).unwrap()).contains("thumbprint"));
        assert!(!format!("{:?}", Certificate::from_pem(GOOD).unwrap()).contains("key:"));
    }
}
