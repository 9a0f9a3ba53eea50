//! `Application`: everything `herald serve` starts, built the same way by `main`
//! and by the tests (which start it on port 0 with their own database and queue
//! prefix).
//!
//! The actor topology (every actor under an `actix::Supervisor`):
//!
//! ```text
//! AmqpLink ──LinkStatus──▶ Publisher ◀── OutboxRelay ◀── Kick (after each commit, and every second)
//!    │                         ▲
//!    └──LinkStatus──▶ QueueConsumer(email | sms | bulk.email | bulk.sms) ─▶ DeliveryWorker
//!                     QueueConsumer(resend-requests) ─▶ BulkWorker         ─▶ Renderer (SyncArbiter)
//!                     (each consumer and its worker on an Arbiter of their own) ─▶ EmailSender / SmsSender
//! ```

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context;
use sqlx::PgPool;

mod services;

pub use services::{open_database, read_only_services, services, Services};

use crate::api::{self, AppState};
use crate::channels::{EmailSender, SmsSender};
use crate::config::{Role, Settings};
use crate::delivery::relay::{Handoff, Kick};
use crate::delivery::{DeliveryWorker, OutboxRelay, Pipeline, RetryPolicy, SweepTerms, Sweeper};
use crate::invite::InviteService;
use crate::liveness::ProcessLease;
use crate::metrics::Metrics;
use crate::ops::bulk::RequestHandler;
use crate::ops::{BulkService, BulkWorker, ReplayService};
use crate::queue::consumer::Drain;
use crate::queue::link::{Close, LinkHandle};
use crate::queue::topology::{KEY_BULK_EMAIL, KEY_BULK_SMS, KEY_EMAIL, KEY_RESEND, KEY_SMS};
use crate::queue::{AmqpLink, ConsumerOptions, Publisher, QueueConsumer, Topology};
use crate::render::{Renderer, Templates};
use crate::store;

/// How long a claim holds a delivery: longer than the slowest send (SMTP 30s).
pub(crate) const DELIVERY_LEASE: Duration = Duration::from_secs(90);

/// Most HTTP resends one worker groups into a transaction, and how many such
/// transactions it runs at once (docs/ARCHITECTURE.md, "Actors": up to 64 share
/// one, so the commits PostgreSQL must flush do not grow with the requests).
const RESEND_GROUP_MAX: usize = 64;
const RESEND_GROUP_CONCURRENCY: usize = 2;

pub struct Application {
    port: Option<u16>,
    server: Option<Server>,
    pool: PgPool,
    link: LinkHandle,
    consumers: Vec<Addr<QueueConsumer>>,
    grace: Duration,
    grpc: Option<GrpcServer>,
    /// Written once more at the end: the organization counts in memory.
    invites: InviteService,
    /// Keeps this process's row beating (its ID node and its claims); dropped last
    /// (fields drop in this order).
    lease: Option<ProcessLease>,
}

/// The gRPC listener (docs/API.md §9): its address, and how to stop it.
struct GrpcServer {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: actix_web::rt::task::JoinHandle<()>,
}

impl Application {
    /// Connects, migrates, starts the actors and binds; the server runs once
    /// [`Application::run_until_stopped`] is awaited. The broker may be down: the
    /// link keeps trying, and the outbox holds what is accepted meanwhile.
    ///
    /// # Errors
    /// The database is unreachable, the address cannot be bound, a template is
    /// broken, or the settings are invalid.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.validate()?;
        if settings.env == "development" && settings.crypto.key.is_empty() {
            tracing::warn!(
                key_file = %settings.crypto.key_file.display(),
                "crypto.key is unset: codes are encrypted with this machine's own key from crypto.key_file \
                 (made on first start); set crypto.key before storing real codes"
            );
        }
        // A broken template stops the process here, never a mail later.
        let templates = Arc::new(Templates::load().context("templates")?);
        let pool = open_database(&settings).await?;
        if let Ok(false) = store::autovacuum_on(&pool).await {
            tracing::warn!("PostgreSQL runs without autovacuum: deliveries slow down unless the tables are vacuumed");
        }
        let mut services = services(&settings, pool.clone()).await?;
        let lease = services.lease.take();
        let liveness = match &lease {
            Some(l) => l.liveness.clone(),
            None => crate::liveness::Liveness::detached(DELIVERY_LEASE),
        };
        let metrics = Metrics::new();

        let topology = Topology::new(&settings.amqp.prefix, &settings.delivery.retry_delays)
            .with_replicas(settings.amqp.quorum_replicas);
        let link = AmqpLink::start(settings.amqp.nodes(), topology.clone());
        let publisher = Publisher::start(link.clone());
        let relay = OutboxRelay::start(pool.clone(), link.clone(), publisher.clone(), topology.exchange());
        let terms = SweepTerms {
            dead_after: settings.delivery.process_dead_after,
            republish_after: settings.delivery.republish_after,
            max_attempts: settings.delivery.max_attempts,
        };
        Sweeper::start(pool.clone(), relay.clone(), terms);
        // A kick is a tiny, idempotent notification: do_send (no mailbox bound) is
        // fine, and the relay coalesces kicks that arrive during a sweep.
        let handoff = crate::invite::Handoff {
            hold: settings.delivery.republish_after,
            holder: liveness.clone(),
            hand: {
                let relay = relay.clone();
                Arc::new(move |rows| relay.do_send(Handoff(rows)))
            },
            can_publish: {
                let link = link.clone();
                Arc::new(move || link.state() == crate::queue::BrokerState::Up)
            },
        };
        let kick: crate::invite::DeliveryHook = Arc::new(move || relay.do_send(Kick));
        let invites = services.invites.with_handoff(handoff);
        actix_web::rt::spawn(invites.clone().count_sends_every_second());
        let counts_at_exit = invites.clone();
        let bulk = BulkService::new(pool.clone(), services.ids.clone(), publisher.clone(), topology.exchange());
        let replay = ReplayService::new(pool.clone(), invites.clone(), metrics.clone(), Some(kick.clone()));
        let (providers, receiver) =
            crate::zitadel::services(&settings, &services.cipher, &services.ids, pool.clone(), &metrics, kick);
        let providers = web::Data::new(providers);

        let mut consumers = Vec::new();
        if settings.has_role(Role::Worker) {
            let email = EmailSender::start(settings.email.clone()).map_err(anyhow::Error::msg)?;
            let pipeline = Pipeline {
                pool: pool.clone(),
                cipher: services.cipher.clone(),
                renderer: Renderer::start(templates, 2),
                email,
                sms: SmsSender::start(settings.sms.clone()),
                policy: Arc::new(RetryPolicy {
                    delays: topology.retry_delays.clone(),
                    max_attempts: settings.delivery.max_attempts,
                    lease: DELIVERY_LEASE,
                }),
                metrics: metrics.clone(),
                invite_defaults: Arc::new(crate::render::zitadel_invite::InviteDefaults {
                    application_name: settings.invite.default_application_name.clone(),
                    code_ttl: settings.invite.code_ttl,
                }),
                liveness,
                batches: None,
            };
            let requests =
                RequestHandler::new(pool.clone(), invites.clone(), metrics.clone(), topology.retry_delays.clone())
                    .max_attempts(settings.delivery.max_attempts);
            let options = ConsumerOptions {
                queue: topology.resend_queue(),
                routing_key: KEY_RESEND.to_string(),
                prefetch: settings.amqp.resend_prefetch,
                grace: settings.shutdown.grace,
            };
            consumers.push(QueueConsumer::start(
                link.clone(),
                topology.clone(),
                options,
                |arbiter| BulkWorker::start_in(arbiter, requests).recipient(),
                publisher.clone(),
            ));
            let lanes = [
                (topology.email_queue(), KEY_EMAIL),
                (topology.sms_queue(), KEY_SMS),
                (topology.bulk_email_queue(), KEY_BULK_EMAIL),
                (topology.bulk_sms_queue(), KEY_BULK_SMS),
            ];
            for (queue, key) in lanes {
                let options = ConsumerOptions {
                    queue,
                    routing_key: key.to_string(),
                    prefetch: settings.amqp.prefetch,
                    grace: settings.shutdown.grace,
                };
                let pipeline = pipeline.clone();
                consumers.push(QueueConsumer::start(
                    link.clone(),
                    topology.clone(),
                    options,
                    |arbiter| DeliveryWorker::start_in(arbiter, pipeline).recipient(),
                    publisher.clone(),
                ));
            }
        }

        // A worker alone serves only `/healthz` and `/readyz` (its probes).
        let api = settings.has_role(Role::Api);
        let (port, server, grpc) = {
            let state = AppState {
                auth: services.auth,
                directory: services.directory,
                invites,
                bulk,
                replay,
                pool: pool.clone(),
                link: Some(link.clone()),
                metrics,
            };
            let listener = TcpListener::bind(&settings.http.addr)
                .with_context(|| format!("http.addr: cannot bind {}", settings.http.addr))?;
            let addr = listener.local_addr()?;
            tracing::info!(%addr, roles = ?settings.roles, "listening");
            // gRPC is the API in another protocol: a worker alone serves none.
            let grpc = if api { Some(start_grpc(&settings, state.clone()).await?) } else { None };
            let data = web::Data::new(state);
            let server = HttpServer::new(move || {
                // The factory runs once per worker, on the worker's own thread: each
                // worker groups the resends it serves, with no lock between threads.
                let resends = web::Data::new(data.invites.grouped(RESEND_GROUP_MAX, RESEND_GROUP_CONCURRENCY));
                App::new()
                    .app_data(data.clone())
                    .app_data(resends)
                    .app_data(providers.clone())
                    // ZITADEL's posts share transactions per worker, as resends do.
                    .app_data(web::Data::new(receiver.grouped(RESEND_GROUP_MAX, RESEND_GROUP_CONCURRENCY)))
                    .wrap(middleware::from_fn(api::request_id::middleware))
                    .configure(if api { api::configure } else { api::configure_health })
                    .default_service(web::to(api::rest::not_found))
            })
            .listen(listener)?
            // Signals are handled in `run_until_stopped`, which also drains the workers.
            .disable_signals()
            .shutdown_timeout(settings.shutdown.grace.as_secs())
            .run();
            (Some(addr.port()), Some(server), grpc)
        };
        Ok(Application {
            port,
            server,
            pool,
            link,
            consumers,
            grace: settings.shutdown.grace,
            grpc,
            invites: counts_at_exit,
            lease,
        })
    }

    /// The bound HTTP port (with the api role).
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(0)
    }

    /// The bound gRPC port (with the api role).
    pub fn grpc_port(&self) -> u16 {
        self.grpc.as_ref().map_or(0, |g| g.addr.port())
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Serves until SIGINT or SIGTERM, then shuts down in order: stop consuming,
    /// let in-flight deliveries finish (up to `shutdown.grace`; unfinished ones
    /// return to the queue), stop the HTTP server gracefully, close the broker.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.server.as_ref().map(|s| s.handle());
        let server = self.server.map(actix_web::rt::spawn);
        shutdown_signal().await;
        tracing::info!(grace = ?self.grace, "shutting down");
        let drains = self.consumers.iter().map(|c| c.send(Drain));
        let unfinished: usize = futures_util::future::join_all(drains).await.into_iter().map(|r| r.unwrap_or(0)).sum();
        if unfinished > 0 {
            tracing::warn!(unfinished, "grace period over; unfinished deliveries return to the queue");
        }
        if let Some(h) = handle {
            h.stop(true).await;
        }
        if let Some(g) = self.grpc {
            let _ = g.stop.send(());
            let _ = g.task.await;
        }
        if let Some(s) = server {
            let _ = s.await;
        }
        let _ = self.link.addr.send(Close).await;
        self.invites.write_org_counts().await;
        // The heartbeat marks the row ended: what this process still held is taken
        // over at once by the others.
        if let Some(lease) = self.lease {
            lease.end(&self.pool).await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Binds `grpc.addr` and serves gRPC on this thread, with one PgPool and the
/// handlers REST uses; the resends it serves are grouped on this thread too.
async fn start_grpc(settings: &Settings, state: AppState) -> anyhow::Result<GrpcServer> {
    let listener = crate::grpc::bind(&settings.grpc.addr).await?;
    let addr = listener.addr;
    tracing::info!(%addr, "gRPC listening");
    let resends = state.invites.grouped(RESEND_GROUP_MAX, RESEND_GROUP_CONCURRENCY);
    let origins = settings.grpc.cors_origins.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = actix_web::rt::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(e) = crate::grpc::serve(listener, state, resends, &origins, shutdown).await {
            tracing::error!(error = format!("{e:#}"), "the gRPC server stopped");
        }
    });
    Ok(GrpcServer { addr, stop, task })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
