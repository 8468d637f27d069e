//! The app's side of the engine worker: started on first use (the engine's wasm is downloaded
//! only then), spoken to in [`protocol`] messages.
//!
//! A worker can die: wasm32's memory runs out, the engine traps, the GPU device is lost. The
//! browser then reports an uncaught error on the worker; every request still waiting is answered
//! with a plain-words failure ([`EngineFailure::Stopped`]) instead of waiting for ever, the dead
//! worker is ended, and the next request starts a fresh one. Nothing the parent made lives in the
//! worker, so nothing is lost.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures::StreamExt;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use protocol::{Envelope, Event, Request};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{ErrorEvent, MessageEvent, Worker, WorkerOptions, WorkerType};

/// The engine worker's loader script, written by Trunk (`app/index.html`, `data-loader-shim`).
const WORKER_SCRIPT: &str = "/engine-worker_loader.js";

/// An event with the bytes that travelled beside it (a picture).
pub type Delivery = (Event, Option<Vec<u8>>);

/// Why a request did not succeed.
#[derive(Clone, Debug, PartialEq)]
pub enum EngineFailure {
    /// The engine answered with a failure: the request (its model, its file) is at fault.
    Failed(String),
    /// The worker died before it answered (out of memory, a trap, a lost GPU): the request may
    /// be fine, and a fresh worker serves the next one.
    Stopped(String),
}

impl From<EngineFailure> for String {
    fn from(failure: EngineFailure) -> String {
        match failure {
            EngineFailure::Failed(message) | EngineFailure::Stopped(message) => message,
        }
    }
}

/// What a parent reads when the worker died; `reason` is the browser's own words.
fn stopped_message(reason: &str) -> String {
    format!(
        "The picture engine stopped unexpectedly, most likely because this device ran out of \
         memory for the picture model. Nothing you made is lost. Try again; if it stops again, \
         close other tabs, or choose a smaller picture model on the Models screen. (The browser \
         said: {reason})"
    )
}

pub struct EngineWorker {
    worker: Worker,
    ready: Rc<Cell<bool>>,
    /// Requests written before the worker said it was ready.
    queued: Rc<RefCell<Vec<String>>>,
    listeners: Rc<RefCell<HashMap<u32, UnboundedSender<Delivery>>>>,
    /// Replaced by a fresh worker: stops once its last request has finished.
    retired: Rc<Cell<bool>>,
    /// Set when the worker died, to what its requests were told.
    stopped: Rc<RefCell<Option<String>>>,
}

thread_local! {
    static ENGINE: RefCell<Option<Rc<EngineWorker>>> = const { RefCell::new(None) };
    /// Workers replaced by [`EngineWorker::restart`] that still answer requests: a cancel must
    /// reach the worker that holds the request.
    static RETIRED: RefCell<Vec<Rc<EngineWorker>>> = const { RefCell::new(Vec::new()) };
    /// Request ids, unique in the page whichever worker a request goes to.
    static NEXT_ID: Cell<u32> = const { Cell::new(1) };
}

impl EngineWorker {
    /// The one engine worker of this page, started now if it is not running yet.
    pub fn get() -> Result<Rc<EngineWorker>, String> {
        ENGINE.with(|engine| {
            if let Some(engine) = engine.borrow().as_ref()
                && engine.stopped.borrow().is_none()
            {
                return Ok(engine.clone());
            }
            let started = Rc::new(EngineWorker::start()?);
            *engine.borrow_mut() = Some(started.clone());
            Ok(started)
        })
    }

    /// Starts a fresh worker for the next request: after a change of precision, which a
    /// worker cannot make once its GPU holds a tensor (burn fixes a device's float type). The
    /// current worker finishes the requests it has (a picture, an avatar) and then stops.
    pub fn restart() {
        ENGINE.with(|engine| {
            if let Some(old) = engine.borrow_mut().take() {
                old.retired.set(true);
                if old.listeners.borrow().is_empty() {
                    old.worker.terminate();
                } else {
                    RETIRED.with(|retired| retired.borrow_mut().push(old));
                }
            }
        });
    }

    fn start() -> Result<EngineWorker, String> {
        let options = WorkerOptions::new();
        options.set_type(WorkerType::Classic);
        options.set_name("engine");
        let worker = Worker::new_with_options(WORKER_SCRIPT, &options)
            .map_err(|error| format!("the picture engine could not start: {error:?}"))?;
        let ready = Rc::new(Cell::new(false));
        let queued: Rc<RefCell<Vec<String>>> = Rc::default();
        let listeners: Rc<RefCell<HashMap<u32, UnboundedSender<Delivery>>>> = Rc::default();
        let retired = Rc::new(Cell::new(false));
        let stopped: Rc<RefCell<Option<String>>> = Rc::default();
        let on_message = {
            let (worker, ready, queued, listeners, retired) = (
                worker.clone(),
                ready.clone(),
                queued.clone(),
                listeners.clone(),
                retired.clone(),
            );
            Closure::<dyn FnMut(MessageEvent)>::new(move |message: MessageEvent| {
                let data = message.data();
                let json = js_sys::Reflect::get(&data, &Envelope::JSON.into())
                    .ok()
                    .and_then(|json| json.as_string())
                    .unwrap_or_default();
                let Ok(event) = serde_json::from_str::<Event>(&json) else {
                    web_sys::console::error_1(&format!("unreadable engine event {json:?}").into());
                    return;
                };
                let bytes = js_sys::Reflect::get(&data, &Envelope::BYTES.into())
                    .ok()
                    .and_then(|bytes| bytes.dyn_into::<js_sys::Uint8Array>().ok())
                    .map(|bytes| bytes.to_vec());
                let Some(id) = event_id(&event) else {
                    ready.set(true);
                    for request in queued.borrow_mut().drain(..) {
                        post(&worker, &request);
                    }
                    return;
                };
                let finished = is_final(&event);
                let mut listeners = listeners.borrow_mut();
                if let Some(listener) = listeners.get(&id) {
                    let _ = listener.unbounded_send((event, bytes));
                }
                if finished {
                    listeners.remove(&id);
                    if retired.get() && listeners.is_empty() {
                        worker.terminate();
                    }
                }
            })
        };
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();
        // An uncaught error in the engine's wasm is a trap (or the script never loaded): the
        // instance cannot be trusted again.
        let on_error = {
            let (worker, queued, listeners, stopped) = (
                worker.clone(),
                queued.clone(),
                listeners.clone(),
                stopped.clone(),
            );
            Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
                // Handled here: the page itself has not failed.
                event.prevent_default();
                let reason = event
                    .dyn_ref::<ErrorEvent>()
                    .map(ErrorEvent::message)
                    .filter(|message| !message.is_empty())
                    .unwrap_or_else(|| "the engine could not start".into());
                web_sys::console::warn_1(&format!("engine worker stopped: {reason}").into());
                let message = stopped_message(&reason);
                *stopped.borrow_mut() = Some(message.clone());
                worker.terminate();
                queued.borrow_mut().clear();
                for (id, listener) in listeners.borrow_mut().drain() {
                    let failed = Event::Failed {
                        id,
                        message: message.clone(),
                    };
                    let _ = listener.unbounded_send((failed, None));
                }
            })
        };
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        on_error.forget();
        Ok(EngineWorker {
            worker,
            ready,
            queued,
            listeners,
            retired,
            stopped,
        })
    }

    /// A fresh request id, unique in the page.
    pub fn next_id(&self) -> u32 {
        NEXT_ID.with(|next| {
            let id = next.get();
            next.set(id + 1);
            id
        })
    }

    /// Sends `request` (whose id came from [`next_id`](Self::next_id)); its events arrive on
    /// the returned stream, which ends after the final one.
    pub fn send(&self, id: u32, request: &Request) -> UnboundedReceiver<Delivery> {
        let (sender, receiver) = unbounded();
        if let Some(message) = self.stopped.borrow().clone() {
            // Held past its death by a caller: answer at once.
            let _ = sender.unbounded_send((Event::Failed { id, message }, None));
            return receiver;
        }
        self.listeners.borrow_mut().insert(id, sender);
        let json = serde_json::to_string(request).expect("requests serialise");
        if self.ready.get() {
            post(&self.worker, &json);
        } else {
            self.queued.borrow_mut().push(json);
        }
        receiver
    }

    /// Sends `request` and waits for its final event, passing the others to `on_progress`.
    pub async fn call(
        &self,
        id: u32,
        request: &Request,
        mut on_progress: impl FnMut(&Event),
    ) -> Result<Delivery, EngineFailure> {
        let mut events = self.send(id, request);
        while let Some((event, bytes)) = events.next().await {
            if is_final(&event) {
                return match event {
                    Event::Failed { message, .. }
                        if self.stopped.borrow().as_deref() == Some(message.as_str()) =>
                    {
                        Err(EngineFailure::Stopped(message))
                    }
                    Event::Failed { message, .. } => Err(EngineFailure::Failed(message)),
                    event => Ok((event, bytes)),
                };
            }
            on_progress(&event);
        }
        Err(EngineFailure::Stopped(stopped_message(
            "it ended without answering",
        )))
    }

    /// Asks the worker that holds request `id` (the current one or a retired one still
    /// finishing) to stop it; nothing when no worker holds it (it ended, or its worker died).
    /// Starts no worker.
    pub fn cancel(id: u32) {
        let current = ENGINE.with(|engine| engine.borrow().clone());
        let retired = RETIRED.with(|retired| {
            let mut retired = retired.borrow_mut();
            retired.retain(|worker| !worker.listeners.borrow().is_empty());
            retired.clone()
        });
        let holder = current
            .into_iter()
            .chain(retired)
            .find(|worker| worker.listeners.borrow().contains_key(&id));
        if let Some(worker) = holder {
            let json = serde_json::to_string(&Request::Cancel { id }).expect("requests serialise");
            post(&worker.worker, &json);
        }
    }
}

fn post(worker: &Worker, json: &str) {
    let message = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&message, &Envelope::JSON.into(), &JsValue::from_str(json));
    if let Err(error) = worker.post_message(&message) {
        web_sys::console::error_1(&error);
    }
}

fn event_id(event: &Event) -> Option<u32> {
    match event {
        Event::Ready => None,
        Event::LoadProgress { id, .. }
        | Event::Loaded { id, .. }
        | Event::Step { id, .. }
        | Event::Generated { id, .. }
        | Event::Cancelled { id }
        | Event::TrainStep { id, .. }
        | Event::AvatarPreview { id, .. }
        | Event::AvatarTrained { id, .. }
        | Event::FacesFound { id, .. }
        | Event::ModelChecked { id, .. }
        | Event::Estimated { id, .. }
        | Event::FileChecked { id, .. }
        | Event::TokenWritten { id, .. }
        | Event::Completed { id, .. }
        | Event::StoryDraft { id, .. }
        | Event::StoryRewriting { id, .. }
        | Event::StoryWritten { id, .. }
        | Event::Failed { id, .. } => Some(*id),
    }
}

fn is_final(event: &Event) -> bool {
    matches!(
        event,
        Event::Loaded { .. }
            | Event::Generated { .. }
            | Event::AvatarTrained { .. }
            | Event::FacesFound { .. }
            | Event::ModelChecked { .. }
            | Event::Estimated { .. }
            | Event::FileChecked { .. }
            | Event::Completed { .. }
            | Event::StoryWritten { .. }
            | Event::Cancelled { .. }
            | Event::Failed { .. }
    )
}
