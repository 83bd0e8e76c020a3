//! TLS on the listeners: the server's certificate and key (and, for mutual
//! TLS, the CA that signs the clients' certificates) read from PEM files
//! into a `rustls::ServerConfig`, re-read when the files change, and an
//! accept loop that completes each handshake in a task of its own.
//!
//! [`ServerTls`] holds the current configuration; [`ServerTls::spawn_reload`]
//! compares the files' contents every interval and, when they changed and
//! parse, swaps in a new configuration: handshakes that start afterwards use
//! it, established connections keep theirs. Files that do not parse (or a
//! certificate and a key that do not match, as during a rotation that wrote
//! one file of two) are logged once and the previous configuration stays.
//!
//! [`TlsListener`] yields established TLS streams with the peer's address:
//! it is an `axum::serve::Listener`, and [`TlsListener::into_incoming`] is
//! the stream `tonic`'s `serve_with_incoming_shutdown` takes (tonic puts a
//! `TlsConnectInfo<TcpConnectInfo>` with the peer's address and
//! certificates in each request's extensions).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use futures::Stream;
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A handshake not done within this long is abandoned.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many handshakes run at once; the accept loop waits for one
/// to end beyond it.
const MAX_HANDSHAKES: usize = 1024;

/// Established streams waiting for the server to take them.
const ESTABLISHED_QUEUE: usize = 64;

/// The PEM files of a listener's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by one of these
    /// CAs (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// Which of the [`TlsFiles`] an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    Cert,
    Key,
    ClientCa,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct TlsError {
    pub file: TlsFile,
    pub path: PathBuf,
    pub message: String,
}

/// The files' bytes as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl TlsFiles {
    fn error(&self, file: TlsFile, message: String) -> TlsError {
        let path = match file {
            TlsFile::Cert => &self.cert,
            TlsFile::Key => &self.key,
            TlsFile::ClientCa => self.client_ca.as_ref().unwrap_or(&self.cert),
        };
        TlsError {
            file,
            path: path.clone(),
            message,
        }
    }

    fn read(&self) -> Result<Contents, TlsError> {
        let read = |file: TlsFile, path: &Path| {
            std::fs::read(path).map_err(|e| self.error(file, format!("reading it: {e}")))
        };
        Ok(Contents {
            cert: read(TlsFile::Cert, &self.cert)?,
            key: read(TlsFile::Key, &self.key)?,
            client_ca: match &self.client_ca {
                Some(p) => Some(read(TlsFile::ClientCa, p)?),
                None => None,
            },
        })
    }

    /// The server configuration the contents make: ALPN `h2` (gRPC needs
    /// it) and `http/1.1`.
    fn build(&self, contents: &Contents) -> Result<ServerConfig, TlsError> {
        let chain = certificates(&contents.cert).map_err(|m| self.error(TlsFile::Cert, m))?;
        let key = PrivateKeyDer::from_pem_slice(&contents.key)
            .map_err(|e| self.error(TlsFile::Key, format!("no PEM private key ({e})")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| self.error(TlsFile::Cert, e.to_string()))?;
        let builder = match &contents.client_ca {
            None => builder.with_no_client_auth(),
            Some(pem) => {
                let bad = |m: String| self.error(TlsFile::ClientCa, m);
                let mut roots = RootCertStore::empty();
                for cert in certificates(pem).map_err(bad)? {
                    roots
                        .add(cert)
                        .map_err(|e| bad(format!("not a CA certificate: {e}")))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| bad(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| self.error(TlsFile::Key, format!("with the certificate: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// The certificates of a PEM bundle: one at least.
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate bundle ({e})"))?;
    if certs.is_empty() {
        return Err("holds no PEM CERTIFICATE".into());
    }
    Ok(certs)
}

/// A listener's TLS configuration, replaced when its files change.
#[derive(Debug)]
pub struct ServerTls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
    /// The contents last read, whether or not they made a configuration.
    seen: Mutex<Contents>,
}

impl ServerTls {
    /// Reads and checks the files.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let contents = files.read()?;
        let config = files.build(&contents)?;
        Ok(Arc::new(Self {
            files,
            current: RwLock::new(Arc::new(config)),
            seen: Mutex::new(contents),
        }))
    }

    /// The configuration new handshakes use.
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Reads the files again (blocking); when their contents changed since
    /// the last read and make a configuration, it becomes the current one.
    /// `Ok(true)` when it did; an error leaves the current one.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let contents = self.files.read()?;
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if *seen == contents {
                return Ok(false);
            }
            *seen = contents.clone();
        }
        let config = self.files.build(&contents)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
        Ok(true)
    }

    /// Calls [`ServerTls::reload`] every `every` until `stop`, logging what
    /// changed and, once per distinct error, why files were not taken.
    pub fn spawn_reload(
        self: &Arc<Self>,
        every: Duration,
        mut stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let tls = Arc::clone(self);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval.tick().await;
            let mut last_error: Option<String> = None;
            loop {
                tokio::select! {
                    _ = interval.tick() => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                let t = Arc::clone(&tls);
                let outcome = match tokio::task::spawn_blocking(move || t.reload()).await {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        tracing::warn!(error = %e, "reloading the TLS files failed");
                        continue;
                    }
                };
                match outcome {
                    Ok(false) => {}
                    Ok(true) => {
                        last_error = None;
                        tracing::info!(cert = %tls.files.cert.display(), "TLS certificate reloaded; new connections use it");
                    }
                    Err(e) => {
                        let message = e.to_string();
                        if last_error.as_ref() != Some(&message) {
                            tracing::warn!(error = %message, "TLS files changed but were not taken; the previous certificate stays in use");
                            last_error = Some(message);
                        }
                    }
                }
            }
        })
    }
}

/// An established TLS stream and the peer's address.
type Established = (TlsStream<TcpStream>, SocketAddr);

/// TLS connections accepted on a TCP listener: a task accepts and spawns
/// each handshake (within [`HANDSHAKE_TIMEOUT`]), so a slow client delays
/// only itself. Dropping it stops accepting and closes the socket.
#[derive(Debug)]
pub struct TlsListener {
    local_addr: SocketAddr,
    established: mpsc::Receiver<Established>,
}

impl TlsListener {
    /// Starts accepting on `listener` with `tls`'s current configuration at
    /// each handshake. Call within a tokio runtime.
    pub fn new(listener: TcpListener, tls: Arc<ServerTls>) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (tx, established) = mpsc::channel(ESTABLISHED_QUEUE);
        tokio::spawn(accept_loop(listener, tls, tx));
        Ok(Self {
            local_addr,
            established,
        })
    }

    /// The next established stream.
    pub async fn next(&mut self) -> Option<Established> {
        self.established.recv().await
    }

    /// The streams as `tonic`'s `serve_with_incoming*` takes them (it never
    /// yields an error: failed handshakes are dropped here).
    pub fn into_incoming(self) -> impl Stream<Item = io::Result<TlsStream<TcpStream>>> + Send {
        futures::stream::unfold(self, |mut listener| async move {
            let (stream, _) = listener.next().await?;
            Some((Ok(stream), listener))
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.next().await {
            Some(established) => established,
            // The accept loop ends only when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

async fn accept_loop(listener: TcpListener, tls: Arc<ServerTls>, tx: mpsc::Sender<Established>) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&handshakes).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            () = tx.closed() => return,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = tx.closed() => return,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = TlsAcceptor::from(tls.config());
        let tx = tx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send((stream, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// As hyper and axum do: errors of one connection are skipped; others (out
/// of file descriptors) wait a second rather than spin.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_are_not_pem_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "").unwrap();
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
        };
        let e = ServerTls::load(files.clone()).unwrap_err();
        assert_eq!((e.file, &e.path), (TlsFile::Cert, &cert), "{e}");
        let e = ServerTls::load(TlsFiles {
            cert: dir.path().join("missing.pem"),
            ..files
        })
        .unwrap_err();
        assert_eq!(e.file, TlsFile::Cert);
        assert!(e.message.contains("reading"), "{e}");
    }

    /// A self-signed certificate for `localhost` and its key, PEM.
    fn self_signed() -> (String, String) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        (made.cert.pem(), made.signing_key.serialize_pem())
    }

    /// Unchanged files change nothing; a certificate and key that do not
    /// match, or garbage, leave the configuration in use; good files
    /// replace it.
    #[test]
    fn only_changed_files_that_parse_replace_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            client_ca: None,
        };
        let (cert, key) = self_signed();
        std::fs::write(&files.cert, &cert).unwrap();
        std::fs::write(&files.key, &key).unwrap();
        let tls = ServerTls::load(files.clone()).unwrap();
        let first = tls.config();
        assert_eq!(first.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(!tls.reload().unwrap());
        assert!(Arc::ptr_eq(&first, &tls.config()));

        // A rotation half done: the new certificate, the old key.
        let (cert2, key2) = self_signed();
        std::fs::write(&files.cert, &cert2).unwrap();
        let e = tls.reload().unwrap_err();
        assert_eq!(e.file, TlsFile::Key, "{e}");
        assert!(Arc::ptr_eq(&first, &tls.config()));
        std::fs::write(&files.key, "garbage").unwrap();
        assert!(tls.reload().is_err());
        assert!(Arc::ptr_eq(&first, &tls.config()));
        // Unchanged bad files are not tried again.
        assert!(!tls.reload().unwrap());

        std::fs::write(&files.key, &key2).unwrap();
        assert!(tls.reload().unwrap());
        let second = tls.config();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(second.alpn_protocols, first.alpn_protocols);

        std::fs::remove_file(&files.cert).unwrap();
        assert!(tls.reload().is_err());
        assert!(Arc::ptr_eq(&second, &tls.config()));
    }
}
