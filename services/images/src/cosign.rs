//! Cosign's key-based signature format, as `cosign sign --key` writes it
//! and `cosign verify --key` reads it.
//!
//! A signature of image `sha256:<hex>` in repository `r` lives in `r` itself,
//! tagged `sha256-<hex>.sig`: an OCI image manifest whose layers are each one
//! signature. A layer's blob is the *simple signing* payload (JSON naming the
//! image's digest and reference), its media type
//! [`PAYLOAD_MEDIA_TYPE`], and its annotation [`SIGNATURE_ANNOTATION`] holds
//! the base64 ECDSA P-256 / SHA-256 signature (ASN.1 DER) of the payload's
//! exact bytes. Public keys are PEM `PUBLIC KEY` (SubjectPublicKeyInfo).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kernel::{Error, Result};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::transfer::sha256_digest;

/// The media type of a signature layer.
pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation carrying the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The `critical.type` of a container image signature.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";
/// The media type of the signature image's manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// The DER prefix of a P-256 SubjectPublicKeyInfo before its 65-byte
/// uncompressed point: SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING }.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const P256_POINT_LEN: usize = 65;

/// The tag a signature of `digest` (`sha256:<hex>`) is stored at.
///
/// # Errors
/// `digest` is not a sha256 digest.
pub fn signature_tag(digest: &str) -> Result<String> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| Error::invalid("digest", format!("{digest} is not a sha256 digest")))?;
    Ok(format!("sha256-{hex}.sig"))
}

/// The digest a signature tag (`sha256-<hex>.sig`) signs, if it is one.
pub fn signed_digest(tag: &str) -> Option<String> {
    let hex = tag.strip_prefix("sha256-")?.strip_suffix(".sig")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("sha256:{hex}"))
}

/// The simple signing payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Payload {
    /// What is signed.
    pub critical: Critical,
    /// Free annotations (cosign writes `null` without `-a`).
    pub optional: Option<Value>,
}

/// The signed claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Critical {
    /// The image's reference.
    pub identity: Identity,
    /// The image's digest.
    pub image: ImageDigest,
    /// Always [`SIGNATURE_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
}

/// `critical.identity`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    /// `host/repository`.
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

/// `critical.image`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageDigest {
    /// `sha256:...`.
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

/// The payload cosign signs for image `digest` known as `reference` (`host/repository`).
pub fn payload(reference: &str, digest: &str) -> Vec<u8> {
    let p = Payload {
        critical: Critical {
            identity: Identity {
                docker_reference: reference.to_string(),
            },
            image: ImageDigest {
                docker_manifest_digest: digest.to_string(),
            },
            kind: SIGNATURE_TYPE.to_string(),
        },
        optional: None,
    };
    serde_json::to_vec(&p).expect("a payload serialises")
}

/// A tenant's P-256 key pair, as generated: the PKCS#8 document (to seal) and the public point.
pub struct Generated {
    /// PKCS#8 DER of the private key.
    pub pkcs8: Vec<u8>,
    /// The public key as PEM.
    pub public_pem: String,
}

/// A new P-256 key pair.
///
/// # Errors
/// The system's randomness fails.
pub fn generate() -> Result<Generated> {
    let rng = SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| Error::internal("generating a signing key failed"))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, doc.as_ref(), &rng)
        .map_err(|_| Error::internal("a generated signing key does not load"))?;
    Ok(Generated {
        pkcs8: doc.as_ref().to_vec(),
        public_pem: public_key_pem(pair.public_key().as_ref()),
    })
}

/// The base64 signature of `payload` with the PKCS#8 key `pkcs8`.
///
/// # Errors
/// The key does not load.
pub fn sign(pkcs8: &[u8], payload: &[u8]) -> Result<String> {
    let rng = SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &rng)
        .map_err(|_| Error::internal("a stored signing key does not load"))?;
    let signature = pair
        .sign(&rng, payload)
        .map_err(|_| Error::internal("signing failed"))?;
    Ok(B64.encode(signature.as_ref()))
}

/// Whether `signature` (base64 DER) is `point`'s signature of `payload`.
pub fn verify(point: &[u8], payload: &[u8], signature: &str) -> bool {
    let Ok(signature) = B64.decode(signature.trim()) else {
        return false;
    };
    ring::signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(payload, &signature)
        .is_ok()
}

/// The PEM `PUBLIC KEY` of an uncompressed P-256 point.
pub fn public_key_pem(point: &[u8]) -> String {
    let der = [P256_SPKI_PREFIX.as_slice(), point].concat();
    let body = B64.encode(der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

/// The uncompressed point of a PEM `PUBLIC KEY` holding a P-256 key.
///
/// # Errors
/// Not PEM, or not an ECDSA P-256 public key; names `field`.
pub fn parse_public_key_pem(field: &str, pem: &str) -> Result<Vec<u8>> {
    let pem = pem.trim();
    let body = pem
        .strip_prefix("-----BEGIN PUBLIC KEY-----")
        .and_then(|b| b.strip_suffix("-----END PUBLIC KEY-----"))
        .ok_or_else(|| Error::invalid(field, "must be a PEM PUBLIC KEY (-----BEGIN PUBLIC KEY-----)"))?;
    let body: String = body.split_whitespace().collect();
    let der = B64
        .decode(body)
        .map_err(|_| Error::invalid(field, "the PEM body is not base64"))?;
    match der.strip_prefix(P256_SPKI_PREFIX.as_slice()) {
        Some(point) if point.len() == P256_POINT_LEN && point[0] == 0x04 => Ok(point.to_vec()),
        _ => Err(Error::invalid(
            field,
            "must be an ECDSA P-256 public key (cosign generate-key-pair makes one)",
        )),
    }
}

/// One signature as a layer of the signature image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The payload's digest.
    pub digest: String,
    /// The payload's length.
    pub size: i64,
    /// The base64 signature.
    pub signature: String,
}

/// The layers of a signature manifest that are signatures.
pub fn layers(manifest: &Value) -> Vec<Layer> {
    manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["mediaType"] == PAYLOAD_MEDIA_TYPE)
        .filter_map(|l| {
            Some(Layer {
                digest: l["digest"].as_str()?.to_string(),
                size: l["size"].as_i64().unwrap_or(0),
                signature: l["annotations"][SIGNATURE_ANNOTATION].as_str()?.to_string(),
            })
        })
        .collect()
}

/// The config blob and manifest of a signature image with `layers`, as cosign writes them.
pub fn manifest(layers: &[Layer]) -> (Vec<u8>, Vec<u8>) {
    let config = json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>()},
        "config": {}
    });
    let config = serde_json::to_vec(&config).expect("a config serialises");
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "size": config.len(), "digest": sha256_digest(&config)},
        "layers": layers.iter().map(|l| json!({
            "mediaType": PAYLOAD_MEDIA_TYPE,
            "size": l.size,
            "digest": l.digest,
            "annotations": {SIGNATURE_ANNOTATION: l.signature},
        })).collect::<Vec<_>>()
    });
    (config, serde_json::to_vec(&manifest).expect("a manifest serialises"))
}

/// Why a payload does not sign `digest`, if it does not.
pub fn payload_mismatch(payload: &[u8], digest: &str) -> Option<String> {
    let Ok(p) = serde_json::from_slice::<Payload>(payload) else {
        return Some("its payload is not a simple signing payload".to_string());
    };
    if p.critical.kind != SIGNATURE_TYPE {
        return Some(format!("its payload's type is {:?}", p.critical.kind));
    }
    if p.critical.image.docker_manifest_digest != digest {
        return Some(format!(
            "its payload signs {}, not {digest}",
            p.critical.image.docker_manifest_digest
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn signatures_verify_with_their_key_only() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        let point = parse_public_key_pem("k", &a.public_pem).unwrap();
        let other = parse_public_key_pem("k", &b.public_pem).unwrap();
        assert_eq!(public_key_pem(&point), a.public_pem);
        let body = payload("registry.example/acme/web/app", DIGEST);
        let signature = sign(&a.pkcs8, &body).unwrap();
        assert!(verify(&point, &body, &signature));
        assert!(!verify(&other, &body, &signature), "another key");
        let mut tampered = body.clone();
        tampered[10] ^= 1;
        assert!(!verify(&point, &tampered, &signature), "a tampered payload");
        assert!(!verify(&point, &body, "not base64!"));
    }

    #[test]
    fn the_payload_is_cosigns() {
        let body = payload("r.example/a/b/c", DIGEST);
        assert_eq!(
            String::from_utf8(body.clone()).unwrap(),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"r.example/a/b/c"}},"image":{{"docker-manifest-digest":"{DIGEST}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
        assert_eq!(payload_mismatch(&body, DIGEST), None);
        let other = DIGEST.replace("0123", "4567");
        assert!(payload_mismatch(&body, &other).unwrap().contains("signs"));
        assert!(payload_mismatch(b"{}", DIGEST).is_some());
    }

    #[test]
    fn signature_tags_name_the_digest() {
        let tag = signature_tag(DIGEST).unwrap();
        assert_eq!(tag, format!("sha256-{}.sig", &DIGEST[7..]));
        assert_eq!(signed_digest(&tag).as_deref(), Some(DIGEST));
        assert_eq!(signed_digest("1.0"), None);
        assert!(signature_tag("sha256:12").is_err());
    }

    #[test]
    fn manifests_round_trip_their_layers() {
        let layer = Layer {
            digest: DIGEST.to_string(),
            size: 10,
            signature: "c2ln".to_string(),
        };
        let (config, body) = manifest(std::slice::from_ref(&layer));
        let doc: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["config"]["digest"], sha256_digest(&config));
        assert_eq!(layers(&doc), vec![layer]);
    }

    #[test]
    fn only_p256_public_keys_parse() {
        assert!(parse_public_key_pem("k", "hello").is_err());
        let rsa_like =
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----";
        assert_eq!(parse_public_key_pem("k", rsa_like).unwrap_err().field(), Some("k"));
    }
}
