//! TLS for HTTPS probes: rustls with the `ring` provider.
//!
//! By default a probe does not verify the member's certificate. Cloud health checks (ROMA
//! Connect/APIG VPC channels among them) do not verify backend certificates either: members
//! commonly serve self-signed or internally issued certificates for an IP address, and the
//! check's question is "does the member answer", not "is it who it claims to be". The handshake
//! signature is still checked against the presented certificate, so a peer that does not hold
//! the certificate's key fails the handshake. Verification against given roots is an option.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// PEM text, inline or in a file read when the [`TlsProbe`] is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    Inline(Vec<u8>),
}

impl Pem {
    fn read(&self, what: &'static str) -> Result<Vec<u8>, TlsSetupError> {
        match self {
            Pem::Inline(b) => Ok(b.clone()),
            Pem::File(p) => std::fs::read(p).map_err(|e| TlsSetupError::new(what, format!("{}: {e}", p.display()))),
        }
    }
}

/// How HTTPS probes handle TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Verify the member's certificate against these root certificates (PEM, one or more).
    /// `None` (the default): accept any certificate, as cloud health checks do.
    pub verify_roots: Option<Pem>,
    /// Client certificate chain (PEM) presented when the check has `enable_client_ssl`.
    pub client_cert: Option<Pem>,
    /// The client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub client_key: Option<Pem>,
}

/// Why a [`TlsProbe`] could not be built from its options.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TLS probe {what}: {detail}")]
pub struct TlsSetupError {
    what: &'static str,
    detail: String,
}

impl TlsSetupError {
    fn new(what: &'static str, detail: impl Into<String>) -> Self {
        TlsSetupError { what, detail: detail.into() }
    }
}

/// Ready-to-use client configurations for HTTPS probes: one without a client certificate and,
/// when an identity was given, one presenting it (used when the check has `enable_client_ssl`).
#[derive(Clone)]
pub struct TlsProbe {
    plain: Arc<ClientConfig>,
    client_auth: Option<Arc<ClientConfig>>,
    verifies: bool,
}

impl fmt::Debug for TlsProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsProbe")
            .field("verifies", &self.verifies)
            .field("client_identity", &self.client_auth.is_some())
            .finish()
    }
}

impl TlsProbe {
    /// Builds the configurations; reads PEM files now, so that errors show at start-up.
    pub fn new(opts: &TlsOptions) -> Result<TlsProbe, TlsSetupError> {
        let provider = Arc::new(crypto::ring::default_provider());
        let builder = || {
            ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsSetupError::new("protocol versions", e.to_string()))
        };
        let roots = match &opts.verify_roots {
            None => None,
            Some(pem) => Some(Arc::new(root_store(&pem.read("roots")?)?)),
        };
        let verified = |b: rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>| match &roots {
            Some(r) => b.with_root_certificates(r.clone()),
            None => b.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider.clone()))),
        };
        let plain = verified(builder()?).with_no_client_auth();
        let client_auth = match (&opts.client_cert, &opts.client_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let certs = cert_chain(&cert.read("client certificate")?)?;
                let key = private_key(&key.read("client key")?)?;
                let config = verified(builder()?)
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| TlsSetupError::new("client identity", e.to_string()))?;
                Some(Arc::new(config))
            }
            _ => return Err(TlsSetupError::new("client identity", "needs both a certificate and a key")),
        };
        Ok(TlsProbe { plain: Arc::new(plain), client_auth, verifies: roots.is_some() })
    }

    /// No verification, no client certificate: what HTTPS probes use without options.
    pub fn insecure() -> Result<TlsProbe, TlsSetupError> {
        TlsProbe::new(&TlsOptions::default())
    }

    /// Whether server certificates are verified against roots.
    pub fn verifies(&self) -> bool {
        self.verifies
    }

    /// Whether a client identity is configured.
    pub fn has_client_identity(&self) -> bool {
        self.client_auth.is_some()
    }

    /// The configuration for a check: with the client certificate iff `client_ssl` and one is
    /// configured. (`enable_client_ssl` without an identity probes without one; a server that
    /// requires it fails the check, which is what the cloud would report too.)
    pub(crate) fn config(&self, client_ssl: bool) -> Arc<ClientConfig> {
        match (&self.client_auth, client_ssl) {
            (Some(c), true) => c.clone(),
            _ => self.plain.clone(),
        }
    }
}

/// The name to verify and send: SNI carries `host` when it is a DNS name; for an IP address (or
/// no host) the name is the address, which rustls verifies against IP SANs and never sends as SNI.
pub(crate) fn server_name(host: Option<&str>, ip: IpAddr) -> ServerName<'static> {
    if let Some(h) = host {
        if h.parse::<IpAddr>().is_err() {
            if let Ok(name) = ServerName::try_from(h.to_string()) {
                return name;
            }
        }
    }
    ServerName::IpAddress(ip.into())
}

fn root_store(pem: &[u8]) -> Result<RootCertStore, TlsSetupError> {
    let mut store = RootCertStore::empty();
    for cert in cert_chain(pem)? {
        store.add(cert).map_err(|e| TlsSetupError::new("roots", e.to_string()))?;
    }
    Ok(store)
}

fn cert_chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsSetupError::new("certificates", e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsSetupError::new("certificates", "no CERTIFICATE block in the PEM"));
    }
    Ok(certs)
}

fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsSetupError::new("client key", "no PRIVATE KEY block in the PEM"),
        e => TlsSetupError::new("client key", e.to_string()),
    })
}

/// Accepts any server certificate (see the module docs for why), but still checks that the
/// handshake is signed by the presented certificate's key.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
