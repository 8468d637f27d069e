//! Avatar training in the worker: photos from URLs or the store, the engine's training loop
//! with a step event each step, a checkpoint in the store every K steps (a reloaded tab resumes
//! from it), cancel between steps.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use burn::tensor::Device;
use protocol::{DeviceInfo, Event, FaceReference, ModelSource};
use web_time::Instant;

use super::files::{SourceFiles, read_source, store_read, store_remove, store_write};
use super::state::State;
use super::{encode_png, post};
use crate::error::{EngineError, Result};
use crate::faces;
use crate::loaders::files::AsComponent;
use crate::photos::{Crop, decode};
use crate::pipelines::stable_diffusion::{GenerationRequest, StableDiffusion};
use crate::training::avatar::{
    AvatarInfo, Frozen, Run, TrainingConfig, embedding_file, photo_latents, start,
};

const CHECKPOINT: &str = "checkpoint.safetensors";

/// Trains and returns the final event with the avatar file.
pub(crate) async fn train(
    state: &Rc<RefCell<State>>,
    id: u32,
    source: &ModelSource,
    decoder: Option<&ModelSource>,
    (device, info): (Device, DeviceInfo),
    settings: protocol::Training,
) -> Result<(Event, Vec<u8>)> {
    let drawing_device = device.clone();
    let device = match settings.checkpoints_gradients() {
        true => device.autodiff().gradient_checkpointing(),
        false => device.autodiff(),
    };
    let mut model = StableDiffusion::load(&SourceFiles::open(source).await?, None, &device)
        .await?
        .frozen();

    let mut config = TrainingConfig::new(&settings.token);
    config.init_words = settings.init_words.clone();
    config.vectors = settings.vectors.max(1);
    config.steps = settings.steps;
    config.learning_rate = settings.learning_rate;
    config.seed = settings.seed;
    config.lora_rank = settings.lora_rank;
    let mut latents = Vec::new();
    let mut photos = Vec::new();
    for (index, photo) in settings.photos.iter().enumerate() {
        let picture = decode(&read_source(photo).await?, Path::new(photo))?;
        if settings.likeness {
            photos.push(picture.to_rgb8());
        }
        let chosen = settings.crops.get(index).copied().flatten();
        let crop = Crop::chosen_or_default(chosen, &picture);
        latents.extend(photo_latents(
            &model.vae,
            model.scaling_factor(),
            &picture,
            crop,
            settings.resolution,
            &device,
        ));
    }
    // The likeness score's reference: the photos' faces (on the plain device, see `web::faces`).
    let (face_reference, photos_without_face, preview_scoring) = if settings.likeness {
        let models = super::faces::for_scoring(state, &drawing_device).await?;
        let (reference, without) = faces::reference_of(&models, &photos).await?;
        let scoring = reference.clone().map(|descriptor| {
            let reference = FaceReference {
                token: config.token.clone(),
                descriptor,
            };
            (models, [reference])
        });
        (reference, without, scoring)
    } else {
        (None, Vec::new(), None)
    };
    // The photos are encoded; previews can now be drawn with a fast decoder.
    if let Some(decoder) = decoder {
        let files = AsComponent::vae(SourceFiles::open(decoder).await?);
        model.replace_decoder(&files).await?;
    }
    let folder = protocol::store::avatar_folder(&config.token);
    let folder = [protocol::store::AVATARS_DIR, folder.as_str()];
    let checkpoint = store_read(&folder, CHECKPOINT).await?;
    let Run {
        mut training,
        evaluation,
        eval_loss_before: before,
    } = start(
        &mut model,
        config.clone(),
        latents,
        checkpoint.as_deref(),
        &device,
    )
    .await?;
    let resumed_from = training.step;
    let started = Instant::now();
    while training.step < config.steps {
        let loss = training.step(&Frozen::of(&model)).await?;
        post(
            &Event::TrainStep {
                id,
                step: training.step,
                steps: config.steps,
                loss,
                seconds: started.elapsed().as_secs_f64(),
            },
            None,
        );
        if training
            .step
            .is_multiple_of(settings.checkpoint_every.max(1))
        {
            store_write(&folder, CHECKPOINT, &training.checkpoint().await?).await?;
        }
        if settings.preview_every > 0 && training.step.is_multiple_of(settings.preview_every) {
            // The avatar as it is now, drawn the way a book page will draw it.
            model.text.placeholder_vectors = Some(training.current_vectors());
            model.adapted_unet = training.merged_unet(&model.unet);
            let request = GenerationRequest {
                prompt: format!("an illustration of {}", config.token),
                negative_prompt: String::new(),
                steps: 1,
                guidance: 0.0,
                width: settings.resolution,
                height: settings.resolution,
                seed: config.seed,
                scheduler: None,
                noise: None,
            };
            let preview = model.generate(&request, |_| true).await;
            model.text.placeholder_vectors = None;
            model.adapted_unet = None;
            let preview = preview?;
            let likeness = match &preview_scoring {
                Some((models, reference)) => super::faces::likeness(models, &preview, reference)
                    .await?
                    .scores
                    .first()
                    .copied(),
                None => None,
            };
            let png = encode_png(&preview.rgb, preview.width, preview.height)?;
            post(
                &Event::AvatarPreview {
                    id,
                    step: training.step,
                    likeness,
                },
                Some(png),
            );
        }
        crate::runtime::yield_now().await;
        if state.borrow().cancelled.contains(&id) {
            return Err(EngineError::Cancelled);
        }
    }
    let after = training.evaluate(&Frozen::of(&model), &evaluation).await?;
    let mut file = embedding_file(
        &config.token,
        &training.vectors().await?,
        &AvatarInfo {
            model: match source {
                ModelSource::Url { base } => base.clone(),
                ModelSource::Stored { folder } => folder.clone(),
            },
            steps: config.steps,
            resolution: settings.resolution,
        },
    )?;
    let embedding_bytes = match &training.lora {
        Some(lora) => {
            let length = file.len();
            let metadata = std::collections::HashMap::from([
                ("token".to_owned(), config.token.clone()),
                ("steps".to_owned(), config.steps.to_string()),
            ]);
            file.extend(lora.file(metadata).await?);
            Some(length)
        }
        None => None,
    };
    // Done: the app keeps the avatar file; the checkpoint has served its purpose.
    store_remove(&folder, CHECKPOINT).await?;
    Ok((
        Event::AvatarTrained {
            id,
            device: info,
            eval_loss_before: before,
            eval_loss_after: after,
            resumed_from,
            embedding_bytes,
            face_reference,
            photos_without_face,
            wasm_heap_bytes: super::wasm_heap_bytes(),
            gpu_memory: super::gpu_memory(&drawing_device),
        },
        file,
    ))
}
