//! The worker's message loop: one model at a time, requests answered in order, cancel between
//! steps. Nothing here blocks: device set-up, file reads and GPU read-backs are all awaited.

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;

use burn::tensor::Device;
use protocol::{Backend, DeviceInfo, Envelope, Event, ModelSource, Request};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};
use web_time::Instant;

use super::device::device;
use super::files::{HttpFiles, SourceFiles};
use super::state::State;
use super::{encode_png, gpu_memory, post, wasm_heap_bytes};
use crate::device::ComputeBackend;
use crate::error::{EngineError, Result};
use crate::estimate::{Path as ComputePath, PipelineShape, WASM32_MEMORY_BYTES, estimate};
use crate::loaders::files::{AsComponent, ModelFiles};
use crate::loaders::textual_inversion::TextualInversion;
use crate::loaders::weights::WeightFiles;
use crate::pipelines::stable_diffusion::{
    GenerationRequest, StableDiffusion, check_model, elapsed_ms,
};
use crate::schedulers::SchedulerKind;

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
            let checked = match SourceFiles::open(&source).await {
                Ok(files) => check_model(&files).await,
                Err(error) => Err(error),
            };
            answer(id, checked.map(|()| (Event::ModelChecked { id }, None)));
        }
        Request::Estimate {
            id,
            source,
            decoder,
            backend,
            precision,
            stored,
            picture,
            avatar,
            device_memory_bytes,
            speed,
        } => {
            let (device, info) = device(&state, backend, precision).await;
            let estimated = async {
                let files = SourceFiles::open(&source).await?;
                let shape = match decoder {
                    Some(decoder) => {
                        let decoder = AsComponent::vae(SourceFiles::open(&decoder).await?);
                        PipelineShape::read(&files, Some(&decoder)).await?
                    }
                    None => PipelineShape::read(&files, None::<&SourceFiles>).await?,
                };
                let processor = info.backend == "cpu";
                let speed = match speed {
                    Some(speed) => speed,
                    None => crate::estimate::speed::measure(&device, processor).await?,
                };
                let path = ComputePath::new(processor, info.precision.into(), stored.into());
                let mut estimate = estimate(&shape, path, &speed, &picture, &avatar);
                estimate.memory_limit_bytes = if processor {
                    Some(device_memory_bytes.map_or(WASM32_MEMORY_BYTES, |memory| {
                        memory.min(WASM32_MEMORY_BYTES)
                    }))
                } else {
                    device_memory_bytes
                };
                Ok((
                    Event::Estimated {
                        id,
                        device: info,
                        speed,
                        estimate,
                    },
                    None,
                ))
            };
            answer(id, estimated.await);
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
                        crate::loaders::lora::LoraFile::from_safetensors(&bytes, path).map(|_| ())
                    }
                }
            };
            answer(
                id,
                checked.await.map(|()| (Event::FileChecked { id }, None)),
            );
        }
        Request::WriteStory {
            id,
            source,
            file,
            backend,
            precision,
            idea,
            seed,
        } => {
            let mut device = device(&state, backend, precision).await;
            // A software adapter (SwiftShader) writes ~100× slower than the processor (0.06
            // against 5.8 tokens/s, docs/benchmarks.md): unless WebGPU was asked for by name,
            // the writer uses the processor there.
            if backend == Backend::Auto && device.1.software && device.1.backend != "cpu" {
                device = super::device::device(&state, Backend::Cpu, precision).await;
            }
            let written = super::writer::write_story(
                &state,
                id,
                &source,
                file.as_deref(),
                device,
                &idea,
                seed,
            )
            .await
            .map(|event| (event, None));
            answer(id, written);
            state.borrow_mut().cancelled.remove(&id);
        }
        Request::Complete {
            id,
            source,
            file,
            backend,
            precision,
            prompt,
            max_tokens,
            sampling,
        } => {
            let device = device(&state, backend, precision).await;
            let written = super::writer::complete(
                &state,
                id,
                &source,
                file.as_deref(),
                device,
                &prompt,
                max_tokens,
                sampling,
            )
            .await
            .map(|event| (event, None));
            answer(id, written);
            state.borrow_mut().cancelled.remove(&id);
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
    let files = SourceFiles::open(source).await?;
    let mut model = match decoder {
        None => load_counting(id, &files, &files, &device).await?,
        Some(decoder) => {
            let decoder = AsComponent::vae(SourceFiles::open(decoder).await?);
            load_counting(id, &files, &decoder, &device).await?
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
        scaled.push(crate::models::lora::ScaledLora {
            file: crate::loaders::lora::LoraFile::from_safetensors(&bytes, Path::new(&lora.url))?,
            scale: lora.scale,
        });
    }
    model.set_loras(&scaled)?;
    state.borrow_mut().model = Some(Rc::new(model));
    Ok(info)
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
            gpu_memory: gpu_memory(model.device()),
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
    crate::loaders::weights::float_values(noise.dtype(), noise.data())
        .ok_or_else(|| invalid(format!("`noise` has type {:?}", noise.dtype())))
}
