//! What the worker keeps between requests: the loaded model, the WebGPU set-up, the requests
//! cancelled so far, the face models and the story writer's language model.

use std::collections::HashSet;
use std::rc::Rc;

use burn::tensor::Device;
use protocol::DeviceInfo;

use crate::faces::FaceModels;
use crate::pipelines::stable_diffusion::StableDiffusion;
use crate::pipelines::text_generation::LanguageModel;

#[derive(Default)]
pub(crate) struct State {
    pub(crate) model: Option<Rc<StableDiffusion>>,
    /// The outcome of setting up WebGPU, tried once per worker (burn registers its runtime
    /// globally): the device, or why there is none.
    pub(crate) gpu: Option<std::result::Result<(Device, DeviceInfo), String>>,
    pub(crate) cancelled: HashSet<u32>,
    /// The face models, per device they were loaded on (`Debug` of the device).
    pub(crate) faces: Vec<(String, Rc<FaceModels>)>,
    /// The story writer's language model, with what identifies it (`web::writer::model_key`).
    pub(crate) language_model: Option<(String, Rc<LanguageModel>)>,
}
