//! The real `App`s of both services on port 0, with generated tonic clients
//! that send the test bearer token.

use crate::postgres::TestDatabase;
use avni_proto::etl::v1::etl_service_client::EtlServiceClient;
use avni_proto::migrator::v1::forms_migrator_client::FormsMigratorClient;
use service_kit::config::{ServiceConfig, load};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;

/// The token every test service accepts.
pub const TEST_TOKEN: &str = "test-token-3f9a";

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    pub fn new(token: Option<&str>) -> Self {
        Self(token.map(|t| {
            format!("Bearer {t}")
                .parse()
                .unwrap_or_else(|e| panic!("token {t:?} is not a valid header: {e}"))
        }))
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A channel that sends a bearer token.
pub type AuthedChannel = InterceptedService<Channel, Bearer>;

/// A service's config as the binary would load it with no file, pointing at
/// `database_url`, listening on port 0, accepting [`TEST_TOKEN`], with a fast
/// health check.
pub fn test_config<C: ServiceConfig>(database_url: &str) -> C {
    let env: HashMap<String, String> = [
        ("DATABASE_URL", database_url),
        ("GRPC_LISTEN", "127.0.0.1:0"),
        ("AUTH_TOKENS", TEST_TOKEN),
        // Many services run at once in tests: metrics on a free port each.
        ("METRICS_LISTEN", "127.0.0.1:0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut config: C = load(None, &env).unwrap_or_else(|e| panic!("test config: {e}"));
    config.database_mut().health_check_interval_ms = 200;
    config.database_mut().startup_wait_seconds = 10;
    config.database_mut().connect_timeout_seconds = 2;
    config.server_mut().shutdown_grace_seconds = 5;
    config
}

/// A running service in this process.
pub struct RunningService {
    pub addr: SocketAddr,
    /// Where `/metrics` is served.
    pub metrics_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<Result<(), String>>>,
}

impl RunningService {
    /// Spawns `run` (an app's `run_until_stopped`) and keeps what stops it.
    pub fn spawn<F>(addr: SocketAddr, shutdown: CancellationToken, run: F) -> Self
    where
        F: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self {
            addr,
            metrics_addr: None,
            shutdown,
            handle: Some(tokio::spawn(run)),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A plain channel (no token).
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.endpoint())
            .unwrap_or_else(|e| panic!("bad endpoint: {e}"))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.addr))
    }

    /// The standard health client.
    pub async fn health(&self) -> HealthClient<Channel> {
        HealthClient::new(self.channel().await)
    }

    /// Asks the health service for `service` ("" for the server as a whole).
    pub async fn health_status(&self, service: &str) -> Result<i32, tonic::Status> {
        let mut client = self.health().await;
        client
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.to_string(),
            })
            .await
            .map(|r| r.into_inner().status)
    }

    /// The text of `GET /metrics`.
    pub async fn scrape(&self) -> String {
        let addr = self
            .metrics_addr
            .unwrap_or_else(|| panic!("metrics are disabled"));
        let response = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap_or_else(|e| panic!("cannot scrape {addr}: {e}"));
        assert!(response.status().is_success(), "{}", response.status());
        response
            .text()
            .await
            .unwrap_or_else(|e| panic!("cannot read the scrape: {e}"))
    }

    /// Stops the service gracefully and returns how `run_until_stopped` ended.
    pub async fn stop(mut self) -> Result<(), String> {
        self.shutdown.cancel();
        match self.handle.take() {
            Some(h) => h.await.map_err(|e| e.to_string())?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// etl-service running on a fresh migrated database.
pub struct TestEtl {
    pub service: RunningService,
    pub db: TestDatabase,
}

impl TestEtl {
    /// Starts etl-service on a new database with its migrations applied;
    /// `tweak` adjusts the config first.
    pub async fn start(tweak: impl FnOnce(&mut etl_service::Config)) -> Self {
        let db = TestDatabase::migrated(etl_service::migrations::migrations()).await;
        let service = start_etl_on(&db.url, tweak).await;
        Self { service, db }
    }

    /// A client that sends [`TEST_TOKEN`].
    pub async fn client(&self) -> EtlServiceClient<AuthedChannel> {
        self.client_with(Some(TEST_TOKEN)).await
    }

    /// A client that sends `token` (or none).
    pub async fn client_with(&self, token: Option<&str>) -> EtlServiceClient<AuthedChannel> {
        EtlServiceClient::with_interceptor(self.service.channel().await, Bearer::new(token))
    }
}

/// Starts etl-service against an existing database.
pub async fn start_etl_on(
    database_url: &str,
    tweak: impl FnOnce(&mut etl_service::Config),
) -> RunningService {
    start_on::<etl_service::App>(database_url, tweak).await
}

/// migrator-service running on a fresh migrated database.
pub struct TestMigrator {
    pub service: RunningService,
    pub db: TestDatabase,
}

impl TestMigrator {
    /// Starts migrator-service on a new database with its migrations applied;
    /// `tweak` adjusts the config first (sources, intervals).
    pub async fn start(tweak: impl FnOnce(&mut migrator_service::Config)) -> Self {
        let db = crate::migrator::migrated_repository().await;
        let service = start_migrator_on(&db.url, tweak).await;
        Self { service, db }
    }

    /// A client that sends [`TEST_TOKEN`].
    pub async fn client(&self) -> FormsMigratorClient<AuthedChannel> {
        self.client_with(Some(TEST_TOKEN)).await
    }

    /// A client that sends `token` (or none).
    pub async fn client_with(&self, token: Option<&str>) -> FormsMigratorClient<AuthedChannel> {
        FormsMigratorClient::with_interceptor(self.service.channel().await, Bearer::new(token))
    }
}

/// Starts migrator-service against an existing database.
pub async fn start_migrator_on(
    database_url: &str,
    tweak: impl FnOnce(&mut migrator_service::Config),
) -> RunningService {
    start_on::<migrator_service::App>(database_url, tweak).await
}

/// What the harness needs of a service's `App` (both are a
/// `service_kit::App`), as strings for its errors.
pub trait ServiceApp: Sized + Send + 'static {
    type Config: ServiceConfig;
    fn build(config: Self::Config) -> impl Future<Output = Result<Self, String>> + Send;
    fn local_addr(&self) -> SocketAddr;
    fn metrics_addr(&self) -> Option<SocketAddr>;
    fn shutdown_token(&self) -> CancellationToken;
    fn run(self) -> impl Future<Output = Result<(), String>> + Send;
}

impl<S: service_kit::Service> ServiceApp for service_kit::App<S>
where
    S::Config: Sync,
{
    type Config = S::Config;
    async fn build(config: Self::Config) -> Result<Self, String> {
        service_kit::App::<S>::build(config)
            .await
            .map_err(|e| e.to_string())
    }
    fn local_addr(&self) -> SocketAddr {
        service_kit::App::local_addr(self)
    }
    fn metrics_addr(&self) -> Option<SocketAddr> {
        service_kit::App::metrics_addr(self)
    }
    fn shutdown_token(&self) -> CancellationToken {
        service_kit::App::shutdown_token(self)
    }
    async fn run(self) -> Result<(), String> {
        self.run_until_stopped().await.map_err(|e| e.to_string())
    }
}

/// Starts a service's real App on port 0 against `database_url`.
pub async fn start_on<A: ServiceApp>(
    database_url: &str,
    tweak: impl FnOnce(&mut A::Config),
) -> RunningService {
    let mut config: A::Config = test_config(database_url);
    tweak(&mut config);
    let app = A::build(config)
        .await
        .unwrap_or_else(|e| panic!("the service failed to start: {e}"));
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let shutdown = app.shutdown_token();
    let mut service = RunningService::spawn(addr, shutdown, app.run());
    service.metrics_addr = metrics_addr;
    service
}
