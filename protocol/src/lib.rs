//! The typed messages between the app (main thread) and the engine worker.
//!
//! Both sides depend on this crate and nothing else of each other: the app's bundle never links
//! the engine. A message travels as JSON text in `postMessage`; a picture travels beside it as
//! a transferred byte array (see [`Envelope`]).

use serde::{Deserialize, Serialize};

/// Where a worker finds a diffusers folder's files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSource {
    /// An HTTP(S) base URL: `{base}/unet/config.json` and so on. Range requests stream weights.
    Url { base: String },
    /// A model in the on-device store (OPFS), by its folder name (see [`store`]).
    Stored { folder: String },
}

/// Which compute backend to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// WebGPU when the browser has an adapter, else the CPU (and the parent is told).
    Auto,
    Webgpu,
    /// WebGPU using only WebGPU's default memory limits (128 MiB per binding, 256 MiB per
    /// buffer), whatever the adapter grants: the bench page's `limits=default`, which proves the
    /// engine on the limits every WebGPU device has. A worker keeps the limits of its first
    /// WebGPU request.
    WebgpuDefaultLimits,
    Cpu,
}

impl Backend {
    pub fn parse(name: &str) -> Option<Backend> {
        match name {
            "auto" => Some(Backend::Auto),
            "webgpu" | "gpu" => Some(Backend::Webgpu),
            "webgpu_default_limits" => Some(Backend::WebgpuDefaultLimits),
            "cpu" => Some(Backend::Cpu),
            _ => None,
        }
    }
}

/// The float type the engine holds weights and computes in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Half precision: half the memory and faster, on a GPU with `shader-f16`.
    F16,
    #[default]
    F32,
}

impl Precision {
    pub fn parse(name: &str) -> Option<Precision> {
        match name {
            "f16" => Some(Precision::F16),
            "f32" => Some(Precision::F32),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F16 => "f16",
            Precision::F32 => "f32",
        }
    }
}

/// One picture's settings; the same request and seed give the same picture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Generate {
    pub prompt: String,
    #[serde(default)]
    pub negative_prompt: String,
    pub steps: usize,
    pub guidance: f64,
    pub width: usize,
    pub height: usize,
    pub seed: u64,
    /// A scheduler name (`euler`, `euler-ancestral`, `ddim`, `lcm`); the model's own when absent.
    #[serde(default)]
    pub scheduler: Option<String>,
    /// URL of a safetensors file with an f32 tensor `noise` of shape `[1, 4, h/8, w/8]`.
    #[serde(default)]
    pub noise_url: Option<String>,
    /// Return the final latents' values (the bench page and the parity tests want them).
    #[serde(default)]
    pub return_latents: bool,
    /// Score the picture's faces against these references (the avatars on the page): the
    /// answer's [`Generated::likeness`] has one score per reference. Empty: no scoring.
    #[serde(default)]
    pub likeness_of: Vec<FaceReference>,
}

/// An avatar's face as the likeness score knows it: the mean descriptor of its photos' faces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaceReference {
    /// The avatar's placeholder, e.g. `<mia>`.
    pub token: String,
    pub descriptor: Vec<f32>,
}

/// How much a picture looks like the avatars asked about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Likeness {
    /// Faces the detector found in the picture (0: a stylised or faceless picture; no score).
    pub faces: usize,
    /// Per reference, in the order asked: the best face's similarity to it (cosine of the
    /// descriptors, -1 to 1; it ranks pictures, it does not verify anyone). Empty when no face.
    pub scores: Vec<f64>,
}

/// A face the detector found: its box as fractions of the picture, and its confidence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FoundFace {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    pub confidence: f64,
    /// With [`Request::FindFaces`]'s `describe`: the face's 128 numbers.
    #[serde(default)]
    pub descriptor: Vec<f32>,
}

/// A LoRA file for [`Request::Load`]: a URL or `opfs:{path}`, and its strength (1: as trained).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraSource {
    pub url: String,
    pub scale: f64,
}

/// The LoRA rank of an avatar with the "stronger likeness" (pivotal tuning): the rank diffusers'
/// LoRA scripts default to; 3.3 MB for SD-Turbo (docs/benchmarks.md).
pub const STRONGER_LIKENESS_RANK: usize = 4;

/// The side avatars learn at on the processor (no WebGPU): in f16, SD-Turbo's training step
/// needs 3.4 GB there at 256², within wasm32's 4 GiB, but 8.3 GB at 512² (docs/benchmarks.md).
pub const CPU_AVATAR_RESOLUTION: usize = 256;

/// What a few seconds of kernels measured on a device ([`Request::Estimate`]); the app keeps it
/// per device, so the measurement runs once.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceSpeed {
    /// Arithmetic, in the type pictures are computed in (matmuls and convolutions).
    pub flops_per_second: f64,
    /// The same for a product of few rows (a prompt's 77 tokens).
    #[serde(default)]
    pub narrow_flops_per_second: Option<f64>,
    /// Memory traffic of a large elementwise kernel.
    pub bytes_per_second: f64,
    /// What one small kernel costs, launch and all.
    pub seconds_per_kernel: f64,
    /// On the processor, where avatars learn in f16: the f16 matmul rate.
    #[serde(default)]
    pub half_flops_per_second: Option<f64>,
}

/// A picture as the app draws it, for [`Request::Estimate`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PictureWork {
    pub width: usize,
    pub height: usize,
    pub steps: usize,
    pub guidance: f64,
}

/// An avatar as the app learns it, for [`Request::Estimate`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AvatarWork {
    /// The side asked for; the processor learns at [`CPU_AVATAR_RESOLUTION`] at most.
    pub resolution: usize,
    pub steps: usize,
    pub photos: usize,
}

/// What a model will take on this device ([`Event::Estimated`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Seconds for one picture at the app's settings.
    pub picture_seconds: f64,
    /// Seconds to learn one avatar.
    pub avatar_seconds: f64,
    /// Seconds of one training step (for benchmarks beside a measured step).
    #[serde(default)]
    pub avatar_step_seconds: f64,
    /// Memory a picture needs: weights as held, and the activations at their peak.
    pub picture_memory_bytes: u64,
    /// Memory learning an avatar needs.
    pub avatar_memory_bytes: u64,
    /// The side an avatar learns at on this device.
    pub avatar_resolution: usize,
    /// The largest single buffer (a weight; activations are split to fit a binding).
    pub largest_buffer_bytes: u64,
    /// What the path can give: wasm32's 4 GiB on the processor (or less where the device has
    /// less); on a GPU, the device's memory when the browser tells it; `None`: unknown.
    pub memory_limit_bytes: Option<u64>,
}

impl Estimate {
    /// Whether a picture fits the memory this path has (unknown memory: assumed to).
    pub fn draws(&self) -> bool {
        self.memory_limit_bytes
            .is_none_or(|limit| self.picture_memory_bytes <= limit)
    }

    /// Whether learning an avatar fits.
    pub fn learns(&self) -> bool {
        self.memory_limit_bytes
            .is_none_or(|limit| self.avatar_memory_bytes <= limit)
    }
}

/// App → worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Load a model, replacing the loaded one. `decoder` replaces its VAE (e.g. TAESD).
    Load {
        id: u32,
        source: ModelSource,
        #[serde(default)]
        decoder: Option<ModelSource>,
        backend: Backend,
        /// `None`: f16 where the GPU computes in it, else f32. A worker's GPU keeps the
        /// precision of its first model (burn fixes it per device); the app starts a fresh
        /// worker when the parent changes it.
        #[serde(default)]
        precision: Option<Precision>,
        /// Textual-inversion embeddings to add: URLs, or `opfs:{path}` in the store.
        #[serde(default)]
        embeddings: Vec<String>,
        /// LoRA files to draw with (an avatar's, a book style's), each at its scale.
        #[serde(default)]
        loras: Vec<LoraSource>,
    },
    Generate {
        id: u32,
        request: Generate,
    },
    /// Learn an avatar (textual inversion) from photos; resumes from the avatar's checkpoint in
    /// the store when there is one. Answered by [`Event::TrainStep`]s and [`Event::AvatarTrained`]
    /// (with the embedding file's bytes beside it).
    TrainAvatar {
        id: u32,
        source: ModelSource,
        /// Draws the previews (e.g. TAESD, a repo with the decoder at its root); the photos are
        /// still encoded with the model's own VAE, whose latents the model was trained on.
        #[serde(default)]
        decoder: Option<ModelSource>,
        backend: Backend,
        /// As for [`Request::Load`]; the avatar's vectors are f32 whatever the model's type.
        #[serde(default)]
        precision: Option<Precision>,
        training: Training,
    },
    /// Look for faces in pictures (URLs, `blob:` URLs or `opfs:{path}`): answered by
    /// [`Event::FacesFound`], so a parent hears which photos show no face before training.
    FindFaces {
        id: u32,
        pictures: Vec<String>,
        /// `None` (the app's photo check): the CPU, which cannot fix the GPU's float type
        /// before the first model does. The bench page asks for a backend.
        #[serde(default)]
        backend: Option<Backend>,
        /// Also describe each face ([`FoundFace::descriptor`]).
        #[serde(default)]
        describe: bool,
    },
    /// Check a model's small files (configs, tokenizer, scheduler) without reading weights:
    /// what the app asks before it downloads a model's gigabytes. Answered by
    /// [`Event::ModelChecked`], or [`Event::Failed`] saying what the engine cannot run.
    CheckModel {
        id: u32,
        source: ModelSource,
    },
    /// What a model will take on this device, before its weights are downloaded: its configs
    /// (a few KB) counted, over rates measured on the device — `speed` when the app kept them
    /// from an earlier measurement, else measured now (a few seconds). Answered by
    /// [`Event::Estimated`].
    Estimate {
        id: u32,
        source: ModelSource,
        /// The fast decoder pictures are drawn with, as for [`Request::Load`].
        #[serde(default)]
        decoder: Option<ModelSource>,
        backend: Backend,
        #[serde(default)]
        precision: Option<Precision>,
        /// The type the weights' files store (f16 for `*.fp16.safetensors`).
        stored: Precision,
        picture: PictureWork,
        avatar: AvatarWork,
        /// `navigator.deviceMemory` in bytes, where the browser tells it.
        #[serde(default)]
        device_memory_bytes: Option<u64>,
        #[serde(default)]
        speed: Option<DeviceSpeed>,
    },
    /// Read a file a parent imports (an avatar's embedding, a LoRA) as the engine will, before
    /// the app stores it: answered by [`Event::FileChecked`], or [`Event::Failed`] saying what
    /// is wrong with it.
    CheckFile {
        id: u32,
        /// A `blob:` URL of the file's bytes (or any URL the worker can read).
        url: String,
        /// The file's name, for the message.
        name: String,
        kind: FileKind,
    },
    /// Continue a text with a language model (the story writer's): answered by a
    /// [`Event::TokenWritten`] per token as it is written, then [`Event::Completed`] (also when
    /// cancelled: the text so far, `stopped` set). The model stays loaded for the next request
    /// with the same source, file and backend.
    Complete {
        id: u32,
        source: ModelSource,
        /// A GGUF file in `source` (its name); `None`: `source` is a transformers folder.
        #[serde(default)]
        file: Option<String>,
        backend: Backend,
        #[serde(default)]
        precision: Option<Precision>,
        /// Raw text, tokenised as the model's tokenizer does by default.
        prompt: String,
        max_tokens: usize,
        #[serde(default)]
        sampling: Sampling,
    },
    /// Write a picture book's pages from a parent's idea (the story writer): answered by
    /// [`Event::StoryDraft`]s as each piece is written, [`Event::StoryRewriting`] when a piece
    /// fails the writer's checks, then [`Event::StoryWritten`] (also when cancelled: the pages
    /// finished so far, `stopped` set). The model stays loaded as for [`Request::Complete`].
    WriteStory {
        id: u32,
        source: ModelSource,
        /// A GGUF file in `source` (its name); `None`: `source` is a transformers folder.
        #[serde(default)]
        file: Option<String>,
        backend: Backend,
        #[serde(default)]
        precision: Option<Precision>,
        idea: stories::writer::StoryIdea,
        #[serde(default)]
        seed: u64,
    },
    /// Stop the generation, training or writing `id` after its current step.
    Cancel {
        id: u32,
    },
}

/// How a language model chooses each token; the default is greedy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// `None`: greedy.
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default = "one")]
    pub top_p: f32,
    #[serde(default)]
    pub top_k: usize,
    #[serde(default = "one")]
    pub repetition_penalty: f32,
    #[serde(default)]
    pub seed: u64,
}

fn one() -> f32 {
    1.0
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: None,
            top_p: 1.0,
            top_k: 0,
            repetition_penalty: 1.0,
            seed: 0,
        }
    }
}

/// A finished [`Request::Complete`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Completed {
    pub device: DeviceInfo,
    /// The generated ids (an end token included).
    pub ids: Vec<u32>,
    pub text: String,
    pub prompt_tokens: usize,
    /// Loading the model, when this request loaded it (0 when it was loaded already).
    pub load_ms: f64,
    pub prompt_ms: f64,
    pub generation_ms: f64,
    /// Cancelled before the end.
    pub stopped: bool,
    pub wasm_heap_bytes: u64,
    #[serde(default)]
    pub gpu_memory: Option<GpuMemory>,
}

/// A finished [`Request::WriteStory`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoryWritten {
    pub device: DeviceInfo,
    /// The child named; when stopped, the pages finished so far.
    pub story: stories::writer::WrittenStory,
    /// Pieces written again because they failed a check.
    pub rewrites: usize,
    pub tokens_written: usize,
    pub tokens_read: usize,
    /// Loading the model, when this request loaded it (0 when it was loaded already).
    pub load_ms: f64,
    pub write_ms: f64,
    pub stopped: bool,
    pub wasm_heap_bytes: u64,
    #[serde(default)]
    pub gpu_memory: Option<GpuMemory>,
}

/// What a [`Request::CheckFile`] file should be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A textual-inversion embedding (an avatar).
    Embedding,
    /// A LoRA (an avatar's stronger likeness, a book's picture style).
    Lora,
}

/// An avatar's training settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Training {
    /// Where the photos are: same-origin URLs, or `opfs:{path}` in the store.
    pub photos: Vec<String>,
    /// The placeholder, e.g. `<mia>`.
    pub token: String,
    pub init_words: Vec<String>,
    pub vectors: usize,
    pub steps: usize,
    pub learning_rate: f64,
    pub resolution: usize,
    pub seed: u64,
    /// A checkpoint goes to the store every this many steps.
    pub checkpoint_every: usize,
    /// A preview picture ("an illustration of <token>") every this many steps; 0: none.
    #[serde(default)]
    pub preview_every: usize,
    /// The parent's crop of each photo, in the order of `photos`; missing or `None`: the
    /// default square ([`PhotoCrop::centred`]).
    #[serde(default)]
    pub crops: Vec<Option<PhotoCrop>>,
    /// Recompute activations in the backward pass instead of keeping them: about 40% less
    /// training memory for about 20% more time (docs/benchmarks.md). `None`: on from 384² up,
    /// where a browser's GPU memory runs short.
    #[serde(default)]
    pub gradient_checkpointing: Option<bool>,
    /// Train a UNet LoRA of this rank with the vectors (pivotal tuning); 0: the vectors alone.
    #[serde(default)]
    pub lora_rank: usize,
    /// Describe the photos' faces (the avatar's reference for the likeness score) and score
    /// each preview against it.
    #[serde(default)]
    pub likeness: bool,
}

impl Training {
    /// Whether this training checkpoints gradients (see `gradient_checkpointing`).
    pub fn checkpoints_gradients(&self) -> bool {
        self.gradient_checkpointing
            .unwrap_or(self.resolution >= 384)
    }
}

/// A square in a photo, in fractions of it, so that it means the same on the parent's screen and
/// in the engine (which shrinks very large photos first): `left` of the width, `top` of the
/// height, `size` of the shorter side. Coordinates are of the photo as shown, with its EXIF
/// orientation applied.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhotoCrop {
    pub left: f64,
    pub top: f64,
    pub size: f64,
}

impl PhotoCrop {
    /// The smallest square a parent can make: a fifth of the shorter side.
    pub const MIN_SIZE: f64 = 0.2;

    /// The default: the largest square, centred, and nudged up on portraits (where faces sit in
    /// the upper part) — the engine's own default crop.
    pub fn centred(width: f64, height: f64) -> PhotoCrop {
        let side = width.min(height);
        let top = if height > width {
            (height - side) / 3.0
        } else {
            (height - side) / 2.0
        };
        PhotoCrop {
            left: (width - side) / 2.0 / width,
            top: top / height,
            size: 1.0,
        }
    }

    /// Moved by `dx`, `dy` (fractions of the width and height) and grown by `grow` (a fraction of
    /// the shorter side), then kept inside a `width` × `height` photo.
    pub fn adjusted(self, dx: f64, dy: f64, grow: f64, width: f64, height: f64) -> PhotoCrop {
        let shorter = width.min(height);
        let size = (self.size + grow).clamp(Self::MIN_SIZE, 1.0);
        let (span_x, span_y) = (size * shorter / width, size * shorter / height);
        PhotoCrop {
            left: (self.left + dx).clamp(0.0, 1.0 - span_x),
            top: (self.top + dy).clamp(0.0, 1.0 - span_y),
            size,
        }
    }

    /// The square's width and height as fractions of the photo's width and height.
    pub fn spans(self, width: f64, height: f64) -> (f64, f64) {
        let side = self.size * width.min(height);
        (side / width, side / height)
    }

    /// `(x, y, side)` in pixels of a `width` × `height` photo, inside it.
    pub fn in_pixels(self, width: u32, height: u32) -> (u32, u32, u32) {
        let side = ((self.size.clamp(0.0, 1.0) * f64::from(width.min(height))).round() as u32)
            .clamp(1, width.min(height).max(1));
        let x = ((self.left * f64::from(width)).round().max(0.0) as u32)
            .min(width.saturating_sub(side));
        let y = ((self.top * f64::from(height)).round().max(0.0) as u32)
            .min(height.saturating_sub(side));
        (x, y, side)
    }
}

/// The device the worker computes on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// `webgpu` or `cpu`.
    pub backend: String,
    /// The adapter's name (or `CPU`).
    pub adapter: String,
    /// Whether the adapter offers `shader-f16`.
    pub f16: bool,
    /// What the model is held and computed in on this device.
    #[serde(default)]
    pub precision: Precision,
    /// A software adapter (SwiftShader) or the CPU: no hardware parallelism.
    #[serde(default)]
    pub software: bool,
    /// Why the CPU is used when WebGPU was wanted, in words for a parent.
    #[serde(default)]
    pub fallback_reason: Option<String>,
    /// On WebGPU: the largest storage binding the device was created with (128 MiB at WebGPU's
    /// default limits; whatever the adapter grants otherwise).
    #[serde(default)]
    pub max_binding_bytes: Option<u64>,
}

/// Per-stage wall-clock times of one generation, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub text: f64,
    pub unet: Vec<f64>,
    pub decode: f64,
    pub total: f64,
}

/// What one generation produced. The PNG travels beside the message (see [`Envelope`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Generated {
    pub width: usize,
    pub height: usize,
    pub timings: Timings,
    pub wasm_heap_bytes: u64,
    /// On a GPU: what burn's allocator holds (it keeps every page it needed, so this is the
    /// peak).
    #[serde(default)]
    pub gpu_memory: Option<GpuMemory>,
    #[serde(default)]
    pub latent_shape: Vec<usize>,
    #[serde(default)]
    pub latents: Vec<f32>,
    /// Present when [`Generate::likeness_of`] asked for it.
    #[serde(default)]
    pub likeness: Option<Likeness>,
}

/// A GPU's memory as burn's allocator reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuMemory {
    pub reserved_bytes: u64,
}

/// Worker → app. Serde's default (externally tagged) form, `{"step": {...}}` or `"ready"`:
/// read without buffering each message first, its reader is a third the size of a `"type"`
/// field's in the app's module (the UI's download, docs/benchmarks.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The worker's wasm is running and takes requests.
    Ready,
    /// Bytes of weights streamed so far for load `id`.
    LoadProgress {
        id: u32,
        done: u64,
        total: u64,
    },
    Loaded {
        id: u32,
        device: DeviceInfo,
        load_ms: f64,
        /// The wasm heap's size after loading (it never shrinks: its peak so far).
        wasm_heap_bytes: u64,
    },
    Step {
        id: u32,
        step: usize,
        steps: usize,
    },
    Generated {
        id: u32,
        result: Generated,
    },
    Cancelled {
        id: u32,
    },
    /// One avatar-training step done.
    TrainStep {
        id: u32,
        step: usize,
        steps: usize,
        loss: f64,
        /// Seconds since this run started (for "time left").
        seconds: f64,
    },
    /// A preview picture (PNG, beside this event) of the avatar as it is at `step`.
    AvatarPreview {
        id: u32,
        step: usize,
        /// With [`Training::likeness`]: the preview's score against the photos (`None`: no face
        /// in the preview, or none in the photos).
        #[serde(default)]
        likeness: Option<f64>,
    },
    /// Training finished: the avatar file travels beside this event.
    AvatarTrained {
        id: u32,
        device: DeviceInfo,
        eval_loss_before: f64,
        eval_loss_after: f64,
        /// The step this run resumed from (0 for a fresh start).
        resumed_from: usize,
        /// With a LoRA, the bytes beside this event are the embedding file's first this many
        /// bytes, then the LoRA file (diffusers' format); `None`: the embedding file alone.
        #[serde(default)]
        embedding_bytes: Option<usize>,
        /// With [`Training::likeness`]: the mean descriptor of the photos' faces (`None`: no
        /// photo showed a face), and the photos (indices) in which no face was found.
        #[serde(default)]
        face_reference: Option<Vec<f32>>,
        #[serde(default)]
        photos_without_face: Vec<usize>,
        /// The wasm heap's size after training (its peak: it never shrinks).
        #[serde(default)]
        wasm_heap_bytes: u64,
        /// What burn's GPU allocator holds after training (`None` on the CPU).
        #[serde(default)]
        gpu_memory: Option<GpuMemory>,
    },
    /// The faces in each picture of [`Request::FindFaces`], most confident first.
    FacesFound {
        id: u32,
        pictures: Vec<Vec<FoundFace>>,
    },
    /// The model of [`Request::CheckModel`] is one the engine runs.
    ModelChecked {
        id: u32,
    },
    /// The answer to [`Request::Estimate`]: the device it measured, its rates, the estimate.
    Estimated {
        id: u32,
        device: DeviceInfo,
        speed: DeviceSpeed,
        estimate: Estimate,
    },
    /// The file of [`Request::CheckFile`] reads as its kind.
    FileChecked {
        id: u32,
    },
    /// One token of [`Request::Complete`] `id`: its id and the text it completes (empty while
    /// a character's bytes are still arriving).
    TokenWritten {
        id: u32,
        token: u32,
        text: String,
    },
    Completed {
        id: u32,
        result: Completed,
    },
    /// A piece of [`Request::WriteStory`] `id` as written so far (`kept`: checked and final),
    /// the child named.
    StoryDraft {
        id: u32,
        part: stories::writer::Part,
        text: String,
        kept: bool,
    },
    /// A piece failed the writer's check (`reason`) and is written again.
    StoryRewriting {
        id: u32,
        part: stories::writer::Part,
        reason: String,
    },
    StoryWritten {
        id: u32,
        result: StoryWritten,
    },
    /// Request `id` failed; `message` is written for a parent.
    Failed {
        id: u32,
        message: String,
    },
}

/// How a message travels through `postMessage`: `{ "json": <message as JSON>, "bytes"?: Uint8Array }`.
pub struct Envelope;

impl Envelope {
    pub const JSON: &'static str = "json";
    pub const BYTES: &'static str = "bytes";
}

/// Where the model store keeps things in the origin-private file system (OPFS).
pub mod store {
    /// The folder (under the OPFS root) holding one folder per model, named by [`folder_name`].
    pub const MODELS_DIR: &str = "models";

    /// A model's folder name: `owner--name--revision` (no slashes, as the hub's own cache does).
    pub fn folder_name(repo: &str, revision: &str) -> String {
        format!("{}--{revision}", repo.replace('/', "--"))
    }

    /// The folder (under the OPFS root) holding one folder per avatar.
    pub const AVATARS_DIR: &str = "avatars";

    /// The avatar file (diffusers `learned_embeds.safetensors`) in an avatar's folder.
    pub const AVATAR_FILE: &str = "learned_embeds.safetensors";

    /// An avatar's LoRA, when it has the stronger likeness (diffusers'
    /// `pytorch_lora_weights.safetensors`), beside [`AVATAR_FILE`].
    pub const AVATAR_LORA_FILE: &str = "pytorch_lora_weights.safetensors";

    /// An avatar's folder name, from its token: letters and digits kept, the rest as `_`.
    pub fn avatar_folder(token: &str) -> String {
        token
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_tagged_json() {
        let request = Request::Load {
            id: 7,
            source: ModelSource::Url {
                base: "http://127.0.0.1/models/tiny".into(),
            },
            decoder: None,
            backend: Backend::Cpu,
            precision: Some(Precision::F16),
            embeddings: vec![],
            loras: vec![LoraSource {
                url: "opfs:avatars/_mia_/pytorch_lora_weights.safetensors".into(),
                scale: 1.0,
            }],
        };
        let text = serde_json::to_string(&request).unwrap();
        assert!(text.contains(r#""type":"load""#), "{text}");
        assert!(text.contains(r#""kind":"url""#), "{text}");
        assert!(text.contains(r#""precision":"f16""#), "{text}");
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), request);
        // Written before precisions existed: the engine chooses.
        let older =
            r#"{"type":"load","id":1,"source":{"kind":"stored","folder":"m"},"backend":"auto"}"#;
        let Request::Load { precision, .. } = serde_json::from_str(older).unwrap() else {
            panic!("a load request");
        };
        assert_eq!(precision, None);
    }

    #[test]
    fn events_round_trip_as_json() {
        let events = [
            Event::Ready,
            Event::Step {
                id: 3,
                step: 1,
                steps: 4,
            },
            Event::StoryDraft {
                id: 4,
                part: stories::writer::Part::Scene(2),
                text: "Mia splashes".into(),
                kept: true,
            },
            Event::Failed {
                id: 5,
                message: "The model file is damaged.".into(),
            },
        ];
        for event in events {
            let text = serde_json::to_string(&event).unwrap();
            assert_eq!(
                serde_json::from_str::<Event>(&text).unwrap(),
                event,
                "{text}"
            );
        }
        let text = serde_json::to_string(&Event::Step {
            id: 3,
            step: 1,
            steps: 4,
        })
        .unwrap();
        assert_eq!(text, r#"{"step":{"id":3,"step":1,"steps":4}}"#);
    }

    #[test]
    fn crops_stay_inside_the_photo() {
        let (width, height) = (1200.0, 800.0);
        let crop = PhotoCrop::centred(width, height);
        assert_eq!(crop.in_pixels(1200, 800), (200, 0, 800));
        // Dragged far past the corner: stops at the edge.
        let moved = crop.adjusted(5.0, 5.0, 0.0, width, height);
        assert_eq!(moved.in_pixels(1200, 800), (400, 0, 800));
        // Shrunk below the smallest square, then moved to the bottom right.
        let small = crop.adjusted(1.0, 1.0, -2.0, width, height);
        assert_eq!(small.size, PhotoCrop::MIN_SIZE);
        assert_eq!(small.in_pixels(1200, 800), (1040, 640, 160));
        // The same fractions on the engine's shrunk copy of the photo.
        assert_eq!(small.in_pixels(600, 400), (520, 320, 80));
    }

    #[test]
    fn the_default_crop_sits_high_on_portraits() {
        let crop = PhotoCrop::centred(600.0, 900.0);
        assert_eq!(crop.in_pixels(600, 900), (0, 100, 600));
        assert_eq!(crop.spans(600.0, 900.0), (1.0, 600.0 / 900.0));
    }

    #[test]
    fn training_without_crops_still_reads() {
        let text = r#"{"photos":["a.jpg"],"token":"<kid>","init_words":["toddler"],"vectors":2,
            "steps":4,"learning_rate":0.005,"resolution":64,"seed":0,"checkpoint_every":2}"#;
        let mut training: Training = serde_json::from_str(text).unwrap();
        assert!(training.crops.is_empty());
        // Small pictures train without checkpointing, large ones with, unless asked.
        assert!(!training.checkpoints_gradients());
        training.resolution = 512;
        assert!(training.checkpoints_gradients());
        training.gradient_checkpointing = Some(false);
        assert!(!training.checkpoints_gradients());
    }

    #[test]
    fn store_folder_names_have_no_slashes() {
        assert_eq!(
            store::folder_name("stabilityai/sd-turbo", "b261bac"),
            "stabilityai--sd-turbo--b261bac"
        );
    }
}
