//! The tree's own services, the Registry, the Broadcaster and the Alerter, kept running under one policy
//! ([`SERVICE_RESTARTS`]): a service that exits is started again after a pause that grows while
//! starting keeps failing (PostgreSQL down while the Registry would `LISTEN`, say). A failed
//! start never fails the supervisor, so the bots already running and the HTTP server carry on;
//! the failure is shown in the [`TreeView`](super::view::TreeView) that `/readyz` reads.

use std::time::Instant;

use ractor::SpawnErr;

use super::view::{Service, ServiceStatus};
use super::{SupervisorMsg, SupervisorRef, SupervisorState};
use crate::actors::policy::SERVICE_RESTARTS;
use crate::db::now_ms;

/// How one service has fared since it last ran stably.
#[derive(Debug, Default)]
pub(super) struct ServiceRun {
    /// Exits and failed starts in a row (the pause before the next start grows with it).
    attempt: u32,
    running_since: Option<Instant>,
}

impl SupervisorState {
    /// Starts `service`; a failed start is handled like an exit (retried after a pause).
    pub(super) async fn start_service(&mut self, myself: &SupervisorRef, service: Service) {
        if self.shutting_down {
            return;
        }
        if !self.services.contains_key(&service) {
            // Its first start: not ready until it runs.
            self.view.set_service(
                service,
                ServiceStatus {
                    service,
                    running: false,
                    failures: 0,
                    last_error: None,
                    next_attempt_at: None,
                },
            );
        }
        let started = match service {
            Service::Registry => self.spawn_registry(myself).await,
            Service::Broadcaster => self.spawn_broadcaster(myself).await,
            Service::Alerter => self.spawn_alerter(myself).await,
        };
        match started {
            Ok(()) => {
                let run = self.services.entry(service).or_default();
                run.running_since = Some(Instant::now());
                if run.attempt > 0 {
                    tracing::info!(service = service.as_str(), "running again");
                }
                self.view.set_service(
                    service,
                    ServiceStatus {
                        service,
                        running: true,
                        failures: run.attempt,
                        last_error: None,
                        next_attempt_at: None,
                    },
                );
                if service == Service::Broadcaster {
                    self.release_held_statuses();
                }
            }
            Err(error) => {
                let reason = match error {
                    SpawnErr::StartupFailed(cause) => format!("could not start: {cause}"),
                    other => format!("could not start: {other}"),
                };
                self.service_stopped(myself, service, reason);
            }
        }
    }

    /// `service` exited or could not start: start it again after the policy's pause.
    pub(super) fn service_stopped(
        &mut self,
        myself: &SupervisorRef,
        service: Service,
        reason: String,
    ) {
        match service {
            Service::Registry => self.registry = None,
            Service::Broadcaster => self.broadcaster = None,
            Service::Alerter => self.alerter = None,
        }
        if self.shutting_down {
            return;
        }
        let run = self.services.entry(service).or_default();
        if run
            .running_since
            .take()
            .is_some_and(|since| since.elapsed() >= SERVICE_RESTARTS.stable_after)
        {
            run.attempt = 0;
        }
        let pause = SERVICE_RESTARTS.delay(run.attempt, None);
        run.attempt = run.attempt.saturating_add(1);
        tracing::error!(
            service = service.as_str(),
            %reason,
            attempt = run.attempt,
            retry_in_ms = pause.as_millis() as u64,
            "a service of the supervision tree stopped; starting it again"
        );
        self.view.set_service(
            service,
            ServiceStatus {
                service,
                running: false,
                failures: run.attempt,
                last_error: Some(reason),
                next_attempt_at: Some(now_ms() + pause.as_millis() as i64),
            },
        );
        myself.send_after(pause, move || SupervisorMsg::RestartService(service));
    }
}
