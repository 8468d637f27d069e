//! The avatar record the shelf lists, how its training went in words, and which avatar a new
//! book most likely stars.

use serde::{Deserialize, Serialize};

/// An avatar as the shelf lists it (stored beside its file as `avatar.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Avatar {
    /// What the parent calls it: "Mia".
    pub name: String,
    /// The placeholder the prompts use: `<mia>`.
    pub token: String,
    pub photos: usize,
    pub steps: usize,
    pub resolution: usize,
    /// `None` until training finished.
    #[serde(default)]
    pub eval_loss_before: Option<f64>,
    #[serde(default)]
    pub eval_loss_after: Option<f64>,
    pub updated: f64,
    /// The rank of the avatar's LoRA ("stronger likeness", pivotal tuning); 0: its vectors
    /// alone (every avatar before it existed).
    #[serde(default)]
    pub lora_rank: usize,
    /// The face matcher's reference: the mean descriptor of the photos' faces (`None`: no
    /// photo showed a face it could find, or the avatar predates it).
    #[serde(default)]
    pub face: Option<Vec<f32>>,
    /// Photos (by their order) in which no face was found.
    #[serde(default)]
    pub photos_without_face: Vec<usize>,
    /// The last preview's likeness score, when it had a face.
    #[serde(default)]
    pub preview_likeness: Option<f64>,
}

impl Avatar {
    /// A token for `name`: `<mia>` from "Mia", letters and digits only, `<kid>` when none;
    /// `taken` tokens get a number (`<mia2>`), so siblings with one name stay apart.
    pub fn token_for(name: &str, taken: &[String]) -> String {
        let base: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .flat_map(char::to_lowercase)
            .take(16)
            .collect();
        let base = if base.is_empty() { "kid".into() } else { base };
        let mut token = format!("<{base}>");
        let mut number = 2;
        while taken.contains(&token) {
            token = format!("<{base}{number}>");
            number += 1;
        }
        token
    }

    /// Whether it has finished learning (or was imported) and can draw a book.
    pub fn is_ready(&self) -> bool {
        self.eval_loss_after.is_some()
    }

    /// How training went, in words a parent reads at a glance. The paired evaluation loss drops
    /// only a few percent even when the likeness is good (most of a denoising loss is noise the
    /// avatar cannot explain), so the bands are wide and no number is shown.
    pub fn progress_words(&self) -> String {
        let (Some(before), Some(after)) = (self.eval_loss_before, self.eval_loss_after) else {
            return "Not finished learning yet.".to_owned();
        };
        if before <= 0.0 {
            return match self.lora_rank {
                0 => "Imported from a file.".to_owned(),
                _ => "Imported from a file, with the stronger likeness.".to_owned(),
            };
        }
        let learned = format!(
            "Ready: learned from {} photo{} in {} steps{}.",
            self.photos,
            if self.photos == 1 { "" } else { "s" },
            self.steps,
            if self.lora_rank > 0 {
                ", with the stronger likeness"
            } else {
                ""
            }
        );
        let gain = (before - after) / before;
        let verdict = if gain >= 0.05 {
            "It matches the photos clearly better than where it started."
        } else if gain >= 0.005 {
            "It matches the photos a little better than where it started; more learning steps can help."
        } else {
            "It has not changed much from where it started yet: more learning steps, or clearer photos, can help."
        };
        format!("{learned} {verdict}")
    }
}

/// The avatar a new book most likely stars, among `avatars` (newest first): the one named like
/// the child, else the only one, else the newest. Avatars still learning are never chosen.
pub fn likely_avatar<'a>(avatars: &'a [Avatar], child_name: &str) -> Option<&'a Avatar> {
    let ready: Vec<&Avatar> = avatars.iter().filter(|avatar| avatar.is_ready()).collect();
    let wanted = child_name.trim();
    ready
        .iter()
        .find(|avatar| !wanted.is_empty() && avatar.name.trim().eq_ignore_ascii_case(wanted))
        .or_else(|| ready.iter().max_by(|a, b| a.updated.total_cmp(&b.updated)))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::Style;

    fn avatar(name: &str, updated: f64, ready: bool) -> Avatar {
        Avatar {
            name: name.into(),
            token: Avatar::token_for(name, &[]),
            photos: 5,
            steps: 300,
            resolution: 512,
            eval_loss_before: ready.then_some(0.2),
            eval_loss_after: ready.then_some(0.19),
            updated,
            lora_rank: 0,
            face: None,
            photos_without_face: Vec::new(),
            preview_likeness: None,
        }
    }

    #[test]
    fn a_new_book_stars_the_avatar_named_like_the_child_else_the_newest() {
        let noah = avatar("Noah", 1.0, true);
        let mia = avatar("Mia", 2.0, true);
        let learning = avatar("Leo", 3.0, false);
        let all = [learning.clone(), mia.clone(), noah.clone()];
        assert_eq!(likely_avatar(&all, "noah "), Some(&noah));
        assert_eq!(likely_avatar(&all, ""), Some(&mia), "the newest ready one");
        assert_eq!(likely_avatar(&all, "Sam"), Some(&mia));
        assert_eq!(
            likely_avatar(&all, "Leo"),
            Some(&mia),
            "not one still learning"
        );
        assert_eq!(
            likely_avatar(std::slice::from_ref(&noah), "Sam"),
            Some(&noah)
        );
        assert_eq!(likely_avatar(&[learning], "Leo"), None);
        assert_eq!(likely_avatar(&[], "Mia"), None);
    }

    #[test]
    fn training_progress_is_said_in_words_without_numbers() {
        let mut mia = avatar("Mia", 1.0, true);
        for (after, phrase) in [
            (0.2, "has not changed much"),
            (0.1995, "has not changed much"),
            (0.198, "a little better"),
            (0.18, "clearly better"),
        ] {
            mia.eval_loss_after = Some(after);
            let words = mia.progress_words();
            assert!(
                words.starts_with("Ready: learned from 5 photos in 300 steps."),
                "{words}"
            );
            assert!(words.contains(phrase), "{after}: {words}");
            assert!(!words.contains('%') && !words.contains("0.0"), "{words}");
        }
        mia.eval_loss_before = Some(0.0);
        assert_eq!(mia.progress_words(), "Imported from a file.");
        mia.lora_rank = 4;
        assert_eq!(
            mia.progress_words(),
            "Imported from a file, with the stronger likeness."
        );
        mia.lora_rank = 0;
        mia.eval_loss_after = None;
        assert_eq!(mia.progress_words(), "Not finished learning yet.");
    }

    #[test]
    fn tokens_are_simple_and_unique() {
        assert_eq!(Avatar::token_for("Mia Rose", &[]), "<miarose>");
        assert_eq!(Avatar::token_for("Mia", &["<mia>".into()]), "<mia2>");
        assert_eq!(Avatar::token_for("😀", &[]), "<kid>");
        assert_eq!(Style::from_key(Style::Soft3d.key()), Style::Soft3d);
    }
}
