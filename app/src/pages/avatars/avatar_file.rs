//! An avatar as a file the parent keeps or moves to another device: Export writes its
//! `learned_embeds.safetensors` (with the stronger likeness, a zip of it and its LoRA); Import
//! reads either back, after the engine has checked them.

use protocol::store::{AVATAR_FILE, AVATAR_LORA_FILE};
use stories::Avatar;

use crate::storage;
use crate::studio::{self, avatar_path};

/// Downloads `avatar`'s file: the embedding alone, or with its LoRA the two in one zip.
pub async fn export_avatar(avatar: &Avatar) -> Result<(), String> {
    let Some(bytes) = storage::read(&avatar_path(&avatar.token, AVATAR_FILE)).await? else {
        return Err("This avatar has no file yet: let it finish learning first.".into());
    };
    let stem = avatar.name.replace(['/', '\\'], "-");
    // With its LoRA the avatar is two files (diffusers' own names), in one zip.
    match storage::read(&avatar_path(&avatar.token, AVATAR_LORA_FILE)).await? {
        Some(lora) => {
            let archive = crate::zip::stored(&[
                (AVATAR_FILE.to_owned(), bytes),
                (AVATAR_LORA_FILE.to_owned(), lora),
            ]);
            storage::download(&archive, &format!("{stem}.zip"), "application/zip")
        }
        None => storage::download(
            &bytes,
            &format!("{stem}.safetensors"),
            "application/octet-stream",
        ),
    }
}

/// Imports a `learned_embeds.safetensors` (this app's export, or diffusers'): its token and
/// vector count come from the file.
pub async fn import_avatar(file: &web_sys::File) -> Result<(), String> {
    let bytes = storage::file_bytes(file).await?;
    let not_avatar = || {
        format!(
            "{} is not an avatar file. Avatar files end in .safetensors or .zip and come from the Export button.",
            file.name()
        )
    };
    // A zip: an avatar with its LoRA (the stronger likeness), as Export writes it.
    let (bytes, lora) = if bytes.starts_with(b"PK") {
        let mut entries = crate::zip::read_stored(&bytes)
            .map_err(|problem| format!("{}: {problem}.", file.name()))?;
        let mut take = |name: &str| {
            entries
                .iter()
                .position(|(entry, _)| entry == name)
                .map(|index| entries.swap_remove(index).1)
        };
        let embedding = take(AVATAR_FILE).ok_or_else(not_avatar)?;
        (embedding, take(AVATAR_LORA_FILE))
    } else {
        (bytes, None)
    };
    if let Some(lora) = &lora
        && !crate::safetensors::looks_like_lora(lora)
    {
        return Err(format!(
            "{}: its {AVATAR_LORA_FILE} is not a LoRA file this app can read.",
            file.name()
        ));
    }
    let (token, metadata) = read_avatar_file(&bytes).ok_or_else(not_avatar)?;
    // The engine reads both files now, so a damaged one is refused before anything is stored.
    let unusable =
        |message: String| format!("{} cannot be used as an avatar: it {message}", file.name());
    studio::check_file(&bytes, &file.name(), protocol::FileKind::Embedding)
        .await
        .map_err(unusable)?;
    if let Some(lora) = &lora {
        studio::check_file(lora, &file.name(), protocol::FileKind::Lora)
            .await
            .map_err(unusable)?;
    }
    let taken: Vec<String> = studio::avatars()
        .await?
        .into_iter()
        .map(|avatar| avatar.token)
        .collect();
    if taken.contains(&token) {
        return Err(format!(
            "An avatar with the token {token} is already here; delete it first to replace it."
        ));
    }
    let name = file
        .name()
        .trim_end_matches(".safetensors")
        .trim_end_matches(".zip")
        .to_owned();
    let number = |key: &str| {
        metadata
            .get(key)
            .and_then(|value| value.as_str())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    let avatar = Avatar {
        name: if name.is_empty() { token.clone() } else { name },
        token: token.clone(),
        photos: 0,
        steps: number("steps"),
        resolution: number("resolution"),
        eval_loss_before: Some(0.0),
        eval_loss_after: Some(0.0),
        updated: storage::now(),
        lora_rank: lora.as_deref().map_or(0, crate::safetensors::lora_rank),
        face: None,
        photos_without_face: Vec::new(),
        preview_likeness: None,
    };
    if let Some(lora) = &lora {
        storage::write(&avatar_path(&token, AVATAR_LORA_FILE), lora).await?;
    }
    storage::write(&avatar_path(&token, AVATAR_FILE), &bytes).await?;
    studio::save_avatar(&avatar).await
}

/// The token (the first tensor's name, as diffusers writes it) and metadata of an avatar file.
fn read_avatar_file(bytes: &[u8]) -> Option<(String, serde_json::Map<String, serde_json::Value>)> {
    let header = crate::safetensors::header(bytes)?;
    let metadata = header
        .get("__metadata__")
        .and_then(|metadata| metadata.as_object())
        .cloned()
        .unwrap_or_default();
    let token = header.keys().find(|key| *key != "__metadata__")?.clone();
    (token.starts_with('<') || metadata.contains_key("token")).then_some((token, metadata))
}
