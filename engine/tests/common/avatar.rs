//! The avatar-gradient check against torch autograd, shared by the f32 and f16 suites.

use burn::module::Module;
use burn::tensor::{DType, Tensor, TensorData};
use engine::loaders::files::block_on;
use engine::loaders::lora::LoraFile;
use engine::models::unet_2d::UNet2DConditionModel;
use engine::pipelines::prompt::PromptEncoder;
use engine::schedulers::SchedulerConfig;
use engine::training::avatar::{Example, Frozen, denoising_loss};
use engine::training::lora::TrainableLora;

use super::{fixtures, golden_tensor, model, relative_l2};

const GOLDEN: &str = "avatar-golden.safetensors";

/// The golden avatar case's model parts, frozen, on `device` in its float type, from the weights
/// of `variant` (`Some("fp16")`: the half-precision files): the text side with the case's tokens
/// added, the UNet, the scheduler, and avatar-golden.json.
pub fn golden_case(
    device: &burn::tensor::Device,
    variant: Option<&str>,
) -> (
    PromptEncoder,
    UNet2DConditionModel,
    SchedulerConfig,
    serde_json::Value,
) {
    let files = model("tiny-sd2");
    let mut text = block_on(PromptEncoder::load(&files, variant, device)).unwrap();
    text.text_encoder = text.text_encoder.no_grad();
    let (unet, _) = block_on(UNet2DConditionModel::load(&files, variant, device)).unwrap();
    let scheduler: SchedulerConfig = serde_json::from_slice(
        &std::fs::read(fixtures().join("tiny-sd2/scheduler/scheduler_config.json")).unwrap(),
    )
    .unwrap();
    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("avatar-golden.json")).unwrap())
            .unwrap();
    let tokens: Vec<String> = serde_json::from_value(golden["tokens"].clone()).unwrap();
    text.add_placeholder_tokens(&tokens).unwrap();
    (text, unet.no_grad(), scheduler, golden)
}

/// The loss's and the vectors' gradient's relative errors against torch autograd, for each
/// golden case, with the model loaded on `device` (an autodiff device) in its float type.
pub fn avatar_errors_against_torch(
    device: burn::tensor::Device,
    variant: Option<&str>,
) -> Vec<(f32, f64)> {
    let (text, unet, scheduler, golden) = golden_case(&device, variant);
    // The engine expands `<kid>` to both vectors, as diffusers' maybe_convert_prompt does.
    let prompt = "a photo of <kid>";
    let expected_ids: Vec<u32> = serde_json::from_value(golden["input_ids"].clone()).unwrap();
    assert_eq!(text.input_ids(prompt).unwrap(), expected_ids);

    let tensor = |name: &str| {
        let (shape, values) = golden_tensor(GOLDEN, name);
        (shape, values)
    };
    let burn4 = |name: &str| {
        let (shape, values) = tensor(name);
        Tensor::<4>::from_data(
            TensorData::new(values, shape),
            (&device, burn::tensor::DType::F32),
        )
    };
    let frozen = Frozen {
        text: &text,
        unet: &unet,
        scheduler: &scheduler,
    };
    let mut errors = Vec::new();
    for case in golden["cases"].as_array().unwrap() {
        let timestep = case["timestep"].as_u64().unwrap() as usize;
        let (shape, values) = tensor("vectors");
        // The vectors are f32 whatever the model's type, as training keeps them.
        let vectors = Tensor::<2>::from_data(
            TensorData::new(values, shape),
            (&device, burn::tensor::DType::F32),
        )
        .require_grad();
        let example = Example {
            latents: burn4("latents"),
            noise: burn4("noise"),
            timestep,
            prompt: prompt.into(),
        };
        let loss = denoising_loss(&frozen, vectors.clone(), &example).unwrap();
        let gradients = loss.backward();
        let gradient = vectors
            .grad(&gradients)
            .expect("a gradient for the vectors");
        assert_eq!(
            gradient.dtype(),
            burn::tensor::DType::F32,
            "the gradient is f32"
        );
        let loss_value = loss
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()[0];
        let expected_loss = tensor(&format!("t{timestep}.loss")).1[0];
        let gradient = super::values(gradient);
        let error = relative_l2(&gradient, &tensor(&format!("t{timestep}.grad")));
        let loss_error = ((loss_value - expected_loss) / expected_loss).abs();
        eprintln!(
            "t={timestep}: loss {loss_value} (relative error {loss_error:e}), gradient relative L2 {error:e}"
        );
        errors.push((loss_error, error));
    }
    errors
}

const LORA_GOLDEN: &str = "loras/avatar-lora-golden.safetensors";

/// Pivotal tuning's errors against peft + torch autograd for one golden case.
pub struct LoraErrors {
    pub loss: f64,
    pub vectors: f64,
    /// Relative L2 over every factor's gradient together.
    pub factors: f64,
    /// The worst single factor's, with its name.
    pub worst: (f64, String),
}

/// [`LoraErrors`] for each golden case, on `device` (an autodiff device).
pub fn lora_errors_against_peft(
    device: burn::tensor::Device,
    variant: Option<&str>,
) -> Vec<LoraErrors> {
    let mut errors = Vec::new();
    let (text, unet, scheduler, golden) = golden_case(&device, variant);

    let start = fixtures().join("loras/avatar-lora-start.safetensors");
    let file = LoraFile::from_safetensors(&std::fs::read(&start).unwrap(), &start).unwrap();
    let lora = TrainableLora::from_file(&unet, &file, &device).unwrap();
    assert_eq!(lora.rank, 2);
    let adapted = lora.attach(unet.clone());
    let frozen = Frozen {
        text: &text,
        unet: &adapted,
        scheduler: &scheduler,
    };
    let tensor4 = |name: &str| {
        let (shape, values) = golden_tensor(GOLDEN, name);
        Tensor::<4>::from_data(TensorData::new(values, shape), (&device, DType::F32))
    };
    for case in golden["cases"].as_array().unwrap() {
        let timestep = case["timestep"].as_u64().unwrap() as usize;
        let (shape, values) = golden_tensor(GOLDEN, "vectors");
        let vectors = Tensor::<2>::from_data(TensorData::new(values, shape), (&device, DType::F32))
            .require_grad();
        let example = Example {
            latents: tensor4("latents"),
            noise: tensor4("noise"),
            timestep,
            prompt: "a photo of <kid>".into(),
        };
        let loss = denoising_loss(&frozen, vectors.clone(), &example).unwrap();
        let gradients = loss.backward();
        let loss = super::values(loss).1[0];
        let expected = golden_tensor(LORA_GOLDEN, &format!("t{timestep}.loss")).1[0];
        let loss_error = f64::from(((loss - expected) / expected).abs());
        let vector_error = relative_l2(
            &super::values(vectors.grad(&gradients).unwrap()),
            &golden_tensor(LORA_GOLDEN, &format!("t{timestep}.vectors.grad")),
        );
        let mut worst = (0.0, String::new());
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for (module, pair) in lora.modules().iter().zip(&lora.weights.layers) {
            for (factor, param) in [("lora_A", &pair.down), ("lora_B", &pair.up)] {
                let gradient = param.val().grad(&gradients).expect("a factor's gradient");
                let (shape, values) = golden_tensor(
                    LORA_GOLDEN,
                    &format!("t{timestep}.{module}.{factor}.weight.grad"),
                );
                let gradient = super::values(gradient);
                let error = relative_l2(&gradient, &(shape.clone(), values.clone()));
                ours.extend(gradient.1);
                theirs.extend(values);
                if error > worst.0 {
                    worst = (error, format!("{module}.{factor}"));
                }
            }
        }
        eprintln!(
            "t={timestep}: loss {loss_error:e}, vectors {vector_error:e}, worst of {} factors {:e} ({})",
            2 * lora.weights.layers.len(),
            worst.0,
            worst.1
        );
        let factors = relative_l2(&(vec![ours.len()], ours), &(vec![theirs.len()], theirs));
        eprintln!("t={timestep}: every factor together {factors:e}");
        errors.push(LoraErrors {
            loss: loss_error,
            vectors: vector_error,
            factors,
            worst,
        });
    }
    assert_eq!(lora.parameter_count(), unet_factor_count(&file));
    errors
}

/// Values in the file's factors.
fn unet_factor_count(file: &LoraFile) -> usize {
    assert_eq!(file.layer_count(), 32);
    let start = fixtures().join("loras/avatar-lora-start.safetensors");
    let bytes = std::fs::read(start).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    tensors
        .tensors()
        .iter()
        .map(|(_, view)| view.shape().iter().product::<usize>())
        .sum()
}

/// The avatar's loss and vector gradient against torch within f16's tolerances (stated in
/// tests/half_precision.rs): for every suite whose weights or arithmetic are half precision.
pub fn assert_avatar_gradients_within_f16(device: burn::tensor::Device, variant: Option<&str>) {
    for (loss_error, gradient_error) in avatar_errors_against_torch(device, variant) {
        assert!(loss_error <= 1e-3, "loss relative error {loss_error}");
        assert!(
            gradient_error <= 2e-2,
            "gradient relative L2 error {gradient_error}"
        );
    }
}

/// Pivotal tuning's gradients against peft within f16's tolerances (tests/half_precision.rs).
pub fn assert_lora_gradients_within_f16(device: burn::tensor::Device, variant: Option<&str>) {
    for errors in lora_errors_against_peft(device, variant) {
        assert!(errors.loss <= 1e-3, "loss relative error {}", errors.loss);
        assert!(errors.vectors <= 2e-2, "vector gradient {}", errors.vectors);
        assert!(
            errors.factors <= 2e-2,
            "factor gradients {}",
            errors.factors
        );
        // The smallest gradients (self-attention keys) lose most to f16's rounding.
        let (worst, name) = errors.worst;
        assert!(worst <= 5e-2, "{name}: gradient relative L2 {worst}");
    }
}
