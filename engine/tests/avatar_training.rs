//! Avatar training end to end through the CLI (`toddler train-avatar`), on the tiny fixture model
//! and the fixture photos: the loss goes down, and the file works with `generate --embedding`.

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::{fixtures, run_toddler};
use engine::photos::{Crop, decode};

/// `toddler train-avatar` on the tiny model and the fixture photos, as `<kid>` at 64², writing
/// `out`, with `options` added.
fn train_on_fixtures(out: &Path, options: &[&OsStr]) -> std::process::Output {
    train_on_fixtures_with(out, options, common::run_toddler)
}

fn train_on_fixtures_with(
    out: &Path,
    options: &[&OsStr],
    run: fn(&[&OsStr]) -> std::process::Output,
) -> std::process::Output {
    let (model, photos) = (fixtures().join("tiny-sd2"), fixtures().join("photos"));
    let mut args = vec![
        OsStr::new("train-avatar"),
        OsStr::new("--model"),
        model.as_os_str(),
        OsStr::new("--photos"),
        photos.as_os_str(),
        OsStr::new("--token"),
        OsStr::new("<kid>"),
        OsStr::new("--resolution"),
        OsStr::new("64"),
        OsStr::new("--out"),
        out.as_os_str(),
    ];
    args.extend_from_slice(options);
    run(&args)
}

#[test]
fn a_short_run_lowers_the_evaluation_loss_and_the_avatar_draws() {
    let dir = std::env::temp_dir().join(format!("toddler-avatar-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let avatar = dir.join("kid.safetensors");
    let model = fixtures().join("tiny-sd2");
    let output = train_on_fixtures(
        &avatar,
        &[
            OsStr::new("--steps"),
            OsStr::new("20"),
            OsStr::new("--lr"),
            OsStr::new("0.05"),
        ],
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 21, "{stdout}");
    for (index, line) in lines[..20].iter().enumerate() {
        assert_eq!(line["step"].as_u64(), Some(index as u64 + 1));
        assert!(line["loss"].as_f64().unwrap().is_finite());
    }
    let (before, after) = (
        lines[20]["eval_loss_before"].as_f64().unwrap(),
        lines[20]["eval_loss_after"].as_f64().unwrap(),
    );
    eprintln!("evaluation loss {before} → {after}");
    assert!(
        after < before,
        "training did not lower the loss: {before} → {after}"
    );

    // The avatar's two vectors become two tokens, and it draws.
    let tokens = run_toddler(&[
        OsStr::new("tokenize"),
        OsStr::new("--model"),
        model.as_os_str(),
        OsStr::new("--embedding"),
        avatar.as_os_str(),
        OsStr::new("a photo of <kid>"),
    ]);
    let ids: serde_json::Value = serde_json::from_slice(&tokens.stdout).unwrap();
    assert_eq!(ids["input_ids"][4], 49408);
    assert_eq!(ids["input_ids"][5], 49409);
    let picture = dir.join("kid.png");
    run_toddler(&[
        OsStr::new("generate"),
        OsStr::new("--model"),
        model.as_os_str(),
        OsStr::new("--prompt"),
        OsStr::new("an illustration of <kid> at the beach"),
        OsStr::new("--embedding"),
        avatar.as_os_str(),
        OsStr::new("--width"),
        OsStr::new("32"),
        OsStr::new("--height"),
        OsStr::new("32"),
        OsStr::new("--out"),
        picture.as_os_str(),
    ]);
    assert_eq!(image::open(&picture).unwrap().width(), 32);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn photos_are_read_upright_in_every_format() {
    for (name, width, height) in [
        // Stored rotated with EXIF orientation 6: upright it is 96 wide, 128 tall.
        ("toddler-1.jpg", 96, 128),
        ("toddler-2.png", 128, 96),
        ("toddler-3.webp", 96, 128),
        ("toddler-4.jpg", 128, 96),
    ] {
        let path = fixtures().join("photos").join(name);
        let picture = decode(&std::fs::read(&path).unwrap(), &path).unwrap();
        assert_eq!(
            (picture.width(), picture.height()),
            (width, height),
            "{name}"
        );
        // Upright means the hair (dark) is above the face: the default crop's top row is not
        // darker than its middle row on the upright photo.
        let crop = Crop::default_for(width, height);
        let rgb = picture.to_rgb8();
        let brightness = |y: u32| {
            let pixel = rgb.get_pixel(crop.x + crop.side / 2, y);
            u32::from(pixel[0]) + u32::from(pixel[1]) + u32::from(pixel[2])
        };
        let face_centre = crop.y + crop.side / 2;
        assert!(
            brightness(face_centre) > brightness(face_centre - 28),
            "{name}: the face is below the hair"
        );
    }
}

#[test]
fn training_resumes_from_its_checkpoint() {
    let dir = std::env::temp_dir().join(format!("toddler-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (checkpoint, avatar) = (dir.join("kid.checkpoint"), dir.join("kid.safetensors"));
    let train = |steps: &str| {
        let output = train_on_fixtures(
            &avatar,
            &[
                OsStr::new("--steps"),
                OsStr::new(steps),
                OsStr::new("--checkpoint"),
                checkpoint.as_os_str(),
                OsStr::new("--checkpoint-every"),
                OsStr::new("5"),
            ],
        );
        let steps: Vec<u64> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .filter_map(|line| {
                serde_json::from_str::<serde_json::Value>(line).unwrap()["step"].as_u64()
            })
            .collect();
        (steps, String::from_utf8(output.stderr).unwrap())
    };
    // A run "closed" after 10 steps; the next run goes on from step 10.
    let (first, _) = train("10");
    assert_eq!(first, (1..=10).collect::<Vec<_>>());
    assert!(checkpoint.exists());
    let (second, stderr) = train("16");
    assert!(stderr.contains("resuming from step 10"), "{stderr}");
    assert_eq!(second, (11..=16).collect::<Vec<_>>());
    std::fs::remove_dir_all(&dir).ok();
}

/// Pivotal tuning (`--lora-rank`) on the same photos, seed and steps fits the photos better
/// than the vectors alone (the paired evaluation loss), writes a diffusers LoRA file that
/// `generate --lora` reads, and resumes from its checkpoint with the LoRA.
#[test]
fn pivotal_tuning_fits_the_photos_better_and_its_lora_draws() {
    let dir = std::env::temp_dir().join(format!("toddler-pivotal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = fixtures().join("tiny-sd2");
    let losses = |output: std::process::Output| {
        let stdout = String::from_utf8(output.stdout).unwrap();
        let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        (
            last["eval_loss_before"].as_f64().unwrap(),
            last["eval_loss_after"].as_f64().unwrap(),
        )
    };
    let common = [
        OsStr::new("--steps"),
        OsStr::new("20"),
        OsStr::new("--lr"),
        OsStr::new("0.05"),
    ];
    let alone = losses(train_on_fixtures(&dir.join("alone.safetensors"), &common));
    let (avatar, lora) = (
        dir.join("kid.safetensors"),
        dir.join("kid-lora.safetensors"),
    );
    let checkpoint = dir.join("kid.checkpoint");
    let mut options = common.to_vec();
    options.extend([
        OsStr::new("--lora-rank"),
        OsStr::new("4"),
        OsStr::new("--lora-lr"),
        OsStr::new("0.01"),
        OsStr::new("--lora-out"),
        lora.as_os_str(),
        OsStr::new("--checkpoint"),
        checkpoint.as_os_str(),
        OsStr::new("--checkpoint-every"),
        OsStr::new("10"),
    ]);
    let with_lora = losses(train_on_fixtures(&avatar, &options));
    eprintln!("evaluation loss: vectors alone {alone:?}, with LoRA {with_lora:?}");
    assert_eq!(
        alone.0, with_lora.0,
        "the same start: the LoRA begins as no change"
    );
    assert!(with_lora.1 < alone.1, "{with_lora:?} vs {alone:?}");

    let draw = |extra: &[&OsStr], out: &Path| {
        let mut args = vec![
            OsStr::new("generate"),
            OsStr::new("--model"),
            model.as_os_str(),
            OsStr::new("--prompt"),
            OsStr::new("an illustration of <kid>"),
            OsStr::new("--embedding"),
            avatar.as_os_str(),
            OsStr::new("--width"),
            OsStr::new("32"),
            OsStr::new("--height"),
            OsStr::new("32"),
            OsStr::new("--out"),
            out.as_os_str(),
        ];
        args.extend_from_slice(extra);
        run_toddler(&args);
        image::open(out).unwrap().to_rgb8().into_raw()
    };
    let plain = draw(&[], &dir.join("plain.png"));
    let adapted = draw(
        &[OsStr::new("--lora"), lora.as_os_str()],
        &dir.join("lora.png"),
    );
    let off = draw(
        &[
            OsStr::new("--lora"),
            lora.as_os_str(),
            OsStr::new("--lora-scale"),
            OsStr::new("0"),
        ],
        &dir.join("off.png"),
    );
    assert_ne!(plain, adapted, "the LoRA changes the picture");
    assert_eq!(plain, off, "at scale 0 it changes nothing");

    // The checkpoint (written at step 20) carries the LoRA: a longer run resumes from it.
    let mut longer = options.clone();
    longer[1] = OsStr::new("24");
    let output = train_on_fixtures(&avatar, &longer);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("resuming from step 20"), "{stderr}");
    // Without the LoRA the same checkpoint is refused, in words.
    let output = train_on_fixtures_with(
        &avatar,
        &[
            OsStr::new("--steps"),
            OsStr::new("24"),
            OsStr::new("--checkpoint"),
            checkpoint.as_os_str(),
        ],
        common::toddler_output,
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("another likeness setting"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A preview while training draws with the vectors as they are: the same conditioning as the
/// finished avatar file loaded with `--embedding`.
#[test]
fn placeholder_vectors_encode_like_the_saved_embedding() {
    use burn::tensor::{Tensor, TensorData};
    use engine::loaders::files::block_on;
    use engine::loaders::textual_inversion::TextualInversion;
    use engine::pipelines::prompt::PromptEncoder;

    let files = common::model("tiny-sd2");
    let device = common::device();
    let vectors = vec![vec![0.25f32; 32], vec![-0.5f32; 32]];
    let mut training = block_on(PromptEncoder::load(&files, None, &device)).unwrap();
    let hidden = training.text_encoder.hidden_size();
    let vectors: Vec<Vec<f32>> = vectors
        .into_iter()
        .map(|row| row.into_iter().cycle().take(hidden).collect())
        .collect();
    training
        .add_placeholder_tokens(&["<kid>".into(), "<kid>_1".into()])
        .unwrap();
    training.placeholder_vectors = Some(Tensor::from_data(
        TensorData::new(vectors.concat(), [2, hidden]),
        &device,
    ));
    let info = engine::training::avatar::AvatarInfo {
        model: "tiny-sd2".into(),
        steps: 0,
        resolution: 64,
    };
    let file = engine::training::avatar::embedding_file("<kid>", &vectors, &info).unwrap();
    let mut loaded = block_on(PromptEncoder::load(&files, None, &device)).unwrap();
    let path = std::path::Path::new("kid.safetensors");
    loaded
        .add_embedding(
            &TextualInversion::from_safetensors(&file, path).unwrap(),
            path,
        )
        .unwrap();
    let prompt = ["an illustration of <kid>"];
    let a = common::values(training.encode(&prompt).unwrap());
    let b = common::values(loaded.encode(&prompt).unwrap());
    assert!(common::max_abs_diff(&a, &b) < 1e-6);
}

#[test]
fn photos_can_be_encoded_with_taesd_instead() {
    let dir = std::env::temp_dir().join(format!("toddler-taesd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let avatar = dir.join("kid.safetensors");
    // The tiny-sd1 fixture's VAE is an AutoencoderTiny, laid out as a TAESD repo.
    let taesd = fixtures().join("tiny-sd1").join("vae");
    let output = train_on_fixtures(
        &avatar,
        &[
            OsStr::new("--steps"),
            OsStr::new("20"),
            OsStr::new("--lr"),
            OsStr::new("0.05"),
            OsStr::new("--encoder"),
            taesd.as_os_str(),
        ],
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let (before, after) = (
        last["eval_loss_before"].as_f64().unwrap(),
        last["eval_loss_after"].as_f64().unwrap(),
    );
    assert!(after < before, "{before} → {after}");
    assert!(avatar.exists());
    std::fs::remove_dir_all(&dir).ok();
}
