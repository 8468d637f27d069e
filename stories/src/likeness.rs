//! Likeness in words: how the face matcher's score for a picture, or for an avatar's preview,
//! reads to a parent.

use crate::avatar::Avatar;
use crate::book::PictureLikeness;

/// How a likeness score reads to a parent. The bands come from the measurement in
/// docs/benchmarks.md ("Likeness score"): the same adult face under crops, a flip, light changes
/// and half the size scored 0.957 or more, two different adults 0.894 at most (the descriptors
/// are not centred, so even strangers score high). "Looks like" sits just under the first, "a
/// little like" just above the second. They rank a page's pictures; they do not say who anyone
/// is (toddlers' faces are much harder, and two adults are a thin sample).
pub const CLOSE_LIKENESS: f64 = 0.95;
pub const SOME_LIKENESS: f64 = 0.91;

/// What the Avatars screen says about an avatar's face after learning: its preview's score,
/// and which photos showed no face. `None`: nothing to say (an imported avatar, or one from
/// before the face matcher).
pub fn avatar_face_words(avatar: &Avatar) -> Option<String> {
    let name = &avatar.name;
    let photos = match avatar.photos_without_face.as_slice() {
        [] => String::new(),
        [one] => format!(
            " No face was found in photo {}, so it did not count.",
            one + 1
        ),
        many => format!(
            " No face was found in photos {}, so they did not count.",
            many.iter()
                .map(|index| (index + 1).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    if avatar.face.is_none() {
        return (!avatar.photos_without_face.is_empty()).then(|| {
            format!(
                "The face finder found no face in {name}'s photos, so pictures get no likeness score. Photos where the face is clear and towards the camera help."
            )
        });
    }
    let preview = match avatar.preview_likeness {
        Some(score) => format!("Its preview {}.", looks_like(name, score)),
        None => "Its preview shows no face the face finder could see.".into(),
    };
    Some(format!("{preview}{photos}"))
}

/// Words for a picture's likeness to `name`: what the page shows under its picture.
pub fn likeness_words(name: &str, likeness: &PictureLikeness) -> String {
    match likeness.score {
        None => "No face found in this picture, so no likeness score".into(),
        Some(score) => {
            let phrase = looks_like(name, score);
            let mut letters = phrase.chars();
            letters
                .next()
                .map(|first| first.to_uppercase().chain(letters).collect())
                .unwrap_or_default()
        }
    }
}

/// "looks like Mia", "looks a little like Mia" or "does not look much like Mia".
fn looks_like(name: &str, score: f64) -> String {
    if score >= CLOSE_LIKENESS {
        format!("looks like {name}")
    } else if score >= SOME_LIKENESS {
        format!("looks a little like {name}")
    } else {
        format!("does not look much like {name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn likeness_reads_in_plain_words_and_never_invents_a_number() {
        let with = |score| PictureLikeness {
            faces: 1,
            score: Some(score),
        };
        assert_eq!(likeness_words("Mia", &with(0.96)), "Looks like Mia");
        assert_eq!(
            likeness_words("Mia", &with(0.93)),
            "Looks a little like Mia"
        );
        // A stranger's face scored up to 0.894 against another adult's photo.
        assert_eq!(
            likeness_words("Mia", &with(0.89)),
            "Does not look much like Mia"
        );
        let faceless = PictureLikeness {
            faces: 0,
            score: None,
        };
        assert!(likeness_words("Mia", &faceless).starts_with("No face found"));
    }
}
