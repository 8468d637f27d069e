//! How much arithmetic and memory a model's forward pass takes, counted from its configs alone:
//! what the app knows about a model before a parent downloads its weights.
//!
//! Each walk mirrors the layers the engine builds (`models::unet_2d`, `models::vae`, ...) and
//! counts as PyTorch's `FlopCounterMode` does: 2 × multiply-adds of every matmul, convolution
//! and attention product, nothing for the rest. `engine/tests/estimate.rs` holds the counts to
//! PyTorch's on diffusers' and transformers' own models (`models/count_work.py`).

use crate::models::autoencoder_tiny::AutoencoderTinyConfig;
use crate::models::clip::text_model::ClipTextConfig;
use crate::models::unet_2d::UNet2DConditionConfig;
use crate::models::vae::AutoencoderKLConfig;

/// The tally of one forward pass. Memory figures count tensor elements; multiply by the bytes of
/// the type they are computed in.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Work {
    /// Floating-point operations of matmuls, convolutions and attention (2 per multiply-add).
    pub flops: f64,
    /// The part of `flops` in products of fewer than [`NARROW_ROWS`] rows (a prompt's 77 tokens,
    /// the UNet's inner levels at small sizes), which run at a fraction of a wide product's rate.
    pub narrow_flops: f64,
    /// The model's weights.
    pub params: u64,
    /// GPU dispatches, roughly: the part of the time a software adapter spends per kernel.
    pub kernels: u64,
    /// The largest single operation's inputs, output and scratch, alive together.
    pub largest_op: u64,
    /// Activations kept for a later layer (the UNet's skips), all alive at their peak.
    pub held: u64,
    /// Every operation's output: the activations written (and read again by the next).
    pub written: u64,
    /// What a backward pass keeps: every operation's inputs (an attention's q, k, v and output;
    /// its scores are recomputed).
    pub kept: u64,
    /// The largest single weight tensor (a layer's, widened whole when it is read).
    pub largest_weight: u64,
}

/// Products with fewer rows than this count as narrow (see [`Work::narrow_flops`]).
pub const NARROW_ROWS: u64 = 256;

impl Work {
    /// Counts `flops` of a product of `rows` rows.
    fn product(&mut self, flops: f64, rows: u64) {
        self.flops += flops;
        if rows < NARROW_ROWS {
            self.narrow_flops += flops;
        }
    }

    /// The elements alive at the forward pass's peak.
    pub fn peak_activations(&self) -> u64 {
        self.held + self.largest_op
    }

    /// An operation whose backward pass keeps its inputs.
    fn op(&mut self, inputs: u64, outputs: u64, kernels: u64) {
        self.op_keeping(inputs, outputs, kernels, inputs);
    }

    /// An operation whose backward pass keeps `kept` elements.
    fn op_keeping(&mut self, inputs: u64, outputs: u64, kernels: u64, kept: u64) {
        self.largest_op = self.largest_op.max(inputs + outputs);
        self.written += outputs;
        self.kept += kept;
        self.kernels += kernels;
    }

    /// A `k`×`k` convolution producing `outputs` channels of `height`×`width` (after its stride).
    fn conv(
        &mut self,
        inputs: usize,
        outputs: usize,
        k: usize,
        out: (usize, usize),
        stride: usize,
    ) {
        self.conv_with_bias(inputs, outputs, k, out, stride, true);
    }

    fn conv_with_bias(
        &mut self,
        inputs: usize,
        outputs: usize,
        k: usize,
        (height, width): (usize, usize),
        stride: usize,
        bias: bool,
    ) {
        let pixels = (height * width) as u64;
        let (inputs, outputs, k) = (inputs as u64, outputs as u64, k as u64);
        self.product(2.0 * (inputs * outputs * k * k * pixels) as f64, pixels);
        self.params += inputs * outputs * k * k + if bias { outputs } else { 0 };
        self.largest_weight = self.largest_weight.max(inputs * outputs * k * k);
        let stride = stride as u64;
        self.op(inputs * pixels * stride * stride, outputs * pixels, 1);
    }

    /// A linear layer over `tokens` rows.
    fn linear(&mut self, inputs: usize, outputs: usize, tokens: usize, bias: bool) {
        let (inputs, outputs, tokens) = (inputs as u64, outputs as u64, tokens as u64);
        self.product(2.0 * (inputs * outputs * tokens) as f64, tokens);
        self.params += inputs * outputs + if bias { outputs } else { 0 };
        self.largest_weight = self.largest_weight.max(inputs * outputs);
        self.op(inputs * tokens, outputs * tokens, 1);
    }

    /// Scaled dot-product attention of `queries` over `keys` at `channels` (all heads).
    fn attention(&mut self, queries: usize, keys: usize, channels: usize, heads: usize) {
        let (queries, keys, channels) = (queries as u64, keys as u64, channels as u64);
        self.product(4.0 * (queries * keys * channels) as f64, queries);
        let scores = heads as u64 * queries * keys;
        let (query_key_value, output) =
            (queries * channels + 2 * keys * channels, queries * channels);
        // Training keeps q, k, v and the output but not the scores, which its backward pass
        // recomputes (`models::attention_training`).
        self.op_keeping(
            query_key_value + scores,
            output,
            4,
            query_key_value + output,
        );
        self.written += scores;
    }

    /// A group or layer norm over `elements` with `channels` scales and shifts.
    fn norm(&mut self, channels: usize, elements: usize) {
        self.params += 2 * channels as u64;
        self.op(elements as u64, elements as u64, 2);
    }

    /// An activation, an addition, a resize: no counted arithmetic, one kernel.
    fn elementwise(&mut self, elements: usize) {
        self.op(elements as u64, elements as u64, 1);
    }

    fn hold(&mut self, elements: usize) {
        self.held += elements as u64;
    }
}

/// The tokens a prompt is padded to.
const PROMPT_TOKENS: usize = 77;

/// The text encoder on one padded prompt.
pub fn clip_text(config: &ClipTextConfig) -> Work {
    let mut work = Work::default();
    let (width, tokens) = (config.hidden_size, config.max_position_embeddings);
    // The token table stays in host memory (only a prompt's rows reach the device).
    work.params += ((config.vocab_size + config.max_position_embeddings) * width) as u64;
    for _ in 0..config.num_hidden_layers {
        work.norm(width, tokens * width);
        for _ in 0..3 {
            work.linear(width, width, tokens, true);
        }
        work.attention(tokens, tokens, width, config.num_attention_heads);
        work.linear(width, width, tokens, true);
        work.elementwise(tokens * width);
        work.norm(width, tokens * width);
        work.linear(width, config.intermediate_size, tokens, true);
        work.elementwise(tokens * config.intermediate_size);
        work.linear(config.intermediate_size, width, tokens, true);
        work.elementwise(tokens * width);
    }
    work.norm(width, tokens * width);
    work
}

/// diffusers' `ResnetBlock2D` at `size`, with a time embedding of `time_channels` (the UNet) or
/// none (the VAE).
fn resnet(
    work: &mut Work,
    (inputs, outputs): (usize, usize),
    size: (usize, usize),
    time_channels: Option<usize>,
) {
    let pixels = size.0 * size.1;
    work.norm(inputs, inputs * pixels);
    work.elementwise(inputs * pixels);
    work.conv(inputs, outputs, 3, size, 1);
    if let Some(time_channels) = time_channels {
        work.elementwise(time_channels);
        work.linear(time_channels, outputs, 1, true);
        work.elementwise(outputs * pixels);
    }
    work.norm(outputs, outputs * pixels);
    work.elementwise(outputs * pixels);
    work.conv(outputs, outputs, 3, size, 1);
    if inputs != outputs {
        work.conv(inputs, outputs, 1, size, 1);
    }
    work.elementwise(outputs * pixels);
}

/// diffusers' `Transformer2DModel` over a `size` feature map, attending to `context` tokens of
/// `context_width`.
struct Transformer {
    channels: usize,
    heads: usize,
    layers: usize,
    only_cross_attention: bool,
    context_width: usize,
}

impl Transformer {
    fn count(&self, work: &mut Work, size: (usize, usize)) {
        let (channels, tokens) = (self.channels, size.0 * size.1);
        let elements = channels * tokens;
        work.norm(channels, elements);
        // A 1×1 convolution or a linear layer: the same arithmetic.
        work.linear(channels, channels, tokens, true);
        for _ in 0..self.layers {
            // Self-attention (or, with only_cross_attention, a first cross-attention).
            work.norm(channels, elements);
            let first_keys = if self.only_cross_attention {
                (PROMPT_TOKENS, self.context_width)
            } else {
                (tokens, channels)
            };
            self.attend(work, tokens, first_keys);
            work.norm(channels, elements);
            self.attend(work, tokens, (PROMPT_TOKENS, self.context_width));
            work.norm(channels, elements);
            // GEGLU: one projection to twice the inner width, then back.
            let inner = 4 * channels;
            work.linear(channels, 2 * inner, tokens, true);
            work.elementwise(inner * tokens);
            work.linear(inner, channels, tokens, true);
            work.elementwise(elements);
        }
        work.linear(channels, channels, tokens, true);
        work.elementwise(elements);
    }

    fn attend(&self, work: &mut Work, tokens: usize, (keys, key_width): (usize, usize)) {
        let channels = self.channels;
        work.linear(channels, channels, tokens, false);
        work.linear(key_width, channels, keys, false);
        work.linear(key_width, channels, keys, false);
        work.attention(tokens, keys, channels, self.heads);
        work.linear(channels, channels, tokens, true);
        work.elementwise(channels * tokens);
    }
}

/// The UNet on one latent of `height`×`width` (latent pixels), batch 1.
pub fn unet(config: &UNet2DConditionConfig, (height, width): (usize, usize)) -> Work {
    let mut work = Work::default();
    let channels = &config.block_out_channels;
    let blocks = channels.len();
    let (heads, layers, only_cross) = (
        config.heads(),
        config.attention_layers(),
        config.only_cross_attention(),
    );
    let time_channels = channels[0] * 4;
    if let Some(condition) = config.time_cond_proj_dim {
        work.params += (condition * channels[0]) as u64;
    }
    work.linear(channels[0], time_channels, 1, true);
    work.elementwise(time_channels);
    work.linear(time_channels, time_channels, 1, true);
    let transformer = |channels, block: usize| Transformer {
        channels,
        heads: heads[block],
        layers: layers[block],
        only_cross_attention: only_cross[block],
        context_width: config.cross_attention_dim,
    };

    let mut size = (height, width);
    work.conv(config.in_channels, channels[0], 3, size, 1);
    work.hold(channels[0] * height * width);
    let mut output = channels[0];
    for (i, kind) in config.down_block_types.iter().enumerate() {
        for j in 0..config.layers_per_block {
            let input = if j == 0 { output } else { channels[i] };
            resnet(&mut work, (input, channels[i]), size, Some(time_channels));
            if kind.starts_with("CrossAttn") {
                transformer(channels[i], i).count(&mut work, size);
            }
            work.hold(channels[i] * size.0 * size.1);
        }
        output = channels[i];
        if i + 1 < blocks {
            size = (size.0.div_ceil(2), size.1.div_ceil(2));
            work.conv(output, output, 3, size, 2);
            work.hold(output * size.0 * size.1);
        }
    }
    let last = channels[blocks - 1];
    if config.mid_block_type.is_some() {
        resnet(&mut work, (last, last), size, Some(time_channels));
        transformer(last, blocks - 1).count(&mut work, size);
        resnet(&mut work, (last, last), size, Some(time_channels));
    }
    let reversed: Vec<usize> = channels.iter().rev().copied().collect();
    let mut output = reversed[0];
    for (i, kind) in config.up_block_types.iter().enumerate() {
        let previous = output;
        output = reversed[i];
        let input = reversed[(i + 1).min(blocks - 1)];
        let count = config.layers_per_block + 1;
        for j in 0..count {
            let skip = if j == count - 1 { input } else { output };
            let from = if j == 0 { previous } else { output };
            work.elementwise((from + skip) * size.0 * size.1);
            resnet(&mut work, (from + skip, output), size, Some(time_channels));
            if kind.starts_with("CrossAttn") {
                transformer(output, blocks - 1 - i).count(&mut work, size);
            }
        }
        if i + 1 < blocks {
            size = (size.0 * 2, size.1 * 2);
            work.elementwise(output * size.0 * size.1);
            work.conv(output, output, 3, size, 1);
        }
    }
    work.norm(channels[0], channels[0] * size.0 * size.1);
    work.elementwise(channels[0] * size.0 * size.1);
    work.conv(channels[0], config.out_channels, 3, size, 1);
    work
}

/// The VAE's single-head attention over a `size` map.
fn spatial_attention(work: &mut Work, channels: usize, size: (usize, usize)) {
    let tokens = size.0 * size.1;
    work.norm(channels, channels * tokens);
    for _ in 0..3 {
        work.linear(channels, channels, tokens, true);
    }
    work.attention(tokens, tokens, channels, 1);
    work.linear(channels, channels, tokens, true);
    work.elementwise(channels * tokens);
}

fn vae_mid_block(work: &mut Work, config: &AutoencoderKLConfig, size: (usize, usize)) {
    let last = *config.block_out_channels.last().expect("validated");
    resnet(work, (last, last), size, None);
    if config.mid_block_add_attention {
        spatial_attention(work, last, size);
    }
    resnet(work, (last, last), size, None);
}

/// The VAE's decoder on a latent of `height`×`width` (latent pixels).
pub fn vae_decoder(config: &AutoencoderKLConfig, (height, width): (usize, usize)) -> Work {
    let mut work = Work::default();
    let mut size = (height, width);
    let latent = config.latent_channels;
    if config.use_post_quant_conv {
        work.conv(latent, latent, 1, size, 1);
    }
    let reversed: Vec<usize> = config.block_out_channels.iter().rev().copied().collect();
    let blocks = reversed.len();
    work.conv(latent, reversed[0], 3, size, 1);
    vae_mid_block(&mut work, config, size);
    let mut output = reversed[0];
    for (i, &channel) in reversed.iter().enumerate() {
        let input = output;
        output = channel;
        for j in 0..=config.layers_per_block {
            resnet(
                &mut work,
                (if j == 0 { input } else { output }, output),
                size,
                None,
            );
        }
        if i + 1 < blocks {
            size = (size.0 * 2, size.1 * 2);
            work.elementwise(output * size.0 * size.1);
            work.conv(output, output, 3, size, 1);
        }
    }
    let first = config.block_out_channels[0];
    work.norm(first, first * size.0 * size.1);
    work.elementwise(first * size.0 * size.1);
    work.conv(first, config.out_channels, 3, size, 1);
    work
}

/// The VAE's encoder (with its `quant_conv`) on a picture of `height`×`width`.
pub fn vae_encoder(config: &AutoencoderKLConfig, (height, width): (usize, usize)) -> Work {
    let mut work = Work::default();
    let channels = &config.block_out_channels;
    let blocks = channels.len();
    let mut size = (height, width);
    work.conv(config.in_channels, channels[0], 3, size, 1);
    let mut output = channels[0];
    for (i, &channel) in channels.iter().enumerate() {
        for j in 0..config.layers_per_block {
            resnet(
                &mut work,
                (if j == 0 { output } else { channel }, channel),
                size,
                None,
            );
        }
        output = channel;
        if i + 1 < blocks {
            // Padded on the right and bottom only, then a stride of 2.
            size = (size.0 / 2, size.1 / 2);
            work.conv(output, output, 3, size, 2);
        }
    }
    vae_mid_block(&mut work, config, size);
    let last = channels[blocks - 1];
    work.norm(last, last * size.0 * size.1);
    work.elementwise(last * size.0 * size.1);
    let moments = 2 * config.latent_channels;
    work.conv(last, moments, 3, size, 1);
    if config.use_quant_conv {
        work.conv(moments, moments, 1, size, 1);
    }
    work
}

/// TAESD's three-convolution block.
fn tiny_block(work: &mut Work, channels: usize, size: (usize, usize)) {
    let elements = channels * size.0 * size.1;
    for _ in 0..3 {
        work.conv(channels, channels, 3, size, 1);
        work.elementwise(elements);
    }
    work.elementwise(elements);
}

/// The tiny autoencoder's (TAESD's) decoder on a latent of `height`×`width`.
pub fn tiny_decoder(config: &AutoencoderTinyConfig, (height, width): (usize, usize)) -> Work {
    let mut work = Work::default();
    let mut size = (height, width);
    let channels = &config.decoder_block_out_channels;
    work.elementwise(config.latent_channels * height * width);
    work.conv(config.latent_channels, channels[0], 3, size, 1);
    work.elementwise(channels[0] * height * width);
    let levels = channels.len();
    for (i, (&channel, &blocks)) in channels.iter().zip(&config.num_decoder_blocks).enumerate() {
        for _ in 0..blocks {
            tiny_block(&mut work, channel, size);
        }
        let last_level = i + 1 == levels;
        if !last_level {
            size = (size.0 * 2, size.1 * 2);
            work.elementwise(channel * size.0 * size.1);
        }
        let outputs = if last_level {
            config.out_channels
        } else {
            channel
        };
        work.conv_with_bias(channel, outputs, 3, size, 1, last_level);
    }
    work
}

/// The tiny autoencoder's encoder on a picture of `height`×`width`.
pub fn tiny_encoder(config: &AutoencoderTinyConfig, (height, width): (usize, usize)) -> Work {
    let mut work = Work::default();
    let mut size = (height, width);
    let channels = &config.encoder_block_out_channels;
    for (i, (&channel, &blocks)) in channels.iter().zip(&config.num_encoder_blocks).enumerate() {
        if i == 0 {
            work.conv(config.in_channels, channel, 3, size, 1);
        } else {
            size = (size.0.div_ceil(2), size.1.div_ceil(2));
            work.conv_with_bias(channel, channel, 3, size, 2, false);
        }
        for _ in 0..blocks {
            tiny_block(&mut work, channel, size);
        }
    }
    let last = *channels.last().expect("validated");
    work.conv(last, config.latent_channels, 3, size, 1);
    work
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/fixtures")
    }

    fn config<T: serde::de::DeserializeOwned>(path: PathBuf) -> T {
        serde_json::from_slice(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
    }

    fn assert_flops(what: &str, ours: f64, torch: &serde_json::Value) {
        let torch = torch
            .as_f64()
            .unwrap_or_else(|| panic!("{what}: no golden"));
        let error = (ours - torch).abs() / torch;
        assert!(error < 1e-9, "{what}: counted {ours}, torch {torch}");
    }

    /// Parameters and FLOPs of each committed layout, against PyTorch's own count of diffusers'
    /// and transformers' models built from the same configs (`models/count_work.py`).
    #[test]
    fn counts_match_pytorch() {
        let golden: serde_json::Value = config(fixtures().join("work-golden.json"));
        for (name, counts) in golden.as_object().unwrap() {
            let folder = fixtures().join(name);
            let vae_counts = if name == "taesd" {
                let tiny: AutoencoderTinyConfig = serde_json::from_str("{}").unwrap();
                check_vae(name, counts, |side| {
                    (
                        tiny_decoder(&tiny, (side / 8, side / 8)),
                        tiny_encoder(&tiny, (side, side)),
                    )
                });
                continue;
            } else {
                &counts["vae"]
            };
            let text: ClipTextConfig = config(folder.join("text_encoder/config.json"));
            let text_work = clip_text(&text);
            assert_eq!(
                text_work.params,
                counts["text_encoder"]["params"].as_u64().unwrap(),
                "{name} text encoder params"
            );
            assert_flops(
                &format!("{name} text"),
                text_work.flops,
                &counts["text_encoder"]["flops"],
            );
            assert_eq!(
                text_work.narrow_flops, text_work.flops,
                "a prompt's 77 rows are narrow"
            );
            let unet_config: UNet2DConditionConfig = config(folder.join("unet/config.json"));
            for side in [64, 512] {
                let work = unet(&unet_config, (side / 8, side / 8));
                assert_eq!(
                    work.params,
                    counts["unet"]["params"].as_u64().unwrap(),
                    "{name} UNet params"
                );
                assert_flops(
                    &format!("{name} UNet at {side}"),
                    work.flops,
                    &counts["unet"][format!("flops_{side}")],
                );
            }
            let vae: serde_json::Value = config(folder.join("vae/config.json"));
            if vae["_class_name"] == "AutoencoderTiny" {
                let tiny: AutoencoderTinyConfig = serde_json::from_value(vae).unwrap();
                check_vae(name, vae_counts, |side| {
                    (
                        tiny_decoder(&tiny, (side / 8, side / 8)),
                        tiny_encoder(&tiny, (side, side)),
                    )
                });
            } else {
                let kl: AutoencoderKLConfig = serde_json::from_value(vae).unwrap();
                check_vae(name, vae_counts, |side| {
                    (
                        vae_decoder(&kl, (side / 8, side / 8)),
                        vae_encoder(&kl, (side, side)),
                    )
                });
            }
        }
    }

    fn check_vae(name: &str, counts: &serde_json::Value, count: impl Fn(usize) -> (Work, Work)) {
        for side in [64, 512] {
            let (decoder, encoder) = count(side);
            assert_flops(
                &format!("{name} decoder at {side}"),
                decoder.flops,
                &counts[format!("decode_flops_{side}")],
            );
            assert_flops(
                &format!("{name} encoder at {side}"),
                encoder.flops,
                &counts[format!("encode_flops_{side}")],
            );
        }
        let params = counts["params"].as_u64().unwrap();
        let (decoder, encoder) = count(64);
        // The VAE's parameters are its encoder's and decoder's together.
        assert_eq!(decoder.params + encoder.params, params, "{name} VAE params");
    }
}
