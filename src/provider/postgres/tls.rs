//! TLS to PostgreSQL on rustls (ring), which the Kubernetes client already
//! links.
//!
//! - [`Verify::EncryptOnly`] (libpq `prefer`, `require`): encrypts, but does
//!   not check who the server is (the handshake signature still is checked,
//!   so the session key is bound to the certificate presented).
//! - [`Verify::Ca`] (`verify-ca`): the chain must lead to the given CAs.
//! - [`Verify::Full`] (`verify-full`): that, and the host name.
//!
//! Against a man in the middle the certificate check is not enough on its
//! own for `require`: the streams made with `refuse_plain_passwords` end
//! the connection when the server asks for a clear-text or MD5 password
//! (tokio-postgres would answer), and every TLS stream offers SCRAM
//! channel binding (`tls-server-end-point`), so a SCRAM exchange cannot be
//! relayed to another server.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256, Sha384, Sha512};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// How the server's certificate is checked.
#[derive(Clone, Debug)]
pub enum Verify {
    /// `prefer` and `require`: nothing about who the server is.
    EncryptOnly,
    /// `verify-ca`: the chain leads to one of these CAs.
    Ca(Vec<CertificateDer<'static>>),
    /// `verify-full`: the chain leads to one of these CAs and the
    /// certificate names the host connected to.
    Full(Vec<CertificateDer<'static>>),
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("the CA bundle (ca.crt) is not valid PEM: {0}")]
    Pem(String),
    #[error("the CA bundle (ca.crt) holds no certificate")]
    NoCertificate,
    #[error("the CA bundle (ca.crt) has no usable CA certificate: {0}")]
    Roots(String),
}

/// The certificates of a PEM bundle, as in the `ca.crt` key of a
/// `caSecretRef` Secret.
pub fn ca_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(certs)
}

fn root_store(cas: Vec<CertificateDer<'static>>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(cas);
    if added == 0 {
        return Err(TlsError::Roots(
            "no certificate could be used as a trust anchor".into(),
        ));
    }
    Ok(roots)
}

/// Makes TLS connectors for tokio-postgres.
#[derive(Clone)]
pub struct MakeRustls {
    config: Arc<ClientConfig>,
    refuse_plain_passwords: bool,
}

impl MakeRustls {
    /// Encrypt-only, answering whatever authentication the server asks for
    /// (what `prefer` needs).
    pub fn new() -> Result<Self, rustls::Error> {
        match Self::with(Verify::EncryptOnly, false) {
            Ok(m) => Ok(m),
            Err(TlsError::Rustls(e)) => Err(e),
            Err(e) => Err(rustls::Error::General(e.to_string())),
        }
    }

    /// `verify` checks the certificate; with `refuse_plain_passwords`
    /// (`require` and above) a server that asks for a clear-text or MD5
    /// password over TLS gets the connection closed instead.
    pub fn with(verify: Verify, refuse_plain_passwords: bool) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let verifier: Arc<dyn ServerCertVerifier> = match verify {
            Verify::EncryptOnly => Arc::new(ChainOnly {
                roots: None,
                algorithms,
            }),
            Verify::Ca(cas) => Arc::new(ChainOnly {
                roots: Some(root_store(cas)?),
                algorithms,
            }),
            Verify::Full(cas) => WebPkiServerVerifier::builder_with_provider(
                Arc::new(root_store(cas)?),
                provider.clone(),
            )
            .build()
            .map_err(|e| TlsError::Roots(e.to_string()))?,
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
            refuse_plain_passwords,
        })
    }
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, io::Error> {
        // SNI, and for verify-full the name the certificate must carry. A
        // unix socket path is no name (and never gets TLS from
        // tokio-postgres).
        let name = ServerName::try_from(domain.to_string())
            .unwrap_or_else(|_| ServerName::from(std::net::Ipv4Addr::LOCALHOST));
        Ok(RustlsConnect {
            config: self.config.clone(),
            name,
            refuse_plain_passwords: self.refuse_plain_passwords,
        })
    }
}

pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    refuse_plain_passwords: bool,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        let guard = self.refuse_plain_passwords.then(AuthGuard::default);
        Box::pin(async move {
            Ok(RustlsStream {
                inner: connector.connect(self.name, stream).await?,
                guard,
            })
        })
    }
}

pub struct RustlsStream<S> {
    inner: tokio_rustls::client::TlsStream<S>,
    /// Watches the server's messages until authentication is over.
    guard: Option<AuthGuard>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // tls-server-end-point (RFC 5929): the hash of the server's
        // certificate, so SCRAM-SHA-256-PLUS binds the login to this TLS
        // session. A certificate whose hash is not defined for it gets
        // plain SCRAM.
        self.end_point()
            .map(ChannelBinding::tls_server_end_point)
            .unwrap_or_else(ChannelBinding::none)
    }
}

impl<S> RustlsStream<S> {
    /// The `tls-server-end-point` data of this session's server certificate.
    fn end_point(&self) -> Option<Vec<u8>> {
        self.inner
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|cert| server_end_point(cert.as_ref()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(guard)) = (&polled, &mut this.guard) {
            // The bytes are checked before tokio-postgres sees them, so a
            // refused request is never answered.
            guard.inspect(&buf.filled()[before..])?;
            if guard.done {
                this.guard = None;
            }
        }
        polled
    }
}

/// Reads the backend messages of the startup phase and refuses an
/// `AuthenticationCleartextPassword` (3) or `AuthenticationMD5Password` (5)
/// request; stops looking at `AuthenticationOk` (0).
#[derive(Debug, Default)]
struct AuthGuard {
    /// The current message's type and length bytes, as far as read.
    header: [u8; 5],
    header_len: usize,
    /// Bytes of the current message's body still to come.
    body_left: usize,
    /// The first four body bytes of an `R` message: the request code.
    code: [u8; 4],
    code_len: usize,
    done: bool,
}

impl AuthGuard {
    fn inspect(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() && !self.done {
            if self.header_len < 5 {
                let take = (5 - self.header_len).min(bytes.len());
                self.header[self.header_len..self.header_len + take]
                    .copy_from_slice(&bytes[..take]);
                self.header_len += take;
                bytes = &bytes[take..];
                if self.header_len == 5 {
                    let [_, a, b, c, d] = self.header;
                    let len = u32::from_be_bytes([a, b, c, d]) as usize;
                    self.body_left = len.saturating_sub(4);
                    self.code_len = 0;
                    if self.body_left == 0 {
                        self.header_len = 0;
                    }
                }
                continue;
            }
            let take = self.body_left.min(bytes.len());
            if self.header[0] == b'R' && self.code_len < 4 {
                let n = (4 - self.code_len).min(take);
                self.code[self.code_len..self.code_len + n].copy_from_slice(&bytes[..n]);
                self.code_len += n;
                if self.code_len == 4 {
                    match u32::from_be_bytes(self.code) {
                        0 => self.done = true,
                        3 | 5 => {
                            return Err(io::Error::new(
                                io::ErrorKind::PermissionDenied,
                                "the server asked for a clear-text or MD5 password over TLS: refused (sslMode require and above send passwords only by SCRAM)",
                            ));
                        }
                        _ => {}
                    }
                }
            }
            self.body_left -= take;
            bytes = &bytes[take..];
            if self.body_left == 0 {
                self.header_len = 0;
            }
        }
        Ok(())
    }
}

/// The `tls-server-end-point` hash of a DER certificate: its signature's
/// hash, SHA-256 for MD5 and SHA-1 (RFC 5929 4.1); `None` when the
/// signature algorithm names no hash (Ed25519, RSASSA-PSS parameters are
/// not read) or the DER does not parse.
pub fn server_end_point(der: &[u8]) -> Option<Vec<u8>> {
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
    let (cert, _) = der_element(der, 0x30)?;
    let (_tbs, rest) = der_any(cert)?;
    let (algorithm, _) = der_element(rest, 0x30)?;
    let (oid, _) = der_element(algorithm, 0x06)?;
    const SHA256: &[&[u8]] = &[
        // md5WithRSAEncryption, sha1WithRSAEncryption, sha256WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04],
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05],
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b],
        // ecdsa-with-SHA1, ecdsa-with-SHA256
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01],
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02],
    ];
    const SHA384: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c],
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],
    ];
    const SHA512: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d],
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],
    ];
    if SHA256.contains(&oid) {
        Some(Sha256::digest(der).to_vec())
    } else if SHA384.contains(&oid) {
        Some(Sha384::digest(der).to_vec())
    } else if SHA512.contains(&oid) {
        Some(Sha512::digest(der).to_vec())
    } else {
        None
    }
}

/// One DER element of tag `tag` at the start of `bytes`: (its content, the
/// bytes after it).
fn der_element(bytes: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *bytes.first()? != tag {
        return None;
    }
    der_any(bytes)
}

/// One DER element of any tag: (its content, the bytes after it).
fn der_any(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let first = *bytes.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = bytes
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((bytes.get(header..end)?, bytes.get(end..)?))
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// `require` (no `roots`): any certificate; `verify-ca` (`roots`): the
/// chain must lead to a trusted CA, the name is not checked. Either way the
/// handshake signatures made with the certificate are checked.
#[derive(Debug)]
struct ChainOnly {
    roots: Option<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::PrivateKeyDer;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A backend message: type, length, body.
    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn auth(code: u32, rest: &[u8]) -> Vec<u8> {
        let mut body = code.to_be_bytes().to_vec();
        body.extend_from_slice(rest);
        message(b'R', &body)
    }

    /// Feeds `bytes` to a fresh guard in chunks of `chunk`.
    fn guard(bytes: &[u8], chunk: usize) -> (io::Result<()>, bool) {
        let mut g = AuthGuard::default();
        for part in bytes.chunks(chunk) {
            if let Err(e) = g.inspect(part) {
                return (Err(e), g.done);
            }
        }
        (Ok(()), g.done)
    }

    #[test]
    fn clear_text_and_md5_requests_are_refused_however_the_bytes_arrive() {
        for code in [3u32, 5] {
            let mut stream = message(b'N', b"SNOTICE\0\0");
            stream.extend(auth(code, if code == 5 { b"salt" } else { b"" }));
            for chunk in [1, 2, 3, 7, stream.len()] {
                let (result, _) = guard(&stream, chunk);
                let err = result.expect_err("refused");
                assert_eq!(
                    err.kind(),
                    io::ErrorKind::PermissionDenied,
                    "{code}/{chunk}"
                );
            }
        }
    }

    #[test]
    fn scram_passes_and_authentication_ok_ends_the_watch() {
        let mut stream = auth(10, b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0");
        stream.extend(auth(11, b"r=nonce,s=salt,i=4096"));
        stream.extend(auth(12, b"v=signature"));
        stream.extend(auth(0, b""));
        for chunk in [1, 4, 5, stream.len()] {
            assert!(guard(&stream, chunk).1, "{chunk}");
        }
        // After AuthenticationOk the bytes are data, never inspected.
        let mut after = stream.clone();
        after.extend(auth(3, b""));
        assert!(guard(&after, 3).0.is_ok());
        // An error before authentication passes through to tokio-postgres.
        let e = message(b'E', b"SFATAL\0Mno\0\0");
        assert!(!guard(&e, 2).1);
        assert!(guard(&e, 2).0.is_ok());
    }

    #[test]
    fn end_point_hash_follows_the_signature_algorithm() {
        let server = ca_certificates(&fixture("server.crt")).expect("server.crt");
        let der = server[0].as_ref();
        // The fixture is signed with ecdsa-with-SHA384.
        assert_eq!(server_end_point(der), Some(Sha384::digest(der).to_vec()));
        let ca = ca_certificates(&fixture("ca.crt")).expect("ca.crt");
        let der = ca[0].as_ref();
        assert_eq!(server_end_point(der), Some(Sha256::digest(der).to_vec()));
        assert_eq!(server_end_point(b""), None);
        assert_eq!(server_end_point(&[0x30, 0x82, 0xff]), None);
        assert_eq!(server_end_point(&der[..der.len() / 2]), None);
    }

    #[test]
    fn ca_bundles_are_checked() {
        assert!(matches!(ca_certificates(b""), Err(TlsError::NoCertificate)));
        assert!(matches!(
            ca_certificates(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"),
            Err(TlsError::Pem(_))
        ));
        assert_eq!(
            ca_certificates(&fixture("ca.crt")).map(|c| c.len()).ok(),
            Some(1)
        );
    }

    /// A TLS server on 127.0.0.1 with the fixture certificate: after the
    /// handshake it writes `reply` and reads one byte.
    async fn server(reply: Vec<u8>) -> u16 {
        let certs = ca_certificates(&fixture("server.crt")).expect("server.crt");
        let key = PrivateKeyDer::from_pem_slice(&fixture("server.key")).expect("server.key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let reply = reply.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let _ = tls.write_all(&reply).await;
                        let mut byte = [0u8; 1];
                        let _ = tls.read(&mut byte).await;
                    }
                });
            }
        });
        port
    }

    async fn connect(
        make: &mut MakeRustls,
        host: &str,
        port: u16,
    ) -> io::Result<RustlsStream<tokio::net::TcpStream>> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let connect =
            <MakeRustls as MakeTlsConnect<tokio::net::TcpStream>>::make_tls_connect(make, host)?;
        connect.connect(tcp).await
    }

    fn ca(name: &str) -> Vec<CertificateDer<'static>> {
        ca_certificates(&fixture(name)).expect("CA")
    }

    #[tokio::test]
    async fn verify_full_checks_the_ca_and_the_host_name() {
        let port = server(auth(0, b"")).await;
        let mut full = MakeRustls::with(Verify::Full(ca("ca.crt")), true).expect("config");
        assert!(connect(&mut full, "localhost", port).await.is_ok());
        assert!(connect(&mut full, "127.0.0.1", port).await.is_ok());
        let err = connect(&mut full, "db.example.com", port)
            .await
            .err()
            .expect("wrong name");
        assert!(err.to_string().contains("certificate"), "{err}");
        let mut wrong = MakeRustls::with(Verify::Full(ca("other-ca.crt")), true).expect("config");
        assert!(connect(&mut wrong, "localhost", port).await.is_err());
    }

    #[tokio::test]
    async fn verify_ca_checks_the_ca_but_not_the_name() {
        let port = server(auth(0, b"")).await;
        let mut ca_only = MakeRustls::with(Verify::Ca(ca("ca.crt")), true).expect("config");
        assert!(connect(&mut ca_only, "db.example.com", port).await.is_ok());
        let mut wrong = MakeRustls::with(Verify::Ca(ca("other-ca.crt")), true).expect("config");
        assert!(connect(&mut wrong, "localhost", port).await.is_err());
        // Encrypt-only accepts any certificate, as libpq's require.
        let mut any = MakeRustls::new().expect("config");
        assert!(connect(&mut any, "db.example.com", port).await.is_ok());
    }

    #[tokio::test]
    async fn a_clear_text_request_over_tls_is_refused_and_binding_is_offered() {
        let port = server(auth(3, b"")).await;
        let mut strict = MakeRustls::with(Verify::Ca(ca("ca.crt")), true).expect("config");
        let mut stream = connect(&mut strict, "localhost", port)
            .await
            .expect("handshake");
        let server_der = ca_certificates(&fixture("server.crt")).expect("server.crt");
        assert_eq!(
            stream.end_point(),
            Some(Sha384::digest(server_der[0].as_ref()).to_vec())
        );
        let mut buf = [0u8; 64];
        let err = stream.read(&mut buf).await.expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        // Without the guard (prefer) the request reaches tokio-postgres.
        let mut lax = MakeRustls::new().expect("config");
        let mut stream = connect(&mut lax, "localhost", port)
            .await
            .expect("handshake");
        let n = stream.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..n], auth(3, b"").as_slice());
    }
}
