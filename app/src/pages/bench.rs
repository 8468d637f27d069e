//! `/bench.html`: runs one generation in the engine worker from URL parameters and writes the
//! outcome as one JSON object into `#result`. Benchmarks and browser tests rely on this
//! contract (issue 5); keep its parameters and fields exactly.
//!
//! Parameters: `model` (base URL of a diffusers folder), `prompt`, `negative`, `steps`,
//! `guidance`, `width`, `height`, `seed`, `scheduler`, `noise` (URL of a safetensors file with
//! tensor `noise`), `embedding` (URL of a textual-inversion file), `backend` (`webgpu`, `cpu`).
//! Also `load_only` (load, report, draw nothing: memory benchmarks), `warmup=N` (draw N times
//! first, unreported, so timings show compiled kernels), `decoder` (base URL of a separate VAE repo such as TAESD), and `opfs:{folder}` in place
//! of a URL for a model in the on-device store. `panic=1` panics on purpose, so the browser
//! tests can check what a parent sees when the app breaks. `faces=URL,…` times the face
//! matcher instead (see [`faces`]); `lm=URL` runs a language model instead (see [`complete`]).

use leptos::prelude::*;
use protocol::{Backend, Event, ModelSource, Request};
use serde_json::{Value, json};

use crate::engine::EngineWorker;

#[component]
pub fn Bench() -> impl IntoView {
    let (status, set_status) = signal(String::from("starting the engine…"));
    let (result, set_result) = signal(String::new());
    let (drawing, set_drawing) = signal(None::<u32>);
    let asks_for_panic = web_sys::window()
        .and_then(|window| window.location().search().ok())
        .is_some_and(|search| search.contains("panic=1"));
    if asks_for_panic {
        leptos::task::spawn_local(async { panic!("the bench page was asked to panic") });
    }
    leptos::task::spawn_local(async move {
        let outcome = run(set_status, set_drawing)
            .await
            .unwrap_or_else(|error| json!({ "error": error }));
        set_drawing.set(None);
        set_status.set("done".into());
        set_result.set(outcome.to_string());
    });
    view! {
        <header class="page-header">
            <h1>"Engine bench"</h1>
        </header>
        <p data-testid="bench-status" aria-live="polite">{status}</p>
        <Show when=move || drawing.get().is_some()>
            <button
                class="button"
                data-testid="bench-cancel"
                on:click=move |_| {
                    if let Some(id) = drawing.get_untracked() {
                        EngineWorker::cancel(id);
                    }
                }
            >
                "Cancel"
            </button>
        </Show>
        <pre id="result" class="bench-result">{result}</pre>
    }
}

/// `lm=URL`: continues `prompt` with a language model (base URL or `opfs:` folder; `lm_file`:
/// a GGUF file in it, else a transformers folder) for `max_tokens` (default 16), `rounds` times
/// (default 1; the first also loads it), on `backend` with `dtype`; sampling from `temperature`,
/// `top_p`, `top_k`, `repetition_penalty`, `seed` (greedy without a temperature). Writes each
/// round's ids, text, the tokens as they streamed, timings and memory.
async fn complete(
    params: &web_sys::UrlSearchParams,
    model: String,
    set_status: WriteSignal<String>,
    set_drawing: WriteSignal<Option<u32>>,
) -> Result<Value, String> {
    let number = |name: &str, default: f64| number_param(params, name, default);
    let backend = backend_param(params)?;
    let precision = params
        .get("dtype")
        .map(|name| {
            protocol::Precision::parse(&name)
                .ok_or_else(|| format!("parameter `dtype`: `{name}` is not f16 or f32"))
        })
        .transpose()?;
    let sampling = protocol::Sampling {
        temperature: params
            .get("temperature")
            .map(|value| value.parse::<f32>())
            .transpose()
            .map_err(|_| "parameter `temperature` is not a number".to_owned())?,
        top_p: number("top_p", 1.0)? as f32,
        top_k: number("top_k", 0.0)? as usize,
        repetition_penalty: number("repetition_penalty", 1.0)? as f32,
        seed: number("seed", 0.0)? as u64,
    };
    let engine = EngineWorker::get()?;
    let mut rounds = Vec::new();
    for round in 0..number("rounds", 1.0)?.max(1.0) as usize {
        set_status.set(format!("writing, round {}…", round + 1));
        let id = engine.next_id();
        set_drawing.set(Some(id));
        let request = Request::Complete {
            id,
            source: model_source(model.clone()),
            file: params.get("lm_file"),
            backend,
            precision,
            prompt: params
                .get("prompt")
                .unwrap_or_else(|| "Once upon a time".into()),
            max_tokens: number("max_tokens", 16.0)? as usize,
            sampling: sampling.clone(),
        };
        let streamed = std::cell::RefCell::new((Vec::new(), String::new()));
        let (done, _) = engine
            .call(id, &request, |event| {
                if let Event::TokenWritten { token, text, .. } = event {
                    let mut streamed = streamed.borrow_mut();
                    streamed.0.push(*token);
                    streamed.1.push_str(text);
                    set_status.set(format!("writing: {} tokens", streamed.0.len()));
                }
            })
            .await?;
        let Event::Completed { result, .. } = done else {
            return Err(format!("unexpected answer to writing: {done:?}"));
        };
        let (streamed_ids, streamed_text) = streamed.into_inner();
        let generated = result.ids.len().saturating_sub(1) as f64;
        rounds.push(json!({
            "backend": result.device.backend,
            "adapter": result.device.adapter,
            "precision": result.device.precision.name(),
            "ids": result.ids,
            "text": result.text,
            "streamed_ids": streamed_ids,
            "streamed_text": streamed_text,
            "stopped": result.stopped,
            "prompt_tokens": result.prompt_tokens,
            "load_ms": result.load_ms,
            "prompt_ms": result.prompt_ms,
            "generation_ms": result.generation_ms,
            "prompt_tokens_per_second": result.prompt_tokens as f64 / (result.prompt_ms / 1000.0),
            "tokens_per_second": generated / (result.generation_ms / 1000.0),
            "wasm_heap_peak_bytes": result.wasm_heap_bytes,
            "gpu_memory": result.gpu_memory.map(|memory| json!({ "reserved_bytes": memory.reserved_bytes })),
        }));
    }
    Ok(json!({ "rounds": rounds }))
}

/// `lm=URL&idea=TEXT`: the story writer with that model (`lm_file` as above) writes `pages`
/// (default 6) for `child` (default Mia, `pronouns` she/he/they), `rounds` times from `seed`
/// (each round the next seed; the first also loads the model), on `backend`. Writes each round's
/// story, pieces rewritten, tokens written and read, timings and memory.
async fn write_story(
    params: &web_sys::UrlSearchParams,
    model: String,
    idea: String,
    set_status: WriteSignal<String>,
    set_drawing: WriteSignal<Option<u32>>,
) -> Result<Value, String> {
    let number = |name: &str, default: f64| number_param(params, name, default);
    let backend = backend_param(params)?;
    let idea = stories::writer::StoryIdea {
        idea,
        child: stories::Child {
            name: params.get("child").unwrap_or_else(|| "Mia".into()),
            pronouns: stories::Pronouns::from_key(
                &params.get("pronouns").unwrap_or_else(|| "she".into()),
            ),
            companion: String::new(),
        },
        pages: number("pages", 6.0)? as usize,
    };
    let engine = EngineWorker::get()?;
    let mut rounds = Vec::new();
    let seed = number("seed", 0.0)? as u64;
    for round in 0..number("rounds", 1.0)?.max(1.0) as usize {
        set_status.set(format!("writing a story, round {}…", round + 1));
        let id = engine.next_id();
        set_drawing.set(Some(id));
        let request = Request::WriteStory {
            id,
            source: model_source(model.clone()),
            file: params.get("lm_file"),
            backend,
            precision: None,
            idea: idea.clone(),
            seed: seed + round as u64,
        };
        let (done, _) = engine.call(id, &request, |_| {}).await?;
        let Event::StoryWritten { result, .. } = done else {
            return Err(format!("unexpected answer to writing: {done:?}"));
        };
        rounds.push(json!({
            "backend": result.device.backend,
            "adapter": result.device.adapter,
            "precision": result.device.precision.name(),
            "story": result.story,
            "rewrites": result.rewrites,
            "tokens_written": result.tokens_written,
            "tokens_read": result.tokens_read,
            "load_ms": result.load_ms,
            "write_ms": result.write_ms,
            "wasm_heap_peak_bytes": result.wasm_heap_bytes,
            "gpu_memory": result.gpu_memory.map(|memory| json!({ "reserved_bytes": memory.reserved_bytes })),
        }));
    }
    Ok(json!({ "rounds": rounds }))
}

/// The `backend` parameter (default `webgpu`).
fn backend_param(params: &web_sys::UrlSearchParams) -> Result<Backend, String> {
    let name = params.get("backend").unwrap_or_else(|| "webgpu".into());
    Backend::parse(&name)
        .ok_or_else(|| format!("parameter `backend`: `{name}` is not webgpu or cpu"))
}

/// `faces=URL,URL…`: finds and describes the faces in each picture, `rounds` times (the first
/// also loads the face models), on `backend` (`webgpu`, `cpu`; default `webgpu`). Writes
/// `{"rounds_ms": [...], "pictures": [[{x, y, width, height, confidence, descriptor}]]}`.
async fn faces(
    params: &web_sys::UrlSearchParams,
    pictures: String,
    set_status: WriteSignal<String>,
) -> Result<Value, String> {
    let backend = backend_param(params)?;
    let rounds = number_param(params, "rounds", 3.0)?.max(1.0) as usize;
    let pictures: Vec<String> = pictures.split(',').map(str::to_owned).collect();
    let engine = EngineWorker::get()?;
    let performance = web_sys::window()
        .and_then(|window| window.performance())
        .ok_or("no performance clock")?;
    let mut rounds_ms = Vec::new();
    let mut found = Vec::new();
    for round in 0..rounds {
        set_status.set(format!(
            "looking for faces, round {} of {rounds}…",
            round + 1
        ));
        let id = engine.next_id();
        let request = Request::FindFaces {
            id,
            pictures: pictures.clone(),
            backend: Some(backend),
            describe: true,
        };
        let started = performance.now();
        let (event, _) = engine.call(id, &request, |_| {}).await?;
        rounds_ms.push(performance.now() - started);
        if let Event::FacesFound { pictures, .. } = event {
            found = pictures;
        }
    }
    Ok(json!({ "rounds_ms": rounds_ms, "pictures": found }))
}

async fn run(
    set_status: WriteSignal<String>,
    set_drawing: WriteSignal<Option<u32>>,
) -> Result<Value, String> {
    let params = web_sys::UrlSearchParams::new_with_str(
        &web_sys::window()
            .expect("a window")
            .location()
            .search()
            .unwrap_or_default(),
    )
    .map_err(|_| "unreadable query string".to_owned())?;
    let text = |name: &str| params.get(name);
    if let Some(model) = text("lm")
        && let Some(idea) = text("idea")
    {
        return write_story(&params, model, idea, set_status, set_drawing).await;
    }
    if let Some(model) = text("lm") {
        return complete(&params, model, set_status, set_drawing).await;
    }
    let number = |name: &str, default: f64| number_param(&params, name, default);
    if let Some(pictures) = text("faces") {
        return faces(&params, pictures, set_status).await;
    }
    let model = text("model").ok_or("parameter `model` (a diffusers folder's URL) is required")?;
    let backend_name = text("backend").unwrap_or_else(|| "webgpu".into());
    let backend = Backend::parse(&backend_name)
        .ok_or_else(|| format!("parameter `backend`: `{backend_name}` is not webgpu or cpu"))?;
    // `limits=default`: WebGPU with only its default limits, on adapters that grant more.
    let backend = match (backend, text("limits").as_deref()) {
        (_, None | Some("adapter")) => backend,
        (Backend::Webgpu, Some("default")) => Backend::WebgpuDefaultLimits,
        (_, Some(other)) => {
            return Err(format!(
                "parameter `limits`: `{other}` is not `default` or `adapter` (and needs backend=webgpu)"
            ));
        }
    };
    // `dtype=f16|f32`; without it the engine chooses (f16 where the GPU computes in it).
    let precision = text("dtype")
        .map(|name| {
            protocol::Precision::parse(&name)
                .ok_or_else(|| format!("parameter `dtype`: `{name}` is not f16 or f32"))
        })
        .transpose()?;
    let engine = EngineWorker::get()?;
    let now = || {
        web_sys::window()
            .and_then(|window| window.performance())
            .map_or(0.0, |performance| performance.now())
    };
    let started = now();

    if let Some(photos) = text("photos") {
        return train(
            &engine,
            &params,
            model,
            (backend, precision),
            photos,
            set_status,
            set_drawing,
        )
        .await;
    }

    // `estimate=1`: first the estimate the Models screen shows (configs counted over rates
    // measured now), reported beside the measured times.
    let estimated = if text("estimate").is_some() {
        set_status.set("estimating…".into());
        let id = engine.next_id();
        let stored = text("stored").unwrap_or_else(|| "f16".into());
        let request = Request::Estimate {
            id,
            source: model_source(model.clone()),
            decoder: text("decoder").map(model_source),
            backend,
            precision,
            stored: protocol::Precision::parse(&stored)
                .ok_or_else(|| format!("parameter `stored`: `{stored}` is not f16 or f32"))?,
            picture: protocol::PictureWork {
                width: number("width", 512.0)? as usize,
                height: number("height", 512.0)? as usize,
                steps: number("steps", 1.0)? as usize,
                guidance: number("guidance", 0.0)?,
            },
            avatar: protocol::AvatarWork {
                resolution: number("resolution", 512.0)? as usize,
                steps: number("avatar_steps", 300.0)? as usize,
                photos: 5,
            },
            device_memory_bytes: None,
            speed: None,
        };
        let started = now();
        let (answer, _) = engine.call(id, &request, |_| {}).await?;
        let Event::Estimated {
            speed, estimate, ..
        } = answer
        else {
            return Err(format!("unexpected answer to estimating: {answer:?}"));
        };
        Some(json!({ "speed": speed, "estimate": estimate, "ms": now() - started }))
    } else {
        None
    };

    set_status.set("loading the model…".into());
    let load_id = engine.next_id();
    let load = Request::Load {
        id: load_id,
        source: model_source(model),
        decoder: text("decoder").map(model_source),
        backend,
        precision,
        embeddings: text("embedding").into_iter().collect(),
        loras: match text("lora") {
            Some(url) => vec![protocol::LoraSource {
                url,
                scale: number("lora_scale", 1.0)?,
            }],
            None => Vec::new(),
        },
    };
    let (loaded, _) = engine
        .call(load_id, &load, |event| {
            if let Event::LoadProgress { done, total, .. } = event {
                set_status.set(format!(
                    "loading the model… {} of {} MB",
                    done >> 20,
                    total >> 20
                ));
            }
        })
        .await?;
    let Event::Loaded {
        device,
        load_ms,
        wasm_heap_bytes,
        ..
    } = loaded
    else {
        return Err(format!("unexpected answer to loading: {loaded:?}"));
    };

    if text("load_only").is_some() {
        // Memory benchmarks: load, report, draw nothing.
        return Ok(json!({
            "backend": device.backend,
            "adapter": device.adapter,
            "f16": device.f16,
            "precision": device.precision.name(),
            "fallback_reason": device.fallback_reason,
            "timings_ms": { "load": load_ms, "total": now() - started },
            "wasm_heap_peak_bytes": wasm_heap_bytes,
        }));
    }

    let request = protocol::Generate {
        prompt: text("prompt").unwrap_or_default(),
        negative_prompt: text("negative").unwrap_or_default(),
        steps: number("steps", 1.0)? as usize,
        guidance: number("guidance", 0.0)?,
        width: number("width", 512.0)? as usize,
        height: number("height", 512.0)? as usize,
        seed: number("seed", 0.0)? as u64,
        scheduler: text("scheduler"),
        noise_url: text("noise"),
        return_latents: true,
        likeness_of: Vec::new(),
    };
    // `warmup=N`: draw N times first, unreported, so the timings show compiled kernels.
    for round in 0..number("warmup", 0.0)? as usize {
        set_status.set(format!("warming up ({})…", round + 1));
        let id = engine.next_id();
        let warmup = Request::Generate {
            id,
            request: request.clone(),
        };
        engine.call(id, &warmup, |_| {}).await?;
    }
    set_status.set("drawing…".into());
    let generate_id = engine.next_id();
    let generate = Request::Generate {
        id: generate_id,
        request,
    };
    set_drawing.set(Some(generate_id));
    let (generated, _png) = engine
        .call(generate_id, &generate, |event| {
            if let Event::Step { step, steps, .. } = event {
                set_status.set(format!("step {step} of {steps}"));
            }
        })
        .await?;
    if let Event::Cancelled { .. } = generated {
        return Err("cancelled".into());
    }
    let Event::Generated { result, .. } = generated else {
        return Err(format!("unexpected answer to drawing: {generated:?}"));
    };
    Ok(json!({
        "backend": device.backend,
        "adapter": device.adapter,
        // Whether the adapter offers shader-f16; `precision` is what the engine computes in.
        "f16": device.f16,
        "precision": device.precision.name(),
        "fallback_reason": device.fallback_reason,
        "timings_ms": {
            "load": load_ms,
            "text": result.timings.text,
            "unet": result.timings.unet,
            "decode": result.timings.decode,
            "total": now() - started,
        },
        "wasm_heap_peak_bytes": result.wasm_heap_bytes,
        "gpu_memory": result.gpu_memory.map(|memory| json!({
            "reserved_bytes": memory.reserved_bytes,
        })),
        "max_binding_bytes": device.max_binding_bytes,
        "estimated": estimated,
        "latents": { "shape": result.latent_shape, "data": result.latents },
    }))
}

/// A URL, or `opfs:{folder}` for a model in the on-device store.
fn model_source(text: String) -> ModelSource {
    match text.strip_prefix("opfs:") {
        Some(folder) => ModelSource::Stored {
            folder: folder.to_owned(),
        },
        None => ModelSource::Url { base: text },
    }
}

/// Training mode (`photos=URL,URL,…`): trains an avatar in the worker and reports each step's
/// loss, the step it resumed from (a checkpoint in the store) and the paired evaluation loss.
/// Parameters: `token`, `init_words`, `vectors`, `steps`, `lr`, `resolution`, `seed`,
/// `checkpoint_every`, `preview_every`, and `decoder` for the previews.
async fn train(
    engine: &EngineWorker,
    params: &web_sys::UrlSearchParams,
    model: String,
    (backend, precision): (Backend, Option<protocol::Precision>),
    photos: String,
    set_status: WriteSignal<String>,
    set_drawing: WriteSignal<Option<u32>>,
) -> Result<Value, String> {
    let number = |name: &str, default: f64| number_param(params, name, default);
    let training = protocol::Training {
        photos: photos.split(',').map(str::to_owned).collect(),
        token: params.get("token").unwrap_or_else(|| "<kid>".into()),
        init_words: params
            .get("init_words")
            .unwrap_or_else(|| "toddler".into())
            .split(',')
            .map(|word| word.trim().to_owned())
            .collect(),
        vectors: number("vectors", 2.0)? as usize,
        steps: number("steps", 10.0)? as usize,
        learning_rate: number("lr", 5e-3)?,
        resolution: number("resolution", 512.0)? as usize,
        seed: number("seed", 0.0)? as u64,
        checkpoint_every: number("checkpoint_every", 50.0)? as usize,
        preview_every: number("preview_every", 0.0)? as usize,
        crops: Vec::new(),
        gradient_checkpointing: params
            .get("gradient_checkpointing")
            .map(|value| value == "true"),
        lora_rank: number("lora_rank", 0.0)? as usize,
        likeness: params.get("likeness").is_some_and(|value| value == "1"),
    };
    let id = engine.next_id();
    set_drawing.set(Some(id));
    set_status.set("preparing the photos…".into());
    let steps = std::cell::RefCell::new(Vec::new());
    let previews = std::cell::RefCell::new(Vec::new());
    let request = Request::TrainAvatar {
        id,
        source: model_source(model),
        decoder: params.get("decoder").map(model_source),
        backend,
        precision,
        training,
    };
    let (done, file) = engine
        .call(id, &request, |event| {
            if let Event::AvatarPreview { step, .. } = event {
                previews.borrow_mut().push(*step);
            }
            if let Event::TrainStep {
                step,
                steps: total,
                loss,
                seconds,
                ..
            } = event
            {
                set_status.set(format!("training step {step} of {total}"));
                steps
                    .borrow_mut()
                    .push(json!({ "step": step, "loss": loss, "seconds": seconds }));
            }
        })
        .await?;
    let Event::AvatarTrained {
        device,
        eval_loss_before,
        eval_loss_after,
        resumed_from,
        embedding_bytes,
        wasm_heap_bytes,
        gpu_memory,
        ..
    } = done
    else {
        return Err(if matches!(done, Event::Cancelled { .. }) {
            "cancelled".into()
        } else {
            format!("unexpected answer to training: {done:?}")
        });
    };
    Ok(json!({
        "backend": device.backend,
        "adapter": device.adapter,
        "f16": device.f16,
        "precision": device.precision.name(),
        "steps": steps.into_inner(),
        "previews": previews.into_inner(),
        "resumed_from": resumed_from,
        "eval_loss_before": eval_loss_before,
        "eval_loss_after": eval_loss_after,
        "wasm_heap_peak_bytes": wasm_heap_bytes,
        "gpu_memory": gpu_memory.map(|memory| json!({ "reserved_bytes": memory.reserved_bytes })),
        "embedding_bytes": embedding_bytes.or(file.as_ref().map(Vec::len)).unwrap_or(0),
        "lora_bytes": embedding_bytes.map_or(0, |length| file.map_or(0, |file| file.len() - length)),
    }))
}

/// A numeric URL parameter, `default` when absent; a parameter that is not a number is an error.
fn number_param(
    params: &web_sys::UrlSearchParams,
    name: &str,
    default: f64,
) -> Result<f64, String> {
    match params.get(name) {
        Some(value) => value
            .parse()
            .map_err(|_| format!("parameter `{name}`: `{value}` is not a number")),
        None => Ok(default),
    }
}
