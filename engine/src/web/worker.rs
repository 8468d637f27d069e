//! The worker's message loop: one model at a time, requests answered in order, cancel between
//! steps. Nothing here blocks: device set-up, file reads and GPU read-backs are all awaited.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::path::Path;
use std::rc::Rc;

use burn::tensor::Device;
use protocol::{Backend, DeviceInfo, Envelope, Event, ModelSource, Request};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};
use web_time::Instant;

use super::files::{HttpFiles, StoredFiles};
use super::{describe, scope, wasm_heap_bytes};
use crate::device::{ComputeBackend, Precision, configure};
use crate::error::{EngineError, Result};
use crate::files::{AsComponent, ModelFiles};
use crate::pipeline::{GenerationRequest, StableDiffusion, check_model, elapsed_ms};
use crate::schedulers::SchedulerKind;
use crate::textual_inversion::TextualInversion;
use crate::weights::WeightFiles;

#[derive(Default)]
pub(crate) struct State {
    model: Option<Rc<StableDiffusion>>,
    /// The outcome of setting up WebGPU, tried once per worker (burn registers its runtime
    /// globally): the device, or why there is none.
    pub(crate) gpu: Option<std::result::Result<(Device, DeviceInfo), String>>,
    pub(crate) cancelled: HashSet<u32>,
    /// The face models, per device they were loaded on (`Debug` of the device).
    pub(crate) faces: Vec<(String, Rc<crate::faces::FaceModels>)>,
}

/// Installs the message handler and tells the app the worker is ready.
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&format!("engine worker: {info}").into());
    }));
    let state = Rc::new(RefCell::new(State::default()));
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let text = js_sys::Reflect::get(&event.data(), &Envelope::JSON.into())
            .ok()
            .and_then(|json| json.as_string())
            .unwrap_or_default();
        match serde_json::from_str::<Request>(&text) {
            Ok(Request::Cancel { id }) => {
                state.borrow_mut().cancelled.insert(id);
            }
            Ok(request) => spawn_local(handle(state.clone(), request)),
            Err(error) => web_sys::console::error_1(
                &format!("engine worker: unreadable request {text:?}: {error}").into(),
            ),
        }
    });
    let worker: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    post(&Event::Ready, None);
}

async fn handle(state: Rc<RefCell<State>>, request: Request) {
    match request {
        Request::Load {
            id,
            source,
            decoder,
            backend,
            precision,
            embeddings,
            loras,
        } => {
            let started = Instant::now();
            let device = device(&state, backend, precision).await;
            let loaded = load(
                &state,
                id,
                &source,
                decoder.as_ref(),
                device,
                (&embeddings, &loras),
            )
            .await
            .map(|device| {
                let event = Event::Loaded {
                    id,
                    device,
                    load_ms: elapsed_ms(started),
                    wasm_heap_bytes: wasm_heap_bytes(),
                };
                (event, None)
            });
            answer(id, loaded);
        }
        Request::Generate { id, request } => {
            let model = state.borrow().model.clone();
            let generated = match model {
                Some(model) => generate(&state, id, &model, request)
                    .await
                    .map(|(result, png)| (Event::Generated { id, result }, Some(png))),
                None => Err(EngineError::Usage("no model is loaded yet".into())),
            };
            answer(id, generated);
            state.borrow_mut().cancelled.remove(&id);
        }
        Request::TrainAvatar {
            id,
            source,
            decoder,
            backend,
            precision,
            training,
        } => {
            let device = device(&state, backend, precision).await;
            let trained =
                super::avatar::train(&state, id, &source, decoder.as_ref(), device, training)
                    .await
                    .map(|(event, file)| (event, Some(file)));
            answer(id, trained);
            state.borrow_mut().cancelled.remove(&id);
        }
        Request::FindFaces {
            id,
            pictures,
            backend,
            describe,
        } => {
            let device = match backend {
                Some(backend) => device(&state, backend, None).await.0,
                None => ComputeBackend::Cpu.device(),
            };
            let found = super::faces::find(&state, &device, &pictures, describe)
                .await
                .map(|pictures| (Event::FacesFound { id, pictures }, None));
            answer(id, found);
        }
        Request::CheckModel { id, source } => {
            let checked = match &source {
                ModelSource::Url { base } => check_model(&HttpFiles::new(base)).await,
                ModelSource::Stored { folder } => match StoredFiles::open(folder).await {
                    Ok(files) => check_model(&files).await,
                    Err(error) => Err(error),
                },
            };
            answer(id, checked.map(|()| (Event::ModelChecked { id }, None)));
        }
        Request::CheckFile {
            id,
            url,
            name,
            kind,
        } => {
            let checked = async {
                let bytes = super::files::read_source(&url).await?;
                let path = Path::new(&name);
                match kind {
                    protocol::FileKind::Embedding => {
                        TextualInversion::from_safetensors(&bytes, path).map(|_| ())
                    }
                    protocol::FileKind::Lora => {
                        crate::lora::LoraFile::from_safetensors(&bytes, path).map(|_| ())
                    }
                }
            };
            answer(
                id,
                checked.await.map(|()| (Event::FileChecked { id }, None)),
            );
        }
        Request::Cancel { .. } => {}
    }
}

/// Posts the final event of request `id`: its result, or that it was cancelled or failed.
fn answer(id: u32, outcome: Result<(Event, Option<Vec<u8>>)>) {
    match outcome {
        Ok((event, bytes)) => post(&event, bytes),
        Err(EngineError::Cancelled) => post(&Event::Cancelled { id }, None),
        Err(error) => post(
            &Event::Failed {
                id,
                message: error.to_string(),
            },
            None,
        ),
    }
}

async fn load(
    state: &Rc<RefCell<State>>,
    id: u32,
    source: &ModelSource,
    decoder: Option<&ModelSource>,
    (device, info): (Device, DeviceInfo),
    (embeddings, loras): (&[String], &[protocol::LoraSource]),
) -> Result<DeviceInfo> {
    // Free the old model's memory before the new one streams in.
    state.borrow_mut().model = None;
    let mut model = match source {
        ModelSource::Url { base } => {
            with_decoder(id, &HttpFiles::new(base), decoder, &device).await?
        }
        ModelSource::Stored { folder } => {
            with_decoder(id, &StoredFiles::open(folder).await?, decoder, &device).await?
        }
    };
    for url in embeddings {
        // A URL, or `opfs:avatars/<folder>/learned_embeds.safetensors` for the parent's avatars.
        let bytes = super::files::read_source(url)
            .await
            .map_err(|_| EngineError::Usage(format!("{url}: the avatar file was not found")))?;
        let embedding = TextualInversion::from_safetensors(&bytes, Path::new(url))?;
        model.add_embedding(&embedding, Path::new(url))?;
    }
    let mut scaled = Vec::new();
    for lora in loras {
        let bytes = super::files::read_source(&lora.url).await.map_err(|_| {
            EngineError::Usage(format!("{}: the LoRA file was not found", lora.url))
        })?;
        scaled.push(crate::lora::ScaledLora {
            file: crate::lora::LoraFile::from_safetensors(&bytes, Path::new(&lora.url))?,
            scale: lora.scale,
        });
    }
    model.set_loras(&scaled)?;
    state.borrow_mut().model = Some(Rc::new(model));
    Ok(info)
}

/// Loads the model in `files`, its VAE from `decoder` when given: a repo that holds a decoder
/// at its root (TAESD).
async fn with_decoder<F: ModelFiles>(
    id: u32,
    files: &F,
    decoder: Option<&ModelSource>,
    device: &Device,
) -> Result<StableDiffusion> {
    match decoder {
        None => load_counting(id, files, files, device).await,
        Some(ModelSource::Url { base }) => {
            let decoder = AsComponent {
                files: HttpFiles::new(base),
                component: "vae",
            };
            load_counting(id, files, &decoder, device).await
        }
        Some(ModelSource::Stored { folder }) => {
            let decoder = AsComponent {
                files: StoredFiles::open(folder).await?,
                component: "vae",
            };
            load_counting(id, files, &decoder, device).await
        }
    }
}

/// Loads, posting [`Event::LoadProgress`] as weight bytes stream in.
async fn load_counting(
    id: u32,
    files: &impl ModelFiles,
    decoder: &impl ModelFiles,
    device: &Device,
) -> Result<StableDiffusion> {
    let total = weights_size(files, "text_encoder", "model").await?
        + weights_size(files, "unet", "diffusion_pytorch_model").await?
        + weights_size(decoder, "vae", "diffusion_pytorch_model").await?;
    let done = Rc::new(Cell::new(0));
    let report = move |bytes: u64| {
        done.set(done.get() + bytes);
        post(
            &Event::LoadProgress {
                id,
                done: done.get(),
                total,
            },
            None,
        );
    };
    let files = Counting {
        files,
        report: &report,
    };
    let decoder = Counting {
        files: decoder,
        report: &report,
    };
    StableDiffusion::load_with_decoder(&files, &decoder, None, device).await
}

/// The size of a component's weights, as the loader will pick them.
async fn weights_size(files: &impl ModelFiles, component: &str, stem: &str) -> Result<u64> {
    let weights = WeightFiles::find(files, component, stem, None).await?;
    let mut bytes = 0;
    for file in &weights.files {
        bytes += files.size(file).await?.unwrap_or(0);
    }
    Ok(bytes)
}

/// Passes reads through, reporting the bytes of each weights range read.
struct Counting<'a, F> {
    files: &'a F,
    report: &'a dyn Fn(u64),
}

impl<F: ModelFiles> ModelFiles for Counting<'_, F> {
    async fn read(&self, relative: &str) -> Result<Option<Vec<u8>>> {
        self.files.read(relative).await
    }

    async fn size(&self, relative: &str) -> Result<Option<u64>> {
        self.files.size(relative).await
    }

    async fn read_range(&self, relative: &str, range: std::ops::Range<u64>) -> Result<Vec<u8>> {
        let bytes = self.files.read_range(relative, range).await?;
        (self.report)(bytes.len() as u64);
        Ok(bytes)
    }

    fn display_path(&self, relative: &str) -> std::path::PathBuf {
        self.files.display_path(relative)
    }
}

/// The device for `backend` in `precision` (`None`: the best it computes correctly): WebGPU
/// when asked for (or `auto`) and available, else the CPU with the reason in words. f16 needs
/// `shader-f16`; without it, and on the CPU (where it gains nothing), the model runs in f32.
pub(crate) async fn device(
    state: &Rc<RefCell<State>>,
    backend: Backend,
    precision: Option<protocol::Precision>,
) -> (Device, DeviceInfo) {
    let (mut device, mut info) = backend_device(state, backend).await;
    let compute = if info.backend == "cpu" {
        ComputeBackend::Cpu
    } else {
        ComputeBackend::Gpu
    };
    let wanted = match precision.map(Precision::from) {
        Some(Precision::F16) if device.supports_dtype(burn::tensor::DType::F16) => Precision::F16,
        Some(_) => Precision::F32,
        None => Precision::best_for(compute, &device),
    };
    info.precision = configure(&mut device, wanted).into();
    crate::conv::use_matmuls(compute == ComputeBackend::Gpu && !info.software);
    (device, info)
}

async fn backend_device(state: &Rc<RefCell<State>>, backend: Backend) -> (Device, DeviceInfo) {
    let cpu = |fallback_reason| {
        let info = DeviceInfo {
            backend: "cpu".into(),
            adapter: "CPU".into(),
            f16: false,
            precision: protocol::Precision::F32,
            software: true,
            fallback_reason,
        };
        (Device::flex(), info)
    };
    if backend == Backend::Cpu {
        return cpu(None);
    }
    let tried = state.borrow().gpu.clone();
    let outcome = match tried {
        Some(outcome) => outcome,
        None => {
            let outcome = webgpu().await;
            state.borrow_mut().gpu = Some(outcome.clone());
            outcome
        }
    };
    outcome.unwrap_or_else(|reason| cpu(Some(reason)))
}

/// Sets up burn's WebGPU runtime with the adapter's own limits.
async fn webgpu() -> std::result::Result<(Device, DeviceInfo), String> {
    const NO_GPU: &str = "This browser does not offer WebGPU here, so pictures are drawn on the \
        processor instead. That works, but it is much slower (minutes per picture).";
    let navigator = scope().navigator();
    let gpu = js_sys::Reflect::get(&navigator, &"gpu".into()).unwrap_or(JsValue::UNDEFINED);
    if gpu.is_undefined() || gpu.is_null() {
        return Err(NO_GPU.into());
    }
    // A browser may expose navigator.gpu yet have no adapter (blocklisted or software-only).
    // (web-sys's WebGPU types are behind an unstable cfg; one call through Reflect will do.)
    let request_adapter = js_sys::Reflect::get(&gpu, &"requestAdapter".into())
        .ok()
        .and_then(|function| function.dyn_into::<js_sys::Function>().ok())
        .ok_or_else(|| NO_GPU.to_owned())?;
    let promise = request_adapter
        .call0(&gpu)
        .map_err(|error| format!("{NO_GPU} ({})", describe(&error)))?;
    let adapter = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(promise))
        .await
        .map_err(|error| format!("{NO_GPU} ({})", describe(&error)))?;
    if adapter.is_null() || adapter.is_undefined() {
        return Err(NO_GPU.into());
    }
    let (device, setup) = Device::wgpu_options()
        .init_with_setup_async()
        .await
        .map_err(|error| format!("{NO_GPU} ({error})"))?;
    let name = adapter_name(&adapter);
    let software = is_software(&adapter, &name);
    let f16 = setup
        .adapter
        .features()
        .contains(burn::tensor::wgpu::wgpu::Features::SHADER_F16);
    Ok((
        device,
        DeviceInfo {
            backend: "webgpu".into(),
            adapter: name,
            f16,
            precision: protocol::Precision::F32,
            software,
            fallback_reason: None,
        },
    ))
}

/// A software adapter: the browser says so (`isFallbackAdapter`, on `info` in newer browsers), or
/// it is SwiftShader by name.
fn is_software(adapter: &JsValue, name: &str) -> bool {
    let flag = |holder: &JsValue| {
        js_sys::Reflect::get(holder, &"isFallbackAdapter".into())
            .ok()
            .and_then(|value| value.as_bool())
    };
    let info = js_sys::Reflect::get(adapter, &"info".into()).unwrap_or(JsValue::UNDEFINED);
    flag(&info).or_else(|| flag(adapter)).unwrap_or(false)
        || name.to_lowercase().contains("swiftshader")
}

/// The adapter as the browser names it (`GPUAdapter.info`): its description, else vendor and
/// architecture (SwiftShader gives `google swiftshader`).
fn adapter_name(adapter: &JsValue) -> String {
    let info = js_sys::Reflect::get(adapter, &"info".into()).unwrap_or(JsValue::UNDEFINED);
    let field = |name: &str| {
        js_sys::Reflect::get(&info, &name.into())
            .ok()
            .and_then(|value| value.as_string())
            .filter(|value| !value.is_empty())
    };
    field("description").unwrap_or_else(|| {
        [field("vendor"), field("architecture")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
    })
}

async fn generate(
    state: &Rc<RefCell<State>>,
    id: u32,
    model: &StableDiffusion,
    request: protocol::Generate,
) -> Result<(protocol::Generated, Vec<u8>)> {
    let started = Instant::now();
    let scheduler = request
        .scheduler
        .as_deref()
        .map(SchedulerKind::from_cli_name)
        .transpose()?;
    let noise = match &request.noise_url {
        Some(url) => Some(read_noise(url).await?),
        None => None,
    };
    let engine_request = GenerationRequest {
        prompt: request.prompt,
        negative_prompt: request.negative_prompt,
        steps: request.steps,
        guidance: request.guidance,
        width: request.width,
        height: request.height,
        seed: request.seed,
        scheduler,
        noise,
    };
    let generated = model
        .generate(&engine_request, |progress| {
            post(
                &Event::Step {
                    id,
                    step: progress.step,
                    steps: progress.steps,
                },
                None,
            );
            !state.borrow().cancelled.contains(&id)
        })
        .await?;
    let png = encode_png(&generated.rgb, generated.width, generated.height)?;
    let timings = protocol::Timings {
        text: generated.timings.text_ms,
        unet: generated.timings.unet_ms.clone(),
        decode: generated.timings.decode_ms,
        total: elapsed_ms(started),
    };
    let likeness = if request.likeness_of.is_empty() {
        None
    } else {
        let models = super::faces::for_scoring(state, model.device()).await?;
        Some(super::faces::likeness(&models, &generated, &request.likeness_of).await?)
    };
    let (latent_shape, latents) = if request.return_latents {
        (generated.latent_shape.to_vec(), generated.latents)
    } else {
        (Vec::new(), Vec::new())
    };
    Ok((
        protocol::Generated {
            width: generated.width,
            height: generated.height,
            timings,
            wasm_heap_bytes: wasm_heap_bytes(),
            latent_shape,
            latents,
            likeness,
        },
        png,
    ))
}

/// The `noise` tensor of a safetensors file at `url`.
async fn read_noise(url: &str) -> Result<Vec<f32>> {
    let bytes = HttpFiles::new(url)
        .read("")
        .await?
        .ok_or_else(|| EngineError::Usage(format!("{url}: the noise file was not found")))?;
    let invalid = |problem: String| EngineError::Weights {
        path: url.into(),
        problem,
    };
    let tensors = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|error| invalid(error.to_string()))?;
    let noise = tensors
        .tensor("noise")
        .map_err(|_| invalid("has no tensor `noise`".into()))?;
    crate::weights::float_values(noise.dtype(), noise.data())
        .ok_or_else(|| invalid(format!("`noise` has type {:?}", noise.dtype())))
}

pub(crate) fn encode_png(rgb: &[u8], width: usize, height: usize) -> Result<Vec<u8>> {
    use image::ImageEncoder;
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(
            rgb,
            width as u32,
            height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|error| EngineError::Usage(format!("could not encode the picture: {error}")))?;
    Ok(png)
}

/// Sends one event, with `bytes` transferred (not copied) beside it.
pub(crate) fn post(event: &Event, bytes: Option<Vec<u8>>) {
    let message = js_sys::Object::new();
    let json = serde_json::to_string(event).expect("events serialise");
    let _ = js_sys::Reflect::set(&message, &Envelope::JSON.into(), &json.into());
    let transfer = js_sys::Array::new();
    if let Some(bytes) = bytes {
        let array = js_sys::Uint8Array::from(bytes.as_slice());
        transfer.push(&array.buffer());
        let _ = js_sys::Reflect::set(&message, &Envelope::BYTES.into(), &array);
    }
    let worker: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    if let Err(error) = worker.post_message_with_transfer(&message, &transfer) {
        web_sys::console::error_1(
            &format!("engine worker: could not post: {}", describe(&error)).into(),
        );
    }
}
