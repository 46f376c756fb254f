//! The service-account signing key: an ECDSA P-256 key pair (tokens are ES256), read from a
//! PKCS#8 PEM, a SEC1 `EC PRIVATE KEY` PEM (what `openssl ecparam -genkey` writes; upstream's
//! `--service-account-key-file` takes both, `keyutil.ParsePrivateKeyPEM`) or generated, with its
//! key ID.

use base64::Engine;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

/// Why a signing key could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// No `-----BEGIN PRIVATE KEY-----` or `-----BEGIN EC PRIVATE KEY-----` block, or its
    /// base64 does not decode.
    #[error(
        "the service-account key is not a PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN EC PRIVATE KEY-----)"
    )]
    NotPkcs8Pem,
    /// A PKCS#8 key that is not ECDSA P-256.
    #[error("the service-account key must be an ECDSA P-256 key: {0}")]
    Rejected(String),
    /// The system random source failed while generating a key.
    #[error("cannot generate a service-account key")]
    Generate,
}

/// A P-256 key pair: signs tokens and verifies them.
#[derive(Clone)]
pub struct SigningKey {
    encoding: jsonwebtoken::EncodingKey,
    decoding: jsonwebtoken::DecodingKey,
    key_id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// The DER `SubjectPublicKeyInfo` header of a P-256 public key (algorithm `id-ecPublicKey`
/// with the `prime256v1` curve, then the BIT STRING of the 65-byte uncompressed point).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

impl SigningKey {
    /// Reads a PEM private key: PKCS#8 (`-----BEGIN PRIVATE KEY-----`, as rcgen and
    /// `openssl genpkey` write it) or SEC1 (`-----BEGIN EC PRIVATE KEY-----`).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        Self::from_pkcs8(&pkcs8_der(pem).ok_or(KeyError::NotPkcs8Pem)?)
    }

    /// Reads a PKCS#8 DER private key.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, KeyError> {
        let rng = ring::rand::SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
        let point = pair.public_key().as_ref();
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(point);
        Ok(Self {
            encoding: jsonwebtoken::EncodingKey::from_ec_der(der),
            decoding: jsonwebtoken::DecodingKey::from_ec_der(point),
            key_id: key_id(&spki),
        })
    }

    /// A new random key (the API server's key when none is configured).
    pub fn generate() -> Result<Self, KeyError> {
        let rng = ring::rand::SystemRandom::new();
        let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| KeyError::Generate)?;
        Self::from_pkcs8(der.as_ref())
    }

    /// The `kid` header of tokens signed with this key: the unpadded base64url SHA-256 of the
    /// DER public key (upstream `keyIDFromPublicKey`, `pkg/serviceaccount/jwt.go`).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs `claims` as an ES256 JWT.
    pub fn sign<T: serde::Serialize>(&self, claims: &T) -> Result<String, String> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| e.to_string())
    }

    /// Checks the signature of `token` and decodes its claims. Time and audience are not
    /// checked here (the caller checks them on its clock, see
    /// [`super::claims::Claims::check_time`]).
    pub fn verify<T: serde::de::DeserializeOwned>(&self, token: &str) -> Result<T, String> {
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        jsonwebtoken::decode::<T>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|e| e.to_string())
    }
}

/// The PKCS#8 form of a PEM private key: a `PRIVATE KEY` block as it is, an `EC PRIVATE KEY`
/// (SEC1) block wrapped for P-256; other PEM text unchanged (the reader then says what is
/// wrong with it). Lets readers that take PKCS#8 only (ring) use either form.
pub fn pkcs8_pem(pem: &str) -> String {
    if pem.contains("-----BEGIN PRIVATE KEY-----") {
        return pem.to_string();
    }
    match pkcs8_der(pem) {
        Some(der) => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(der);
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap_or_default())
                .collect();
            format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                lines.join("\n")
            )
        }
        None => pem.to_string(),
    }
}

/// The DER `AlgorithmIdentifier` of a P-256 key: `id-ecPublicKey` (1.2.840.10045.2.1) with the
/// `prime256v1` curve (1.2.840.10045.3.1.7), RFC 5480.
const P256_ALGORITHM: [u8; 21] = [
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];

/// The PKCS#8 DER of a PEM private key: a `PRIVATE KEY` block's bytes, or an `EC PRIVATE KEY`
/// block (SEC1 `ECPrivateKey`, RFC 5915) wrapped as a PKCS#8 `PrivateKeyInfo` (RFC 5208:
/// version 0, the P-256 algorithm, the SEC1 bytes as the private key OCTET STRING).
fn pkcs8_der(pem: &str) -> Option<Vec<u8>> {
    if let Some(der) = pem_block(pem, "PRIVATE KEY") {
        return Some(der);
    }
    let sec1 = pem_block(pem, "EC PRIVATE KEY")?;
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(&P256_ALGORITHM);
    body.push(0x04);
    der_length(sec1.len(), &mut body);
    body.extend_from_slice(&sec1);
    let mut out = vec![0x30];
    der_length(body.len(), &mut out);
    out.extend_from_slice(&body);
    Some(out)
}

/// Appends a DER length (short form below 128, else long form).
fn der_length(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes: Vec<u8> = len
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    out.push(0x80 | bytes.len() as u8);
    out.extend_from_slice(&bytes);
}

fn key_id(spki_der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, spki_der);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// The DER bytes of the first PEM block labelled `label`.
fn pem_block(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pem_key_signs_what_it_verifies() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let key = SigningKey::from_pem(&pair.serialize_pem()).unwrap();
        let same = SigningKey::from_pem(&pair.serialize_pem()).unwrap();
        assert_eq!(key.key_id(), same.key_id());
        let token = key.sign(&serde_json::json!({"sub": "x"})).unwrap();
        let back: serde_json::Value = same.verify(&token).unwrap();
        assert_eq!(back["sub"], "x");
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(key.key_id()));
        assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    }

    #[test]
    fn another_key_does_not_verify() {
        let a = SigningKey::generate().unwrap();
        let b = SigningKey::generate().unwrap();
        assert_ne!(a.key_id(), b.key_id());
        let token = a.sign(&serde_json::json!({"sub": "x"})).unwrap();
        assert!(b.verify::<serde_json::Value>(&token).is_err());
        // A tampered payload fails too.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"admin"}"#);
        parts[1] = &forged;
        assert!(a.verify::<serde_json::Value>(&parts.join(".")).is_err());
    }

    /// The SEC1 `ECPrivateKey` inside a PKCS#8 `PrivateKeyInfo`: the OCTET STRING after the
    /// version and the algorithm (lengths here are all in short or one-byte long form).
    fn inner_sec1(pkcs8: &[u8]) -> Vec<u8> {
        let skip_header = |d: &[u8]| -> (usize, usize) {
            if d[1] < 0x80 {
                (2, d[1] as usize)
            } else {
                (3, d[2] as usize)
            }
        };
        let (h, _) = skip_header(pkcs8);
        let mut rest = &pkcs8[h..];
        for _ in 0..2 {
            let (h, l) = skip_header(rest);
            rest = &rest[h + l..];
        }
        assert_eq!(rest[0], 0x04);
        let (h, l) = skip_header(rest);
        rest[h..h + l].to_vec()
    }

    #[test]
    fn a_sec1_pem_key_is_the_same_key() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let sec1 = inner_sec1(&pair.serialize_der());
        let b64 = base64::engine::general_purpose::STANDARD.encode(&sec1);
        let pem = format!("-----BEGIN EC PRIVATE KEY-----\n{b64}\n-----END EC PRIVATE KEY-----\n");
        let from_sec1 = SigningKey::from_pem(&pem).unwrap();
        let from_pkcs8 = SigningKey::from_pem(&pair.serialize_pem()).unwrap();
        assert_eq!(from_sec1.key_id(), from_pkcs8.key_id());
        let token = from_sec1.sign(&serde_json::json!({"sub": "x"})).unwrap();
        assert!(from_pkcs8.verify::<serde_json::Value>(&token).is_ok());
        // rcgen (PKCS#8 only on ring) reads the converted form.
        let converted = pkcs8_pem(&pem);
        assert!(converted.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert_eq!(
            rcgen::KeyPair::from_pem(&converted)
                .unwrap()
                .public_key_pem(),
            pair.public_key_pem()
        );
        assert_eq!(pkcs8_pem(&pair.serialize_pem()), pair.serialize_pem());
        assert_eq!(pkcs8_pem("junk"), "junk");
        let mut long = Vec::new();
        der_length(300, &mut long);
        assert_eq!(long, [0x82, 0x01, 0x2c]);
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(
            SigningKey::from_pem("not a key").unwrap_err(),
            KeyError::NotPkcs8Pem
        );
        let rsa_like = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(matches!(
            SigningKey::from_pem(rsa_like),
            Err(KeyError::Rejected(_))
        ));
    }
}
