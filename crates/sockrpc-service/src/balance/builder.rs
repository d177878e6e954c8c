//! `BalanceBuilder`: the choices a [`Balanced`](super::Balanced) channel is built with (its picker, health
//! checking, outlier ejection, how long calls wait for an endpoint), kept apart from the
//! channel's own workings in `channel.rs`, which builds it.

use super::health::HealthProbe;
use super::outlier::OutlierConfig;
use super::peak_ewma::DEFAULT_DECAY;
use super::picker::Picker;
use super::P2c;
use std::sync::Arc;
use std::time::Duration;

/// Builds a [`Balanced`](super::Balanced) channel: the picker, health checking, outlier ejection.
pub struct BalanceBuilder {
    pub(super) picker: Arc<dyn Picker>,
    pub(super) probe: Option<Arc<dyn HealthProbe>>,
    pub(super) outlier: OutlierConfig,
    pub(super) decay: Duration,
    pub(super) wait: Duration,
    pub(super) wait_for_ready: Option<bool>,
    pub(super) attempts: u32,
}

impl std::fmt::Debug for BalanceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BalanceBuilder")
            .field("outlier", &self.outlier)
            .field("health_checked", &self.probe.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for BalanceBuilder {
    fn default() -> Self {
        BalanceBuilder {
            picker: Arc::new(P2c),
            probe: None,
            outlier: OutlierConfig::default(),
            decay: DEFAULT_DECAY,
            wait: Duration::from_secs(10),
            wait_for_ready: None,
            attempts: 3,
        }
    }
}

impl BalanceBuilder {
    /// The picker ([`P2c`] by default).
    pub fn picker(mut self, picker: impl Picker) -> Self {
        self.picker = Arc::new(picker);
        self
    }

    /// Watches every endpoint's health through `probe` (e.g. `sockrpc_health::GrpcHealthProbe`):
    /// an endpoint takes calls only once it said `SERVING`, and none while it says otherwise,
    /// nor once its watch ended or failed (but for `UNIMPLEMENTED`: no health service, serving)
    /// until a new watch answers `SERVING` ([`HealthProbe::watch`]).
    pub fn health_check(mut self, probe: impl HealthProbe) -> Self {
        self.probe = Some(Arc::new(probe));
        self
    }

    /// Outlier ejection settings.
    pub fn outlier(mut self, outlier: OutlierConfig) -> Self {
        self.outlier = outlier;
        self
    }

    /// The peak-EWMA decay time constant.
    pub fn decay(mut self, decay: Duration) -> Self {
        self.decay = decay;
        self
    }

    /// How long a fail-fast call without a (shorter) deadline waits for a usable endpoint
    /// while endpoints are still connecting, before it fails `Unavailable` (a deadline
    /// passing first fails it `DeadlineExceeded`). Default 10 s. A wait-for-ready call waits up to its
    /// deadline instead (its own, else the endpoints' `Endpoint::timeout`; without either,
    /// until an endpoint is usable).
    pub fn wait_for_endpoint(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Whether calls wait through failing endpoints by default (gRPC's wait-for-ready): a call
    /// that does not (fail-fast, gRPC's default) fails `Unavailable` at once when every
    /// endpoint's last connection attempt failed, its health check says `NOT_SERVING`, or its
    /// health watch ended or failed with no answer since;
    /// one that does waits up to its deadline (without one, until an endpoint is usable) and
    /// then fails `DeadlineExceeded`. A call's own choice (`Request::set_wait_for_ready`)
    /// wins; unset here, the endpoints' `Endpoint::wait_for_ready` decides.
    pub fn wait_for_ready(mut self, wait: bool) -> Self {
        self.wait_for_ready = Some(wait);
        self
    }

    /// Endpoints a call refused unprocessed tries in all (default 3). A call that was never
    /// sent (its endpoint had no connection up as it was picked) made no attempt: it is picked
    /// again until its wait for an endpoint ends (its deadline; a fail-fast call's
    /// [`wait_for_endpoint`](Self::wait_for_endpoint), or none usable and all failing), and
    /// after `attempts` such failures, only once an endpoint changed or 50 ms passed.
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }
}
