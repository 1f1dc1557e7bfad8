//! Every S3 request of a run goes through one [`Gate`]: an AIMD window
//! ([`crate::core::aimd`]) shared by listings, digest and log reads, versions and downloads,
//! so that throttling met by one phase slows them all.
//!
//! A request waits for room in the window, then runs with an interceptor that tells the window
//! what each of the SDK's attempts met (throttled, timed out, answered). The SDK still retries
//! what it retries (5xx, broken connections, timeouts), but not throttling
//! ([`ThrottlingIsRetriedThroughTheWindow`]): a throttled request is sent again here, after a
//! pause, through the window, which has shrunk meanwhile, so that retries obey it too, while
//! others get through ([`crate::core::aimd::Window::resend`]). When it may not be sent again,
//! its error is the request's result, as without the window: nothing is dropped, and a failed
//! read is reported as before.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    FinalizerInterceptorContextRef, InterceptorContext,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use tokio::sync::Notify;

use crate::core::aimd::{is_throttling, Adaptation, Signal, Ticket, Window};

/// The window of requests in flight, and the requests waiting for room in it.
#[derive(Debug)]
pub struct Gate {
    state: Mutex<State>,
    room: Notify,
}

#[derive(Debug)]
struct State {
    window: Window,
    in_flight: usize,
}

impl Gate {
    /// A gate that allows up to `ceiling` requests in flight, and never fewer than one.
    pub fn new(ceiling: usize) -> Arc<Gate> {
        Arc::new(Gate {
            state: Mutex::new(State {
                window: Window::new(1, ceiling),
                in_flight: 0,
            }),
            room: Notify::new(),
        })
    }

    /// What the window has been through so far.
    pub fn adaptation(&self) -> Adaptation {
        self.lock().window.adaptation()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is counters only, consistent after every statement: a panic elsewhere
        // leaves nothing half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for room in the window, and takes it.
    async fn enter(self: &Arc<Self>) -> Pass {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            // Registered before looking, so a slot freed in between still wakes it.
            room.as_mut().enable();
            {
                let mut state = self.lock();
                if state.in_flight < state.window.limit() {
                    state.in_flight += 1;
                    return Pass {
                        gate: Arc::clone(self),
                        ticket: state.window.ticket(),
                    };
                }
            }
            room.await;
        }
    }

    fn attempt(&self, ticket: Ticket, signal: Signal) {
        self.lock().window.attempt(ticket, signal);
    }
}

/// Room for one request in the window, held until its body is read; given back when dropped.
#[derive(Debug)]
pub struct Pass {
    gate: Arc<Gate>,
    ticket: Ticket,
}

impl Pass {
    /// The body stalled or broke off: what a timeout says of the service.
    pub fn timed_out(&self) {
        self.gate.attempt(self.ticket, Signal::TimedOut);
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let room = {
            let mut state = self.gate.lock();
            state.in_flight = state.in_flight.saturating_sub(1);
            state.window.limit().saturating_sub(state.in_flight)
        };
        // One waiter per free slot (the window may have grown): each looks again.
        for _ in 0..room.min(MAX_WAKE) {
            self.gate.room.notify_one();
        }
    }
}

/// The most waiters one freed slot wakes: the window grows by one at a time, so more than a
/// couple are never needed; a bound keeps a release cheap.
const MAX_WAKE: usize = 4;

/// Keeps the SDK from retrying a throttled attempt itself: its retries would not wait for room
/// in the window (and would spend the SDK's retry quota, after which nothing is retried at
/// all); [`send`] sends it again through the window instead.
#[derive(Debug)]
pub struct ThrottlingIsRetriedThroughTheWindow;

impl ClassifyRetry for ThrottlingIsRetriedThroughTheWindow {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        // S3 throttles with 503 (SlowDown); S3-compatible servers may answer 429. The code
        // cannot be read here (the error's type is the operation's): the status says it.
        let status = ctx.response().map(|r| r.status().as_u16());
        if matches!(ctx.output_or_error(), Some(Err(_))) && is_throttling(status, None) {
            RetryAction::RetryForbidden
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "ThrottlingIsRetriedThroughTheWindow"
    }
}

/// Sends one request through the gate: `send` is called with the interceptor to attach
/// (`.customize().interceptor(watch)`) and sends the request. A throttled request is sent
/// again after a pause while the window allows it; otherwise the SDK's answer is returned as
/// it came. The [`Pass`] comes back with the output: the request stays
/// in flight until its body is read.
pub async fn send<T, E, F, Fut>(
    gate: &Arc<Gate>,
    mut send: F,
) -> Result<(T, Pass), SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    F: FnMut(Watch<E>) -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
{
    let mut rounds = 0;
    loop {
        let pass = gate.enter().await;
        rounds += 1;
        let watch = Watch {
            gate: Arc::clone(gate),
            ticket: pass.ticket,
            error: PhantomData,
        };
        let result = send(watch).await;
        let err = match result {
            Ok(out) => {
                gate.lock().window.answered();
                return Ok((out, pass));
            }
            Err(err) => err,
        };
        let status = err.raw_response().map(|r| r.status().as_u16());
        if is_throttling(status, err.code()) {
            drop(pass);
            let pause = gate.lock().window.resend(rounds);
            match pause {
                Some(pause) => {
                    tokio::time::sleep(pause).await;
                    continue;
                }
                None => return Err(err),
            }
        }
        if status.is_some() {
            // The service answered (404, 403, ...): it keeps up.
            gate.lock().window.answered();
        }
        return Err(err);
    }
}

/// Tells the gate what each attempt of one request met. Attach it to the request
/// (`.customize().interceptor(watch)`); `E` is the operation's error type, whose code tells
/// throttling apart.
pub struct Watch<E> {
    gate: Arc<Gate>,
    ticket: Ticket,
    error: PhantomData<fn() -> E>,
}

impl<E> std::fmt::Debug for Watch<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("ticket", &self.ticket)
            .finish()
    }
}

impl<E> Intercept for Watch<E>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn name(&self) -> &'static str {
        "AdaptiveConcurrency"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let ctx = context.inner();
        let signal = match ctx.output_or_error() {
            Some(Err(err)) => {
                let status = ctx.response().map(|r| r.status().as_u16());
                let code = err
                    .as_operation_error()
                    .and_then(|e| e.downcast_ref::<E>())
                    .and_then(|e| e.code());
                let timed_out = err.is_timeout_error()
                    || err.as_connector_error().is_some_and(|c| c.is_timeout());
                if is_throttling(status, code) {
                    Signal::Throttled
                } else if timed_out {
                    Signal::TimedOut
                } else {
                    Signal::Served
                }
            }
            _ => Signal::Served,
        };
        self.gate.attempt(self.ticket, signal);
        Ok(())
    }
}
