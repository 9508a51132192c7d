//! Connections to PostgreSQL, with TLS as the URL's `sslmode` says. Every
//! connection the services open (the pool, the ETL's lock and LISTEN
//! connections, migrations, start-up probes) is opened through
//! [`PgConnect`], so each honours the same `sslmode`.
//!
//! `sslmode` has libpq's meanings:
//!
//! | sslmode | TLS | certificate checked |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (the default) | when the server offers it | no |
//! | `require` | always | no (as `verify-ca` when `sslrootcert` is given) |
//! | `verify-ca` | always | signed by a trusted CA |
//! | `verify-full` | always | signed by a trusted CA and naming the host |
//!
//! The trusted CAs are those of the PEM file `sslrootcert=<path>` in the URL,
//! else the system's certificate store. A connection whose handshake or
//! start-up does not finish within the connect timeout fails; none waits
//! for ever.

use crate::KitError;
use crate::config::{one_line, redact_url};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::{Client, Connection, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The stream of a connection opened by [`PgConnect`].
pub type PgStream = <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<Socket>>::Stream;

/// The URL's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, String> {
        match value {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            other => Err(format!(
                "sslmode {other:?} is not one of disable, prefer, require, verify-ca, verify-full"
            )),
        }
    }

    /// What tokio-postgres is told: it knows disable, prefer and require;
    /// the verifying modes are `require` with a verifying connector.
    fn for_driver(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require | Self::VerifyCa | Self::VerifyFull => "require",
        }
    }
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

/// How to open a connection to one PostgreSQL database: the driver's config
/// (the URL less the TLS keys tokio-postgres does not know), the TLS
/// connector its `sslmode` asks for, and the time a connection may take.
#[derive(Clone)]
pub struct PgConnect {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    mode: SslMode,
    timeout: Duration,
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no answer within {}s", .0.as_secs_f64())]
    Timeout(Duration),
    #[error("{}", postgres_error_text(.0))]
    Postgres(#[from] tokio_postgres::Error),
}

impl ConnectError {
    /// The server's certificate was refused (untrusted, expired, or not for
    /// this host): trying again will not help.
    pub fn is_certificate_refused(&self) -> bool {
        let Self::Postgres(e) = self else {
            return false;
        };
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            if let Some(rustls::Error::InvalidCertificate(_)) = s.downcast_ref::<rustls::Error>() {
                return true;
            }
            if let Some(io) = s.downcast_ref::<std::io::Error>()
                && let Some(rustls::Error::InvalidCertificate(_)) = io
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                return true;
            }
            source = s.source();
        }
        false
    }

    /// The database named in the URL does not exist.
    pub fn is_missing_database(&self) -> bool {
        matches!(self, Self::Postgres(e)
            if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_CATALOG_NAME))
    }
}

/// tokio-postgres errors print "db error" unless asked for their source.
pub fn postgres_error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            one_line(&text)
        }
    }
}

/// The driver's config of `url` (its TLS keys read and set aside), without
/// building a TLS connector: for validating and describing a URL.
pub fn driver_config(url: &str) -> Result<tokio_postgres::Config, String> {
    let tls_keys = TlsKeys::take(url)?;
    tokio_postgres::Config::from_str(&tls_keys.driver_url)
        .map_err(|e| format!("malformed: {}", one_line(&e.to_string())))
}

impl PgConnect {
    /// Reads a `postgres://` URL with its `sslmode` and `sslrootcert`.
    /// `timeout` bounds each connection: TCP connect, TLS handshake and
    /// start-up together.
    pub fn from_url(url: &str, timeout: Duration) -> Result<Self, KitError> {
        let invalid = |message: String| {
            KitError::InvalidConfig(format!("database.url {:?}: {message}", redact_url(url)))
        };
        let tls_keys = TlsKeys::take(url).map_err(invalid)?;
        let mut config = driver_config(url).map_err(invalid)?;
        config.connect_timeout(timeout);
        let check = match (tls_keys.mode, &tls_keys.root_cert) {
            (SslMode::VerifyFull, _) => Check::ChainAndName,
            (SslMode::VerifyCa, _) | (SslMode::Require, Some(_)) => Check::Chain,
            _ => Check::Nothing,
        };
        let client_config = client_config(check, tls_keys.root_cert.as_deref()).map_err(invalid)?;
        Ok(Self {
            config,
            tls: MakeRustlsConnect::new(client_config),
            mode: tls_keys.mode,
            timeout,
        })
    }

    /// The driver's config (hosts, user, database), for descriptions.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The same server and TLS, another database (e.g. `postgres`, to
    /// create the configured one).
    pub fn with_dbname(&self, dbname: &str) -> Self {
        let mut other = self.clone();
        other.config.dbname(dbname);
        other
    }

    pub fn ssl_mode(&self) -> SslMode {
        self.mode
    }

    /// Opens a connection; the caller drives the returned `Connection`.
    pub async fn connect(&self) -> Result<(Client, Connection<Socket, PgStream>), ConnectError> {
        tokio::time::timeout(self.timeout, self.config.connect(self.tls.clone()))
            .await
            .map_err(|_| ConnectError::Timeout(self.timeout))?
            .map_err(ConnectError::from)
    }

    /// Opens a connection driven on a task of its own.
    pub async fn client(&self) -> Result<Client, ConnectError> {
        let (client, connection) = self.connect().await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "PostgreSQL connection closed");
            }
        });
        Ok(client)
    }

    /// Opens a diesel-async connection.
    pub async fn diesel(&self) -> diesel::ConnectionResult<diesel_async::AsyncPgConnection> {
        let (client, connection) = self
            .connect()
            .await
            .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
        diesel_async::AsyncPgConnection::try_from_client_and_connection(client, connection).await
    }
}

/// The TLS connector for cancel requests. A cancel request carries only the
/// key of the statement to cancel, so its server certificate is not
/// checked; the request is encrypted when the connection was.
pub fn cancel_tls() -> MakeRustlsConnect {
    MakeRustlsConnect::new(
        tls_builder()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
            .with_no_client_auth(),
    )
}

/// The URL split into what tokio-postgres reads and the TLS keys it does not.
struct TlsKeys {
    driver_url: String,
    mode: SslMode,
    root_cert: Option<String>,
}

impl TlsKeys {
    fn take(url: &str) -> Result<Self, String> {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, query),
            None => (url, ""),
        };
        let mut mode = SslMode::Prefer;
        let mut root_cert = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| format!("{key} is not UTF-8"))?;
            match key {
                "sslmode" => mode = SslMode::parse(&value)?,
                "sslrootcert" => root_cert = Some(value.into_owned()),
                _ => kept.push(pair),
            }
        }
        kept.push(match mode.for_driver() {
            "disable" => "sslmode=disable",
            "prefer" => "sslmode=prefer",
            _ => "sslmode=require",
        });
        Ok(Self {
            driver_url: format!("{base}?{}", kept.join("&")),
            mode,
            root_cert,
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// TLS 1.2 and 1.3 over aws-lc-rs, the verifier still to choose.
fn tls_builder() -> rustls::client::danger::DangerousClientConfigBuilder {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports rustls' default protocol versions")
        .dangerous()
}

fn client_config(check: Check, root_cert: Option<&str>) -> Result<ClientConfig, String> {
    let verifier: Arc<dyn ServerCertVerifier> = match check {
        Check::Nothing => Arc::new(AcceptAny(provider())),
        Check::Chain | Check::ChainAndName => {
            let roots = Arc::new(root_store(root_cert)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| format!("TLS: {e}"))?;
            if check == Check::Chain {
                Arc::new(ChainOnly(webpki))
            } else {
                webpki
            }
        }
    };
    Ok(tls_builder()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The CAs of `sslrootcert` (a PEM file), else the system's.
fn root_store(root_cert: Option<&str>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match root_cert.filter(|p| *p != "system") {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {path}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("sslrootcert {path} holds no usable certificate"));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(
                    "no system CA certificates found; name a CA file with sslrootcert=<path>"
                        .to_string(),
                );
            }
        }
    }
    Ok(roots)
}

/// `prefer` and `require`: the connection is encrypted, the certificate not
/// checked (libpq's meaning). The handshake's signatures still are.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted CA; the name is not
/// checked. webpki checks the chain before the name, so a name mismatch
/// means the chain was good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(url: &str) -> TlsKeys {
        TlsKeys::take(url).expect("parses")
    }

    #[test]
    fn the_default_is_prefer() {
        let k = keys("postgres://u@h/db");
        assert_eq!(k.mode, SslMode::Prefer);
        assert_eq!(k.driver_url, "postgres://u@h/db?sslmode=prefer");
    }

    #[test]
    fn verifying_modes_are_require_for_the_driver_and_lose_sslrootcert() {
        let k = keys(
            "postgres://u@h/db?application_name=x&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem",
        );
        assert_eq!(k.mode, SslMode::VerifyFull);
        assert_eq!(k.root_cert.as_deref(), Some("/tmp/ca.pem"));
        assert_eq!(
            k.driver_url,
            "postgres://u@h/db?application_name=x&sslmode=require"
        );
    }

    #[test]
    fn an_unknown_sslmode_is_named() {
        let err = PgConnect::from_url(
            "postgres://u:pw@h/db?sslmode=always",
            Duration::from_secs(1),
        )
        .err()
        .expect("refused");
        let msg = err.to_string();
        assert!(msg.contains("sslmode \"always\" is not one of"), "{msg}");
        assert!(!msg.contains("pw@"), "{msg}");
    }

    #[test]
    fn a_missing_root_certificate_file_is_named() {
        let err = PgConnect::from_url(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            Duration::from_secs(1),
        )
        .err()
        .expect("refused");
        assert!(
            err.to_string().contains("sslrootcert /nonexistent/ca.pem"),
            "{err}"
        );
    }
}
