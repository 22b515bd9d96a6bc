//! The one assembly of the server from its backends: `sgt serve`, the end-to-end tests, the
//! benches and the fuzz harness all build their server here, so none of them can wire it
//! differently.

use std::future::Future;
use std::sync::Arc;

use std::convert::Infallible;

use sgt_core::{Backends, Result};
use tokio::net::TcpListener;
use warp::reply::Response;
use warp::Filter;

use crate::server::services::admin::AdminService;
use crate::server::services::agent::{AgentService, ServiceLimits};
use crate::server::transport::listener::{ConnectionLimits, Listener};

/// The agent and admin services on one set of backends, the admin service telling the agent
/// service's cache of its changes. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct App {
    agent: Arc<AgentService>,
    admin: Arc<AdminService>,
}

impl App {
    /// Both services on `backends`, keeping `limits`.
    pub fn new(backends: Backends, limits: &ServiceLimits) -> App {
        let agent = Arc::new(AgentService::new(backends.clone(), limits));
        let admin = Arc::new(
            AdminService::new(backends)
                .with_serving_cache(agent.serving_cache())
                .with_online_window(limits.last_seen_resolution, limits.online_window),
        );
        App { agent, admin }
    }

    /// The agent service.
    pub fn agent(&self) -> &Arc<AgentService> {
        &self.agent
    }

    /// The admin service.
    pub fn admin(&self) -> &Arc<AdminService> {
        &self.admin
    }

    /// The backends both services run on.
    pub fn backends(&self) -> &Backends {
        self.agent.backends()
    }

    /// Every route the server answers (see [`crate::server::routes::routes`]), as
    /// [`App::serve`] serves them. Not boxed: a boxed chain costs about 1.2 µs more per
    /// request (criterion, `distributed_read_empty_through_filters`), so a crate that
    /// evaluates it in a release build needs `#![recursion_limit = "256"]`.
    pub fn routes(
        &self,
    ) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static
    {
        crate::server::routes::routes(Arc::clone(&self.agent), Arc::clone(&self.admin))
    }

    /// Serves [`App::routes`] on `listener` until `shutdown` completes, then drains (see
    /// [`crate::server::transport::listener::serve`]).
    ///
    /// # Errors
    /// None once started; per-connection failures are logged and do not stop the server.
    pub async fn serve(
        &self,
        listener: TcpListener,
        mode: Listener,
        limits: ConnectionLimits,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<()> {
        crate::server::transport::listener::serve(
            listener,
            self.routes(),
            Arc::clone(self.agent.metrics()),
            mode,
            limits,
            shutdown,
        )
        .await
    }
}
