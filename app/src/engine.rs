//! The app's side of the engine worker: started on first use (the engine's wasm is downloaded
//! only then), spoken to in [`protocol`] messages.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures::StreamExt;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use protocol::{Envelope, Event, Request};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{MessageEvent, Worker, WorkerOptions, WorkerType};

/// The engine worker's loader script, written by Trunk (`app/index.html`, `data-loader-shim`).
const WORKER_SCRIPT: &str = "/engine-worker_loader.js";

/// An event with the bytes that travelled beside it (a picture).
pub type Delivery = (Event, Option<Vec<u8>>);

pub struct EngineWorker {
    worker: Worker,
    ready: Rc<Cell<bool>>,
    /// Requests written before the worker said it was ready.
    queued: Rc<RefCell<Vec<String>>>,
    listeners: Rc<RefCell<HashMap<u32, UnboundedSender<Delivery>>>>,
    next_id: Cell<u32>,
    /// Replaced by a fresh worker: stops once its last request has finished.
    retired: Rc<Cell<bool>>,
}

thread_local! {
    static ENGINE: RefCell<Option<Rc<EngineWorker>>> = const { RefCell::new(None) };
}

impl EngineWorker {
    /// The one engine worker of this page, started now if it is not running yet.
    pub fn get() -> Result<Rc<EngineWorker>, String> {
        ENGINE.with(|engine| {
            if let Some(engine) = engine.borrow().as_ref() {
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
        Ok(EngineWorker {
            worker,
            ready,
            queued,
            listeners,
            next_id: Cell::new(1),
            retired,
        })
    }

    /// A fresh request id.
    pub fn next_id(&self) -> u32 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// Sends `request` (whose id came from [`next_id`](Self::next_id)); its events arrive on
    /// the returned stream, which ends after the final one.
    pub fn send(&self, id: u32, request: &Request) -> UnboundedReceiver<Delivery> {
        let (sender, receiver) = unbounded();
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
    ) -> Result<Delivery, String> {
        let mut events = self.send(id, request);
        while let Some((event, bytes)) = events.next().await {
            if is_final(&event) {
                return match event {
                    Event::Failed { message, .. } => Err(message),
                    event => Ok((event, bytes)),
                };
            }
            on_progress(&event);
        }
        Err("the picture engine stopped unexpectedly".into())
    }

    pub fn cancel(&self, id: u32) {
        let json = serde_json::to_string(&Request::Cancel { id }).expect("requests serialise");
        post(&self.worker, &json);
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
        | Event::FileChecked { id, .. }
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
            | Event::FileChecked { .. }
            | Event::Cancelled { .. }
            | Event::Failed { .. }
    )
}
